/**
 * Wire protocol of the protection layers inside a horizontal round: secure
 * aggregation (Bonawitz et al., CCS 2017; SecAgg+ of Bell et al., CCS 2020)
 * and CKKS encrypted aggregation (Cheon et al., ASIACRYPT 2017) with the
 * key custody of `he/key-custody.ts`.
 *
 * Every message is a JSON part plus binary parts: typed-array fields are
 * sent as Socket.IO binary attachments (the parser lifts any Buffer or
 * Uint8Array out of the packet), never as JSON number arrays. Both sides
 * parse what they receive with these zod schemas; binary fields are checked
 * as `Uint8Array` (Node's Buffer is one) with their exact or maximal length.
 *
 * Client → server: `socket.emit('msg', envelope, ack)` with one of
 * {@link SecureClientEnvelopeSchema}. Server → client: the events of
 * {@link SecureServerToClientEvents}.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { MetricsSchema, PROTOCOL_VERSION, type TrainInstruction } from './protocol.ts';
import { CkksParamsSchema, type CkksParams } from './he/ckks-params.ts';
import { SECAGG_PROTOCOL } from './secagg/messages.ts';
import { signedMessage } from './crypto/ed25519.ts';
import { sha256 } from '@noble/hashes/sha2.js';

/** Largest sealed share bundle a client may send (the core allows 4096 bytes). */
const MAX_BOX_BYTES = 4096;
/** Largest neighbour list (SecAgg+ degree) accepted on the wire. */
const MAX_NEIGHBOURS = 10_000;
/** Largest wrapped CKKS secret key (N = 32768 with 16 primes stays well below). */
const MAX_WRAPPED_KEY_BYTES = 16 * 1024 * 1024;
/** Largest number of CKKS ciphertext chunks in one update (4096 slots each at N = 8192). */
export const MAX_CKKS_CHUNKS = 4096;
/** Most key parties a multiparty message may list (the analysis bound, `he/multiparty.ts`). */
const MULTIPARTY_MAX_WIRE_PARTIES = 100;

const id = z.string().min(1).max(200);
const base = { v: z.literal(PROTOCOL_VERSION), seq: z.number().int().min(0) };
const uint32Id = z.number().int().min(1).max(0xffffffff);

/**
 * A binary part: any Uint8Array (Buffer included) of an exact length or a length range.
 * @param min - fewest bytes
 * @param max - most bytes (default `min`)
 */
export function bytesSchema(min: number, max = min) {
  return z.preprocess(
    (x) => (x instanceof ArrayBuffer ? new Uint8Array(x) : x),
    z.custom<Uint8Array>((x) => x instanceof Uint8Array && x.byteLength >= min && x.byteLength <= max, {
      message: min === max ? `expected a binary attachment of ${min} bytes` : `expected a binary attachment of ${min}–${max} bytes`,
    }),
  );
}

// ---------------------------------------------------------------- secure aggregation

/** Stage 0 reply: two fresh X25519 public keys. */
const AdvertiseKeysPayload = z.object({ stage: z.literal('advertise-keys'), clientId: uint32Id, encryptionPublicKey: bytesSchema(32), maskingPublicKey: bytesSchema(32), signature: bytesSchema(64) }).strict();
/** Stage 3 reply: the survivor's Ed25519 signature on the survivor set. */
const ConsistencyCheckPayload = z.object({ stage: z.literal('consistency-check'), clientId: uint32Id, signature: bytesSchema(64) }).strict();
/** Stage 1 reply: one sealed bundle per neighbour; the coordinator relays them and cannot open them. */
const ShareKeysPayload = z
  .object({ stage: z.literal('share-keys'), clientId: uint32Id, sealed: z.array(z.object({ from: uint32Id, to: uint32Id, box: bytesSchema(1, MAX_BOX_BYTES) }).strict()).max(MAX_NEIGHBOURS) })
  .strict();
