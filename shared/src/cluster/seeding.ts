/**
 * k-means++-style initialization that never sends a customer row.
 *
 * k-means++ (Arthur & Vassilvitskii, "k-means++: the advantages of careful
 * seeding", SODA 2007) picks the first centre at random and each next one
 * with probability proportional to D(x)², the squared distance to the
 * nearest centre chosen so far. Run on pooled data, every centre is a raw
 * row, which a federation must not move.
 *
 * We follow the one-shot scheme of k-FED (Dennis, Li & Smith, "Heterogeneity
 * for the win: one-shot federated clustering", ICML 2021) with the weighted
 * reclustering step of k-means|| (Bahmani et al., "Scalable k-means++",
 * VLDB 2012):
 *
 * 1. each partner clusters its own rows into at most g groups (local
 *    k-means++ seeding and a few Lloyd iterations, all local), merges every
 *    group of fewer than m customers into the nearest other group, and
 *    sends only each group's mean and size ({@link summarizeLocalGroups});
 *    a partner with fewer than m rows sends nothing;
 * 2. the coordinator runs weighted k-means++ (D²·size sampling) over all
 *    partners' group means, then weighted Lloyd on them
 *    ({@link seedFromLocalSummaries}): k initial centroids.
 *
 * What leaves a partner: ≤ g means of ≥ m of its customers each, with their
 * sizes, once. Not protected by secure aggregation (a mean of one partner's
 * m customers is what the coordinator sees), so m is the knob: a group
 * mean of m rows moves by at most range/m when one customer changes. Not a
 * differential-privacy guarantee.
 *
 * Pure: randomness is the seeded data PRNG (the choices are not secrets).
 */
import { FedmartError } from '../errors.ts';
import type { Rng } from '../data/rng.ts';
import { computeClusterSums, runLloyd, type Points } from './lloyd.ts';

/** One partner's initialization message: group means and sizes, nothing else. */
export interface LocalGroupSummary {
  /** number of groups sent (0 when the partner has fewer than minGroupSize rows) */
  groups: number;
  d: number;
  /** groups×d row-major means */
  centroids: Float64Array;
  /** customers in each group, every one ≥ minGroupSize */
  sizes: Float64Array;
}

function squaredDistance(a: Float32Array | Float64Array, ai: number, b: Float64Array, bi: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) {
    const diff = a[ai + t]! - b[bi + t]!;
    s += diff * diff;
  }
  return s;
}

/** Index drawn with probability proportional to `mass` (all ≥ 0, total > 0). */
function drawProportional(mass: Float64Array, total: number, rng: Rng): number {
  let r = rng.nextFloat() * total;
  let last = -1;
  for (let i = 0; i < mass.length; i++) {
    if (mass[i]! <= 0) continue;
    last = i;
    r -= mass[i]!;
    if (r < 0) return i;
  }
  return last; // float round-off left r ≥ 0 after the last positive mass
}

/**
 * Weighted k-means++ seeding: the first centre with probability ∝ weight,
 * each next with probability ∝ weight · D², D the distance to the nearest
 * centre so far (Arthur & Vassilvitskii 2007, with weights as in Bahmani et
 * al. 2012 §3.3). When every remaining point coincides with a centre (fewer
 * distinct points than k) the heaviest unused point is taken.
 *
 * @param points - candidate points (weights default to 1)
 * @param k - number of centres, 1 ≤ k ≤ number of points with weight > 0
 * @param rng - seeded generator
 * @returns k×d centres, copied from the points
 * @throws FedmartError DATA_ERROR when fewer than k points have positive weight
 */
export function weightedKMeansPlusPlus(points: Points, k: number, rng: Rng): Float64Array {
  const { x, n, d } = points;
  const w = points.weights ?? new Float64Array(n).fill(1);
  const usable = w.reduce((acc, v) => acc + (v > 0 ? 1 : 0), 0);
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`weightedKMeansPlusPlus: k: expected an integer >= 1, got ${String(k)}`);
  if (usable < k) throw new FedmartError('DATA_ERROR', `k-means++ needs at least k = ${k} candidate points, got ${usable}; lower --k`);
  const centres = new Float64Array(k * d);
  const used = new Uint8Array(n);
  const take = (i: number, j: number): void => {
    used[i] = 1;
    for (let t = 0; t < d; t++) centres[j * d + t] = x[i * d + t]!;
  };
  take(drawProportional(w, w.reduce((a, v) => a + (v > 0 ? v : 0), 0), rng), 0);
  const dist = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  const mass = new Float64Array(n);
  for (let j = 1; j < k; j++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      const dd = squaredDistance(x, i * d, centres, (j - 1) * d, d);
      if (dd < dist[i]!) dist[i] = dd;
      mass[i] = used[i] || !(w[i]! > 0) ? 0 : w[i]! * dist[i]!;
      total += mass[i]!;
    }
    if (total > 0) {
      take(drawProportional(mass, total, rng), j);
      continue;
    }
    let heaviest = -1;
    for (let i = 0; i < n; i++) if (!used[i] && w[i]! > 0 && (heaviest === -1 || w[i]! > w[heaviest]!)) heaviest = i;
    take(heaviest, j);
  }
  return centres;
}

