/**
 * A two-stage DP demand estimate that clips what the estimator is
 * sensitive to (residuals), not the raw rows — evaluated for issue 11's
 * `--dp partner --epsilon 4` criterion (README, "two-stage").
 *
 * Round 1 is the one-stage release of `task.ts` (rows (x̃, ỹ) divided by
 * public units and scaled onto the L2 ball of radius R): it gives a coarse
 * β₀ and a residual scale σ̂ by post-processing. Round 2: each partner
 * divides x̃ by the same public units and scales it onto the L2 ball of
 * radius R_x (x only), forms the residual r = ỹ − x̃·β₀ (x̃ before the projection), clips it to
 * ±c with c = k·σ̂ (Huber's ψ; Huber 1964 — with k = 1.345 this is his
 * 95 %-efficient M-estimator, a larger k clips only tail residuals), and
 * releases [w·upper(x̂x̂ᵀ), x̂·ψ(r)/c] with Gaussian noise. The coordinator
 * solves Δ = (A + E)⁻¹(b + e) and β = β₀ + Δ (one Newton step of the
 * Huber score equation Σ x_c ψ(ỹ − x̃β) = 0 with the least-squares Hessian).
 * Because the spikes of log units come with price cuts and deals, x̃β₀
 * explains them: the residuals are small and roughly symmetric, so
 * clipping them biases the slope far less than clipping ỹ (the idea of
 * robust/Huber-loss DP regression, e.g. Avella-Medina, "Privacy-preserving
 * parametric inference", JASA 2021; clipping in the direction the
 * estimator is sensitive to, as in AdaSSP, Wang 2018, and the DP simple
 * linear regression study of Alabi, McMillan, Sarathy, Smith & Vadhan,
 * 2022, whose point is that the choice of bounds, not the noise alone,
 * drives the error on small panels).
 *
 * Privacy: two Gaussian releases, composed in RDP (Mironov 2017): at
 * noise multiplier σ each, the ledger's charge for q = 1, steps = 2. The
 * record is one row. β₀ and c are post-processing of round 1, so round 2's
 * sensitivity is computed for fixed (β₀, c). See
 * {@link residualSensitivity} for the bound and its caveat.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { cellKey, cellMeans, solveNormal, type CellMean, type DemandRow } from './demand.ts';
import { pairResidualSensitivity } from './pairwise.ts';

/** Round-2 settings, all public or post-processing of round 1. */
export interface ResidualClip {
  /** β₀ per product (data units, regressor order). */
  beta0: ReadonlyMap<string, readonly number[]>;
  /** Residual clip c per product (log units): ψ(r) = max(−c, min(c, r)). */
  residualClip: ReadonlyMap<string, number>;
  /** Public unit of each regressor (the same as round 1's `RowClip.scale` without y). */
  scale: readonly number[];
  /** R_x: the bound on ‖x̃/scale‖₂; rows beyond are scaled onto it. */
  xRadius: number;
  /** w: weight of XᵀX in the release (the budget share of XᵀX against Xᵀψ inside round 2). */
  xtxWeight: number;
}

/** One product's noiseless round-2 statistics, in released units: A = Σ x̂x̂ᵀ (full p×p, before the weight), b = Σ x̂·ψ(r)/c. */
export interface ResidualStats {
  xtx: Float64Array;
  xpsi: Float64Array;
  n: number;
}

/**
 * Round-2 statistics per product of some rows (one partner's, or all):
 * demeaned inside (product, level) cells as in `productStats`.
 * @param rows - demand rows; every fixed-effect cell they touch must be complete in them
 * @param p - regressors per row
 * @param fixedEffects - demean within cells
 * @param o - β₀, c, units, R_x
 * @returns product → statistics (products without β₀ are skipped)
 */
export function residualStats(rows: readonly DemandRow[], p: number, fixedEffects: boolean, o: ResidualClip): Map<string, ResidualStats> {
  const cells = fixedEffects ? cellMeans(rows, p) : new Map<string, CellMean>();
  const key = cellKey;
  const out = new Map<string, ResidualStats>();
  const xh = new Float64Array(p);
  for (const r of rows) {
    const beta = o.beta0.get(r.product);
    const c = o.residualClip.get(r.product);
    if (!beta || c === undefined) continue;
    if (!(c > 0)) throw new FedmartError('UNPROCESSABLE', `pricing: the residual clip of product "${r.product}" is ${c}; it must be > 0`);
    let s = out.get(r.product);
    if (!s) out.set(r.product, (s = { xtx: new Float64Array(p * p), xpsi: new Float64Array(p), n: 0 }));
    const cell = fixedEffects ? cells.get(key(r))! : null;
    let sq = 0;
    // The residual uses the demeaned x̃ before projection: it is linear in the row, so a neighbour's pull on a cell
    // mean moves every other residual by exactly u_r/(m+1) (residualSensitivity).
    let fit = 0;
    for (let j = 0; j < p; j++) {
      const xt = r.x[j]! - (cell ? cell.x[j]! : 0);
      fit += xt * beta[j]!;
      xh[j] = xt / o.scale[j]!;
      sq += xh[j]! ** 2;
    }
    const f = sq > o.xRadius ** 2 ? o.xRadius / Math.sqrt(sq) : 1;
    for (let j = 0; j < p; j++) xh[j]! *= f;
    const res = r.y - (cell ? cell.y : 0) - fit;
    const psi = Math.max(-c, Math.min(c, res)) / c;
    for (let a = 0; a < p; a++) {
      s.xpsi[a]! += xh[a]! * psi;
      for (let b = 0; b < p; b++) s.xtx[a * p + b]! += xh[a]! * xh[b]!;
    }
    s.n++;
  }
  return out;
}

