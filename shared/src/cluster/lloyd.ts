/**
 * Lloyd's algorithm for k-means (Lloyd, "Least squares quantization in PCM",
 * IEEE Trans. Inf. Theory 28(2), 1982), split so that it runs over partners
 * who never pool their rows.
 *
 * One iteration needs, per cluster j, only the number of rows nearest to
 * centroid j and the sum of those rows: the new centroid is Σx / count. Both
 * are sums over rows, so the sum over partners of each partner's
 * (count, Σx) equals the pooled (count, Σx), and a federated Lloyd step is
 * the centralized step. Each partner also reports its sum of squared
 * distances to the nearest centroid (its share of the inertia), used to
 * decide convergence; it is a sum too.
 *
 * What leaves a partner per iteration: k counts, k·d sums and one inertia
 * share ({@link ClusterSums}); with secure aggregation only their sum over
 * partners is learned (see `secure-sum.ts`). Never a row, never which
 * customer is in which cluster.
 *
 * Empty clusters: a cluster that no row is nearest to keeps its previous
 * centroid (it may win rows back in a later iteration). Re-seeding it at a
 * far-away row, as centralized implementations do, would need a raw row.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';

/** Rows to cluster, row-major n×d, optionally weighted (weights default to 1). */
export interface Points {
  x: Float32Array | Float64Array;
  n: number;
  d: number;
  /** one non-negative weight per row (for clustering weighted candidates); default all 1 */
  weights?: Float64Array;
}

/** What one partner contributes to one Lloyd iteration: sums over its own rows. */
export interface ClusterSums {
  k: number;
  d: number;
  /** (weighted) number of rows nearest to each centroid */
  counts: Float64Array;
  /** k×d row-major: Σ of the rows nearest to each centroid */
  sums: Float64Array;
  /** Σ over rows of the squared distance to the nearest centroid (this party's inertia) */
  sse: number;
  /** per centroid, the (weighted) number of positive rows; only when labels were given */
  positives?: Float64Array;
}

function checkPoints(p: Points, where: string): void {
  if (p === null || typeof p !== 'object') throw new TypeError(`${where}: points: expected { x, n, d }`);
  if (!(p.x instanceof Float32Array || p.x instanceof Float64Array)) throw new TypeError(`${where}: points.x: expected a Float32Array or Float64Array`);
  if (!Number.isSafeInteger(p.d) || p.d < 1) throw new RangeError(`${where}: points.d: expected an integer >= 1, got ${String(p.d)}`);
  if (!Number.isSafeInteger(p.n) || p.n < 0 || p.x.length !== p.n * p.d) throw new RangeError(`${where}: points: x has ${p.x.length} values, expected n·d = ${String(p.n)}·${p.d}`);
  if (p.weights !== undefined && (!(p.weights instanceof Float64Array) || p.weights.length !== p.n)) throw new RangeError(`${where}: points.weights: expected a Float64Array of ${p.n} weights`);
}

function checkCentroids(centroids: Float64Array, k: number, d: number, where: string): void {
  if (!(centroids instanceof Float64Array)) throw new TypeError(`${where}: centroids: expected a Float64Array`);
  if (!Number.isSafeInteger(k) || k < 1 || centroids.length !== k * d) throw new RangeError(`${where}: centroids: expected k·d = ${String(k)}·${d} values, got ${centroids.length}`);
}

/**
 * Index of the centroid nearest to row `i` (squared Euclidean distance; ties
 * go to the lower index so every party breaks them the same way) and that
 * distance.
 */
function nearest(x: Float32Array | Float64Array, base: number, d: number, centroids: Float64Array, k: number): [number, number] {
  let best = 0;
  let bestDist = Number.POSITIVE_INFINITY;
  for (let j = 0; j < k; j++) {
    const c = j * d;
    let dist = 0;
    for (let t = 0; t < d; t++) {
      const diff = x[base + t]! - centroids[c + t]!;
      dist += diff * diff;
    }
    if (dist < bestDist) {
      bestDist = dist;
      best = j;
    }
  }
  return [best, bestDist];
}

