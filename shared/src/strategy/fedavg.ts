/**
 * FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep
 * Networks from Decentralized Data", AISTATS): the new global model is the old
 * one plus the example-weighted mean of the clients' deltas,
 *
 *   w_{t+1} = w_t + Σ_k n_k·Δ_k / Σ_k n_k.
 *
 * Sums run in float64 so that accumulation error over many clients stays far
 * below float32 resolution; only the final model is rounded to float32.
 *
 * Pure: no I/O.
 */
import { BaseStrategy, assertFiniteAggregate, assertUpdates, findNonFinite, weightedMetricMeans } from './base.ts';
import { FedmartError } from '../errors.ts';
import type { AggregateResult, ClientFailure, ClientUpdate, MeanAggregateInfo, StrategyId } from './types.ts';

/**
 * out[i] = Σ_k weights[k]·deltas[k][i], accumulated in float64.
 *
 * Clients are folded in four at a time so the float64 accumulator is read and
 * written once per four inputs instead of once per input: the loop is bound by
 * memory traffic, and this makes 32 × 1,000,000 run faster than a naive
 * float32 `sum[i] += d[i]` loop. Zero weights are not skipped, so a NaN in a
 * zero-weight delta still shows up (0·NaN = NaN) rather than hiding.
 *
 * @param deltas - equally long vectors
 * @param weights - one finite weight per vector
 * @param out - optional accumulator to overwrite (must have the deltas' length)
 * @returns `out` (or a new Float64Array) holding the weighted sum
 * @throws RangeError when counts or lengths disagree or a weight is not finite
 * @throws TypeError when a delta is not a Float32Array
 * @example
 * weightedSum([new Float32Array([1, 2]), new Float32Array([3, 4])], [1, 3]); // Float64Array [10, 14]
 */
export function weightedSum(deltas: readonly Float32Array[], weights: readonly number[], out?: Float64Array): Float64Array {
  if (deltas.length !== weights.length) {
    throw new RangeError(`weightedSum: expected one weight per delta, got ${deltas.length} deltas and ${weights.length} weights`);
  }
  const n = out !== undefined ? out.length : deltas.length > 0 ? deltas[0]!.length : 0;
  if (out !== undefined && !(out instanceof Float64Array)) throw new TypeError('weightedSum: "out" expected a Float64Array');
  for (let k = 0; k < deltas.length; k++) {
    const d = deltas[k];
    if (!(d instanceof Float32Array)) throw new TypeError(`weightedSum: deltas[${k}] expected a Float32Array`);
    if (d.length !== n) throw new RangeError(`weightedSum: deltas[${k}] has length ${d.length}, expected ${n}`);
    const w = weights[k];
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new RangeError(`weightedSum: weights[${k}] expected a finite number, got ${String(w)}`);
  }
  const acc = out ?? new Float64Array(n);
  acc.fill(0);
  const K = deltas.length;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const a = deltas[k]!, b = deltas[k + 1]!, c = deltas[k + 2]!, d = deltas[k + 3]!;
    const wa = weights[k]!, wb = weights[k + 1]!, wc = weights[k + 2]!, wd = weights[k + 3]!;
    for (let i = 0; i < n; i++) acc[i] += wa * a[i]! + wb * b[i]! + wc * c[i]! + wd * d[i]!;
  }
  const rest = K - k;
  if (rest === 3) {
    const a = deltas[k]!, b = deltas[k + 1]!, c = deltas[k + 2]!;
    const wa = weights[k]!, wb = weights[k + 1]!, wc = weights[k + 2]!;
    for (let i = 0; i < n; i++) acc[i] += wa * a[i]! + wb * b[i]! + wc * c[i]!;
  } else if (rest === 2) {
    const a = deltas[k]!, b = deltas[k + 1]!;
    const wa = weights[k]!, wb = weights[k + 1]!;
    for (let i = 0; i < n; i++) acc[i] += wa * a[i]! + wb * b[i]!;
  } else if (rest === 1) {
    const a = deltas[k]!;
    const wa = weights[k]!;
    for (let i = 0; i < n; i++) acc[i] += wa * a[i]!;
  }
  return acc;
}

/**
 * Example-weighted mean of the clients' deltas, in float64.
 *
 * Weights are the raw example counts and the division happens once at the
 * end: n_k·Δ_k[i] is exact in float64 for realistic counts, so the result is
 * the correctly rounded mean more often than pre-normalised weights would give.
 *
 * @param label - strategy name for error messages
 * @param results - updates already checked with {@link assertUpdates}
 * @param length - parameter count
 * @returns the mean delta, or `null` when there are no results or every
 *   client reported zero examples (nothing to learn from: keep the model)
 * @throws FedmartError INVALID_UPDATE when a delta holds NaN/±Infinity
 */
