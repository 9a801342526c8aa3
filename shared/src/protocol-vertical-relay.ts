/**
 * Socket.IO protocol of the coordinator's vertical relay (namespace
 * {@link VERTICAL_NAMESPACE}): vertical FL parties of one job (a federation
 * created with `mode: 'vertical'`) exchange their X25519 public keys and then
 * `shared/protocol-vertical` messages through the coordinator, which routes
 * them by header and never sees the binary parts in the clear (the parties
 * seal each part end to end; see `client-node/src/vertical/socket-channel.ts`).
 *
 * Client → server (each with an {@link Ack} callback):
 * - `key` (publicKey: 32 bytes): announce this party's X25519 public key once;
 * - `vmsg` ({@link RelayOutboundFrame}): a message; `header.from` must be the
 *   sender's authenticated party name, `header.session` the job id.
 * Server → client:
 * - `welcome` ({@link RelayWelcome}) after the handshake;
 * - `peer-key` ({@link RelayPeerKey}) when a party of the job announces its key;
 * - `vmsg` ({@link RelayInboundFrame}): a relayed message, `from` set by the coordinator;
 * - `peer-left` ({ party }) when a party of the job disconnects.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import type { Ack } from './protocol.ts';

/** Socket.IO namespace of the vertical relay. */
export const VERTICAL_NAMESPACE = '/vertical';

/** Largest total byte size of one relayed message's parts (sealed), and of one frame. */
export const MAX_VERTICAL_RELAY_BYTES = 64 * 1024 * 1024;
/** Largest header text the relay accepts. */
export const MAX_VERTICAL_HEADER_CHARS = 64 * 1024;
/** Largest number of parts in one relayed message. */
export const MAX_VERTICAL_RELAY_PARTS = 100_000;
/** Length of an X25519 public key. */
export const VERTICAL_PUBLIC_KEY_BYTES = 32;

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'expected binary data (Uint8Array/Buffer)' });

/** What a party sends: the header text and its sealed parts. */
export const RelayOutboundFrameSchema = z
  .object({
    header: z.string().min(2).max(MAX_VERTICAL_HEADER_CHARS),
    parts: z.array(bytes).max(MAX_VERTICAL_RELAY_PARTS),
  })
  .strict();
/** A message as a party sends it to the relay. */
export type RelayOutboundFrame = z.infer<typeof RelayOutboundFrameSchema>;

/** What a party receives: the sender's authenticated name, the header text and the sealed parts. */
export const RelayInboundFrameSchema = z
  .object({
    from: z.string().min(1).max(128),
    header: z.string().min(2).max(MAX_VERTICAL_HEADER_CHARS),
    parts: z.array(bytes).max(MAX_VERTICAL_RELAY_PARTS),
  })
  .strict();
/** A relayed message as the recipient receives it. */
export type RelayInboundFrame = z.infer<typeof RelayInboundFrameSchema>;

/** A party's announced X25519 public key. */
export const RelayPeerKeySchema = z.object({ party: z.string().min(1).max(128), publicKey: bytes.refine((b) => b.byteLength === VERTICAL_PUBLIC_KEY_BYTES, { message: `expected a ${VERTICAL_PUBLIC_KEY_BYTES}-byte X25519 public key` }) }).strict();
/** A party's announced X25519 public key. */
export type RelayPeerKey = z.infer<typeof RelayPeerKeySchema>;

/** Sent by the relay after the handshake: who you are, which job, and the keys already announced. */
export const RelayWelcomeSchema = z.object({ job: z.string().min(1), party: z.string().min(1), peers: z.array(RelayPeerKeySchema) }).strict();
/** Sent by the relay after the handshake. */
export type RelayWelcome = z.infer<typeof RelayWelcomeSchema>;

/** Events a vertical party emits. */
export interface VerticalRelayClientEvents {
  key: (publicKey: Uint8Array, ack: (a: Ack) => void) => void;
  vmsg: (frame: RelayOutboundFrame, ack: (a: Ack) => void) => void;
}
/** Events the relay emits to a party. */
export interface VerticalRelayServerEvents {
  welcome: (w: RelayWelcome) => void;
  'peer-key': (k: RelayPeerKey) => void;
  vmsg: (frame: RelayInboundFrame) => void;
  'peer-left': (p: { party: string }) => void;
}

/**
 * Control connections of vertical federations between real partners (a party
 * connects with `auth: { token, control: true }`; `coordinator/src/vertical-rounds.ts`):
 * server → party `vround` ({ round, session }), `vabort` ({ round, reason }),
 * `vpredict` ({ request, session, round, ids, explain }); party → server
 * `vstatus` ({@link VerticalStatus}) and `vpredict-result` ({@link VerticalPredictResult}).
 * Data sessions: `auth: { token, session }` joins the relay job `<federation>/<session>`.
 */
export const VERTICAL_SESSION = /^[a-z0-9-]{1,32}$/;

const metricsSchema = z.record(z.string().max(64), z.number());

/** A party's report on a round. */
export const VerticalStatusSchema = z
  .object({
    round: z.number().int().min(1),
    /** `checked`: the label holder's result of an overlap check (psi policy "size"), which ends the round. */
    phase: z.enum(['aligned', 'done', 'failed', 'checked']),
    psi: z.object({ intersection: z.number().int().min(0), seconds: z.number().min(0) }).strict().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    metrics: metricsSchema.optional(),
    reason: z.string().max(2000).optional(),
  })
  .strict();
export type VerticalStatus = z.infer<typeof VerticalStatusSchema>;

/** A party's answer to a scoring request: the label holder's scores, or any party's error. */
export const VerticalPredictResultSchema = z
  .object({
    request: z.string().min(1).max(64),
    p: z.array(z.number()).max(100_000).optional(),
    /** Per party: its additive logit contribution per ID (LR with explain); the label holder's includes the bias. */
    contributions: z.record(z.string().max(128), z.array(z.number()).max(100_000)).optional(),
    error: z.string().max(2000).optional(),
  })
  .strict();
export type VerticalPredictResult = z.infer<typeof VerticalPredictResultSchema>;

/** POST /api/v1/federations/:id/vertical/predict */
export const VerticalPredictBodySchema = z.object({ ids: z.array(z.string().min(1).max(256)).min(1).max(10_000), explain: z.boolean().default(false) }).strict();
