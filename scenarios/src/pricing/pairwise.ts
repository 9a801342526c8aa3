/**
 * Fixed effects without a cell mean: the two-stage DP release on pairwise
 * differences inside each (product, fixed-effect level) cell (issue 11,
 * `--dp partner`, two stages with `--fixed-effects`).
 *
 * Why. The within transform demeans a row by its cell's mean, so one row
 * moves every other row of its cell: with clipping after demeaning that
 * coupling triples the record-level sensitivity (`recordSensitivity`,
 * `residualSensitivity`: 3R² and 3√(w²R_x⁴ + R_x²)) and holds only for rows
 * within R of their cell mean. The within scatter is also a sum over pairs:
 * Σ_i (z_i − z̄)(z_i − z̄)ᵀ = (1/n) Σ_{i<j} (z_i − z_j)(z_i − z_j)ᵀ, and a
 * difference of two rows of a cell has no fixed effect in it. So each partner
 * clips the DIFFERENCE of every pair of rows of a cell onto a ball and sums
 * the clipped outer products with the public weight 1/T, T the public bound
 * on rows per cell (`cellCap`: in a panel, its number of periods). A row then
 * enters only its own pairs: adding it to a cell of m ≤ T − 1 rows adds m
 * clipped terms of norm ≤ R² each, times 1/T — the change is < R², with no
 * caveat about where the row lies (no mean is involved). This is the pairwise
 * difference idea of Honoré (1992, Econometrica 60, "Trimmed LAD and least
 * squares estimation of truncated and censored regression models with fixed
 * effects") used for a bounded-influence estimator. Weight 1/T instead of
 * 1/n_c weights a cell of n_c rows by n_c/T (a weighted fixed-effects
 * estimator; every cell of a complete panel has weight 1).
 *
 * Round 2 clips pairwise residual differences: ψ((y_i − y_j) − (x_i − x_j)β₀)
 * with c = k·√2·σ̂ (a difference of two residuals has scale √2σ). The
 * difference of two residuals of one cell is symmetric whenever the residuals
 * of the cell are exchangeable, so clipping it does not shift the root of the
 * score the way clipping skewed residuals does (brand 8's Huber bias, README).
 *
 * The record domain: panels with at most T rows per cell (one per period).
 * A partner refuses a cell with more than T rows (before releasing anything),
 * so the bound is over neighbouring panels in that domain.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { cellKey, type DemandRow, type ProductStats } from './demand.ts';
import type { ResidualStats } from './two-stage.ts';

/** Rows grouped by (product, level) cell; refuses a cell beyond the public cap. */
export function pairCells(rows: readonly DemandRow[], cellCap: number): Map<string, DemandRow[]> {
  if (!(Number.isSafeInteger(cellCap) && cellCap >= 2)) throw new FedmartError('CONFIG_ERROR', `pricing: the DP cell cap must be an integer >= 2 (rows per product and fixed-effect level), got ${cellCap}`);
  const cells = new Map<string, DemandRow[]>();
  for (const r of rows) {
    const k = cellKey(r);
    const c = cells.get(k) ?? cells.set(k, []).get(k)!;
    c.push(r);
    if (c.length > cellCap) throw new FedmartError('DATA_ERROR', `pricing: product "${r.product}" at fixed-effect level "${r.level}" has more than ${cellCap} rows, the public cap per cell of the DP release (one row per period); aggregate duplicate rows or raise --dp-cell-cap`);
  }
  return cells;
}

/**
 * Round 1 on pairs: per product, S = (1/T) Σ_cells Σ_{i<j} φ(z_i − z_j), φ(d) = d̂d̂ᵀ with d̂ the difference of
 * z = (x/scale, y/scale_y) scaled onto the ball of radius R; returned as ProductStats (XᵀX, Xᵀy, yᵀy are blocks of S),
 * n = rows, levels = cells, Σy = Σy² = 0 (not released).
 */
