/**
 * Secure aggregation inside real rounds: a real coordinator, real Socket.IO
 * partner agents on the UCI bank data, dropouts at every stage, and a check
 * that what the coordinator receives is masked while the model it commits
 * is the FedAvg of the survivors' updates.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import type { SecAggStage } from '@fedmart/shared/secagg/messages';
import { isFedmartError } from '@fedmart/shared/errors';
import { bankPartners, modelFor, startFixture, waitFor } from './helpers.ts';

type Drops = Record<number, SecAggStage>; // partner index → stage

/** Every stage at 10 % (1 of 6) and 30 % (2 of 6), after a round without dropouts. */
const SCHEDULE: Drops[] = [
  {},
  { 0: 'advertise-keys' }, { 1: 'share-keys' }, { 2: 'masked-input' }, { 3: 'unmask' },
  { 0: 'advertise-keys', 4: 'advertise-keys' }, { 1: 'share-keys', 5: 'share-keys' }, { 2: 'masked-input', 3: 'masked-input' }, { 4: 'unmask', 5: 'unmask' },
  // below the threshold (t = 3 of 6): four partners leave before revealing shares
  { 0: 'unmask', 1: 'unmask', 2: 'unmask', 3: 'unmask' },
  {},
];

function chiSquareBytes(bytes: Uint8Array): number {
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const expected = bytes.length / 256;
  let chi = 0;
  for (const c of counts) chi += (c - expected) ** 2 / expected;
  return chi;
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i]!; mb += b[i]!; }
  ma /= n; mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) { const x = a[i]! - ma, y = b[i]! - mb; sab += x * y; saa += x * x; sbb += y * y; }
  return sab / Math.sqrt(saa * sbb);
}

