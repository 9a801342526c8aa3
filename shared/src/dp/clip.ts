/**
 * Clipping and noise calibration for the two DP levels.
 *
 * - Record level (DP-SGD, Abadi et al. 2016, "Deep Learning with Differential
 *   Privacy"): each example's gradient is clipped to L2 norm C before summing.
 * - Partner level (DP-FedAvg, McMahan et al. 2018, "Learning Differentially
 *   Private Recurrent Language Models", ICLR): each client's model update is
 *   clipped to C; Gaussian noise of std σ·C is added to the sum, either once by
 *   a trusted coordinator (central) or split across clients (distributed).
 * - Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021,
 *   "Differentially Private Learning with Adaptive Clipping", NeurIPS): C
 *   tracks a target quantile γ of update norms by the geometric update
 *   C ← C·exp(−η_C·(b̃ − γ)), b̃ the noised fraction of clients with norm ≤ C.
 *
 * Which side clips: the client (its update, or each example's gradient)
 * always clips; the coordinator only checks norms and adds central noise.
 *
 * Pure: no I/O.
 */
import { gaussianNoise, type RandomSource } from './gaussian.ts';

/** A flat numeric vector (model parameters or an update). */
export type NumericVector = Float32Array | Float64Array | number[];

function checkVector(vec: unknown, where: string): asserts vec is NumericVector {
  if (!(vec instanceof Float32Array || vec instanceof Float64Array || Array.isArray(vec))) {
    throw new TypeError(`${where}: expected a Float32Array, Float64Array or number[]`);
  }
}
function checkClip(c: number, where: string): void {
  if (typeof c !== 'number' || !(c > 0) || !Number.isFinite(c)) throw new RangeError(`${where}: clipping norm must be a finite number > 0, got ${String(c)}`);
}

/**
 * Euclidean norm, accumulated in float64 and rescaled if the plain sum of
 * squares overflows (BLAS dnrm2's concern).
 * @param vec - vector
 * @returns ‖vec‖₂ (NaN if any entry is NaN, +∞ if any is infinite)
 * @throws TypeError when vec is not a numeric vector
 */
export function l2Norm(vec: NumericVector): number {
  checkVector(vec, 'l2Norm');
  let ss = 0;
  for (let i = 0; i < vec.length; i++) {
    const v = vec[i]!;
    ss += v * v;
  }
  if (Number.isFinite(ss) || Number.isNaN(ss)) return Math.sqrt(ss);
  let scale = 0;
  for (let i = 0; i < vec.length; i++) scale = Math.max(scale, Math.abs(vec[i]!));
  if (scale === Infinity) return Infinity;
  ss = 0;
  for (let i = 0; i < vec.length; i++) {
    const v = vec[i]! / scale;
    ss += v * v;
  }
  return scale * Math.sqrt(ss);
}

/**
 * The factor min(1, C/‖v‖) that scales a vector of norm `norm` into the ball
 * of radius C (per-example clipping for DP-SGD, per-update for DP-FedAvg).
 * @param norm - the vector's L2 norm, ≥ 0
 * @param clip - clipping norm C > 0
 * @returns factor in (0, 1]; 1 when norm ≤ C
 * @throws RangeError when norm is negative/NaN or C ≤ 0
 */
export function clipFactor(norm: number, clip: number): number {
  checkClip(clip, 'clipFactor');
  if (typeof norm !== 'number' || !(norm >= 0)) throw new RangeError(`clipFactor: norm must be a number >= 0, got ${String(norm)}`);
  return norm <= clip ? 1 : clip / norm;
}

/**
 * Scale `vec` in place so that l2Norm(vec) ≤ C holds exactly as computed by
 * {@link l2Norm}: the factor C/‖v‖ is shrunk by 2^-22 steps until float
 * rounding (float32 storage especially) no longer lands just above C, because
 * the DP sensitivity bound must hold for the stored values, not for the reals.
 *
 * @param vec - vector to clip (modified)
 * @param clip - clipping norm C > 0
 * @returns the factor applied (1 when already inside the ball)
 * @throws TypeError on a non-vector; RangeError on C ≤ 0 or a non-finite vector
 * @example
 * const f = clipToNormInPlace(update, 1.0); // update now has norm ≤ 1
 */
