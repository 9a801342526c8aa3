/**
 * Client half of secure aggregation: Bonawitz et al., "Practical Secure
 * Aggregation for Privacy-Preserving Machine Learning", CCS 2017, Fig. 4
 * in its actively-secure form (§6: signed advertised keys and a
 * consistency-check round), with the SecAgg+ neighbourhoods of Bell et al.,
 * CCS 2020. Pair: {@link SecAggServer} in `server.ts`.
 *
 * A pure, staged state machine (the `check_stage` idea of Flower's
 * `secaggplus_mod.py`): each method handles one coordinator request and
 * returns the reply. A request for any stage other than the next one throws
 * FedmartError('PROTOCOL_MISMATCH'); any error aborts the client for this
 * round and drops its secrets (fail closed — a client never continues after
 * something it did not expect).
 *
 * Stages: (0) advertise-keys: make X25519 pairs (c for share encryption, s
 * for mask agreement) → public keys, signed with the client's long-term
 * Ed25519 identity key. (1) share-keys: check every neighbour's signature
 * against the identity directory (which the partner checked against its
 * pins), split s_sk and a fresh
 * self-mask seed b into t-of-m Shamir shares for the m neighbours, seal each
 * neighbour's pair under HKDF(X25519(c_sk, c_pk_v)). (2) masked-input:
 * y = q(w·Δ) ‖ w + PRG(b) + Σ_v ±PRG(HKDF(X25519(s_sk, s_pk_v))) mod 2^bits.
 * (3) consistency-check: sign the survivor set U3 — once per round — after
 * checking it is well formed, holds at least T clients, and gives every
 * member at least t surviving neighbours (otherwise a coordinator could
 * declare all of a client's neighbours dropped and isolate its input).
 * (4) unmask: only for the very set it signed, and only with at least T
 * valid signatures on it from distinct participants, reveal for each
 * neighbour the b-share if it is in U3, the s_sk-share if not. The client
 * decides which from the certified set; the coordinator's word is not used.
 *
 * Why this stops a coordinator lying about dropouts: honest clients sign one
 * set per round and T > (n + c)/2, so at most one survivor set can gather T
 * signatures; all honest holders then reveal the same kind of share for each
 * peer, and the other kind can come only from corrupted neighbours, fewer
 * than t by the SecAgg+ parameter choice (`secagg-plus-params.ts`).
 */
import { randomBytes } from 'node:crypto';
import { aeadOpen, aeadSeal, encodeAssociatedData } from '../crypto/aead.ts';
import { concatBytes, equalBytes, isBytes, u32be, wipeBytes } from '../crypto/bytes.ts';
import { MASK_SEED_BYTES, addMasks, type SignedMask } from './mask-prg.ts';
import { SHAMIR_SHARE_BYTES, decodeShare, encodeShare, splitSecret, type ShamirShare } from '../crypto/shamir.ts';
import { X25519_KEY_BYTES, generateX25519KeyPair, x25519SharedSecrets, type X25519KeyPair } from '../crypto/x25519.ts';
import { ED25519_KEY_BYTES, getEd25519PublicKey, signEd25519, verifyEd25519, type Ed25519KeyPair } from '../crypto/ed25519.ts';
import { FedmartError } from '../errors.ts';
import { SHARE_BOX_PURPOSE, advertiseSignedMessage, derivePairwiseSeed, deriveShareKey, pairwiseSign, survivorsSignedMessage } from './keys.ts';
import {
  SECAGG_PROTOCOL,
  SECAGG_STAGES,
  type AdvertiseKeysReply,
  type AdvertiseKeysRequest,
  type ConsistencyCheckReply,
  type ConsistencyCheckRequest,
  type MaskedInputReply,
  type MaskedInputRequest,
  type PeerKeys,
  type RevealedShare,
  type SecAggStage,
  type ShareKeysReply,
  type ShareKeysRequest,
  type UnmaskReply,
  type UnmaskRequest,
} from './messages.ts';
import { resolveRoundParameters, type ResolvedRoundParameters } from './params.ts';
import { DEFAULT_CORRUPTED_FRACTION } from './secagg-plus-params.ts';
import { quantizeWeightedUpdate } from './quantize.ts';

