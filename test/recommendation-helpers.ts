/** Child-process helpers of the recommendation federation tests: the fedmart CLI, a `fedmart partner --serve` process, GET JSON. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

export function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** A `fedmart partner` child process; resolves `served` with its endpoint URL once it logs it. */
export function partnerProcess(args: string[]): { child: ChildProcess; served: Promise<string>; log: () => string } {
  const child = spawn(process.execPath, [BIN, 'partner', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  const served = new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      text += b.toString();
      const m = /serving recommendations for this brand's customers on (http:\/\/127\.0\.0\.1:\d+\/recommend)/.exec(text);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`partner exited (${code}) before serving:\n${text}`)));
  });
  served.catch(() => {});
  return { child, served, log: () => text };
}

/** Stop partner processes (SIGTERM) and wait until every one has exited. */
export async function stopPartners(procs: readonly ReturnType<typeof partnerProcess>[]): Promise<void> {
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}
