/**
 * Log-log demand estimated by exact federated least squares (issue 11).
 *
 * Per product k: log q = β_k·log p + Σ γ·log p_cross + Σ δ·control + α_g + ε,
 * with α_g a fixed effect per level g of a grouping column (a store). By the
 * Frisch–Waugh–Lovell theorem the within estimator — demean y and every
 * regressor inside each (product, level) cell, then OLS without intercept —
 * equals the dummy-variable (LSDV) estimator. A cell's mean uses only that
 * cell's rows, so when every fixed-effect level lies wholly inside one
 * partner, each partner demeans its own cells and the pooled normal
 * equations are the SUM of the partners' XᵀX, Xᵀy (`partitionDemandRows`
 * enforces the nesting). Without fixed effects an intercept column is added
 * instead.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { Table } from '@fedmart/shared/data/table';

/** What to estimate, from which columns. */
export interface DemandSpec {
  /** Column of units sold (logged here), or… */
  quantity?: string | undefined;
  /** …a column already holding log units. */
  logQuantity?: string | undefined;
  /** Own price column (logged here). */
  price: string;
  /** Product column; absent: one product, named `all`. */
  product?: string | undefined;
  /** Controls entered as they are (deal, feature, display share). */
  controls: string[];
  /** Other prices entered in logs (cross-price elasticities). */
  crossPrices: string[];
  /** Grouping column of the fixed effects (a store); absent: an intercept. */
  fixedEffects?: string | undefined;
}

/** One parsed row. */
export interface DemandRow {
  product: string;
  /** Fixed-effect level ('' without fixed effects). */
  level: string;
  /** log units */
  y: number;
  /** regressors: log own price, log cross prices, controls */
  x: number[];
  /** own price (not logged), for the pricing backtest */
  price: number;
  /** the row's index in the table */
  index: number;
}

/** Names of a spec's regressors, in the order of {@link DemandRow.x}; index 0 is the own-price elasticity. */
export function regressorNames(spec: DemandSpec): string[] {
  return ['log_price', ...spec.crossPrices.map((c) => `log_${c}`), ...spec.controls, ...(spec.fixedEffects ? [] : ['(intercept)'])];
}

function column(table: Table, name: string, flag: string): number {
  const j = table.columns.indexOf(name);
  if (j < 0) throw new FedmartError('DATA_ERROR', `${flag} ${name}: the CSV has no column "${name}" (it has ${table.columns.slice(0, 20).join(', ')}${table.columns.length > 20 ? ', …' : ''})`);
  return j;
}

/**
 * Parse a table into demand rows.
 * @param table - the CSV
 * @param spec - the demand specification
 * @returns rows with finite logs
 * @throws FedmartError CONFIG_ERROR / DATA_ERROR naming the column and row when a cell cannot be used
 */
export function demandRows(table: Table, spec: DemandSpec): DemandRow[] {
  if ((spec.quantity === undefined) === (spec.logQuantity === undefined)) throw new FedmartError('CONFIG_ERROR', 'pricing: give exactly one of --quantity COL (units, logged here) or --log-quantity COL (already logged)');
  const qj = spec.quantity !== undefined ? column(table, spec.quantity, '--quantity') : column(table, spec.logQuantity!, '--log-quantity');
  const pj = column(table, spec.price, '--price');
  const kj = spec.product ? column(table, spec.product, '--product') : -1;
  const gj = spec.fixedEffects ? column(table, spec.fixedEffects, '--fixed-effects') : -1;
  const cj = spec.crossPrices.map((c) => column(table, c, '--cross-prices'));
  const tj = spec.controls.map((c) => column(table, c, '--controls'));
  const rows: DemandRow[] = [];
  const num = (r: string[], j: number, i: number, what: string): number => {
    const v = Number(r[j]);
    if (r[j] === undefined || r[j]!.trim() === '' || !Number.isFinite(v)) throw new FedmartError('DATA_ERROR', `pricing: row ${i + 2}, column "${table.columns[j]}" (${what}) is "${r[j] ?? ''}", not a number; clean the CSV or drop the row`);
    return v;
  };
  const pos = (v: number, j: number, i: number): number => {
    if (!(v > 0)) throw new FedmartError('DATA_ERROR', `pricing: row ${i + 2}, column "${table.columns[j]}" is ${v}; log-log demand needs prices and units > 0 (drop zero-sales rows or pass --log-quantity)`);
    return Math.log(v);
  };
  for (const [i, r] of table.rows.entries()) {
    const q = num(r, qj, i, 'quantity');
    const p = num(r, pj, i, 'price');
    const x = [pos(p, pj, i), ...cj.map((j) => pos(num(r, j, i, 'cross price'), j, i)), ...tj.map((j) => num(r, j, i, 'control'))];
    if (!spec.fixedEffects) x.push(1);
    rows.push({ product: kj >= 0 ? r[kj]! : 'all', level: gj >= 0 ? r[gj]! : '', y: spec.quantity !== undefined ? pos(q, qj, i) : q, x, price: p, index: i });
  }
  if (rows.length === 0) throw new FedmartError('DATA_ERROR', 'pricing: the CSV has no data rows');
  return rows;
}

