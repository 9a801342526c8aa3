/**
 * What one partner can do to a federation's numbers (issue 8, item 9): the
 * maths the coordinator applies to every plaintext contribution before any
 * strategy sees it. Threat model: any single partner (or a minority of them)
 * may send whatever the wire schema admits — an example count of 2^52,
 * coordinates of 1e38, a validation AUC of 1.0 over "2^52" examples. The
 * coordinator is trusted here (it runs these checks); secure aggregation and
 * CKKS hide individual updates from it, so there only the declared weights
 * and the range of the unmasked sum can be checked (see the coordinator).
 *
 * 1. Weights. A partner's weight (its example count in FedAvg and in the
 *    metric means) is the least of what it claims now, what it declared at
 *    hello, what its enrollment allows and the federation's
 *    `limits.maxExamplesPerPartner` ({@link boundExampleCount}). So a
 *    partner's weight share s = w / Σw is fixed by numbers it cannot inflate
 *    past what the operator agreed.
 * 2. Updates. Every plaintext update's L2 norm is checked against a bound
 *    ({@link resolveUpdateNormBound}) and clipped to it or rejected
 *    ({@link boundUpdates}). Then for FedAvg the committed model is within
 *    s·(B + ‖honest mean‖) ≤ 2·s·B of the honest partners' FedAvg, whatever
 *    the attacker sends (the attack moves the mean by s·(Δ_a − honest mean)).
 *    The bound is, in order: `limits.maxUpdateNorm` if set; the DP clip C
 *    for partner-level DP (partners already clip to C; distributed mode adds
 *    a high-probability allowance for the noise share); otherwise
 *    `limits.medianNormFactor` × the lower median of the round's update
 *    norms — the norm-bounding defence of FLAME (Nguyen et al., USENIX
 *    Security 2022), which clips to the median norm, with a slack factor
 *    (default 3) so honest non-IID partners, whose norms differ with their
 *    data size, are not clipped in ordinary rounds (measured on the bank data
 *    split by job into 3 and 6 partners: the largest honest norm was at most
 *    1.41 × the lower median in every round, and no update was clipped).
 *    With an honest majority the lower median is an honest norm, so no
 *    minority can raise it; with two partners it is the smaller norm, so one
 *    of two cannot either.
 * 3. Evaluation. Metrics are combined as weighted means with the bounded
 *    weights, and metrics with a known range (AUC, accuracy in [0, 1]; losses
 *    ≥ 0) outside it are refused ({@link checkMetricRanges}). Then one
 *    partner moves a [0, 1] metric by exactly s·(x − honest mean), at most its
 *    weight share s. A trimmed or winsorised weighted mean would discard a
 *    lone outlier more often, but it can move by more than s: with honest
 *    values split 85/15 between 0 and 1 and 10% trimmed per tail, a fake 1
 *    of share s moves it by ≈ 1.06·s (its influence function is divided by
 *    1 − 2β), so it would break the one guarantee that holds for every
 *    honest population.
 *
 * Pure: no I/O.
 */
import { clipToNorm, l2Norm } from '../dp/clip.ts';
import { FedmartError } from '../errors.ts';
import type { ClientUpdate } from './types.ts';

/** The federation's limits on one partner (`FederationConfig.limits`, see `protocol.ts`). */
export interface PartnerLimits {
  maxExamplesPerPartner: number;
  maxUpdateNorm?: number | undefined;
  medianNormFactor: number;
  onLargeUpdate: 'clip' | 'reject';
}

/** The DP settings that fix an update-norm bound (a subset of `DpConfig`). */
export interface DpClipSettings {
  level: 'record' | 'partner';
  clip: number;
  noiseMultiplier: number;
  mode?: 'central' | 'distributed' | undefined;
  /** Adaptive clipping (central mode: the coordinator clips and counts b_i on the raw updates itself). */
  adaptiveClip?: unknown;
}

/**
 * The example count a partner is weighted by.
 * @param claimed - what the partner claims (hello, update or evaluation)
 * @param caps - upper bounds that apply (null/undefined ones are skipped): declared at hello, enrollment, federation
 * @returns min(claimed, caps), a non-negative integer
 * @throws RangeError when claimed is not a non-negative finite number (the wire schema already guarantees it)
 * @example
 * boundExampleCount(2 ** 52, [2 ** 52, null, 1_000_000]); // 1_000_000
 */
export function boundExampleCount(claimed: number, caps: readonly (number | null | undefined)[]): number {
  if (typeof claimed !== 'number' || !Number.isFinite(claimed) || claimed < 0) throw new RangeError(`boundExampleCount: claimed must be a finite number ≥ 0, got ${String(claimed)}`);
  let n = Math.floor(claimed);
  for (const c of caps) if (typeof c === 'number' && c >= 0 && c < n) n = Math.floor(c);
  return n;
}

/**
 * The lower median: the ⌈n/2⌉-th smallest value (for two values, the smaller).
 * @param values - at least one number
 * @returns the lower median
 * @throws RangeError on an empty list
 */
export function lowerMedian(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('lowerMedian: expected at least one value');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1]!;
}

/** Where a round's update-norm bound came from. */
export type NormBoundSource = 'maxUpdateNorm' | 'dp-clip' | 'median';

/**
 * The L2 bound one update may have this round.
 * @param limits - the federation's limits
 * @param dp - the federation's DP settings (absent = off)
 * @param norms - L2 norms of this round's finite updates (for the median rule)
 * @param params - the model's parameter count (for the distributed-noise allowance)
 * @param minClients - the federation's minimum clients (distributed noise share std = σC/√minClients)
 * @returns the bound and its source; null when no bound can be set (no finite update and no fixed bound)
 */