/** Stage 2 reply: the masked vector (Uint32 little-endian words: parameters, then the weight) and plaintext training metrics. */
const MaskedInputPayload = z
  .object({
    stage: z.literal('masked-input'),
    clientId: uint32Id,
    masked: bytesSchema(8, 4 * (2 ** 26 + 1)).refine((x) => x.byteLength % 4 === 0, { message: 'expected the masked vector as Uint32 words' }),
    metrics: MetricsSchema,
  })
  .strict();
/** Stage 4 reply: the revealed shares. */
const UnmaskPayload = z
  .object({ stage: z.literal('unmask'), clientId: uint32Id, shares: z.array(z.object({ of: uint32Id, kind: z.enum(['mask-key', 'self-seed']), share: bytesSchema(68) }).strict()).max(MAX_NEIGHBOURS) })
  .strict();

/** A client's reply to one secure-aggregation stage. */
export const SecAggReplyEnvelopeSchema = z.object({
  ...base,
  type: z.literal('secagg-reply'),
  roundId: id,
  payload: z.discriminatedUnion('stage', [AdvertiseKeysPayload, ShareKeysPayload, MaskedInputPayload, ConsistencyCheckPayload, UnmaskPayload]),
});
export type SecAggReplyEnvelope = z.infer<typeof SecAggReplyEnvelopeSchema>;

const QuantizationWire = z.object({ clip: z.number().positive(), maxClients: z.number().int().min(1), maxWeight: z.number().int().min(1).optional(), bits: z.number().int().min(8).max(32).optional(), rounding: z.enum(['stochastic', 'deterministic']).optional() }).strict();

/** Server → client: one secure-aggregation request (the SecAgg core's request object). */
export const SecAggRequestSchema = z.discriminatedUnion('stage', [
  z.object({
    stage: z.literal('advertise-keys'), protocol: z.literal(SECAGG_PROTOCOL), roundId: id, clientId: uint32Id,
    participants: z.array(uint32Id).min(3).max(100_000), vectorLength: z.number().int().min(1), quantization: QuantizationWire,
    neighbourDegree: z.number().int().min(2), threshold: z.number().int().min(2), signatureThreshold: z.number().int().min(2), graphSeed: bytesSchema(32),
    identities: z.array(z.object({ id: uint32Id, partnerId: id, publicKey: bytesSchema(32) })).min(3).max(100_000),
  }),
  z.object({ stage: z.literal('share-keys'), roundId: id, clientId: uint32Id, peers: z.array(z.object({ id: uint32Id, encryptionPublicKey: bytesSchema(32), maskingPublicKey: bytesSchema(32), signature: bytesSchema(64) })).max(MAX_NEIGHBOURS) }),
  z.object({ stage: z.literal('masked-input'), roundId: id, clientId: uint32Id, sealed: z.array(z.object({ from: uint32Id, to: uint32Id, box: bytesSchema(1, MAX_BOX_BYTES) })).max(MAX_NEIGHBOURS) }),
  z.object({ stage: z.literal('consistency-check'), roundId: id, clientId: uint32Id, survivors: z.array(uint32Id).max(100_000) }),
  z.object({ stage: z.literal('unmask'), roundId: id, clientId: uint32Id, survivors: z.array(uint32Id).max(100_000), signatures: z.array(z.object({ id: uint32Id, signature: bytesSchema(64) })).max(100_000) }),
]);
export type SecAggRequestWire = z.infer<typeof SecAggRequestSchema>;

// ---------------------------------------------------------------- CKKS

