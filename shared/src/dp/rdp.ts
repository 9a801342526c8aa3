/**
 * Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism.
 *
 * - RDP of one step: Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy
 *   of the Sampled Gaussian Mechanism" (arXiv:1908.10530, §3.3). Integer orders
 *   use the binomial expansion of A_α; fractional orders use the two-series
 *   method, both in log space. The code follows TF Privacy `rdp_accountant.py`
 *   `_compute_log_a_int`/`_compute_log_a_frac` (= Opacus `analysis/rdp.py`)
 *   term for term, so results agree with both to ~1e-12. Two guards TF lacks,
 *   both only ever raising RDP: if float cancellation makes a signed partial sum
 *   negative, that order falls back to summing |terms| (dp_accounting's
 *   variant, an upper bound on A_α); an order whose series has not converged
 *   after 10^6 terms (never seen on the acceptance grid) gets the upper bound RDP(⌈α⌉)
 *   (RDP is non-decreasing in α).
 * - Composition: RDP at each order adds over steps (Mironov 2017, Prop. 1), so
 *   totals are recomputed from the per-order vector, never by adding epsilons.
 * - Conversion to (ε, δ): Balle et al. 2020, "Hypothesis testing
 *   interpretations and Rényi differential privacy" (arXiv:1905.09982,
 *   Theorem 21), as Opacus `privacy_analysis.get_privacy_spent` and
 *   dp_accounting `compute_epsilon` use:
 *   ε = rdp − (log δ + log α)/(α − 1) + log((α − 1)/α), minimised over orders.
 *   Like dp_accounting, an order whose RDP is so small that the KL bound
 *   δ ≥ sqrt(1 − exp(−rdp)) already holds gives ε = 0, and ε is floored at 0.
 *
 * Adjacency is add/remove-one (Poisson sampling). Sensitivity is 1: `sigma` is
 * the noise multiplier (noise std / clipping norm).
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { logAddExp, logErfc } from './special-functions.ts';

/**
 * Default grid of Rényi orders: Opacus' `RDPAccountant.DEFAULT_ALPHAS`
 * (`[1 + x/10 for x in 1..99] + range(12, 64)`, i.e. 1.1, 1.2, …, 10.9, 12, 13, …, 63)
 * plus 128, 256, 512, 1024 so that very small ε (large σ, many steps) is not
 * stuck at order 63. A denser or wider grid can only lower ε (the minimum is
 * over more orders); it never makes the bound unsound.
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
  128,
  256,
  512,
  1024,
]);

/** Maximum number of series terms for a fractional order (dp_accounting's `_MAX_STEPS_LOG_A_FRAC`). */
const MAX_FRAC_TERMS = 1_000_000;

function checkQ(q: number, where: string): void {
  if (typeof q !== 'number' || !(q > 0 && q <= 1)) throw new RangeError(`${where}: q (sampling rate) must be a number in (0, 1], got ${String(q)}`);
}
function checkSigma(sigma: number, where: string): void {
  if (typeof sigma !== 'number' || !(sigma > 0) || !Number.isFinite(sigma)) {
    throw new RangeError(`${where}: sigma (noise multiplier) must be a finite number > 0, got ${String(sigma)}`);
  }
}
function checkSteps(steps: number, where: string): void {
  if (typeof steps !== 'number' || !Number.isSafeInteger(steps) || steps < 0) {
    throw new RangeError(`${where}: steps must be an integer >= 0, got ${String(steps)}`);
  }
}
function checkDelta(delta: number, where: string): void {
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) throw new RangeError(`${where}: delta must be a number in (0, 1), got ${String(delta)}`);
}
function checkOrders(orders: readonly number[], where: string): void {
  if (!Array.isArray(orders) && !ArrayBuffer.isView(orders)) throw new TypeError(`${where}: orders must be an array of numbers`);
  if (orders.length === 0) throw new RangeError(`${where}: orders must not be empty`);
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    if (typeof a !== 'number' || !(a > 1) || !Number.isFinite(a)) throw new RangeError(`${where}: orders[${i}] must be a finite number > 1, got ${String(a)}`);
  }
}

