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
import { PurposeSchema, PurposesSchema, ReleasePolicySchema, type Purpose } from './consent.ts';
import { z } from 'zod';
import { STRATEGY_IDS } from './strategy/types.ts';
import { listStrategies } from './strategy/registry.ts';
import { ModelSpecSchema } from './model.ts';
import { VerticalSpecSchema } from './vertical-spec.ts';
import { controlVariateTensors, JointModelSpecSchema, TaskIdSchema, type JointModelSpec } from './task/layout.ts';

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
  /** L2 penalty λ/2·‖W‖² on weight matrices (not biases); absent or 0 = none. */
  l2: z.number().min(0).max(1e3).optional(),
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
  /** Secure aggregation, stage 0: collecting the clients' public keys. */
  advertiseKeysMs: z.number().int().min(10).max(86_400_000).default(30_000),
  /** Secure aggregation, stage 1: collecting the sealed Shamir shares. */
  shareKeysMs: z.number().int().min(10).max(86_400_000).default(30_000),
  /** Secure aggregation, stage 2: local training plus the masked input (so as long as training). */
  maskedInputMs: z.number().int().min(10).max(86_400_000).default(120_000),
  /** Secure aggregation, stage 3: collecting the survivors' signatures on the survivor set. */
  consistencyCheckMs: z.number().int().min(10).max(86_400_000).default(30_000),
  /** Secure aggregation, stage 4: collecting the shares that remove the masks. */
  unmaskingMs: z.number().int().min(10).max(86_400_000).default(30_000),
  /**
   * Longest a training phase may last while selected partners report progress
   * (`train-progress`): each report moves the deadline to trainingMs (maskedInputMs) from now,
   * never past this many ms after the phase began. Absent: 10 × trainingMs.
   */
  trainingMaxMs: z.number().int().min(10).max(7 * 86_400_000).optional(),
});

/**
 * Secure aggregation per federation (Bonawitz et al. 2017; SecAgg+ of Bell et
 * al. 2020). The coordinator then learns only the sum of the surviving
 * partners' clipped, quantized, example-weighted updates.
 */
export const SecureAggregationConfigSchema = z
  .object({
    /** Shamir threshold t (default: chosen with k from n, γ, δ as Bell et al. 2020; never below the smallest secure t). */
    threshold: z.number().int().min(2).max(100_000).optional(),
    /** SecAgg+ degree k (even; default: the smallest k meeting 2^-40 security and 2^-30 correctness for n, γ, δ; ≥ n − 1 means every pair masks). */
    neighbours: z.number().int().min(2).max(100_000).optional(),
    /** γ: fraction of partners assumed to collude with the coordinator (default 0.1). */
    corruptedFraction: z.number().min(0).max(0.49).optional(),
    /** δ: dropout rate the default k must tolerate (default 0.3). */
    dropoutRate: z.number().min(0).max(0.9).optional(),
    /** Each coordinate of an update is clipped to [−clip, clip] before quantization. */
    clip: z.number().positive().max(1e6).default(1),
    /** Ring Z_{2^bits} the masked sum lives in. */
    bits: z.number().int().min(8).max(32).default(32),
  })
  .strict();
export type SecureAggregationConfig = z.infer<typeof SecureAggregationConfigSchema>;

/** Who can decrypt CKKS ciphertexts: everyone holding the one federation key, or only all of a round's partners together. */
export const HE_KEY_MODES = ['federation', 'multiparty'] as const;
/** The `he` setting of a CKKS federation (see {@link FederationConfigSchema}). */
export const HeConfigSchema = z.object({ keys: z.enum(HE_KEY_MODES) }).strict();
/** Most key parties multiparty CKKS is analysed for (`he/multiparty.ts` MULTIPARTY_MAX_PARTIES). */
export const MULTIPARTY_MAX_PARTNERS = 100;

/** How updates are protected from the coordinator by encryption. */
export const ENCRYPTION_MODES = ['none', 'ckks'] as const;

/** Strategies that need individual updates (robust ones): refused with secure aggregation or HE. */
const INDIVIDUAL_UPDATE_STRATEGIES = listStrategies().filter((s) => s.needsIndividualUpdates).map((s) => s.id);