/** A partner's X25519 public key, to which the key holder wraps the federation secret key. */
export const HePartnerKeyEnvelopeSchema = z.object({ ...base, type: z.literal('he-partner-key'), payload: z.object({ publicKey: bytesSchema(32), signature: bytesSchema(64) }).strict() });
/** The key holder's wrap of the federation secret key for one partner (opaque to the coordinator). */
export const HeWrappedEnvelopeSchema = z.object({
  ...base,
  type: z.literal('he-wrapped'),
  payload: z.object({ to: id, keyId: z.string().regex(/^[0-9a-f]{32}$/), wrapped: bytesSchema(49, MAX_WRAPPED_KEY_BYTES), signature: bytesSchema(64) }).strict(),
});
/** A partner holds the federation key (unwrapped it, or generated it as key holder). */
export const HeReadyEnvelopeSchema = z.object({ ...base, type: z.literal('he-ready'), payload: z.object({ keyId: z.string().regex(/^[0-9a-f]{32}$/) }).strict() });
/** A partner's encrypted update: CKKS ciphertexts of [n·clip(Δ), n] in chunks. */
export const HeTrainResultEnvelopeSchema = z.object({
  ...base,
  type: z.literal('he-train-result'),
  roundId: id,
  payload: z
    .object({
      /** Plaintext values encrypted (parameters + 1 weight coordinate). */
      length: z.number().int().min(2),
      chunks: z.array(bytesSchema(1, 64 * 1024 * 1024)).min(1).max(MAX_CKKS_CHUNKS),
      metrics: MetricsSchema,
      /** Identity signature over {@link updateStatement} (the hash of the chunks' mask parts). */
      signature: bytesSchema(64),
    })
    .strict(),
});

// ---------------------------------------------------------------- multiparty CKKS (he.keys 'multiparty')

/** Largest multiparty share we accept: 12-byte header + N·primes uint64 (N ≤ 32768, ≤ 16 primes). */
const MAX_MP_SHARE_BYTES = 12 + 8 * 32768 * 16;
/** A round partner's public key share p_i = −a·s_i + e_i, its X25519 key for sealed decryption shares, signed ({@link multipartyKeyShareStatement}). */
export const HeMpKeyShareEnvelopeSchema = z.object({
  ...base,
  type: z.literal('he-mp-key-share'),
  roundId: id,
  payload: z.object({ publicShare: bytesSchema(12, MAX_MP_SHARE_BYTES), wrapKey: bytesSchema(32), signature: bytesSchema(64) }).strict(),
});
/** A round partner's decryption shares of the aggregate, sealed to each other round partner (the coordinator relays boxes it cannot open). */
export const HeMpDecryptionShareEnvelopeSchema = z.object({
  ...base,
  type: z.literal('he-mp-decryption-share'),
  roundId: id,
  payload: z.object({ boxes: z.array(z.object({ to: id, sealed: bytesSchema(49, 64 * 1024 * 1024) }).strict()).min(1).max(MULTIPARTY_MAX_WIRE_PARTIES) }).strict(),
});

/** What a multiparty commitment commits to: the round's key share, or the partner's encrypted update. */
export const MP_COMMIT_KINDS = ['key', 'update'] as const;
export type MpCommitKind = (typeof MP_COMMIT_KINDS)[number];
/** A round partner's signed commitment ({@link multipartyCommitment}, {@link multipartyCommitStatement}), sent before it reveals anything. */
export const HeMpCommitEnvelopeSchema = z.object({
  ...base,
  type: z.literal('he-mp-commit'),
  roundId: id,
  payload: z.object({ kind: z.enum(MP_COMMIT_KINDS), commitment: bytesSchema(32), signature: bytesSchema(64) }).strict(),
});

/** Every client → server message of the protection layers. */
export const SecureClientEnvelopeSchema = z.discriminatedUnion('type', [SecAggReplyEnvelopeSchema, HePartnerKeyEnvelopeSchema, HeWrappedEnvelopeSchema, HeReadyEnvelopeSchema, HeTrainResultEnvelopeSchema, HeMpKeyShareEnvelopeSchema, HeMpDecryptionShareEnvelopeSchema, HeMpCommitEnvelopeSchema]);
export type SecureClientEnvelope = z.infer<typeof SecureClientEnvelopeSchema>;
/** Envelope types handled by {@link SecureClientEnvelopeSchema}. */
export const SECURE_MESSAGE_TYPES: ReadonlySet<string> = new Set(['secagg-reply', 'he-partner-key', 'he-wrapped', 'he-ready', 'he-train-result', 'he-mp-key-share', 'he-mp-decryption-share', 'he-mp-commit']);

