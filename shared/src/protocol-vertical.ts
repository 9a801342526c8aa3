/**
 * Wire protocol of vertical federated learning (same customers, different
 * features): entity alignment by ECDH PSI, vertical logistic regression with
 * CKKS-encrypted residuals and masked gradients, and split neural networks.
 *
 * A message is a JSON header ({@link VerticalHeader}) plus binary parts
 * (Uint8Array): blinded IDs, ciphertexts, float vectors — never JSON number
 * arrays. The header is all a relay needs (`session`, `from`, `to`, `seq`,
 * `type`); nothing in a header identifies a customer or carries a feature,
 * label, residual or gradient value, so the coordinator can route messages
 * blind. Parts, however, carry partial logits and embeddings that the
 * recipient is allowed to see but a relay is not: a relay channel must
 * encrypt parts end to end between the two parties (e.g. AEAD under an
 * X25519-agreed key, `shared/crypto`) — see `client-node/src/vertical/channel.ts`.
 *
 * Every received message is parsed here before it is used: the header with
 * zod, then the parts' count and byte lengths against the header.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { FedmartError } from './errors.ts';
import { CkksParamsSchema } from './he/ckks-params.ts';
import { PSI_ELEMENT_BYTES } from './psi/ecdh-psi.ts';

/** Bumped on any incompatible change to vertical messages. */
export const VERTICAL_PROTOCOL_VERSION = 2;

/** Largest number of rows one vertical batch or PSI list may carry. */
export const MAX_VERTICAL_ROWS = 10_000_000;
/** Largest total byte size of one message's parts (256 MiB). */
export const MAX_VERTICAL_PART_BYTES = 256 * 1024 * 1024;

const partyId = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');
const rows = z.number().int().min(1).max(MAX_VERTICAL_ROWS);
const step = z.number().int().min(0);
/** Which aligned row set a message is about: the training rows or a scoring set. */
const setName = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/);

/** Body schemas per message type. Parts are described in each entry's doc. */
export const VerticalBodySchemas = {
  /** PSI round of one aligned set. parts: [count × 32 bytes]. `stage` own = peer's blindOwn(); double = blindOther(yours), in your order (mode ids). */
  'psi.blinded': z.object({ set: setName, stage: z.enum(['own', 'double']), count: z.number().int().min(0).max(MAX_VERTICAL_ROWS), mode: z.enum(['ids', 'size']) }).strict(),
  /**
   * Multi-party PSI cardinality (psi policy "size"): the blinded IDs of party `origin` on their way
   * through every other party's key to the label holder, shuffled at each hop (`align.ts` psiCardinality).
   * `hop` counts the keys applied so far. parts: [count × 32 bytes].
   */
  'psica.blinded': z.object({ set: setName, origin: partyId, hop: z.number().int().min(1).max(64), count: z.number().int().min(0).max(MAX_VERTICAL_ROWS) }).strict(),
  /** Label holder → feature holder: which of your PSI-shared rows (positions in the ID-sorted intersection) are shared by every party. parts: [count × uint32 LE]. */
  'align.select': z.object({ set: setName, count: z.number().int().min(0).max(MAX_VERTICAL_ROWS) }).strict(),
  /** Label holder → feature holder: start vertical LR. parts: [Galois keys]. */
  'vlr.setup': z.object({ params: CkksParamsSchema, learningRate: z.number().positive().max(10), l2: z.number().min(0).max(10) }).strict(),
  /**
   * Feature holder → label holder, right after `vlr.setup`: the width of its gradient (its encoded column count).
   * The label holder decrypts exactly this many slots per step and sizes the minimum batch from it. parts: none.
   */
  'vlr.declare': z.object({ dims: z.number().int().min(1).max(1 << 16) }).strict(),
  /** Label holder → feature holder: start a split NN. parts: none. */
  'snn.setup': z.object({ embeddingDim: z.number().int().min(1).max(1024), learningRate: z.number().positive().max(10), noiseStd: z.number().min(0).max(100), seed: z.number().int().min(0) }).strict(),
  /** Label holder → feature holder: rows of this step (indices into the aligned order of `set`). parts: [rows × uint32 LE]. */
  batch: z.object({ set: setName, step, rows, train: z.boolean() }).strict(),
  /** Feature holder → label holder: partial logits u_k = X_k·w_k of the batch. parts: [rows × float64 LE]. */
  'vlr.partial': z.object({ step, rows }).strict(),
  /** Label holder → feature holder: encrypted residuals σ(z) − y of the batch. parts: one CKKS ciphertext per `slotCount` rows. */
  'vlr.residual': z.object({ step, rows, chunks: z.number().int().min(1).max(100_000) }).strict(),
  /** Feature holder → label holder: [[X_kᵀ d + mask]]. parts: [one CKKS ciphertext]. */
  'vlr.maskedGradient': z.object({ step, dims: z.number().int().min(1).max(1 << 16) }).strict(),
  /** Label holder → feature holder: the decrypted (flooded) masked gradient. parts: [dims × float64 LE]. */
  'vlr.decrypted': z.object({ step, dims: z.number().int().min(1).max(1 << 16) }).strict(),
  /** Feature holder → label holder: bottom-model output of the batch (noised if configured). parts: [rows × dim × float32 LE]. */
  'snn.embedding': z.object({ step, rows, dim: z.number().int().min(1).max(1024) }).strict(),
  /** Label holder → feature holder: ∂loss/∂embedding of the batch. parts: [rows × dim × float32 LE]. */
  'snn.gradient': z.object({ step, rows, dim: z.number().int().min(1).max(1024) }).strict(),
  /** Either side: the session is over. parts: none. */
  done: z.object({ reason: z.string().max(500) }).strict(),
  /** Either side: the sender failed; the receiver stops. parts: none. */
  error: z.object({ code: z.string().max(64), message: z.string().max(2000) }).strict(),
} as const;

