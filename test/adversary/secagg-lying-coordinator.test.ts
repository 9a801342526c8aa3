/**
 * Issue 8, item 1: a coordinator lying about dropouts. It tells u's
 * neighbours "u survived" (to collect u's self-mask seed) and tells the
 * neighbours of each of u's neighbours v "v dropped" (to collect v's mask
 * key), which would unmask u's individual update. Against the
 * honest-but-curious protocol of before (per-client dropped/survived lists)
 * this attack recovered u's update exactly; now every client signs one
 * survivor set per round and reveals shares only for a set at least T
 * participants signed, so honest clients refuse and nothing is revealed
 * that could reconstruct an update.
 *
 * Real SecAggClient objects, real Ed25519/X25519/ChaCha20/Shamir; the
 * coordinator is the adversary here, so it is written out by hand below
 * (it uses the honest SecAggServer for the stages it does not lie in).
 */
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { combineShares, decodeShare } from '@fedmart/shared/crypto/shamir';
import { addMask } from '@fedmart/shared/secagg/mask-prg';
import { x25519SharedSecret } from '@fedmart/shared/crypto/x25519';
import { isFedmartError } from '@fedmart/shared/errors';
import { SecAggClient } from '@fedmart/shared/secagg/client';
import { SecAggServer } from '@fedmart/shared/secagg/server';
import { derivePairwiseSeed, pairwiseSign } from '@fedmart/shared/secagg/keys';
import { dequantizeSum } from '@fedmart/shared/secagg/quantize';
import type { MaskedInputReply, UnmaskReply } from '@fedmart/shared/secagg/messages';

const n = 30;
const K = 10;
const L = 64;
const ROUND = 'attack';
const TARGET = 1;
const update = (id: number) => Float32Array.from({ length: L }, (_, j) => Math.sin(id * 31 + j) * 0.9);

/** Stages 0–2 run honestly: every client advertises, shares and sends its masked input. */
function runUpToMaskedInput() {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const keys = new Map(ids.map((id) => [id, generateEd25519KeyPair()]));
  const server = new SecAggServer({
    roundId: ROUND, participants: ids, vectorLength: L, quantization: { clip: 1, maxClients: n, maxWeight: 10 }, neighbourDegree: K,
    graphSeed: sha256(new TextEncoder().encode(ROUND)), identities: ids.map((id) => ({ id, publicKey: keys.get(id)!.publicKey })),
  });
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, keys.get(id)!)]));
  const maskingKeys = new Map<number, Uint8Array>();
  for (const r of server.advertiseKeysRequests()) {
    const reply = clients.get(r.clientId)!.advertiseKeys(r);
    maskingKeys.set(r.clientId, reply.maskingPublicKey);
    server.receiveAdvertiseKeys(reply);
  }
  for (const r of server.closeAdvertiseKeys()) server.receiveShareKeys(clients.get(r.clientId)!.shareKeys(r));
  const masked = new Map<number, MaskedInputReply>();
  for (const r of server.closeShareKeys()) {
    const reply = clients.get(r.clientId)!.maskInput(r, update(r.clientId), 1);
    masked.set(r.clientId, reply);
    server.receiveMaskedInput(reply);
  }
  return { ids, server, clients, maskingKeys, masked, graph: server.params.graph.neighbours, t: server.params.threshold, T: server.params.signatureThreshold };
}

/** What the coordinator can make of the revealed shares: TARGET's update, or null. */
function reconstructTarget(ctx: ReturnType<typeof runUpToMaskedInput>, replies: UnmaskReply[]): Float64Array | null {
  const selfShares = replies.flatMap((r) => r.shares.filter((s) => s.of === TARGET && s.kind === 'self-seed').map((s) => decodeShare(s.share)));
  if (selfShares.length < ctx.t) return null;
  const y = ctx.masked.get(TARGET)!.masked.slice();
  addMask(y, combineShares(selfShares), -1);
  for (const v of ctx.graph.get(TARGET)!) {
    const shares = replies.flatMap((r) => r.shares.filter((s) => s.of === v && s.kind === 'mask-key').map((s) => decodeShare(s.share)));
    if (shares.length < ctx.t) return null;
    const seed = derivePairwiseSeed(x25519SharedSecret(combineShares(shares), ctx.maskingKeys.get(TARGET)!), ROUND, TARGET, v);
    addMask(y, seed, pairwiseSign(TARGET, v) === 1 ? -1 : 1);
  }
  return dequantizeSum(y, ctx.server.params.quantization).weightedSum;
}

const leaks = (x: Float64Array | null) => x !== null && Array.from(x).every((v, j) => Math.abs(v - update(TARGET)[j]!) < 1e-3);