/** Server → client (CKKS): the federation's key-custody setup, sent after the welcome. */
export const HeSetupSchema = z.object({
  federationId: id,
  partnerId: id,
  /** Partner id of the key holder (the one federation key; absent under multiparty keys). */
  keyHolderId: id.optional(),
  /** 'multiparty': no federation key; each round's partners make a collective key (default 'federation'). */
  keys: z.enum(['federation', 'multiparty']).optional(),
  params: CkksParamsSchema,
  /** Strategy the partners apply to the decrypted mean (FedAvg-family only). */
  strategy: z.enum(['fedavg', 'fedprox', 'fedadam', 'fedyogi']),
  strategyOptions: z.record(z.string(), z.number()),
  /** Each coordinate of an update is clipped to [−clip, clip] before encryption. */
  clip: z.number().positive(),
});
export type HeSetup = z.infer<typeof HeSetupSchema>;
/**
 * Server → key holder: wrap the federation key for this partner, to its signed X25519 key. `identityKey` is
 * the recipient's bound identity key: the holder pins it on first use (as in a welcome) and refuses a changed one.
 */
export const HeWrapRequestSchema = z.object({ to: id, identityKey: bytesSchema(32), publicKey: bytesSchema(32), signature: bytesSchema(64) });
/**
 * Server → partner: the wrapped federation key, with the holder's X25519 key to unwrap it, the recipient
 * key it was wrapped to, and the holder's identity signature over {@link wrappedKeyStatement}.
 */
export const HeKeySchema = z.object({ keyId: z.string().regex(/^[0-9a-f]{32}$/), holderPublicKey: bytesSchema(32), holderIdentityKey: bytesSchema(32), recipientPublicKey: bytesSchema(32), wrapped: bytesSchema(49, MAX_WRAPPED_KEY_BYTES), signature: bytesSchema(64) });
/** Server → partner: the encrypted aggregate of a round, to decrypt, apply and evaluate. */
export const HeAggregateSchema = z.object({
  roundId: id,
  round: z.number().int().min(1),
  /** The model version the decrypted aggregate produces (base version + 1). */
  modelVersion: z.number().int().min(1),
  /** Plaintext values (parameters + 1 weight coordinate). */
  length: z.number().int().min(2),
  chunks: z.array(bytesSchema(1, 64 * 1024 * 1024)).min(1).max(MAX_CKKS_CHUNKS),
  /** The federation key the contributors encrypted under. */
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
  /**
   * Every contributor's identity key, signature over {@link updateStatement}, and the mask parts c1 of its
   * ciphertexts (public randomness): the partner re-adds the masks and compares them with the aggregate's.
   */
  contributors: z.array(z.object({ partnerId: id, identityKey: bytesSchema(32), signature: bytesSchema(64), masks: z.array(bytesSchema(1, 64 * 1024 * 1024)).min(1).max(MAX_CKKS_CHUNKS) })).max(100_000),
});
export type HeAggregate = z.infer<typeof HeAggregateSchema>;

/**
 * Server → partner (multiparty, in the train instruction): the round's common reference seed and the partners
 * asked to make the round's collective key (the selected set; those that send a key share are the key parties).
 */
export const HeMpRoundSchema = z.object({ crpSeed: bytesSchema(32), parties: z.array(id).min(2).max(MULTIPARTY_MAX_WIRE_PARTIES) }).strict();
/** Server → partner (multiparty): every key party's signed key share, once all have arrived. */
export const HeMpKeysSchema = z.object({
  roundId: id,
  crpSeed: bytesSchema(32),
  shares: z.array(z.object({ partnerId: id, identityKey: bytesSchema(32), publicShare: bytesSchema(12, MAX_MP_SHARE_BYTES), wrapKey: bytesSchema(32), signature: bytesSchema(64) }).strict()).min(2).max(MULTIPARTY_MAX_WIRE_PARTIES),
}).strict();
/** Server → partner (multiparty): every round partner's signed commitment of one kind, once all have arrived; only then does a partner reveal. */
export const HeMpCommitsSchema = z.object({
  roundId: id,
  kind: z.enum(MP_COMMIT_KINDS),
  commits: z.array(z.object({ partnerId: id, identityKey: bytesSchema(32), commitment: bytesSchema(32), signature: bytesSchema(64) }).strict()).min(2).max(MULTIPARTY_MAX_WIRE_PARTIES),
}).strict();
/** Server → partner (multiparty): another key party's sealed decryption shares, relayed. */
export const HeMpShareSchema = z.object({ roundId: id, from: id, sealed: bytesSchema(49, 64 * 1024 * 1024) }).strict();

