/**
 * Byzantine-robust aggregation rules for federations whose partners do not
 * fully trust each other: coordinate-wise median and trimmed mean (Yin et al.
 * 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
 * Rates", ICML) and Krum / Multi-Krum (Blanchard et al. 2017, "Machine
 * Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS).
 *
 * All three look at each client's delta individually, so they cannot run under
 * secure aggregation or HE (which reveal only the sum): `needsIndividualUpdates`
 * is true. They ignore `numExamples` when combining deltas: the count is
 * self-reported, and weighting by it would let one attacker claim a billion
 * examples and outvote everyone. (Metrics are still example-weighted, like
 * every strategy's.)
 *
 * Every delta is scanned for NaN/±Infinity before use: a robust rule is
 * exactly where a malformed update is expected, and NaN breaks comparisons.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { BaseStrategy, assertUpdates, readOption } from './base.ts';
import { addDelta, aggregateTrainMetrics, weightedSum } from './fedavg.ts';
import type { AggregateResult, ClientFailure, ClientUpdate, StrategyId, StrategyOptions } from './types.ts';

/** Up to this many clients a column is insertion-sorted (fewer moves than TypedArray#sort's call overhead). */
const INSERTION_SORT_MAX = 64;

/**
 * Copy column `i` of `deltas` into `scratch[0..K)` in ascending order.
 * Values must be finite (NaN has no place in an order).
 */
function gatherSorted(deltas: readonly Float32Array[], i: number, scratch: Float64Array): void {
  const K = deltas.length;
  if (K <= INSERTION_SORT_MAX) {
    for (let k = 0; k < K; k++) {
      const x = deltas[k]![i]!;
      let j = k - 1;
      while (j >= 0 && scratch[j]! > x) {
        scratch[j + 1] = scratch[j]!;
        j--;
      }
      scratch[j + 1] = x;
    }
  } else {
    for (let k = 0; k < K; k++) scratch[k] = deltas[k]![i]!;
    scratch.sort();
  }
}

function checkColumns(label: string, deltas: readonly Float32Array[]): number {
  if (deltas.length === 0) throw new RangeError(`${label}: expected at least one delta`);
  const n = deltas[0]!.length;
  for (let k = 0; k < deltas.length; k++) {
    const d = deltas[k];
    if (!(d instanceof Float32Array)) throw new TypeError(`${label}: deltas[${k}] expected a Float32Array`);
    if (d.length !== n) throw new RangeError(`${label}: deltas[${k}] has length ${d.length}, expected ${n}`);
  }
  return n;
}

/**
 * Coordinate-wise median (Yin et al. 2018): for each parameter, the median of
 * the clients' values; with an even count, the mean of the two middle values
 * (as numpy.median).
 *
 * @param deltas - at least one equally long vector of finite values
 * @returns the per-coordinate median, in float64
 * @throws RangeError when there are no deltas or lengths differ
 * @example
 * coordinateMedian([f32([1, 5]), f32([2, 0]), f32([9, 4])]); // [2, 4]
 */
export function coordinateMedian(deltas: readonly Float32Array[]): Float64Array {
  const n = checkColumns('coordinateMedian', deltas);
  const K = deltas.length;
  const h = K >> 1;
  const odd = (K & 1) === 1;
  const scratch = new Float64Array(K);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    gatherSorted(deltas, i, scratch);
    out[i] = odd ? scratch[h]! : (scratch[h - 1]! + scratch[h]!) / 2;
  }
  return out;
}

/**
 * Coordinate-wise β-trimmed mean (Yin et al. 2018): for each parameter, drop
 * the ⌊β·K⌋ smallest and ⌊β·K⌋ largest of the K values and average the rest.
 *
 * @param deltas - at least one equally long vector of finite values
 * @param beta - fraction cut from each end, in [0, 0.5)
 * @returns the per-coordinate trimmed mean, in float64
 * @throws RangeError when there are no deltas, lengths differ, or β is outside [0, 0.5)
 * @example
 * trimmedMean([f32([1]), f32([2]), f32([3]), f32([4]), f32([100])], 0.2); // [3]
 */