export function clipToNormInPlace(vec: NumericVector, clip: number): number {
  checkVector(vec, 'clipToNormInPlace');
  checkClip(clip, 'clipToNormInPlace');
  const norm = l2Norm(vec);
  if (!Number.isFinite(norm)) throw new RangeError(`clipToNormInPlace: vector has a non-finite entry (norm ${norm}); reject or sanitise the update before clipping`);
  if (norm <= clip) return 1;
  const original = Float64Array.from(vec);
  let factor = clip / norm;
  for (;;) {
    for (let i = 0; i < vec.length; i++) vec[i] = original[i]! * factor;
    if (l2Norm(vec) <= clip) return factor;
    factor *= 1 - 2 ** -22;
  }
}

/**
 * Copying form of {@link clipToNormInPlace}: the input is left untouched.
 * @param vec - vector
 * @param clip - clipping norm C > 0
 * @returns a new vector of the same type with norm ≤ C
 * @throws TypeError on a non-vector; RangeError on C ≤ 0 or a non-finite vector
 */
export function clipToNorm<T extends NumericVector>(vec: T, clip: number): T {
  checkVector(vec, 'clipToNorm');
  const copy = (Array.isArray(vec) ? [...vec] : vec.slice()) as T;
  clipToNormInPlace(copy, clip);
  return copy;
}

/**
 * Central DP-FedAvg noise (McMahan et al. 2018): std of the Gaussian added
 * once, by a trusted coordinator, to the sum of clipped updates.
 * @param noiseMultiplier - σ > 0
 * @param clip - per-client clipping norm C > 0 (the sum's L2 sensitivity)
 * @returns σ·C
 * @throws RangeError on non-positive arguments
 */
export function centralNoiseStd(noiseMultiplier: number, clip: number): number {
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier)) throw new RangeError(`centralNoiseStd: noiseMultiplier must be > 0, got ${String(noiseMultiplier)}`);
  checkClip(clip, 'centralNoiseStd');
  return noiseMultiplier * clip;
}

/**
 * Distributed DP-FedAvg noise: std each client adds to its own clipped
 * update when the coordinator is not trusted (it only sees the sum, e.g.
 * through secure aggregation).
 *
 * Each of at least `minClients` survivors adds N(0, σ²C²/minClients); the sum
 * of any m ≥ minClients shares is N(0, m·σ²C²/minClients) with variance
 * ≥ σ²C², i.e. at least the central noise, so the accountant may charge the
 * round as central DP with multiplier σ. If fewer than `minClients` updates
 * survive, the sum carries less noise than accounted: the round must be
 * aborted, not aggregated. (Noise is over-provisioned by m/minClients when
 * more clients survive; that costs utility, never privacy.)
 *
 * @param noiseMultiplier - σ > 0
 * @param clip - per-client clipping norm C > 0
 * @param minClients - smallest number of surviving clients the round accepts, integer ≥ 1
 * @returns σ·C/sqrt(minClients)
 * @throws RangeError on invalid arguments
 */
export function distributedNoiseStd(noiseMultiplier: number, clip: number, minClients: number): number {
  if (!Number.isSafeInteger(minClients) || minClients < 1) throw new RangeError(`distributedNoiseStd: minClients must be an integer >= 1, got ${String(minClients)}`);
  return centralNoiseStd(noiseMultiplier, clip) / Math.sqrt(minClients);
}

/** State of adaptive clipping (Andrew et al. 2021). */
export interface AdaptiveClipState {
  /** current clipping norm C > 0 */
  clip: number;
  /** target quantile γ in [0, 1] of client update norms */
  targetQuantile: number;
  /** geometric learning rate η_C ≥ 0 */
  clipLearningRate: number;
  /** std σ_b of the Gaussian noise added to the count of unclipped clients, ≥ 0 */
  countStd: number;
}

