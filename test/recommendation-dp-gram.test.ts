/**
 * `fedmart scenario recommendation simulate --dp record --epsilon 8` on the
 * real MovieLens small (skipped with the printed reason without R/dslabs):
 * the default DP model is the item-Gram release (dp-gram.ts), two releases
 * through a real federation, charged by the coordinator's ledger as two
 * steps at q = 1 within ε. The 0.95 × non-private bar needs the
 * non-private federated arm of the same seed (20 Wide & Deep rounds, far
 * beyond a test's time), so it is measured in the README, not here.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCsv } from '@fedmart/shared/data/table';
import { movielensOrReason, rDatasetOrReason } from '../cli/datasets.ts';

const ml = movielensOrReason();
const scotch = rDatasetOrReason('scotch');
if ('reason' in scotch) console.warn(`recommendation item-Gram DP small-catalogue test skipped: ${scotch.reason}`);
if ('reason' in ml) console.warn(`recommendation item-Gram DP test skipped: ${ml.reason}`);
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 900_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

interface Out {
  scenario: string;
  partners: { id: string; users: number; interactions: number }[];
  federated: { hr10: number; ndcg10: number; hr10Full: number; auc: number };
  popularity: { hr10: number };
  protection?: string;
  privacy: { level: string; noise: string; noisePlacement: string; epsilon: number; epsilonTarget: number; delta: number; q: number; steps: number; ledgerVerified: boolean; model: string; rank: number; releases: { sensitivity: number; noiseMultiplier: number }[] };
}

describe.skipIf('reason' in ml)('recommendation simulate --dp record, item-Gram release (MovieLens small)', () => {
  it('runs both releases through the federation, by default with distributed noise under secure aggregation, reports the ledger\'s epsilon <= 8 and beats popularity', async () => {
    const base = ['scenario', 'recommendation', 'simulate', '--csv', (ml as { path: string }).path, '--user', 'userId', '--item', 'movieId', '--time', 'timestamp', '--item-features', 'genres', '--partners', '6', '--seed', '42'];
    const saved = mkdtempSync(path.join(tmpdir(), 'fedmart-gram-save-'));
    const r = await cli([...base, '--arms', 'popularity', '--dp', 'record', '--epsilon', '8', '--delta', '1e-5', '--save', saved, '--json']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Out;
    expect(out.scenario).toBe('recommendation');
    expect(out.partners).toHaveLength(6);
    expect(out.partners.reduce((a, p) => a + p.users, 0)).toBe(671);
    for (const k of ['hr10', 'ndcg10', 'hr10Full', 'auc'] as const) expect(Number.isFinite(out.federated[k])).toBe(true);
    expect(out.privacy.model).toBe('gram');
    expect(out.privacy.level).toBe('record');
    expect(out.privacy.epsilonTarget).toBe(8);
    expect(out.privacy.epsilon).toBeGreaterThan(7.9); // the ledger charged both releases…
    expect(out.privacy.epsilon).toBeLessThanOrEqual(8); // …within the budget
    expect(out.privacy.delta).toBe(1e-5);
    expect(out.privacy.steps).toBe(2);
    expect(out.privacy.q).toBe(1);
    expect(out.privacy.ledgerVerified).toBe(true);
    expect(out.privacy.releases.map((x) => x.sensitivity)).toEqual([1, Math.round(Math.sqrt(1 + 1 / (2 * (3 + 2 * Math.SQRT2))) * 1e6) / 1e6]);
    expect(out.privacy.noise).toBe('6 shares under secure aggregation');
    // No --secure-agg on the command line: distributed noise is the default with 3+ brands and turns secure aggregation on.
    expect(out.privacy.noisePlacement).toBe('distributed');
    expect(out.protection).toMatch(/^secure aggregation/);
    expect(r.stderr).toMatch(/dp noise: distributed — default with 6 brands/);
    // Measured 0.6632 against popularity 0.5455 at this seed (README); scoring by the released counts alone gives ≈ popularity.
    expect(out.federated.hr10).toBeGreaterThanOrEqual(out.popularity.hr10 + 0.08);
    expect(out.privacy.rank).toBeGreaterThan(0);
    // The saved item-Gram model serves a brand's customers through fedmart recommend (post-processing: no extra ε).
    const file = JSON.parse(readFileSync(path.join(saved, 'model.json'), 'utf8')) as { format: string; gram: { rank: number; top: number }; privacy: { epsilon: number; delta: number } };
    expect([file.format, file.gram.rank, file.gram.top, file.privacy.epsilon, file.privacy.delta]).toEqual(['fedmart-recommendation-gram/1', out.privacy.rank, 3000, out.privacy.epsilon, 1e-5]);
    const brand = parseCsv(readFileSync(path.join(saved, 'partner-5.csv'), 'utf8'));
    const [ui, ii] = [brand.columns.indexOf('userId'), brand.columns.indexOf('movieId')];
    const customer = brand.rows[0]![ui]!;
    const had = new Set(brand.rows.filter((x) => x[ui] === customer).map((x) => x[ii]!));
    const rec = await cli(['recommend', '--model', path.join(saved, 'model.json'), '--data', path.join(saved, 'partner-5.csv'), '--user', customer, '--k', '10', '--json']);
    expect(rec.stderr).toBe('');
    const answer = JSON.parse(rec.stdout) as { user: string; model: string; recommendations: { item: string; score: number; reason: { becauseOf: string[] } }[] };
    expect(answer.user).toBe(customer);
    expect(answer.recommendations).toHaveLength(10);
    expect(answer.recommendations.filter((x) => had.has(x.item))).toEqual([]);
    expect(answer.recommendations.every((x, i) => i === 0 || x.score <= answer.recommendations[i - 1]!.score)).toBe(true);
    for (const x of answer.recommendations) expect(x.reason.becauseOf.length > 0 && x.reason.becauseOf.every((h) => had.has(h))).toBe(true);
    rmSync(saved, { recursive: true, force: true });
    for (const [args, msg] of [
      [['--dp', 'record', '--epsilon', '8', '--dp-rank', '0'], /--dp-rank/],
      [['--dp-top', '500'], /--dp-top sets the item-Gram release; it needs --dp record/],
      [['--dp', 'record', '--epsilon', '8', '--clip', '2'], /--clip sets DP-SGD; it needs --dp-model tower or free/],
      [['--dp', 'record', '--epsilon', '8', '--dp-noise', 'shared'], /--dp-noise must be "distributed"/],
      [['--partners', '2', '--dp', 'record', '--epsilon', '8', '--dp-noise', 'distributed'], /--dp-noise distributed needs secure aggregation over at least 3 brands[^]*--partners 2/],
      [['--dp-noise', 'local'], /--dp-noise sets the item-Gram release; it needs --dp record/],
      [['--dp', 'record', '--epsilon', '8', '--dp-noise', 'distributed', '--he'], /cannot be combined with --he/],
    ] as const) {
      const e = await cli([...base, '--arms', 'none', ...args]);
      expect(e.code).not.toBe(0);
      expect(e.stderr).toMatch(msg);
    }
  }, 1_800_000);
});

describe.skipIf('reason' in scotch)('recommendation simulate --dp record on a small catalogue (bayesm Scotch: 21 brands, no ratings, times or features)', () => {
  it('caps the default rank at N/20, so the DP model ranks like the released popularity instead of worse than chance', async () => {
    const r = await cli(['scenario', 'recommendation', 'simulate', '--csv', (scotch as { path: string }).path, '--user', 'respondent', '--item', 'brand', '--arms', 'popularity', '--dp', 'record', '--epsilon', '8', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Out;
    expect(out.privacy.rank).toBe(1); // ⌊21/20⌋
    // Rank 12 (the MovieLens default) scored HR@10 0.59 and AUC 0.47 here, against popularity 0.92.
    expect(out.federated.auc).toBeGreaterThan(0.6);
    expect(out.federated.hr10).toBeGreaterThanOrEqual(0.95 * out.popularity.hr10);
    // An explicit --dp-rank is used as given.
    const k3 = await cli(['scenario', 'recommendation', 'simulate', '--csv', (scotch as { path: string }).path, '--user', 'respondent', '--item', 'brand', '--arms', 'none', '--dp', 'record', '--epsilon', '8', '--dp-rank', '3', '--json']);
    expect(k3.code, k3.stderr).toBe(0);
    expect((JSON.parse(k3.stdout) as Out).privacy.rank).toBe(3);
  }, 600_000);
});