/** log A_α for integer α ≥ 2 by the binomial expansion (Mironov et al. 2019, §3.3). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logA = -Infinity;
  let logBinom = 0; // log C(α, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / twoSigma2;
    logA = logAddExp(logA, s);
  }
  return logA;
}

/**
 * log(exp(x) − exp(y)) for x ≥ y; NaN when the difference would be negative
 * (float cancellation), which the caller treats as "fall back to the bound".
 */
function logSubExp(x: number, y: number): number {
  if (x < y) return NaN;
  if (y === -Infinity) return x;
  if (x === y) return -Infinity;
  const d = Math.expm1(x - y);
  return d === Infinity ? x : Math.log(d) + y;
}

/**
 * log A_α for fractional α by the two-series method (Mironov et al. 2019,
 * §3.3), term for term as TF Privacy `_compute_log_a_frac` / Opacus
 * `_compute_log_a_for_frac_alpha`: negative binomial coefficients are
 * subtracted, and the loop stops once both new terms are below e^-30.
 *
 * @param signed - false sums |terms| instead (dp_accounting's variant): an upper
 *   bound used only if float cancellation makes a signed partial sum negative
 */
function logAFrac(q: number, sigma: number, alpha: number, signed = true): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let logAbsBinom = 0; // log |C(α, 0)|
  let positive = true; // sign of C(α, i)
  for (let i = 0; i < MAX_FRAC_TERMS; i++) {
    if (i > 0) {
      const f = alpha - i + 1;
      logAbsBinom += Math.log(Math.abs(f)) - Math.log(i);
      if (f < 0) positive = !positive;
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigma2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigma2 + logE1;
    if (positive || !signed) {
      logA0 = logAddExp(logA0, logS0);
      logA1 = logAddExp(logA1, logS1);
    } else {
      logA0 = logSubExp(logA0, logS0);
      logA1 = logSubExp(logA1, logS1);
      if (Number.isNaN(logA0) || Number.isNaN(logA1)) return logAFrac(q, sigma, alpha, false);
    }
    if (Math.max(logS0, logS1) < -30) return logAddExp(logA0, logA1);
  }
  return Infinity;
}

/** RDP of one step of the sampled Gaussian mechanism at order α. */
function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 1) return alpha / (2 * sigma * sigma);
  let logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  if (logA === Infinity && !Number.isInteger(alpha)) {
    // The fractional series did not converge: Rényi divergence is non-decreasing
    // in the order (van Erven & Harremoës 2014, Thm 3), so RDP(⌈α⌉), computed
    // exactly by the integer method, is a valid upper bound for RDP(α).
    const up = Math.ceil(alpha);
    return Math.max(0, logAInt(q, sigma, up) / (up - 1));
  }
  const r = logA / (alpha - 1);
  // log A_α ≥ 0 mathematically; clamp float noise so composition never subtracts.
  return Number.isNaN(r) ? Infinity : Math.max(0, r);
}

/**
 * RDP of the Poisson-subsampled Gaussian mechanism iterated `steps` times.
 *
 * @param q - sampling probability of each record (or client) per step, in (0, 1]
 * @param sigma - noise multiplier: Gaussian std divided by the L2 sensitivity (clipping norm), > 0
 * @param steps - number of steps, integer ≥ 0
 * @param orders - Rényi orders α > 1 (default {@link DEFAULT_RDP_ORDERS})
 * @returns RDP ε_α at each order (same index as `orders`); +∞ where the bound diverges
 * @throws RangeError on arguments outside their domain
 * @example
 * const rdp = computeRdp(0.01, 1.1, 1000); // Float64Array, one value per default order
 */
export function computeRdp(q: number, sigma: number, steps: number, orders: readonly number[] = DEFAULT_RDP_ORDERS): Float64Array {
  checkQ(q, 'computeRdp');
  checkSigma(sigma, 'computeRdp');
  checkSteps(steps, 'computeRdp');
  checkOrders(orders, 'computeRdp');
  const out = new Float64Array(orders.length);
  if (steps === 0) return out;
  for (let i = 0; i < orders.length; i++) out[i] = steps * rdpOneStep(q, sigma, orders[i]!);
  return out;
}

/** An (ε, δ) guarantee and the Rényi order that gave it. */
export interface EpsilonResult {
  /** ε ≥ 0 (+∞ when no order gives a finite bound) */
  epsilon: number;
  /** the Rényi order α at which the minimum was reached (NaN when ε is +∞) */
  order: number;
}