/** Number of statistics per product for p regressors: XᵀX (upper triangle), Xᵀy, yᵀy, n, fixed-effect levels, Σy, Σy². */
export const statCount = (p: number): number => (p * (p + 1)) / 2 + p + 5;

/**
 * One partner's (or the pool's) sufficient statistics of one product, after
 * demeaning inside each of its fixed-effect cells.
 */
export interface ProductStats {
  xtx: Float64Array; // p×p, full
  xty: Float64Array;
  yty: number;
  n: number;
  levels: number;
  sumY: number;
  sumY2: number;
}

/**
 * Optional per-row clipping for record-level DP: each demeaned row (x̃, ỹ) is
 * scaled onto the L2 ball ‖(x̃, ỹ)‖ ≤ radius, and the raw Σy, Σy² (unbounded)
 * are not computed (0), so every released coordinate is bounded (task.ts).
 */
export interface RowClip {
  radius: number;
  /** Public scale of each regressor and, last, of y: the clipped row is (x̃/scale, ỹ/scale_y). */
  scale: number[];
}

/** Mean y and x of one (product, fixed-effect level) cell. */
export interface CellMean {
  y: number;
  x: Float64Array;
  n: number;
}

/** Key of a row's (product, level) cell in {@link cellMeans}. */
export const cellKey = (r: DemandRow): string => `${r.product}\u0000${r.level}`;

/**
 * Means of y and x per (product, level) cell, for demeaning within cells.
 * @param rows - demand rows
 * @param p - regressors per row
 * @returns cellKey → means and count
 */
export function cellMeans(rows: readonly DemandRow[], p: number): Map<string, CellMean> {
  const cells = new Map<string, CellMean>();
  for (const r of rows) {
    const key = cellKey(r);
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { y: 0, x: new Float64Array(p), n: 0 }));
    c.y += r.y;
    c.n++;
    for (let j = 0; j < p; j++) c.x[j]! += r.x[j]!;
  }
  for (const c of cells.values()) {
    c.y /= c.n;
    for (let j = 0; j < p; j++) c.x[j]! /= c.n;
  }
  return cells;
}

/**
 * Sufficient statistics per product of some rows (one partner's, or all).
 * @param rows - demand rows; every fixed-effect cell they touch must be complete in them
 * @param p - regressors per row
 * @param fixedEffects - demean within (product, level) cells
 * @param clip - clip demeaned values (DP only)
 * @returns product → statistics
 */
export function productStats(rows: readonly DemandRow[], p: number, fixedEffects: boolean, clip?: RowClip): Map<string, ProductStats> {
  const cells = fixedEffects ? cellMeans(rows, p) : new Map<string, CellMean>();
  const out = new Map<string, ProductStats>();
  const levels = new Map<string, Set<string>>();
  const xt = new Float64Array(p);
  for (const r of rows) {
    let s = out.get(r.product);
    if (!s) out.set(r.product, (s = { xtx: new Float64Array(p * p), xty: new Float64Array(p), yty: 0, n: 0, levels: 0, sumY: 0, sumY2: 0 }));
    let yt = r.y;
    if (fixedEffects) {
      const c = cells.get(cellKey(r))!;
      yt -= c.y;
      for (let j = 0; j < p; j++) xt[j] = r.x[j]! - c.x[j]!;
      let lv = levels.get(r.product);
      if (!lv) levels.set(r.product, (lv = new Set()));
      lv.add(r.level);
    } else for (let j = 0; j < p; j++) xt[j] = r.x[j]!;
    if (clip) {
      yt /= clip.scale[p]!;
      for (let j = 0; j < p; j++) xt[j]! /= clip.scale[j]!;
      let sq = yt * yt;
      for (let j = 0; j < p; j++) sq += xt[j]! * xt[j]!;
      const f = sq > clip.radius * clip.radius ? clip.radius / Math.sqrt(sq) : 1;
      yt *= f;
      for (let j = 0; j < p; j++) xt[j]! *= f;
    }
    for (let a = 0; a < p; a++) {
      s.xty[a]! += xt[a]! * yt;
      for (let b = a; b < p; b++) s.xtx[a * p + b]! += xt[a]! * xt[b]!;
    }
    s.yty += yt * yt;
    s.n++;
    if (!clip) {
      s.sumY += r.y;
      s.sumY2 += r.y * r.y;
    }
  }
  for (const [k, s] of out) {
    for (let a = 0; a < p; a++) for (let b = 0; b < a; b++) s.xtx[a * p + b] = s.xtx[b * p + a]!;
    s.levels = fixedEffects ? levels.get(k)!.size : 0;
  }
  return out;
}