export function meanDelta(label: string, results: readonly ClientUpdate[], length: number): Float64Array | null {
  let total = 0;
  for (const r of results) total += r.numExamples;
  if (results.length === 0 || !(total > 0)) return null;
  const deltas = new Array<Float32Array>(results.length);
  const weights = new Array<number>(results.length);
  for (let k = 0; k < results.length; k++) {
    deltas[k] = results[k]!.delta;
    weights[k] = results[k]!.numExamples;
  }
  const acc = weightedSum(deltas, weights, new Float64Array(length));
  for (let i = 0; i < length; i++) acc[i] /= total;
  assertFiniteAggregate(label, acc, results);
  return acc;
}

/**
 * w + Δ rounded to float32, into a fresh array (the caller's `global` is
 * never touched: the previous model must stay valid if the round aborts).
 *
 * @param global - current global weights
 * @param delta - float64 step to add
 * @returns new global weights
 */
export function addDelta(global: Float32Array, delta: Float64Array): Float32Array {
  if (global.length !== delta.length) throw new RangeError(`addDelta: global has ${global.length} values, delta ${delta.length}`);
  const out = new Float32Array(global.length);
  for (let i = 0; i < out.length; i++) out[i] = global[i]! + delta[i]!;
  return out;
}

/**
 * FedAvg: example-weighted mean of client deltas added to the global model.
 *
 * Compatible with secure aggregation and HE (it needs only the weighted sum).
 * Zero results, or results whose example counts are all zero, keep the
 * previous model (`weights: null`).
 *
 * @example
 * const s = new FedAvg();
 * const { weights } = s.aggregateTrain(1, global, updates, []);
 */
export class FedAvg extends BaseStrategy {
  readonly id: StrategyId = 'fedavg';
  readonly needsIndividualUpdates = false;

  /**
   * @param _round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param results - successful updates
   * @param _failures - failed clients (ignored: they carry no update)
   * @returns new weights and example-weighted training metrics
   * @throws FedmartError INVALID_UPDATE on a malformed update (see {@link assertUpdates}) or a non-finite delta
   */
  aggregateTrain(_round: number, global: Float32Array, results: readonly ClientUpdate[], _failures: readonly ClientFailure[]): AggregateResult {
    const label = this.label();
    assertUpdates(label, global, results);
    const metrics = aggregateTrainMetrics(results);
    const mean = meanDelta(label, results, global.length);
    if (mean === null) return { weights: null, metrics };
    return { weights: addDelta(global, mean), metrics };
  }

  /**
   * FedAvg from the weighted mean alone (secure aggregation / HE).
   * @param _round - 1-based round number
   * @param global - weights the clients started from (not mutated)
   * @param mean - the example-weighted mean delta
   * @param info - total weight (0 keeps the model) and pass-through metrics
   * @returns global + mean
   * @throws FedmartError INVALID_UPDATE when the mean has the wrong length or a non-finite value
   */
  aggregateMean(_round: number, global: Float32Array, mean: Float64Array, info: MeanAggregateInfo): AggregateResult {
    assertMean(this.label(), global, mean);
    if (!(info.totalWeight > 0)) return { weights: null, metrics: { ...info.metrics } };
    return { weights: addDelta(global, mean), metrics: { ...info.metrics } };
  }

  /** @returns one line naming the rule and its paper */
  summary(): string {
    return 'FedAvg: global += example-weighted mean of client deltas (McMahan et al. 2017)';
  }

  /** Name used in error messages. */
  protected label(): string {
    return this.id;
  }
}

/**
 * Training metrics of a round, reported the same way by every built-in
 * strategy: example-weighted means of the clients' numeric metrics.
 * @param results - the round's updates
 * @returns metric name → weighted mean
 */
export function aggregateTrainMetrics(results: readonly ClientUpdate[]): Record<string, number> {
  return weightedMetricMeans(results);
}

/**
 * Check a mean delta handed to `aggregateMean` (it comes from an unmasked or
 * decrypted sum, so no individual update can be blamed).
 * @param label - strategy name for messages
 * @param global - the global weights
 * @param mean - the mean delta
 * @throws FedmartError INVALID_UPDATE on a wrong length or a non-finite value
 */
export function assertMean(label: string, global: Float32Array, mean: Float64Array): void {
  if (!(mean instanceof Float64Array) || mean.length !== global.length) {
    throw new FedmartError('INVALID_UPDATE', `${label}: the aggregated mean has ${mean instanceof Float64Array ? mean.length : 'no'} values, expected ${global.length} (the global model's parameter count)`);
  }
  const at = findNonFinite(mean);
  if (at >= 0) throw new FedmartError('INVALID_UPDATE', `${label}: the aggregated mean holds ${mean[at]} at index ${at}; expected finite values — check the clients' clipping and quantization settings`);
}
