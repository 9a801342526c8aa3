/**
 * L2-regularised logistic regression fitted exactly (to convergence) by
 * Newton's method / iteratively reweighted least squares (IRLS; McCullagh &
 * Nelder 1989, "Generalized Linear Models", §4.4; Hastie, Tibshirani &
 * Friedman 2009, ESL §4.4.1), in float64.
 *
 * It is the `reference` arm of `fedmart simulate`: a well-regularised linear
 * model that a data scientist would fit first. The gradient-trained arms are
 * checked against it, so it must not depend on learning rates or epochs:
 * Newton steps with a backtracking line search on the penalised objective
 * converge quadratically for any λ > 0 (the objective is strictly convex).
 *
 * Objective (mean log loss plus a ridge penalty on the weights, not on the
 * intercept b):
 *
 *   L(w, b) = (1/n) Σᵢ [log(1 + e^{zᵢ}) − yᵢ zᵢ] + (λ/2)‖w‖²,   zᵢ = xᵢ·w + b
 *
 * Rows with many zero entries (one-hot encodings) are accumulated sparsely:
 * the Hessian costs Σᵢ nnz(xᵢ)² instead of n·d².
 */
import { FedmartError } from '@fedmart/shared/errors';

/** Result of {@link fitLogisticIrls}. */
export interface LogisticFit {
  /** Weights, length d. */
  w: Float64Array;
  /** Intercept. */
  b: number;
  /** Newton iterations taken. */
  iterations: number;
  /** True when the Newton decrement fell below the tolerance. */
  converged: boolean;
  /** Penalised objective at the solution. */
  objective: number;
}

/** A labelled design matrix: `x` row-major n×d, labels 0/1. */
export interface LogisticData {
  x: Float32Array;
  y: Float32Array;
  n: number;
  d: number;
}

/** Per-row lists of non-zero columns (computed once, reused across Newton steps and λ values). */
export interface SparseRows {
  /** Row i's non-zero columns are `cols[start[i] .. start[i+1])`. */
  start: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
}

/**
 * Index the non-zero entries of each row.
 * @param data - the design matrix
 * @returns CSR-style row lists
 */
export function sparseRows(data: LogisticData): SparseRows {
  const { x, n, d } = data;
  let nnz = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) nnz++;
  const start = new Int32Array(n + 1);
  const cols = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  let k = 0;
  for (let i = 0; i < n; i++) {
    start[i] = k;
    const off = i * d;
    for (let j = 0; j < d; j++) {
      const v = x[off + j]!;
      if (v !== 0) {
        cols[k] = j;
        vals[k++] = v;
      }
    }
  }
  start[n] = k;
  return { start, cols, vals };
}

const softplus = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));
const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

function logits(rows: SparseRows, n: number, w: Float64Array, b: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let z = b;
    for (let k = rows.start[i]!; k < rows.start[i + 1]!; k++) z += rows.vals[k]! * w[rows.cols[k]!]!;
    out[i] = z;
  }
}

function objective(z: Float64Array, y: Float32Array, n: number, w: Float64Array, lambda: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += softplus(z[i]!) - y[i]! * z[i]!;
  let r = 0;
  for (let j = 0; j < w.length; j++) r += w[j]! * w[j]!;
  return s / n + (lambda / 2) * r;
}

/**
 * Solve A·x = g in place for a symmetric positive-definite A (m×m, row-major,
 * upper triangle filled) by Cholesky factorisation.
 * @returns false when A is not numerically positive definite
 */
function choleskySolve(a: Float64Array, m: number, g: Float64Array): boolean {
  // Mirror the upper triangle, then factor A = L·Lᵀ in the lower triangle.
  for (let i = 0; i < m; i++) for (let j = 0; j < i; j++) a[i * m + j] = a[j * m + i]!;
  for (let j = 0; j < m; j++) {
    let s = a[j * m + j]!;
    for (let k = 0; k < j; k++) s -= a[j * m + k]! * a[j * m + k]!;
    if (!(s > 0)) return false;
    const ljj = Math.sqrt(s);
    a[j * m + j] = ljj;
    for (let i = j + 1; i < m; i++) {
      let t = a[i * m + j]!;
      for (let k = 0; k < j; k++) t -= a[i * m + k]! * a[j * m + k]!;
      a[i * m + j] = t / ljj;
    }
  }
  for (let i = 0; i < m; i++) {
    let t = g[i]!;
    for (let k = 0; k < i; k++) t -= a[i * m + k]! * g[k]!;
    g[i] = t / a[i * m + i]!;
  }
  for (let i = m - 1; i >= 0; i--) {
    let t = g[i]!;
    for (let k = i + 1; k < m; k++) t -= a[k * m + i]! * g[k]!;
    g[i] = t / a[i * m + i]!;
  }
  return true;
}

