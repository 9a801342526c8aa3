/**
 * Server-side adaptive optimizers FedAdam and FedYogi (Reddi et al. 2021,
 * "Adaptive Federated Optimization", ICLR, Algorithm 2).
 *
 * The averaged client delta is treated as a pseudo-gradient and fed to an
 * Adam- or Yogi-style update on the server:
 *
 *   Δ_t = Σ n_k·Δ_k / Σ n_k                       (the paper uses the plain mean;
 *                                                  we weight by examples like FedAvg)
 *   m_t = β1·m_{t−1} + (1 − β1)·Δ_t
 *   Adam: v_t = β2·v_{t−1} + (1 − β2)·Δ_t²
 *   Yogi: v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²)
 *   x_{t+1} = x_t + η·m_t / (√v_t + τ)
 *
 * with m_{−1} = 0 and v_{−1} = τ² as in the paper, and no bias correction
 * (Algorithm 2 has none). τ bounds the per-coordinate step by η·|m|/τ, which is
 * why the paper calls it the degree of adaptivity.
 *
 * The moments live in the strategy instance and carry over between rounds;
 * {@link FedOpt.getState}/{@link FedOpt.setState} let the coordinator persist
 * them with the model version, and restore them when a round is rolled back.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { BaseStrategy, assertUpdates, describe, readOption } from './base.ts';
import { aggregateTrainMetrics, assertMean, meanDelta } from './fedavg.ts';
import type { AggregateResult, ClientFailure, ClientUpdate, MeanAggregateInfo, StrategyId, StrategyOptions } from './types.ts';

/** Defaults from Reddi et al. 2021 (η from their grid; β and τ from §5/Appendix). */
export const FEDOPT_DEFAULTS = Object.freeze({ serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 });

/**
 * Persistable server-optimizer state. `m` and `v` are `null` until the first
 * aggregation (their length is only known once a model arrives).
 */
export interface FedOptState {
  /** Number of server steps taken (rounds that produced new weights). */
  steps: number;
  /** First moment m_t, one value per parameter. */
  m: Float64Array | null;
  /** Second moment v_t, one value per parameter. */
  v: Float64Array | null;
}

/**
 * Shared machinery of FedAdam and FedYogi; they differ only in the v update.
 */
export abstract class FedOpt extends BaseStrategy {
  abstract override readonly id: StrategyId;
  readonly needsIndividualUpdates = false;
  /** Server learning rate η. */
  readonly serverLearningRate: number;
  /** First-moment decay β1. */
  readonly beta1: number;
  /** Second-moment decay β2. */
  readonly beta2: number;
  /** Adaptivity τ (also √ of the initial v). */
  readonly tau: number;

  private m: Float64Array | null = null;
  private v: Float64Array | null = null;
  private steps = 0;

  /**
   * @param opts - `serverLearningRate` (η > 0), `beta1` and `beta2` (in [0, 1)), `tau` (τ > 0)
   * @throws FedmartError CONFIG_ERROR when an option is out of range
   */
  constructor(label: string, opts: StrategyOptions = {}) {
    super();
    this.serverLearningRate = readOption(label, opts, 'serverLearningRate', FEDOPT_DEFAULTS.serverLearningRate, { min: 0, minInclusive: false });
    this.beta1 = readOption(label, opts, 'beta1', FEDOPT_DEFAULTS.beta1, { min: 0, max: 1, maxInclusive: false });
    this.beta2 = readOption(label, opts, 'beta2', FEDOPT_DEFAULTS.beta2, { min: 0, max: 1, maxInclusive: false });
    this.tau = readOption(label, opts, 'tau', FEDOPT_DEFAULTS.tau, { min: 0, minInclusive: false });
  }

  /** Whether v follows Yogi's additive rule instead of Adam's exponential average. */
  protected abstract readonly yogi: boolean;

