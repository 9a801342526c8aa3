/**
 * Scoring through a split NN with embedding DP releases the feature holders' noised embeddings of the
 * scored customers once more. Each feature holder charges that release (one Gaussian step at q = 1 per
 * scored row) to its own ledger, beside the training round's 2E steps, and with `--max-epsilon` refuses a
 * scoring request that would pass it, before anything is sent. Real coordinator, three party processes,
 * real bank data; ε checked against an independent recomputation (closed-form RDP of the Gaussian
 * mechanism, Mironov 2017; conversion of Balle et al. 2020 Thm 21).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { independentEpsilon } from './gaussian-epsilon.ts';
import { startVerticalDemo, type VerticalDemo } from '../cli/vertical-demo.ts';
import type { PartyDpLedger } from '../cli/vertical-dp-ledger.ts';

const HANG = 900_000;
const SIGMA = 2;
const EPOCHS = 2;
let demo!: VerticalDemo;
let dir = '';

// brand-a may score once more after training (2E + 1 steps) but not twice (2E + 2).
const CAP = (independentEpsilon(SIGMA, 2 * EPOCHS + 1, 1e-5) + independentEpsilon(SIGMA, 2 * EPOCHS + 2, 1e-5)) / 2;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-vpredict-dp-'));
  demo = await startVerticalDemo({
    dataDir: dir, model: 'splitnn', epochs: EPOCHS, rows: 2000, batchSize: 256, learningRate: 0.01, pingTimeoutMs: 180_000,
    specOverrides: { protections: { embeddingDp: { noiseMultiplier: SIGMA } } }, partyArgs: { 'brand-a': ['--max-epsilon', String(CAP)] },
  });
}, HANG);
afterAll(async () => {
  await demo?.stop();
  await rm(dir, { recursive: true, force: true });
}, HANG);

const ledgerOf = async (party: string) => JSON.parse(await readFile(path.join(demo.partyDirs[party]!, 'vertical', demo.federation, 'embedding-dp-ledger.json'), 'utf8')) as PartyDpLedger;

it('a predict run charges each feature holder one more release, and --max-epsilon refuses the next', async () => {
  const r1 = await demo.round();
  expect(r1.phase, r1.reason ?? '').toBe('committed');
  for (const p of ['brand-a', 'brand-b']) expect((await ledgerOf(p)).entries.map((e) => [e.kind, e.steps])).toEqual([['train', 2 * EPOCHS]]);

  const ids = demo.sharedTestIds().slice(0, 20);
  const served = await demo.api.post<{ p: number[] }>(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids });
  expect(served.p).toHaveLength(20);
  for (const p of ['brand-a', 'brand-b']) {
    const l = await ledgerOf(p);
    expect(l.entries.map((e) => [e.kind, e.round, e.steps, e.rows])).toEqual([['train', 1, 2 * EPOCHS, expect.any(Number)], ['predict', 1, 1, 20]]);
    expect(Math.abs(l.entries[1]!.epsilonAfter - independentEpsilon(SIGMA, 2 * EPOCHS + 1, 1e-5))).toBeLessThan(1e-9);
  }
  expect(await readFile(`${demo.partyDirs['brand-a']}.log`, 'utf8')).toMatch(/released noised embeddings of 20 customer\(s\); embedding-DP epsilon now [\d.]+ \(delta 0\.00001\) after 5 Gaussian step\(s\)/);

  // The next scoring request would pass brand-a's --max-epsilon: refused, and nothing more charged to brand-a.
  await expect(demo.api.post(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids })).rejects.toThrow(/embedding-DP budget: this scoring request would bring this party's customers to epsilon [\d.]+ .*above --max-epsilon/);
  expect((await ledgerOf('brand-a')).entries).toHaveLength(2);
}, HANG);
