/**
 * Per-prediction attributions on the logit scale, grouped by original feature.
 *
 * - Logistic regression (`hidden: []`): the exact contributions
 *   a_j = w_j · (x_j − b_j). They sum to logit(x) − logit(b) exactly (up to
 *   float64 round-off), because the logit is linear.
 * - MLP: Integrated Gradients (M. Sundararajan, A. Taly, Q. Yan, "Axiomatic
 *   Attribution for Deep Networks", ICML 2017, eq. 1–3):
 *   a_j = (x_j − b_j) · ∫₀¹ ∂f/∂x_j (b + α(x − b)) dα, with f the logit. Its
 *   completeness axiom says Σ_j a_j = f(x) − f(b). The integral is a midpoint
 *   Riemann sum; steps double from 32 until the measured completeness error
 *   is below the tolerance, and that error is reported with every row.
 *   (A ReLU network is piecewise linear along the path, so the sum converges
 *   as the steps resolve the kinks.)
 *
 * **Baseline** (what "no information" means): every numeric feature at its
 * federation mean (0 after standardisation) and every one-hot group at the
 * training base rates of its categories (so a category's contribution is
 * relative to the average customer, not to an impossible "no category"
 * row). The base rates come from per-partner column sums
 * ({@link encodedColumnSums}, {@link baselineFromColumnSums}); only sums and
 * counts leave a partner. Without base rates (e.g. a model read from a
 * coordinator, which does not store them) the one-hot groups sit at 0 and
 * the result says `baseline: 'zero-categories'`.
 *
 * Who learns what: explaining a row needs the model and that row only; the
 * baseline reveals the federation's category frequencies (aggregate over
 * all partners), never a partner's rows.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { forwardLogit, logitGradient, sigmoid, type DenseModel } from './mlp.ts';
import { featureValue, sumByGroup, type FeatureGroup, type FeatureValue } from './features.ts';

/** How the attributions were computed. */
export type AttributionMethod = 'linear-exact' | 'integrated-gradients';

/** What the baseline is made of (see the module doc). */
export type BaselineKind = 'training-mean' | 'zero-categories';

/** An explanation baseline: an encoded row and what it is. */
export interface Baseline {
  readonly kind: BaselineKind;
  /** Encoded values, length inputDim. */
  readonly x: Float64Array;
}

/** One partner's contribution to the baseline: its row count and per-column sums. */
export interface ColumnSums {
  n: number;
  sums: number[];
}

/** One feature's share of a prediction. */
export interface Contribution {
  /** Original column name. */
  feature: string;
  /** The row's value: de-standardised number, category, or null (missing / unlisted). */
  value: FeatureValue;
  /** Share of logit(x) − logit(baseline), in logit units (positive pushes towards "yes"). */
  contribution: number;
}

/** The explanation of one prediction. */
export interface RowExplanation {
  logit: number;
  probability: number;
  /** Logit of the baseline row; contributions sum to `logit − baselineLogit`. */
  baselineLogit: number;
  /** Every feature, largest |contribution| first. */
  contributions: Contribution[];
  method: AttributionMethod;
  /** Integration steps used (1 for the exact linear case). */
  steps: number;
  /** |Σ contributions − (logit − baselineLogit)| / max(|logit − baselineLogit|, 1e-3). */
  completenessError: number;
}

/** Options for {@link explainRow}. */
export interface ExplainRowOptions {
  /** Stop doubling IG steps once the completeness error is at most this. Default 1e-3 (10× inside the 1% target). */
  tolerance?: number;
  /** Most IG steps. Default 16384. */
  maxSteps?: number;
}

/** The floor of the completeness denominator: a logit gap under 0.001 has no readable attribution. */
export const COMPLETENESS_FLOOR = 1e-3;

/**
 * Each partner's row count and per-encoded-column sums: the only numbers a
 * partner shares to build the baseline.
 *
 * @param x - the partner's encoded rows, `n × d` row-major
 * @param n - rows
 * @param d - encoded columns
 * @returns `{ n, sums }`
 * @throws FedmartError `DATA_ERROR` on a size mismatch
 */
export function encodedColumnSums(x: ArrayLike<number>, n: number, d: number): ColumnSums {
  if (x.length !== n * d) throw new FedmartError('DATA_ERROR', `expected ${n} rows × ${d} columns = ${n * d} values, got ${x.length}`);
  const sums = new Array<number>(d).fill(0);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) sums[j] += x[r * d + j]!;
  return { n, sums };
}

/**
 * The training-mean baseline from the partners' column sums: numeric
 * columns at 0 (the standardised federation mean), one-hot columns at the
 * pooled base rates Σ sums / Σ n.
 *
 * @param groups - feature groups of the schema
 * @param parts - one {@link ColumnSums} per partner (omit or pass [] for the zero-categories baseline)
 * @returns the baseline
 * @throws FedmartError `DATA_ERROR` if a partner's sums have the wrong width
 */
export function baselineFromColumnSums(groups: readonly FeatureGroup[], parts: readonly ColumnSums[] = []): Baseline {
  const d = groups.reduce((s, g) => s + g.width, 0);
  const x = new Float64Array(d);
  let n = 0;
  for (const p of parts) {
    if (p.sums.length !== d) throw new FedmartError('DATA_ERROR', `column sums have ${p.sums.length} entries, the schema encodes ${d} columns`);
    n += p.n;
  }
  if (n === 0) return { kind: 'zero-categories', x };
  for (const g of groups) {
    if (g.type !== 'categorical') continue;
    for (let k = 0; k < g.width; k++) {
      let s = 0;
      for (const p of parts) s += p.sums[g.start + k]!;
      x[g.start + k] = s / n;
    }
  }
  return { kind: 'training-mean', x };
}