export function pairStats(rows: readonly DemandRow[], p: number, o: { radius: number; scale: readonly number[]; cellCap: number }): Map<string, ProductStats> {
  const out = new Map<string, ProductStats>();
  const q = p + 1;
  const d = new Float64Array(q);
  const kappa = 1 / o.cellCap;
  for (const rs of pairCells(rows, o.cellCap).values()) {
    const product = rs[0]!.product;
    let s = out.get(product);
    if (!s) out.set(product, (s = { xtx: new Float64Array(p * p), xty: new Float64Array(p), yty: 0, n: 0, levels: 0, sumY: 0, sumY2: 0 }));
    const m = new Float64Array(q * q);
    for (let i = 0; i < rs.length; i++) {
      const a = rs[i]!;
      for (let j = i + 1; j < rs.length; j++) {
        const b = rs[j]!;
        let sq = 0;
        for (let t = 0; t < p; t++) { d[t] = (a.x[t]! - b.x[t]!) / o.scale[t]!; sq += d[t]! ** 2; }
        d[p] = (a.y - b.y) / o.scale[p]!;
        sq += d[p]! ** 2;
        const f2 = sq > o.radius * o.radius ? (o.radius * o.radius) / sq : 1;
        for (let u = 0; u < q; u++) for (let v = u; v < q; v++) m[u * q + v]! += f2 * d[u]! * d[v]!;
      }
    }
    for (let u = 0; u < p; u++) {
      for (let v = u; v < p; v++) s.xtx[u * p + v]! += kappa * m[u * q + v]!;
      s.xty[u]! += kappa * m[u * q + p]!;
    }
    s.yty += kappa * m[p * q + p]!;
    s.n += rs.length;
    s.levels++;
  }
  for (const s of out.values()) for (let a = 0; a < p; a++) for (let b = 0; b < a; b++) s.xtx[a * p + b] = s.xtx[b * p + a]!;
  return out;
}

/**
 * Record-level L2 sensitivity of round 1 on pairs (released: upper(S), n, levels). Adding a row to a cell of m ≤ T − 1
 * rows adds (1/T)·Σ_j φ(z* − z_j): m terms of Frobenius norm ≤ R² (‖d̂d̂ᵀ‖_F = ‖d̂‖² ≤ R²; the upper triangle is no
 * larger), so < R²; n moves by 1 and levels by at most 1. Δ₂ = √(R⁴ + 2), for every row of a panel in the domain.
 */
export function pairSensitivity(radius: number): number {
  return Math.sqrt(radius ** 4 + 2);
}

/**
 * Round 2 on pairs: per product, A = (1/T) Σ_{i<j} x̂x̂ᵀ and b = (1/T) Σ_{i<j} x̂·ψ(r)/c, with x̂ the pair's
 * difference (x_i − x_j)/scale scaled onto the R_x-ball and r = (y_i − y_j) − (x_i − x_j)·β₀ (before the projection).
 */
export function pairResidualStats(rows: readonly DemandRow[], p: number, o: { beta0: ReadonlyMap<string, readonly number[]>; residualClip: ReadonlyMap<string, number>; scale: readonly number[]; xRadius: number; cellCap: number }): Map<string, ResidualStats> {
  const out = new Map<string, ResidualStats>();
  const d = new Float64Array(p);
  const kappa = 1 / o.cellCap;
  for (const rs of pairCells(rows, o.cellCap).values()) {
    const product = rs[0]!.product;
    const beta = o.beta0.get(product);
    const c = o.residualClip.get(product);
    if (!beta || c === undefined) continue;
    if (!(c > 0)) throw new FedmartError('UNPROCESSABLE', `pricing: the residual clip of product "${product}" is ${c}; it must be > 0`);
    let s = out.get(product);
    if (!s) out.set(product, (s = { xtx: new Float64Array(p * p), xpsi: new Float64Array(p), n: 0 }));
    for (let i = 0; i < rs.length; i++) {
      const a = rs[i]!;
      for (let j = i + 1; j < rs.length; j++) {
        const b = rs[j]!;
        let sq = 0;
        let fit = 0;
        for (let t = 0; t < p; t++) {
          const dx = a.x[t]! - b.x[t]!;
          fit += dx * beta[t]!;
          d[t] = dx / o.scale[t]!;
          sq += d[t]! ** 2;
        }
        const f = sq > o.xRadius ** 2 ? o.xRadius / Math.sqrt(sq) : 1;
        const psi = (Math.max(-c, Math.min(c, a.y - b.y - fit)) / c) * kappa * f;
        for (let u = 0; u < p; u++) {
          s.xpsi[u]! += d[u]! * psi;
          for (let v = 0; v < p; v++) s.xtx[u * p + v]! += kappa * f * f * d[u]! * d[v]!;
        }
      }
    }
    s.n += rs.length;
  }
  return out;
}

/**
 * Record-level L2 sensitivity of round 2 on pairs (released [w·upper(A), b]): a row adds m ≤ T − 1 pair terms times
 * 1/T, each ‖(w·upper(x̂x̂ᵀ), x̂ψ̂)‖ ≤ √(w²R_x⁴ + R_x²) (|ψ̂| ≤ 1), so Δ₂ < √(w²R_x⁴ + R_x²) for fixed β₀, c — a third of
 * the within-demeaned `residualSensitivity`, and without its caveat.
 */
export function pairResidualSensitivity(xRadius: number, xtxWeight: number): number {
  return Math.sqrt(xtxWeight ** 2 * xRadius ** 4 + xRadius ** 2);
}
