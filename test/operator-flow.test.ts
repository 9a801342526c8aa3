/**
 * The multi-machine workflow as separate processes: `fedmart coordinator`,
 * `fedmart schema infer`, `fedmart federation create|enroll|rounds|show`,
 * and two `fedmart partner` processes, each holding only its own rows.
 */
import { waitForLine } from './helpers.ts';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { formatCsv } from '@fedmart/shared/data/table';
import { bankMarketingPath } from '../cli/datasets.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

// Generous waits: they guard against a hung process, not a slow one (two test runs at once on 2 cores are slow).

it('an operator runs a federation of partner processes with the CLI alone', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-ops-'));
  const children: ChildProcess[] = [];
  try {
    // Arrange: two partners' files (the real bank sample split in two)
    const table = await readTableFile(bankMarketingPath('small'), { sep: ';' });
    await writeFile(path.join(dir, 'a.csv'), formatCsv({ columns: table.columns, rows: table.rows.slice(0, 2200) }, ';'));
    await writeFile(path.join(dir, 'b.csv'), formatCsv({ columns: table.columns, rows: table.rows.slice(2200) }, ';'));
    const coord = spawn(process.execPath, [BIN, 'coordinator', '--port', '0', '--data-dir', path.join(dir, 'coord')], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(coord);
    const url = (await waitForLine(coord, /http:\/\/127\.0\.0\.1:\d+/)).trim();
    const common = ['--coordinator', url, '--data-dir', path.join(dir, 'coord')];

    // Act
    expect((await run(['schema', 'infer', '--csv', 'a.csv', '--sep', ';', '--label', 'y', '--drop', 'duration', '--out', 'schema.json'], dir)).code).toBe(0);
    const created = await run(['federation', 'create', ...common, '--name', 'bank', '--schema', 'schema.json', '--json'], dir);
    expect(created.code, created.stderr).toBe(0);
    const fed = JSON.parse(created.stdout).federation.id as string;
    for (const [partner, file] of [['brand-a', 'a.csv'], ['brand-b', 'b.csv']] as const) {
      // brand-a's weight is capped at an agreed 1000 examples (it holds more).
      const enrolled = await run(['federation', 'enroll', ...common, '--federation', fed, '--partner', partner, ...(partner === 'brand-a' ? ['--max-examples', '1000'] : [])], dir);
      expect(enrolled.code, enrolled.stderr).toBe(0);
      const p = spawn(process.execPath, [BIN, 'partner', '--coordinator', url, '--data', file, '--sep', ';'], { cwd: dir, env: { ...process.env, FEDMART_TOKEN: enrolled.stdout.trim() }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(p);
      await waitForLine(p, /waiting for rounds/);
    }
    const rounds = await run(['federation', 'rounds', ...common, '--federation', fed, '--count', '2', '--wait'], dir);
    const show = await run(['federation', 'show', ...common, '--federation', fed, '--json'], dir);

    // Assert
    expect(rounds.code, rounds.stderr).toBe(0);
    expect(rounds.stdout).toMatch(/schedule done; 2 of 2 round\(s\) committed/);
    const shown = JSON.parse(show.stdout);
    expect(shown.models).toHaveLength(3);
    expect(shown.models[2].participants).toHaveLength(2);
    expect(shown.connected.map((c: { partnerName: string }) => c.partnerName).sort()).toEqual(['brand-a', 'brand-b']);
    expect(shown.connected.find((c: { partnerName: string }) => c.partnerName === 'brand-a').numExamples).toBe(1000);
    // A bad operator token is refused with a clear message.
    const denied = await run(['federation', 'show', '--coordinator', url, '--token', 'nope', '--federation', fed], dir);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/invalid token|not a JWT|Invalid Compact JWS/i);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}, 900_000);