/**
 * Record-level L2 sensitivity of round 2's released vector
 * [w·upper(x̂x̂ᵀ), x̂·ψ̂] (ψ̂ = ψ(r)/c ∈ [−1, 1], ‖x̂‖ ≤ R_x), for fixed β₀, c.
 * - The row's own term: ‖(w·upper(x̂x̂ᵀ), x̂ψ̂)‖ ≤ √(w²R_x⁴ + R_x²).
 * - Fixed-effect coupling (as in `recordSensitivity`): adding a row to a
 *   cell of m rows moves every other row's demeaned x by s_x = u_x/(m+1) and
 *   its demeaned residual by s_r = u_r/(m+1) (u: the row minus the cell
 *   mean; the residual ỹ − x̃β₀ is linear in the row for fixed β₀, and the
 *   projection of x̃ and ψ are non-expansive). Per other row the XᵀX part
 *   moves by ≤ 2wR_x‖s_x‖ and the Xψ part by ≤ ‖s_x‖ + R_x|s_r|/c; the total
 *   change of each block is at most the sum over the m rows, so with
 *   ‖u_x‖ ≤ R_x (units) and |u_r| ≤ c the blocks move by < 2wR_x² and < 2R_x:
 *   the coupling is < 2√(w²R_x⁴ + R_x²).
 * So Δ = 3√(w²R_x⁴ + R_x²); without fixed effects Δ = √(w²R_x⁴ + R_x²) (n is
 * not released: round 1 carries it). Caveat, as for round 1: the coupling
 * bound holds for a row whose x̃ lies within R_x (in the public units) of its
 * cell mean and whose residual lies within c of the cell's mean residual.
 * @param xRadius - R_x
 * @param xtxWeight - w
 * @param fixedEffects - whether rows are demeaned within cells
 */
export function residualSensitivity(xRadius: number, xtxWeight: number, fixedEffects: boolean): number {
  const own = Math.sqrt(xtxWeight ** 2 * xRadius ** 4 + xRadius ** 2);
  return fixedEffects ? 3 * own : own;
}

/** The released vector of one product's round-2 statistics: w·upper(A), then b. */
export function flattenResidualStats(s: ResidualStats, p: number, xtxWeight: number): Float64Array {
  const v = new Float64Array((p * (p + 1)) / 2 + p);
  let i = 0;
  for (let a = 0; a < p; a++) for (let b = a; b < p; b++) v[i++] = xtxWeight * s.xtx[a * p + b]!;
  for (let a = 0; a < p; a++) v[i++] = s.xpsi[a]!;
  return v;
}

/**
 * Solve noisy normal equations A x = b with a ridge of the noise scale
 * (Sheffet 2017; Wang 2018, AdaSSP): none when A is positive definite, else
 * λ = s·2√p doubled until Cholesky succeeds (post-processing).
 * @param xtx - p×p, full, symmetric
 * @param rhs - p
 * @param noiseStd - per-entry noise std s of A
 * @returns x, or null when A stays singular
 */
export function ridgeSolve(xtx: ArrayLike<number>, rhs: ArrayLike<number>, p: number, noiseStd: number): Float64Array | null {
  let lambda = 0;
  for (let k = 0; k < 40; k++) {
    const a = Float64Array.from(xtx, (v, i) => v + (Math.floor(i / p) === i % p ? lambda : 0));
    try {
      return solveNormal(a, rhs, p, 'the noisy statistics').x;
    } catch {
      lambda = lambda === 0 ? Math.max(noiseStd, 1e-9) * 2 * Math.sqrt(p) : lambda * 2;
    }
  }
  return null;
}

/**
 * The coordinator's round-2 solve: β = β₀ + D⁻¹(A + E)⁻¹(b + e)·c, D = diag(scale).
 * @param released - the summed (noisy) released vector of one product
 * @param beta0 - round 1's β₀ (data units)
 * @param c - the residual clip
 * @param noiseStd - per-coordinate noise std of the sum (for the ridge)
 * @returns β in data units, or null when the noisy XᵀX stays singular
 */
