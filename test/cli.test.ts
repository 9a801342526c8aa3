/**
 * The `fedmart` CLI as a user runs it: a real process, real files, real
 * exit codes and messages (never a bare stack trace).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bankMarketingPath } from '../cli/datasets.ts';
import { startFixture } from './helpers.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const BANK = bankMarketingPath('small');

function run(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code?: unknown }).code as number) : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const expectNoStack = (s: string) => expect(s).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);

// Each case spawns real `fedmart` processes; on a loaded 2-core machine that takes minutes. The limit is a hang guard, not a speed budget.
describe('fedmart CLI', { timeout: 600_000 }, () => {
  it('--help lists every subcommand with an example', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['demo', 'coordinator', 'partner', 'simulate', 'bench']) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(r.stdout.match(/e\.g\. fedmart/g)!.length).toBeGreaterThanOrEqual(5);
  });

  it('explains bad input and exits non-zero', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['simulate', '--csv', BANK, '--partition-by', 'job'], /missing --label/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'nope', '--partition-by', 'job'], /column "nope" not found.*--label/s],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'job', '--partition-by', 'marital'], /exactly two distinct non-empty values.*--positive/s],
      [['simulate', '--csv', path.join(dir, 'missing.csv'), '--label', 'y', '--partition-by', 'job'], /no such file.*missing\.csv|missing\.csv.*no such file/s],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--strategy', 'magic'], /unknown strategy "magic"; choose one of: fedavg, fedprox/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--rounds', 'ten'], /--rounds must be an integer/],
      [['simulate', '--csv', BANK, '--label', 'y', '--partition-by', 'job', '--bogus'], /Unknown option '--bogus'/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--grid', '32/fast'], /--grid entry "32\/fast" is not hidden\/learningRate\/l2/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--dp-baselines'], /--dp-baselines needs --dp record/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--dp', 'record', '--epsilon', '4', '--grid', 'default'], /--grid cannot be combined with --dp/],
      [['bench', 'warp'], /unknown benchmark "warp"/],
      [['partner', '--coordinator', 'http://127.0.0.1:9', '--token', 'abc', '--data', BANK], /not a JWT/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(cases[i]![1]);
      expectNoStack(r.stderr);
    });
  }, 300_000); // 13 CLI processes at once: generous for a loaded machine, still catches a hang

  it('names the full subcommand in library errors, and takes or explains negative flag values in one line', async () => {
    const missing = path.join(dir, 'missing.csv');
    const cases: [string[], RegExp][] = [
      // A library's message ("cannot read …") is prefixed with the subcommand the user typed, not just "scenario".
      [['scenario', 'text', 'simulate', '--csv', missing, '--text', 't', '--label', 'l'], /^fedmart scenario text simulate: cannot read .*missing\.csv: no such file; check the --csv path\n$/],
      [['scenario', 'pricing', 'simulate', '--csv', missing, '--price', 'p', '--quantity', 'q', '--partners', '3'], /^fedmart scenario pricing simulate: cannot read .*missing\.csv: no such file/],
      // A negative number after a flag is its value: checked by the flag's own range (before the data is read) …
      [['scenario', 'text', 'simulate', '--csv', missing, '--text', 't', '--label', 'l', '--norm-factor', '-1'], /^fedmart scenario text simulate: --norm-factor must be a number from 1 to 1000000, got "-1"\n$/],
      [['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--partition-by', 'job', '--rounds', '-3'], /^fedmart simulate: --rounds must be an integer from 1 to 10000, got "-3"\n$/],
      [['privacy', 'epsilon', '--sigma', '-1.5', '--q', '0.01', '--steps', '10', '--delta', '1e-5'], /^fedmart privacy epsilon: --sigma must be a noise multiplier > 0 .*got "-1\.5"\n$/],
      // … and accepted where negatives are valid (--min-rating -1 reaches the file).
      [['scenario', 'recommendation', 'simulate', '--csv', missing, '--user', 'u', '--item', 'i', '--min-rating', '-1'], /^fedmart scenario recommendation simulate: cannot read .*missing\.csv/],
      // A non-number starting with "-" where a value belongs: one line naming the flag and the fix.
      [['simulate', '--csv', BANK, '--label', 'y', '--partition-by', 'job', '--rounds', '-x'], /^fedmart simulate: --rounds needs a value, and the next argument starts with "-"; if that is the value, write --rounds=VALUE; run "fedmart simulate --help" for the flags\n$/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr, cases[i]![0].join(' ')).toMatch(cases[i]![1]);
      expectNoStack(r.stderr);
    });
  }, 300_000);

  it('reports a port in use', async () => {
    await using fx = await startFixture();
    const r = await run(['coordinator', '--port', String(fx.coord.port), '--data-dir', path.join(dir, 'coord')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already in use; pass --port/);
  });

  it('reports an unreadable or malformed CSV', async () => {
    const ragged = path.join(dir, 'ragged.csv');
    await writeFile(ragged, 'a,b,y\n1,2,yes\n3,no\n');
    const r = await run(['simulate', '--csv', ragged, '--label', 'y', '--partition-by', 'a']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/line 3 has 2 fields, the header has 3/);
    expectNoStack(r.stderr);
  });

  it('simulate --json prints exactly one JSON object with the comparison', async () => {
    const r = await run(['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--positive', 'yes', '--partition-by', 'job', '--partners', '3', '--rounds', '4', '--drop', 'duration', '--grid', '0/0.01/1e-4;8/0.003/1e-4', '--explain', '--save-model', path.join(dir, 'model.json'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const j = JSON.parse(lines[0]!);
    expect(j).toMatchObject({ task: 'binary', federated: { rounds: 4 }, backend: expect.stringMatching(/^(node|wasm|cpu)$/) });
    expect(j.partners).toHaveLength(3);
    for (const p of j.partners) expect(p).toMatchObject({ id: expect.any(String), rows: expect.any(Number), positiveRate: expect.any(Number) });
    expect(j.federated.auc).toBeGreaterThan(0.6);
    expect(j.localOnly.aucMin).toBeLessThanOrEqual(j.localOnly.auc);
    expect(j.localOnly.aucMax).toBeGreaterThanOrEqual(j.localOnly.auc);
    expect(j.centralized.auc).toBeGreaterThan(0.6);
    expect(j.reference.auc).toBeGreaterThan(0.6);
    expect(j.reference.converged).toBe(true);
    // One rule, one grid, one budget and one batch for every arm; validation and test reported apart.
    expect(j.selection).toMatchObject({ metric: 'validation log loss', grid: ['logistic lr 0.01 l2 0.0001', 'mlp[8] lr 0.003 l2 0.0001'], budget: { settings: 2, epochs: 4 } });
    expect(j.federated.tried).toHaveLength(2);
    expect(j.centralized.tried).toHaveLength(2);
    for (const arm of [j.federated, j.centralized, ...j.localOnly.partners]) {
      expect(arm.selected.batchSize).toBe(j.selection.budget.batchSize);
      expect(arm.validation.loss).toBeGreaterThan(0);
    }
    expect(j.federated.selected.round).toBeGreaterThanOrEqual(1);
    expect(j.federated.selected.round).toBeLessThanOrEqual(4);
    expect(j.centralized.selected.epoch).toBeLessThanOrEqual(4);
    expect(j.centralized.private).toBe(false);
    // --explain: importance by original column; --save-model: a file predict can score with.
    expect(j.explanations.method).toBe('permutation-importance');
    expect(j.explanations.global.map((g: { feature: string }) => g.feature)).toContain('contact');
    expect(j.explanations.attributions.maxCompletenessError).toBeLessThan(0.01);
    const saved = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(saved.format).toBe('fedmart-model/1');
    expect(saved.metadata.metrics.test_auc).toBe(j.federated.auc);
    expect(j.seconds).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/backend: /);
    expect(r.stderr).toMatch(/round 4 committed/);
  });

  it('simulate --dp record --dp-baselines trains every arm with DP-SGD at the same epsilon and says so', async () => {
    const r = await run(['simulate', '--csv', BANK, '--sep', ';', '--label', 'y', '--positive', 'yes', '--partition-by', 'job', '--partners', '3', '--rounds', '2', '--drop', 'duration', '--dp', 'record', '--epsilon', '4', '--dp-baselines', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim());
    expect(j.selection.grid).toHaveLength(1);
    expect(j.selection.note).toMatch(/each setting tried would spend privacy/);
    expect(j.localOnly.private).toBe(true);
    expect(j.centralized.private).toBe(true);
    expect(j.centralized.dp.noiseMultiplier).toBeGreaterThan(0);
    expect(j.privacy.baselines).toMatch(/DP-SGD at the same epsilon target 4/);
    expect(j.privacy.epsilon).toBeLessThanOrEqual(4);
  });

  it('bench aggregate --json prints the figures beside the plain-sum baseline', async () => {
    const r = await run(['bench', 'aggregate', '--clients', '4', '--params', '10000', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ clients: 4, params: 10000, correct: true, floatsPerSecond: expect.any(Number), plainFloatsPerSecond: expect.any(Number) });
    expect(j.maxAbsError).toBeLessThan(1e-6);
    expect(j.floatsPerSecond).toBeGreaterThan(0);
  });
});