function checkState(s: AdaptiveClipState, where: string): void {
  if (s === null || typeof s !== 'object') throw new TypeError(`${where}: expected an AdaptiveClipState`);
  checkClip(s.clip, where);
  if (typeof s.targetQuantile !== 'number' || !(s.targetQuantile >= 0 && s.targetQuantile <= 1)) throw new RangeError(`${where}: targetQuantile must be in [0, 1], got ${String(s.targetQuantile)}`);
  if (typeof s.clipLearningRate !== 'number' || !(s.clipLearningRate >= 0) || !Number.isFinite(s.clipLearningRate)) throw new RangeError(`${where}: clipLearningRate must be >= 0, got ${String(s.clipLearningRate)}`);
  if (typeof s.countStd !== 'number' || !(s.countStd >= 0) || !Number.isFinite(s.countStd)) throw new RangeError(`${where}: countStd must be >= 0, got ${String(s.countStd)}`);
}

/**
 * A partner's centred clip bit b_i − ½ ∈ {−½, +½} (Andrew et al. 2021, §3;
 * TF Privacy `QuantileEstimatorQuery`, which subtracts 0.5 from each record's
 * indicator). Centring is what makes the count query's L2 sensitivity ½
 * under add/remove of one partner instead of 1: adding a partner moves
 * Σ(b_i − ½) by exactly ½ whichever side of C its norm falls.
 * @param unclipped - whether the partner's update norm was ≤ C before clipping
 * @returns +½ when unclipped, −½ when clipped
 */
export function centredClipBit(unclipped: boolean): number {
  return unclipped ? 0.5 : -0.5;
}

/** L2 sensitivity of Σ(b_i − ½), the centred clipped-count query, under add/remove of one partner. */
export const CLIP_COUNT_SENSITIVITY = 0.5;

/**
 * b̃ from the noised centred sum: (Σ(b_i − ½) + N(0, σ_b²)) / n + ½
 * (Andrew et al. 2021, Algorithm 1; TF Privacy's quantile estimator adds the
 * ½ back after normalising). Only the noised sum is a release; n is the
 * round's participant count.
 * @param noisedCentredSum - Σ(b_i − ½) + noise (from the coordinator's own noise, or the secure sum of partners' noised bits)
 * @param clients - n, integer ≥ 1
 * @returns b̃ (may fall outside [0, 1] because of the noise)
 * @throws RangeError on a non-finite sum or invalid n
 */
export function unclippedFractionFromNoisedSum(noisedCentredSum: number, clients: number): number {
  if (!Number.isSafeInteger(clients) || clients < 1) throw new RangeError(`unclippedFractionFromNoisedSum: clients must be an integer >= 1, got ${String(clients)}`);
  if (typeof noisedCentredSum !== 'number' || !Number.isFinite(noisedCentredSum)) throw new RangeError(`unclippedFractionFromNoisedSum: the noised sum must be finite, got ${String(noisedCentredSum)}`);
  return noisedCentredSum / clients + 0.5;
}

/**
 * b̃ computed by a trusted curator (central mode): the centred count of
 * partners whose update norm was ≤ C, noised once with N(0, σ_b²), then
 * {@link unclippedFractionFromNoisedSum}.
 * @param unclippedCount - Σ b_i, integer in [0, n]
 * @param clients - n, integer ≥ 1
 * @param countStd - σ_b ≥ 0
 * @param rng - byte source for the noise (default: platform CSPRNG)
 * @returns b̃ (may fall outside [0, 1] because of the noise)
 * @throws RangeError on invalid arguments
 */
export function noisedUnclippedFraction(unclippedCount: number, clients: number, countStd: number, rng?: RandomSource): number {
  if (!Number.isSafeInteger(clients) || clients < 1) throw new RangeError(`noisedUnclippedFraction: clients must be an integer >= 1, got ${String(clients)}`);
  if (!Number.isSafeInteger(unclippedCount) || unclippedCount < 0 || unclippedCount > clients) throw new RangeError(`noisedUnclippedFraction: unclippedCount must be an integer in [0, ${clients}], got ${String(unclippedCount)}`);
  if (typeof countStd !== 'number' || !(countStd >= 0) || !Number.isFinite(countStd)) throw new RangeError(`noisedUnclippedFraction: countStd must be >= 0, got ${String(countStd)}`);
  const noise = countStd === 0 ? 0 : gaussianNoise(1, countStd, rng)[0]!;
  return unclippedFractionFromNoisedSum(unclippedCount - clients / 2 + noise, clients);
}

