/**
 * Secure-aggregation messages (Bonawitz et al., CCS 2017, Fig. 4 rounds 0–4:
 * the actively-secure variant with signed advertised keys and a
 * consistency-check round, with SecAgg+ neighbourhoods). Each stage is one request from the
 * coordinator and one reply from each client; both carry the same `stage`.
 *
 * Every message is a plain object whose scalar fields form a small JSON part
 * and whose Uint8Array/Uint32Array fields are binary parts (Socket.IO sends
 * them as binary attachments). {@link splitBinaryParts} shows the split and
 * {@link wireByteLength} measures what a message costs on the wire.
 *
 * Zod schemas for these live with the transport protocol; the state
 * machines here still check every field they use and fail closed.
 */
import type { QuantizationConfig } from './quantize.ts';

/** The five stages, in order. */
export const SECAGG_STAGES = ['advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmask'] as const;
/** One secure-aggregation stage. */
export type SecAggStage = (typeof SECAGG_STAGES)[number];

/** Protocol version carried in the setup request; a client refuses others. */
export const SECAGG_PROTOCOL = 'fedmart/secagg+/v3';

/** Signature purposes (domain separation of every signed protocol message). */
export const ADVERTISE_SIGNATURE_PURPOSE = 'fedmart/secagg/v2/advertise-keys';
export const SURVIVORS_SIGNATURE_PURPOSE = 'fedmart/secagg/v2/survivor-set';

/** A participant's long-term Ed25519 identity key, as the coordinator lists it (each partner checks it against its pins). */
export interface IdentityEntry {
  id: number;
  /** binary: 32-byte Ed25519 public key */
  publicKey: Uint8Array;
}

/** Stage 0 request (coordinator → client): round parameters. */
export interface AdvertiseKeysRequest {
  stage: 'advertise-keys';
  protocol: typeof SECAGG_PROTOCOL;
  roundId: string;
  /** the addressee's secure-aggregation id (positive uint32) */
  clientId: number;
  /** ids of every selected client (the graph is built over these) */
  participants: number[];
  /** number of model parameters (the masked vector has one more: the weight) */
  vectorLength: number;
  quantization: QuantizationConfig;
  /** k of the SecAgg+ graph (≥ n − 1 means complete) */
  neighbourDegree: number;
  /** Shamir threshold t */
  threshold: number;
  /** survivor-set signatures every client requires before unmasking */
  signatureThreshold: number;
  /** binary: 32-byte public seed of the neighbourhood graph */
  graphSeed: Uint8Array;
  /** identity key of every participant (one entry each) */
  identities: IdentityEntry[];
}

/** Stage 0 reply: two fresh X25519 public keys. */
export interface AdvertiseKeysReply {
  stage: 'advertise-keys';
  roundId: string;
  clientId: number;
  /** binary: c_pk, for encrypting Shamir shares to this client */
  encryptionPublicKey: Uint8Array;
  /** binary: s_pk, for agreeing pairwise masks with this client */
  maskingPublicKey: Uint8Array;
  /** binary: Ed25519 signature of (round, id, c_pk, s_pk) under the client's identity key */
  signature: Uint8Array;
}

/** A neighbour's advertised keys, with its signature (the coordinator cannot substitute them). */
export interface PeerKeys {
  id: number;
  encryptionPublicKey: Uint8Array;
  maskingPublicKey: Uint8Array;
  signature: Uint8Array;
}

/** Stage 1 request: the keys of the client's neighbours that advertised. */
export interface ShareKeysRequest {
  stage: 'share-keys';
  roundId: string;
  clientId: number;
  peers: PeerKeys[];
}

/** A sealed share bundle from one client to another; the coordinator only relays it. */
export interface SealedShares {
  /** sender id */
  from: number;
  /** receiver id */
  to: number;
  /** binary: AEAD box (nonce ‖ ciphertext ‖ tag) of from ‖ to ‖ share(s_sk) ‖ share(b) */
  box: Uint8Array;
}