/**
 * Convert an RDP curve to (ε, δ)-DP with Balle et al. 2020, Theorem 21
 * (arXiv:1905.09982): ε = min_α rdp_α − (log δ + log α)/(α − 1) + log((α − 1)/α).
 *
 * @param orders - Rényi orders α > 1
 * @param rdp - RDP at each order (same length as `orders`), ≥ 0
 * @param delta - target δ in (0, 1)
 * @returns the smallest ε over the orders (floored at 0) and its order
 * @throws RangeError on mismatched lengths, negative/NaN RDP or δ outside (0, 1)
 * @example
 * rdpToEpsilon([2, 32], [1.1, 1.1], 1e-5); // { epsilon: 1.3278…, order: 32 }
 */
export function rdpToEpsilon(orders: readonly number[], rdp: ArrayLike<number>, delta: number): EpsilonResult {
  checkOrders(orders, 'rdpToEpsilon');
  checkDelta(delta, 'rdpToEpsilon');
  if (rdp === null || typeof rdp !== 'object' || typeof rdp.length !== 'number') throw new TypeError('rdpToEpsilon: rdp must be an array of numbers');
  if (rdp.length !== orders.length) throw new RangeError(`rdpToEpsilon: rdp has ${rdp.length} values but orders has ${orders.length}; pass one RDP value per order`);
  const logDelta = Math.log(delta);
  let best = Infinity;
  let bestOrder = NaN;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]!;
    const r = rdp[i]!;
    if (typeof r !== 'number' || Number.isNaN(r) || r < 0) throw new RangeError(`rdpToEpsilon: rdp[${i}] must be a number >= 0, got ${String(r)}`);
    let eps: number;
    if (r === Infinity) continue;
    // KL bound (dp_accounting): δ ≥ sqrt(1 − e^{−KL}) ≥ sqrt(1 − e^{−rdp_α}) gives (0, δ)-DP.
    if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    else eps = r - (logDelta + Math.log(a)) / (a - 1) + Math.log1p(-1 / a);
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

/** Parameters of a homogeneous run of the subsampled Gaussian mechanism. */
export interface SampledGaussianParams {
  /** sampling probability per step, in (0, 1] */
  q: number;
  /** noise multiplier (std / sensitivity), > 0 */
  sigma: number;
  /** number of steps, integer ≥ 0 */
  steps: number;
  /** target δ in (0, 1) */
  delta: number;
  /** Rényi orders (default {@link DEFAULT_RDP_ORDERS}) */
  orders?: readonly number[];
}

/**
 * ε spent by `steps` steps of the Poisson-subsampled Gaussian mechanism.
 *
 * @param params - q, sigma, steps, delta and optional orders
 * @returns ε (RDP accounting, Balle et al. 2020 conversion) and the optimal order
 * @throws RangeError on arguments outside their domain
 * @example
 * // Abadi et al. 2016 MNIST setting
 * computeEpsilon({ q: 256 / 60000, sigma: 1.1, steps: 14063, delta: 1e-5 });
 */
export function computeEpsilon(params: SampledGaussianParams): EpsilonResult {
  if (params === null || typeof params !== 'object') throw new TypeError('computeEpsilon: expected { q, sigma, steps, delta, orders? }');
  const { q, sigma, steps, delta, orders = DEFAULT_RDP_ORDERS } = params;
  checkDelta(delta, 'computeEpsilon');
  return rdpToEpsilon(orders, computeRdp(q, sigma, steps, orders), delta);
}

/** Parameters for {@link computeSigma}. */
export interface SigmaSearchParams {
  /** sampling probability per step, in (0, 1] */
  q: number;
  /** number of steps, integer ≥ 1 */
  steps: number;
  /** target δ in (0, 1) */
  delta: number;
  /** target ε > 0 */
  epsilon: number;
  /** Rényi orders (default {@link DEFAULT_RDP_ORDERS}) */
  orders?: readonly number[];
}

/** Largest noise multiplier computeSigma will consider. */
const SIGMA_MAX = 1e6;
/** Relative bracket width at which the bisection stops. */
const SIGMA_RTOL = 1e-5;

