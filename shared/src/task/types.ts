/**
 * The task seam's interface (`../shared/DESIGN.md`, "Scenarios as tasks"):
 * what a partner agent needs from a task it runs. Scenario modules
 * implement {@link PartnerTask}; `client-node` runs whichever it is handed
 * (`client-node/src/task.ts` has the first, the tabular classifier).
 *
 * Types only: no I/O, no runtime.
 */
import type { LocalTrainConfig } from '../strategy/types.ts';
import type { JointModelSpec } from './layout.ts';
import type { RandomSource } from '../dp/gaussian.ts';

/** What a round hands the task. */
export interface TaskRoundArgs {
  /** The global joint weights of this round (do not mutate). */
  weights: Float32Array;
  /** The round's local training hyper-parameters (epochs, batch, learning rate, μ, l2). */
  config: LocalTrainConfig;
  /** 1-based round number. */
  round: number;
  /** Seed for local shuffling and sampling (non-secret). */
  seed: number;
  /** Aborted when the partner stops (SIGTERM, close): training ends at its next yield with FedmartError UNAVAILABLE, writing nothing. */
  signal?: AbortSignal;
  /** Called as training advances (at most every few hundred ms), so the agent can tell the coordinator it is still working. */
  onProgress?: (p: TrainProgress) => void;
}

/** How far one round's local training is. */
export interface TrainProgress {
  /** Optimizer steps done / planned this round. */
  step: number;
  steps: number;
  /** 1-based epoch in progress. */
  epoch: number;
}

/** Record-level DP asked of a task: DP-SGD over its own examples (Abadi et al. 2016). */
export interface RecordDpOptions {
  /** C: per-example clipping norm. */
  clip: number;
  /** σ: noise multiplier (noise std σ·C). */
  noiseMultiplier: number;
  /** q: Poisson sampling rate (absent: the task's batch size / its example count). */
  sampleRate?: number | undefined;
  /** Byte source for sampling and noise (default: the platform CSPRNG; tests pass a seeded one). */
  rng?: RandomSource;
}

/**
 * How a task trains one round, as the DP layer needs it. `plain` trains
 * without DP; `recordDp` runs DP-SGD over the task's own examples and says
 * which q and how many steps it took, so the charge is exact. A task without
 * `recordDp` refuses record-level DP federations.
 */
export interface RoundTraining {
  plain(): Promise<{ delta: Float32Array; metrics: Record<string, number> }>;
  recordDp?(dp: RecordDpOptions): Promise<{ delta: Float32Array; q: number; steps: number; metrics?: Record<string, number> }>;
}

/** A task's evaluation of joint weights on this partner's validation data. */
export interface TaskEvaluation {
  /** Examples the metrics are averaged over (the coordinator weights partners by it). */
  numExamples: number;
  /** Flat finite metrics; `loss` (lower is better) is what experiment selection reads. */
  metrics: Record<string, number>;
}

/** What a task may read of the pinned federation terms (a subset of the protocol's FederationTerms). */
export interface PinnedTerms {
  minClients: number;
  secureAggregation?: object | undefined;
  encryption?: string | undefined;
}

/** A task a partner agent can run. */
export interface PartnerTask {
  /** Task id; must equal the federation's `task`. */
  readonly id: string;
  /** This partner's weight in the average: its training examples (declared at hello, capped by the coordinator). */
  readonly numExamples: number;
  /**
   * Check that the federation's joint model and task settings fit this
   * partner's data, and adopt them (called at every welcome).
   * @param terms - the federation terms this partner pinned (protection settings the coordinator cannot change
   *   later): a task whose taskSpec relies on a protection layer (distributed DP noise needs secure aggregation)
   *   checks it here, against the terms rather than the coordinator-supplied taskSpec
   * @throws FedmartError DATA_ERROR / CONFIG_ERROR naming the mismatch and what to do
   */
  accept(model: JointModelSpec, taskSpec: unknown, terms?: PinnedTerms): void;
  /**
   * Set (after accept) by a task whose DP release adds only a 1/√S share of the noise, relying on a secure sum of at
   * least S partners: the agent then refuses a secure-aggregation round selected with, or unmasking, fewer.
   */
  readonly noiseShares?: number | undefined;
  /** One round of local training from the global weights: the update is the change of the joint weights. */
  round(args: TaskRoundArgs): RoundTraining;
  /** Evaluate joint weights on this partner's validation data. */
  evaluate(weights: Float32Array): Promise<TaskEvaluation>;
}
