/**
 * Fixed-point quantization of model updates into the ring Z_{2^bits}, the
 * space secure aggregation sums in (Bonawitz et al., CCS 2017, §3: inputs are
 * vectors in Z_R; §4 masks are uniform in the same ring).
 *
 * A client with update Δ (a Float32Array) and weight w (its example count)
 * sends the vector q(w·clip(Δ)) followed by w itself as one extra coordinate.
 * The server's unmasked sum is then (Σ w_i Δ_i, Σ w_i), so it recovers the
 * weighted mean Σ w_i Δ_i / Σ w_i without learning any individual w_i or Δ_i.
 *
 * Scale. With at most M clients, weights w ≤ W and coordinates clipped to
 * [−c, c], each client's scaled value is at most W·c·s in magnitude. We pick
 * the largest integer level Q = ⌊(2^(bits−1) − 1) / M⌋ and s = Q / (W·c), so
 * |Σ q_i| ≤ M·Q < 2^(bits−1): the sum of up to M clients never wraps, and the
 * centred lift (values ≥ 2^(bits−1) are negative) of the sum is exact. The
 * weight coordinate is an unsigned integer and needs M·W < 2^bits.
 *
 * Error bound (per coordinate of the weighted sum, over n ≤ M clients):
 * deterministic rounding (round half away from zero) is off by at most
 * 1/(2s) per client, so |error| ≤ n/(2s); stochastic rounding is unbiased
 * with |error| < n/s (each client rounds to one of the two neighbouring
 * levels). Divide by Σ w for the bound on the weighted mean. Clipping is a
 * separate, deliberate bias (values outside [−c, c] are moved to the edge).
 *
 * Pure: no I/O. Stochastic rounding draws from the OS CSPRNG, because its
 * rounding noise must be unpredictable to the server.
 */
import { randomFillSync } from 'node:crypto';
import { FedmartError } from '../errors.ts';

/** How a real value is mapped to the nearest fixed-point levels. */
export type RoundingMode = 'stochastic' | 'deterministic';

/** Quantization settings chosen per federation (JSON-safe). */
export interface QuantizationConfig {
  /** clipping bound c > 0: each coordinate of Δ is clipped to [−c, c] */
  clip: number;
  /** largest number of clients whose values are summed (M) */
  maxClients: number;
  /** largest weight (example count) a client may declare (W, integer ≥ 1); default 1 */
  maxWeight?: number;
  /** ring size: values live in Z_{2^bits}, 8 ≤ bits ≤ 32; default 32 */
  bits?: number;
  /** default 'stochastic' (unbiased) */
  rounding?: RoundingMode;
}

/** A validated {@link QuantizationConfig} with its derived constants. */
export interface ResolvedQuantization {
  readonly clip: number;
  readonly maxClients: number;
  readonly maxWeight: number;
  readonly bits: number;
  readonly rounding: RoundingMode;
  /** fixed-point scale s: a value v becomes round(v·s) */
  readonly scale: number;
  /** largest level a single client can produce, Q = W·c·s */
  readonly maxLevel: number;
  /** bit mask 2^bits − 1 */
  readonly mask: number;
}

function configError(field: string, expected: string, got: unknown): FedmartError {
  return new FedmartError('CONFIG_ERROR', `quantization.${field}: expected ${expected}, got ${String(got)}; fix the federation's secure-aggregation settings`);
}

/**
 * Validate a quantization config and derive its scale.
 * @param config - the settings
 * @returns the resolved settings
 * @throws FedmartError CONFIG_ERROR naming the bad field
 * @example
 * const q = resolveQuantization({ clip: 1, maxClients: 100, maxWeight: 1000 });
 */
export function resolveQuantization(config: QuantizationConfig): ResolvedQuantization {
  if (typeof config !== 'object' || config === null) throw new TypeError('resolveQuantization: config: expected an object');
  const { clip, maxClients, maxWeight = 1, bits = 32, rounding = 'stochastic' } = config;
  if (typeof clip !== 'number' || !Number.isFinite(clip) || clip <= 0) throw configError('clip', 'a finite number > 0', clip);
  if (!Number.isSafeInteger(maxClients) || maxClients < 1) throw configError('maxClients', 'an integer ≥ 1', maxClients);
  if (!Number.isSafeInteger(maxWeight) || maxWeight < 1) throw configError('maxWeight', 'an integer ≥ 1', maxWeight);
  if (!Number.isSafeInteger(bits) || bits < 8 || bits > 32) throw configError('bits', 'an integer in [8, 32]', bits);
  if (rounding !== 'stochastic' && rounding !== 'deterministic') throw configError('rounding', "'stochastic' or 'deterministic'", rounding);
  if (maxClients * maxWeight > 2 ** bits - 1) {
    throw configError('maxWeight', `maxClients · maxWeight < 2^${bits} so the summed weight fits the ring (lower maxWeight or raise bits)`, `${maxClients} · ${maxWeight}`);
  }
  const maxLevel = Math.floor((2 ** (bits - 1) - 1) / maxClients);
  if (maxLevel < 1) throw configError('bits', `enough bits for ${maxClients} clients`, bits);
  return Object.freeze({ clip, maxClients, maxWeight, bits, rounding, scale: maxLevel / (maxWeight * clip), maxLevel, mask: bits === 32 ? 0xffffffff : 2 ** bits - 1 });
}

