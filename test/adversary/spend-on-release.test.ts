/**
 * Issue 8, item 6 — spend is charged when it is released.
 *
 * A DP update costs privacy the moment it leaves the partner, whether or not
 * a model version comes of it. Rounds are failed after uploads (the
 * coordinator aborts them once every update arrived, or at the unmasking
 * stage of secure aggregation); the ledger must still charge them (marked
 * not committed), agree with every partner's own accountant, and refuse the
 * round that would take the federation past a cap that only failing rounds
 * were spending toward. Without the fix failed rounds charged nothing: the
 * ledger fell behind the partners and caps could be walked past.
 */
import { describe, expect, it } from 'vitest';
import type { PartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { computeEpsilon } from '@fedmart/shared/dp/rdp';
import { recordLevelCharge } from '@fedmart/shared/dp/plan';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { privacyReport, setPrivacyCap } from '@fedmart/coordinator/privacy';
import { bankPartners, connectBankPartners, modelFor, startFixture, type Fixture } from '../helpers.ts';

await initBackend();

const LOCAL = { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 };

/** Abort the federation's round as soon as `when` says so (after uploads). */
function failAfterUploads(fx: Fixture, fed: string, when: 'all-uploaded' | 'unmasking'): () => void {
  const orch = fx.coord.orchestrator;
  let uploads = 0;
  const onReport = (e: { federationId: string; kind: string }) => {
    if (e.federationId === fed && e.kind === 'train' && ++uploads % 3 === 0 && when === 'all-uploaded') orch.abort(fed, 'test: failed after every update arrived');
  };
  const onPhase = (e: { federationId: string; phase: string }) => {
    if (e.federationId === fed && e.phase === 'unmasking' && when === 'unmasking') orch.abort(fed, 'test: failed at the unmasking stage');
  };
  orch.on('client-report', onReport);
  orch.on('phase', onPhase);
  return () => {
    orch.off('client-report', onReport);
    orch.off('phase', onPhase);
  };
}

/** Partner id of each agent (from its welcome). */
const agentIds = new Map<PartnerAgent, string>();

/** Each partner's ledger total equals its own accountant. */
async function expectAgreement(fx: Fixture, fed: string, agents: PartnerAgent[], level: 'record' | 'partner'): Promise<void> {
  const report = (await privacyReport(fx.coord.store, fed));
  expect(report.verification).toMatchObject({ ok: true, problems: [] });
  const partnerTotals = report.totals.filter((x) => x.scope === 'partner' && x.level === level);
  expect(partnerTotals).toHaveLength(agents.length);
  for (const a of agents) {
    const own = a.privacySpent()[level]!;
    const total = partnerTotals.find((x) => x.partnerId === agentIds.get(a));
    expect(total, 'ledger total of the partner').toBeDefined();
    expect(total!.epsilon).toBeCloseTo(own.epsilon, 9);
  }
}
describe('issue 8 item 6: spend is charged when it is released', () => {
  it('record level: rounds failed after uploads are charged (not committed), the ledger agrees with every partner, and a cap cannot be walked past by failing rounds', async () => {
    // Arrange: record-level DP-SGD, a federation cap just above two rounds' spend
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp: { level: 'record', noiseMultiplier: 1.1, clip: 1, delta: 1e-5 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const agents = await connectBankPartners(fx, fed);
    for (const a of agents) agentIds.set(a, (await a.ready).partnerId);
    const twoRounds = Math.max(...exp.partners.map((p) => {
      const { q, steps } = recordLevelCharge({ batchSize: 64, localEpochs: 1, numExamples: p.data.trainN });
      return computeEpsilon({ q, sigma: 1.1, steps: 2 * steps, delta: 1e-5 }).epsilon;
    }));
    await setPrivacyCap(fx.coord.store, { federationId: fed, partnerId: null, level: 'record', epsilon: twoRounds * 1.001, setBy: 'officer' });
    const stop = failAfterUploads(fx, fed, 'all-uploaded');

    // Act: two rounds fail after every partner uploaded; the third would pass the cap
    const outcomes = [await fx.coord.orchestrator.runRound(fed), await fx.coord.orchestrator.runRound(fed)];
    const third = await fx.coord.orchestrator.runRound(fed);
    stop();

    // Assert: both failed rounds charged, not committed, to every partner and the federation
    expect(outcomes.map((o) => o.phase)).toEqual(['failed', 'failed']);
    expect(fx.coord.store.listModelVersions(fed)).toHaveLength(1);
    const report = (await privacyReport(fx.coord.store, fed));
    for (const o of outcomes) {
      const rows = report.history.filter((h) => h.roundId === o.roundId && h.kind === 'spent');
      expect(rows).toHaveLength(4);
      expect(rows.every((h) => !h.committed && h.modelVersion === null)).toBe(true);
    }
    await expectAgreement(fx, fed, agents, 'record');
    for (const a of agents) expect(a.privacySpent().record!.releases).toBe(2);
    // the cap saw the failed rounds' spend: round 3 was refused before any training
    expect(third.phase).toBe('failed');
    expect(third.reason).toMatch(/privacy budget exceeded/);
    expect(report.totals.find((x) => x.scope === 'federation')!.epsilon).toBeLessThanOrEqual(twoRounds * 1.001);
    for (const a of agents) expect(a.privacySpent().record!.epsilon).toBeLessThanOrEqual(twoRounds * 1.001);

    // and a committed round afterwards composes on top of them
    await setPrivacyCap(fx.coord.store, { federationId: fed, partnerId: null, level: 'record', epsilon: null, setBy: 'officer' });
    expect((await fx.coord.orchestrator.runRound(fed)).phase).toBe('committed');
    await expectAgreement(fx, fed, agents, 'record');
    await Promise.all(agents.map((a) => a.close()));
  });

  it('partner level under secure aggregation: a round failed at unmasking (masked updates already sent) is charged, and ledger and partners agree', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const dp = { level: 'partner' as const, noiseMultiplier: 0.5, clip: 0.2, delta: 1e-5, mode: 'distributed' as const };
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp, secureAggregation: { clip: 4 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const agents = await connectBankPartners(fx, fed);
    for (const a of agents) agentIds.set(a, (await a.ready).partnerId);
    const stop = failAfterUploads(fx, fed, 'unmasking');
    const failed = await fx.coord.orchestrator.runRound(fed);
    stop();
    expect(failed.phase).toBe('failed');
    expect(failed.reason).toMatch(/unmasking stage/);
    const rows = (await privacyReport(fx.coord.store, fed)).history.filter((h) => h.roundId === failed.roundId);
    expect(rows).toHaveLength(4);
    expect(rows.every((h) => h.kind === 'spent' && !h.committed)).toBe(true);
    await expectAgreement(fx, fed, agents, 'partner');
    expect((await fx.coord.orchestrator.runRound(fed)).phase).toBe('committed');
    await expectAgreement(fx, fed, agents, 'partner');
    const two = computeEpsilon({ q: 1, sigma: 0.5, steps: 2, delta: 1e-5 }).epsilon;
    for (const a of agents) expect(a.privacySpent().partner!.epsilon).toBeCloseTo(two, 9);
    await Promise.all(agents.map((a) => a.close()));
  });
});
