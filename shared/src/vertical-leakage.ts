/**
 * Leakage bounds of vertical logistic regression that the label holder
 * enforces: the minimum batch size, how an epoch is cut into batches, and
 * the label-DP accounting of noise on the residuals.
 *
 * Why a minimum batch. In hetero-LR (Hardy et al. 2017, arXiv:1711.10677)
 * feature holder k learns its plain gradient g = X_kᵀd for the batch's
 * residuals d = σ(z) − y (m unknowns, d_k equations). With m ≤ d_k and X_k
 * of full row rank it solves for d exactly, and sign(d_i) = 1 − 2y_i gives
 * every label of the batch. The label holder therefore refuses batches
 * smaller than {@link minimumVerticalBatch}: m ≥ max(64, 4·E·d_max) for E
 * epochs and the widest declared feature-holder width d_max. The factor E
 * covers an attacker that treats the residuals of a row as constant across
 * epochs (they drift slowly once training settles): over the whole run it
 * then collects S·d_max ≤ E·(n/m)·d_max ≤ n/4 equations on n unknowns, so at
 * least three quarters of every batch's residual space stays undetermined.
 * The floor of 64 keeps a one-column feature holder from running batches
 * of 4. The last short chunk of an epoch joins the previous batch (never a
 * batch below the minimum, every row exactly once per epoch — the DP
 * accounting below relies on that).
 *
 * What this does NOT stop: statistical inference. The least-squares guess
 * d̂ = X(XᵀX)⁻¹g has row i's own residual in it with weight h_ii (the
 * leverage, d_k/m on average), so rows with high leverage — a rare one-hot
 * value, or features a malicious holder picks as row indicators — are
 * exposed. The functionality X_kᵀd itself leaks that, for whatever X_k the
 * feature holder claims to hold; no check on ciphertexts can prevent it.
 * The defence with a guarantee is noise on the residuals (below).
 *
 * Label DP (optional). The label holder adds Gaussian noise N(0, σ²) to each
 * residual before encrypting it, and trains its own weights and bias on the
 * same noised residuals, so that everything any other party sees — and the
 * final model — is post-processing of the noised residual vectors. Given the
 * history, flipping one label changes one residual by exactly 1 (L2
 * sensitivity 1, whatever the features), so each step is a Gaussian
 * mechanism with noise multiplier σ on the batch that holds the row; the
 * row sits in one batch per epoch, so E epochs compose E times (q = 1, no
 * subsampling amplification claimed). Accounted with the RDP accountant of
 * `dp/rdp.ts` (Mironov 2017; Balle et al. 2020 conversion). Protects labels
 * (label DP, Ghazi et al., NeurIPS 2021), not features: the feature holders'
 * rows are theirs.
 *
 * Pure: no I/O.
 */
import { FedmartError } from './errors.ts';
import { computeEpsilon, computeSigma } from './dp/rdp.ts';

/** Smallest vertical LR batch, whatever the widths. */
export const VERTICAL_MIN_BATCH_FLOOR = 64;
/** A batch holds at least this many times E·d_max rows (see the module doc). */
export const VERTICAL_BATCH_WIDTH_FACTOR = 4;

/**
 * The minimum vertical LR batch size for a run.
 * @param epochs - epochs of the run (E ≥ 1)
 * @param widths - declared feature-holder widths (gradient lengths); none means no gradient leaves the label holder
 * @returns max(64, 4·E·max(widths)), or 1 when there are no feature holders
 * @throws RangeError for a non-positive epoch count or width
 */
export function minimumVerticalBatch(epochs: number, widths: readonly number[]): number {
  if (!Number.isSafeInteger(epochs) || epochs < 1) throw new RangeError(`minimumVerticalBatch: epochs must be an integer >= 1, got ${String(epochs)}`);
  for (const w of widths) if (!Number.isSafeInteger(w) || w < 1) throw new RangeError(`minimumVerticalBatch: widths must be integers >= 1, got ${String(w)}`);
  if (widths.length === 0) return 1;
  return Math.max(VERTICAL_MIN_BATCH_FLOOR, VERTICAL_BATCH_WIDTH_FACTOR * epochs * Math.max(...widths));
}

