/**
 * Client half of secure aggregation: Bonawitz et al., "Practical Secure
 * Aggregation for Privacy-Preserving Machine Learning", CCS 2017, Fig. 4
 * (honest-but-curious variant), with the SecAgg+ neighbourhoods of Bell et
 * al., CCS 2020. Pair: {@link SecAggServer} in `server.ts`.
 *
 * A pure, staged state machine (the `check_stage` idea of Flower's
 * `secaggplus_mod.py`): each method handles one coordinator request and
 * returns the reply. A request for any stage other than the next one throws
 * FedmartError('PROTOCOL_MISMATCH'); any error aborts the client for this
 * round and drops its secrets (fail closed — a client never continues after
 * something it did not expect).
 *
 * Stages: (0) advertise-keys: make X25519 pairs (c for share encryption, s
 * for mask agreement) → public keys. (1) share-keys: split s_sk and a fresh
 * self-mask seed b into t-of-m Shamir shares for the m neighbours, seal each
 * neighbour's pair under HKDF(X25519(c_sk, c_pk_v)). (2) masked-input:
 * y = q(w·Δ) ‖ w + PRG(b) + Σ_v ±PRG(HKDF(X25519(s_sk, s_pk_v))) mod 2^bits.
 * (3) unmask: for each neighbour, the b-share if it survived or the
 * s_sk-share if it dropped — never both for the same neighbour.
 */
