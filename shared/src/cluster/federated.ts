/**
 * Federated k-means: the partner's half ({@link KMeansPartner}, which holds
 * only its own rows) and the coordinator's loop ({@link runFederatedKMeans}):
 *
 * 1. initialization — each partner sends group means of ≥ m of its
 *    customers, the coordinator seeds k centroids with weighted k-means++
 *    (`seeding.ts`);
 * 2. Lloyd iterations — the coordinator publishes the centroids, each
 *    partner returns its per-cluster counts, sums and inertia share, and the
 *    coordinator adds them (plainly, or with secure aggregation:
 *    `secure-sum.ts`) and moves the centroids (`lloyd.ts`);
 * 3. profile pass — one more sum at the final centroids, now with each
 *    cluster's positive count when the partners have labels;
 * 4. assignment — each partner assigns its own customers to the final
 *    centroids; the assignments stay with it.
 *
 * {@link runCentralizedKMeans} runs the same Lloyd loop on pooled rows from
 * the same initial centroids: the baseline the federated inertia is held to.
 *
 * Here the partners are objects in one process (the coordinator's task seam
 * for running them over Socket.IO does not exist yet); each object is
 * handed only its own rows and answers only with the sums listed above.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { createSeededRng } from '../data/rng.ts';
import { addClusterSums, assignToNearest, computeClusterSums, runLloyd, type ClusterSums, type LloydResult, type Points } from './lloyd.ts';
import { seedFromLocalSummaries, summarizeLocalGroups, type LocalGroupOptions, type LocalGroupSummary } from './seeding.ts';
import { secureSumClusterSums, type ClusterSumBounds } from './secure-sum.ts';

/** A partner in federated k-means: its rows (and labels) never leave this object. */
export class KMeansPartner {
  readonly id: string;
  readonly #points: Points;
  readonly #labels: Float32Array | undefined;

  /**
   * @param id - the partner's name (reports only)
   * @param points - its own encoded rows
   * @param labels - its own 0/1 labels, when it has them (used only for segment positive rates)
   */
  constructor(id: string, points: Points, labels?: Float32Array) {
    this.id = id;
    this.#points = points;
    this.#labels = labels;
  }

  /** Number of rows (disclosed: the standardisation statistics already carry it). */
  get rows(): number {
    return this.#points.n;
  }

