/**
 * Issue 16 acceptance: a vertical federation between three real processes
 * (`node bin/fedmart.js partner …`: the platform as label holder, brand-a and
 * brand-b as feature holders) on the UCI Bank Marketing data split by
 * columns, each process holding only its own columns and customers, 80 % of
 * customers shared. Create (REST and the CLI's validation), join, align by
 * PSI through the relay, train LR (CKKS) and split NN in coordinator-driven
 * rounds, commit with lineage, predict through the parties; kill -9 of a
 * feature holder mid-round fails the round with the reason and, after it
 * restarts, the next round commits. 20 epochs of each model, as the issue
 * asks, on a 10,000-customer sample so that it runs in minutes on a loaded
 * machine; the README has the full-data runs. The centralized reference is
 * the same algorithm on the joined columns (same rows, seeds, batches,
 * learning rate, epochs; client-node/src/vertical/centralized.ts), so the
 * 0.01 bound holds by construction, not by the sample's luck: what remains
 * is the protocol's own approximation (CKKS, flooding).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { startVerticalDemo, type VerticalDemo } from '../cli/vertical-demo.ts';
import { encodeWithPart, partPath, type VerticalPartFile } from '../cli/vertical-party.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
/** Heartbeat guard against a starved process on the shared 2-core machine (cli/vertical-demo.ts). */
const LOAD_GUARD = 180_000;
const HANG = 1_800_000;
const ROWS = 10_000;

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** Independent reference for LR: p = σ(Σ_k x_k·w_k + b) from each party's saved part and its own file. */
async function lrReference(demo: VerticalDemo, round: number, ids: readonly string[]): Promise<number[]> {
  const z = new Float64Array(ids.length);
  for (const p of Object.keys(demo.partyFiles)) {
    const file = JSON.parse(await readFile(partPath(demo.partyDirs[p]!, demo.federation, round), 'utf8')) as VerticalPartFile;
    const part = file.part as { kind: 'lr'; w: number[]; bias?: number };
    const enc = encodeWithPart(await readTableFile(demo.partyFiles[p]!), file, demo.spec.idColumn, demo.spec.idNormalisation);
    const pos = new Map(enc.ids.map((id, i) => [id, i]));
    ids.forEach((id, i) => {
      const r = pos.get(id)!;
      for (let j = 0; j < enc.d; j++) z[i]! += enc.x[r * enc.d + j]! * part.w[j]!;
      z[i]! += part.bias ?? 0;
    });
  }
  return Array.from(z, (v) => 1 / (1 + Math.exp(-v)));
}

/**
 * Start the coordinator and the party processes for one describe block, and
 * stop them after it; the parties' logs are kept when the block did not pass.
 */
function partyProcesses(prefix: string, opts: Omit<Parameters<typeof startVerticalDemo>[0], 'dataDir'>, started: (d: VerticalDemo, dir: string) => void): { passed(): void } {
  let dir = '';
  let demo: VerticalDemo | undefined;
  let ok = false;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
    demo = await startVerticalDemo({ dataDir: dir, ...opts });
    started(demo, dir);
  }, HANG);
  afterAll(async () => {
    await demo?.stop();
    if (ok) await rm(dir, { recursive: true, force: true });
    else console.error(`vertical federation test: party logs kept in ${dir}/parties/*.log`);
  }, HANG);
  return { passed: () => { ok = true; } };
}