describe('issue 8 item 1: a coordinator lying about dropouts', () => {
  it('30 clients, k = 10: inconsistent views make honest clients refuse, and no update can be reconstructed', () => {
    // Arrange: stages 0–2 honest; the lie is in which survivor set each client is shown.
    const ctx = runUpToMaskedInput();
    const { ids, clients, graph, T } = ctx;
    const { t } = ctx;
    // The review's assignment: each neighbour v of u is "dropped" in the eyes of t of
    // v's share holders, spread so no holder is told more than it must; u is "survived" for all.
    const toldDropped = new Map(ids.map((w) => [w, new Set<number>()]));
    for (const v of graph.get(TARGET)!) {
      const holders = graph.get(v)!.slice().sort((a, b) => toldDropped.get(a)!.size - toldDropped.get(b)!.size || a - b);
      for (const w of holders.slice(0, t)) toldDropped.get(w)!.add(v);
    }
    const viewOf = new Map(ids.map((w) => [w, ids.filter((id) => !toldDropped.get(w)!.has(id))]));
    const key = (view: number[]) => view.join(',');
    // Act 1: each client is asked to sign the view it is shown.
    const signatures = new Map<string, { id: number; signature: Uint8Array }[]>();
    const refusedToSign: string[] = [];
    for (const w of ids) {
      try {
        const reply = clients.get(w)!.consistencyCheck({ stage: 'consistency-check', roundId: ROUND, clientId: w, survivors: viewOf.get(w)! });
        const k = key(viewOf.get(w)!);
        signatures.set(k, [...(signatures.get(k) ?? []), { id: w, signature: reply.signature }]);
      } catch (e) {
        if (!isFedmartError(e)) throw e;
        refusedToSign.push(w + ': ' + e.message);
      }
    }
    // Act 2: each client gets its view back with every signature the coordinator holds, on any view.
    const everySignature = [...signatures.values()].flat();
    const replies: UnmaskReply[] = [];
    const refusals: string[] = [];
    for (const w of ids) {
      if (clients.get(w)!.state !== 'unmask') continue;
      try {
        replies.push(clients.get(w)!.unmask({ stage: 'unmask', roundId: ROUND, clientId: w, survivors: viewOf.get(w)!, signatures: everySignature }));
      } catch (e) {
        if (!isFedmartError(e, 'CRYPTO_ERROR')) throw e;
        refusals.push(e.message);
      }
    }
    // Assert: nothing revealed can unmask the target…
    expect(leaks(reconstructTarget(ctx, replies)), 'the coordinator reconstructed the target client\'s individual update').toBe(false);
    // …because no view gathers T signatures, so every client that signed refuses to reveal anything.
    expect(T).toBe(17);
    expect(Math.max(...[...signatures.values()].map((list) => list.length))).toBeLessThan(T);
    expect(replies).toEqual([]);
    expect(refusals).toHaveLength(n - refusedToSign.length);
    expect(refusals.every((m) => /valid signature\(s\) from distinct participants on the survivor set, fewer than the 17 required/.test(m))).toBe(true);
  });

  it('a single consistent lie that declares all of u\'s neighbours dropped (to isolate u) is refused by every honest client', () => {
    // Arrange
    const ctx = runUpToMaskedInput();
    const isolating = ctx.ids.filter((id) => id === TARGET || !ctx.graph.get(TARGET)!.includes(id));
    // Act
    const outcomes = ctx.ids.map((w) => {
      try {
        ctx.clients.get(w)!.consistencyCheck({ stage: 'consistency-check', roundId: ROUND, clientId: w, survivors: isolating });
        return 'signed';
      } catch (e) {
        return (e as Error).message;
      }
    });
    // Assert: nobody signs (u has 0 surviving neighbours in the set, or the set omits the client itself)
    expect(outcomes.filter((o) => o === 'signed')).toEqual([]);
    for (const w of isolating) expect(outcomes[w - 1]).toMatch(/survivor 1 has 0 surviving neighbour\(s\) in the set, fewer than t/);
  });

  it('the honest run of the same round unmasks the sum (the fixture is not vacuous)', () => {
    const ctx = runUpToMaskedInput();
    const requests = ctx.server.closeMaskedInput();
    for (const r of requests) ctx.server.receiveConsistencyCheck(ctx.clients.get(r.clientId)!.consistencyCheck(r));
    const unmask = ctx.server.closeConsistencyCheck();
    const replies = unmask.map((r) => ctx.clients.get(r.clientId)!.unmask(r));
    for (const r of replies) ctx.server.receiveUnmask(r);
    const result = ctx.server.closeUnmask();
    expect(result.survivors).toHaveLength(n);
    const expected = ctx.ids.reduce((acc, id) => acc + update(id)[0]!, 0);
    expect(result.weightedSum[0]).toBeCloseTo(expected, 4);
    // With everyone honest and surviving, the coordinator gets self-seed shares only: u's update stays masked.
    expect(leaks(reconstructTarget(ctx, replies))).toBe(false);
  });
});
