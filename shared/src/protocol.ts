/**
 * The fedmart wire protocol: every REST body, socket event and stored JSON
 * blob has a zod schema here; TypeScript types are `z.infer` of them.
 *
 * Socket.IO namespace {@link FEDERATION_NAMESPACE}. A client sends every
 * message as `socket.emit('msg', envelope, attachment?, ack)` where
 * `envelope` is {@link ClientEnvelope} (JSON) and `attachment` is the binary
 * tensor (Float32 little-endian bytes) — tensors never travel as JSON arrays.
 * The server answers through the ack with {@link Ack}, and pushes
 * {@link ServerToClientEvents}.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { STRATEGY_IDS } from './strategy/types.ts';
import { ModelSpecSchema } from './model.ts';

/** Bumped on any incompatible change to envelopes or events. */
export const PROTOCOL_VERSION = 1;

/** Socket.IO namespace for federation traffic. */
export const FEDERATION_NAMESPACE = '/federation';

/** Largest binary attachment a client may send, in bytes (64 MiB ≈ 16 M float32). */
export const MAX_ATTACHMENT_BYTES = 64 * 1024 * 1024;

/** Largest JSON REST body, in bytes. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

/** The three roles a token can carry. */
export const ROLES = ['operator', 'partner', 'compliance'] as const;
export type Role = (typeof ROLES)[number];

const id = z.string().min(1).max(200);
const finiteNumber = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
/** Metrics: a flat map of finite numbers. */
export const MetricsSchema = z.record(z.string().max(64), finiteNumber).refine((m) => Object.keys(m).length <= 64, { message: 'at most 64 metrics' });
export type Metrics = z.infer<typeof MetricsSchema>;

/** Per-round local training hyper-parameters (see `strategy/types.ts`). */
export const LocalTrainConfigSchema = z.object({
  localEpochs: z.number().int().min(1).max(1000),
  batchSize: z.number().int().min(1).max(65536),
  learningRate: z.number().positive().max(10),
  proximalMu: z.number().min(0).max(1e6),
});

/** Model specification carried in the federation config (defined in `model.ts`). */
export { ModelSpecSchema };
export type ModelSpecInput = z.infer<typeof ModelSpecSchema>;

/** Phase timeouts (milliseconds). */
export const TimeoutsSchema = z.object({
  /** How long to wait for enough live clients before a round fails. */
  selectingMs: z.number().int().min(10).max(86_400_000).default(60_000),
  trainingMs: z.number().int().min(10).max(86_400_000).default(120_000),
  evaluatingMs: z.number().int().min(10).max(86_400_000).default(60_000),
});

/** Everything an operator sets when creating a federation. */
export const FederationConfigSchema = z.object({
  task: z.literal('binary').default('binary'),
  model: ModelSpecSchema,
  strategy: z.enum(STRATEGY_IDS).default('fedavg'),
  strategyOptions: z
    .object({
      proximalMu: z.number().min(0).optional(),
      serverLearningRate: z.number().positive().optional(),
      beta1: z.number().min(0).max(1).optional(),
      beta2: z.number().min(0).max(1).optional(),
      tau: z.number().positive().optional(),
      trimBeta: z.number().min(0).max(0.5).optional(),
      krumF: z.number().int().min(0).optional(),
      krumM: z.number().int().min(1).optional(),
    })
    .strict()
    .default({}),
  localTrain: LocalTrainConfigSchema,
  /** Fewest live clients a round may run with. */
  minClients: z.number().int().min(1).max(100_000).default(2),
  /** Fraction of live clients sampled into each round (at least minClients). */
  sampleFraction: z.number().gt(0).max(1).default(1),
  timeouts: TimeoutsSchema.default({ selectingMs: 60_000, trainingMs: 120_000, evaluatingMs: 60_000 }),
  /** Seed for client sampling and the initial model (non-secret). */
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
  /** The agreed data schema partners must follow (opaque to the coordinator). */
  dataSchema: z.unknown().optional(),
});
export type FederationConfig = z.infer<typeof FederationConfigSchema>;
export type FederationConfigInput = z.input<typeof FederationConfigSchema>;

/** POST /api/v1/federations */
export const CreateFederationBodySchema = z.object({
  name: z.string().min(1).max(200),
  config: FederationConfigSchema,
});