/** Plaintext of a sealed bundle: from (4) ‖ to (4) ‖ share of s_sk (68) ‖ share of b (68). */
const BUNDLE_BYTES = 8 + 2 * SHAMIR_SHARE_BYTES;

/** Where a client is in the protocol. */
export type SecAggClientState = SecAggStage | 'done' | 'aborted';

interface HeldShares {
  maskKey: ShamirShare;
  selfSeed: ShamirShare;
}

/** Options of {@link SecAggClient}. */
export interface SecAggClientOptions {
  /** γ this client assumes: it refuses a round whose t or signature threshold is too low for it; default {@link DEFAULT_CORRUPTED_FRACTION} */
  corruptedFraction?: number;
}

/**
 * One client's side of one secure-aggregation round.
 *
 * @example
 * const client = new SecAggClient(7, identityKeyPair);
 * send(client.advertiseKeys(setupRequest));
 * send(client.shareKeys(shareKeysRequest));
 * send(client.maskInput(maskedInputRequest, update, exampleCount));
 * send(client.consistencyCheck(consistencyRequest));
 * send(client.unmask(unmaskRequest));
 */
export class SecAggClient {
  readonly clientId: number;
  #identity: Ed25519KeyPair;
  #corruptedFraction: number;
  /** the survivor set this client signed (it signs one per round) */
  #signedSurvivors: number[] | null = null;
  #state: SecAggClientState = 'advertise-keys';
  #params: ResolvedRoundParameters | null = null;
  #neighbours = new Set<number>();
  #encryptionKeys: X25519KeyPair | null = null;
  #maskingKeys: X25519KeyPair | null = null;
  #selfSeed: Uint8Array | null = null;
  #peers = new Map<number, PeerKeys>();
  /** neighbours whose bundles we hold = neighbours we masked with */
  #held = new Map<number, HeldShares>();

  /**
   * @param clientId - this client's secure-aggregation id (positive uint32), assigned by the coordinator
   * @param identity - this partner's long-term Ed25519 identity key pair (signs advertised keys and the survivor set)
   * @param options - the corrupted fraction this client assumes
   * @throws RangeError on an invalid id; TypeError on a malformed identity key pair
   */
  constructor(clientId: number, identity: Ed25519KeyPair, options: SecAggClientOptions = {}) {
    if (!Number.isSafeInteger(clientId) || clientId < 1 || clientId > 0xffffffff) throw new RangeError(`SecAggClient: clientId: expected a positive uint32, got ${String(clientId)}`);
    if (typeof identity !== 'object' || identity === null || !isBytes(identity.secretKey) || identity.secretKey.length !== ED25519_KEY_BYTES || !isBytes(identity.publicKey) || !equalBytes(getEd25519PublicKey(identity.secretKey), identity.publicKey)) {
      throw new TypeError('SecAggClient: identity: expected an Ed25519 key pair { secretKey, publicKey } (32 bytes each, matching)');
    }
    this.clientId = clientId;
    this.#identity = identity;
    this.#corruptedFraction = options.corruptedFraction ?? DEFAULT_CORRUPTED_FRACTION;
  }

  /** The stage whose request the client expects next, or 'done'/'aborted'. */
  get state(): SecAggClientState {
    return this.#state;
  }

