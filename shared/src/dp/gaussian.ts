/**
 * Gaussian noise for DP-SGD and DP-FedAvg, drawn from a cryptographically
 * secure byte source (never Math.random).
 *
 * Box–Muller (Box & Muller 1958) on 53-bit uniforms; both outputs of each
 * pair are used. The byte source is injectable: production uses
 * `crypto.getRandomValues`; tests use {@link createSeededRandomSource}, a
 * ChaCha20 keystream (RFC 8439, via @noble/ciphers) that is reproducible from
 * a 32-byte seed.
 *
 * Security: the samples are float64 computations on uniform inputs, so they
 * inherit the known floating-point weaknesses of textbook samplers (Mironov
 * 2012, "On significance of the least significant bits for differential
 * privacy"; Jin et al. 2022, "Are we there yet? Timing and floating-point
 * attacks on differential privacy systems"). We do not guarantee resistance
 * to those attacks, nor constant-time sampling, nor wiping of the buffers.
 *
 * Pure: no I/O (randomness only).
 */
import { chacha20 } from '@noble/ciphers/chacha.js';

/** A source of uniformly random bytes (the shape of `crypto.getRandomValues`). */
export interface RandomSource {
  /**
   * Fill `bytes` with uniformly random bytes.
   * @param bytes - buffer to overwrite
   */
  fill(bytes: Uint8Array): void;
}

/** `crypto.getRandomValues` accepts at most 65,536 bytes per call. */
const GETRANDOM_MAX = 65536;

/** The platform CSPRNG (Web Crypto `getRandomValues`, available in Node ≥ 19 and browsers). */
export const cryptoRandomSource: RandomSource = Object.freeze({
  fill(bytes: Uint8Array): void {
    const c = (globalThis as { crypto?: { getRandomValues?: (b: Uint8Array) => Uint8Array } }).crypto;
    if (c === undefined || typeof c.getRandomValues !== 'function') {
      throw new Error('cryptoRandomSource: globalThis.crypto.getRandomValues is unavailable; run on Node >= 20 or pass a RandomSource');
    }
    for (let i = 0; i < bytes.length; i += GETRANDOM_MAX) c.getRandomValues(bytes.subarray(i, Math.min(bytes.length, i + GETRANDOM_MAX)));
  },
});

/** Keystream bytes generated per ChaCha20 call. */
const CHACHA_CHUNK = 4096;
/** RFC 8439 block counter is 32 bits; a stream ends before it wraps. */
const CHACHA_MAX_BLOCKS = 2 ** 32;

/**
 * A deterministic RandomSource: the ChaCha20 keystream (RFC 8439) under a
 * 32-byte seed. Reproducible, unpredictable without the seed; for tests and
 * for replaying a recorded run, never for fresh production noise.
 *
 * @param seed - 32-byte key
 * @param nonce - optional 12-byte nonce to derive independent streams from one seed (default all-zero)
 * @returns a RandomSource yielding the keystream in order
 * @throws RangeError on wrong seed/nonce lengths, or when 256 GiB have been drawn
 * @example
 * const rng = createSeededRandomSource(new Uint8Array(32).fill(7));
 * gaussianNoise(4, 1, rng); // same four numbers every run
 */
export function createSeededRandomSource(seed: Uint8Array, nonce: Uint8Array = new Uint8Array(12)): RandomSource {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new RangeError(`createSeededRandomSource: seed must be a 32-byte Uint8Array, got ${describe(seed)}`);
  if (!(nonce instanceof Uint8Array) || nonce.length !== 12) throw new RangeError(`createSeededRandomSource: nonce must be a 12-byte Uint8Array, got ${describe(nonce)}`);
  const key = seed.slice();
  const iv = nonce.slice();
  const zeros = new Uint8Array(CHACHA_CHUNK);
  const buf = new Uint8Array(CHACHA_CHUNK);
  let pos = CHACHA_CHUNK;
  let counter = 0;
  return {
    fill(bytes: Uint8Array): void {
      let off = 0;
      while (off < bytes.length) {
        if (pos === CHACHA_CHUNK) {
          if (counter + CHACHA_CHUNK / 64 > CHACHA_MAX_BLOCKS) throw new RangeError('createSeededRandomSource: keystream exhausted (256 GiB); use a new seed or nonce');
          chacha20(key, iv, zeros, buf, counter);
          counter += CHACHA_CHUNK / 64;
          pos = 0;
        }
        const take = Math.min(CHACHA_CHUNK - pos, bytes.length - off);
        bytes.set(buf.subarray(pos, pos + take), off);
        pos += take;
        off += take;
      }
    },
  };
}

const TWO_POW_53 = 2 ** 53;

/**
 * n independent samples of N(0, std²).
 *
 * Each pair takes 16 random bytes → two 53-bit integers k1, k2;
 * u1 = (k1 + 1)/2^53 ∈ (0, 1] (so log u1 is finite), u2 = k2/2^53 ∈ [0, 1);
 * z = sqrt(−2 ln u1)·(cos 2πu2, sin 2πu2).
 *
 * @param n - number of samples, integer ≥ 0
 * @param std - standard deviation ≥ 0 (for DP: noise multiplier × clipping norm); 0 returns zeros without drawing
 * @param rng - byte source (default {@link cryptoRandomSource})
 * @returns Float64Array of length n
 * @throws RangeError on invalid n or std
 * @example
 * const noise = gaussianNoise(update.length, sigma * clip);
 * for (let i = 0; i < update.length; i++) update[i] += noise[i];
 */
export function gaussianNoise(n: number, std: number, rng: RandomSource = cryptoRandomSource): Float64Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`gaussianNoise: n must be an integer >= 0, got ${String(n)}`);
  if (typeof std !== 'number' || !(std >= 0) || !Number.isFinite(std)) throw new RangeError(`gaussianNoise: std must be a finite number >= 0, got ${String(std)}`);
  if (rng === null || typeof rng !== 'object' || typeof rng.fill !== 'function') throw new TypeError('gaussianNoise: rng must be a RandomSource { fill(bytes) }');
  const out = new Float64Array(n);
  if (n === 0 || std === 0) return out; // no noise: draw nothing (and no −0 from r·sin)
  const pairs = Math.ceil(n / 2);
  const bytes = new Uint8Array(pairs * 16);
  rng.fill(bytes);
  const words = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let p = 0; p < pairs; p++) {
    const o = p * 16;
    // 53 bits = 21 high bits of one 32-bit word + 32 bits of the next.
    const k1 = (words.getUint32(o, true) >>> 11) * 2 ** 32 + words.getUint32(o + 4, true);
    const k2 = (words.getUint32(o + 8, true) >>> 11) * 2 ** 32 + words.getUint32(o + 12, true);
    const u1 = (k1 + 1) / TWO_POW_53;
    const u2 = k2 / TWO_POW_53;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    const t = 2 * Math.PI * u2;
    out[2 * p] = r * Math.cos(t);
    if (2 * p + 1 < n) out[2 * p + 1] = r * Math.sin(t);
  }
  return out;
}


function describe(x: unknown): string {
  if (x instanceof Uint8Array) return `${x.length} bytes`;
  return x === null ? 'null' : typeof x;
}