/**
 * Cut one epoch's row order into batches of `batchSize` rows; a last chunk
 * shorter than `batchSize` joins the previous batch, so every batch has at
 * least min(n, batchSize) rows and every row is used exactly once.
 * @param order - the epoch's row order (a permutation of 0…n−1)
 * @param batchSize - rows per batch, ≥ 1
 * @returns views into `order`
 */
export function cutVerticalBatches(order: Uint32Array, batchSize: number): Uint32Array[] {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`cutVerticalBatches: batchSize must be an integer >= 1, got ${String(batchSize)}`);
  const n = order.length;
  const count = Math.max(1, Math.floor(n / batchSize));
  const out: Uint32Array[] = [];
  for (let b = 0; b < count; b++) out.push(order.subarray(b * batchSize, b === count - 1 ? n : (b + 1) * batchSize));
  return out;
}

/**
 * Check a vertical LR run against the minimum batch before any residual leaves the label holder.
 * @param o - rows aligned, batch size, epochs and the feature holders' declared widths
 * @returns the minimum batch that applies
 * @throws FedmartError CONFIG_ERROR when the batch size is below the minimum; DATA_ERROR when fewer rows are aligned than the minimum
 */
export function checkVerticalBatching(o: { rows: number; batchSize: number; epochs: number; widths: readonly number[] }): number {
  const min = minimumVerticalBatch(o.epochs, o.widths);
  const rule = `max(${VERTICAL_MIN_BATCH_FLOOR}, ${VERTICAL_BATCH_WIDTH_FACTOR} × ${o.epochs} epochs × widest feature holder ${Math.max(...o.widths)})`;
  if (o.batchSize < min) {
    throw new FedmartError('CONFIG_ERROR', `vertical LR: batch size ${o.batchSize} is below the minimum ${min} = ${rule}; smaller batches let a feature holder solve its gradient for the residuals (hence the labels). Raise the batch size to at least ${min} or train fewer epochs`);
  }
  if (o.rows < min) {
    throw new FedmartError('DATA_ERROR', `vertical LR: only ${o.rows} aligned training rows, below the minimum batch ${min} = ${rule}; align more shared customers or train fewer epochs`);
  }
  return min;
}

/** How the label holder noises residuals (see the module doc). */
export interface LabelDpPlan {
  /** Noise std on each residual (= noise multiplier: the sensitivity is 1). */
  readonly sigma: number;
  /** ε reached at `delta` over the run (RDP accounting, q = 1). */
  readonly epsilon: number;
  readonly delta: number;
  /** Compositions: one per epoch (each row sits in one batch per epoch). */
  readonly compositions: number;
}

/**
 * The residual noise that gives (ε, δ) label DP over `epochs` epochs.
 * @param o - target ε and δ, epochs
 * @returns σ and the ε it reaches (≤ target)
 * @throws FedmartError CONFIG_ERROR for an unreachable target; RangeError for arguments outside their domain
 */
export function planLabelDp(o: { epsilon: number; delta: number; epochs: number }): LabelDpPlan {
  const { sigma, epsilon } = computeSigma({ q: 1, steps: o.epochs, delta: o.delta, epsilon: o.epsilon });
  return { sigma, epsilon, delta: o.delta, compositions: o.epochs };
}

/**
 * ε of a run with residual noise σ (the inverse of {@link planLabelDp}).
 * @param o - σ, δ, epochs
 * @returns ε at δ
 */
export function labelDpEpsilon(o: { sigma: number; delta: number; epochs: number }): number {
  return computeEpsilon({ q: 1, sigma: o.sigma, steps: o.epochs, delta: o.delta }).epsilon;
}