/**
 * One adaptive-clipping step: C ← C·exp(−η_C·(b̃ − γ)) (Andrew et al. 2021,
 * geometric update). Too many clients unclipped (b̃ > γ) shrinks C, too few grows it.
 * @param state - current state
 * @param noisedFraction - b̃ from {@link noisedUnclippedFraction}
 * @returns the next state (input not modified)
 * @throws RangeError on an invalid state or non-finite b̃
 */
export function updateAdaptiveClip(state: AdaptiveClipState, noisedFraction: number): AdaptiveClipState {
  checkState(state, 'updateAdaptiveClip');
  if (typeof noisedFraction !== 'number' || !Number.isFinite(noisedFraction)) throw new RangeError(`updateAdaptiveClip: noisedFraction must be a finite number, got ${String(noisedFraction)}`);
  return { ...state, clip: state.clip * Math.exp(-state.clipLearningRate * (noisedFraction - state.targetQuantile)) };
}

/**
 * Noise multiplier for the update sum when adaptive clipping also spends
 * budget on the count: z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), so that the pair of
 * queries together costs the same as one Gaussian query with multiplier z
 * (Andrew et al. 2021, §3.1). The count has sensitivity ½ after centring
 * ({@link centredClipBit}).
 * @param noiseMultiplier - z, the multiplier the accountant charges, > 0
 * @param countStd - σ_b, must exceed z/2
 * @returns z_Δ ≥ z
 * @throws RangeError when σ_b ≤ z/2 (the count alone would exceed the budget)
 */
export function adaptiveClipUpdateNoiseMultiplier(noiseMultiplier: number, countStd: number): number {
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier)) throw new RangeError(`adaptiveClipUpdateNoiseMultiplier: noiseMultiplier must be > 0, got ${String(noiseMultiplier)}`);
  if (typeof countStd !== 'number' || !(countStd > noiseMultiplier / 2)) {
    throw new RangeError(`adaptiveClipUpdateNoiseMultiplier: countStd must exceed noiseMultiplier/2 = ${noiseMultiplier / 2}, got ${String(countStd)}; raise countStd (the paper suggests about clients/20)`);
  }
  return (noiseMultiplier ** -2 - (2 * countStd) ** -2) ** -0.5;
}

/**
 * The noise multiplier one round of adaptive clipping costs: the update sum
 * (multiplier z_Δ, sensitivity C) composed with the centred clipped count
 * (std σ_b, sensitivity ½, so multiplier 2σ_b). Gaussian RDP adds,
 * α/(2z_Δ²) + α/(2(2σ_b)²) = α/(2z²), so z = (z_Δ⁻² + (2σ_b)⁻²)^(−1/2)
 * (Andrew et al. 2021, §3.1; TF Privacy `QuantileAdaptiveClipSumQuery` and
 * TFF `DifferentiallyPrivateFactory.gaussian_adaptive`). The inverse of
 * {@link adaptiveClipUpdateNoiseMultiplier}.
 * @param updateNoiseMultiplier - z_Δ > 0
 * @param countStd - σ_b > 0
 * @returns z ≤ min(z_Δ, 2σ_b)
 * @throws RangeError on non-positive arguments
 */
export function adaptiveClipEffectiveNoiseMultiplier(updateNoiseMultiplier: number, countStd: number): number {
  if (typeof updateNoiseMultiplier !== 'number' || !(updateNoiseMultiplier > 0) || !Number.isFinite(updateNoiseMultiplier)) throw new RangeError(`adaptiveClipEffectiveNoiseMultiplier: updateNoiseMultiplier must be > 0, got ${String(updateNoiseMultiplier)}`);
  if (typeof countStd !== 'number' || !(countStd > 0) || !Number.isFinite(countStd)) throw new RangeError(`adaptiveClipEffectiveNoiseMultiplier: countStd must be > 0, got ${String(countStd)}`);
  return (updateNoiseMultiplier ** -2 + (CLIP_COUNT_SENSITIVITY / countStd) ** 2) ** -0.5;
}
