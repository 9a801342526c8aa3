/**
 * Numerical privacy-loss-distribution (PLD) accountant for the
 * Poisson-subsampled Gaussian mechanism.
 *
 * Used as the near-tight reference that the RDP accountant must never
 * undercut. Every approximation here is pessimistic, so the ε it reports is
 * an upper bound on the true ε (and, with the default resolution, close to
 * it):
 *
 * - Discretisation: "connect the dots" (Doroshenko, Ghazi, Kamath, Kumar,
 *   Manurangsi 2022, "Connect the Dots: Tighter Discrete Approximations of
 *   Privacy Loss Distributions", PETS; the pessimistic mode of Google
 *   dp_accounting's `PLDAccountant`). On a grid of loss values ε_i = i·h the
 *   discrete PLD is the one whose hockey-stick curve δ(ε), as a function of
 *   e^ε, linearly interpolates the exact curve at the grid points; the exact
 *   curve is convex in e^ε, so the interpolant lies above it everywhere.
 *   We build it bin by bin: the P- and Q-mass of each loss interval
 *   (ε_{i−1}, ε_i] (from exact normal CDFs) is split into atoms at its two ends
 *   that keep both masses, which is numerically stable where differencing δ(ε)
 *   twice is not. P-mass below the grid is rounded up to its first point, and
 *   P-mass above it goes to the +∞ atom.
 * - Composition: PLDs under the first distribution convolve (Koskela, Jälkö,
 *   Honkela 2020, "Computing Tight Differential Privacy Guarantees Using FFT",
 *   AISTATS; Meiser & Mohammadi 2018). We convolve with zero-padded FFTs and
 *   self-compose by repeated squaring, so 10,000 steps cost ~14 squarings.
 * - After each convolution: negative FFT round-off is set to 0; values below a
 *   round-off floor are removed and their total mass is added to the +∞ atom;
 *   the lower tail (≤ 1e-16) is moved up into the first kept bin; the upper
 *   tail (≤ 1e-16) goes to +∞. Each step only moves mass to larger losses, so
 *   δ(ε) never decreases.
 * - Both neighbouring directions (remove: P = (1−q)N(0,σ²) + qN(1,σ²) vs
 *   Q = N(0,σ²); add: the reverse) are composed separately and the larger ε is
 *   reported.
 *
 * Pure: no I/O.
 */
import { logAddExp, normalCdf, normalSf } from './special-functions.ts';

/** Which neighbouring relation a PLD describes (add/remove-one adjacency). */
export type PldDirection = 'remove' | 'add';

/** Tail mass (per side) dropped pessimistically after each convolution. */
const TAIL_MASS = 1e-16;
/** Gaussian tail (in σ) beyond which the single-step grid stops; Φc(9) ≈ 1.1e-19. */
const Z_TAIL = 9;
/** Refuse grids larger than this (memory/time guard). */
const MAX_BINS = 1 << 22;

/**
 * A discrete privacy loss distribution: `masses[i]` is the probability of
 * loss `(offset + i)·h` under the first distribution; `infMass` that of +∞.
 */
export class PrivacyLossDistribution {
  /**
   * @param h - grid spacing of loss values (nats), > 0
   * @param offset - integer grid index of `masses[0]`
   * @param masses - non-negative probabilities
   * @param infMass - probability of infinite loss, in [0, 1]
   */
  constructor(
    readonly h: number,
    readonly offset: number,
    readonly masses: Float64Array,
    readonly infMass: number,
  ) {}

