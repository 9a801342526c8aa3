/**
 * Plumbing shared by the built-in strategies: checking client updates before
 * any arithmetic touches them, example-weighted metric means, option parsing,
 * and a base class with the parts every built-in strategy does the same way.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import type {
  AggregateResult,
  ClientEvaluation,
  ClientFailure,
  ClientUpdate,
  LocalTrainConfig,
  RoundContext,
  Strategy,
  StrategyId,
  StrategyOptions,
} from './types.ts';

/**
 * Index of the first NaN or ±Infinity in `values`, or -1 when all are finite.
 *
 * `v - v` is 0 for every finite number and NaN otherwise, so one comparison
 * per element covers NaN and both infinities.
 *
 * @param values - the values to scan
 * @returns the first non-finite index, or -1
 */
export function findNonFinite(values: Float32Array | Float64Array): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

/**
 * Check the shape of one round's client updates against the global model.
 *
 * Wrong lengths, negative or non-finite example counts, and a node reporting
 * twice are the client's fault (or an attacker's) and surface as
 * `INVALID_UPDATE`; a delta that is not a Float32Array at all can only be a
 * bug in the caller (the wire codec always yields Float32Array) and is a
 * TypeError.
 *
 * @param label - strategy name for messages
 * @param global - global weights the clients started from
 * @param results - the round's successful updates
 * @param opts.requireFinite - also scan every delta for NaN/±Infinity (robust
 *   strategies do; averaging strategies check their aggregate instead, which is
 *   cheaper and catches the same thing, see {@link assertFiniteAggregate})
 * @throws TypeError when `global` or a delta is not a Float32Array
 * @throws FedmartError INVALID_UPDATE on wrong length, bad `numExamples`,
 *   duplicate `nodeId`, or (with `requireFinite`) a non-finite delta value
 */
export function assertUpdates(
  label: string,
  global: Float32Array,
  results: readonly ClientUpdate[],
  opts: { requireFinite?: boolean } = {},
): void {
  if (!(global instanceof Float32Array)) throw new TypeError(`${label}: "global" expected a Float32Array, got ${describe(global)}`);
  if (!Array.isArray(results)) throw new TypeError(`${label}: "results" expected an array of client updates, got ${describe(results)}`);
  const seen = new Set<string>();
  for (const r of results) {
    if (!(r.delta instanceof Float32Array)) {
      throw new TypeError(`${label}: delta of node "${r.nodeId}" expected a Float32Array, got ${describe(r.delta)}`);
    }
    if (r.delta.length !== global.length) {
      throw new FedmartError(
        'INVALID_UPDATE',
        `${label}: node "${r.nodeId}" sent a delta of ${r.delta.length} values, expected ${global.length} (the global model's parameter count); the client must train the model version it was sent`,
        { details: { nodeId: r.nodeId, expected: global.length, got: r.delta.length } },
      );
    }
    if (typeof r.numExamples !== 'number' || !Number.isFinite(r.numExamples) || r.numExamples < 0) {
      throw new FedmartError(
        'INVALID_UPDATE',
        `${label}: node "${r.nodeId}" reported numExamples=${String(r.numExamples)}, expected a finite number ≥ 0; the client must report how many examples it trained on`,
        { details: { nodeId: r.nodeId } },
      );
    }
    if (seen.has(r.nodeId)) {
      throw new FedmartError(
        'INVALID_UPDATE',
        `${label}: node "${r.nodeId}" appears twice in one round, expected one update per node; keep only the first update a node sends per round`,
        { details: { nodeId: r.nodeId } },
      );
    }
    seen.add(r.nodeId);
    if (opts.requireFinite) {
      const at = findNonFinite(r.delta);
      if (at >= 0) throw nonFiniteError(label, r.nodeId, at, r.delta[at]!);
    }
  }
}

/**
 * After an averaging step: if the aggregate holds a NaN/±Infinity, name the
 * client that caused it. Sums of finite float32 values cannot overflow a
 * float64 accumulator, so a non-finite aggregate always means a non-finite
 * input; checking the one aggregate instead of every delta keeps the fast path
 * to a single pass over the inputs.
 *
 * @param label - strategy name for messages
 * @param aggregate - the weighted sum or mean just computed
 * @param results - the updates it was computed from
 * @throws FedmartError INVALID_UPDATE naming the first offending node
 */
export function assertFiniteAggregate(label: string, aggregate: Float64Array, results: readonly ClientUpdate[]): void {
  if (findNonFinite(aggregate) < 0) return;
  for (const r of results) {
    const at = findNonFinite(r.delta);
    if (at >= 0) throw nonFiniteError(label, r.nodeId, at, r.delta[at]!);
  }
  // Unreachable for float32 inputs with finite weights; fail closed anyway.
  throw new FedmartError('INVALID_UPDATE', `${label}: the aggregate is not finite although every delta is; check the client weights (numExamples)`);
}

function nonFiniteError(label: string, nodeId: string, index: number, value: number): FedmartError {
  return new FedmartError(
    'INVALID_UPDATE',
    `${label}: node "${nodeId}" sent a non-finite value (${value}) at index ${index}, expected finite numbers; the client's local training diverged or the update is corrupt — lower its learning rate or exclude the node`,
    { details: { nodeId, index } },
  );
}