/** A vertical message type. */
export type VerticalType = keyof typeof VerticalBodySchemas;
/** Every vertical message type. */
export const VERTICAL_TYPES = Object.keys(VerticalBodySchemas) as VerticalType[];
/** The body of a message of type T. */
export type VerticalBody<T extends VerticalType> = z.infer<(typeof VerticalBodySchemas)[T]>;

/** The routing header every vertical message carries (what a relay sees). */
export const VerticalHeaderSchema = z
  .object({
    v: z.literal(VERTICAL_PROTOCOL_VERSION),
    session: z.string().min(1).max(128),
    from: partyId,
    to: partyId,
    seq: z.number().int().min(0),
    type: z.enum(VERTICAL_TYPES as [VerticalType, ...VerticalType[]]),
    body: z.unknown(),
  })
  .strict();

/** A parsed message of type T. */
export interface VerticalMessage<T extends VerticalType = VerticalType> {
  readonly session: string;
  readonly from: string;
  readonly to: string;
  readonly seq: number;
  readonly type: T;
  readonly body: VerticalBody<T>;
  readonly parts: readonly Uint8Array[];
}

/** A message as it travels: JSON header text plus binary parts. */
export interface VerticalWireMessage {
  readonly header: string;
  readonly parts: readonly Uint8Array[];
}

/** Number and byte length of the parts each type must carry, given its body. */
function expectedParts(type: VerticalType, body: Record<string, unknown>): { count: number | 'any'; bytes?: number } {
  const n = (k: string) => body[k] as number;
  switch (type) {
    case 'psi.blinded':
    case 'psica.blinded':
      return { count: 1, bytes: n('count') * PSI_ELEMENT_BYTES };
    case 'align.select':
      return { count: 1, bytes: n('count') * 4 };
    case 'vlr.setup':
      return { count: 1 };
    case 'batch':
      return { count: 1, bytes: n('rows') * 4 };
    case 'vlr.partial':
      return { count: 1, bytes: n('rows') * 8 };
    case 'vlr.residual':
      return { count: n('chunks') };
    case 'vlr.maskedGradient':
      return { count: 1 };
    case 'vlr.decrypted':
      return { count: 1, bytes: n('dims') * 8 };
    case 'snn.embedding':
    case 'snn.gradient':
      return { count: 1, bytes: n('rows') * n('dim') * 4 };
    default:
      return { count: 0 };
  }
}

/**
 * Build the wire form of a message (validating our own output: a bad one is
 * an INTERNAL error, not the peer's fault).
 * @param msg - the message
 * @returns header text and parts
 * @throws FedmartError INTERNAL if the message does not satisfy its schema
 */
export function encodeVerticalMessage<T extends VerticalType>(msg: VerticalMessage<T>): VerticalWireMessage {
  const header = { v: VERTICAL_PROTOCOL_VERSION, session: msg.session, from: msg.from, to: msg.to, seq: msg.seq, type: msg.type, body: msg.body };
  try {
    parseVerticalMessage({ header: JSON.stringify(header), parts: msg.parts });
  } catch (err) {
    throw new FedmartError('INTERNAL', `vertical: refusing to send an invalid ${msg.type} message (${(err as Error).message})`, { cause: err });
  }
  return { header: JSON.stringify(header), parts: msg.parts };
}