  /**
   * PLD of one step of the Poisson-subsampled Gaussian mechanism, pessimistic
   * ("connect the dots") on the grid of spacing h.
   * @param q - sampling probability in (0, 1]
   * @param sigma - noise multiplier > 0
   * @param direction - 'remove' (record present in the first dataset) or 'add'
   * @param h - loss grid spacing > 0
   * @returns the discrete PLD
   * @throws RangeError on arguments outside their domain or a grid over 4M bins
   */
  static subsampledGaussian(q: number, sigma: number, direction: PldDirection, h: number): PrivacyLossDistribution {
    if (typeof q !== 'number' || !(q > 0 && q <= 1)) throw new RangeError(`subsampledGaussian: q must be in (0, 1], got ${String(q)}`);
    if (typeof sigma !== 'number' || !(sigma > 0) || !Number.isFinite(sigma)) throw new RangeError(`subsampledGaussian: sigma must be a finite number > 0, got ${String(sigma)}`);
    if (direction !== 'remove' && direction !== 'add') throw new RangeError(`subsampledGaussian: direction must be 'remove' or 'add', got ${String(direction)}`);
    if (typeof h !== 'number' || !(h > 0) || !Number.isFinite(h)) throw new RangeError(`subsampledGaussian: h must be a finite number > 0, got ${String(h)}`);
    const lossRemove = (x: number): number => logAddExp(Math.log1p(-q), Math.log(q) + (2 * x - 1) / (2 * sigma * sigma));
    let lo: number;
    let hi: number;
    if (direction === 'remove') {
      lo = lossRemove(1 - Z_TAIL * sigma);
      hi = lossRemove(1 + Z_TAIL * sigma);
    } else {
      lo = -lossRemove(Z_TAIL * sigma);
      hi = Math.min(-Math.log1p(-q), -lossRemove(-Z_TAIL * sigma));
    }
    const i0 = Math.floor(lo / h);
    const i1 = Math.ceil(hi / h);
    const n = i1 - i0 + 1;
    if (!(n <= MAX_BINS)) throw new RangeError(`subsampledGaussian: grid of ${n} bins exceeds ${MAX_BINS}; use a larger h`);
    const cdf = direction === 'remove' ? (e: number) => lossCdfRemove(q, sigma, e) : (e: number) => lossCdfAdd(q, sigma, e);
    const masses = new Float64Array(n);
    let prev = cdf(i0 * h);
    // Everything below the grid is rounded up to its first point.
    masses[0] = prev.fP;
    const eh = Math.exp(h);
    const em1 = Math.expm1(h);
    for (let b = 1; b < n; b++) {
      const cur = cdf((i0 + b) * h);
      // P- and Q-mass of the bin (ε_{b−1}, ε_b], differenced on the side where the CDF is small.
      const dP = cur.fP <= 0.5 ? Math.max(0, cur.fP - prev.fP) : Math.max(0, prev.gP - cur.gP);
      const dQ = cur.fQ <= 0.5 ? Math.max(0, cur.fQ - prev.fQ) : Math.max(0, prev.gQ - cur.gQ);
      // Split the bin into atoms at its ends that keep both its P- and Q-mass:
      // the "connect the dots" PLD, whose δ(ε) equals the exact one at grid points.
      const xLoQ = dQ === 0 ? 0 : Math.exp((i0 + b - 1) * h + Math.log(dQ)); // e^{ε_{b−1}}·dQ
      const right = Math.max(0, ((dP - xLoQ) * eh) / em1);
      const left = Math.max(0, (xLoQ * eh - dP) / em1);
      masses[b] = masses[b]! + right;
      masses[b - 1] = masses[b - 1]! + left;
      prev = cur;
    }
    // Everything above the grid is charged as infinite loss.
    return new PrivacyLossDistribution(h, i0, masses, Math.min(1, prev.gP)).#trim();
  }

  /**
   * δ(ε) = E[(1 − e^{ε−L})₊] + P(L = ∞): the hockey-stick divergence bound.
   * @param epsilon - ε (any real)
   * @returns δ in [0, 1]
   */
  deltaForEpsilon(epsilon: number): number {
    let d = this.infMass;
    for (let i = this.masses.length - 1; i >= 0; i--) {
      const l = (this.offset + i) * this.h;
      if (l <= epsilon) break;
      d += this.masses[i]! * -Math.expm1(epsilon - l);
    }
    return Math.min(1, d);
  }