/**
 * Smallest noise multiplier σ whose ε (RDP accounting) is ≤ the target.
 *
 * ε is non-increasing in σ (every per-order RDP is), so a geometric bracket
 * followed by bisection on log σ is exact up to its tolerance; the upper end
 * of the final bracket (relative width ≤ 1e-5) is returned, so the ε it
 * reaches never exceeds the target.
 *
 * @param params - q, steps, delta, target epsilon and optional orders
 * @returns σ and the ε it reaches (≤ target)
 * @throws RangeError on arguments outside their domain
 * @throws FedmartError CONFIG_ERROR when the target cannot be reached (ε ≤ 0, or σ would exceed 1e6)
 * @example
 * const { sigma } = computeSigma({ q: 0.01, steps: 1000, delta: 1e-5, epsilon: 1 });
 */
export function computeSigma(params: SigmaSearchParams): { sigma: number; epsilon: number } {
  if (params === null || typeof params !== 'object') throw new TypeError('computeSigma: expected { q, steps, delta, epsilon, orders? }');
  const { q, steps, delta, epsilon, orders = DEFAULT_RDP_ORDERS } = params;
  checkQ(q, 'computeSigma');
  checkSteps(steps, 'computeSigma');
  if (steps < 1) throw new RangeError(`computeSigma: steps must be >= 1 (no steps spend no budget), got ${steps}`);
  checkDelta(delta, 'computeSigma');
  checkOrders(orders, 'computeSigma');
  if (typeof epsilon !== 'number' || Number.isNaN(epsilon)) throw new RangeError(`computeSigma: epsilon must be a number, got ${String(epsilon)}`);
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw new FedmartError('CONFIG_ERROR', `target epsilon must be a finite number > 0, got ${epsilon}; no noise level gives (${epsilon}, ${delta})-DP with these settings — raise the epsilon budget`);
  }
  const eps = (sigma: number): number => rdpToEpsilon(orders, computeRdp(q, sigma, steps, orders), delta).epsilon;
  let hi = 1;
  let epsHi = eps(hi);
  while (epsHi > epsilon) {
    if (hi >= SIGMA_MAX) {
      throw new FedmartError(
        'CONFIG_ERROR',
        `target epsilon ${epsilon} at delta ${delta} is unreachable for q=${q}, steps=${steps}: even sigma=${SIGMA_MAX} spends epsilon=${epsHi}; raise epsilon or delta, or lower q or the number of steps`,
      );
    }
    hi *= 2;
    epsHi = eps(hi);
  }
  let lo = hi / 2;
  while (eps(lo) <= epsilon) {
    hi = lo;
    lo /= 2;
    if (lo < 1e-6) return { sigma: hi, epsilon: eps(hi) };
  }
  epsHi = eps(hi);
  while ((hi - lo) / hi > SIGMA_RTOL) {
    const mid = Math.sqrt(lo * hi);
    const e = eps(mid);
    if (e <= epsilon) {
      hi = mid;
      epsHi = e;
    } else lo = mid;
  }
  return { sigma: hi, epsilon: epsHi };
}

/** One homogeneous run recorded by {@link RdpAccountant}. */
export interface RdpStepRecord {
  q: number;
  sigma: number;
  count: number;
}

/** JSON form of {@link RdpAccountant}: `rdp[i]` is `null` when it is +∞ (JSON has no Infinity). */
export interface RdpAccountantState {
  version: 1;
  orders: number[];
  rdp: (number | null)[];
  steps: RdpStepRecord[];
}

/**
 * Accumulates heterogeneous steps of the subsampled Gaussian mechanism as a
 * per-order RDP vector; ε is always recomputed from the composed vector
 * (RDP adds, ε does not).
 *
 * @example
 * const acc = new RdpAccountant();
 * acc.step(0.01, 1.1, 500);   // record level, first phase
 * acc.step(0.02, 1.3, 200);   // different sampling rate and noise
 * acc.epsilon(1e-5);          // { epsilon, order }
 * const restored = RdpAccountant.fromJSON(JSON.parse(JSON.stringify(acc)));
 */
export class RdpAccountant {
  readonly orders: readonly number[];
  readonly #rdp: Float64Array;
  readonly #steps: RdpStepRecord[] = [];

