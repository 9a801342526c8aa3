/**
 * Issue 8, item 4 — distributed DP against a lying coordinator.
 *
 * Partner-level DP whose noise the partners add (each a 1/√minClients share)
 * protects anything only if the coordinator sees just the sum. The real
 * coordinator is made to lie in its round instructions (a hook on the links
 * it sends through); the real partner agents must refuse every lie — lowered
 * or omitted noise share, lowered σ, a plaintext request, a round smaller than
 * the pinned minimum — before anything leaves them, so no weaker release
 * happens and nothing is charged. Without the fix the agents took noiseStd
 * from the instruction and released under-noised updates.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { computeEpsilon } from '@fedmart/shared/dp/rdp';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { privacyReport } from '@fedmart/coordinator/privacy';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';
import { lyingCoordinator } from './lying-coordinator.ts';

await initBackend();

const LOCAL = { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 };
const DP = { level: 'partner' as const, noiseMultiplier: 0.5, clip: 0.2, delta: 1e-5, mode: 'distributed' as const };

describe('issue 8 item 4: distributed DP against a lying coordinator', () => {
  it('refuses to create partner-noised DP without secure aggregation or CKKS', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const err = await fx.createFederation({ model: modelFor(exp), minClients: 3, dp: DP } as never).catch((e: unknown) => e);
    expect(String(err)).toMatch(/partner-level noise added by the partners needs updates hidden from the coordinator.*turn on secureAggregation or encryption 'ckks'/);
  });

  it('partners refuse instructions that lower or omit the noise share, lower σ, ask for plaintext, or shrink the round below the pinned minimum', async () => {
    // Arrange: 4 real partners under secure aggregation, minClients 4
    const exp = await bankPartners(4);
    await using fx = await startFixture();
    const tamper = lyingCoordinator(fx);
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 4, localTrain: LOCAL, dp: DP, secureAggregation: { clip: 4 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const logs: string[] = [];
    const agents: PartnerAgent[] = [];
    for (const p of exp.partners) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false, log: (m) => logs.push(m) }));
    await Promise.all(agents.map((a) => a.ready));
    const orch = fx.coord.orchestrator;

    // An honest round commits and is charged once (σ = 0.5, q = 1).
    const honest = await orch.runRound(fed);
    expect(honest.phase).toBe('committed');
    const spentBefore = (await privacyReport(fx.coord.store, fed)).history.filter((h) => h.kind === 'spent').length;
    const oneRound = computeEpsilon({ q: 1, sigma: 0.5, steps: 1, delta: 1e-5 }).epsilon;
    for (const a of agents) expect(a.privacySpent().partner).toMatchObject({ releases: 1, epsilon: expect.closeTo(oneRound, 9) });

    const lies: { name: string; apply: () => void; refusal: RegExp }[] = [
      { name: 'noise share lowered 10x', apply: () => { tamper.train = (t) => ({ ...t, config: { ...t.config, dp: { ...t.config.dp!, noiseStd: t.config.dp!.noiseStd! / 10 } } }); }, refusal: /sets the noise share std to [\d.e-]+ where the terms give/ },
      { name: 'noise share omitted', apply: () => { tamper.train = (t) => { const { noiseStd: _n, ...dp } = t.config.dp!; return { ...t, config: { ...t.config, dp } }; }; }, refusal: /omits the distributed noise share/ },
      { name: 'DP omitted', apply: () => { tamper.train = (t) => { const { dp: _d, ...config } = t.config; return { ...t, config }; }; }, refusal: /omits differential privacy/ },
      { name: 'σ and its share lowered together', apply: () => { tamper.train = (t) => ({ ...t, config: { ...t.config, dp: { ...t.config.dp!, noiseMultiplier: 0.05, noiseStd: t.config.dp!.noiseStd! / 10 } } }); }, refusal: /sets noise multiplier 0.05 where the terms say 0.5/ },
      { name: 'plaintext update requested', apply: () => { tamper.train = (t) => { const { protection: _p, ...rest } = t; return rest; }; }, refusal: /protects updates with none where the terms say secagg/ },
      { name: 'round shrunk below minClients', apply: () => { tamper.train = (t) => t; tamper.secagg = (r) => (r.stage === 'advertise-keys' ? { ...r, participants: (r.participants as number[]).slice(0, 3) } : r); }, refusal: /has 3 partner\(s\) at advertise-keys, fewer than the 4 the DP noise is split over/ },
    ];
    for (const lie of lies) {
      // Act
      lie.apply();
      logs.length = 0;
      const outcome = await orch.runRound(fed);

      // Assert: refused by every partner, nothing released, nothing charged
      expect(outcome.phase, lie.name).toBe('failed');
      const participants = fx.coord.store.listParticipants(outcome.roundId);
      expect(participants.filter((p) => p.status === 'trained'), lie.name).toHaveLength(0);
      const refusals = participants.filter((p) => p.status === 'failed' && lie.refusal.test(p.reason ?? ''));
      expect(refusals.length, `${lie.name}: ${participants.map((p) => p.reason).join(' | ')}`).toBeGreaterThanOrEqual(1);
      expect(participants.every((p) => p.status === 'selected' || /FORBIDDEN: refusing the round|disconnected|too few/.test(p.reason ?? '')), `${lie.name}: ${participants.map((p) => `${p.status} ${p.reason}`).join(' | ')}`).toBe(true);
      expect(logs.filter((l) => lie.refusal.test(l)).length, lie.name).toBeGreaterThanOrEqual(agents.length); // every partner refused
      expect((await privacyReport(fx.coord.store, fed)).history.filter((h) => h.kind === 'spent'), lie.name).toHaveLength(spentBefore);
      for (const a of agents) expect(a.privacySpent().partner!.releases, lie.name).toBe(1);
    }

    // The honest coordinator again: rounds commit.
    tamper.secagg = (r) => r;
    expect((await orch.runRound(fed)).phase).toBe('committed');
    await Promise.all(agents.map((a) => a.close()));
  });
});