import { randomBytes } from 'node:crypto';
import { aeadOpen, aeadSeal, encodeAssociatedData } from '../crypto/aead.ts';
import { concatBytes, equalBytes, isBytes, u32be, wipeBytes } from '../crypto/bytes.ts';
import { PRG_SEED_BYTES, addExpandedSeed } from '../crypto/prg.ts';
import { SHAMIR_SHARE_BYTES, decodeShare, encodeShare, splitSecret, type ShamirShare } from '../crypto/shamir.ts';
import { X25519_KEY_BYTES, generateX25519KeyPair, x25519SharedSecrets, type X25519KeyPair } from '../crypto/x25519.ts';
import { FedmartError } from '../errors.ts';
import { SHARE_BOX_PURPOSE, derivePairwiseSeed, deriveShareKey, pairwiseSign } from './keys.ts';
import {
  SECAGG_PROTOCOL,
  type AdvertiseKeysReply,
  type AdvertiseKeysRequest,
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
import { quantizeWeightedUpdate } from './quantize.ts';

/** Plaintext of a sealed bundle: from (4) ‖ to (4) ‖ share of s_sk (68) ‖ share of b (68). */
const BUNDLE_BYTES = 8 + 2 * SHAMIR_SHARE_BYTES;

/** Where a client is in the protocol. */
export type SecAggClientState = SecAggStage | 'done' | 'aborted';

interface HeldShares {
  maskKey: ShamirShare;
  selfSeed: ShamirShare;
}

/**
 * One client's side of one secure-aggregation round.
 *
 * @example
 * const client = new SecAggClient(7);
 * send(client.advertiseKeys(setupRequest));
 * send(client.shareKeys(shareKeysRequest));
 * send(client.maskInput(maskedInputRequest, update, exampleCount));
 * send(client.unmask(unmaskRequest));
 */
export class SecAggClient {
  readonly clientId: number;
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
   * @throws RangeError on an invalid id
   */
  constructor(clientId: number) {
    if (!Number.isSafeInteger(clientId) || clientId < 1 || clientId > 0xffffffff) throw new RangeError(`SecAggClient: clientId: expected a positive uint32, got ${String(clientId)}`);
    this.clientId = clientId;
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
        graphSeed: request.graphSeed,
      });
      const neighbours = params.graph.neighbours.get(this.clientId);
      if (!neighbours) throw mismatch(`client ${this.clientId} is not among the round's participants`);
      this.#params = params;
      this.#neighbours = new Set(neighbours);
      this.#encryptionKeys = generateX25519KeyPair();
      this.#maskingKeys = generateX25519KeyPair();
      return {
        stage: 'advertise-keys',
        roundId: params.roundId,
        clientId: this.clientId,
        encryptionPublicKey: this.#encryptionKeys.publicKey,
        maskingPublicKey: this.#maskingKeys.publicKey,
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
        this.#peers.set(peer.id, peer);
      }
      const t = params.threshold;
      if (this.#peers.size < t) throw roundFailed('share-keys', `client ${this.clientId} has ${this.#peers.size} neighbour(s) with keys, fewer than the threshold t = ${t}`);
      const ids = [...this.#peers.keys()].sort((a, b) => a - b);
      const selfSeed = new Uint8Array(randomBytes(PRG_SEED_BYTES));
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
      addExpandedSeed(y, this.#selfSeed!, 1);
      const maskPeers = [...this.#held.keys()].sort((a, b) => a - b);
      const agreed = x25519SharedSecrets(this.#maskingKeys!.secretKey, maskPeers.map((v) => this.#peers.get(v)!.maskingPublicKey));
      maskPeers.forEach((v, i) => {
        const seed = derivePairwiseSeed(agreed[i]!, params.roundId, this.clientId, v);
        addExpandedSeed(y, seed, pairwiseSign(this.clientId, v));
        wipeBytes(seed, agreed[i]);
      });
      const mask = params.quantization.mask;
      if (mask !== 0xffffffff) for (let j = 0; j < y.length; j++) y[j] = (y[j]! & mask) >>> 0;
      // Our own secrets are no longer needed: neighbours hold the shares.
      this.#wipeOwnSecrets();
      return { stage: 'masked-input', roundId: params.roundId, clientId: this.clientId, masked: y };
    });
  }

  /**
   * Stage 3: reveal, for each listed neighbour, the share the coordinator
   * needs — the self-seed share of a survivor or the mask-key share of a
   * dropped neighbour. Refuses to reveal both for one neighbour.
   * @param request - who dropped and who survived among our neighbours
   * @returns the revealed shares
   * @throws FedmartError CRYPTO_ERROR naming the peer if a neighbour is listed as both dropped and survived (or twice), or if we hold no share for it; ROUND_FAILED with fewer than t survivors; PROTOCOL_MISMATCH out of order
   */
  unmask(request: UnmaskRequest): UnmaskReply {
    return this.#run('unmask', request, () => {
      const params = this.#params!;
      if (!Array.isArray(request.dropped) || !Array.isArray(request.survived)) throw invalid('unmask: expected dropped and survived id arrays');
      const asked = new Map<number, 'dropped' | 'survived'>();
      for (const [list, kind] of [[request.dropped, 'dropped'], [request.survived, 'survived']] as const) {
        for (const id of list) {
          const previous = asked.get(id);
          if (previous !== undefined) {
            throw new FedmartError(
              'CRYPTO_ERROR',
              previous === kind
                ? `unmask: peer ${id} is listed twice as ${kind}; refusing to reveal any share`
                : `unmask: peer ${id} is listed as both dropped and survived; revealing both its mask-key and self-seed shares would unmask its input — refusing`,
              { details: { peer: id } },
            );
          }
          if (id === this.clientId) throw new FedmartError('CRYPTO_ERROR', `unmask: asked to reveal a share of our own secrets (client ${id}); refusing`, { details: { peer: id } });
          if (!this.#held.has(id)) throw new FedmartError('CRYPTO_ERROR', `unmask: peer ${String(id)} is not a neighbour we masked with; refusing`, { details: { peer: id } });
          asked.set(id, kind);
        }
      }
      if (request.survived.length < params.threshold) {
        throw roundFailed('unmask', `client ${this.clientId} was told ${request.survived.length} neighbour(s) survived, fewer than the threshold t = ${params.threshold}`);
      }
      const shares: RevealedShare[] = [];
      for (const [id, kind] of asked) {
        const held = this.#held.get(id)!;
        shares.push(kind === 'dropped' ? { of: id, kind: 'mask-key', share: encodeShare(held.maskKey) } : { of: id, kind: 'self-seed', share: encodeShare(held.selfSeed) });
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
      const next = ['advertise-keys', 'share-keys', 'masked-input', 'unmask', 'done'] as const;
      this.#state = next[next.indexOf(stage) + 1]!;
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

function mismatch(message: string): FedmartError {
  return new FedmartError('PROTOCOL_MISMATCH', `secure aggregation: ${message}`);
}

function invalid(message: string): FedmartError {
  return new FedmartError('INVALID_MESSAGE', `secure aggregation: ${message}`);
}

function roundFailed(stage: SecAggStage, message: string): FedmartError {
  return new FedmartError('ROUND_FAILED', `secure aggregation failed at stage '${stage}': ${message}`, { details: { stage } });
}