/**
 * One party's contribution to a Lloyd iteration: per centroid, the count and
 * sum of its rows nearest to that centroid, plus its inertia share. Sums are
 * accumulated in float64.
 *
 * @param points - this party's own rows
 * @param centroids - the current centroids, k×d row-major
 * @param k - number of centroids
 * @param labels - optional 0/1 labels (one per row): adds `positives`, for segment profiles
 * @returns the sums (nothing row-level)
 * @throws TypeError / RangeError on mismatched shapes
 * @example
 * const s = computeClusterSums({ x, n, d }, centroids, 5);
 */
export function computeClusterSums(points: Points, centroids: Float64Array, k: number, labels?: Float32Array): ClusterSums {
  checkPoints(points, 'computeClusterSums');
  const { x, n, d, weights } = points;
  checkCentroids(centroids, k, d, 'computeClusterSums');
  if (labels !== undefined && (!(labels instanceof Float32Array) || labels.length !== n)) throw new RangeError(`computeClusterSums: labels: expected a Float32Array of ${n} labels`);
  const counts = new Float64Array(k);
  const sums = new Float64Array(k * d);
  const positives = labels === undefined ? undefined : new Float64Array(k);
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const base = i * d;
    const [j, dist] = nearest(x, base, d, centroids, k);
    const w = weights === undefined ? 1 : weights[i]!;
    counts[j]! += w;
    sse += w * dist;
    const c = j * d;
    for (let t = 0; t < d; t++) sums[c + t]! += w * x[base + t]!;
    if (positives !== undefined && labels![i] === 1) positives[j]! += w;
  }
  return positives === undefined ? { k, d, counts, sums, sse } : { k, d, counts, sums, sse, positives };
}

/**
 * The segment of every row: the index of its nearest centroid. This is what
 * each partner computes for its own customers once the centroids are final;
 * it stays with the partner.
 *
 * @param points - the party's rows
 * @param centroids - k×d
 * @param k - number of centroids
 * @returns one centroid index per row
 * @throws TypeError / RangeError on mismatched shapes
 */
export function assignToNearest(points: Points, centroids: Float64Array, k: number): Int32Array {
  checkPoints(points, 'assignToNearest');
  checkCentroids(centroids, k, points.d, 'assignToNearest');
  const out = new Int32Array(points.n);
  for (let i = 0; i < points.n; i++) out[i] = nearest(points.x, i * points.d, points.d, centroids, k)[0];
  return out;
}

/**
 * Combine the partners' contributions: a plain element-wise sum (what the
 * coordinator computes without secure aggregation).
 *
 * @param list - one {@link ClusterSums} per partner, all with the same k and d
 * @returns their sum; `positives` only if every entry has it
 * @throws RangeError on an empty list; FedmartError INVALID_UPDATE when shapes disagree
 */
export function addClusterSums(list: readonly ClusterSums[]): ClusterSums {
  if (!Array.isArray(list) || list.length === 0) throw new RangeError('addClusterSums: expected at least one contribution');
  const { k, d } = list[0]!;
  const counts = new Float64Array(k);
  const sums = new Float64Array(k * d);
  const withPositives = list.every((s) => s.positives !== undefined);
  const positives = withPositives ? new Float64Array(k) : undefined;
  let sse = 0;
  list.forEach((s, p) => {
    if (s.k !== k || s.d !== d || s.counts.length !== k || s.sums.length !== k * d) {
      throw new FedmartError('INVALID_UPDATE', `cluster sums #${p + 1} have k = ${s.k}, d = ${s.d}, but #1 has k = ${k}, d = ${d}; every partner must use the same centroids and encoding`);
    }
    for (let j = 0; j < k; j++) counts[j]! += s.counts[j]!;
    for (let t = 0; t < k * d; t++) sums[t]! += s.sums[t]!;
    if (positives !== undefined) for (let j = 0; j < k; j++) positives[j]! += s.positives![j]!;
    sse += s.sse;
  });
  return positives === undefined ? { k, d, counts, sums, sse } : { k, d, counts, sums, sse, positives };
}

