/**
 * The two data-independent pieces of DP-SGD (Abadi et al. 2016, Algorithm 1)
 * every task's `recordDp` shares: Poisson sampling of the examples of a step
 * and the per-example clip factor. Pure (the byte source is passed in).
 */
import { FedmartError } from '../errors.ts';
import { cryptoRandomSource, type RandomSource } from './gaussian.ts';

/**
 * Shrinks every clip factor by one part in 10⁹, so that float64 rounding in
 * ‖a‖·‖δ‖ can never let a clipped per-example gradient land above C.
 */
const CLIP_SAFETY = 1 - 1e-9;

/**
 * The factor min(1, C/‖g‖)·(1 − 10⁻⁹) applied to a per-example gradient of squared norm `sqNorm`.
 * @param sqNorm - ‖g‖²
 * @param clip - C > 0
 * @returns a factor in (0, 1]
 */
export function perExampleClipFactor(sqNorm: number, clip: number): number {
  const norm = Math.sqrt(sqNorm);
  if (!Number.isFinite(norm)) throw new FedmartError('INVALID_UPDATE', `a per-example gradient is not finite (norm ${norm}); the weights diverged — lower the learning rate`);
  return norm * CLIP_SAFETY <= clip ? 1 : (clip / norm) * CLIP_SAFETY;
}

/**
 * Poisson sampling: each of n rows independently with probability q, from
 * 32-bit CSPRNG words. The inclusion probability is ⌊q·2³²⌋/2³² ≤ q, so
 * accounting at q is (negligibly) conservative.
 * @param n - number of rows
 * @param q - inclusion probability in (0, 1]
 * @param out - receives the sampled row indices (length ≥ n)
 * @param rng - byte source (default: platform CSPRNG)
 * @returns how many rows were sampled (the first entries of `out`)
 */
export function poissonSample(n: number, q: number, out: Int32Array, rng: RandomSource = cryptoRandomSource): number {
  if (!(q > 0 && q <= 1)) throw new RangeError(`poissonSample: q must be in (0, 1], got ${String(q)}`);
  const words = new Uint32Array(n);
  rng.fill(new Uint8Array(words.buffer));
  const threshold = Math.floor(q * 2 ** 32);
  let count = 0;
  for (let i = 0; i < n; i++) if (words[i]! < threshold) out[count++] = i;
  return count;
}