/**
 * Differential privacy per federation (absent = off). `level: 'record'` runs
 * DP-SGD inside each partner (Abadi et al. 2016: per-example clipping to
 * `clip`, Gaussian noise `noiseMultiplier`·`clip`, Poisson sampling at
 * `sampleRate`, default batchSize / the partner's example count);
 * `level: 'partner'` runs DP-FedAvg (McMahan et al. 2018): each partner clips
 * its whole update to `clip`, and noise `noiseMultiplier`·`clip` is added to
 * the sum once by the coordinator (`mode: 'central'`, the default) or in
 * shares by the partners (`'distributed'`, each N(0, σ²C²/minClients), needed
 * when secure aggregation or CKKS hides individual updates). `adaptiveClip`
 * (partner level only) lets the clip track a quantile of update norms
 * (Andrew et al. 2021). Every committed round is charged to the privacy
 * ledger at `delta` (coordinator `privacy.ts`).
 */
export const DpConfigSchema = z
  .object({
    level: z.enum(['record', 'partner']),
    /** σ: noise std divided by the clipping norm (sensitivity). */
    noiseMultiplier: z.number().positive().max(1e6),
    /** C: L2 clipping norm (of each example's gradient, or of each partner's update). */
    clip: z.number().positive().max(1e6),
    delta: z.number().gt(0).lt(1),
    mode: z.enum(['central', 'distributed']).optional(),
    /** Record level: Poisson sampling rate q of each local step. */
    sampleRate: z.number().gt(0).max(1).optional(),
    adaptiveClip: z
      .object({
        /** γ: target fraction of partners whose update norm stays ≤ C. */
        targetQuantile: z.number().min(0).max(1).default(0.5),
        /** η_C: geometric learning rate of the clip. */
        clipLearningRate: z.number().min(0).max(10).default(0.2),
        /** σ_b: std of the noise on the count of unclipped partners (must exceed noiseMultiplier/2). */
        countStd: z.number().positive().max(1e6),
      })
      .strict()
      .optional(),
  })
  .strict();
export type DpConfig = z.infer<typeof DpConfigSchema>;

/**
 * What one partner can do to the federation (issue 8; the maths and the
 * reasoning are in `strategy/partner-bounds.ts`). A partner's weight is
 * capped by what it declared at hello, by its enrollment's `maxExamples`
 * and by `maxExamplesPerPartner`; every plaintext update's L2 norm is
 * checked against `maxUpdateNorm`, else the DP clip (partner level), else
 * `medianNormFactor` × the round's lower-median update norm, and clipped to
 * it or rejected (`onLargeUpdate`).
 */
export const PartnerLimitsSchema = z
  .object({
    /** Largest example count any partner is weighted by (10 M by default: bigger than any one partner's customer base in our settings; set it to the largest partner you expect). */
    maxExamplesPerPartner: z.number().int().min(1).max(2 ** 31 - 1).default(10_000_000),
    /** Fixed L2 bound on each update (absent: the DP clip, else the median rule). */
    maxUpdateNorm: z.number().positive().max(1e12).optional(),
    /** Without a fixed bound or partner-level DP: bound = this × the lower median of the round's update norms. */
    medianNormFactor: z.number().min(1).max(1e6).default(3),
    /** What happens to an update above the bound: scaled down to it, or left out (the partner is told why). */
    onLargeUpdate: z.enum(['clip', 'reject']).default('clip'),
  })
  .strict();
export type PartnerLimitsConfig = z.infer<typeof PartnerLimitsSchema>;

/** Options of the aggregation strategy (FedProx μ, FedOpt rates, trimmed-mean β, Krum f/m). */
export const StrategyOptionsSchema = z
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
  .strict();

