import { describe, expect, it } from 'vitest';
import { FedmartError, isFedmartError, type ErrorCode } from '../errors.ts';
import { generateEd25519KeyPair } from '../crypto/ed25519.ts';
import { SecAggClient } from './client.ts';
import type { AdvertiseKeysRequest, ConsistencyCheckRequest, MaskedInputRequest, ShareKeysRequest, UnmaskRequest } from './messages.ts';
import { SecAggServer } from './server.ts';

const L = 64;

function catchError(fn: () => unknown): FedmartError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FedmartError) return e;
    throw e;
  }
  throw new Error('expected a FedmartError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): FedmartError {
  const e = catchError(fn);
  expect(e.code, e.message).toBe(code);
  if (message) expect(e.message).toMatch(message);
  return e;
}

/** A small round factory: n clients, complete graph unless `degree` is given. */
function makeRound(n = 5, opts: { degree?: number; threshold?: number; signatureThreshold?: number } = {}) {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const keys = new Map(ids.map((id) => [id, generateEd25519KeyPair()]));
  const server = new SecAggServer({
    identities: ids.map((id) => ({ id, publicKey: keys.get(id)!.publicKey })),
    ...(opts.signatureThreshold !== undefined ? { signatureThreshold: opts.signatureThreshold } : {}),
    roundId: 'round-7',
    participants: ids,
    vectorLength: L,
    quantization: { clip: 1, maxClients: n, maxWeight: Math.max(10, n), rounding: 'deterministic' },
    neighbourDegree: opts.degree ?? n - 1,
    threshold: opts.threshold ?? (opts.degree === undefined ? Math.floor((n - 1) / 2) + 1 : undefined),
    graphSeed: new Uint8Array(32).fill(42),
  });
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, keys.get(id)!)]));
  const updates = new Map(ids.map((id) => [id, Float32Array.from({ length: L }, (_, j) => ((id * 7 + j) % 11) / 10 - 0.5)]));
  const byId = <T extends { clientId: number }>(reqs: T[]) => new Map(reqs.map((r) => [r.clientId, r]));
  /** Run stages 0..2 with `silent` clients silent at the given stage; returns the consistency-check requests. */
  const toConsistency = (silent: { shareKeys?: number[]; masked?: number[] } = {}) => {
    for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    for (const req of server.closeAdvertiseKeys()) if (!silent.shareKeys?.includes(req.clientId)) server.receiveShareKeys(clients.get(req.clientId)!.shareKeys(req));
    for (const req of server.closeShareKeys()) if (!silent.masked?.includes(req.clientId)) server.receiveMaskedInput(clients.get(req.clientId)!.maskInput(req, updates.get(req.clientId)!, req.clientId));
    return byId(server.closeMaskedInput());
  };
  /** Run stages 0..3; returns the unmask requests. */
  const toUnmask = (silent: { shareKeys?: number[]; masked?: number[]; consistency?: number[] } = {}) => {
    for (const [id, req] of toConsistency(silent)) if (!silent.consistency?.includes(id)) server.receiveConsistencyCheck(clients.get(id)!.consistencyCheck(req));
    return byId(server.closeConsistencyCheck());
  };
  return { ids, server, clients, keys, updates, byId, toConsistency, toUnmask };
}