/** POST /api/v1/federations/:id/enrollments */
export const CreateEnrollmentBodySchema = z.object({
  partner: z.string().min(1).max(200).regex(/^[\w .@&()+-]+$/, { message: 'use letters, digits, spaces and . @ & ( ) + - _' }),
  /** Token lifetime in seconds (default 7 days). */
  expiresInSeconds: z.number().int().min(60).max(365 * 86_400).default(7 * 86_400),
});

/** POST /api/v1/federations/:id/rounds */
export const StartRoundsBodySchema = z.object({
  /** How many rounds to run, one after another. */
  count: z.number().int().min(1).max(10_000).default(1),
});

/** POST /api/v1/tokens (operator mints operator/compliance tokens) */
export const CreateTokenBodySchema = z.object({
  role: z.enum(['operator', 'compliance']),
  subject: z.string().min(1).max(200),
  expiresInSeconds: z.number().int().min(60).max(365 * 86_400).default(86_400),
});

// ---------------------------------------------------------------- socket

/** Client → server envelopes, a union on `type`. */
const base = { v: z.literal(PROTOCOL_VERSION), seq: z.number().int().min(0) };

export const HelloSchema = z.object({
  ...base,
  type: z.literal('hello'),
  payload: z.object({
    /** Local training examples (used for weighting and sampling). */
    numExamples: z.number().int().min(0),
    /** The partner accepts the federation's terms. */
    consent: z.literal(true),
    /** Client software description, e.g. backend name. */
    agent: z.string().max(200).optional(),
  }),
});

export const TrainResultSchema = z.object({
  ...base,
  type: z.literal('train-result'),
  roundId: id,
  payload: z.object({
    numExamples: z.number().int().min(1),
    metrics: MetricsSchema,
    /** Number of float32 values in the attachment (must equal the model's parameter count). */
    length: z.number().int().min(1),
  }),
});

export const TrainErrorSchema = z.object({
  ...base,
  type: z.literal('train-error'),
  roundId: id,
  payload: z.object({ code: z.string().max(64), message: z.string().max(2000) }),
});

export const EvaluateResultSchema = z.object({
  ...base,
  type: z.literal('evaluate-result'),
  roundId: id,
  payload: z.object({ numExamples: z.number().int().min(0), metrics: MetricsSchema }),
});

export const ClientEnvelopeSchema = z.discriminatedUnion('type', [HelloSchema, TrainResultSchema, TrainErrorSchema, EvaluateResultSchema]);
export type ClientEnvelope = z.infer<typeof ClientEnvelopeSchema>;
export type ClientMessageType = ClientEnvelope['type'];

/** Reply to every client message (Socket.IO ack). */
export type Ack = { ok: true } | { ok: false; error: { code: string; message: string } };

/** Server → client: train on these weights (attachment) with this config. */
export interface TrainInstruction {
  roundId: string;
  round: number;
  config: z.infer<typeof LocalTrainConfigSchema>;
  /** Number of float32 values in the weights attachment. */
  length: number;
}

/** Server → client: evaluate these weights (attachment). */
export interface EvaluateInstruction {
  roundId: string;
  round: number;
  length: number;
}

/** Server → client: a round changed phase. */
export interface RoundStatus {
  roundId: string;
  round: number;
  phase: string;
  reason?: string;
}

/** Server → client: sent once after a successful hello. */
export interface Welcome {
  federationId: string;
  partnerId: string;
  partnerName: string;
  protocolVersion: number;
  model: ModelSpecInput;
  dataSchema?: unknown;
}

/** Typed Socket.IO events, server → client. */
export interface ServerToClientEvents {
  welcome: (w: Welcome) => void;
  train: (t: TrainInstruction, weights: Uint8Array) => void;
  evaluate: (e: EvaluateInstruction, weights: Uint8Array) => void;
  'round-status': (s: RoundStatus) => void;
  /** An update was refused (invalid, late, wrong shape…); the round goes on without it. */
  rejected: (r: { roundId?: string; code: string; message: string }) => void;
  'protocol-error': (e: { code: string; message: string }) => void;
}

/** Typed Socket.IO events, client → server. */
export interface ClientToServerEvents {
  msg: (envelope: unknown, attachmentOrAck?: unknown, ack?: (a: Ack) => void) => void;
}

/**
 * Format zod issues into one human sentence: `field.path: problem; …`.
 * @param issues - `error.issues` from a failed safeParse
 */
export function formatIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