/** Everything an operator sets when creating a federation. */
export const FederationConfigSchema = z.object({
  /**
   * What the partners' agents run (the task seam, `task/layout.ts`): `binary`
   * is the tabular classifier over `model` (an MLP spec); a scenario task
   * (`recommendation`, `pricing`, `text`…) describes its joint parameters
   * with a tensor layout in `model` and its own settings in `taskSpec`.
   */
  task: TaskIdSchema.default('binary'),
  model: JointModelSpecSchema,
  /** The task's own settings (opaque to the coordinator; each partner's task checks it fits its data). */
  taskSpec: z.unknown().optional(),
  strategy: z.enum(STRATEGY_IDS).default('fedavg'),
  strategyOptions: StrategyOptionsSchema.default({}),
  localTrain: LocalTrainConfigSchema,
  /** Fewest live clients a round may run with. */
  minClients: z.number().int().min(1).max(100_000).default(2),
  /** Fraction of live clients sampled into each round (at least minClients). */
  sampleFraction: z.number().gt(0).max(1).default(1),
  timeouts: TimeoutsSchema.default({ selectingMs: 60_000, trainingMs: 120_000, evaluatingMs: 60_000, advertiseKeysMs: 30_000, shareKeysMs: 30_000, maskedInputMs: 120_000, consistencyCheckMs: 30_000, unmaskingMs: 30_000 }),
  /** Seed for client sampling and the initial model (non-secret). */
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
  /** The agreed data schema partners must follow (opaque to the coordinator). */
  /**
   * Initial bias of the output unit of the round-0 model, usually the
   * log-odds of the partners' combined label rate (see `initWeights`).
   */
  initialOutputBias: z.number().min(-30).max(30).optional(),
  dataSchema: z.unknown().optional(),
  /** Secure aggregation (absent = off). */
  secureAggregation: SecureAggregationConfigSchema.optional(),
  /** 'ckks': partners encrypt updates; the coordinator sums ciphertexts and never sees the joint model. */
  encryption: z.enum(ENCRYPTION_MODES).default('none'),
  /** CKKS only: name of the partner that generates the federation key (default: the first partner to connect). */
  keyHolder: z.string().min(1).max(200).optional(),
  /**
   * CKKS only: who holds the decrypting key. Absent or `keys: 'federation'`: one federation key, generated by
   * the key holder and wrapped to every partner (every partner can decrypt). `keys: 'multiparty'`: n-out-of-n
   * multiparty CKKS (Mouchet et al., PoPETs 2021; `he/multiparty.ts`) with a fresh collective key per round among
   * the round's partners: no partner alone, nor any n − 1 with the coordinator, decrypts another's update; every
   * partner that contributed a key share must send its decryption share, or the round fails.
   */
  he: HeConfigSchema.optional(),
  /** Differential privacy (absent = off); see {@link DpConfigSchema}. */
  dp: DpConfigSchema.optional(),
  /** Bounds on what one partner can do (weights, update norms); see {@link PartnerLimitsSchema}. */
  limits: PartnerLimitsSchema.default({ maxExamplesPerPartner: 10_000_000, medianNormFactor: 3, onLargeUpdate: 'clip' }),
  /** 'vertical': the federation is a vertical FL job whose parties talk through the `/vertical` relay (absent = horizontal). */
  mode: z.enum(['horizontal', 'vertical']).optional(),
  /** Vertical federations between real partners: parties, columns, ID rule, model (`vertical-spec.ts`). */
  vertical: VerticalSpecSchema.optional(),
  /** What the joint model is for; partners whose consent does not cover it refuse to take part (`consent.ts`). */
  purpose: PurposeSchema.optional(),
  /** How model versions are released (`consent.ts`; absent: each committed version is published at once). */
  release: ReleasePolicySchema.optional(),
}).superRefine((c, ctx) => {
  if (c.release?.requiresApproval && c.release.autoPublish) ctx.addIssue({ code: 'custom', path: ['release', 'autoPublish'], message: 'autoPublish cannot be combined with requiresApproval: an approved release is published by the approval' });
  if (c.vertical !== undefined && c.mode !== 'vertical') ctx.addIssue({ code: 'custom', path: ['vertical'], message: "a vertical spec needs mode 'vertical'" });
  if (c.task === 'binary' && c.model.kind !== 'mlp') ctx.addIssue({ code: 'custom', path: ['model'], message: "task 'binary' trains the tabular MLP: model must be { kind: 'mlp', inputDim, hidden }; a tensor layout needs the scenario task that defines it (set task)" });
  if (c.task !== 'binary' && c.model.kind === 'mlp') ctx.addIssue({ code: 'custom', path: ['model'], message: `task '${c.task}' describes its joint parameters with a tensor layout ({ kind: 'tensors', tensors: [...] }), not an MLP spec` });
  if (c.initialOutputBias !== undefined && c.model.kind !== 'mlp') ctx.addIssue({ code: 'custom', path: ['initialOutputBias'], message: 'initialOutputBias applies to the MLP of task binary only; a tensor layout sets initial values per tensor (init)' });
  const protectedBy = [c.secureAggregation ? 'secure aggregation' : null, c.encryption === 'ckks' ? 'CKKS encryption' : null].filter(Boolean);
  if (protectedBy.length === 2) {
    ctx.addIssue({ code: 'custom', path: ['encryption'], message: "secure aggregation and CKKS encryption cannot both be on (each already hides individual updates); choose one: drop secureAggregation or set encryption to 'none'" });
  }
  if (protectedBy.length > 0 && (INDIVIDUAL_UPDATE_STRATEGIES as readonly string[]).includes(c.strategy)) {
    ctx.addIssue({ code: 'custom', path: ['strategy'], message: `strategy "${c.strategy}" needs each partner's individual update, but ${protectedBy[0]} reveals only their sum; use fedavg, fedprox, fedadam or fedyogi, or turn ${protectedBy[0]} off` });
  }
  if (c.keyHolder !== undefined && c.encryption !== 'ckks') {
    ctx.addIssue({ code: 'custom', path: ['keyHolder'], message: "keyHolder only applies with encryption 'ckks'" });
  }
  for (const issue of heConfigIssues(c)) ctx.addIssue({ code: 'custom', path: ['he', ...issue.path], message: issue.message });
  const ctrl = controlVariateTensors(c.model as JointModelSpec);
  if (ctrl.length > 0) {
    // SCAFFOLD's server step is c ← c + (1/N)·Σ_{i∈S} Δc_i; FedAvg's weighted mean over the round's partners equals it only when S is everyone.
    if (c.sampleFraction < 1) ctx.addIssue({ code: 'custom', path: ['sampleFraction'], message: `the model carries SCAFFOLD control tensors (${ctrl.join(', ')}), whose mean update is right only when every partner trains each round; set sampleFraction to 1, or drop the control tensors (fedmart scenario text simulate --drift-correction none)` });
    if (c.strategy !== 'fedavg' && c.strategy !== 'fedprox') ctx.addIssue({ code: 'custom', path: ['strategy'], message: `the model carries SCAFFOLD control tensors (${ctrl.join(', ')}), which need the plain weighted mean of the updates; strategy "${c.strategy}" would aggregate them differently — use fedavg, or drop the control tensors (--drift-correction none)` });
  }
  if (c.dp) for (const issue of dpConfigIssues(c.dp, c.strategy, protectedBy.length > 0, c.secureAggregation?.clip, c.minClients, c.encryption)) ctx.addIssue({ code: 'custom', path: ['dp', ...issue.path], message: issue.message });
});
export type FederationConfig = z.infer<typeof FederationConfigSchema>;

