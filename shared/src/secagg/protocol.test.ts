import { describe, expect, it } from 'vitest';
import { FedmartError, isFedmartError, type ErrorCode } from '../errors.ts';
import { SecAggClient } from './client.ts';
import type { AdvertiseKeysRequest, MaskedInputRequest, ShareKeysRequest, UnmaskRequest } from './messages.ts';
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
function makeRound(n = 5, opts: { degree?: number; threshold?: number } = {}) {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const server = new SecAggServer({
    roundId: 'round-7',
    participants: ids,
    vectorLength: L,
    quantization: { clip: 1, maxClients: n, maxWeight: 10, rounding: 'deterministic' },
    neighbourDegree: opts.degree ?? n - 1,
    threshold: opts.threshold,
    graphSeed: new Uint8Array(32).fill(42),
  });
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id)]));
  const updates = new Map(ids.map((id) => [id, Float32Array.from({ length: L }, (_, j) => ((id * 7 + j) % 11) / 10 - 0.5)]));
  const byId = <T extends { clientId: number }>(reqs: T[]) => new Map(reqs.map((r) => [r.clientId, r]));
  /** Run stages 0..2 with `skip` clients silent at the given stage; returns the unmask requests. */
  const toUnmask = (silent: { shareKeys?: number[]; masked?: number[] } = {}) => {
    for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    for (const req of server.closeAdvertiseKeys()) if (!silent.shareKeys?.includes(req.clientId)) server.receiveShareKeys(clients.get(req.clientId)!.shareKeys(req));
    for (const req of server.closeShareKeys()) if (!silent.masked?.includes(req.clientId)) server.receiveMaskedInput(clients.get(req.clientId)!.maskInput(req, updates.get(req.clientId)!, req.clientId));
    return byId(server.closeMaskedInput());
  };
  return { ids, server, clients, updates, byId, toUnmask };
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

  it('a client refuses to reveal both shares of one peer (CRYPTO_ERROR naming the peer) and aborts', () => {
    // Arrange
    const { clients, toUnmask } = makeRound(5);
    const unmask = toUnmask({ masked: [3] });
    const req = unmask.get(1)!;
    expect(req.dropped).toEqual([3]);
    // Act: a lying coordinator also lists 3 as survived
    const forged: UnmaskRequest = { ...req, survived: [...req.survived, 3] };
    const error = expectCode(() => clients.get(1)!.unmask(forged), 'CRYPTO_ERROR', /peer 3 is listed as both dropped and survived/);
    // Assert
    expect(error.details).toEqual({ peer: 3 });
    expect(clients.get(1)!.state).toBe('aborted');
    expectCode(() => clients.get(1)!.unmask(req), 'PROTOCOL_MISMATCH', /aborted/);
  });

  it('a client refuses a peer listed twice, its own id, or a non-neighbour', () => {
    const cases: [(r: UnmaskRequest) => UnmaskRequest, RegExp][] = [
      [(r) => ({ ...r, survived: [...r.survived, r.survived[0]!] }), /listed twice as survived/],
      [(r) => ({ ...r, survived: [...r.survived, r.clientId] }), /our own secrets/],
      [(r) => ({ ...r, dropped: [...r.dropped, 99] }), /peer 99 is not a neighbour/],
    ];
    for (const [forge, message] of cases) {
      const { clients, toUnmask } = makeRound(5);
      const req = toUnmask().get(2)!;
      expectCode(() => clients.get(2)!.unmask(forge(req)), 'CRYPTO_ERROR', message);
    }
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

  it('a client refuses weaker parameters than it accepts (threshold ≤ k/2)', () => {
    const { server, clients } = makeRound(5);
    const req = server.advertiseKeysRequests()[0]!;
    expectCode(() => clients.get(1)!.advertiseKeys({ ...req, threshold: 2 }), 'CONFIG_ERROR', /threshold/);
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
    // The transport authenticates senders; here client 2 replays client 1's keys, so the real owner is refused (Fig. 4: keys distinct).
    server.receiveAdvertiseKeys({ ...reply, clientId: 2 });
    expectCode(() => server.receiveAdvertiseKeys(reply), 'INVALID_MESSAGE', /reused a public key of client 2/);
    expect(server.state).toBe('advertise-keys');
  });

  it('with SecAgg+ (k < n − 1) each client shares only with its k neighbours', () => {
    // Arrange
    const { server, clients } = makeRound(12, { degree: 4 });
    const setup = server.advertiseKeysRequests();
    for (const req of setup) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    // Act
    const shareReqs = server.closeAdvertiseKeys();
    const replies = shareReqs.map((r) => clients.get(r.clientId)!.shareKeys(r));
    // Assert
    expect(server.params.threshold).toBe(3);
    for (const [i, r] of shareReqs.entries()) {
      expect(r.peers).toHaveLength(4);
      expect(replies[i]!.sealed.map((s) => s.to)).toEqual(server.params.graph.neighbours.get(r.clientId));
    }
    expect(isFedmartError(catchError(() => clients.get(1)!.shareKeys(shareReqs[0]!)), 'PROTOCOL_MISMATCH')).toBe(true);
  });
});