  /**
   * Stage 0: accept the round parameters and advertise two fresh public keys.
   * @param request - the coordinator's setup request
   * @returns the public keys
   * @throws FedmartError PROTOCOL_MISMATCH out of order or for another client/protocol; CONFIG_ERROR on parameters the client refuses
   */
  advertiseKeys(request: AdvertiseKeysRequest): AdvertiseKeysReply {
    return this.#run('advertise-keys', request, () => {
      if (request.protocol !== SECAGG_PROTOCOL) throw mismatch(`expected protocol ${SECAGG_PROTOCOL}, got ${String(request.protocol)}; upgrade the older side`);
      const params = resolveRoundParameters({
        roundId: request.roundId,
        participants: request.participants,
        vectorLength: request.vectorLength,
        quantization: request.quantization,
        neighbourDegree: request.neighbourDegree,
        threshold: request.threshold,
        signatureThreshold: request.signatureThreshold,
        // Our own γ: the resolver refuses a t or signature threshold too low for it.
        corruptedFraction: this.#corruptedFraction,
        graphSeed: request.graphSeed,
        identities: request.identities,
      });
      const neighbours = params.graph.neighbours.get(this.clientId);
      if (!neighbours) throw mismatch(`client ${this.clientId} is not among the round's participants`);
      const mine = params.identities.get(this.clientId)!;
      if (!equalBytes(mine, this.#identity.publicKey)) throw new FedmartError('CRYPTO_ERROR', `secure aggregation: the round lists another identity key for client ${this.clientId} than this partner's own; refusing to take part`);
      this.#params = params;
      this.#neighbours = new Set(neighbours);
      this.#encryptionKeys = generateX25519KeyPair();
      this.#maskingKeys = generateX25519KeyPair();
      const c = this.#encryptionKeys.publicKey;
      const sk = this.#maskingKeys.publicKey;
      return {
        stage: 'advertise-keys',
        roundId: params.roundId,
        clientId: this.clientId,
        encryptionPublicKey: c,
        maskingPublicKey: sk,
        signature: signEd25519(this.#identity.secretKey, advertiseSignedMessage(params.roundId, this.clientId, c, sk)),
      };
    });
  }

  /**
   * Stage 1: share s_sk and the self-mask seed with the neighbours that advertised keys.
   * @param request - the neighbours' public keys
   * @returns one sealed share bundle per neighbour
   * @throws FedmartError PROTOCOL_MISMATCH out of order; INVALID_MESSAGE on bad peers or keys; ROUND_FAILED with fewer than t neighbours
   */
  shareKeys(request: ShareKeysRequest): ShareKeysReply {
    return this.#run('share-keys', request, () => {
      const params = this.#params!;
      if (!Array.isArray(request.peers)) throw invalid('share-keys: peers: expected an array');
      const keys = [this.#encryptionKeys!.publicKey, this.#maskingKeys!.publicKey];
      for (const peer of request.peers) {
        if (typeof peer !== 'object' || peer === null) throw invalid('share-keys: peers: expected objects');
        if (!this.#neighbours.has(peer.id)) throw invalid(`share-keys: peer ${String(peer.id)} is not a neighbour of client ${this.clientId} in the round's graph`);
        if (this.#peers.has(peer.id)) throw invalid(`share-keys: peer ${peer.id} listed twice`);
        for (const k of [peer.encryptionPublicKey, peer.maskingPublicKey]) {
          if (!isBytes(k) || k.length !== X25519_KEY_BYTES) throw invalid(`share-keys: peer ${peer.id}: expected two ${X25519_KEY_BYTES}-byte public keys`);
          // Bonawitz et al. Fig. 4 round 1: all advertised keys must be distinct.
          if (keys.some((seen) => equalBytes(seen, k))) throw new FedmartError('CRYPTO_ERROR', `share-keys: peer ${peer.id} advertised a public key already in use in this round; refusing to share`);
          keys.push(k);
        }
        // Bonawitz et al. §6 round 1: the keys must carry the peer's signature, so the relay cannot substitute its own.
        if (!isBytes(peer.signature) || !verifyEd25519(params.identities.get(peer.id)!, advertiseSignedMessage(params.roundId, peer.id, peer.encryptionPublicKey, peer.maskingPublicKey), peer.signature)) {
          throw new FedmartError('CRYPTO_ERROR', `secure aggregation: share-keys: the keys of peer ${peer.id} do not carry a valid signature under its identity key; the coordinator may be substituting keys — refusing to share`, { details: { peer: peer.id } });
        }
        this.#peers.set(peer.id, peer);
      }
      const t = params.threshold;
      if (this.#peers.size < t) throw roundFailed('share-keys', `client ${this.clientId} has ${this.#peers.size} neighbour(s) with keys, fewer than the threshold t = ${t}`);
      const ids = [...this.#peers.keys()].sort((a, b) => a - b);
      const selfSeed = new Uint8Array(randomBytes(MASK_SEED_BYTES));
      this.#selfSeed = selfSeed;
      const maskKeyShares = splitSecret(this.#maskingKeys!.secretKey, t, ids.length);
      const selfSeedShares = splitSecret(selfSeed, t, ids.length);
      const secrets = x25519SharedSecrets(this.#encryptionKeys!.secretKey, ids.map((id) => this.#peers.get(id)!.encryptionPublicKey));
      const sealed = ids.map((to, i) => {
        const key = deriveShareKey(secrets[i]!, params.roundId, this.clientId, to);
        const plaintext = concatBytes(u32be(this.clientId), u32be(to), encodeShare(maskKeyShares[i]!), encodeShare(selfSeedShares[i]!));
        const box = aeadSeal(key, plaintext, encodeAssociatedData({ purpose: SHARE_BOX_PURPOSE, round: params.roundId, sender: this.clientId, receiver: to }));
        wipeBytes(key, plaintext, secrets[i]);
        return { from: this.clientId, to, box };
      });
      return { stage: 'share-keys', roundId: params.roundId, clientId: this.clientId, sealed };
    });
  }

  /**
   * Stage 2: open the bundles addressed to us, then send the masked update.
   * The client masks with exactly the neighbours whose bundles it received;
   * the coordinator routes bundles, so it knows that set too.
   * @param request - the sealed bundles addressed to this client
   * @param update - this client's update Δ (length = vectorLength)
   * @param weight - integer weight (example count), 0..maxWeight
   * @returns the masked vector
   * @throws FedmartError PROTOCOL_MISMATCH out of order; CRYPTO_ERROR on a bundle that does not verify; ROUND_FAILED with fewer than t bundles; INVALID_UPDATE on a wrong-length or non-finite update
   */
  maskInput(request: MaskedInputRequest, update: Float32Array, weight: number): MaskedInputReply {
    return this.#run('masked-input', request, () => {
      const params = this.#params!;
      if (!(update instanceof Float32Array) || update.length !== params.vectorLength) {
        throw new FedmartError('INVALID_UPDATE', `masked-input: expected a Float32Array of ${params.vectorLength} parameters, got ${update instanceof Float32Array ? `length ${update.length}` : typeof update}; the update must match the global model`);
      }
      if (!Array.isArray(request.sealed)) throw invalid('masked-input: sealed: expected an array');
      const senders = request.sealed.map((s) => s?.from);
      const secrets = x25519SharedSecrets(
        this.#encryptionKeys!.secretKey,
        senders.map((from) => {
          const peer = this.#peers.get(from);
          if (!peer) throw invalid(`masked-input: bundle from ${String(from)}, which is not a neighbour that received our shares`);
          return peer.encryptionPublicKey;
        }),
      );
      request.sealed.forEach((sealed, i) => {
        const from = sealed.from;
        if (sealed.to !== this.clientId) throw invalid(`masked-input: bundle from ${from} is addressed to ${String(sealed.to)}, not to client ${this.clientId}`);
        if (this.#held.has(from)) throw invalid(`masked-input: two bundles from ${from}`);
        if (!isBytes(sealed.box)) throw invalid(`masked-input: bundle from ${from}: expected binary box`);
        const key = deriveShareKey(secrets[i]!, params.roundId, from, this.clientId);
        const plaintext = aeadOpen(key, sealed.box, encodeAssociatedData({ purpose: SHARE_BOX_PURPOSE, round: params.roundId, sender: from, receiver: this.clientId }));
        wipeBytes(key, secrets[i]);
        const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
        if (plaintext.length !== BUNDLE_BYTES || view.getUint32(0) !== from || view.getUint32(4) !== this.clientId) {
          throw new FedmartError('CRYPTO_ERROR', `masked-input: bundle from ${from} carries the wrong sender/receiver or length; refusing it`);
        }
        this.#held.set(from, { maskKey: decodeShare(plaintext.subarray(8, 8 + SHAMIR_SHARE_BYTES)), selfSeed: decodeShare(plaintext.subarray(8 + SHAMIR_SHARE_BYTES)) });
        wipeBytes(plaintext);
      });
      if (this.#held.size < params.threshold) {
        throw roundFailed('masked-input', `client ${this.clientId} received share bundles from ${this.#held.size} neighbour(s), fewer than the threshold t = ${params.threshold}`);
      }
      const y = quantizeWeightedUpdate(update, weight, params.quantization);
      const maskPeers = [...this.#held.keys()].sort((a, b) => a - b);
      const agreed = x25519SharedSecrets(this.#maskingKeys!.secretKey, maskPeers.map((v) => this.#peers.get(v)!.maskingPublicKey));
      const pairwise: SignedMask[] = maskPeers.map((v, i) => ({ seed: derivePairwiseSeed(agreed[i]!, params.roundId, this.clientId, v), sign: pairwiseSign(this.clientId, v) }));
      wipeBytes(...agreed);
      try {
        addMasks(y, [{ seed: this.#selfSeed!, sign: 1 }, ...pairwise]);
      } finally {
        for (const m of pairwise) wipeBytes(m.seed);
      }
      const mask = params.quantization.mask;
      if (mask !== 0xffffffff) for (let j = 0; j < y.length; j++) y[j] = (y[j]! & mask) >>> 0;
      // Our own secrets are no longer needed: neighbours hold the shares.
      this.#wipeOwnSecrets();
      return { stage: 'masked-input', roundId: params.roundId, clientId: this.clientId, masked: y };
    });
  }

  /**
   * Stage 3: sign the survivor set U3 (once per round), after checking it.
   * @param request - the survivor set
   * @returns the signature on (round, U3)
   * @throws FedmartError INVALID_MESSAGE on a malformed set; CRYPTO_ERROR when the set leaves some member with fewer than t surviving neighbours (it would isolate that client's input); ROUND_FAILED when it is smaller than the signature threshold; PROTOCOL_MISMATCH out of order
   */
  consistencyCheck(request: ConsistencyCheckRequest): ConsistencyCheckReply {
    return this.#run('consistency-check', request, () => {
      const params = this.#params!;
      const survivors = checkSurvivorSet(request.survivors, params);
      // A set that omits this client is safe to sign: its input then stays masked by its self-mask, which is never revealed.
      if (survivors.length < params.signatureThreshold) {
        throw roundFailed('consistency-check', `the survivor set has ${survivors.length} client(s), fewer than the ${params.signatureThreshold} signatures a client requires`);
      }
      const inSet = new Set(survivors);
      for (const u of survivors) {
        const alive = params.graph.neighbours.get(u)!.filter((v) => inSet.has(v)).length;
        if (alive < params.threshold) {
          throw new FedmartError('CRYPTO_ERROR', `secure aggregation: consistency-check: survivor ${u} has ${alive} surviving neighbour(s) in the set, fewer than t = ${params.threshold}; unmasking it would expose its individual input — refusing to sign`, { details: { peer: u } });
        }
      }
      this.#signedSurvivors = survivors;
      return { stage: 'consistency-check', roundId: params.roundId, clientId: this.clientId, signature: signEd25519(this.#identity.secretKey, survivorsSignedMessage(params.roundId, survivors)) };
    });
  }

  /**
   * Stage 4: reveal, for each neighbour we hold shares of, the self-seed
   * share if it is in the certified survivor set and the mask-key share if
   * not — only if the set is the one we signed and at least T distinct
   * participants signed it too.
   * @param request - the survivor set and the signatures collected on it
   * @returns the revealed shares
   * @throws FedmartError CRYPTO_ERROR (naming the problem) when the set differs from the one we signed, or when fewer than T valid signatures support it — the coordinator may be showing clients different views, and no share is revealed; PROTOCOL_MISMATCH out of order
   */
  unmask(request: UnmaskRequest): UnmaskReply {
    return this.#run('unmask', request, () => {
      const params = this.#params!;
      if (!Array.isArray(request.survivors) || !Array.isArray(request.signatures)) throw invalid('unmask: expected survivors and signatures arrays');
      const signed = this.#signedSurvivors!;
      if (request.survivors.length !== signed.length || request.survivors.some((u, i) => u !== signed[i])) {
        throw new FedmartError('CRYPTO_ERROR', `secure aggregation: unmask: the survivor set differs from the one this client signed (${request.survivors.length} vs ${signed.length} clients); the coordinator is showing different views — refusing to reveal any share`);
      }
      const message = survivorsSignedMessage(params.roundId, signed);
      const signers = new Set<number>();
      for (const entry of request.signatures) {
        if (typeof entry !== 'object' || entry === null || signers.has(entry.id) || !isBytes(entry.signature)) continue;
        const key = params.identities.get(entry.id);
        if (key && verifyEd25519(key, message, entry.signature)) signers.add(entry.id);
        if (signers.size >= params.signatureThreshold) break;
      }
      if (signers.size < params.signatureThreshold) {
        throw new FedmartError(
          'CRYPTO_ERROR',
          `secure aggregation: unmask: only ${signers.size} valid signature(s) from distinct participants on the survivor set, fewer than the ${params.signatureThreshold} required; the coordinator may be showing clients different survivor sets — refusing to reveal any share`,
          { details: { signatures: signers.size, required: params.signatureThreshold } },
        );
      }
      const inSet = new Set(signed);
      const shares: RevealedShare[] = [];
      for (const [id, held] of [...this.#held].sort((a, b) => a[0] - b[0])) {
        shares.push(inSet.has(id) ? { of: id, kind: 'self-seed', share: encodeShare(held.selfSeed) } : { of: id, kind: 'mask-key', share: encodeShare(held.maskKey) });
      }
      this.#wipeHeldShares();
      return { stage: 'unmask', roundId: params.roundId, clientId: this.clientId, shares };
    });
  }

  /** Abort this round and drop every secret (idempotent). */
  abort(): void {
    this.#state = 'aborted';
    this.#wipeOwnSecrets();
    this.#wipeHeldShares();
  }

  #run<T>(stage: SecAggStage, request: { stage?: unknown; roundId?: unknown; clientId?: unknown } | null | undefined, body: () => T): T {
    if (this.#state !== stage) {
      const got = typeof request === 'object' && request !== null ? String(request.stage) : String(request);
      const error = mismatch(
        this.#state === 'aborted' || this.#state === 'done'
          ? `client ${this.clientId} is ${this.#state} for this round; got a '${stage}' request (stage field '${got}'). Start a new round.`
          : `client ${this.clientId} expected a '${this.#state}' request, got a '${stage}' request; stages must run in order — aborting this round`,
      );
      this.abort();
      throw error;
    }
    try {
      if (typeof request !== 'object' || request === null || request.stage !== stage) throw mismatch(`expected a '${stage}' request, got stage '${String(request?.stage)}'`);
      if (request.clientId !== this.clientId) throw mismatch(`request is addressed to client ${String(request.clientId)}, this is client ${this.clientId}`);
      if (this.#params !== null && request.roundId !== this.#params.roundId) throw mismatch(`request is for round ${String(request.roundId)}, this client is in round ${this.#params.roundId}`);
      const reply = body();
      this.#state = SECAGG_STAGES[SECAGG_STAGES.indexOf(stage) + 1] ?? 'done';
      return reply;
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  #wipeOwnSecrets(): void {
    wipeBytes(this.#encryptionKeys?.secretKey, this.#maskingKeys?.secretKey, this.#selfSeed);
    this.#encryptionKeys = null;
    this.#maskingKeys = null;
    this.#selfSeed = null;
  }

  #wipeHeldShares(): void {
    for (const held of this.#held.values()) wipeBytes(held.maskKey.value, held.selfSeed.value);
    this.#held.clear();
  }
}

/**
 * Check a survivor set as both sides must: ascending, distinct participants.
 * @throws FedmartError INVALID_MESSAGE otherwise
 */
export function checkSurvivorSet(survivors: unknown, params: ResolvedRoundParameters): number[] {
  if (!Array.isArray(survivors)) throw invalid('consistency-check: survivors: expected an array of client ids');
  survivors.forEach((u, i) => {
    if (!params.graph.neighbours.has(u)) throw invalid(`consistency-check: survivors: ${String(u)} is not a participant`);
    if (i > 0 && !(u > survivors[i - 1])) throw invalid('consistency-check: survivors: expected ascending, distinct ids');
  });
  return survivors.slice() as number[];
}

function mismatch(message: string): FedmartError {
  return new FedmartError('PROTOCOL_MISMATCH', `secure aggregation: ${message}`);
}

function invalid(message: string): FedmartError {
  return new FedmartError('INVALID_MESSAGE', `secure aggregation: ${message}`);
}

function roundFailed(stage: SecAggStage, message: string): FedmartError {
  return new FedmartError('ROUND_FAILED', `secure aggregation failed at stage '${stage}': ${message}`, { details: { stage } });
}