  /**
   * Smallest ε ≥ 0 with δ(ε) ≤ the target.
   * @param delta - target δ in (0, 1)
   * @returns ε (+∞ when the infinite-loss mass alone exceeds δ)
   * @throws RangeError when δ is outside (0, 1)
   */
  epsilonForDelta(delta: number): number {
    if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) throw new RangeError(`epsilonForDelta: delta must be in (0, 1), got ${String(delta)}`);
    if (this.infMass >= delta) return Infinity;
    const h = this.h;
    const eh = Math.exp(-h);
    // Walking down from the top: A = Σ_{j≥i} m_j, D = Σ_{j≥i} m_j e^{ε_{i-1} − ε_j};
    // on [ε_{i-1}, ε_i], δ(ε) = A + inf − e^{ε − ε_{i-1}}·D.
    let A = 0;
    let D = 0;
    for (let i = this.masses.length - 1; i >= 0; i--) {
      A += this.masses[i]!;
      D = eh * (this.masses[i]! + D);
      const atLeft = A + this.infMass - D; // δ(ε_{i-1})
      if (atLeft >= delta || i === 0) {
        if (D <= 0) return Math.max(0, (this.offset + i) * h);
        const left = (this.offset + i - 1) * h;
        const eps = left + Math.log((A + this.infMass - delta) / D);
        return Math.max(0, Number.isNaN(eps) ? -Infinity : eps);
      }
    }
    return 0;
  }

  /**
   * PLD of running this mechanism and then `other` (independent composition).
   * @param other - PLD on the same grid spacing
   * @returns the composed PLD (pessimistically truncated)
   * @throws RangeError when the grid spacings differ
   */
  compose(other: PrivacyLossDistribution): PrivacyLossDistribution {
    if (!(other instanceof PrivacyLossDistribution)) throw new TypeError('compose: expected a PrivacyLossDistribution');
    if (other.h !== this.h) throw new RangeError(`compose: grid spacings differ (${this.h} vs ${other.h}); build both PLDs with the same h`);
    const conv = convolve(this.masses, other.masses);
    const inf = this.infMass + other.infMass - this.infMass * other.infMass;
    return PrivacyLossDistribution.#clean(this.h, this.offset + other.offset, conv, inf);
  }

  /**
   * This mechanism composed with itself `count` times (repeated squaring).
   * @param count - integer ≥ 1
   * @returns the composed PLD
   * @throws RangeError when count is not an integer ≥ 1
   */
  selfCompose(count: number): PrivacyLossDistribution {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`selfCompose: count must be an integer >= 1, got ${String(count)}`);
    let result: PrivacyLossDistribution | null = null;
    let base: PrivacyLossDistribution = this;
    let k = count;
    for (;;) {
      if (k & 1) result = result === null ? base : result.compose(base);
      k = Math.floor(k / 2);
      if (k === 0) break;
      base = base.compose(base);
    }
    return result!;
  }

  /** Round-off clean-up and pessimistic tail truncation after a convolution. */
  static #clean(h: number, offset: number, values: Float64Array, infMass: number): PrivacyLossDistribution {
    let max = 0;
    for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
    const floor = max * 1e-15;
    let removed = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < 0) values[i] = 0;
      else if (v < floor) {
        removed += v;
        values[i] = 0;
      }
    }
    return new PrivacyLossDistribution(h, offset, values, Math.min(1, infMass + removed)).#trim();
  }

  /** Move ≤ TAIL_MASS of the lower tail up into the first kept bin and ≤ TAIL_MASS of the upper tail to +∞. */
  #trim(): PrivacyLossDistribution {
    const m = this.masses;
    let lo = 0;
    let cumLo = 0;
    while (lo < m.length - 1 && cumLo + m[lo]! <= TAIL_MASS) cumLo += m[lo++]!;
    let hi = m.length - 1;
    let cumHi = 0;
    while (hi > lo && cumHi + m[hi]! <= TAIL_MASS) cumHi += m[hi--]!;
    if (lo === 0 && hi === m.length - 1) return this;
    const out = m.slice(lo, hi + 1);
    out[0] = out[0]! + cumLo;
    return new PrivacyLossDistribution(this.h, this.offset + lo, out, Math.min(1, this.infMass + cumHi));
  }
}