describe('vertical federation between real processes: LR', () => {
  let demo!: VerticalDemo;
  let dir = '';
  const run = partyProcesses('fedmart-vfed-', { model: 'lr', epochs: 20, rows: ROWS, batchSize: 2048, learningRate: 0.1, pingTimeoutMs: LOAD_GUARD }, (d, at) => { demo = d; dir = at; });

  it('refuses a bad vertical spec at creation (REST and CLI)', async () => {
    const good = demo.spec;
    const bad = { ...good, featureHolders: [{ party: 'brand-a', columns: ['housing', 'age'] }, good.featureHolders[1]] };
    await expect(demo.api.post('/api/v1/federations', { name: 'bad', config: { mode: 'vertical', vertical: bad, model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 } } }))
      .rejects.toThrow(/column "age" is declared by both platform and brand-a/);
    const r = await cli(['federation', 'create', '--mode', 'vertical', '--name', 'x', '--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken,
      '--label-holder', 'platform:age,job', '--label', 'y', '--parties', 'brand-a:housing;brand-b:job', '--id', 'customer_id', '--model', 'lr']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/column "job" is declared by both platform and brand-b/);
  }, HANG);

  it('aligns, trains, commits with lineage, and predicts through the parties; kill -9 fails a round, the next commits', async () => {
    const r1 = await demo.round();
    expect(r1.phase, r1.reason ?? '').toBe('committed');
    const m = r1.metrics!;
    const testIds = demo.sharedTestIds();
    // PSI found exactly the customers shared by all three (training split), and it is recorded with its time.
    const trainShared = ROWS * 0.8 - testIds.length;
    expect(m.psi_intersection).toBe(trainShared);
    expect(m.psi_seconds).toBeGreaterThan(0);
    expect(m.test_rows).toBe(testIds.length);
    const central = await demo.centralizedAuc(testIds);
    console.log(`vertical ${demo.spec.model}, ${demo.spec.epochs} epochs: AUC ${m.auc!.toFixed(4)}, label holder alone ${m.label_holder_only_auc!.toFixed(4)}, centralized ${central.toFixed(4)} on ${testIds.length} shared test ids`);
    expect(m.auc).toBeGreaterThan(m.label_holder_only_auc!);
    expect(Math.abs(m.auc! - central)).toBeLessThan(0.01);

    // Lineage: parties and the SHA-256 of each part as it sits on that party's disk.
    const models = (await demo.api.get<{ models: { version: number; spec: { kind: string; parts: { party: string; sha256: string }[] }; metrics: Record<string, number> }[] }>(`/api/v1/federations/${demo.federation}/models`)).models;
    const v1 = models.at(-1)!;
    expect(v1.spec.kind).toBe('vertical');
    for (const part of v1.spec.parts) {
      const bytes = await readFile(partPath(demo.partyDirs[part.party]!, demo.federation, r1.number));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(part.sha256);
    }
    const show = await cli(['federation', 'show', '--federation', demo.federation, '--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken]);
    expect(show.stdout).toContain(`round 1: PSI ${trainShared} shared customers`);

    // predict for 100 ids through the parties (the CLI) vs the in-process model.
    const ids = testIds.slice(0, 100);
    const idFile = path.join(dir, 'ids.txt');
    await writeFile(idFile, ids.join('\n'));
    const pr = await cli(['predict', '--federation', demo.federation, '--ids', idFile, '--explain', '--json', '--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken]);
    expect(pr.code, pr.stderr).toBe(0);
    const served = JSON.parse(pr.stdout) as { p: number[]; contributions: Record<string, number[]> };
    const ref = await lrReference(demo, r1.number, ids);
    expect(served.p).toHaveLength(100);
    expect(Math.max(...served.p.map((p, i) => Math.abs(p - ref[i]!)))).toBeLessThan(1e-6);
    // --explain: each party's additive logit contribution; they sum to the logit.
    for (let i = 0; i < 100; i++) {
      const zsum = Object.values(served.contributions).reduce((s, c) => s + c[i]!, 0);
      expect(Math.abs(1 / (1 + Math.exp(-zsum)) - served.p[i]!)).toBeLessThan(1e-9);
    }

    // kill -9 of a feature holder mid-round (after PSI, during training).
    const r2 = await demo.round(async (phase) => {
      if (phase === 'train') await demo.kill9('brand-b');
    });
    expect(r2.phase).toBe('failed');
    expect(r2.reason).toMatch(/brand-b/);
    // Scoring with a party offline: a clear error naming it.
    await expect(demo.api.post(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids: ids.slice(0, 3) })).rejects.toThrow(/party brand-b is offline/);
    await demo.startParty('brand-b');
    const r3 = await demo.round();
    expect(r3.phase, r3.reason ?? '').toBe('committed');
    expect(r3.number).toBe(r2.number + 1);
    const again = await demo.api.post<{ p: number[]; version: number }>(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids: ids.slice(0, 10) });
    expect(again.version).toBe(v1.version + 1);
    const ref3 = await lrReference(demo, r3.number, ids.slice(0, 10));
    expect(Math.max(...again.p.map((p, i) => Math.abs(p - ref3[i]!)))).toBeLessThan(1e-6);
    run.passed();
  }, HANG);
});

describe('vertical federation between real processes: split NN', () => {
  let demo!: VerticalDemo;
  const run = partyProcesses('fedmart-vfed-snn-', { model: 'splitnn', epochs: 20, rows: ROWS, batchSize: 256, learningRate: 0.01, pingTimeoutMs: LOAD_GUARD }, (d) => (demo = d));

  it('trains a split NN across the processes and predicts through them like the in-process model', async () => {
    const r = await demo.round();
    expect(r.phase, r.reason ?? '').toBe('committed');
    const m = r.metrics!;
    const testIds = demo.sharedTestIds();
    const central = await demo.centralizedAuc(testIds);
    console.log(`vertical ${demo.spec.model}, ${demo.spec.epochs} epochs: AUC ${m.auc!.toFixed(4)}, label holder alone ${m.label_holder_only_auc!.toFixed(4)}, centralized ${central.toFixed(4)} on ${testIds.length} shared test ids`);
    expect(m.auc).toBeGreaterThan(m.label_holder_only_auc!);
    expect(Math.abs(m.auc! - central)).toBeLessThan(0.01);
    const ids = testIds.slice(0, 100);
    const served = await demo.api.post<{ p: number[] }>(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids });
    const local = await demo.inProcessScores(r.number, ids);
    expect(Math.max(...served.p.map((p, i) => Math.abs(p - local[i]!)))).toBeLessThan(1e-6);
    run.passed();
  }, HANG);
});

it('fedmart demo --mode vertical --exit --json prints the issue\'s JSON', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-vdemo-'));
  try {
    const r = await cli(['demo', '--mode', 'vertical', '--exit', '--json', '--rows', '3000', '--epochs', '3', '--batch-size', '512', '--data-dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { processes: number; psi: { intersection: number; seconds: number }; vertical: { auc: number }; labelHolderOnly: { auc: number }; centralized: { auc: number }; predict: { ids: number; maxAbsDiff: number } };
    expect(Object.keys(j)).toEqual(['processes', 'psi', 'vertical', 'labelHolderOnly', 'centralized', 'predict']);
    expect(Object.keys(j.psi)).toEqual(['intersection', 'seconds']);
    expect(j.processes).toBe(3);
    expect(j.psi.intersection).toBeGreaterThan(1500);
    expect(j.psi.seconds).toBeGreaterThan(0);
    expect(j.vertical.auc).toBeGreaterThan(j.labelHolderOnly.auc);
    expect(j.centralized.auc).toBeGreaterThan(0.5);
    expect(j.predict).toEqual({ ids: 100, maxAbsDiff: expect.any(Number) });
    expect(j.predict.maxAbsDiff).toBeLessThan(1e-6);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, HANG);
