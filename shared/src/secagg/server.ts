/**
 * Coordinator half of secure aggregation (Bonawitz et al., CCS 2017, Fig. 4,
 * actively-secure variant of §6; SecAgg+ neighbourhoods, Bell et al.,
 * CCS 2020). Pair: {@link SecAggClient}.
 *
 * A pure, staged state machine. For each stage the orchestrator calls
 * `receive…` for every reply that arrives, then `close…` when the stage's
 * deadline passes; `close…` decides who is still in, checks the thresholds,
 * and returns the next stage's requests (or, after unmasking, the result).
 *
 * - A reply for a stage other than the open one (a straggler) is rejected
 *   with PROTOCOL_MISMATCH and changes no state: late messages are normal on
 *   a network, and accepting a masked input after its sender was declared
 *   dropped would be unsafe.
 * - A malformed reply is rejected with INVALID_MESSAGE and changes no state.
 * - Calling `close…` out of order is an orchestration bug: PROTOCOL_MISMATCH,
 *   and the round is aborted.
 * - Too few clients at any stage: FedmartError('ROUND_FAILED') whose message
 *   names the stage and the counts; the round is aborted.
 *
 * The coordinator sees public keys, relays sealed share bundles it cannot
 * open, and learns only Σ survivors' (weighted, quantized) updates. It does
 * not have to be trusted for that: clients check the signatures it relays
 * and refuse to unmask without a certified survivor set (see `client.ts`).
 *
 * Survivors with fewer than t surviving neighbours are excluded rather than
 * failing the round (Bell et al. 2020): they are treated as dropped, their
 * masked input is taken out of the sum and their mask key recovered
 * instead, from the shares held by every client that sent masked input
 * (excluded clients still sign and unmask). Exclusion runs to a fixpoint,
 * so every client left in the sum has at least t neighbours in the sum.
 */
import { equalBytes, isBytes, wipeBytes } from '../crypto/bytes.ts';
import { SHAMIR_SHARE_BYTES, combineShares, decodeShare, type ShamirShare } from '../crypto/shamir.ts';
import { X25519_KEY_BYTES, getX25519PublicKey, x25519SharedSecrets } from '../crypto/x25519.ts';
import { verifyEd25519 } from '../crypto/ed25519.ts';
import { FedmartError } from '../errors.ts';
import { MaskedSum, type SignedMask } from './mask-prg.ts';
import { advertiseSignedMessage, derivePairwiseSeed, pairwiseSign, survivorsSignedMessage } from './keys.ts';
import {
  SECAGG_PROTOCOL,
  type AdvertiseKeysReply,
  type AdvertiseKeysRequest,
  type ConsistencyCheckReply,
  type ConsistencyCheckRequest,
  type MaskedInputReply,
  type MaskedInputRequest,
  type SealedShares,
  type SecAggStage,
  type ShareKeysReply,
  type ShareKeysRequest,
  type UnmaskReply,
  type UnmaskRequest,
} from './messages.ts';
import { resolveRoundParameters, type ResolvedRoundParameters, type SecAggRoundParameters } from './params.ts';
import { dequantizeSum } from './quantize.ts';

/** Where the coordinator is in the protocol. */
export type SecAggServerState = SecAggStage | 'done' | 'aborted';

/** The outcome of a successful round. */
export interface SecAggResult {
  /** Σ over survivors of w_i · clip(Δ_i), dequantized */
  weightedSum: Float64Array;
  /** Σ over survivors of w_i */
  totalWeight: number;
  /** weightedSum / totalWeight as float32, or null when totalWeight is 0 */
  mean: Float32Array | null;
  /** ids whose masked input is in the sum, ascending */
  survivors: number[];
  /** selected ids whose input is not in the sum, ascending */
  dropped: number[];
  /** of those, clients that sent masked input but were excluded for too few surviving neighbours */
  excluded: number[];
}

interface Advertised {
  encryptionPublicKey: Uint8Array;
  maskingPublicKey: Uint8Array;
  signature: Uint8Array;
}

