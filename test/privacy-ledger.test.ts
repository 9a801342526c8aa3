/**
 * The privacy ledger end to end: real coordinator, real partner agents
 * running DP-SGD / DP-FedAvg over real sockets on the UCI bank data.
 * - every committed round is charged, in the model version's transaction,
 *   and the partners' own accountants agree with the ledger;
 * - a cap that the next round would exceed refuses it before any training,
 *   visibly, with nothing committed;
 * - after a restart (file-backed SQLite) the ledger still agrees with the
 *   committed model versions and recomposes exactly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { computeEpsilon } from '@fedmart/shared/dp/rdp';
import { recordLevelCharge } from '@fedmart/shared/dp/plan';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { privacyReport, verifyPrivacyLedger } from '@fedmart/coordinator/privacy';
import { ApiClient } from '../cli/api-client.ts';
import { bankPartners, connectBankPartners, modelFor, startFixture } from './helpers.ts';

await initBackend();

const LOCAL = { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 };

describe('privacy ledger', () => {
  it('charges record-level DP-SGD per partner, agrees with the partners, and refuses a round that would break a cap', async () => {
    // Arrange
    const exp = await bankPartners();
    await using fx = await startFixture();
    const dp = { level: 'record' as const, noiseMultiplier: 1.1, clip: 1, delta: 1e-5 };
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const agents = await connectBankPartners(fx, fed);

    // Act: two private rounds
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 2).done;

    // Assert: committed, charged, and the partners' reports match the coordinator's ledger
    expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed']);
    const report = (await privacyReport(fx.coord.store, fed));
    expect(report.verification).toMatchObject({ ok: true, committedRounds: 2 });
    expect(report.history.filter((h) => h.kind === 'spent')).toHaveLength(2 * 4);
    const partnerTotals = report.totals.filter((x) => x.scope === 'partner');
    expect(partnerTotals).toHaveLength(3);
    for (const t of partnerTotals) {
      const p = exp.partners.find((x) => x.id === t.partnerName)!;
      const { q, steps } = recordLevelCharge({ batchSize: 64, localEpochs: 1, numExamples: p.data.trainN });
      const expected = computeEpsilon({ q, sigma: 1.1, steps: 2 * steps, delta: 1e-5 }).epsilon;
      expect(t.epsilon).toBeCloseTo(expected, 9);
      expect(t.reportedEpsilon).toBeCloseTo(expected, 9);
      expect(t.rounds).toBe(2);
    }
    const fedTotal = report.totals.find((x) => x.scope === 'federation')!;
    expect(fedTotal.epsilon).toBeGreaterThanOrEqual(Math.max(...partnerTotals.map((x) => x.epsilon)) - 1e-12);
    expect(fedTotal.epsilon).toBeLessThan(Math.max(...partnerTotals.map((x) => x.epsilon)) * 1.05);

    // Arrange: a compliance officer caps the federation just above what is spent
    const { token } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
    const officer = new ApiClient(fx.url, token);
    const cap = Math.round((fedTotal.epsilon + 0.01) * 1000) / 1000;
    await officer.request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'record', epsilon: cap });
    const modelsBefore = fx.coord.store.listModelVersions(fed).length;
    const trainedBefore = agents.map((a) => a.roundsTrained());

    // Act: the third round would overspend
    const [refused] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert: refused visibly, before training, nothing committed
    expect(refused!.phase).toBe('failed');
    expect(refused!.reason).toMatch(/privacy budget exceeded.*record-level cap of the federation \(epsilon [\d.]+\)/);
    expect(fx.coord.store.listModelVersions(fed)).toHaveLength(modelsBefore);
    expect(agents.map((a) => a.roundsTrained())).toEqual(trainedBefore);
    const round = fx.coord.store.getRound(refused!.roundId);
    expect(round.phase).toBe('failed');
    expect(fx.coord.store.listParticipants(round.id)).toHaveLength(0); // nobody was even asked to train
    const after = (await privacyReport(fx.coord.store, fed));
    expect(after.refused).toHaveLength(1);
    expect(after.refused[0]).toMatchObject({ roundId: round.id, kind: 'refused', partnerId: null, level: 'record' });
    expect(after.refused[0]!.epsilon!).toBeGreaterThan(cap);
    expect(after.totals.find((x) => x.scope === 'federation')!.epsilon).toBeCloseTo(fedTotal.epsilon, 12); // nothing spent
    expect(fx.coord.store.listAudit(1000).some((e) => e.action === 'privacy.round.refused' && e.subject === round.id)).toBe(true);
    expect(fx.coord.store.verifyAudit().ok).toBe(true);

    // Lifting the cap lets rounds run again
    await officer.request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'record', epsilon: null });
    const [again] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(again!.phase).toBe('committed');
    await Promise.all(agents.map((a) => a.close()));
  });

  it('refuses every round of a federation without DP once any cap is set (its epsilon is unbounded)', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL });
    const { token } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
    await new ApiClient(fx.url, token).request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'partner', epsilon: 10 });
    const [o] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(o!.phase).toBe('failed');
    expect(o!.reason).toMatch(/no differential privacy.*unbounded epsilon/);
    expect(fx.coord.store.listModelVersions(fed)).toHaveLength(1);
  });

  it('partner-level DP under secure aggregation: partners add distributed noise shares at weight 1; configs that would truncate the noise are refused', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const dp = { level: 'partner' as const, noiseMultiplier: 0.5, clip: 0.2, delta: 1e-5, mode: 'distributed' as const };
    // secure aggregation's per-coordinate clip must leave room for the noise share (C + 8·σC/√minClients ≈ 0.66)
    const tight = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp, secureAggregation: { clip: 0.5 } } as never).catch((e: unknown) => e);
    expect(String(tight)).toMatch(/set secureAggregation.clip to at least 0.66/);
    const central = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp: { ...dp, mode: 'central' }, secureAggregation: { clip: 4 } } as never).catch((e: unknown) => e);
    expect(String(central)).toMatch(/noise must be added by the partners: set dp.mode to 'distributed'/);
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp, secureAggregation: { clip: 4 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const agents = await connectBankPartners(fx, fed);
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 2).done;
    expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed']);
    expect(outcomes[1]!.metrics.train_secagg_survivors).toBe(3);
    const report = (await privacyReport(fx.coord.store, fed));
    expect(report.verification.ok).toBe(true);
    const expected = computeEpsilon({ q: 1, sigma: 0.5, steps: 2, delta: 1e-5 }).epsilon;
    for (const t of report.totals) expect(t.epsilon).toBeCloseTo(expected, 9);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('after a restart, the ledger of a partner-level (DP-FedAvg, adaptive clip) federation agrees with the committed model versions', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-ledger-'));
    try {
      const exp = await bankPartners();
      const dp = { level: 'partner' as const, noiseMultiplier: 0.8, clip: 0.5, delta: 1e-5, adaptiveClip: { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 1 } };
      let fed: string;
      {
        await using fx = await startFixture(dir);
        fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
        const agents = await connectBankPartners(fx, fed);
        const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 2).done;
        expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed']);
        await Promise.all(agents.map((a) => a.close()));
      }
      // Restart on the same data dir
      await using fx = await startFixture(dir);
      const v = await verifyPrivacyLedger(fx.coord.store, fed);
      expect(v).toEqual({ ok: true, committedRounds: 2, problems: [] });
      const report = (await privacyReport(fx.coord.store, fed));
      const expected = computeEpsilon({ q: 1, sigma: 0.8, steps: 2, delta: 1e-5 }).epsilon;
      for (const t of report.totals) {
        expect(t.level).toBe('partner');
        expect(t.epsilon).toBeCloseTo(expected, 9);
      }
      const versions = fx.coord.store.listModelVersions(fed).filter((m) => m.version > 0);
      const spent = report.history.filter((h) => h.kind === 'spent');
      expect(new Set(spent.map((h) => h.modelVersion))).toEqual(new Set(versions.map((m) => m.version)));
      // the adaptive clip moved and the second round ran with the first round's next clip
      const clips = spent.filter((h) => h.partnerId === null).map((h) => h.clip!);
      expect(clips[0]).toBe(0.5);
      expect(clips[1]).toBeCloseTo(JSON.parse(versions[0]!.metrics).train_dp_next_clip, 12);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
