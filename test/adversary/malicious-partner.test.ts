/**
 * Issue 8, item 9: a malicious partner. Whatever one partner sends — 1e38
 * coordinates, 2^52 examples, a fake AUC of 1.0 over "2^52" examples — the
 * coordinator bounds its weight by what was agreed (enrollment, hello,
 * federation limits) and its update by the federation's norm bound, so the
 * committed model stays within that bound of the honest partners' FedAvg and
 * the federation's evaluation AUC moves by at most the attacker's weight
 * share. Under secure aggregation, a 2^52 declaration cannot blow up the
 * quantization range (it is capped before the round is set up).
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parameterCount } from '@fedmart/shared/model';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';
import { startScriptedPartner, type Script } from './scripted-partner.ts';

await initBackend();

const SPEC = { kind: 'mlp' as const, inputDim: 5, hidden: [] };
const P = parameterCount(SPEC);
const HUGE = 2 ** 52;

/** Two honest partners with fixed, known updates and evaluations. */
const HONEST: { name: string; n: number; delta: (i: number) => number; auc: number; evalN: number }[] = [
  { name: 'honest-a', n: 300, delta: (i) => 0.01 * Math.sin(i + 1), auc: 0.7, evalN: 80 },
  { name: 'honest-b', n: 500, delta: (i) => -0.004 * Math.cos(i), auc: 0.74, evalN: 120 },
];
const honestScript = (h: (typeof HONEST)[number]): Script => ({
  helloExamples: h.n,
  update: () => Float32Array.from({ length: P }, (_, i) => h.delta(i)),
  evaluate: () => ({ numExamples: h.evalN, metrics: { auc: h.auc, loss: 0.5 } }),
});
const attackerScript: Script = {
  helloExamples: HUGE,
  update: () => new Float32Array(P).fill(1e38),
  evaluate: () => ({ numExamples: HUGE, metrics: { auc: 1, loss: 0 } }),
};

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
/** The honest partners' FedAvg: w0 + Σ n_k Δ_k / Σ n_k. */
function honestFedAvg(w0: Float32Array): Float64Array {
  const total = HONEST.reduce((s, h) => s + h.n, 0);
  return Float64Array.from(w0, (w, i) => w + HONEST.reduce((s, h) => s + h.n * Math.fround(h.delta(i)), 0) / total);
}