export function twoStageSolve(released: ArrayLike<number>, p: number, o: { beta0: readonly number[]; residualClip: number; scale: readonly number[]; xtxWeight: number; noiseStd: number }): number[] | null {
  const a = new Float64Array(p * p);
  let i = 0;
  for (let r = 0; r < p; r++) for (let s = r; s < p; s++) a[r * p + s] = a[s * p + r] = released[i++]! / o.xtxWeight;
  const b = Array.from({ length: p }, (_, j) => released[i + j]!);
  const d = ridgeSolve(a, b, p, o.noiseStd / o.xtxWeight);
  return d ? o.beta0.map((v, j) => v + (d[j]! * o.residualClip) / o.scale[j]!) : null;
}

/** What round 2 of one product uses, derived from round 1's committed (noisy) sum alone: post-processing, no privacy cost. */
export interface RoundTwoPlan {
  /** β₀ in data units. */
  beta0: number[];
  /** Residual clip c = k·σ̂. */
  residualClip: number;
  /** w, chosen by {@link xtxWeightRule}. */
  xtxWeight: number;
  /** Round 2's record-level sensitivity at that w ({@link residualSensitivity}). */
  sensitivity: number;
  /** The predicted size of the Newton step ‖d‖ the rule used (released units). */
  stepNorm: number;
}

/**
 * The weight w of XᵀX inside round 2, from a quantity estimated privately inside the mechanism (never from the
 * answer). Round 2 solves d = (A + E/w)⁻¹(b + e) with E, e of the same std sΔ(w), Δ(w)² ∝ w²R_x⁴ + R_x²
 * ({@link residualSensitivity}). To first order the error of d is A⁻¹(e − E d/w): its variance is ∝
 * (w²R_x⁴ + R_x²)(1 + ‖d‖²/w²), minimised at w⁴ = ‖d‖²/R_x², i.e. w = √(‖d‖/R_x). ‖d‖ is not known; its expected
 * size under round 1's noise is (uy/c)·s₁·√((1 + ‖β̂ₛ‖²)·tr(A₁⁻²)) (delta method for β̂ₛ = A₁⁻¹b₁ with symmetric noise
 * of std s₁ on A₁ and b₁; uy/c turns round 1's units into round 2's), computed from round 1's noisy release and its
 * public noise std. Clamped to [0.05, 1] (w ≤ 1 keeps the wire scale {@link TwoStageSpec}.dpScale2 valid).
 */
export function xtxWeightRule(stepNorm: number, xRadius: number): number {
  return Math.min(1, Math.max(0.05, Math.sqrt(stepNorm / xRadius)));
}

/**
 * Round 2's plan for one product from round 1's summed noisy statistics (released units: rows divided by `scale` and
 * projected onto the R-ball). Deterministic, so every partner and the coordinator derive the same plan from the same
 * committed weights.
 * @param st - round 1's summed statistics (xtx full p×p, xty, yty, n)
 * @param scale - public units of the regressors and, last, of log units
 * @param noiseStd1 - per-coordinate noise std of round 1's sum
 * @param pairs - round 1 and 2 are on pairwise differences (`pairwise.ts`): c = k·√2·σ̂, Δ = `pairResidualSensitivity`
 * @returns the plan, or null when round 1's noisy normal equations stay singular
 */
export function roundTwoPlan(st: { xtx: ArrayLike<number>; xty: ArrayLike<number>; yty: number; n: number }, p: number, o: { scale: readonly number[]; noiseStd1: number; residualK: number; xRadius: number; fixedEffects: boolean; pairs?: boolean | undefined }): RoundTwoPlan | null {
  const g = ridgeSolve(st.xtx, st.xty, p, o.noiseStd1);
  if (!g) return null;
  const uy = o.scale[p]!;
  let ssr = st.yty;
  for (let a = 0; a < p; a++) {
    ssr -= 2 * g[a]! * st.xty[a]!;
    for (let b = 0; b < p; b++) ssr += g[a]! * g[b]! * st.xtx[a * p + b]!;
  }
  const sigmaHat = uy * Math.sqrt(Math.max(ssr, 1e-12) / Math.max(st.n, p + 1));
  // On pairs (pairwise.ts) the clipped quantity is a difference of two residuals, of scale √2·σ̂.
  const c = o.residualK * sigmaHat * (o.pairs ? Math.SQRT2 : 1);
  // tr(A₁⁻²) = Σ_j ‖A₁⁻¹e_j‖² (with the ridge the solve used, when one was needed)
  let tr = 0;
  for (let j = 0; j < p; j++) {
    const e = new Float64Array(p);
    e[j] = 1;
    const col = ridgeSolve(st.xtx, e, p, o.noiseStd1);
    if (col) for (const v of col) tr += v * v;
  }
  const bNorm2 = g.reduce((t, v) => t + v * v, 0);
  const stepNorm = (uy / c) * o.noiseStd1 * Math.sqrt((1 + bNorm2) * tr);
  const w = xtxWeightRule(stepNorm, o.xRadius);
  return { beta0: Array.from(g, (x, j) => (x * uy) / o.scale[j]!), residualClip: c, xtxWeight: w, sensitivity: o.pairs ? pairResidualSensitivity(o.xRadius, w) : residualSensitivity(o.xRadius, w, o.fixedEffects), stepNorm };
}