/**
 * Combinations of `he` with the rest of the federation that cannot work. Multiparty CKKS is n-out-of-n: each
 * round's key is made from the key shares of the partners that train in it, and decrypting needs every one of
 * their decryption shares, so one partner dropping after its key share fails the round (no model, the previous
 * one stays; its release is still charged). A partner left out of a round never receives that round's model, so
 * every round must include every connected partner (sampleFraction 1).
 */
function heConfigIssues(c: { he?: { keys: string } | undefined; encryption: string; keyHolder?: string | undefined; minClients: number; sampleFraction: number }): { path: string[]; message: string }[] {
  if (!c.he) return [];
  const out: { path: string[]; message: string }[] = [];
  if (c.encryption !== 'ckks') out.push({ path: ['keys'], message: "he applies with encryption 'ckks' only; set encryption to 'ckks' or drop he" });
  if (c.he.keys !== 'multiparty') return out;
  if (c.keyHolder !== undefined) out.push({ path: ['keys'], message: "multiparty CKKS has no key holder (each round's key is made by all its partners together): drop keyHolder" });
  if (c.minClients < 2) out.push({ path: ['keys'], message: 'multiparty CKKS needs minClients ≥ 2: with one key party that partner alone decrypts, and an aggregate of one update is that update' });
  if (c.minClients > MULTIPARTY_MAX_PARTNERS) out.push({ path: ['keys'], message: `multiparty CKKS is analysed for at most ${MULTIPARTY_MAX_PARTNERS} key parties (smudging noise and value headroom, he/multiparty.ts); lower minClients` });
  if (c.sampleFraction < 1) out.push({ path: ['keys'], message: "multiparty CKKS is n-out-of-n: only a round's partners can decrypt its aggregate, so a partner left out of a round would never get that model version; set sampleFraction to 1" });
  return out;
}