export function trimmedMean(deltas: readonly Float32Array[], beta: number): Float64Array {
  const n = checkColumns('trimmedMean', deltas);
  if (!(beta >= 0 && beta < 0.5)) throw new RangeError(`trimmedMean: beta expected in [0, 0.5), got ${beta}`);
  const K = deltas.length;
  const t = Math.floor(beta * K);
  const keep = K - 2 * t; // ≥ 1 because 2⌊βK⌋ ≤ 2βK < K
  const scratch = new Float64Array(K);
  const out = new Float64Array(n);
  const end = K - t;
  for (let i = 0; i < n; i++) {
    gatherSorted(deltas, i, scratch);
    let s = 0;
    for (let j = t; j < end; j++) s += scratch[j]!;
    out[i] = s / keep;
  }
  return out;
}

/** Coordinates per block in the pairwise-distance pass: 32 clients × 4096 × 4 B stay in L2. */
const DISTANCE_BLOCK = 4096;

/**
 * Pairwise squared Euclidean distances, as a symmetric K×K row-major matrix.
 * Computed block by block over coordinates so every block of every delta is
 * read from cache K−1 times instead of from memory.
 *
 * @param deltas - at least one equally long vector
 * @returns distances, `d[i·K + j] = ‖Δ_i − Δ_j‖²`
 * @throws RangeError when there are no deltas or lengths differ
 */
export function pairwiseSquaredDistances(deltas: readonly Float32Array[]): Float64Array {
  const n = checkColumns('pairwiseSquaredDistances', deltas);
  const K = deltas.length;
  const dist = new Float64Array(K * K);
  for (let start = 0; start < n; start += DISTANCE_BLOCK) {
    const end = Math.min(n, start + DISTANCE_BLOCK);
    for (let a = 0; a < K; a++) {
      const x = deltas[a]!;
      for (let b = a + 1; b < K; b++) {
        const y = deltas[b]!;
        let s = 0;
        for (let c = start; c < end; c++) {
          const diff = x[c]! - y[c]!;
          s += diff * diff;
        }
        dist[a * K + b] += s;
      }
    }
  }
  for (let a = 0; a < K; a++) for (let b = a + 1; b < K; b++) dist[b * K + a] = dist[a * K + b]!;
  return dist;
}

/**
 * Krum scores (Blanchard et al. 2017): for each client, the sum of squared
 * distances to its K − f − 2 nearest other clients. An honest update sits in
 * the honest crowd and scores low; an outlier pays for its distance to all of
 * its nearest neighbours.
 *
 * @param deltas - the clients' deltas
 * @param f - number of Byzantine clients tolerated; needs K > 2f + 2
 * @returns one score per delta
 * @throws RangeError when K ≤ 2f + 2 or f is not an integer ≥ 0
 */
export function krumScores(deltas: readonly Float32Array[], f: number): Float64Array {
  const K = deltas.length;
  if (!Number.isInteger(f) || f < 0) throw new RangeError(`krumScores: f expected an integer ≥ 0, got ${f}`);
  if (K <= 2 * f + 2) throw new RangeError(`krumScores: Krum with f=${f} needs more than ${2 * f + 2} deltas, got ${K}`);
  const dist = pairwiseSquaredDistances(deltas);
  const closest = K - f - 2;
  const row = new Float64Array(K - 1);
  const scores = new Float64Array(K);
  for (let a = 0; a < K; a++) {
    let j = 0;
    for (let b = 0; b < K; b++) if (b !== a) row[j++] = dist[a * K + b]!;
    row.sort();
    let s = 0;
    for (let c = 0; c < closest; c++) s += row[c]!;
    scores[a] = s;
  }
  return scores;
}