/** CDFs of the privacy loss L under P and Q at ε: F = P(L ≤ ε), G = P(L > ε), each accurate in its own tail. */
interface LossCdf {
  fP: number;
  gP: number;
  fQ: number;
  gQ: number;
}

/** Remove direction: P = (1−q)N(0,σ²) + qN(1,σ²), Q = N(0,σ²); L ≤ ε ⟺ x ≤ x*(ε). */
function lossCdfRemove(q: number, sigma: number, eps: number): LossCdf {
  const c = Math.expm1(eps) + q; // = q·e^{(2x*−1)/(2σ²)}
  if (c <= 0) return { fP: 0, gP: 1, fQ: 0, gQ: 1 }; // every loss exceeds ε
  const xs = sigma * sigma * (Math.log(c) - Math.log(q)) + 0.5;
  const t0 = xs / sigma;
  const t1 = (xs - 1) / sigma;
  return {
    fP: (1 - q) * normalCdf(t0) + q * normalCdf(t1),
    gP: (1 - q) * normalSf(t0) + q * normalSf(t1),
    fQ: normalCdf(t0),
    gQ: normalSf(t0),
  };
}

/** Add direction: P = N(0,σ²), Q = (1−q)N(0,σ²) + qN(1,σ²); L ≤ ε ⟺ x ≥ y(ε). */
function lossCdfAdd(q: number, sigma: number, eps: number): LossCdf {
  const c = Math.expm1(-eps) + q;
  if (c <= 0) return { fP: 1, gP: 0, fQ: 1, gQ: 0 }; // the loss never exceeds −log(1−q)
  const y = sigma * sigma * (Math.log(c) - Math.log(q)) + 0.5;
  const t0 = y / sigma;
  const t1 = (y - 1) / sigma;
  return {
    fP: normalSf(t0),
    gP: normalCdf(t0),
    fQ: (1 - q) * normalSf(t0) + q * normalSf(t1),
    gQ: (1 - q) * normalCdf(t0) + q * normalCdf(t1),
  };
}

/** Linear convolution; direct for small inputs, zero-padded FFT otherwise. */
function convolve(a: Float64Array, b: Float64Array): Float64Array {
  const n = a.length + b.length - 1;
  if (a.length * b.length <= 1 << 15) {
    const out = new Float64Array(n);
    for (let i = 0; i < a.length; i++) {
      const ai = a[i]!;
      if (ai === 0) continue;
      for (let j = 0; j < b.length; j++) out[i + j] = out[i + j]! + ai * b[j]!;
    }
    return out;
  }
  let size = 1;
  while (size < n) size *= 2;
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  re.set(a);
  if (a === b) {
    fft(re, im, false);
    for (let i = 0; i < size; i++) {
      const x = re[i]!;
      const y = im[i]!;
      re[i] = x * x - y * y;
      im[i] = 2 * x * y;
    }
  } else {
    // Pack b as the imaginary part: FFT(a + ib) = A + iB, then recover A·B.
    im.set(b);
    fft(re, im, false);
    const pr = new Float64Array(size);
    const pi = new Float64Array(size);
    for (let k = 0; k < size; k++) {
      const k2 = (size - k) & (size - 1);
      const xr = re[k]!;
      const xi = im[k]!;
      const yr = re[k2]!;
      const yi = -im[k2]!; // conj(Z[N-k])
      const ar = (xr + yr) / 2;
      const ai = (xi + yi) / 2; // A = (Z + conj Z[N-k]) / 2
      const br = (xi - yi) / 2;
      const bi = -(xr - yr) / 2; // B = (Z − conj Z[N-k]) / 2i
      pr[k] = ar * br - ai * bi;
      pi[k] = ar * bi + ai * br;
    }
    re.set(pr);
    im.set(pi);
  }
  fft(re, im, true);
  return re.subarray(0, n).slice();
}