/** Options of {@link summarizeLocalGroups}. */
export interface LocalGroupOptions {
  /** most groups g a partner sends */
  groups: number;
  /** fewest customers m behind any group mean sent */
  minGroupSize: number;
  /** local Lloyd iterations after seeding; default 10 */
  iterations?: number;
}

/**
 * A partner's initialization message (step 1 of the module doc), computed
 * from its own rows only.
 *
 * @param points - the partner's rows
 * @param opts - g, m, local iterations
 * @param rng - seeded generator (local choices; never sent)
 * @returns group means and sizes, each group of ≥ m customers; no groups when n < m
 * @throws RangeError on bad options
 */
export function summarizeLocalGroups(points: Points, opts: LocalGroupOptions, rng: Rng): LocalGroupSummary {
  const { groups, minGroupSize: m } = opts;
  if (!Number.isSafeInteger(groups) || groups < 1) throw new RangeError(`summarizeLocalGroups: groups: expected an integer >= 1, got ${String(groups)}`);
  if (!Number.isSafeInteger(m) || m < 1) throw new RangeError(`summarizeLocalGroups: minGroupSize: expected an integer >= 1, got ${String(m)}`);
  const { n, d } = points;
  const g = Math.min(groups, Math.floor(n / m));
  if (g === 0) return { groups: 0, d, centroids: new Float64Array(0), sizes: new Float64Array(0) };
  const seeds = weightedKMeansPlusPlus(points, g, rng);
  const local = runLloyd({ initial: seeds, k: g, d, maxIterations: opts.iterations ?? 10, step: (c) => computeClusterSums(points, c, g) });
  // Merge groups smaller than m, smallest first, into the nearest other group.
  const sizes = Array.from(local.sums.counts);
  const sums = Array.from({ length: g }, (_, j) => Array.from(local.sums.sums.subarray(j * d, (j + 1) * d)));
  const alive = new Set(Array.from({ length: g }, (_, j) => j).filter((j) => sizes[j]! > 0));
  for (;;) {
    const small = [...alive].filter((j) => sizes[j]! < m).sort((a, b) => sizes[a]! - sizes[b]! || a - b);
    if (small.length === 0 || alive.size === 1) break;
    const j = small[0]!;
    alive.delete(j);
    let target = -1;
    let best = Number.POSITIVE_INFINITY;
    for (const o of alive) {
      let dd = 0;
      for (let t = 0; t < d; t++) {
        const diff = sums[j]![t]! / sizes[j]! - sums[o]![t]! / sizes[o]!;
        dd += diff * diff;
      }
      if (dd < best) [best, target] = [dd, o];
    }
    sizes[target]! += sizes[j]!;
    for (let t = 0; t < d; t++) sums[target]![t]! += sums[j]![t]!;
  }
  const kept = [...alive].sort((a, b) => a - b);
  const centroids = new Float64Array(kept.length * d);
  kept.forEach((j, r) => {
    for (let t = 0; t < d; t++) centroids[r * d + t] = sums[j]![t]! / sizes[j]!;
  });
  return { groups: kept.length, d, centroids, sizes: Float64Array.from(kept.map((j) => sizes[j]!)) };
}

/**
 * The coordinator's half (step 2 of the module doc): weighted k-means++ over
 * every partner's group means, refined by weighted Lloyd on those means.
 *
 * @param summaries - one {@link summarizeLocalGroups} result per partner
 * @param k - number of segments
 * @param rng - seeded generator
 * @param refineIterations - weighted Lloyd iterations on the group means; default 20
 * @returns k×d initial centroids
 * @throws FedmartError DATA_ERROR when the partners sent fewer than k groups in all
 */
export function seedFromLocalSummaries(summaries: readonly LocalGroupSummary[], k: number, rng: Rng, refineIterations = 20): Float64Array {
  if (summaries.length === 0) throw new RangeError('seedFromLocalSummaries: expected at least one summary');
  const d = summaries[0]!.d;
  const total = summaries.reduce((a, s) => a + s.groups, 0);
  if (total < k) {
    throw new FedmartError('DATA_ERROR', `the partners' local summaries hold ${total} group(s) of enough customers, fewer than k = ${k}; lower --k or --min-group`);
  }
  const x = new Float64Array(total * d);
  const weights = new Float64Array(total);
  let r = 0;
  for (const s of summaries) {
    if (s.d !== d) throw new FedmartError('INVALID_UPDATE', `a local summary has d = ${s.d}, others ${d}; every partner must use the same encoding`);
    x.set(s.centroids, r * d);
    weights.set(s.sizes, r);
    r += s.groups;
  }
  const candidates: Points = { x, n: total, d, weights };
  const seeds = weightedKMeansPlusPlus(candidates, k, rng);
  return runLloyd({ initial: seeds, k, d, maxIterations: refineIterations, step: (c) => computeClusterSums(candidates, c, k) }).centroids;
}