/** Flatten one product's statistics (upper triangle of XᵀX, Xᵀy, yᵀy, n, levels, Σy, Σy²). */
export function flattenStats(s: ProductStats, p: number): Float64Array {
  const v = new Float64Array(statCount(p));
  let i = 0;
  for (let a = 0; a < p; a++) for (let b = a; b < p; b++) v[i++] = s.xtx[a * p + b]!;
  for (let a = 0; a < p; a++) v[i++] = s.xty[a]!;
  v[i++] = s.yty;
  v[i++] = s.n;
  v[i++] = s.levels;
  v[i++] = s.sumY;
  v[i++] = s.sumY2;
  return v;
}

/** Inverse of {@link flattenStats}. */
export function unflattenStats(v: ArrayLike<number>, p: number): ProductStats {
  if (v.length !== statCount(p)) throw new FedmartError('UNPROCESSABLE', `pricing: expected ${statCount(p)} statistics for ${p} regressors, got ${v.length}`);
  const xtx = new Float64Array(p * p);
  let i = 0;
  for (let a = 0; a < p; a++) for (let b = a; b < p; b++) xtx[a * p + b] = xtx[b * p + a] = v[i++]!;
  const xty = new Float64Array(p);
  for (let a = 0; a < p; a++) xty[a] = v[i++]!;
  return { xtx, xty, yty: v[i]!, n: v[i + 1]!, levels: v[i + 2]!, sumY: v[i + 3]!, sumY2: v[i + 4]! };
}

/** Cholesky factor L (lower, row-major) of a symmetric positive-definite matrix, or null if it is not. */
function cholesky(a: Float64Array, p: number): Float64Array | null {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j]!;
      for (let k = 0; k < j; k++) s -= l[i * p + k]! * l[j * p + k]!;
      if (i === j) {
        if (!(s > 1e-12 * Math.max(1, Math.abs(a[i * p + i]!)))) return null;
        l[i * p + i] = Math.sqrt(s);
      } else l[i * p + j] = s / l[j * p + j]!;
    }
  }
  return l;
}

/** Solve (L Lᵀ) x = b. */
function cholSolve(l: Float64Array, b: ArrayLike<number>, p: number): Float64Array {
  const z = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * p + k]! * z[k]!;
    z[i] = s / l[i * p + i]!;
  }
  const x = new Float64Array(p);
  for (let i = p - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < p; k++) s -= l[k * p + i]! * x[k]!;
    x[i] = s / l[i * p + i]!;
  }
  return x;
}

/**
 * Solve the normal equations of symmetric positive-definite A: x = A⁻¹b, and the diagonal of A⁻¹.
 * @throws FedmartError UNPROCESSABLE when A is singular (a regressor is constant or collinear)
 */
export function solveNormal(a: Float64Array, b: ArrayLike<number>, p: number, what: string): { x: Float64Array; invDiag: Float64Array } {
  const l = cholesky(a, p);
  if (!l) throw new FedmartError('UNPROCESSABLE', `pricing: the normal equations of ${what} are singular (a regressor is constant within the fixed-effect cells or collinear with another); drop that control or cross price`);
  const invDiag = new Float64Array(p);
  const e = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    e.fill(0);
    e[j] = 1;
    invDiag[j] = cholSolve(l, e, p)[j]!;
  }
  return { x: cholSolve(l, b, p), invDiag };
}

/** One product's estimate. */
export interface ProductFit {
  /** Own-price elasticity β (the coefficient of log price). */
  elasticity: number;
  /** Its classical OLS standard error, with n − p − (fixed-effect levels) degrees of freedom. */
  se: number;
  /** All coefficients, in {@link regressorNames} order. */
  coefficients: number[];
  /** R² of the full model (fixed effects included), against Σ(y − ȳ)². */
  r2: number;
  /** R² of the demeaned (within) regression; equals r2 without fixed effects. */
  r2Within: number;
  n: number;
  dfResidual: number;
}

/**
 * OLS from sufficient statistics (the coordinator-side solve).
 * @param s - summed statistics of a product
 * @param p - regressors
 * @param what - names the product in errors
 * @returns the fit
 * @throws FedmartError UNPROCESSABLE on singular normal equations or no residual degrees of freedom
 */