  /**
   * One server-optimizer step.
   *
   * Nothing is changed (state included) when there are no results or every
   * client reported zero examples. The state advances as soon as this returns
   * new weights: if the coordinator then fails to commit the round, it should
   * restore the {@link getState} snapshot it took before.
   *
   * @param _round - 1-based round number
   * @param global - x_t, the weights the clients started from (not mutated)
   * @param results - successful updates
   * @param _failures - failed clients (ignored)
   * @returns x_{t+1} and example-weighted training metrics
   * @throws FedmartError INVALID_UPDATE on a malformed or non-finite update
   * @throws FedmartError CONFIG_ERROR when the stored moments do not match the model's size
   */
  aggregateTrain(_round: number, global: Float32Array, results: readonly ClientUpdate[], _failures: readonly ClientFailure[]): AggregateResult {
    const label = this.id;
    assertUpdates(label, global, results);
    const metrics = aggregateTrainMetrics(results);
    const delta = meanDelta(label, results, global.length);
    if (delta === null) return { weights: null, metrics };
    return { weights: this.step(global, delta), metrics };
  }

  /**
   * The same server step from the example-weighted mean alone (secure
   * aggregation / HE). A total weight of 0 keeps the model and the state.
   * @param _round - 1-based round number
   * @param global - x_t (not mutated)
   * @param mean - Δ_t, the example-weighted mean delta
   * @param info - total weight and pass-through metrics
   * @returns x_{t+1}
   * @throws FedmartError INVALID_UPDATE on a wrong-length or non-finite mean; CONFIG_ERROR when the stored moments do not match the model's size
   */
  aggregateMean(_round: number, global: Float32Array, mean: Float64Array, info: MeanAggregateInfo): AggregateResult {
    assertMean(this.id, global, mean);
    if (!(info.totalWeight > 0)) return { weights: null, metrics: { ...info.metrics } };
    return { weights: this.step(global, mean), metrics: { ...info.metrics } };
  }

  private step(global: Float32Array, delta: Float64Array): Float32Array {
    const label = this.id;
    const n = global.length;
    if (this.m === null || this.v === null) {
      this.m = new Float64Array(n);
      this.v = new Float64Array(n).fill(this.tau * this.tau);
    } else if (this.m.length !== n) {
      throw new FedmartError(
        'CONFIG_ERROR',
        `${label}: server optimizer state holds ${this.m.length} parameters but the model has ${n}; the model changed mid-federation — start a new federation or reset the strategy state with setState({ steps: 0, m: null, v: null })`,
        { details: { expected: this.m.length, got: n } },
      );
    }
    const m = this.m, v = this.v;
    const b1 = this.beta1, c1 = 1 - this.beta1, b2 = this.beta2, c2 = 1 - this.beta2, eta = this.serverLearningRate, tau = this.tau;
    const out = new Float32Array(n);
    if (this.yogi) {
      for (let i = 0; i < n; i++) {
        const d = delta[i]!;
        const mi = b1 * m[i]! + c1 * d;
        const d2 = d * d;
        const vPrev = v[i]!;
        // sign(v − Δ²): v shrinks towards Δ² by at most (1−β2)·Δ², never by a factor, so v stays > 0.
        const vi = vPrev > d2 ? vPrev - c2 * d2 : vPrev < d2 ? vPrev + c2 * d2 : vPrev;
        m[i] = mi;
        v[i] = vi;
        out[i] = global[i]! + (eta * mi) / (Math.sqrt(vi) + tau);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const d = delta[i]!;
        const mi = b1 * m[i]! + c1 * d;
        const vi = b2 * v[i]! + c2 * d * d;
        m[i] = mi;
        v[i] = vi;
        out[i] = global[i]! + (eta * mi) / (Math.sqrt(vi) + tau);
      }
    }
    this.steps++;
    return out;
  }

  /**
   * Snapshot of the optimizer state (copies: later rounds do not change it).
   * @returns steps taken and the moments (null before the first step)
   */
  getState(): FedOptState {
    return { steps: this.steps, m: this.m === null ? null : this.m.slice(), v: this.v === null ? null : this.v.slice() };
  }