/** In-place iterative radix-2 FFT (inverse includes the 1/N scaling). */
function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  // Twiddles computed directly (not by recurrence) to keep round-off at ~1 ulp.
  const half = n >> 1;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const sign = inverse ? 1 : -1;
  for (let k = 0; k < half; k++) {
    const ang = (2 * Math.PI * k) / n;
    cos[k] = Math.cos(ang);
    sin[k] = sign * Math.sin(ang);
  }
  for (let len = 2; len <= n; len <<= 1) {
    const step = n / len;
    const h = len >> 1;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < h; k++) {
        const wr = cos[k * step]!;
        const wi = sin[k * step]!;
        const a = i + k;
        const b = a + h;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i] = re[i]! / n;
      im[i] = im[i]! / n;
    }
  }
}

/** Options for {@link computePldEpsilon}. */
export interface PldParams {
  /** sampling probability per step, in (0, 1] */
  q: number;
  /** noise multiplier > 0 */
  sigma: number;
  /** number of steps, integer ≥ 1 */
  steps: number;
  /** target δ in (0, 1) */
  delta: number;
  /** loss grid spacing; default {@link defaultPldDiscretization} */
  discretization?: number;
}

/**
 * Default grid spacing: 1/16 of a cheap proxy for the standard deviation of
 * one step's privacy loss, min(q·sqrt(e^{1/σ²} − 1), 1/σ), so the composed
 * distribution (spread ~ sqrt(steps) of that) is resolved with ~16·sqrt(steps)
 * bins per standard deviation whatever q and σ are. Against 64 bins per σ the
 * ε it gives is within 0.1% (measured on the test grid), and it is always the
 * larger (coarser pessimistic grids only add loss).
 * @param q - sampling probability in (0, 1]
 * @param sigma - noise multiplier > 0
 * @returns h in nats
 */
export function defaultPldDiscretization(q: number, sigma: number): number {
  const s = Math.min(q * Math.sqrt(Math.expm1(1 / (sigma * sigma))), 1 / sigma);
  return s / 16;
}

/**
 * ε of `steps` steps of the Poisson-subsampled Gaussian mechanism by PLD
 * accounting (pessimistic: an upper bound on the tight ε).
 * @param params - q, sigma, steps, delta and optional grid spacing
 * @returns ε (max over the add and remove directions) and the spacing used
 * @throws RangeError on arguments outside their domain
 * @example
 * computePldEpsilon({ q: 0.01, sigma: 1, steps: 1000, delta: 1e-5 }).epsilon;
 */
export function computePldEpsilon(params: PldParams): { epsilon: number; discretization: number } {
  if (params === null || typeof params !== 'object') throw new TypeError('computePldEpsilon: expected { q, sigma, steps, delta, discretization? }');
  const { q, sigma, steps, delta } = params;
  if (!Number.isSafeInteger(steps) || steps < 1) throw new RangeError(`computePldEpsilon: steps must be an integer >= 1, got ${String(steps)}`);
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) throw new RangeError(`computePldEpsilon: delta must be in (0, 1), got ${String(delta)}`);
  const h = params.discretization ?? defaultPldDiscretization(q, sigma);
  let epsilon = 0;
  for (const direction of ['remove', 'add'] as const) {
    const pld = PrivacyLossDistribution.subsampledGaussian(q, sigma, direction, h).selfCompose(steps);
    epsilon = Math.max(epsilon, pld.epsilonForDelta(delta));
  }
  return { epsilon, discretization: h };
}
