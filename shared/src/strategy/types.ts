/**
 * The Strategy plug-in interface (shape of Flower's `Strategy`:
 * configure/aggregate for train and evaluate, plus a summary).
 *
 * Strategies are pure: no I/O, no timers, failures arrive as data. Model
 * parameters travel as one flat Float32Array (layer tensors concatenated in
 * model order; shapes are carried separately by the model spec).
 */

/** Ids of the built-in strategies. */
export const STRATEGY_IDS = ['fedavg', 'fedprox', 'fedadam', 'fedyogi', 'median', 'trimmed-mean', 'krum'] as const;
/** A built-in strategy id. */
export type StrategyId = (typeof STRATEGY_IDS)[number];

/** Hyper-parameters a client uses for one round of local training. */
export interface LocalTrainConfig {
  /** Local passes over the partner's training split. */
  localEpochs: number;
  /** Mini-batch size. */
  batchSize: number;
  /** Local optimizer learning rate. */
  learningRate: number;
  /** FedProx proximal coefficient μ (0 = plain local SGD). Loss += μ/2·‖w − w_global‖². */
  proximalMu: number;
  /** L2 penalty λ on the weight matrices (not biases): loss += λ/2·Σ‖W‖². Absent or 0 = none. */
  l2?: number;
}

/** One client's training result as the strategy sees it. */
export interface ClientUpdate {
  /** Stable node id (the enrollment's partner id). */
  nodeId: string;
  /** Number of local training examples behind the update (the FedAvg weight). */
  numExamples: number;
  /** Model delta: local weights after training minus the global weights sent. */
  delta: Float32Array;
  /** Local metrics (loss, auc, …) reported by the client. */
  metrics: Record<string, number>;
}

/** A client's failure in a round, delivered as data (never thrown). */
export interface ClientFailure {
  nodeId: string;
  code: string;
  reason: string;
}

/** One client's evaluation result. */
export interface ClientEvaluation {
  nodeId: string;
  numExamples: number;
  metrics: Record<string, number>;
}

/** Result of {@link Strategy.aggregateTrain}. */
export interface AggregateResult {
  /** New global weights, or `null` to keep the previous global model. */
  weights: Float32Array | null;
  /** Aggregated training metrics (example-weighted means of client metrics). */
  metrics: Record<string, number>;
}

/** What {@link Strategy.aggregateMean} knows besides the mean delta. */
export interface MeanAggregateInfo {
  /** Σ n_k over the contributing clients. */
  totalWeight: number;
  /** How many clients contributed. */
  clients: number;
  /** Aggregated training metrics (example-weighted means), passed through. */
  metrics: Record<string, number>;
  /**
   * Distributed adaptive clipping: the secure sum's extra coordinate,
   * Σ(b_i − ½) plus every partner's noise share on it (its only release).
   */
  noisedClipCount?: number;
}

/** Round context passed to configure* calls. */
export interface RoundContext {
  /** 1-based round number within the federation. */
  round: number;
  /** Current global weights. */
  global: Float32Array;
  /** Ids of the clients selected for this round. */
  clients: readonly string[];
}

/**
 * A federated optimisation strategy. One instance lives for the whole
 * federation (server optimizers keep their moments between rounds).
 */
export interface Strategy {
  /** Registry id. */
  readonly id: StrategyId;
  /**
   * True when aggregation needs each client's individual update (robust
   * strategies). Such strategies cannot run under secure aggregation or HE,
   * which only reveal the sum.
   */
  readonly needsIndividualUpdates: boolean;
  /**
   * @param ctx - the round being configured
   * @param base - the federation's default local config
   * @returns the local config every selected client receives
   */
  configureTrain(ctx: RoundContext, base: LocalTrainConfig): LocalTrainConfig;
  /**
   * Combine the clients' deltas into the next global model.
   * @param round - 1-based round number
   * @param global - global weights the clients started from (not mutated)
   * @param results - successful client updates (all deltas have `global.length`)
   * @param failures - clients that failed this round
   * @returns new weights, or `weights: null` to keep `global` (e.g. no results)
   */
  aggregateTrain(round: number, global: Float32Array, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateResult;
  /**
   * Aggregate-only entry point, for when only the example-weighted mean of
   * the deltas is known (secure aggregation unmasks just the sum; under CKKS
   * the partners decrypt just the sum). Present only on strategies with
   * `needsIndividualUpdates === false`; must give the same model as
   * {@link aggregateTrain} would on the individual updates.
   * @param round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param mean - Σ n_k·Δ_k / Σ n_k, one value per parameter
   * @param info - total weight Σ n_k, number of contributing clients, aggregated client metrics
   * @returns new weights (or `null` to keep `global` when totalWeight is 0)
   */
  aggregateMean?(round: number, global: Float32Array, mean: Float64Array, info: MeanAggregateInfo): AggregateResult;
  /** @returns whether clients should evaluate the new global model this round. */
  configureEvaluate(ctx: RoundContext): { evaluate: boolean };
  /**
   * @returns example-weighted means of the clients' evaluation metrics, plus `numExamples`.
   */
  aggregateEvaluate(round: number, results: readonly ClientEvaluation[], failures: readonly ClientFailure[]): Record<string, number>;
  /** One line describing the strategy and its parameters. */
  summary(): string;
}

/** Options accepted by {@link createStrategy}; each strategy reads its own. */
export interface StrategyOptions {
  /** FedProx μ (default 0.01). */
  proximalMu?: number;
  /** FedAdam/FedYogi server learning rate η (default 0.01 — Reddi et al. 2021 grid). */
  serverLearningRate?: number;
  /** FedAdam/FedYogi β1 (default 0.9). */
  beta1?: number;
  /** FedAdam/FedYogi β2 (default 0.99). */
  beta2?: number;
  /** FedAdam/FedYogi adaptivity τ (default 1e-3). */
  tau?: number;
  /** Trimmed mean: fraction β cut from each end per coordinate (default 0.1). */
  trimBeta?: number;
  /** Krum: number of Byzantine clients f tolerated (default 1). */
  krumF?: number;
  /** Multi-Krum: how many best-scored updates to average (default 1 = Krum). */
  krumM?: number;
}