/**
 * Example-weighted mean of each numeric metric the clients reported.
 *
 * A metric is averaged over the clients that reported it (weights
 * renormalised over them). Non-finite values are skipped rather than allowed
 * to poison the mean. Clients with `numExamples = 0` carry no weight; a metric
 * whose reporters all have zero weight is left out.
 *
 * @param items - per-client example counts and metrics
 * @returns metric name → weighted mean
 */
export function weightedMetricMeans(items: readonly { numExamples: number; metrics: Record<string, number> }[]): Record<string, number> {
  const sums = new Map<string, number>();
  const weights = new Map<string, number>();
  for (const item of items) {
    const w = item.numExamples;
    if (!(w > 0) || !Number.isFinite(w) || item.metrics === null || typeof item.metrics !== 'object') continue;
    for (const [key, value] of Object.entries(item.metrics)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      sums.set(key, (sums.get(key) ?? 0) + w * value);
      weights.set(key, (weights.get(key) ?? 0) + w);
    }
  }
  const out: Record<string, number> = {};
  for (const [key, sum] of sums) out[key] = sum / weights.get(key)!;
  return out;
}

/** Range rule for one numeric option. */
export interface OptionRule {
  /** Smallest allowed value. */
  min?: number;
  /** Largest allowed value. */
  max?: number;
  /** Whether `min` itself is allowed (default true). */
  minInclusive?: boolean;
  /** Whether `max` itself is allowed (default true). */
  maxInclusive?: boolean;
  /** Require an integer. */
  integer?: boolean;
}

/**
 * Read one numeric option, applying its default and range.
 *
 * Options come from an operator's federation config, so a bad value is a
 * `CONFIG_ERROR` (HTTP 400) rather than a programming error.
 *
 * @param label - strategy name for messages
 * @param opts - the options object (may be undefined)
 * @param key - which option
 * @param fallback - default when absent
 * @param rule - allowed range
 * @returns the value to use
 * @throws FedmartError CONFIG_ERROR when the value is not a number in range
 */
export function readOption(label: string, opts: StrategyOptions | undefined, key: keyof StrategyOptions, fallback: number, rule: OptionRule): number {
  const raw = opts?.[key];
  if (raw === undefined) return fallback;
  const { min, max, minInclusive = true, maxInclusive = true, integer = false } = rule;
  const ok =
    typeof raw === 'number' &&
    Number.isFinite(raw) &&
    (!integer || Number.isInteger(raw)) &&
    (min === undefined || (minInclusive ? raw >= min : raw > min)) &&
    (max === undefined || (maxInclusive ? raw <= max : raw < max));
  if (ok) return raw;
  const lo = min === undefined ? '(-∞' : `${minInclusive ? '[' : '('}${min}`;
  const hi = max === undefined ? '∞)' : `${max}${maxInclusive ? ']' : ')'}`;
  throw new FedmartError(
    'CONFIG_ERROR',
    `${label}: option ${key} must be ${integer ? 'an integer' : 'a finite number'} in ${lo}, ${hi}, got ${describe(raw)}; fix the federation's strategy options (default ${fallback})`,
    { details: { option: key, value: raw } },
  );
}

/**
 * Base class of the built-in strategies: every client gets the federation's
 * local config unchanged, the new global model is evaluated every round, and
 * evaluation metrics are example-weighted means. Subclasses provide the
 * aggregation rule.
 */
export abstract class BaseStrategy implements Strategy {
  abstract readonly id: StrategyId;
  abstract readonly needsIndividualUpdates: boolean;

  /**
   * @param _ctx - the round being configured (unused by default)
   * @param base - the federation's default local config
   * @returns a copy of `base` (never the caller's object, so later edits stay local)
   */
  configureTrain(_ctx: RoundContext, base: LocalTrainConfig): LocalTrainConfig {
    return { ...base };
  }

  abstract aggregateTrain(round: number, global: Float32Array, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateResult;

  /**
   * @param _ctx - the round being configured
   * @returns `{ evaluate: true }`: every committed model is evaluated
   */
  configureEvaluate(_ctx: RoundContext): { evaluate: boolean } {
    return { evaluate: true };
  }

  /**
   * @param _round - 1-based round number
   * @param results - the clients' evaluations
   * @param _failures - clients whose evaluation failed (they do not count)
   * @returns example-weighted means of the clients' metrics, plus `numExamples`
   *   (total examples evaluated; overrides a client metric of that name)
   */
  aggregateEvaluate(_round: number, results: readonly ClientEvaluation[], _failures: readonly ClientFailure[]): Record<string, number> {
    let total = 0;
    for (const r of results) if (r.numExamples > 0 && Number.isFinite(r.numExamples)) total += r.numExamples;
    return { ...weightedMetricMeans(results), numExamples: total };
  }

  abstract summary(): string;
}

/** Short description of a value for error messages. */
export function describe(x: unknown): string {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (typeof x === 'number') return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}