  /**
   * Replace the optimizer state, e.g. after a coordinator restart or to roll
   * back a round that failed to commit. The arrays are copied.
   *
   * @param state - a value previously returned by {@link getState}
   * @throws TypeError when fields have the wrong type
   * @throws FedmartError DATA_ERROR when the stored moments are inconsistent
   *   (different lengths, non-finite values, negative v, only one of m/v set)
   */
  setState(state: FedOptState): void {
    const label = `${this.id}.setState`;
    if (state === null || typeof state !== 'object') throw new TypeError(`${label}: expected { steps, m, v }, got ${describe(state)}`);
    const { steps, m, v } = state;
    if (!Number.isInteger(steps) || steps < 0) throw new TypeError(`${label}: "steps" expected an integer ≥ 0, got ${describe(steps)}`);
    if (m !== null && !(m instanceof Float64Array)) throw new TypeError(`${label}: "m" expected a Float64Array or null, got ${describe(m)}`);
    if (v !== null && !(v instanceof Float64Array)) throw new TypeError(`${label}: "v" expected a Float64Array or null, got ${describe(v)}`);
    if ((m === null) !== (v === null)) {
      throw new FedmartError('DATA_ERROR', `${label}: stored state has only one of m and v; expected both or neither — discard the stored optimizer state`);
    }
    if (m !== null && v !== null) {
      if (m.length !== v.length) {
        throw new FedmartError('DATA_ERROR', `${label}: stored m has ${m.length} values and v ${v.length}, expected equal lengths — discard the stored optimizer state`);
      }
      for (let i = 0; i < m.length; i++) {
        const mi = m[i]!, vi = v[i]!;
        if (mi - mi !== 0 || vi - vi !== 0 || vi < 0) {
          throw new FedmartError('DATA_ERROR', `${label}: stored state has m[${i}]=${mi}, v[${i}]=${vi}; expected finite values with v ≥ 0 — discard the stored optimizer state`);
        }
      }
    }
    this.steps = steps;
    this.m = m === null ? null : m.slice();
    this.v = v === null ? null : v.slice();
  }

  /** @returns one line naming the optimizer, its hyper-parameters and the paper */
  summary(): string {
    const name = this.yogi ? 'FedYogi' : 'FedAdam';
    return `${name}(η=${this.serverLearningRate}, β1=${this.beta1}, β2=${this.beta2}, τ=${this.tau}): server ${this.yogi ? 'Yogi' : 'Adam'} step on the example-weighted mean delta (Reddi et al. 2021)`;
  }
}

/**
 * FedAdam: Adam on the server, v_t = β2·v_{t−1} + (1 − β2)·Δ_t².
 *
 * @example
 * const s = new FedAdam({ serverLearningRate: 0.03 });
 * const next = s.aggregateTrain(1, global, updates, []).weights;
 * await store.save(s.getState());
 */
export class FedAdam extends FedOpt {
  readonly id: StrategyId = 'fedadam';
  protected readonly yogi = false;

  /**
   * @param opts - see {@link FedOpt}
   * @throws FedmartError CONFIG_ERROR when an option is out of range
   */
  constructor(opts: StrategyOptions = {}) {
    super('fedadam', opts);
  }
}

/**
 * FedYogi: Yogi on the server, v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²).
 * v changes additively, so one large pseudo-gradient cannot blow up the
 * effective learning rate of later rounds as quickly as with Adam.
 *
 * @example
 * const s = new FedYogi();
 */
export class FedYogi extends FedOpt {
  readonly id: StrategyId = 'fedyogi';
  protected readonly yogi = true;

  /**
   * @param opts - see {@link FedOpt}
   * @throws FedmartError CONFIG_ERROR when an option is out of range
   */
  constructor(opts: StrategyOptions = {}) {
    super('fedyogi', opts);
  }
}