/**
 * Smallest number of updates Krum with `f` Byzantine clients accepts (n > 2f + 2).
 * The coordinator should use at least this as the round's minimum client count.
 * @param f - Byzantine clients tolerated
 * @returns 2f + 3
 */
export function krumMinClients(f: number): number {
  return 2 * f + 3;
}

/**
 * Coordinate-wise median of the deltas (Yin et al. 2018), added to the global
 * model. Tolerates up to just under half of the clients being arbitrary.
 *
 * @example
 * const s = new CoordinateMedian();
 */
export class CoordinateMedian extends BaseStrategy {
  readonly id: StrategyId = 'median';
  readonly needsIndividualUpdates = true;

  /**
   * @param _round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param results - successful updates; `numExamples` is ignored for the weights
   * @param _failures - failed clients (ignored)
   * @returns global + coordinate-wise median delta; `weights: null` with no results
   * @throws FedmartError INVALID_UPDATE on a malformed or non-finite update
   */
  aggregateTrain(_round: number, global: Float32Array, results: readonly ClientUpdate[], _failures: readonly ClientFailure[]): AggregateResult {
    assertUpdates(this.id, global, results, { requireFinite: true });
    const metrics = aggregateTrainMetrics(results);
    if (results.length === 0) return { weights: null, metrics };
    return { weights: addDelta(global, coordinateMedian(results.map((r) => r.delta))), metrics };
  }

  /** @returns one line naming the rule and its paper */
  summary(): string {
    return 'Median: global += coordinate-wise median of client deltas, unweighted (Yin et al. 2018)';
  }
}

/**
 * Coordinate-wise β-trimmed mean of the deltas (Yin et al. 2018), added to the
 * global model. Tolerates fewer than ⌊β·n⌋ arbitrary clients per round.
 *
 * @example
 * const s = new TrimmedMean({ trimBeta: 0.2 });
 */
export class TrimmedMean extends BaseStrategy {
  readonly id: StrategyId = 'trimmed-mean';
  readonly needsIndividualUpdates = true;
  /** Fraction β trimmed from each end per coordinate. */
  readonly trimBeta: number;

  /**
   * @param opts - `trimBeta` in [0, 0.5) (default 0.1; 0 is the plain unweighted mean)
   * @throws FedmartError CONFIG_ERROR when β is outside [0, 0.5)
   */
  constructor(opts: StrategyOptions = {}) {
    super();
    this.trimBeta = readOption('trimmed-mean', opts, 'trimBeta', 0.1, { min: 0, max: 0.5, maxInclusive: false });
  }

  /**
   * @param _round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param results - successful updates; `numExamples` is ignored for the weights
   * @param _failures - failed clients (ignored)
   * @returns global + trimmed-mean delta; `weights: null` with no results.
   *   With few clients ⌊β·n⌋ may be 0, in which case nothing is trimmed.
   * @throws FedmartError INVALID_UPDATE on a malformed or non-finite update
   */
  aggregateTrain(_round: number, global: Float32Array, results: readonly ClientUpdate[], _failures: readonly ClientFailure[]): AggregateResult {
    assertUpdates(this.id, global, results, { requireFinite: true });
    const metrics = aggregateTrainMetrics(results);
    if (results.length === 0) return { weights: null, metrics };
    return { weights: addDelta(global, trimmedMean(results.map((r) => r.delta), this.trimBeta)), metrics };
  }

  /** @returns one line naming the rule, β and the paper */
  summary(): string {
    return `TrimmedMean(β=${this.trimBeta}): global += coordinate-wise mean after cutting ⌊β·n⌋ values from each end, unweighted (Yin et al. 2018)`;
  }
}