  /**
   * @param orders - Rényi orders α > 1 (default {@link DEFAULT_RDP_ORDERS})
   * @throws RangeError on invalid orders
   */
  constructor(orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    checkOrders(orders, 'RdpAccountant');
    this.orders = Object.freeze([...orders]);
    this.#rdp = new Float64Array(orders.length);
  }

  /**
   * Compose `count` steps with sampling rate q and noise multiplier sigma.
   * @param q - sampling probability in (0, 1]
   * @param sigma - noise multiplier > 0
   * @param count - number of steps (integer ≥ 0, default 1)
   * @returns this, for chaining
   * @throws RangeError on arguments outside their domain
   */
  step(q: number, sigma: number, count = 1): this {
    const add = computeRdp(q, sigma, count, this.orders);
    if (count === 0) return this;
    for (let i = 0; i < add.length; i++) this.#rdp[i] = this.#rdp[i]! + add[i]!;
    const last = this.#steps[this.#steps.length - 1];
    if (last !== undefined && last.q === q && last.sigma === sigma) last.count += count;
    else this.#steps.push({ q, sigma, count });
    return this;
  }

  /** The composed RDP at each order (a copy). */
  get rdp(): Float64Array {
    return this.#rdp.slice();
  }

  /** The recorded runs, merged when consecutive steps share q and sigma (a copy). */
  get steps(): RdpStepRecord[] {
    return this.#steps.map((s) => ({ ...s }));
  }

  /**
   * ε spent so far at the given δ.
   * @param delta - target δ in (0, 1)
   * @returns ε and the optimal order (ε = 0 before any step)
   * @throws RangeError when δ is outside (0, 1)
   */
  epsilon(delta: number): EpsilonResult {
    return rdpToEpsilon(this.orders, this.#rdp, delta);
  }

  /** JSON-serialisable state (orders, composed RDP, step history). */
  toJSON(): RdpAccountantState {
    return {
      version: 1,
      orders: [...this.orders],
      rdp: Array.from(this.#rdp, (v) => (v === Infinity ? null : v)),
      steps: this.steps,
    };
  }

  /**
   * Restore an accountant from {@link RdpAccountant.toJSON} output.
   * @param state - parsed JSON state
   * @returns the accountant
   * @throws FedmartError DATA_ERROR when the state is malformed
   */
  static fromJSON(state: unknown): RdpAccountant {
    const bad = (why: string): FedmartError =>
      new FedmartError('DATA_ERROR', `invalid RDP accountant state: ${why}; expected the object RdpAccountant.toJSON() produced ({ version: 1, orders, rdp, steps })`);
    if (state === null || typeof state !== 'object') throw bad(`got ${state === null ? 'null' : typeof state}`);
    const s = state as Partial<RdpAccountantState>;
    if (s.version !== 1) throw bad(`version is ${String(s.version)}, not 1`);
    if (!Array.isArray(s.orders) || !Array.isArray(s.rdp) || !Array.isArray(s.steps)) throw bad('orders, rdp and steps must be arrays');
    if (s.orders.length !== s.rdp.length) throw bad(`${s.orders.length} orders but ${s.rdp.length} rdp values`);
    let acc: RdpAccountant;
    try {
      acc = new RdpAccountant(s.orders);
    } catch (err) {
      throw new FedmartError('DATA_ERROR', `invalid RDP accountant state: ${(err as Error).message}`, { cause: err });
    }
    s.rdp.forEach((v, i) => {
      const x = v === null ? Infinity : v;
      if (typeof x !== 'number' || Number.isNaN(x) || x < 0) throw bad(`rdp[${i}] is ${String(v)}, expected a number >= 0 or null`);
      acc.#rdp[i] = x;
    });
    for (const [i, st] of s.steps.entries()) {
      const ok =
        st !== null && typeof st === 'object' && typeof st.q === 'number' && st.q > 0 && st.q <= 1 && typeof st.sigma === 'number' && st.sigma > 0 && Number.isSafeInteger(st.count) && st.count >= 0;
      if (!ok) throw bad(`steps[${i}] must be { q in (0,1], sigma > 0, count integer >= 0 }`);
      acc.#steps.push({ q: st.q, sigma: st.sigma, count: st.count });
    }
    return acc;
  }
}