export function fitFromStats(s: ProductStats, p: number, what: string, fixedEffects: boolean): ProductFit {
  const { x: beta, invDiag } = solveNormal(s.xtx, s.xty, p, what);
  // SSR = yᵀy − βᵀXᵀy (normal equations hold)
  let bxy = 0;
  for (let j = 0; j < p; j++) bxy += beta[j]! * s.xty[j]!;
  const ssr = Math.max(0, s.yty - bxy);
  const df = s.n - p - s.levels;
  if (df <= 0) throw new FedmartError('UNPROCESSABLE', `pricing: ${what} has ${s.n} rows for ${p} regressors and ${s.levels} fixed-effect levels: no residual degrees of freedom; pool more rows or drop controls`);
  const sigma2 = ssr / df;
  const sst = s.sumY2 - (s.sumY * s.sumY) / s.n;
  // Without fixed effects the intercept is a regressor, so yᵀy is raw: the within SST is the total SST.
  const sstWithin = fixedEffects ? s.yty : sst;
  return { elasticity: beta[0]!, se: Math.sqrt(sigma2 * invDiag[0]!), coefficients: [...beta], r2: sst > 0 ? 1 - ssr / sst : Number.NaN, r2Within: sstWithin > 0 ? 1 - ssr / sstWithin : Number.NaN, n: s.n, dfResidual: df };
}

/** Add statistics b into a. */
export function addStats(a: ProductStats, b: ProductStats): void {
  for (let i = 0; i < a.xtx.length; i++) a.xtx[i]! += b.xtx[i]!;
  for (let i = 0; i < a.xty.length; i++) a.xty[i]! += b.xty[i]!;
  a.yty += b.yty;
  a.n += b.n;
  a.levels += b.levels;
  a.sumY += b.sumY;
  a.sumY2 += b.sumY2;
}

/** Elasticity class: `high` sensitivity when |e| ≥ threshold. */
export type ElasticityClass = 'high' | 'low';
export const classifyElasticity = (e: number, threshold: number): ElasticityClass => (Math.abs(e) >= threshold ? 'high' : 'low');

/**
 * The centralized reference, computed independently of the within
 * transform: least squares with one dummy per fixed-effect level (LSDV),
 * per product, on all rows.
 * @param rows - all rows
 * @param p - regressors
 * @param fixedEffects - whether rows carry levels
 * @returns product → fit
 */
export function pooledLsdv(rows: readonly DemandRow[], p: number, fixedEffects: boolean): Map<string, ProductFit | { error: string }> {
  const byProduct = new Map<string, DemandRow[]>();
  for (const r of rows) (byProduct.get(r.product) ?? byProduct.set(r.product, []).get(r.product)!).push(r);
  const out = new Map<string, ProductFit | { error: string }>();
  for (const [k, rs] of byProduct) {
    try {
      out.set(k, lsdvOne(rs, p, fixedEffects, k));
    } catch (e) {
      out.set(k, { error: (e as Error).message });
    }
  }
  return out;
}

function lsdvOne(rs: readonly DemandRow[], p: number, fixedEffects: boolean, k: string): ProductFit {
  {
    const lv = new Map<string, number>();
    if (fixedEffects) for (const r of rs) if (!lv.has(r.level)) lv.set(r.level, lv.size);
    const m = p + lv.size;
    const a = new Float64Array(m * m);
    const b = new Float64Array(m);
    const z = new Float64Array(m);
    let yy = 0, sy = 0;
    for (const r of rs) {
      z.fill(0);
      for (let j = 0; j < p; j++) z[j] = r.x[j]!;
      if (fixedEffects) z[p + lv.get(r.level)!] = 1;
      const nz = fixedEffects ? [...Array(p).keys(), p + lv.get(r.level)!] : [...Array(p).keys()];
      for (const i of nz) {
        b[i]! += z[i]! * r.y;
        for (const j of nz) a[i * m + j]! += z[i]! * z[j]!;
      }
      yy += r.y * r.y;
      sy += r.y;
    }
    const { x: beta, invDiag } = solveNormal(a, b, m, `product "${k}" (pooled)`);
    let bxy = 0;
    for (let j = 0; j < m; j++) bxy += beta[j]! * b[j]!;
    const ssr = Math.max(0, yy - bxy);
    const df = rs.length - m;
    const sst = yy - (sy * sy) / rs.length;
    return { elasticity: beta[0]!, se: Math.sqrt((ssr / df) * invDiag[0]!), coefficients: [...beta.subarray(0, p)], r2: 1 - ssr / sst, r2Within: Number.NaN, n: rs.length, dfResidual: df };
  }
}