describe('secure aggregation protocol (client + server state machines)', () => {
  it('sums the survivors exactly (up to quantization) when one client drops before masking', () => {
    // Arrange
    const { server, clients, updates, toUnmask } = makeRound(5);
    // Act
    const unmask = toUnmask({ masked: [3] });
    for (const [id, req] of unmask) server.receiveUnmask(clients.get(id)!.unmask(req));
    const result = server.closeUnmask();
    // Assert
    expect(result.survivors).toEqual([1, 2, 4, 5]);
    expect(result.dropped).toEqual([3]);
    expect(result.totalWeight).toBe(1 + 2 + 4 + 5);
    for (let j = 0; j < L; j++) {
      const exact = [1, 2, 4, 5].reduce((acc, id) => acc + id * updates.get(id)![j]!, 0);
      expect(Math.abs(result.weightedSum[j]! - exact)).toBeLessThan(1e-6);
      expect(result.mean![j]).toBeCloseTo(exact / 12, 6);
    }
    expect(server.state).toBe('done');
    expect([...clients.values()].map((c) => c.state)).toEqual(['done', 'done', 'masked-input', 'done', 'done']);
  });

  it('a client unmasks only the survivor set it signed (CRYPTO_ERROR otherwise) and aborts', () => {
    // Arrange
    const { clients, toUnmask } = makeRound(5);
    const req = toUnmask({ masked: [3] }).get(1)!;
    expect(req.survivors).toEqual([1, 2, 4, 5]);
    // Act: a lying coordinator now says 3 survived
    const forged: UnmaskRequest = { ...req, survivors: [1, 2, 3, 4, 5] };
    expectCode(() => clients.get(1)!.unmask(forged), 'CRYPTO_ERROR', /differs from the one this client signed/);
    // Assert
    expect(clients.get(1)!.state).toBe('aborted');
    expectCode(() => clients.get(1)!.unmask(req), 'PROTOCOL_MISMATCH', /aborted/);
  });

  it('a client needs T valid signatures from distinct participants on its set before revealing anything', () => {
    const cases: [(r: UnmaskRequest) => UnmaskRequest, RegExp][] = [
      [(r) => ({ ...r, signatures: r.signatures.slice(0, 2) }), /only 2 valid signature/],
      [(r) => ({ ...r, signatures: [r.signatures[0]!, r.signatures[0]!, r.signatures[0]!, r.signatures[0]!] }), /only 1 valid signature/],
      [(r) => ({ ...r, signatures: r.signatures.map((s) => ({ ...s, signature: s.signature.map((b, i) => (i === 5 ? b ^ 1 : b)) })) }), /only 0 valid signature/],
      [(r) => ({ ...r, signatures: r.signatures.map((s, i) => ({ ...s, id: r.signatures[(i + 1) % r.signatures.length]!.id })) }), /only 0 valid signature/],
    ];
    for (const [forge, message] of cases) {
      const { clients, toUnmask, server } = makeRound(5);
      expect(server.params.signatureThreshold).toBe(4);
      const req = toUnmask().get(2)!;
      expectCode(() => clients.get(2)!.unmask(forge(req)), 'CRYPTO_ERROR', message);
    }
  });

  it('a client refuses to sign a survivor set that is malformed, too small, or isolates a survivor', () => {
    const cases: [(r: ConsistencyCheckRequest) => ConsistencyCheckRequest, string, RegExp][] = [
      [(r) => ({ ...r, survivors: r.survivors.slice(0, 3) }), 'ROUND_FAILED', /fewer than the 4 signatures/],
      [(r) => ({ ...r, survivors: [...r.survivors].reverse() }), 'INVALID_MESSAGE', /ascending/],
      [(r) => ({ ...r, survivors: [...r.survivors, 99] }), 'INVALID_MESSAGE', /99 is not a participant/],
    ];
    for (const [forge, code, message] of cases) {
      const { clients, toConsistency } = makeRound(5);
      const req = toConsistency().get(2)!;
      expectCode(() => clients.get(2)!.consistencyCheck(forge(req)), code as ErrorCode, message);
    }
    // SecAgg+: a set that keeps client 1 but removes its neighbours would isolate its input.
    const { clients, toConsistency, server } = makeRound(12, { degree: 4, threshold: 2 });
    const req = toConsistency().get(1)!;
    const isolated = req.survivors.filter((u) => u === 1 || !server.params.graph.neighbours.get(1)!.includes(u));
    expectCode(() => clients.get(1)!.consistencyCheck({ ...req, survivors: isolated }), 'CRYPTO_ERROR', /survivor 1 has 0 surviving neighbour/);
  });

  it('a client refuses peer keys without a valid signature under the peer identity (no key substitution)', () => {
    const { server, clients } = makeRound(4);
    for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    const req = server.closeAdvertiseKeys().find((r) => r.clientId === 1)!;
    const evil = generateEd25519KeyPair().publicKey;
    const substituted: ShareKeysRequest = { ...req, peers: req.peers.map((p, i) => (i === 0 ? { ...p, encryptionPublicKey: evil } : p)) };
    expectCode(() => clients.get(1)!.shareKeys(substituted), 'CRYPTO_ERROR', /do not carry a valid signature/);
  });

  it('a client refuses a round listing another identity key for it', () => {
    const { server, clients } = makeRound(4);
    const req = server.advertiseKeysRequests()[0]!;
    const other = generateEd25519KeyPair().publicKey;
    expectCode(() => clients.get(1)!.advertiseKeys({ ...req, identities: req.identities.map((e) => (e.id === 1 ? { ...e, publicKey: other } : e)) }), 'CRYPTO_ERROR', /another identity key/);
  });

  it('a client rejects requests out of stage order (PROTOCOL_MISMATCH) and aborts', () => {
    // Arrange
    const { server, clients } = makeRound(4);
    const setup = server.advertiseKeysRequests();
    const c1 = clients.get(1)!;
    // Act + Assert: a share-keys request before setup
    const early: ShareKeysRequest = { stage: 'share-keys', roundId: 'round-7', clientId: 1, peers: [] };
    expectCode(() => c1.shareKeys(early), 'PROTOCOL_MISMATCH', /expected a 'advertise-keys' request, got a 'share-keys' request/);
    expect(c1.state).toBe('aborted');
    expectCode(() => c1.advertiseKeys(setup[0]!), 'PROTOCOL_MISMATCH');
    // a request whose stage field disagrees with the method
    const c2 = clients.get(2)!;
    expectCode(() => c2.advertiseKeys({ ...setup[1]!, stage: 'unmask' } as unknown as AdvertiseKeysRequest), 'PROTOCOL_MISMATCH');
    // a request for someone else
    const c3 = clients.get(3)!;
    expectCode(() => c3.advertiseKeys(setup[0]!), 'PROTOCOL_MISMATCH', /addressed to client 1/);
  });

  it('a client refuses weaker parameters than it accepts (signature threshold, or t too low for its γ)', () => {
    const { server, clients, keys } = makeRound(5);
    const req = server.advertiseKeysRequests()[0]!;
    expectCode(() => clients.get(1)!.advertiseKeys({ ...req, signatureThreshold: 3 }), 'CONFIG_ERROR', /signatureThreshold/);
    // A client assuming 40% corrupted clients needs t ≥ 3 in a complete 5-client graph.
    const wary = new SecAggClient(2, keys.get(2)!, { corruptedFraction: 0.4 });
    expectCode(() => wary.advertiseKeys({ ...server.advertiseKeysRequests()[1]!, threshold: 2 }), 'CONFIG_ERROR', /threshold/);
  });

  it('the server rejects stragglers without changing state, and aborts on close out of order', () => {
    // Arrange
    const { server, clients } = makeRound(4);
    const setup = server.advertiseKeysRequests();
    const replies = setup.map((r) => clients.get(r.clientId)!.advertiseKeys(r));
    for (const r of replies.slice(0, 3)) server.receiveAdvertiseKeys(r);
    expectCode(() => server.receiveAdvertiseKeys(replies[0]!), 'INVALID_MESSAGE', /duplicate/);
    server.closeAdvertiseKeys();
    // Act: client 4's keys arrive late
    expectCode(() => server.receiveAdvertiseKeys(replies[3]!), 'PROTOCOL_MISMATCH', /late or out of order/);
    // Assert: state unchanged, round still open
    expect(server.state).toBe('share-keys');
    expectCode(() => server.closeMaskedInput(), 'PROTOCOL_MISMATCH', /closeMaskedInput\(\) needs stage 'masked-input'/);
    expect(server.state).toBe('aborted');
    expectCode(() => server.closeShareKeys(), 'PROTOCOL_MISMATCH');
  });

  it('a tampered or misrouted share bundle fails closed at the receiver (CRYPTO_ERROR)', () => {
    // Arrange
    const { server, clients } = makeRound(4);
    for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    for (const req of server.closeAdvertiseKeys()) server.receiveShareKeys(clients.get(req.clientId)!.shareKeys(req));
    const reqs = server.closeShareKeys();
    const toOne = reqs.find((r) => r.clientId === 1)!;
    const toTwo = reqs.find((r) => r.clientId === 2)!;
    // Act: flip one ciphertext bit
    const tampered: MaskedInputRequest = { ...toOne, sealed: toOne.sealed.map((s, i) => (i === 0 ? { ...s, box: s.box.map((b, k) => (k === 20 ? b ^ 1 : b)) } : s)) };
    expectCode(() => clients.get(1)!.maskInput(tampered, new Float32Array(L), 1), 'CRYPTO_ERROR', /AEAD authentication failed/);
    // Act: hand client 2 a bundle meant for client 1 but relabelled
    const fromThreeToOne = toOne.sealed.find((s) => s.from === 3)!;
    const misrouted: MaskedInputRequest = { ...toTwo, sealed: toTwo.sealed.map((s) => (s.from === 3 ? { ...fromThreeToOne, to: 2 } : s)) };
    expectCode(() => clients.get(2)!.maskInput(misrouted, new Float32Array(L), 1), 'CRYPTO_ERROR');
  });

  it('fails the round with ROUND_FAILED naming the stage and counts when too many drop', () => {
    // share-keys: 3 of 5 reply, t = 3 → each has only 2 live neighbours
    const a = makeRound(5);
    for (const req of a.server.advertiseKeysRequests()) a.server.receiveAdvertiseKeys(a.clients.get(req.clientId)!.advertiseKeys(req));
    for (const req of a.server.closeAdvertiseKeys()) if (req.clientId <= 3) a.server.receiveShareKeys(a.clients.get(req.clientId)!.shareKeys(req));
    const e1 = expectCode(() => a.server.closeShareKeys(), 'ROUND_FAILED', /stage 'share-keys': 3 of 5 clients replied and 0 have at least t = 3/);
    expect(e1.details).toEqual({ stage: 'share-keys' });
    expect(a.server.state).toBe('aborted');
    // unmask: survivors stop answering
    const b = makeRound(5);
    const unmask = b.toUnmask();
    for (const [id, req] of unmask) if (id <= 2) b.server.receiveUnmask(b.clients.get(id)!.unmask(req));
    expectCode(() => b.server.closeUnmask(), 'ROUND_FAILED', /stage 'unmask': survivor 1's self-mask seed has 1 revealed share\(s\) from 2 responding client\(s\), fewer than the threshold t = 3/);
    // consistency-check: too few signatures
    const c = makeRound(5);
    for (const [id, req] of c.toConsistency()) if (id <= 3) c.server.receiveConsistencyCheck(c.clients.get(id)!.consistencyCheck(req));
    expectCode(() => c.server.closeConsistencyCheck(), 'ROUND_FAILED', /3 of 5 survivors signed the survivor set, fewer than the 4/);
  });

  it('the server detects forged mask-key shares (reconstructed key ≠ advertised public key)', () => {
    // Arrange
    const { server, clients, toUnmask } = makeRound(5);
    const unmask = toUnmask({ masked: [5] });
    // Act: every survivor's share of client 5's key is replaced by a share of another secret
    for (const [id, req] of unmask) {
      const reply = clients.get(id)!.unmask(req);
      server.receiveUnmask({ ...reply, shares: reply.shares.map((s) => (s.kind === 'mask-key' ? { ...s, share: s.share.map((b, k) => (k === 67 ? b ^ 1 : b)) } : s)) });
    }
    // Assert
    expectCode(() => server.closeUnmask(), 'CRYPTO_ERROR', /client 5/);
  });

  it('the server rejects malformed replies without changing state', () => {
    const { server, clients } = makeRound(4);
    const setup = server.advertiseKeysRequests();
    const reply = clients.get(1)!.advertiseKeys(setup[0]!);
    expectCode(() => server.receiveAdvertiseKeys({ ...reply, maskingPublicKey: new Uint8Array(31) }), 'INVALID_MESSAGE', /32-byte/);
    expectCode(() => server.receiveAdvertiseKeys({ ...reply, clientId: 9 }), 'INVALID_MESSAGE', /client 9 is not expected/);
    expectCode(() => server.receiveAdvertiseKeys({ ...reply, roundId: 'other' }), 'INVALID_MESSAGE', /round other/);
    // Client 2 replays client 1's keys: the signature is client 1's, so the replay is refused and client 1 is still accepted.
    expectCode(() => server.receiveAdvertiseKeys({ ...reply, clientId: 2 }), 'INVALID_MESSAGE', /client 2: the keys do not carry a valid signature/);
    server.receiveAdvertiseKeys(reply);
    expect(server.state).toBe('advertise-keys');
  });

  it('with SecAgg+ (k < n − 1) each client shares only with its k neighbours', () => {
    // Arrange
    const { server, clients } = makeRound(12, { degree: 4, threshold: 2 });
    const setup = server.advertiseKeysRequests();
    for (const req of setup) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    // Act
    const shareReqs = server.closeAdvertiseKeys();
    const replies = shareReqs.map((r) => clients.get(r.clientId)!.shareKeys(r));
    // Assert
    expect(server.params.threshold).toBe(2);
    for (const [i, r] of shareReqs.entries()) {
      expect(r.peers).toHaveLength(4);
      expect(replies[i]!.sealed.map((s) => s.to)).toEqual(server.params.graph.neighbours.get(r.clientId));
    }
    expect(isFedmartError(catchError(() => clients.get(1)!.shareKeys(shareReqs[0]!)), 'PROTOCOL_MISMATCH')).toBe(true);
  });
});