/** Train instruction with the protection in force. */
export interface SecureTrainInstruction extends TrainInstruction {
  /** 'secagg': wait for the stage requests and send masked input; 'ckks': send an encrypted update. */
  protection?: 'secagg' | 'ckks';
  /** CKKS: the model version to train on (the attachment is empty when the partner must hold it already). */
  modelVersion?: number;
  /** Multiparty CKKS: the round's key-generation setup ({@link HeMpRoundSchema}). */
  multiparty?: z.infer<typeof HeMpRoundSchema>;
}

/** Server → client events of the protection layers. */
export interface SecureServerToClientEvents {
  secagg: (request: SecAggRequestWire) => void;
  'he-setup': (setup: HeSetup) => void;
  'he-wrap': (request: z.infer<typeof HeWrapRequestSchema>) => void;
  'he-key': (key: z.infer<typeof HeKeySchema>) => void;
  'he-aggregate': (aggregate: HeAggregate) => void;
  'he-mp-keys': (keys: z.infer<typeof HeMpKeysSchema>) => void;
  'he-mp-share': (share: z.infer<typeof HeMpShareSchema>) => void;
  'he-mp-commits': (commits: z.infer<typeof HeMpCommitsSchema>) => void;
}

/**
 * Associated data binding a wrapped federation key to its federation, key id
 * and recipient (so a relay cannot replay it elsewhere; see `he/key-custody.ts`).
 */
export function keyWrapAssociatedData(federationId: string, keyId: string, recipientId: string): Uint8Array {
  return new TextEncoder().encode(`fedmart/he/federation-key|${federationId}|${keyId}|${recipientId}`);
}

/**
 * What a partner signs with its identity key when it publishes its X25519 wrapping key: the key holder wraps
 * the federation key only to a key its owner signed, so the coordinator cannot substitute its own.
 */
export function partnerKeyStatement(federationId: string, partnerId: string, publicKey: Uint8Array): Uint8Array {
  return signedMessage('fedmart/he/v1/partner-key', [federationId, partnerId, publicKey]);
}

/**
 * What the key holder signs with its identity key for each wrapped copy of the federation key: recipient,
 * federation, key id, the recipient's wrapping key, the holder's own wrapping key and SHA-256 of the wrap.
 * A recipient takes a key only with a valid signature by the pinned identity of the federation's key holder.
 */
export function wrappedKeyStatement(f: { federationId: string; recipientId: string; keyId: string; recipientPublicKey: Uint8Array; holderPublicKey: Uint8Array; wrapped: Uint8Array }): Uint8Array {
  return signedMessage('fedmart/he/v1/wrapped-key', [f.recipientId, f.federationId, f.keyId, f.recipientPublicKey, f.holderPublicKey, sha256(f.wrapped)]);
}

/**
 * What a partner signs with its identity key for its encrypted update: federation, round, federation key id,
 * plaintext length and SHA-256 of the concatenated mask parts c1 of its ciphertext chunks. The mask of a
 * CKKS sum is the sum of the masks, so these signatures bind an aggregate to the set of its contributors.
 */
export function updateStatement(f: { federationId: string; roundId: string; keyId: string; length: number; masks: readonly Uint8Array[] }): Uint8Array {
  const h = sha256.create();
  for (const m of f.masks) h.update(m);
  return signedMessage('fedmart/he/v1/encrypted-update', [f.federationId, f.roundId, f.keyId, String(f.length), h.digest()]);
}