describe('issue 8 item 9: a malicious partner', () => {
  it('1e38-valued updates and 2^52 examples leave the committed model within the norm bound of the honest FedAvg; a fake AUC moves eval AUC by at most its weight share', async () => {
    // Arrange: two honest partners and one attacker enrolled with an agreed cap of 20 examples
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: SPEC, minClients: 3 });
    const honest = await Promise.all(HONEST.map(async (h) => startScriptedPartner(fx.url, await fx.enroll(fed, h.name), honestScript(h))));
    const { token } = await fx.api.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: 'mallory', maxExamples: 20 });
    const attacker = await startScriptedPartner(fx.url, token, attackerScript);
    const w0 = fx.coord.store.currentModel(fed).weights;

    // Act
    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert: committed, and within the round's norm bound B of the honest FedAvg
    expect(outcome!.phase).toBe('committed');
    const w1 = fx.coord.store.currentModel(fed).weights;
    const honestW = honestFedAvg(w0);
    // The bound, computed independently: 3 × the lower median of the three update norms (the attacker's is the largest).
    const honestNorms = HONEST.map((h) => norm(Float32Array.from({ length: P }, (_, i) => h.delta(i))));
    const bound = 3 * Math.max(...honestNorms);
    const distance = norm(Float64Array.from(w1, (w, i) => w - honestW[i]!));
    expect(distance).toBeLessThanOrEqual(bound);
    // Tighter: the attacker's weight is capped at its agreed 20 examples, so it moves the mean by at most s·(B + ‖honest mean‖).
    const s = 20 / (20 + 800);
    const honestMeanNorm = norm(Float64Array.from(honestW, (w, i) => w - w0[i]!));
    expect(distance).toBeLessThanOrEqual(s * (bound + honestMeanNorm) * (1 + 1e-5));
    const rows = fx.coord.store.listParticipants(outcome!.roundId);
    const mallory = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'mallory')!.partnerId;
    expect(rows.find((p) => p.partnerId === mallory)).toMatchObject({ numExamples: 20, reason: expect.stringMatching(/clipped/) });

    // Assert: the fake AUC of 1.0 moves the federation's eval AUC by at most the attacker's weight share
    const honestAuc = HONEST.reduce((acc, h) => acc + h.evalN * h.auc, 0) / HONEST.reduce((acc, h) => acc + h.evalN, 0);
    const evalShare = 20 / (20 + HONEST.reduce((acc, h) => acc + h.evalN, 0));
    expect(Math.abs(outcome!.metrics.eval_auc! - honestAuc)).toBeLessThanOrEqual(evalShare + 1e-12);
    // The round reports the bound it applied and that one update was clipped.
    expect(outcome!.metrics.train_limits_norm_bound).toBeCloseTo(bound, 6);
    expect(outcome!.metrics.train_limits_clipped).toBe(1);
    honest.forEach((p) => p.close());
    attacker.close();
  });

  it("rejects an update above a fixed bound, tells the partner why, and caps a 2^52 claim at the federation's limit", async () => {
    // Arrange: reject mode with a fixed bound; no enrollment cap, so the federation's maxExamplesPerPartner applies
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: SPEC, minClients: 3, limits: { maxExamplesPerPartner: 1000, maxUpdateNorm: 0.1, onLargeUpdate: 'reject' } });
    const honest = await Promise.all(HONEST.map(async (h) => startScriptedPartner(fx.url, await fx.enroll(fed, h.name), honestScript(h))));
    const attacker = await startScriptedPartner(fx.url, await fx.enroll(fed, 'mallory'), attackerScript);
    const w0 = fx.coord.store.currentModel(fed).weights;

    // Act
    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert: the model is exactly the honest FedAvg (the attacker's update was left out)...
    expect(outcome!.phase).toBe('committed');
    const w1 = fx.coord.store.currentModel(fed).weights;
    const honestW = honestFedAvg(w0);
    w1.forEach((w, i) => expect(w).toBeCloseTo(honestW[i]!, 6));
    expect(outcome!.metrics).toMatchObject({ train_limits_rejected: 1, train_limits_norm_bound: 0.1 });
    // ...the attacker was told why...
    const rejected = attacker.received.filter((r) => r.event === 'rejected').map((r) => r.args[0] as { code: string; message: string });
    expect(rejected).toEqual([expect.objectContaining({ code: 'INVALID_UPDATE', message: expect.stringMatching(/update norm .* exceeds the federation's bound 0\.1000 \(limits\.maxUpdateNorm\)/) })]);
    // ...and its 2^52 examples count as the federation's 1000, in the eval weights too.
    const mallory = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'mallory')!.partnerId;
    expect(fx.coord.store.listParticipants(outcome!.roundId).find((p) => p.partnerId === mallory)).toMatchObject({ status: 'rejected', numExamples: 1000 });
    const honestEvalN = HONEST.reduce((acc, h) => acc + h.evalN, 0);
    const honestAuc = HONEST.reduce((acc, h) => acc + h.evalN * h.auc, 0) / honestEvalN;
    expect(outcome!.metrics.eval_auc).toBeCloseTo((honestAuc * honestEvalN + 1000) / (honestEvalN + 1000), 9);
    expect(fx.coord.store.listAudit(100, 0).map((e) => e.action)).toEqual(expect.arrayContaining(['partner.examples-capped', 'round.updates-bounded']));
    honest.forEach((p) => p.close());
    attacker.close();
  });

  it('refuses evaluation metrics outside their range', async () => {
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: SPEC, minClients: 2, timeouts: { selectingMs: 10_000, trainingMs: 10_000, evaluatingMs: 2_000 } });
    const honest = await startScriptedPartner(fx.url, await fx.enroll(fed, 'honest-a'), honestScript(HONEST[0]!));
    const liar = await startScriptedPartner(fx.url, await fx.enroll(fed, 'liar'), { ...honestScript(HONEST[1]!), evaluate: () => ({ numExamples: 100, metrics: { auc: 7 } }) });
    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(outcome!.phase).toBe('committed');
    expect(outcome!.metrics.eval_auc).toBeCloseTo(HONEST[0]!.auc, 9);
    expect(liar.acks.find((a) => a.type === 'evaluate-result')).toMatchObject({ ok: false, error: { code: 'INVALID_MESSAGE', message: expect.stringMatching(/"auc" = 7 is outside its range \[0, 1\]/) } });
    honest.close();
    liar.close();
  });

  it('under secure aggregation, a 2^52 declaration is capped before the round is set up, and the round commits', async () => {
    // Arrange: three real agents; the third rewrites its hello to claim 2^52 examples
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, secureAggregation: { clip: 1 }, limits: { maxExamplesPerPartner: 100_000, medianNormFactor: 3, onLargeUpdate: 'clip' } });
    const agents = await Promise.all(exp.partners.map(async (p) => startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false })));
    const liar = agents[2]!;
    const emit = liar.socket.emit.bind(liar.socket);
    (liar.socket as unknown as { emit: (...a: unknown[]) => unknown }).emit = (event: unknown, raw: unknown, ...rest: unknown[]) => {
      const env = raw as { type?: string; payload?: object };
      const sent = event === 'msg' && env?.type === 'hello' ? { ...env, payload: { ...env.payload, numExamples: HUGE } } : raw;
      return (emit as (...a: unknown[]) => unknown)(event, sent, ...rest);
    };
    await Promise.all(agents.map((a) => a.ready));
    expect(fx.coord.orchestrator.connectedClients(fed).map((c) => c.numExamples)).toContain(100_000);

    // Act
    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert
    expect(outcome!.reason).toBeUndefined();
    expect(outcome!.phase).toBe('committed');
    expect(outcome!.metrics.train_secagg_survivors).toBe(3);
    await Promise.all(agents.map((a) => a.close()));
  });
});