/** Combinations of a DP config with the rest of the federation that cannot give the promised guarantee. */
function dpConfigIssues(dp: DpConfig, strategy: string, hidden: boolean, secAggClip: number | undefined, minClients: number, encryption: string): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  if (dp.level === 'partner' && dp.mode === 'distributed' && !hidden) {
    out.push({ path: ['mode'], message: "partner-level noise added by the partners needs updates hidden from the coordinator (each update carries only a 1/√minClients share of the noise): turn on secureAggregation or encryption 'ckks', or use mode 'central'" });
  }
  if (dp.level === 'partner' && dp.adaptiveClip && encryption === 'ckks') {
    out.push({ path: ['adaptiveClip'], message: "adaptive clipping needs the noised count of clipped partners, which only the secure sum can carry; under CKKS the coordinator cannot decrypt it: drop adaptiveClip or use secureAggregation" });
  }
  if (dp.level === 'partner' && dp.mode === 'distributed' && secAggClip !== undefined) {
    // Secure aggregation clips each coordinate to ±clip before quantizing: it must not truncate the Gaussian share
    // (8 std: truncation probability ≈ 1e-15 per coordinate, negligible next to delta).
    const m = Math.sqrt(Math.max(1, minClients));
    const updateZ = dp.adaptiveClip && dp.adaptiveClip.countStd > dp.noiseMultiplier / 2 ? (dp.noiseMultiplier ** -2 - (2 * dp.adaptiveClip.countStd) ** -2) ** -0.5 : dp.noiseMultiplier;
    const need = dp.clip + (8 * updateZ * dp.clip) / m;
    if (secAggClip < need) {
      out.push({ path: ['mode'], message: `secure aggregation clips each coordinate to ±${secAggClip}, which would truncate each partner's DP noise share (std ${(updateZ * dp.clip / m).toPrecision(3)}); set secureAggregation.clip to at least ${need.toPrecision(3)} (C + 8 share std)` });
    }
    const needBit = dp.adaptiveClip ? 0.5 + (8 * dp.adaptiveClip.countStd) / m : 0;
    if (dp.adaptiveClip && secAggClip < needBit) {
      out.push({ path: ['adaptiveClip', 'countStd'], message: `secure aggregation clips each coordinate to ±${secAggClip}, which would truncate each partner's noised clip bit (½ + share std ${(dp.adaptiveClip.countStd / m).toPrecision(3)}); set secureAggregation.clip to at least ${needBit.toPrecision(3)}` });
    }
  }
  if (dp.level === 'record' && (dp.mode !== undefined || dp.adaptiveClip !== undefined)) {
    out.push({ path: [dp.mode !== undefined ? 'mode' : 'adaptiveClip'], message: "mode and adaptiveClip apply to level 'partner' only (DP-SGD noise is always added inside each partner)" });
  }
  if (dp.level === 'partner' && dp.sampleRate !== undefined) out.push({ path: ['sampleRate'], message: "sampleRate applies to level 'record' only" });
  if (dp.level === 'partner' && hidden && dp.mode !== 'distributed') {
    out.push({ path: ['mode'], message: "with secure aggregation or CKKS the coordinator never sees individual updates, so partner-level noise must be added by the partners: set dp.mode to 'distributed'" });
  }
  if (dp.level === 'partner' && (INDIVIDUAL_UPDATE_STRATEGIES as readonly string[]).includes(strategy)) {
    out.push({ path: ['level'], message: `partner-level DP noises the sum of clipped updates, but strategy "${strategy}" needs individual updates; use fedavg, fedprox, fedadam or fedyogi` });
  }
  if (dp.adaptiveClip && !(dp.adaptiveClip.countStd > dp.noiseMultiplier / 2)) {
    out.push({ path: ['adaptiveClip', 'countStd'], message: `countStd must exceed noiseMultiplier/2 = ${dp.noiseMultiplier / 2} (Andrew et al. 2021 split the budget between the count and the update); raise it (about partners/20 is typical) or lower noiseMultiplier` });
  }
  return out;
}
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
  /** Most examples this partner may be weighted by (agreed with it; absent: the federation's limits.maxExamplesPerPartner). */
  maxExamples: z.number().int().min(1).max(2 ** 31 - 1).optional(),
  /** The purposes the partner stated its data may serve (`consent.ts`); enrollment in a federation whose purpose they do not cover is refused. */
  purposes: PurposesSchema.optional(),
});

