/**
 * Issue 16 item 1, "embedding noise for split NN, accounted if used": a split-NN federation between three
 * real processes with protections.embeddingDp. Each feature holder clips and noises every embedding row it
 * releases and trains its bottom model with DP-SGD (shared/src/vertical-embedding-dp.ts); the coordinator
 * charges each feature holder 2E Gaussian steps at q = 1 per round to the privacy ledger. The ledger's ε is
 * checked against an independent recomputation (closed-form RDP of the Gaussian mechanism, Mironov 2017,
 * converted with Balle et al. 2020 Thm 21 over the same orders), `federation show` prints it, and a
 * compliance cap refuses the next vertical round before any training.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { independentEpsilon } from './gaussian-epsilon.ts';
import type { PrivacyReport } from '@fedmart/shared/api-views';
import { ApiClient } from '../cli/api-client.ts';
import { startVerticalDemo, type VerticalDemo } from '../cli/vertical-demo.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const HANG = 900_000;
const SIGMA = 2;
const EPOCHS = 2;
let demo!: VerticalDemo;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-vembdp-'));
  demo = await startVerticalDemo({ dataDir: dir, model: 'splitnn', epochs: EPOCHS, rows: 2000, batchSize: 256, learningRate: 0.01, pingTimeoutMs: 180_000, specOverrides: { protections: { embeddingDp: { noiseMultiplier: SIGMA } } } });
}, HANG);
afterAll(async () => {
  await demo?.stop();
  await rm(dir, { recursive: true, force: true });
}, HANG);

it('charges each feature holder its embedding releases, shows ε, and a cap refuses the next round', async () => {
  const r1 = await demo.round();
  expect(r1.phase, r1.reason ?? '').toBe('committed');
  const report = await demo.api.get<PrivacyReport>(`/api/v1/federations/${demo.federation}/privacy`);
  const expected = independentEpsilon(SIGMA, 2 * EPOCHS, 1e-5);
  expect(expected).toBeGreaterThan(1);
  const total = (name: string | null) => report.totals.find((x) => x.level === 'record' && (name === null ? x.scope === 'federation' : x.partnerName === name))!;
  for (const fh of ['brand-a', 'brand-b', null]) {
    expect(total(fh).rounds, String(fh)).toBe(1);
    expect(Math.abs(total(fh).epsilon - expected), String(fh)).toBeLessThan(1e-9);
  }
  expect(total('platform').rounds).toBe(0); // the label holder releases nothing to this accountant
  const rows = report.history.filter((h) => h.kind === 'spent' && h.partnerId !== null).sort((a, b) => (a.partnerName! < b.partnerName! ? -1 : 1));
  expect(rows.map((h) => [h.partnerName, h.q, h.steps, h.sigma, h.committed, h.modelVersion])).toEqual([
    ['brand-a', 1, 2 * EPOCHS, SIGMA, true, 1], ['brand-b', 1, 2 * EPOCHS, SIGMA, true, 1],
  ]);
  expect(report.verification.ok, report.verification.problems.join('; ')).toBe(true);
  const show = await new Promise<string>((resolve) => execFile(process.execPath, [BIN, 'federation', 'show', '--federation', demo.federation, '--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken], (_e, out) => resolve(out)));
  expect(show).toContain(`privacy (record level) brand-a: epsilon ${expected.toFixed(4)} (delta 0.00001) over 1 charge(s)`);

  // A cap between one and two rounds' ε refuses round 2 before any training.
  const { token } = await demo.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
  await new ApiClient(demo.coordinator.url, token).request('PUT', `/api/v1/federations/${demo.federation}/privacy/caps`, { level: 'record', epsilon: expected * 1.2 });
  const r2 = await demo.round();
  expect(r2.phase).toBe('failed');
  expect(r2.reason).toMatch(/privacy budget exceeded: round 2 would bring the federation to record-level epsilon .* above the record-level cap of the federation/);
  const after = await demo.api.get<PrivacyReport>(`/api/v1/federations/${demo.federation}/privacy`);
  expect(after.refused.length).toBeGreaterThan(0);
  expect(after.history.filter((h) => h.kind === 'spent')).toHaveLength(3); // nothing spent by the refused round
}, HANG);