/**
 * What a round partner signs with its identity key for its multiparty key share: federation, round, the
 * round's common reference seed, its partner id, SHA-256 of the share and its X25519 key for sealed
 * decryption shares. Every key party checks every other's signature against its pinned identity before
 * combining the collective key (so the coordinator can neither drop nor substitute a share unnoticed).
 */
export function multipartyKeyShareStatement(f: { federationId: string; roundId: string; crpSeed: Uint8Array; partnerId: string; publicShare: Uint8Array; wrapKey: Uint8Array }): Uint8Array {
  return signedMessage('fedmart/he/v1/mp-key-share', [f.federationId, f.roundId, f.crpSeed, f.partnerId, sha256(f.publicShare), f.wrapKey]);
}

/**
 * The key id of a round's collective key (32 hex digits): SHA-256 over the round, the seed and every key
 * party's id and share hash, in the order given (sorted by partner id by both sides). Contributors sign their
 * update under this id, so an update is bound to exactly this set of key parties.
 */
export function multipartyKeyId(roundId: string, crpSeed: Uint8Array, shares: readonly { partnerId: string; publicShare: Uint8Array }[]): string {
  const parts: (string | Uint8Array)[] = [roundId, crpSeed];
  for (const s of shares) parts.push(s.partnerId, sha256(s.publicShare));
  return Array.from(sha256(signedMessage('fedmart/he/v1/mp-key-id', parts)).subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Commit-then-reveal against rogue-key and malleability attacks by a partner colluding with the coordinator
 * (the rogue-key fix of Micali, Ohta & Reyzin, CCS 2001 and Boneh, Drijvers & Neven, ASIACRYPT 2018 — every party
 * commits to its public key before any key is revealed; the same ordering as the signed advertise-keys round of
 * Bonawitz et al., CCS 2017, §4, where each client's keys are fixed and signed before it sees anyone else's).
 * A partner's commitment is SHA-256("fedmart/he/v1/mp-commit/<kind>" ‖ federation ‖ round ‖ partner ‖
 * SHA-256(revealed statement)), length-prefixed ({@link signedMessage}); the revealed statement is the one the
 * partner signs when it reveals ({@link multipartyKeyShareStatement} for its key share, {@link updateStatement}
 * — which fixes its ciphertexts' c1 parts — for its update). The partner id inside the hash stops a cheater from
 * publishing another partner's commitment as its own. The statements contain fresh RLWE samples (p_i, c1), so the
 * commitment hides them (random-oracle model).
 */
export function multipartyCommitment(f: { kind: MpCommitKind; federationId: string; roundId: string; partnerId: string; revealed: Uint8Array }): Uint8Array {
  return sha256(signedMessage(`fedmart/he/v1/mp-commit/${f.kind}`, [f.federationId, f.roundId, f.partnerId, sha256(f.revealed)]));
}

/** What a round partner signs with its identity key for its commitment (so the coordinator cannot substitute one). */
export function multipartyCommitStatement(f: { kind: MpCommitKind; federationId: string; roundId: string; partnerId: string; commitment: Uint8Array }): Uint8Array {
  return signedMessage('fedmart/he/v1/mp-commit-signature', [f.kind, f.federationId, f.roundId, f.partnerId, f.commitment]);
}

/** Associated data of one sealed decryption share: federation, round, sender, recipient. */
export function multipartyShareAssociatedData(federationId: string, roundId: string, from: string, to: string): Uint8Array {
  return new TextEncoder().encode(`fedmart/he/mp-decryption-share|${federationId}|${roundId}|${from}|${to}`);
}

/** Default coordinate clip under CKKS: n·clip stays below 2^20 for n ≤ 65,536 examples, where CKKS at scale 2^40 keeps full precision. */
export const CKKS_UPDATE_CLIP = 16;

export type { CkksParams };