/** POST /api/v1/federations/:id/rounds */
export const StartRoundsBodySchema = z.object({
  /** How many rounds to run, one after another. */
  count: z.number().int().min(1).max(10_000).default(1),
});

/** PUT /api/v1/federations/:id/privacy/caps (role compliance): set or lift (epsilon null) one cap. */
export const PrivacyCapBodySchema = z
  .object({
    level: z.enum(['record', 'partner']),
    /** ε cap at the federation's δ; null lifts the cap. */
    epsilon: z.number().positive().max(1e6).nullable(),
    /** Partner id (see GET /federations/:id/enrollments); absent or null caps the whole federation. */
    partnerId: z.string().min(1).max(200).nullable().optional(),
  })
  .strict();

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
    /** Hex Ed25519 public key of the partner node's long-term identity (required for secure aggregation and CKKS). */
    identityKey: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits (an Ed25519 public key)').optional(),
    /** The purposes this partner's data may serve (absent: not stated). Recorded and audited by the coordinator. */
    purposes: PurposesSchema.optional(),
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

/** A selected partner still training: how far it is (the coordinator extends its wait, within timeouts.trainingMaxMs). */
export const TrainProgressSchema = z.object({
  ...base,
  type: z.literal('train-progress'),
  roundId: id,
  payload: z.object({ step: z.number().int().min(0), steps: z.number().int().min(0), epoch: z.number().int().min(0) }),
});

export const ClientEnvelopeSchema = z.discriminatedUnion('type', [HelloSchema, TrainResultSchema, TrainErrorSchema, EvaluateResultSchema, TrainProgressSchema]);
export type ClientEnvelope = z.infer<typeof ClientEnvelopeSchema>;
export type ClientMessageType = ClientEnvelope['type'];

/** Reply to every client message (Socket.IO ack). */
export type Ack = { ok: true } | { ok: false; error: { code: string; message: string } };

/**
 * Server → client: how to privatise this round's training (set by the
 * coordinator's DP strategy wrapper from {@link DpConfigSchema}; the client
 * half is `client-node/src/ml/dp-sgd.ts`).
 */
export const TrainDpSchema = z
  .object({
    level: z.enum(['record', 'partner']),
    /** C for this round (adaptive clipping moves it between rounds). */
    clip: z.number().positive().max(1e6),
    /** σ the ledger charges for this round. */
    noiseMultiplier: z.number().positive().max(1e6),
    /** δ at which the partner reports its ε (the federation's dp.delta). */
    delta: z.number().gt(0).lt(1),
    /** Record level: Poisson sampling rate (absent = batchSize / local examples). */
    sampleRate: z.number().gt(0).max(1).optional(),
    /**
     * Partner level, distributed mode: the std of the Gaussian share the
     * coordinator expects each partner to add. Partners never use it: they
     * compute their share from the terms they accepted (`client-node/src/protection/dp-terms.ts`)
     * and refuse a round whose value disagrees.
     */
    noiseStd: z.number().min(0).max(1e9).optional(),
  })
  .strict();
export type TrainDp = z.infer<typeof TrainDpSchema>;

