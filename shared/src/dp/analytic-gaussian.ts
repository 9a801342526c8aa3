/**
 * The analytic Gaussian mechanism: the exact (ε, δ) curve of ONE release of
 * f(D) + N(0, σ²I) with L2 sensitivity Δ, and its inverses.
 *
 * Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential
 * Privacy: Analytical Calibration and Optimal Denoising", ICML (Theorem 8):
 * the mechanism is (ε, δ)-DP iff
 *   Φ(Δ/(2σ) − εσ/Δ) − e^ε · Φ(−Δ/(2σ) − εσ/Δ) ≤ δ,
 * which is also the μ-GDP trade-off curve with μ = Δ/σ (Dong, Roth & Su 2022,
 * "Gaussian differential privacy", JRSS-B, Corollary 2.13). It is tight, so
 * for a single release it charges less than an RDP conversion (RDP is an
 * upper bound; at ε = 4, δ = 1e-5 the RDP-calibrated σ is 1.158, the exact
 * one 1.081). Composition of k Gaussian releases with sensitivities Δᵢ and
 * noise σᵢ is again exactly one Gaussian with Δ/σ = √Σ(Δᵢ/σᵢ)² (GDP).
 *
 * Evaluated in log space (as Google's dp_accounting `gaussian_mechanism`
 * does): log δ = log Φ(a) + log1p(−exp(ε + log Φ(b) − log Φ(a))).
 *
 * Pure: no I/O.
 */
import { logErfc } from './special-functions.ts';

/** log Φ(t), accurate in the lower tail. */
function logNormalCdf(t: number): number {
  return logErfc(-t * Math.SQRT1_2) - Math.LN2;
}

function check(name: string, v: number, lo: number, hiOpen = Infinity): void {
  if (typeof v !== 'number' || !(v > lo) || !(v < hiOpen)) throw new RangeError(`analytic Gaussian: ${name} must be in (${lo}, ${hiOpen}), got ${String(v)}`);
}

/**
 * δ(ε) of one Gaussian release with noise multiplier z = σ/Δ (Balle & Wang 2018, Theorem 8).
 * @param z - σ/Δ > 0
 * @param epsilon - ε ≥ 0
 * @returns the smallest δ for which the release is (ε, δ)-DP
 */
export function analyticGaussianDelta(z: number, epsilon: number): number {
  check('noise multiplier σ/Δ', z, 0);
  if (!(epsilon >= 0) || !Number.isFinite(epsilon)) throw new RangeError(`analytic Gaussian: epsilon must be a finite number >= 0, got ${String(epsilon)}`);
  const a = 1 / (2 * z) - epsilon * z;
  const b = -1 / (2 * z) - epsilon * z;
  const la = logNormalCdf(a);
  const r = epsilon + logNormalCdf(b) - la; // < 0: e^ε Φ(b) < Φ(a)
  if (!(r < 0)) return 0;
  return Math.exp(la + Math.log1p(-Math.exp(r)));
}

/** Bisection on a monotone predicate over [lo, hi] to relative width tol. */
function bisect(lo: number, hi: number, above: (x: number) => boolean, tol: number): number {
  for (let i = 0; i < 400 && hi - lo > tol * hi; i++) {
    const mid = (lo + hi) / 2;
    if (above(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * Smallest ε for which one Gaussian release with σ/Δ = z is (ε, δ)-DP (δ(ε) is decreasing in ε).
 * @param z - σ/Δ > 0
 * @param delta - δ in (0, 1)
 * @returns ε ≥ 0 (rounded up: δ(ε) ≤ delta holds at the returned ε)
 */
export function analyticGaussianEpsilon(z: number, delta: number): number {
  check('noise multiplier σ/Δ', z, 0);
  check('delta', delta, 0, 1);
  if (analyticGaussianDelta(z, 0) <= delta) return 0;
  let hi = 1;
  while (analyticGaussianDelta(z, hi) > delta) hi *= 2;
  return bisect(0, hi, (e) => analyticGaussianDelta(z, e) <= delta, 1e-12);
}

/**
 * Smallest noise multiplier z = σ/Δ for which one Gaussian release is (ε, δ)-DP
 * (Balle & Wang 2018, Algorithm 1 solves the same equation; δ(ε) is decreasing in z).
 * @param epsilon - ε > 0
 * @param delta - δ in (0, 1)
 * @returns z (rounded up: δ(ε) ≤ delta holds at the returned z)
 * @example
 * analyticGaussianSigma(4, 1e-5); // 1.0811618…, vs 1.1576 from the RDP conversion
 */
export function analyticGaussianSigma(epsilon: number, delta: number): number {
  check('epsilon', epsilon, 0);
  check('delta', delta, 0, 1);
  let hi = 1;
  while (analyticGaussianDelta(hi, epsilon) > delta) hi *= 2;
  return bisect(0, hi, (z) => analyticGaussianDelta(z, epsilon) <= delta, 1e-12);
}
