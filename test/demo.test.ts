/**
 * `fedmart demo` — the README's main job — run as a user runs it, in a
 * fresh directory: real coordinator, one OS process per partner, real data.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

it('fedmart demo completes a federation of partner processes and prints the comparison', async () => {
  const cwd = await mkdtemp(path.join(tmpdir(), 'fedmart-demo-'));
  try {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'demo', '--exit', '--port', '0', '--rounds', '5'], { cwd, timeout: 280_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ML backend: (node|wasm|cpu)/);
    expect(r.stdout.match(/started partner-\d as process \d+/g)).toHaveLength(4);
    expect(r.stdout.match(/^\d+\s+committed\s+4\s/gm)).toHaveLength(5);
    const fed = /federated \(round [1-5] of 5\)\s+([\d.]+)/.exec(r.stdout);
    const local = /local-only \(mean of 4\)\s+([\d.]+)/.exec(r.stdout);
    const central = /centralized \(pooled data\)\s+([\d.]+)/.exec(r.stdout);
    const reference = /reference \(L2 logistic IRLS\)\s+([\d.]+)/.exec(r.stdout);
    expect(fed && local && central && reference, r.stdout).toBeTruthy();
    expect(r.stdout).toMatch(/nothing was chosen on it/);
    expect(Number(fed![1])).toBeGreaterThan(0.7);
    expect(Number(fed![1])).toBeGreaterThan(Number(local![1]));
    // The run left a real SQLite database with the committed rounds and model versions.
    const db = new Database(path.join(cwd, '.fedmart', 'fedmart.db'), { readonly: true });
    expect((db.prepare("select count(*) n from rounds where phase = 'committed'").get() as { n: number }).n).toBe(5);
    expect((db.prepare('select count(*) n from model_versions').get() as { n: number }).n).toBe(6);
    db.close();
    expect((await readdir(path.join(cwd, '.fedmart'))).sort()).toEqual(expect.arrayContaining(['demo', 'fedmart.db', 'operator.token', 'signing-key.jwk']));
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}, 300_000);