/** The local config a client receives each round: {@link LocalTrainConfigSchema} plus the round's DP settings. */
export const TrainConfigSchema = LocalTrainConfigSchema.extend({ dp: TrainDpSchema.optional() });
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** Server → client: train on these weights (attachment) with this config. */
export interface TrainInstruction {
  roundId: string;
  round: number;
  config: TrainConfig;
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

/**
 * The protection terms a partner accepts when it joins (strategy, protection
 * of updates, DP policy, minimum participants). The coordinator sends them in
 * the welcome; the partner keeps the first ones it saw for the life of its
 * enrollment and checks every round instruction against them
 * (`client-node/src/protection/dp-terms.ts`).
 */
export const FederationTermsSchema = z
  .object({
    strategy: z.enum(STRATEGY_IDS),
    /** Present when the federation sets any (an empty set is left out, so older pins still match). */
    strategyOptions: StrategyOptionsSchema.optional(),
    minClients: z.number().int().min(1).max(100_000),
    secureAggregation: SecureAggregationConfigSchema.optional(),
    encryption: z.enum(ENCRYPTION_MODES),
    /** The partner that holds the CKKS federation key (its identity is pinned separately). */
    keyHolder: z.string().min(1).max(200).optional(),
    he: HeConfigSchema.optional(),
    dp: DpConfigSchema.optional(),
  })
  .strict();
export type FederationTerms = z.infer<typeof FederationTermsSchema>;

/**
 * What is wrong with a set of terms' DP policy: the same rules the
 * coordinator applies when a federation is created, so a partner can refuse
 * terms a coordinator should never have accepted.
 * @param t - terms from a welcome
 * @returns one message per problem (empty when the terms are coherent)
 */
export function dpTermsIssues(t: FederationTerms): string[] {
  if (!t.dp) return [];
  const hidden = t.secureAggregation !== undefined || t.encryption === 'ckks';
  return dpConfigIssues(t.dp, t.strategy, hidden, t.secureAggregation?.clip, t.minClients, t.encryption).map((i) => `dp.${i.path.join('.')}: ${i.message}`);
}

/**
 * The terms of a federation config, as sent in the welcome.
 * @param c - a parsed federation config
 * @returns the fields a partner pins
 */
export function federationTerms(c: FederationConfig): FederationTerms {
  return {
    strategy: c.strategy, minClients: c.minClients, encryption: c.encryption,
    ...(Object.keys(c.strategyOptions ?? {}).length ? { strategyOptions: c.strategyOptions } : {}),
    ...(c.keyHolder !== undefined ? { keyHolder: c.keyHolder } : {}),
    ...(c.he ? { he: c.he } : {}),
    ...(c.secureAggregation ? { secureAggregation: c.secureAggregation } : {}),
    ...(c.dp ? { dp: c.dp } : {}),
  };
}

/** Server → client: sent once after a successful hello. */
export interface Welcome {
  federationId: string;
  partnerId: string;
  partnerName: string;
  protocolVersion: number;
  /** The task the partners run (absent from old coordinators: `binary`). */
  task?: string;
  model: JointModelSpec;
  taskSpec?: unknown;
  dataSchema?: unknown;
  /** The federation's protection terms ({@link FederationTermsSchema}). */
  terms?: FederationTerms;
  /** Every enrolled partner's identity key as bound by the coordinator (hex), for partners to pin. */
  identities?: { partnerId: string; partnerName: string; identityKey: string }[];
  /** The federation's declared purpose (`consent.ts`); a partner whose consent does not cover it refuses. */
  purpose?: Purpose;
}

/** Most redirects a partner follows in a row (without a welcome or a failed connection between them) before it calls it a loop. */
export const MAX_LEADER_REDIRECTS = 5;

/**
 * Server → client (several coordinators, issue 15): this coordinator does not lead the partner's
 * federation. `url` is the leader's advertised origin (connect there and say hello again); null when
 * no coordinator leads it right now (a takeover is under way, or this one is still taking over):
 * reconnect to any coordinator after `retryAfterMs`.
 */
export const LeaderRedirectSchema = z.object({
  federationId: z.string().min(1),
  /** The leading coordinator's id (null: none). */
  leader: z.string().min(1).nullable(),
  url: z.string().url().refine((u) => /^https?:\/\/[^/]+\/?$/.test(u), 'an http(s) origin without a path').nullable(),
  retryAfterMs: z.number().int().min(0).max(60_000),
  reason: z.string(),
}).strict();
export type LeaderRedirect = z.infer<typeof LeaderRedirectSchema>;

/** Typed Socket.IO events, server → client. */
export interface ServerToClientEvents {
  welcome: (w: Welcome) => void;
  train: (t: TrainInstruction, weights: Uint8Array) => void;
  evaluate: (e: EvaluateInstruction, weights: Uint8Array) => void;
  'round-status': (s: RoundStatus) => void;
  /** An update was refused (invalid, late, wrong shape…); the round goes on without it. */
  rejected: (r: { roundId?: string; code: string; message: string }) => void;
  'protocol-error': (e: { code: string; message: string }) => void;
  /** Go to the federation's leader ({@link LeaderRedirectSchema}). */
  redirect: (r: LeaderRedirect) => void;
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
