/**
 * Seeded, reproducible pseudo-random numbers for data handling: train/test
 * splits, partitioning into partners, shuffling batches, synthetic data.
 *
 * **NOT for secrets.** xoshiro128** is a fast statistical generator whose
 * whole state can be recovered from a few outputs. Never use it for keys,
 * masks, nonces, DP noise or anything an adversary must not predict; those
 * come from `crypto.getRandomValues` or the crypto module's PRG.
 *
 * Generator: xoshiro128** 1.1 (D. Blackman, S. Vigna, "Scrambled linear
 * pseudorandom number generators", ACM TOMS 2021; reference code
 * https://prng.di.unimi.it/xoshiro128starstar.c). Seeds are expanded into the
 * 128-bit state with SplitMix32, so nearby seeds give unrelated streams.
 *
 * Pure: no I/O, no globals, no `Math.random`.
 */

/** A source of uniform 32-bit words; everything else is derived from it. */
export interface Rng {
  /** Next uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Next uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number;
}

const TWO_POW_32 = 4294967296;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * xoshiro128** over an explicit 128-bit state. Prefer {@link createSeededRng};
 * the state constructor exists for known-answer tests against the reference C.
 *
 * NOT cryptographically secure: see the module doc.
 */
export class Xoshiro128StarStar implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param state - four 32-bit words, not all zero (an all-zero state only ever yields zeros)
   * @throws TypeError if `state` is not 4 integers; RangeError if all zero
   */
  constructor(state: ArrayLike<number>) {
    if (state == null || state.length !== 4) throw new TypeError('Xoshiro128StarStar: state must be 4 uint32 words');
    for (let i = 0; i < 4; i++) {
      const w = state[i];
      if (typeof w !== 'number' || !Number.isInteger(w)) throw new TypeError(`Xoshiro128StarStar: state[${i}] must be an integer, got ${String(w)}`);
    }
    this.s0 = state[0]! | 0;
    this.s1 = state[1]! | 0;
    this.s2 = state[2]! | 0;
    this.s3 = state[3]! | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new RangeError('Xoshiro128StarStar: state must not be all zero');
  }

  /** @returns next uniform integer in [0, 2^32) */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** @returns next uniform float in [0, 1) */
  nextFloat(): number {
    return this.nextUint32() / TWO_POW_32;
  }
}

/** SplitMix32 step (the 32-bit variant of Steele et al.'s SplitMix): a good integer hash for seeding. */
function splitMix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * Create a reproducible generator from an integer seed. The same seed gives
 * the same stream on every platform and Node version.
 *
 * NOT for secrets (see the module doc).
 *
 * @param seed - any safe integer (negative allowed; all 53 bits are used)
 * @returns a fresh generator
 * @throws TypeError if `seed` is not a safe integer
 * @example
 * const rng = createSeededRng(42);
 * const i = randomInt(rng, 10); // 0..9, same on every run
 */
export function createSeededRng(seed: number): Rng {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new TypeError(`createSeededRng: seed must be a safe integer, got ${String(seed)}`);
  }
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  // Mix the high word in so that seeds differing only above bit 32 differ.
  let x = (lo ^ Math.imul(splitMix32(hi), 0x85ebca6b)) | 0;
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) | 0;
    state[i] = splitMix32(x);
  }
  if ((state[0]! | state[1]! | state[2]! | state[3]!) === 0) state[0] = 1;
  return new Xoshiro128StarStar(state);
}

/**
 * Uniform integer in [0, maxExclusive), without modulo bias (Lemire-style
 * rejection on the 32-bit word).
 *
 * @param rng - the generator
 * @param maxExclusive - upper bound, an integer in [1, 2^32]
 * @returns an integer in [0, maxExclusive)
 * @throws RangeError if `maxExclusive` is out of range
 */
export function randomInt(rng: Rng, maxExclusive: number): number {
  if (!Number.isInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > TWO_POW_32) {
    throw new RangeError(`randomInt: maxExclusive must be an integer in [1, 2^32], got ${String(maxExclusive)}`);
  }
  // Reject the top partial block so every residue is equally likely.
  const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
  for (;;) {
    const r = rng.nextUint32();
    if (r < limit) return r % maxExclusive;
  }
}

/** Anything indexable and writable: arrays and typed arrays. */
export interface MutableArrayLike<T> {
  length: number;
  [index: number]: T;
}

/**
 * Fisher–Yates shuffle in place (Knuth, TAOCP vol. 2, Algorithm P).
 *
 * @param array - array or typed array to permute
 * @param rng - the generator (a seeded one for reproducibility)
 * @returns the same array, permuted
 */
export function shuffleInPlace<A extends MutableArrayLike<unknown>>(array: A, rng: Rng): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}