describe('secure aggregation in real rounds over Socket.IO', () => {
  // Ten rounds of five stages with real processes' worth of crypto: a limit fit for a loaded machine.
  it('commits the survivors\' FedAvg at 0 %, 10 % and 30 % dropout at each stage, fails below the threshold keeping the model, and only ever sees masked inputs', async () => {
    // Arrange
    const exp = await bankPartners(6);
    await using fx = await startFixture();
    const fedId = await fx.createFederation({ model: modelFor(exp), minClients: 3, secureAggregation: { clip: 1 } });
    const received: { event: string; args: unknown[] }[] = [];
    fx.coord.io.of('/federation').on('connection', (s) => s.onAny((event: string, ...args: unknown[]) => received.push({ event, args })));
    let roundNo = 0;
    const updates = new Map<string, { delta: Float32Array; n: number }>(); // `${round}/${partner}`
    const agents: PartnerAgent[] = [];
    for (const [i, p] of exp.partners.entries()) {
      const token = await fx.enroll(fedId, p.id);
      agents.push(startPartnerAgent({
        coordinatorUrl: fx.url, token, data: p.data, seed: i, reconnect: false,
        dropAtStage: (round) => SCHEDULE[round - 1]?.[i] ?? null,
        onLocalUpdate: (u) => updates.set(`${u.round}/${p.id}`, { delta: u.delta.slice(), n: u.numExamples }),
      }));
    }
    try {
      await Promise.all(agents.map((a) => a.ready));
      const partnerIds = new Map(fx.coord.orchestrator.connectedClients(fedId).map((c) => [c.partnerName, c.partnerId]));

      for (const drops of SCHEDULE) {
        roundNo++;
        await waitFor(() => fx.coord.orchestrator.connectedClients(fedId).length === agents.length, 120_000, 'all partners back');
        const before = fx.coord.store.currentModel(fedId);

        // Act
        const outcome = await fx.coord.orchestrator.runRound(fedId);

        // Assert
        const dropped = Object.entries(drops);
        if (dropped.length === 4) {
          expect(outcome.phase).toBe('failed');
          expect(outcome.reason).toMatch(/threshold/);
          expect(fx.coord.store.currentModel(fedId).row.id).toBe(before.row.id);
          continue;
        }
        expect(outcome.phase, `round ${roundNo}: ${outcome.reason}`).toBe('committed');
        const excluded = dropped.filter(([, stage]) => stage !== 'unmask').map(([i]) => exp.partners[Number(i)]!.id);
        const survivors = exp.partners.map((p) => p.id).filter((id) => !excluded.includes(id));
        expect([...outcome.participants].sort()).toEqual(survivors.map((id) => partnerIds.get(id)!).sort());
        for (const [i, stage] of dropped) expect(outcome.failures[partnerIds.get(exp.partners[Number(i)]!.id)!]).toMatch(stage === 'unmask' ? /unmasking/ : new RegExp(stage));
        // The committed model is FedAvg of the survivors' clipped updates, up to quantization.
        const after = fx.coord.store.currentModel(fedId).weights;
        let total = 0;
        const mean = new Float64Array(after.length);
        for (const id of survivors) {
          const u = updates.get(`${outcome.round}/${id}`)!;
          total += u.n;
          for (let j = 0; j < mean.length; j++) mean[j] += u.n * Math.max(-1, Math.min(1, u.delta[j]!));
        }
        let maxErr = 0;
        for (let j = 0; j < mean.length; j++) maxErr = Math.max(maxErr, Math.abs(before.weights[j]! + mean[j]! / total - after[j]!));
        expect(maxErr).toBeLessThan(1e-5);
      }

      // Nothing individual reached the coordinator in the clear: no plaintext updates, and the masked inputs look uniform.
      const envelopes = received.filter((r) => r.event === 'msg').map((r) => r.args[0] as { type: string; roundId?: string; payload?: { stage?: string; masked?: Uint8Array } });
      expect(envelopes.some((e) => e.type === 'train-result')).toBe(false);
      const masked = envelopes.filter((e) => e.type === 'secagg-reply' && e.payload?.stage === 'masked-input').map((e) => new Uint8Array(e.payload!.masked!));
      expect(masked.length).toBeGreaterThan(30);
      const pooled = Buffer.concat(masked.slice(0, 6));
      expect(chiSquareBytes(pooled)).toBeLessThan(380); // 255 dof, p ≈ 1e-6 (Wilson–Hilferty)
      // …and are uncorrelated with the plaintext update behind them.
      const first = envelopes.find((e) => e.type === 'secagg-reply' && e.payload?.stage === 'masked-input')!;
      const words = new Uint32Array(new Uint8Array(first.payload!.masked!).slice().buffer);
      const candidates = [...updates.entries()].filter(([k]) => k.startsWith('1/')).map(([, u]) => u.delta);
      for (const delta of candidates) expect(Math.abs(correlation(Array.from(words.subarray(0, delta.length)), delta))).toBeLessThan(0.2);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
  }, 600_000); // hang guard only: real rounds on a loaded 2-core machine take minutes

  it('waits out a silent partner at its stage timeout and goes on without it', async () => {
    // Arrange
    const exp = await bankPartners(4);
    await using fx = await startFixture();
    const fedId = await fx.createFederation({
      model: modelFor(exp), minClients: 3, secureAggregation: {},
      timeouts: { selectingMs: 10_000, trainingMs: 30_000, evaluatingMs: 10_000, shareKeysMs: 1_500 },
    });
    const agents = await Promise.all(exp.partners.map(async (p, i) => startPartnerAgent({
      coordinatorUrl: fx.url, token: await fx.enroll(fedId, p.id), data: p.data, seed: i, reconnect: false,
      dropMode: 'silent', dropAtStage: (round) => (round === 1 && i === 1 ? 'share-keys' : null),
    })));
    try {
      await Promise.all(agents.map((a) => a.ready));
      // Act
      const outcome = await fx.coord.orchestrator.runRound(fedId);
      // Assert
      expect(outcome.phase, outcome.reason).toBe('committed');
      expect(outcome.participants).toHaveLength(3);
      expect(Object.values(outcome.failures)).toEqual(['timed out at secure-aggregation stage share-keys']);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
  }, 600_000); // hang guard only

  it('refuses, at federation creation, robust strategies with secure aggregation or CKKS, and both protections at once', async () => {
    await using fx = await startFixture();
    const model = { kind: 'mlp' as const, inputDim: 4, hidden: [2] };
    for (const strategy of ['median', 'trimmed-mean', 'krum'] as const) {
      const err = await fx.createFederation({ model, strategy, secureAggregation: {} }).catch((e: unknown) => e);
      expect(isFedmartError(err, 'BAD_REQUEST'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`strategy "${strategy}" needs each partner's individual update`));
      const err2 = await fx.createFederation({ model, strategy, encryption: 'ckks' }).catch((e: unknown) => e);
      expect((err2 as Error).message).toMatch(/reveals only their sum/);
    }
    const both = await fx.createFederation({ model, secureAggregation: {}, encryption: 'ckks' }).catch((e: unknown) => e);
    expect((both as Error).message).toMatch(/cannot both be on/);
    // Everything legitimate is accepted.
    for (const strategy of ['fedavg', 'fedprox', 'fedadam', 'fedyogi'] as const) {
      await expect(fx.createFederation({ model, strategy, secureAggregation: { neighbours: 4, threshold: 3 } })).resolves.toMatch(/^f_/);
      await expect(fx.createFederation({ model, strategy, encryption: 'ckks' })).resolves.toMatch(/^f_/);
    }
  });
});