/**
 * The Lloyd update: each centroid moves to the mean of its rows. A cluster
 * with no rows (count 0) keeps its previous centroid (see the module doc).
 *
 * @param previous - the centroids the sums were computed with, k×d
 * @param total - the combined sums
 * @returns the new centroids and the indices of the empty clusters
 * @throws RangeError on mismatched shapes
 */
export function updateCentroids(previous: Float64Array, total: ClusterSums): { centroids: Float64Array; empty: number[] } {
  const { k, d } = total;
  checkCentroids(previous, k, d, 'updateCentroids');
  const centroids = new Float64Array(previous);
  const empty: number[] = [];
  for (let j = 0; j < k; j++) {
    const c = total.counts[j]!;
    if (!(c > 0)) {
      empty.push(j);
      continue;
    }
    for (let t = 0; t < d; t++) centroids[j * d + t] = total.sums[j * d + t]! / c;
  }
  return { centroids, empty };
}

/** Options of {@link runLloyd}. */
export interface LloydOptions {
  /** starting centroids, k×d */
  initial: Float64Array;
  k: number;
  d: number;
  /**
   * One iteration's combined sums for the given centroids: the pooled rows'
   * {@link computeClusterSums} centrally, or the (secure) sum of every
   * partner's in a federation.
   */
  step: (centroids: Float64Array, iteration: number) => ClusterSums;
  /** most centroid updates; default 100 */
  maxIterations?: number;
  /** stop once the relative inertia decrease (I_{t−1} − I_t) / I_{t−1} ≤ tolerance; default 1e-4 */
  tolerance?: number;
  /** called after each step with its inertia (progress) */
  onStep?: (iteration: number, inertia: number) => void;
}

/** The outcome of {@link runLloyd}. */
export interface LloydResult {
  /** the final centroids, k×d */
  centroids: Float64Array;
  /** inertia of the final centroids: Σ over rows of the squared distance to the nearest one */
  inertia: number;
  /** the combined sums measured at the final centroids */
  sums: ClusterSums;
  /** number of centroid updates made */
  iterations: number;
  /** true when the tolerance stopped it, false when maxIterations did */
  converged: boolean;
  /** inertia measured at each step (history[0] is the initial centroids') */
  history: number[];
  /** how many times some cluster was empty (and kept its centroid) */
  emptyClusterEvents: number;
}

/**
 * Run Lloyd iterations from fixed initial centroids until the relative
 * inertia change is at most `tolerance` or `maxIterations` updates were made.
 * The returned inertia is measured at the returned centroids (one step after
 * the last update), so it is the objective of what is returned.
 *
 * @param opts - initial centroids, the step function and stopping rules
 * @returns centroids, inertia and the trajectory
 * @throws RangeError on bad options; whatever `step` throws
 * @example
 * const r = runLloyd({ initial, k, d, step: (c) => computeClusterSums(pooled, c, k) });
 */
export function runLloyd(opts: LloydOptions): LloydResult {
  const { k, d, step } = opts;
  const maxIterations = opts.maxIterations ?? 100;
  const tolerance = opts.tolerance ?? 1e-4;
  checkCentroids(opts.initial, k, d, 'runLloyd');
  if (!Number.isSafeInteger(maxIterations) || maxIterations < 0) throw new RangeError(`runLloyd: maxIterations: expected an integer >= 0, got ${String(maxIterations)}`);
  if (!(tolerance >= 0)) throw new RangeError(`runLloyd: tolerance: expected a number >= 0, got ${String(tolerance)}`);
  let centroids: Float64Array = new Float64Array(opts.initial);
  const history: number[] = [];
  let emptyClusterEvents = 0;
  for (let it = 0; ; it++) {
    const sums = step(centroids, it);
    history.push(sums.sse);
    opts.onStep?.(it, sums.sse);
    const prev = history.length > 1 ? history[history.length - 2]! : Number.POSITIVE_INFINITY;
    const converged = Number.isFinite(prev) && (prev === 0 || (prev - sums.sse) / prev <= tolerance);
    if (converged || it === maxIterations) return { centroids, inertia: sums.sse, sums, iterations: it, converged, history, emptyClusterEvents };
    const next = updateCentroids(centroids, sums);
    if (next.empty.length > 0) emptyClusterEvents++;
    centroids = next.centroids;
  }
}