/**
 * Parse and validate a received message.
 * @param wire - header text and parts as received
 * @returns the typed message
 * @throws FedmartError INVALID_MESSAGE naming what was expected and what arrived
 */
export function parseVerticalMessage(wire: unknown): VerticalMessage {
  if (wire === null || typeof wire !== 'object') throw new FedmartError('INVALID_MESSAGE', `vertical: expected { header, parts }, got ${wire === null ? 'null' : typeof wire}`);
  const { header, parts } = wire as { header?: unknown; parts?: unknown };
  if (typeof header !== 'string') throw new FedmartError('INVALID_MESSAGE', `vertical: expected a JSON header string, got ${typeof header}`);
  let json: unknown;
  try {
    json = JSON.parse(header);
  } catch {
    throw new FedmartError('INVALID_MESSAGE', 'vertical: the header is not valid JSON; send encodeVerticalMessage output');
  }
  const h = VerticalHeaderSchema.safeParse(json);
  if (!h.success) {
    const issue = h.error.issues[0]!;
    throw new FedmartError('INVALID_MESSAGE', `vertical: invalid header at ${issue.path.join('.') || '(root)'}: ${issue.message}; expected protocol v${VERTICAL_PROTOCOL_VERSION} with one of the types ${VERTICAL_TYPES.join(', ')}`);
  }
  const type = h.data.type;
  const b = VerticalBodySchemas[type].safeParse(h.data.body);
  if (!b.success) {
    const issue = b.error.issues[0]!;
    throw new FedmartError('INVALID_MESSAGE', `vertical ${type}: invalid body at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  if (!Array.isArray(parts) || parts.some((p) => !(p instanceof Uint8Array))) throw new FedmartError('INVALID_MESSAGE', `vertical ${type}: parts must be an array of Uint8Array`);
  const exp = expectedParts(type, b.data as Record<string, unknown>);
  if (exp.count !== 'any' && parts.length !== exp.count) throw new FedmartError('INVALID_MESSAGE', `vertical ${type}: expected ${exp.count} binary part(s), got ${parts.length}`);
  let total = 0;
  for (const p of parts as Uint8Array[]) total += p.byteLength;
  if (total > MAX_VERTICAL_PART_BYTES) throw new FedmartError('INVALID_MESSAGE', `vertical ${type}: ${total} bytes of parts exceed the ${MAX_VERTICAL_PART_BYTES}-byte limit`);
  if (exp.bytes !== undefined && (parts[0] as Uint8Array).byteLength !== exp.bytes) {
    throw new FedmartError('INVALID_MESSAGE', `vertical ${type}: expected a part of ${exp.bytes} bytes for the header's sizes, got ${(parts[0] as Uint8Array).byteLength}`);
  }
  return { session: h.data.session, from: h.data.from, to: h.data.to, seq: h.data.seq, type, body: b.data as never, parts: parts as Uint8Array[] };
}

/** Little-endian bytes of a typed array (a copy, so it can be sent and kept independently). */
export function vectorBytes(v: Float64Array | Float32Array | Uint32Array): Uint8Array {
  const out = new Uint8Array(v.byteLength);
  out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return out;
}

/**
 * Read little-endian float64/float32/uint32 values from a validated part.
 * @param bytes - the part (its length was checked by {@link parseVerticalMessage})
 * @param kind - element type
 * @returns a fresh typed array (aligned copy)
 * @throws FedmartError INVALID_MESSAGE for non-finite floats
 */
export function readVector(bytes: Uint8Array, kind: 'f64'): Float64Array;
export function readVector(bytes: Uint8Array, kind: 'f32'): Float32Array;
export function readVector(bytes: Uint8Array, kind: 'u32'): Uint32Array;
export function readVector(bytes: Uint8Array, kind: 'f64' | 'f32' | 'u32'): Float64Array | Float32Array | Uint32Array {
  const copy = bytes.slice();
  const out = kind === 'f64' ? new Float64Array(copy.buffer) : kind === 'f32' ? new Float32Array(copy.buffer) : new Uint32Array(copy.buffer);
  if (kind !== 'u32') {
    for (let i = 0; i < out.length; i++) {
      const v = out[i]!;
      if (v - v !== 0) throw new FedmartError('INVALID_MESSAGE', `vertical: expected finite values, got ${v} at index ${i}; the peer's model diverged or the message is corrupt`);
    }
  }
  return out;
}