/**
 * The coordinator's side of one secure-aggregation round.
 *
 * @example
 * const server = new SecAggServer({ roundId, participants, vectorLength, quantization, graphSeed });
 * for (const req of server.advertiseKeysRequests()) send(req);
 * // … server.receiveAdvertiseKeys(reply) for each reply, then at the deadline:
 * const shareKeysRequests = server.closeAdvertiseKeys();
 */
export class SecAggServer {
  readonly params: ResolvedRoundParameters;
  #state: SecAggServerState = 'advertise-keys';
  #participants: ReadonlySet<number>;
  #advertised = new Map<number, Advertised>();
  /** U1: clients that advertised and have ≥ t neighbours that did too */
  #u1 = new Set<number>();
  #sealed = new Map<number, SealedShares[]>();
  /** U2 after pruning */
  #u2 = new Set<number>();
  /** per client in U2: the neighbours it masked with (neighbours in U2) */
  #maskPeers = new Map<number, number[]>();
  #sum: MaskedSum;
  /** clients whose masked input arrived (kept until the survivor set is fixed, to take excluded ones out) */
  #masked = new Map<number, Uint32Array>();
  /** U3: the survivor set, fixed when stage 2 closes */
  #u3 = new Set<number>();
  #u3Sorted: number[] = [];
  /** the bytes every survivor signs over U3 (built once, checked against every signature) */
  #u3Message: Uint8Array = new Uint8Array(0);
  #excluded: number[] = [];
  /** clients that sent masked input (U3 plus the excluded) */
  #online = new Set<number>();
  /** U4: survivors that signed U3 */
  #signatures = new Map<number, Uint8Array>();
  #revealed = new Map<number, UnmaskReply>();

  /**
   * @param params - round settings (validated here; the same checks every client applies)
   * @throws FedmartError CONFIG_ERROR on invalid settings
   */
  constructor(params: SecAggRoundParameters) {
    this.params = resolveRoundParameters(params);
    this.#participants = new Set(this.params.participants);
    this.#sum = new MaskedSum(this.params.vectorLength + 1);
  }

  /** The open stage, or 'done'/'aborted'. */
  get state(): SecAggServerState {
    return this.#state;
  }