export function resolveUpdateNormBound(limits: PartnerLimits, dp: DpClipSettings | undefined, norms: readonly number[], params: number, minClients: number): { bound: number; source: NormBoundSource } | null {
  if (limits.maxUpdateNorm !== undefined) return { bound: limits.maxUpdateNorm, source: 'maxUpdateNorm' };
  if (dp?.level === 'partner') {
    // Central adaptive clipping: C moves every round and the DP wrapper must count b_i = [‖Δ‖ ≤ C] on the
    // updates as sent, so a fixed clip here would mark every update "clipped"; the wrapper clips to its own C.
    if (dp.mode !== 'distributed' && dp.adaptiveClip === undefined) return { bound: dp.clip, source: 'dp-clip' };
    if (dp.mode !== 'distributed') return norms.length === 0 ? null : { bound: limits.medianNormFactor * lowerMedian(norms), source: 'median' };
    // A clipped update plus a N(0, s²I) share, s = σC/√m: ‖z‖ ≤ s(√P + 8) except with probability e^{−32} (Gaussian concentration of the norm).
    const share = (dp.noiseMultiplier * dp.clip) / Math.sqrt(Math.max(1, minClients));
    return { bound: dp.clip + share * (Math.sqrt(params) + 8), source: 'dp-clip' };
  }
  if (norms.length === 0) return null;
  return { bound: limits.medianNormFactor * lowerMedian(norms), source: 'median' };
}

/** The outcome of {@link boundUpdates}. */
export interface BoundedUpdates {
  /** Updates to aggregate (clipped ones are copies; the inputs are not modified). */
  kept: ClientUpdate[];
  /** Updates scaled down to the bound, with their original norm. */
  clipped: { nodeId: string; norm: number }[];
  /** Updates left out, with the reason (to tell the partner). */
  rejected: { nodeId: string; reason: string }[];
  /** The bound applied (null: none could be set, nothing was kept). */
  bound: { bound: number; source: NormBoundSource } | null;
}

/**
 * Norm-check every update: non-finite ones are rejected; ones above the bound are clipped or rejected per `limits.onLargeUpdate`.
 * @param results - the round's updates (their example counts already bounded)
 * @param limits - the federation's limits
 * @param dp - the federation's DP settings (absent = off)
 * @param minClients - the federation's minimum clients
 * @returns what to aggregate, and what was clipped or rejected and why
 */
export function boundUpdates(results: readonly ClientUpdate[], limits: PartnerLimits, dp: DpClipSettings | undefined, minClients: number): BoundedUpdates {
  const rejected: BoundedUpdates['rejected'] = [];
  const finite: { u: ClientUpdate; norm: number }[] = [];
  for (const u of results) {
    const norm = l2Norm(u.delta);
    if (Number.isFinite(norm)) finite.push({ u, norm });
    else rejected.push({ nodeId: u.nodeId, reason: 'the update holds NaN or ±Infinity; it was not used' });
  }
  const params = results[0]?.delta.length ?? 0;
  const bound = resolveUpdateNormBound(limits, dp, finite.map((f) => f.norm), params, minClients);
  const kept: ClientUpdate[] = [];
  const clipped: BoundedUpdates['clipped'] = [];
  for (const { u, norm } of finite) {
    if (bound === null || norm <= bound.bound) {
      kept.push(u);
      continue;
    }
    const why = `update norm ${norm.toPrecision(4)} exceeds the federation's bound ${bound.bound.toPrecision(4)} (${describeSource(bound.source, limits)})`;
    if (limits.onLargeUpdate === 'reject') {
      rejected.push({ nodeId: u.nodeId, reason: `${why}; it was not used — lower the local learning rate or epochs, or ask the operator to raise limits.maxUpdateNorm` });
      continue;
    }
    kept.push({ ...u, delta: bound.bound > 0 ? clipToNorm(u.delta, bound.bound) : new Float32Array(u.delta.length) });
    clipped.push({ nodeId: u.nodeId, norm });
  }
  return { kept, clipped, rejected, bound };
}

function describeSource(source: NormBoundSource, limits: PartnerLimits): string {
  if (source === 'maxUpdateNorm') return 'limits.maxUpdateNorm';
  if (source === 'dp-clip') return 'the DP clip';
  return `${limits.medianNormFactor} × the median update norm of this round`;
}

/** Metrics whose range is known: a value outside it can only be a lie or a bug. */
export const BOUNDED_METRICS: Readonly<Record<string, readonly [number, number]>> = {
  auc: [0, 1],
  accuracy: [0, 1],
  loss: [0, Number.POSITIVE_INFINITY],
};

/**
 * Refuse metrics outside their known range ({@link BOUNDED_METRICS}).
 * @param metrics - a partner's reported metrics
 * @throws FedmartError INVALID_MESSAGE naming the metric, its value and its range
 */
export function checkMetricRanges(metrics: Readonly<Record<string, number>>): void {
  for (const [key, [lo, hi]] of Object.entries(BOUNDED_METRICS)) {
    const v = metrics[key];
    if (v !== undefined && !(v >= lo && v <= hi)) {
      throw new FedmartError('INVALID_MESSAGE', `metric "${key}" = ${v} is outside its range [${lo}, ${hi === Number.POSITIVE_INFINITY ? '∞' : hi}]; report the metric as computed on the local validation data`);
    }
  }
}
