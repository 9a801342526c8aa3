/**
 * Binary-classification metrics used by local evaluation, federated
 * evaluation and the benchmark reports. Inputs are plain arrays or typed
 * arrays; labels are exactly 0 or 1. Computed in float64 whatever the input.
 *
 * Pure: no I/O.
 */

/**
 * Area under the ROC curve, via the Mann–Whitney U statistic with midranks
 * for tied scores (Hanley & McNeil 1982, Radiology 143:29–36):
 * AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋), where R₊ is the sum of the positives'
 * ranks. Equals the probability that a random positive scores above a random
 * negative, ties counting ½ — the same value as scikit-learn's
 * `roc_auc_score`. O(n log n).
 *
 * @param scores - any real-valued scores (probabilities, logits); higher means more positive
 * @param labels - 0 or 1 per score
 * @returns AUC in [0, 1]; `NaN` when only one class is present (AUC is undefined
 *   then — callers decide whether to skip or report it; scikit-learn raises instead)
 * @throws RangeError on length mismatch, empty input, a non-finite score or a label not 0/1
 * @example
 * rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) // 0.75
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = checkPair('rocAuc', scores, labels, 'score');
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = scores[i]!;
    if (!Number.isFinite(v)) throw new RangeError(`rocAuc: scores[${i}] is ${v}; scores must be finite`);
    s[i] = v;
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => s[a]! - s[b]!);
  let nPos = 0;
  let rankSumPos = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && s[order[end]!] === s[order[start]!]) end++;
    // Ranks start+1..end share their mean (midrank).
    const midrank = (start + 1 + end) / 2;
    let posHere = 0;
    for (let k = start; k < end; k++) posHere += labels[order[k]!]!;
    nPos += posHere;
    rankSumPos += midrank * posHere;
    start = end;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Mean binary cross-entropy, −mean(y ln p + (1 − y) ln(1 − p)), with p
 * clipped to [eps, 1 − eps] so a confident mistake costs −ln(eps) instead of
 * infinity. Matches scikit-learn's `log_loss` with the same clipping
 * (scikit-learn ≥ 1.3 defaults to the dtype's machine epsilon instead of 1e-7, which only
 * matters for probabilities within 1e-7 of 0 or 1).
 *
 * @param probs - predicted probability of the positive class, in [0, 1]
 * @param labels - 0 or 1 per prediction
 * @param eps - clipping bound in (0, 0.5), default 1e-7 (float32-safe)
 * @returns the mean loss in nats, >= 0
 * @throws RangeError on length mismatch, empty input, a probability outside [0, 1], a label not 0/1 or a bad eps
 * @example
 * logLoss([0.9, 0.1, 0.2, 0.65], [1, 0, 0, 1]) // 0.21616...
 */
export function logLoss(probs: ArrayLike<number>, labels: ArrayLike<number>, eps = 1e-7): number {
  if (!(eps > 0 && eps < 0.5)) throw new RangeError(`logLoss: eps must be in (0, 0.5), got ${String(eps)}`);
  const n = checkPair('logLoss', probs, labels, 'probability');
  checkProbs('logLoss', probs);
  let total = 0;
  for (let i = 0; i < n; i++) {
    // Clip the probability of the true class, not p: 1 − (1 − eps) is not exactly eps in float64.
    const q = labels[i] === 1 ? probs[i]! : 1 - probs[i]!;
    total -= Math.log(Math.min(Math.max(q, eps), 1 - eps));
  }
  return total / n;
}

/**
 * Share of predictions on the right side of the threshold; a probability
 * equal to the threshold predicts positive.
 *
 * @param probs - predicted probability of the positive class, in [0, 1]
 * @param labels - 0 or 1 per prediction
 * @param threshold - decision threshold, default 0.5
 * @returns accuracy in [0, 1]
 * @throws RangeError on length mismatch, empty input, a probability outside [0, 1] or a label not 0/1
 */
export function accuracy(probs: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): number {
  if (!Number.isFinite(threshold)) throw new RangeError(`accuracy: threshold must be finite, got ${String(threshold)}`);
  const n = checkPair('accuracy', probs, labels, 'probability');
  checkProbs('accuracy', probs);
  let correct = 0;
  for (let i = 0; i < n; i++) if ((probs[i]! >= threshold ? 1 : 0) === labels[i]) correct++;
  return correct / n;
}

function checkPair(fn: string, values: ArrayLike<number>, labels: ArrayLike<number>, what: string): number {
  if (values == null || typeof values.length !== 'number') throw new TypeError(`${fn}: expected an array of ${what}s`);
  if (labels == null || typeof labels.length !== 'number') throw new TypeError(`${fn}: expected an array of labels`);
  if (values.length !== labels.length) throw new RangeError(`${fn}: ${values.length} ${what}s but ${labels.length} labels; they must pair up`);
  if (values.length === 0) throw new RangeError(`${fn}: no predictions to score`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) throw new RangeError(`${fn}: labels[${i}] is ${String(y)}; labels must be 0 or 1`);
  }
  return values.length;
}

function checkProbs(fn: string, probs: ArrayLike<number>): void {
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`${fn}: probs[${i}] is ${p}; probabilities must be in [0, 1] (apply a sigmoid to logits)`);
  }
}