  /**
   * Initialization message: group means of ≥ m customers (see `seeding.ts`).
   * @param opts - g and m
   * @param seed - seed of this partner's local choices
   * @returns the summary to send
   */
  summarizeGroups(opts: LocalGroupOptions, seed: number): LocalGroupSummary {
    return summarizeLocalGroups(this.#points, opts, createSeededRng(seed));
  }

  /**
   * One Lloyd iteration's contribution.
   * @param centroids - the published centroids
   * @param k - number of centroids
   * @param withLabels - add per-cluster positive counts (profile pass only)
   * @returns sums over this partner's rows
   */
  clusterSums(centroids: Float64Array, k: number, withLabels = false): ClusterSums {
    return computeClusterSums(this.#points, centroids, k, withLabels ? this.#labels : undefined);
  }

  /**
   * This partner's customers' segments (kept locally).
   * @param centroids - the final centroids
   * @param k - number of centroids
   * @returns one centroid index per own row
   */
  assign(centroids: Float64Array, k: number): Int32Array {
    return assignToNearest(this.#points, centroids, k);
  }

  /** Whether this partner has labels. */
  get hasLabels(): boolean {
    return this.#labels !== undefined;
  }
}

/** Default most group means a partner sends at initialization, per segment asked for (g = 2k). */
export const DEFAULT_INIT_GROUPS_PER_SEGMENT = 2;

/** Default fewest customers behind any group mean sent at initialization (m). */
export const DEFAULT_MIN_GROUP_SIZE = 20;

/** How the coordinator adds the partners' sums. */
export type ClusterAggregation = { kind: 'plain' } | { kind: 'secure'; bounds: ClusterSumBounds };

/** Options of {@link runFederatedKMeans}. */
export interface FederatedKMeansOptions {
  k: number;
  seed: number;
  /** initialization: at most `groups` means per partner (default 2k), each of ≥ `minGroupSize` customers (default {@link DEFAULT_MIN_GROUP_SIZE}) */
  init?: Partial<LocalGroupOptions>;
  /** most Lloyd updates; default 100 */
  maxIterations?: number;
  /** relative inertia change that stops the iterations; default 1e-4 */
  tolerance?: number;
  /** default plain */
  aggregation?: ClusterAggregation;
  /** progress after each step */
  onStep?: (iteration: number, inertia: number) => void;
}

/** The outcome of a federated (or centralized) k-means run. */
export interface KMeansRun extends LloydResult {
  /** the initial centroids both runs start from, k×d */
  initial: Float64Array;
  /** the sums at the final centroids, with positives when every party has labels */
  profile: ClusterSums;
}

/** The outcome of {@link runFederatedKMeans}. */
export interface FederatedKMeansRun extends KMeansRun {
  /** group means each partner sent at initialization */
  initGroups: number[];
  /** each partner's own assignments, in partner order (computed by the partner) */
  assignments: Int32Array[];
  /** secure aggregation rounds run (0 without it) */
  secureRounds: number;
}

function aggregator(aggregation: ClusterAggregation, label: string): { sum: (list: ClusterSums[]) => ClusterSums; rounds: () => number } {
  let rounds = 0;
  if (aggregation.kind === 'plain') return { sum: addClusterSums, rounds: () => 0 };
  return {
    sum: (list) => secureSumClusterSums(list, aggregation.bounds, `${label}/${++rounds}`).total,
    rounds: () => rounds,
  };
}

/**
 * Initial centroids from the partners' group summaries (step 1 of the module doc).
 * @param partners - the partners
 * @param opts - k, seed and the init options
 * @returns the centroids and how many groups each partner sent
 * @throws FedmartError DATA_ERROR when the partners hold fewer than k groups of ≥ m customers
 */
export function initializeFederated(partners: readonly KMeansPartner[], opts: Pick<FederatedKMeansOptions, 'k' | 'seed' | 'init'>): { initial: Float64Array; initGroups: number[] } {
  const init: LocalGroupOptions = { groups: opts.init?.groups ?? DEFAULT_INIT_GROUPS_PER_SEGMENT * opts.k, minGroupSize: opts.init?.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE, ...(opts.init?.iterations === undefined ? {} : { iterations: opts.init.iterations }) };
  const summaries = partners.map((p, i) => p.summarizeGroups(init, opts.seed * 1000 + i + 1));
  return { initial: seedFromLocalSummaries(summaries, opts.k, createSeededRng(opts.seed)), initGroups: summaries.map((s) => s.groups) };
}

/**
 * Run federated k-means (steps 1–4 of the module doc).
 *
 * @param partners - the partners, at least one (three with secure aggregation)
 * @param opts - k, seed, stopping rule, aggregation
 * @returns initial and final centroids, inertia, the profile sums and each partner's assignments
 * @throws FedmartError DATA_ERROR for too few groups for k; CONFIG_ERROR for too few partners for secure aggregation; INVALID_UPDATE for sums outside their bounds
 * @example
 * const run = runFederatedKMeans(partners, { k: 5, seed: 1 });
 * run.inertia; run.assignments[0]; // partner 1's customers' segments
 */
export function runFederatedKMeans(partners: readonly KMeansPartner[], opts: FederatedKMeansOptions): FederatedKMeansRun {
  if (partners.length === 0) throw new RangeError('runFederatedKMeans: expected at least one partner');
  const aggregation = opts.aggregation ?? { kind: 'plain' };
  if (aggregation.kind === 'secure' && partners.length < 3) {
    throw new FedmartError('CONFIG_ERROR', `secure aggregation needs at least 3 partners (the sum of 2 reveals each to the other), got ${partners.length}; use --partners 3 or more`);
  }
  const { k } = opts;
  const { initial, initGroups } = initializeFederated(partners, opts);
  const d = initial.length / k;
  const agg = aggregator(aggregation, `kmeans-${opts.seed}`);
  const lloyd = runLloyd({
    initial,
    k,
    d,
    ...(opts.maxIterations === undefined ? {} : { maxIterations: opts.maxIterations }),
    ...(opts.tolerance === undefined ? {} : { tolerance: opts.tolerance }),
    ...(opts.onStep === undefined ? {} : { onStep: opts.onStep }),
    step: (c) => agg.sum(partners.map((p) => p.clusterSums(c, k))),
  });
  const withLabels = partners.every((p) => p.hasLabels);
  const profile = agg.sum(partners.map((p) => p.clusterSums(lloyd.centroids, k, withLabels)));
  const assignments = partners.map((p) => p.assign(lloyd.centroids, k));
  return { ...lloyd, initial, profile, initGroups, assignments, secureRounds: agg.rounds() };
}

/**
 * The centralized baseline: Lloyd on the pooled rows from given initial
 * centroids, with the same stopping rule.
 *
 * @param points - all rows together
 * @param initial - the same initial centroids the federation used
 * @param opts - k, stopping rule, optional labels for the profile
 * @returns the run
 */
export function runCentralizedKMeans(points: Points, initial: Float64Array, opts: { k: number; maxIterations?: number; tolerance?: number; labels?: Float32Array }): KMeansRun {
  const { k } = opts;
  const lloyd = runLloyd({
    initial,
    k,
    d: points.d,
    ...(opts.maxIterations === undefined ? {} : { maxIterations: opts.maxIterations }),
    ...(opts.tolerance === undefined ? {} : { tolerance: opts.tolerance }),
    step: (c) => computeClusterSums(points, c, k),
  });
  return { ...lloyd, initial, profile: computeClusterSums(points, lloyd.centroids, k, opts.labels) };
}
