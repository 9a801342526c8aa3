/**
 * Issue 8, item 5 — adaptive clipping (Andrew et al. 2021, "Differentially
 * Private Learning with Adaptive Clipping", NeurIPS) accounted correctly.
 *
 * One round releases two Gaussian mechanisms: the update sum (sensitivity C,
 * std z_Δ·C) and the centred clipped count Σ(b_i − ½) (sensitivity ½, std
 * σ_b), as in TF Privacy's `QuantileAdaptiveClipSumQuery` / quantile
 * estimator. Their RDP adds: α/(2z_Δ²) + α·(½)²/(2σ_b²) per round. The test
 * recomputes ε from that sum by hand — its own α grid and the Balle et al.
 * 2020 conversion, not the accountant — and compares the ledger's ε with it.
 * z_Δ is read from what the partners were told and checked (they refuse any
 * other share), σ_b from the federation's terms.
 *
 * Distributed mode (secure aggregation): the per-partner bit must never
 * travel in plaintext (it rides, noised, inside the masked vector), and the
 * clip must actually move. Central mode: the trusted coordinator counts from
 * unclipped updates (before the fix partners pre-clipped, so every update
 * looked unclipped and C only ever shrank).
 */
import { describe, expect, it } from 'vitest';
import type { PartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { privacyReport } from '@fedmart/coordinator/privacy';
import { bankPartners, connectBankPartners, modelFor, startFixture, type Fixture } from '../helpers.ts';
import { lyingCoordinator } from './lying-coordinator.ts';

await initBackend();

const LOCAL = { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 };

/**
 * ε of `rounds` rounds of (update sum at multiplier zUpdate) ∘ (centred count with std countStd, sensitivity ½),
 * by hand: Gaussian RDP ρ(α) = α·Δ²/(2s²) summed, then ε = min_α ρ(α) + log((α−1)/α) − (log δ + log α)/(α − 1)
 * (Balle et al. 2020, "Hypothesis testing interpretations and Rényi DP", Thm. 21) over α ∈ (1, 2000] in steps of 0.001.
 */
function handEpsilon(rounds: number, zUpdate: number, countStd: number, delta: number): number {
  const perAlpha = 1 / (2 * zUpdate ** 2) + 0.25 / (2 * countStd ** 2);
  let best = Infinity;
  for (let a = 1.001; a <= 2000; a += 0.001) {
    const eps = rounds * perAlpha * a + Math.log((a - 1) / a) - (Math.log(delta) + Math.log(a)) / (a - 1);
    if (eps < best) best = eps;
  }
  return Math.max(0, best);
}

/** The bank partners' agents; with `frames`, every packet they send is recorded (as text). */
function connect(fx: Fixture, fed: string, frames?: string[]): Promise<PartnerAgent[]> {
  return connectBankPartners(fx, fed, {
    onStart: (a) => {
      if (!frames) return;
      a.socket.io.on('open', () => {
        a.socket.io.engine.on('packetCreate', (packet: { data?: unknown }) => {
          frames.push(typeof packet.data === 'string' ? packet.data : Buffer.from(packet.data as Uint8Array).toString('latin1'));
        });
      });
    },
  });
}

describe('issue 8 item 5: adaptive clipping', () => {
  it('under secure aggregation: the clip bit travels only noised inside the secure sum, the clip moves, and the ledger ε matches an independent recomputation', async () => {
    // Arrange: σ 0.5 charged, σ_b = 1, 3 partners, secure aggregation wide enough for the noised bit (½ + 8σ_b/√3 ≈ 5.1)
    const exp = await bankPartners();
    await using fx = await startFixture();
    const tamper = lyingCoordinator(fx); // identity rewrites: it only records what was sent
    const countStd = 1;
    const dp = { level: 'partner' as const, noiseMultiplier: 0.5, clip: 0.2, delta: 1e-5, mode: 'distributed' as const, adaptiveClip: { targetQuantile: 0.5, clipLearningRate: 0.2, countStd } };
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp, secureAggregation: { clip: 6 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const frames: string[] = [];
    const agents = await connect(fx, fed, frames);
    const requests: Record<string, unknown>[] = [];
    tamper.secagg = (r) => (requests.push(r), r);

    // Act
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 3).done;

    // Assert: committed, and the clip moved from round to round through the secure sum
    expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed', 'committed']);
    const clips = outcomes.map((o) => o.metrics.train_dp_clip!);
    const next = outcomes.map((o) => o.metrics.train_dp_next_clip!);
    expect(next.every((c) => Number.isFinite(c) && c > 0)).toBe(true);
    expect(clips[1]).toBeCloseTo(next[0]!, 12);
    expect(clips[2]).toBeCloseTo(next[1]!, 12);
    expect(next[0]).not.toBe(clips[0]);
    // the masked vector holds the parameters plus one coordinate (the noised centred bit); the weight follows it
    const P = fx.coord.store.currentModelRow(fed).paramCount;
    expect(requests.filter((r) => r.stage === 'advertise-keys').every((r) => r.vectorLength === P + 1)).toBe(true);
    // no partner sent its bit (or any per-partner DP statistic) in plaintext
    const sent = frames.join('\n');
    expect(sent).toMatch(/masked-input/);
    expect(sent).not.toMatch(/dp_unclipped|unclipped|clip_bit/);
    for (const row of fx.coord.store.listRounds(fed).flatMap((r) => fx.coord.store.listParticipants(r.id))) {
      expect(Object.keys(JSON.parse(row.trainMetrics ?? '{}')).filter((k) => k !== 'seconds')).toEqual([]); // wall time only
    }

    // the ledger's ε equals the hand composition of the two mechanisms partners actually ran
    const zUpdates = tamper.sent.map((t) => (t.config.dp!.noiseStd! * Math.sqrt(3)) / t.config.dp!.clip);
    expect(new Set(zUpdates.map((z) => z.toFixed(12))).size).toBe(1);
    const zUpdate = zUpdates[0]!;
    expect(zUpdate).toBeGreaterThan(0.5); // the update carries less than all of σ's budget: the count spends the rest
    const report = (await privacyReport(fx.coord.store, fed));
    expect(report.verification.ok).toBe(true);
    const expected = handEpsilon(3, zUpdate, countStd, 1e-5);
    for (const total of report.totals) {
      expect(total.epsilon).toBeGreaterThanOrEqual(expected - 1e-9); // the accountant's order grid is coarser: never below
      expect(total.epsilon / expected).toBeLessThan(1.01);
    }
    for (const h of report.history.filter((x) => x.kind === 'spent')) expect(h).toMatchObject({ updateSigma: expect.closeTo(zUpdate, 12), countStd, sigma: 0.5 });
    for (const a of agents) expect(a.privacySpent().partner!.epsilon).toBeCloseTo(report.totals[0]!.epsilon, 9);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('central mode: the trusted coordinator counts b_i on unclipped updates, so a clip below every update norm grows', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const dp = { level: 'partner' as const, noiseMultiplier: 0.5, clip: 1e-4, delta: 1e-5, adaptiveClip: { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 0.3 } };
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, dp } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const agents = await connect(fx, fed);
    const [o] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(o!.phase).toBe('committed');
    // every update is far outside a 1e-4 ball: b̃ ≈ 0 ± 0.1, so C ← C·exp(0.2·(0.5 − b̃)) > C
    expect(o!.metrics.train_dp_next_clip).toBeGreaterThan(1e-4);
    const report = (await privacyReport(fx.coord.store, fed));
    const zUpdate = (0.5 ** -2 - (2 * 0.3) ** -2) ** -0.5;
    for (const total of report.totals) expect(total.epsilon / handEpsilon(1, zUpdate, 0.3, 1e-5)).toBeLessThan(1.01);
    await Promise.all(agents.map((a) => a.close()));
  });
});