/**
 * Fit L2 logistic regression by damped Newton / IRLS.
 *
 * @param data - design matrix and 0/1 labels
 * @param lambda - ridge strength λ > 0 on the mean-loss scale (intercept unpenalised)
 * @param opts - `init` warm start (e.g. the solution at a larger λ), `maxIter` (default 50),
 *   `tol` on half the Newton decrement (default 1e-16: Newton is quadratic, so this costs one or two extra steps), precomputed `rows`
 * @returns weights, intercept, iterations, convergence flag and objective
 * @throws FedmartError `DATA_ERROR` for empty data or labels other than 0/1
 * @throws RangeError if λ is not a finite positive number
 * @example
 * const fit = fitLogisticIrls({ x, y, n, d }, 1e-3);
 */
export function fitLogisticIrls(data: LogisticData, lambda: number, opts: { init?: { w: Float64Array; b: number }; maxIter?: number; tol?: number; rows?: SparseRows } = {}): LogisticFit {
  const { y, n, d } = data;
  if (!(typeof lambda === 'number' && Number.isFinite(lambda) && lambda > 0)) throw new RangeError(`fitLogisticIrls: lambda must be a finite number > 0, got ${String(lambda)}`);
  if (!(n >= 1) || data.x.length !== n * d || y.length !== n) throw new FedmartError('DATA_ERROR', `logistic regression needs n ≥ 1 rows of d = ${d} features with one label each; got x of ${data.x.length} values, ${y.length} labels, n = ${n}`);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0 && y[i] !== 1) throw new FedmartError('DATA_ERROR', `logistic regression labels must be 0 or 1, got ${y[i]} at row ${i}`);
    pos += y[i]!;
  }
  const rows = opts.rows ?? sparseRows(data);
  const m = d + 1; // weights then intercept
  const w = opts.init ? Float64Array.from(opts.init.w) : new Float64Array(d);
  // Start at the base rate's log-odds: the exact solution when w = 0.
  const rate = Math.min(Math.max(pos / n, 1e-6), 1 - 1e-6);
  let b = opts.init ? opts.init.b : Math.log(rate / (1 - rate));
  const z = new Float64Array(n);
  const zNew = new Float64Array(n);
  logits(rows, n, w, b, z);
  let obj = objective(z, y, n, w, lambda);
  const h = new Float64Array(m * m);
  const g = new Float64Array(m);
  const maxIter = opts.maxIter ?? 50;
  const tol = opts.tol ?? 1e-16;
  let it = 0;
  let converged = false;
  const wTry = new Float64Array(d);
  for (; it < maxIter; it++) {
    h.fill(0);
    g.fill(0);
    for (let i = 0; i < n; i++) {
      const p = sigmoid(z[i]!);
      const r = (p - y[i]!) / n;
      const s = Math.max(p * (1 - p), 1e-12) / n;
      const a0 = rows.start[i]!;
      const a1 = rows.start[i + 1]!;
      for (let ka = a0; ka < a1; ka++) {
        const ja = rows.cols[ka]!;
        const va = rows.vals[ka]!;
        g[ja] = g[ja]! + r * va;
        const sv = s * va;
        const base = ja * m;
        for (let kb = ka; kb < a1; kb++) h[base + rows.cols[kb]!] += sv * rows.vals[kb]!;
        h[base + d] += sv; // x_j × intercept
      }
      g[d] = g[d]! + r;
      h[d * m + d] += s;
    }
    for (let j = 0; j < d; j++) {
      g[j] = g[j]! + lambda * w[j]!;
      h[j * m + j] += lambda;
    }
    const grad = Float64Array.from(g);
    if (!choleskySolve(h, m, g)) throw new FedmartError('INTERNAL', `logistic regression: the Hessian is not positive definite at λ = ${lambda}; this should not happen for λ > 0`);
    // Newton decrement: gradᵀ H⁻¹ grad.
    let dec = 0;
    for (let j = 0; j < m; j++) dec += grad[j]! * g[j]!;
    if (dec / 2 < tol) {
      converged = true;
      break;
    }
    // Backtracking line search (Armijo, c = 1e-4): keeps Newton monotone when far from the optimum.
    let step = 1;
    for (;;) {
      for (let j = 0; j < d; j++) wTry[j] = w[j]! - step * g[j]!;
      const bTry = b - step * g[d]!;
      logits(rows, n, wTry, bTry, zNew);
      const objTry = objective(zNew, y, n, wTry, lambda);
      if (objTry <= obj - 1e-4 * step * dec || step < 1e-8) {
        w.set(wTry);
        b = bTry;
        z.set(zNew);
        obj = objTry;
        break;
      }
      step /= 2;
    }
  }
  return { w, b, iterations: it, converged, objective: obj };
}

/**
 * Predicted probabilities of a fitted model.
 * @param fit - weights and intercept
 * @param x - row-major features, n × fit.w.length
 * @param n - rows
 * @returns P(y = 1) per row
 */
export function predictLogistic(fit: Pick<LogisticFit, 'w' | 'b'>, x: Float32Array, n: number): Float32Array {
  const d = fit.w.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = fit.b;
    const off = i * d;
    for (let j = 0; j < d; j++) z += x[off + j]! * fit.w[j]!;
    out[i] = sigmoid(z);
  }
  return out;
}

/** Default λ path, largest first (warm starts run down the path). */
export const DEFAULT_LAMBDA_PATH: readonly number[] = Object.freeze([1, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]);