/**
 * Rebuild a baseline stored as numbers (e.g. in a model file).
 *
 * @param values - inputDim encoded values, or undefined
 * @param groups - feature groups of the schema
 * @returns the training-mean baseline from `values`, or the zero-categories one when absent
 * @throws FedmartError `DATA_ERROR` if `values` has the wrong width or non-finite entries
 */
export function baselineFromValues(values: readonly number[] | undefined, groups: readonly FeatureGroup[]): Baseline {
  const d = groups.reduce((s, g) => s + g.width, 0);
  if (values === undefined) return baselineFromColumnSums(groups);
  if (values.length !== d || !values.every(Number.isFinite)) throw new FedmartError('DATA_ERROR', `a stored baseline must have ${d} finite values (one per encoded column), got ${values.length}`);
  return { kind: 'training-mean', x: Float64Array.from(values) };
}

/** Relative completeness error, as defined on {@link RowExplanation}. */
function completenessErrorOf(sum: number, gap: number): number {
  return Math.abs(sum - gap) / Math.max(Math.abs(gap), COMPLETENESS_FLOOR);
}

/**
 * Integrated Gradients of the logit with an `m`-step midpoint Riemann sum.
 *
 * @param model - from `denseModel`
 * @param x - the encoded row (length ≥ offset + inputDim)
 * @param offset - index of its first value
 * @param baseline - encoded baseline row
 * @param steps - number of midpoint evaluations (≥ 1)
 * @returns per-column attributions and both logits
 * @throws RangeError if `steps` is not a positive integer
 */
export function integratedGradients(model: DenseModel, x: ArrayLike<number>, offset: number, baseline: ArrayLike<number>, steps: number): { attributions: Float64Array; logit: number; baselineLogit: number } {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`integratedGradients: steps must be a positive integer, got ${String(steps)}`);
  const d = model.spec.inputDim;
  const diff = new Float64Array(d);
  for (let j = 0; j < d; j++) diff[j] = x[offset + j]! - baseline[j]!;
  const point = new Float64Array(d);
  const avg = new Float64Array(d);
  for (let s = 0; s < steps; s++) {
    const alpha = (s + 0.5) / steps;
    for (let j = 0; j < d; j++) point[j] = baseline[j]! + alpha * diff[j]!;
    const { gradient } = logitGradient(model, point);
    for (let j = 0; j < d; j++) avg[j] += gradient[j]!;
  }
  for (let j = 0; j < d; j++) avg[j] = (avg[j]! / steps) * diff[j]!;
  return { attributions: avg, logit: forwardLogit(model, x, offset), baselineLogit: forwardLogit(model, baseline) };
}

/**
 * Explain one prediction: exact linear contributions for logistic
 * regression, adaptive Integrated Gradients for an MLP (see the module doc),
 * summed per original feature and sorted by magnitude.
 *
 * @param model - from `denseModel`
 * @param groups - feature groups of the model's schema
 * @param baseline - from {@link baselineFromColumnSums} or {@link baselineFromValues}
 * @param x - encoded rows (a row, or a matrix with `offset`)
 * @param offset - index of the row's first value
 * @param opts - IG tolerance and step cap
 * @returns probability, logit, contributions, method, steps and the completeness error
 * @throws FedmartError `DATA_ERROR` if the row or the baseline has the wrong width
 * @example
 * const e = explainRow(denseModel(spec, w), featureGroups(schema), baseline, encoded.x, 0);
 * e.contributions[0]; // { feature: 'poutcome', value: 'success', contribution: 1.9 }
 */
export function explainRow(model: DenseModel, groups: readonly FeatureGroup[], baseline: Baseline, x: ArrayLike<number>, offset = 0, opts: ExplainRowOptions = {}): RowExplanation {
  const d = model.spec.inputDim;
  if (baseline.x.length !== d) throw new FedmartError('DATA_ERROR', `the baseline has ${baseline.x.length} values but the model takes ${d}`);
  const tolerance = opts.tolerance ?? 1e-3;
  const maxSteps = opts.maxSteps ?? 16384;
  let perColumn: Float64Array;
  let logit: number;
  let baselineLogit: number;
  let steps = 1;
  let method: AttributionMethod;
  if (model.spec.hidden.length === 0) {
    method = 'linear-exact';
    logit = forwardLogit(model, x, offset);
    baselineLogit = forwardLogit(model, baseline.x);
    const w = model.layers[0]!.w;
    perColumn = new Float64Array(d);
    for (let j = 0; j < d; j++) perColumn[j] = w[j]! * (x[offset + j]! - baseline.x[j]!);
  } else {
    method = 'integrated-gradients';
    steps = 32;
    for (;;) {
      const ig = integratedGradients(model, x, offset, baseline.x, steps);
      perColumn = ig.attributions;
      logit = ig.logit;
      baselineLogit = ig.baselineLogit;
      if (steps >= maxSteps || completenessErrorOf(perColumn.reduce((a, b) => a + b, 0), logit - baselineLogit) <= tolerance) break;
      steps = Math.min(maxSteps, steps * 2);
    }
  }
  const byGroup = sumByGroup(groups, perColumn);
  let sum = 0;
  for (const v of byGroup) sum += v;
  const contributions = groups
    .map((g, i) => ({ feature: g.feature, value: featureValue(g, x, offset), contribution: byGroup[i]! }))
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  return { logit, probability: sigmoid(logit), baselineLogit, contributions, method, steps, completenessError: completenessErrorOf(sum, logit - baselineLogit) };
}