/** Stage 1 reply: one sealed bundle per neighbour. */
export interface ShareKeysReply {
  stage: 'share-keys';
  roundId: string;
  clientId: number;
  sealed: SealedShares[];
}

/** Stage 2 request: the bundles addressed to this client. */
export interface MaskedInputRequest {
  stage: 'masked-input';
  roundId: string;
  clientId: number;
  sealed: SealedShares[];
}

/** Stage 2 reply: the masked, quantized, weighted update. */
export interface MaskedInputReply {
  stage: 'masked-input';
  roundId: string;
  clientId: number;
  /** binary: y ∈ Z_{2^bits}^(vectorLength + 1) */
  masked: Uint32Array;
}

/** Stage 3 request: the survivor set U3 (ascending) the coordinator will unmask. */
export interface ConsistencyCheckRequest {
  stage: 'consistency-check';
  roundId: string;
  clientId: number;
  survivors: number[];
}

/** Stage 3 reply: the client's signature on (round, U3). An honest client signs one set per round. */
export interface ConsistencyCheckReply {
  stage: 'consistency-check';
  roundId: string;
  clientId: number;
  /** binary: Ed25519 signature */
  signature: Uint8Array;
}

/** One survivor's signature on the survivor set. */
export interface SurvivorSignature {
  id: number;
  signature: Uint8Array;
}

/**
 * Stage 4 request: the same survivor set and the signatures collected on it.
 * The client works out itself which share to reveal for each neighbour: the
 * self-seed share of a neighbour in the set, the mask-key share of one not in it.
 */
export interface UnmaskRequest {
  stage: 'unmask';
  roundId: string;
  clientId: number;
  survivors: number[];
  signatures: SurvivorSignature[];
}

/** What a revealed share is a share of. */
export type RevealedShareKind = 'mask-key' | 'self-seed';

/** One revealed share. */
export interface RevealedShare {
  /** whose secret this is a share of */
  of: number;
  kind: RevealedShareKind;
  /** binary: encoded Shamir share (68 bytes) */
  share: Uint8Array;
}

/** Stage 4 reply. */
export interface UnmaskReply {
  stage: 'unmask';
  roundId: string;
  clientId: number;
  shares: RevealedShare[];
}

/** Any coordinator → client secure-aggregation message. */
export type SecAggRequest = AdvertiseKeysRequest | ShareKeysRequest | MaskedInputRequest | ConsistencyCheckRequest | UnmaskRequest;
/** Any client → coordinator secure-aggregation message. */
export type SecAggReply = AdvertiseKeysReply | ShareKeysReply | MaskedInputReply | ConsistencyCheckReply | UnmaskReply;

/** A message split for the wire: JSON whose binary fields are replaced by `{_bin: i}` slot markers, and the attachments they point to. */
export interface BinarySplit {
  /** JSON text; each binary field is replaced by `{ "_bin": i }` */
  json: string;
  /** attachments, in slot-marker order (views over the original memory) */
  binary: Uint8Array[];
}

/**
 * Split a message into a JSON part and binary parts, the way Socket.IO's
 * parser deconstructs a packet. Typed arrays become `{ _bin: i }`.
 * @param message - a secure-aggregation message (or any JSON-like value)
 * @returns the JSON text and the attachments
 */
export function splitBinaryParts(message: unknown): BinarySplit {
  const binary: Uint8Array[] = [];
  const walk = (value: unknown): unknown => {
    if (ArrayBuffer.isView(value)) {
      binary.push(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      return { _bin: binary.length - 1 };
    }
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v);
      return out;
    }
    return value;
  };
  const json = JSON.stringify(walk(message));
  return { json, binary };
}

/**
 * Bytes a message costs on the wire: UTF-8 JSON part plus binary parts
 * (transport framing excluded).
 * @param message - a secure-aggregation message
 * @returns byte count
 */
export function wireByteLength(message: unknown): number {
  const { json, binary } = splitBinaryParts(message);
  let total = new TextEncoder().encode(json).length;
  for (const b of binary) total += b.byteLength;
  return total;
}