  /** Neighbours of a client in the round's graph. */
  #neighbours(id: number): readonly number[] {
    return this.params.graph.neighbours.get(id) ?? [];
  }

  /**
   * Stage 0 requests, one per participant.
   * @returns the setup requests
   * @throws FedmartError PROTOCOL_MISMATCH unless stage 0 is open
   */
  advertiseKeysRequests(): AdvertiseKeysRequest[] {
    this.#expect('advertise-keys', 'advertiseKeysRequests');
    const p = this.params;
    const q = p.quantization;
    return p.participants.map((clientId) => ({
      stage: 'advertise-keys',
      protocol: SECAGG_PROTOCOL,
      roundId: p.roundId,
      clientId,
      participants: [...p.participants],
      vectorLength: p.vectorLength,
      quantization: { clip: q.clip, maxClients: q.maxClients, maxWeight: q.maxWeight, bits: q.bits, rounding: q.rounding },
      neighbourDegree: p.graph.degree,
      threshold: p.threshold,
      signatureThreshold: p.signatureThreshold,
      graphSeed: p.graphSeed.slice(),
      identities: [...p.identities].map(([id, publicKey]) => ({ id, publicKey: publicKey.slice() })),
    }));
  }

  /**
   * Record a client's public keys.
   * @param reply - stage 0 reply
   * @throws FedmartError PROTOCOL_MISMATCH if stage 0 is not open; INVALID_MESSAGE on a malformed, duplicate or unexpected reply (state unchanged)
   */
  receiveAdvertiseKeys(reply: AdvertiseKeysReply): void {
    const from = this.#checkReply('advertise-keys', reply, this.#participants);
    if (this.#advertised.has(from)) throw invalid(`advertise-keys: duplicate reply from client ${from}`);
    const { encryptionPublicKey: c, maskingPublicKey: s } = reply;
    if (!isBytes(c) || c.length !== X25519_KEY_BYTES || !isBytes(s) || s.length !== X25519_KEY_BYTES) throw invalid(`advertise-keys: client ${from}: expected two ${X25519_KEY_BYTES}-byte public keys`);
    for (const [id, other] of this.#advertised) {
      if ([other.encryptionPublicKey, other.maskingPublicKey].some((k) => equalBytes(k, c) || equalBytes(k, s))) throw invalid(`advertise-keys: client ${from} reused a public key of client ${id}`);
    }
    if (equalBytes(c, s)) throw invalid(`advertise-keys: client ${from} advertised the same key twice`);
    // Relaying unsigned keys would only make the neighbours refuse later.
    if (!isBytes(reply.signature) || !verifyEd25519(this.params.identities.get(from)!, advertiseSignedMessage(this.params.roundId, from, c, s), reply.signature)) {
      throw invalid(`advertise-keys: client ${from}: the keys do not carry a valid signature under its identity key`);
    }
    this.#advertised.set(from, { encryptionPublicKey: c.slice(), maskingPublicKey: s.slice(), signature: reply.signature.slice() });
  }

  /**
   * Close stage 0: keep clients with at least t advertising neighbours and
   * send each its neighbours' keys.
   * @returns one share-keys request per remaining client
   * @throws FedmartError ROUND_FAILED if too few clients remain; PROTOCOL_MISMATCH out of order
   */
  closeAdvertiseKeys(): ShareKeysRequest[] {
    this.#expect('advertise-keys', 'closeAdvertiseKeys');
    this.#u1 = this.#prune('advertise-keys', new Set(this.#advertised.keys()), (id) => this.#neighbours(id));
    this.#state = 'share-keys';
    return [...this.#u1].sort((a, b) => a - b).map((clientId) => ({
      stage: 'share-keys',
      roundId: this.params.roundId,
      clientId,
      peers: this.#neighbours(clientId)
        .filter((v) => this.#u1.has(v))
        .map((id) => ({ id, ...this.#advertised.get(id)! })),
    }));
  }

  /**
   * Record a client's sealed share bundles (the coordinator cannot open them).
   * @param reply - stage 1 reply, one bundle per neighbour it was sent
   * @throws FedmartError PROTOCOL_MISMATCH if stage 1 is not open; INVALID_MESSAGE on a malformed, duplicate or unexpected reply (state unchanged)
   */
  receiveShareKeys(reply: ShareKeysReply): void {
    const from = this.#checkReply('share-keys', reply, this.#u1);
    if (this.#sealed.has(from)) throw invalid(`share-keys: duplicate reply from client ${from}`);
    if (!Array.isArray(reply.sealed)) throw invalid(`share-keys: client ${from}: sealed: expected an array`);
    const expected = this.#neighbours(from).filter((v) => this.#u1.has(v));
    const got = reply.sealed.map((s) => s?.to).sort((a, b) => a - b);
    if (got.length !== expected.length || got.some((to, i) => to !== expected[i])) {
      throw invalid(`share-keys: client ${from} must send exactly one bundle to each of [${expected.join(', ')}], got [${got.join(', ')}]`);
    }
    for (const s of reply.sealed) {
      if (s.from !== from || !isBytes(s.box) || s.box.length === 0 || s.box.length > 4096) throw invalid(`share-keys: client ${from}: bundle to ${s.to} is malformed`);
    }
    this.#sealed.set(from, reply.sealed.map((s) => ({ from, to: s.to, box: s.box })));
  }

  /**
   * Close stage 1: keep clients whose secrets have at least t holders still
   * in, and route each client the bundles addressed to it.
   * @returns one masked-input request per remaining client
   * @throws FedmartError ROUND_FAILED if too few clients remain; PROTOCOL_MISMATCH out of order
   */
  closeShareKeys(): MaskedInputRequest[] {
    this.#expect('share-keys', 'closeShareKeys');
    this.#u2 = this.#prune('share-keys', new Set(this.#sealed.keys()), (id) => this.#neighbours(id).filter((v) => this.#u1.has(v)));
    const requests: MaskedInputRequest[] = [];
    for (const u of [...this.#u2].sort((a, b) => a - b)) {
      const peers = this.#neighbours(u).filter((v) => this.#u2.has(v));
      this.#maskPeers.set(u, peers);
      const sealed = peers.map((v) => this.#sealed.get(v)!.find((s) => s.to === u)!);
      requests.push({ stage: 'masked-input', roundId: this.params.roundId, clientId: u, sealed });
    }
    this.#sealed.clear();
    this.#state = 'masked-input';
    return requests;
  }

  /**
   * Add a client's masked input to the running sum.
   * @param reply - stage 2 reply
   * @throws FedmartError PROTOCOL_MISMATCH if stage 2 is not open; INVALID_MESSAGE on a malformed, duplicate or unexpected reply (state unchanged)
   */
  receiveMaskedInput(reply: MaskedInputReply): void {
    const from = this.#checkReply('masked-input', reply, this.#u2);
    if (this.#masked.has(from)) throw invalid(`masked-input: duplicate reply from client ${from}`);
    const y = reply.masked;
    const sum = this.#sum;
    if (!(y instanceof Uint32Array) || y.length !== sum.length) {
      throw invalid(`masked-input: client ${from}: expected a Uint32Array of ${sum.length} words (parameters + weight), got ${y instanceof Uint32Array ? `${y.length} words` : typeof y}`);
    }
    const mask = this.params.quantization.mask;
    if (mask !== 0xffffffff) {
      for (let j = 0; j < y.length; j++) if (y[j]! > mask) throw invalid(`masked-input: client ${from}: word ${j} is outside Z_2^${this.params.quantization.bits}`);
    }
    sum.add(y, 1);
    this.#masked.set(from, y);
  }

  /**
   * Close stage 2: fix the survivor set U3 — excluding, to a fixpoint, any
   * survivor with fewer than t neighbours in U3 — and ask every client that
   * sent masked input to sign it.
   * @returns one consistency-check request per client that sent masked input
   * @throws FedmartError ROUND_FAILED when U3 is smaller than the signature threshold; PROTOCOL_MISMATCH out of order
   */
  closeMaskedInput(): ConsistencyCheckRequest[] {
    this.#expect('masked-input', 'closeMaskedInput');
    const t = this.params.threshold;
    const online = new Set(this.#masked.keys());
    const u3 = new Set(online);
    const inU3 = (u: number) => this.#maskPeers.get(u)!.filter((v) => u3.has(v)).length;
    for (let changed = true; changed; ) {
      changed = false;
      for (const u of [...u3]) if (inU3(u) < t) { u3.delete(u); changed = true; }
    }
    // A client whose input is not in the sum but whose masks are (a neighbour is in U3) needs its
    // mask key back from t holders; every client that sent masked input, excluded ones too, holds shares.
    for (const [w, peers] of this.#maskPeers) {
      if (u3.has(w) || peers.every((v) => !u3.has(v))) continue;
      const holders = peers.filter((v) => online.has(v)).length;
      if (holders < t) this.#fail('masked-input', `client ${w} (${online.has(w) ? 'excluded' : 'dropped'}) has ${holders} neighbour(s) left holding its shares, fewer than the threshold t = ${t}`);
    }
    this.#excluded = [...this.#masked.keys()].filter((u) => !u3.has(u)).sort((a, b) => a - b);
    const sum = this.#sum;
    for (const u of this.#excluded) {
      const y = this.#masked.get(u)!;
      sum.add(y, -1);
    }
    this.#masked.clear();
    this.#online = online;
    this.#u3 = u3;
    this.#u3Sorted = [...u3].sort((a, b) => a - b);
    this.#u3Message = survivorsSignedMessage(this.params.roundId, this.#u3Sorted);
    const T = this.params.signatureThreshold;
    if (u3.size < T) {
      this.#fail('masked-input', `${u3.size} client(s) are left in the survivor set (${this.#excluded.length} excluded for fewer than t = ${t} surviving neighbours), fewer than the ${T} signatures the consistency check needs`);
    }
    this.#state = 'consistency-check';
    // Excluded clients are online and hold shares: they sign and unmask too (their own input stays out).
    return [...online].sort((a, b) => a - b).map((clientId) => ({ stage: 'consistency-check', roundId: this.params.roundId, clientId, survivors: this.#u3Sorted.slice() }));
  }

  /**
   * Record a survivor's signature on U3.
   * @param reply - stage 3 reply
   * @throws FedmartError PROTOCOL_MISMATCH if stage 3 is not open; INVALID_MESSAGE on a malformed, duplicate or invalid signature (state unchanged)
   */
  receiveConsistencyCheck(reply: ConsistencyCheckReply): void {
    const from = this.#checkReply('consistency-check', reply, this.#online);
    if (this.#signatures.has(from)) throw invalid(`consistency-check: duplicate reply from client ${from}`);
    if (!isBytes(reply.signature) || !verifyEd25519(this.params.identities.get(from)!, this.#u3Message, reply.signature)) {
      throw invalid(`consistency-check: client ${from}: not a valid signature on this round's survivor set`);
    }
    this.#signatures.set(from, reply.signature.slice());
  }

  /**
   * Close stage 3: send U3 and the collected signatures to every signer.
   * @returns one unmask request per signer (U4 ⊆ U3)
   * @throws FedmartError ROUND_FAILED with fewer signatures than the threshold; PROTOCOL_MISMATCH out of order
   */
  closeConsistencyCheck(): UnmaskRequest[] {
    this.#expect('consistency-check', 'closeConsistencyCheck');
    const T = this.params.signatureThreshold;
    if (this.#signatures.size < T) this.#fail('consistency-check', `${this.#signatures.size} of ${this.#u3.size} survivors signed the survivor set, fewer than the ${T} signatures clients require`);
    const signatures = [...this.#signatures].sort((a, b) => a[0] - b[0]).map(([id, signature]) => ({ id, signature }));
    this.#state = 'unmask';
    return signatures.map(({ id }) => ({ stage: 'unmask', roundId: this.params.roundId, clientId: id, survivors: this.#u3Sorted.slice(), signatures }));
  }

  /**
   * Record a survivor's revealed shares.
   * @param reply - stage 3 reply
   * @throws FedmartError PROTOCOL_MISMATCH if stage 3 is not open; INVALID_MESSAGE when the reply does not answer exactly what was asked (state unchanged)
   */
  receiveUnmask(reply: UnmaskReply): void {
    const from = this.#checkReply('unmask', reply, new Set(this.#signatures.keys()));
    if (this.#revealed.has(from)) throw invalid(`unmask: duplicate reply from client ${from}`);
    const peers = this.#maskPeers.get(from)!;
    if (!Array.isArray(reply.shares) || reply.shares.length !== peers.length) throw invalid(`unmask: client ${from} must reveal exactly ${peers.length} share(s), one per neighbour it masked with`);
    const expectedKind = new Map<number, string>(peers.map((u) => [u, this.#u3.has(u) ? 'self-seed' : 'mask-key']));
    const seen = new Set<number>();
    for (const s of reply.shares) {
      if (typeof s !== 'object' || s === null || expectedKind.get(s.of) !== s.kind || seen.has(s.of)) throw invalid(`unmask: client ${from} revealed an unexpected share (${String(s?.kind)} of ${String(s?.of)})`);
      if (!isBytes(s.share) || s.share.length !== SHAMIR_SHARE_BYTES) throw invalid(`unmask: client ${from}: share of ${s.of} must be ${SHAMIR_SHARE_BYTES} bytes`);
      seen.add(s.of);
    }
    this.#revealed.set(from, { ...reply, shares: reply.shares.map((s) => ({ ...s, share: s.share.slice() })) });
  }

  /**
   * Close stage 4: reconstruct every survivor's self-mask seed and every
   * dropped client's mask key, remove all masks, and dequantize.
   * @returns the weighted sum of the survivors' updates and their total weight
   * @throws FedmartError ROUND_FAILED when some secret has fewer than t revealed shares; CRYPTO_ERROR when shares are inconsistent or a reconstructed key does not match its advertised public key; PROTOCOL_MISMATCH out of order
   */
  closeUnmask(): SecAggResult {
    this.#expect('unmask', 'closeUnmask');
    const t = this.params.threshold;
    const selfSeedShares = new Map<number, ShamirShare[]>();
    const maskKeyShares = new Map<number, ShamirShare[]>();
    for (const reply of this.#revealed.values()) {
      for (const s of reply.shares) {
        const target = s.kind === 'self-seed' ? selfSeedShares : maskKeyShares;
        let list = target.get(s.of);
        if (!list) target.set(s.of, (list = []));
        try {
          list.push(decodeShare(s.share));
        } catch (cause) {
          this.#abortWith(new FedmartError('CRYPTO_ERROR', `unmask: client ${reply.clientId} sent a malformed share of client ${s.of}'s secret; the round cannot be unmasked`, { cause }));
        }
      }
    }
    const sum = this.#sum;
    const roundId = this.params.roundId;
    // Reconstruct and check every secret first, then remove all masks in one blocked pass.
    const masks: SignedMask[] = [];
    for (const u of [...this.#u3].sort((a, b) => a - b)) {
      const shares = selfSeedShares.get(u) ?? [];
      if (shares.length < t) this.#fail('unmask', `survivor ${u}'s self-mask seed has ${shares.length} revealed share(s) from ${this.#revealed.size} responding client(s), fewer than the threshold t = ${t}`);
      const seed = this.#reconstruct(shares, u, 'self-mask seed');
      if (seed.length !== 32) this.#abortWith(new FedmartError('CRYPTO_ERROR', `unmask: survivor ${u}'s self-mask seed reconstructs to ${seed.length} bytes, expected 32; shares are inconsistent`));
      masks.push({ seed, sign: -1 });
    }
    for (const [u, peers] of this.#maskPeers) {
      if (this.#u3.has(u)) continue;
      const alive = peers.filter((v) => this.#u3.has(v));
      if (alive.length === 0) continue;
      const shares = maskKeyShares.get(u) ?? [];
      if (shares.length < t) this.#fail('unmask', `dropped client ${u}'s mask key has ${shares.length} revealed share(s) from ${this.#revealed.size} responding client(s), fewer than the threshold t = ${t}`);
      const secretKey = this.#reconstruct(shares, u, 'mask key');
      const advertised = this.#advertised.get(u)!.maskingPublicKey;
      if (secretKey.length !== X25519_KEY_BYTES || !equalBytes(getX25519PublicKey(secretKey), advertised)) {
        this.#abortWith(new FedmartError('CRYPTO_ERROR', `unmask: dropped client ${u}'s reconstructed mask key does not match its advertised public key; some revealed shares are forged or inconsistent`));
      }
      const agreed = x25519SharedSecrets(secretKey, alive.map((v) => this.#advertised.get(v)!.maskingPublicKey));
      alive.forEach((v, i) => {
        // v applied pairwiseSign(v, u)·PRG(seed); take it out again.
        masks.push({ seed: derivePairwiseSeed(agreed[i]!, roundId, u, v), sign: pairwiseSign(v, u) === 1 ? -1 : 1 });
        wipeBytes(agreed[i]);
      });
      wipeBytes(secretKey);
    }
    try {
      sum.addMasks(masks);
    } finally {
      for (const m of masks) wipeBytes(m.seed);
    }
    const words = sum.read();
    sum.wipe();
    const { weightedSum, totalWeight } = dequantizeSum(words, this.params.quantization);
    let mean: Float32Array | null = null;
    if (totalWeight > 0) {
      mean = new Float32Array(weightedSum.length);
      for (let j = 0; j < mean.length; j++) mean[j] = weightedSum[j]! / totalWeight;
    }
    const survivors = [...this.#u3].sort((a, b) => a - b);
    this.#state = 'done';
    return { weightedSum, totalWeight, mean, survivors, dropped: this.params.participants.filter((id) => !this.#u3.has(id)), excluded: this.#excluded.slice() };
  }

  /** Abort the round (idempotent); later calls throw PROTOCOL_MISMATCH. */
  abort(): void {
    this.#state = 'aborted';
    this.#revealed.clear();
    this.#sealed.clear();
    this.#masked.clear();
  }

  /**
   * Interpolate from exactly t shares (the lowest holder indices): any t determine the
   * secret, and interpolating through all ~k revealed shares costs O(k²) big-field work
   * per secret without adding a check (a forged share is caught the same way either way:
   * the encoding check, and for mask keys the advertised public key).
   */
  #reconstruct(shares: ShamirShare[], owner: number, what: string): Uint8Array {
    const chosen = shares.slice().sort((a, b) => a.index - b.index).slice(0, this.params.threshold);
    try {
      return combineShares(chosen);
    } catch (cause) {
      this.#abortWith(new FedmartError('CRYPTO_ERROR', `unmask: the ${shares.length} revealed shares of client ${owner}'s ${what} are inconsistent; the round cannot be unmasked`, { cause }));
    }
  }

  /** Iteratively drop clients with fewer than t live neighbours (their secrets would be unrecoverable). */
  #prune(stage: SecAggStage, live: Set<number>, candidates: (id: number) => readonly number[]): Set<number> {
    const t = this.params.threshold;
    const before = live.size;
    let changed = true;
    while (changed) {
      changed = false;
      for (const u of live) {
        if (candidates(u).filter((v) => live.has(v)).length < t) {
          live.delete(u);
          changed = true;
        }
      }
    }
    if (live.size < t + 1) {
      this.#fail(stage, `${before} of ${this.params.participants.length} clients replied and ${live.size} have at least t = ${t} live neighbours; need at least ${t + 1}`);
    }
    return live;
  }

  #checkReply(stage: SecAggStage, reply: { stage?: unknown; roundId?: unknown; clientId?: unknown } | null | undefined, allowed: ReadonlySet<number>): number {
    if (this.#state !== stage) {
      throw new FedmartError('PROTOCOL_MISMATCH', `secure aggregation: a '${stage}' reply arrived while the round is at '${this.#state}'; it was ignored (late or out of order)`);
    }
    if (typeof reply !== 'object' || reply === null || reply.stage !== stage) throw invalid(`${stage}: expected a '${stage}' reply, got stage '${String(reply?.stage)}'`);
    if (reply.roundId !== this.params.roundId) throw invalid(`${stage}: reply for round ${String(reply.roundId)}, this is round ${this.params.roundId}`);
    const from = reply.clientId;
    if (typeof from !== 'number' || !allowed.has(from)) throw invalid(`${stage}: client ${String(from)} is not expected at this stage`);
    return from as number;
  }

  #expect(stage: SecAggStage, method: string): void {
    if (this.#state !== stage) {
      const state = this.#state;
      this.abort();
      throw new FedmartError('PROTOCOL_MISMATCH', `secure aggregation: ${method}() needs stage '${stage}', the round is at '${state}'; stages must run in order — round aborted`);
    }
  }

  #fail(stage: SecAggStage, message: string): never {
    this.#abortWith(new FedmartError('ROUND_FAILED', `secure aggregation failed at stage '${stage}': ${message}`, { details: { stage } }));
  }

  #abortWith(error: FedmartError): never {
    this.abort();
    throw error;
  }
}

function invalid(message: string): FedmartError {
  return new FedmartError('INVALID_MESSAGE', `secure aggregation: ${message}`);
}