/**
 * Krum and Multi-Krum (Blanchard et al. 2017). Krum adds the single delta with
 * the lowest Krum score; Multi-Krum (`krumM` > 1) adds the unweighted mean of
 * the `krumM` lowest-scored deltas.
 *
 * Fails closed: with n ≤ 2f + 2 updates the round's aggregation throws
 * `CONFIG_ERROR` instead of falling back to a weaker rule. A fallback would let
 * an attacker who can cause dropouts switch the federation to a non-robust
 * rule. Size the round's minimum client count with {@link krumMinClients}.
 * `krumM` is capped at n − f per round, so Multi-Krum never averages more
 * updates than can be guaranteed honest.
 *
 * Ties in score are broken by `nodeId`, so the choice does not depend on the
 * order in which updates arrived.
 *
 * @example
 * const s = new Krum({ krumF: 2, krumM: 3 }); // needs ≥ 7 updates per round
 */
export class Krum extends BaseStrategy {
  readonly id: StrategyId = 'krum';
  readonly needsIndividualUpdates = true;
  /** Byzantine clients tolerated, f. */
  readonly krumF: number;
  /** Updates averaged (1 = Krum, > 1 = Multi-Krum). */
  readonly krumM: number;
  /** Node ids selected in the last aggregation, best first (for the audit log). */
  lastSelected: readonly string[] = [];

  /**
   * @param opts - `krumF` (integer ≥ 0, default 1) and `krumM` (integer ≥ 1, default 1)
   * @throws FedmartError CONFIG_ERROR when an option is out of range
   */
  constructor(opts: StrategyOptions = {}) {
    super();
    this.krumF = readOption('krum', opts, 'krumF', 1, { min: 0, integer: true });
    this.krumM = readOption('krum', opts, 'krumM', 1, { min: 1, integer: true });
  }

  /**
   * @param _round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param results - successful updates; `numExamples` is ignored for selection and averaging
   * @param _failures - failed clients (ignored)
   * @returns global + selected delta (or mean of the selected); `weights: null` with no results
   * @throws FedmartError INVALID_UPDATE on a malformed or non-finite update
   * @throws FedmartError CONFIG_ERROR when 0 < n ≤ 2f + 2
   */
  aggregateTrain(_round: number, global: Float32Array, results: readonly ClientUpdate[], _failures: readonly ClientFailure[]): AggregateResult {
    assertUpdates(this.id, global, results, { requireFinite: true });
    const metrics = aggregateTrainMetrics(results);
    const n = results.length;
    if (n === 0) {
      this.lastSelected = [];
      return { weights: null, metrics };
    }
    const f = this.krumF;
    if (n <= 2 * f + 2) {
      throw new FedmartError(
        'CONFIG_ERROR',
        `krum: with f=${f} Byzantine clients Krum needs at least ${krumMinClients(f)} updates (n > 2f + 2), got ${n}; lower krumF or raise the round's minimum number of clients to ${krumMinClients(f)}`,
        { details: { f, required: krumMinClients(f), got: n } },
      );
    }
    const deltas = results.map((r) => r.delta);
    const scores = krumScores(deltas, f);
    const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => {
      const d = scores[a]! - scores[b]!;
      if (d !== 0) return d;
      const ia = results[a]!.nodeId, ib = results[b]!.nodeId;
      return ia < ib ? -1 : ia > ib ? 1 : 0;
    });
    const m = Math.min(this.krumM, n - f);
    const chosen = order.slice(0, m);
    this.lastSelected = chosen.map((k) => results[k]!.nodeId);
    const step = weightedSum(
      chosen.map((k) => deltas[k]!),
      chosen.map(() => 1),
    );
    if (m > 1) for (let i = 0; i < step.length; i++) step[i] /= m;
    return { weights: addDelta(global, step), metrics };
  }

  /** @returns one line naming the rule, f, m and the paper */
  summary(): string {
    return this.krumM === 1
      ? `Krum(f=${this.krumF}): global += the delta with the lowest Krum score, needs n ≥ ${krumMinClients(this.krumF)} (Blanchard et al. 2017)`
      : `Multi-Krum(f=${this.krumF}, m=${this.krumM}): global += mean of the m lowest-scored deltas, needs n ≥ ${krumMinClients(this.krumF)} (Blanchard et al. 2017)`;
  }
}