/**
 * Quantize a weighted update: `out[j] = q(w·clip(Δ[j]))` for j < length and
 * `out[length] = w`, each as an element of Z_{2^bits} (negatives in two's
 * complement).
 * @param update - the client's update Δ
 * @param weight - integer weight in [0, maxWeight] (e.g. its number of examples)
 * @param q - resolved quantization settings
 * @param randomWords - source of uniform uint32 words for stochastic rounding (default: OS CSPRNG); inject only in tests
 * @returns Uint32Array of length `update.length + 1`
 * @throws TypeError if `update` is not a Float32Array
 * @throws RangeError on a weight that is not an integer in [0, maxWeight]
 * @throws FedmartError INVALID_UPDATE on NaN or ±Infinity in the update
 */
export function quantizeWeightedUpdate(update: Float32Array, weight: number, q: ResolvedQuantization, randomWords?: (count: number) => Uint32Array): Uint32Array {
  if (!(update instanceof Float32Array)) throw new TypeError('quantizeWeightedUpdate: update: expected Float32Array');
  if (!Number.isSafeInteger(weight) || weight < 0 || weight > q.maxWeight) {
    throw new RangeError(`quantizeWeightedUpdate: weight: expected an integer in [0, ${q.maxWeight}] (round example counts; raise quantization.maxWeight if needed), got ${weight}`);
  }
  const n = update.length;
  const out = new Uint32Array(n + 1);
  const factor = weight * q.scale;
  const { clip, mask, maxLevel } = q;
  if (q.rounding === 'deterministic') {
    for (let j = 0; j < n; j++) {
      const x = update[j]!;
      if (!Number.isFinite(x)) throw nonFinite(j, x);
      let v = (x > clip ? clip : x < -clip ? -clip : x) * factor;
      if (v > maxLevel) v = maxLevel; // guards float rounding of W·c·s past Q
      else if (v < -maxLevel) v = -maxLevel;
      // round half away from zero keeps the error symmetric around 0
      out[j] = ((v < 0 ? -Math.round(-v) : Math.round(v)) & mask) >>> 0;
    }
  } else {
    const r = randomWords ? randomWords(n) : randomFillSync(new Uint32Array(n));
    if (!(r instanceof Uint32Array) || r.length < n) throw new TypeError(`quantizeWeightedUpdate: randomWords: expected a Uint32Array of ${n} words`);
    for (let j = 0; j < n; j++) {
      const x = update[j]!;
      if (!Number.isFinite(x)) throw nonFinite(j, x);
      let v = (x > clip ? clip : x < -clip ? -clip : x) * factor;
      if (v > maxLevel) v = maxLevel; // guards float rounding of W·c·s past Q
      else if (v < -maxLevel) v = -maxLevel;
      const lo = Math.floor(v);
      // round up with probability frac(v): E[result] = v
      out[j] = ((lo + (r[j]! * 2 ** -32 < v - lo ? 1 : 0)) & mask) >>> 0;
    }
  }
  out[n] = weight;
  return out;
}

function nonFinite(j: number, x: number): FedmartError {
  return new FedmartError('INVALID_UPDATE', `update coordinate ${j} is ${x}; expected finite numbers — fix the local training (diverged?) before secure aggregation`);
}

/** An unmasked, dequantized aggregate. */
export interface DequantizedSum {
  /** Σ w_i · clip(Δ_i), per coordinate */
  weightedSum: Float64Array;
  /** Σ w_i */
  totalWeight: number;
}

/**
 * Turn a summed vector (mod 2^32 or mod 2^bits) back into real numbers:
 * reduce mod 2^bits, lift to the centred range [−2^(bits−1), 2^(bits−1)),
 * divide by the scale. The last coordinate is the (unsigned) total weight.
 * @param sum - Σ of quantized vectors, length = parameters + 1
 * @param q - the settings every client used
 * @returns the weighted sum and the total weight
 * @throws RangeError if `sum` is empty
 */
export function dequantizeSum(sum: Uint32Array, q: ResolvedQuantization): DequantizedSum {
  if (!(sum instanceof Uint32Array)) throw new TypeError('dequantizeSum: sum: expected Uint32Array');
  if (sum.length < 1) throw new RangeError('dequantizeSum: sum: expected at least the weight coordinate');
  const n = sum.length - 1;
  const { mask } = q;
  const half = 2 ** (q.bits - 1);
  const modulus = 2 ** q.bits;
  const inv = 1 / q.scale;
  const weightedSum = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const v = (sum[j]! & mask) >>> 0;
    weightedSum[j] = (v >= half ? v - modulus : v) * inv;
  }
  return { weightedSum, totalWeight: (sum[n]! & mask) >>> 0 };
}

/**
 * Worst-case absolute error per coordinate of the dequantized weighted sum
 * of `clients` updates, from rounding alone (see the module notes).
 * @param q - resolved settings
 * @param clients - number of summed clients
 * @returns the bound, in the units of Δ·w
 */
export function quantizationErrorBound(q: ResolvedQuantization, clients: number): number {
  return (q.rounding === 'deterministic' ? 0.5 : 1) * clients / q.scale;
}
