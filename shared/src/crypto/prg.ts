/**
 * Seed-expanding pseudo-random generator: the ChaCha20 keystream (RFC 8439
 * §2.4) under a 256-bit seed, read as little-endian uint32 words.
 *
 * Secure aggregation expands one seed per mask into a vector as long as the
 * model (Bonawitz et al., CCS 2017, §4 "PRG"), and the server re-expands the
 * masks of every dropped client and every survivor's self mask, so this is
 * the hot loop of the protocol. It streams node:crypto's (OpenSSL) ChaCha20,
 * which is 5–10× faster than a JS implementation, in 16 KiB chunks added
 * straight into the accumulator; the tests check it against
 * the RFC 8439 Appendix A.1 / §2.3.2 vectors and against `@noble/ciphers`.
 *
 * The keystream is a PRG only while each (seed, nonce) pair is used once per
 * purpose: derive seeds with HKDF and a purpose/round label.
 */
import { createCipheriv } from 'node:crypto';
import { assertBytes, assertInteger } from './bytes.ts';

/** Seed length in bytes (a ChaCha20 key). */
export const PRG_SEED_BYTES = 32;
/** Nonce length in bytes (RFC 8439 96-bit nonce). */
export const PRG_NONCE_BYTES = 12;
/** Largest number of words one call may expand (1 GiB of keystream); far above any model. */
export const PRG_MAX_WORDS = 2 ** 28;

/**
 * Words per streamed chunk: 16 KiB of keystream. `cipher.update` returns a
 * fresh Buffer per call; at 64 KiB and above Node allocates each one outside
 * its pool (measured 3x slower on the server's unmasking path), at 4 KiB the
 * per-call cost dominates. 16 KiB also keeps the chunk in L1/L2 while it is
 * added into the accumulator.
 */
const CHUNK_WORDS = 4096;
const ZERO_CHUNK = new Uint8Array(CHUNK_WORDS * 4);
const ZERO_NONCE = new Uint8Array(PRG_NONCE_BYTES);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Where in the ChaCha20 stream to start (RFC 8439 §2.3: 32-bit block counter, 96-bit nonce). */
export interface PrgOptions {
  /** 12-byte nonce; defaults to all zeros (safe because each seed is single-purpose). */
  nonce?: Uint8Array;
  /** initial block counter, default 0 */
  counter?: number;
}

function checkOptions(label: string, words: number, opts: PrgOptions | undefined): { nonce: Uint8Array; counter: number } {
  assertInteger(`${label}: words`, words, 0, PRG_MAX_WORDS);
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw new TypeError(`${label}: opts: expected an object`);
  const nonce = opts?.nonce === undefined ? ZERO_NONCE : assertBytes(`${label}: opts.nonce`, opts.nonce, PRG_NONCE_BYTES);
  const counter = opts?.counter === undefined ? 0 : assertInteger(`${label}: opts.counter`, opts.counter, 0, 0xffffffff);
  // The 32-bit block counter must not wrap inside one expansion (OpenSSL would carry into the nonce).
  if (counter + Math.ceil(words / 16) > 2 ** 32) throw new RangeError(`${label}: counter ${counter} + ${words} words overflows the 32-bit ChaCha20 block counter`);
  return { nonce, counter };
}

/** OpenSSL's chacha20 IV is counter (4 bytes, little-endian) ‖ nonce (12 bytes). */
function openStream(seed: Uint8Array, nonce: Uint8Array, counter: number) {
  const iv = new Uint8Array(16);
  new DataView(iv.buffer).setUint32(0, counter, true);
  iv.set(nonce, 4);
  return createCipheriv('chacha20', seed, iv);
}

/** View keystream bytes as little-endian uint32 words, copying only when unaligned or on big-endian hosts. */
function asWords(bytes: Uint8Array, words: number): Uint32Array {
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, words);
  const out = new Uint32Array(words);
  const view = new DataView(bytes.buffer, bytes.byteOffset, words * 4);
  for (let i = 0; i < words; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/** The next `n` (≤ CHUNK_WORDS) keystream words of an open stream; valid until the next call. */
function nextWords(cipher: ReturnType<typeof openStream>, n: number): Uint32Array {
  return asWords(cipher.update(n === CHUNK_WORDS ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n * 4)), n);
}

/*
 * Z_2^32 accumulation on Int32Array views: `(a ± b) | 0` is exactly the
 * wrapping 32-bit sum, and V8 keeps int32 values untagged, where Uint32
 * words above 2^31 would be boxed as doubles. Monomorphic, allocation-free.
 */
/** @internal also used by the secure-aggregation mask PRG (`secagg/mask-prg.ts`). */
export function addWords(target: Int32Array, chunk: Int32Array, offset: number): void {
  const n = chunk.length;
  for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! + chunk[i]!) | 0;
}

/** @internal also used by the secure-aggregation mask PRG (`secagg/mask-prg.ts`). */
export function subtractWords(target: Int32Array, chunk: Int32Array, offset: number): void {
  const n = chunk.length;
  for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! - chunk[i]!) | 0;
}

/** target += a + b + c + d: one load/store of target for four masks (the sum of five int32 is exact in a double before `| 0`). */
/** @internal also used by the secure-aggregation mask PRG (`secagg/mask-prg.ts`). */
export function addWords4(target: Int32Array, a: Int32Array, b: Int32Array, c: Int32Array, d: Int32Array, offset: number): void {
  const n = a.length;
  for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! + a[i]! + b[i]! + c[i]! + d[i]!) | 0;
}

/** @internal also used by the secure-aggregation mask PRG (`secagg/mask-prg.ts`). */
export function subtractWords4(target: Int32Array, a: Int32Array, b: Int32Array, c: Int32Array, d: Int32Array, offset: number): void {
  const n = a.length;
  for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! - a[i]! - b[i]! - c[i]! - d[i]!) | 0;
}

/**
 * Add (or subtract) the next `n` words of every stream into target[offset…],
 * four streams at a time. Each group's chunks are generated right before
 * they are consumed, so they are still in L1/L2 when added (generating every
 * stream's chunk first would push megabytes through the cache).
 */
function applyStreams(target: Int32Array, streams: ReturnType<typeof openStream>[], offset: number, n: number, add: boolean): void {
  const one = add ? addWords : subtractWords;
  const four = add ? addWords4 : subtractWords4;
  const next = (k: number) => asInt32(nextWords(streams[k]!, n));
  let k = 0;
  for (; k + 4 <= streams.length; k += 4) four(target, next(k), next(k + 1), next(k + 2), next(k + 3), offset);
  for (; k < streams.length; k++) one(target, next(k), offset);
}

const asInt32 = (w: Uint32Array): Int32Array => new Int32Array(w.buffer, w.byteOffset, w.length);

/**
 * Expand a seed into `words` uint32 words of ChaCha20 keystream.
 * @param seed - 32-byte seed (ChaCha20 key)
 * @param words - number of uint32 words, 0..2^28
 * @param opts - nonce and initial block counter (RFC 8439 §2.3)
 * @returns the words; word i is keystream bytes [4i, 4i+4) read little-endian
 * @throws TypeError/RangeError on wrong-typed arguments or counter overflow
 * @example
 * const mask = expandSeed(seed, 100_000);
 */
export function expandSeed(seed: Uint8Array, words: number, opts?: PrgOptions): Uint32Array {
  assertBytes('expandSeed: seed', seed, PRG_SEED_BYTES);
  const { nonce, counter } = checkOptions('expandSeed', words, opts);
  const out = new Uint32Array(words);
  const cipher = openStream(seed, nonce, counter);
  for (let offset = 0; offset < words; offset += CHUNK_WORDS) out.set(nextWords(cipher, Math.min(CHUNK_WORDS, words - offset)), offset);
  return out;
}

/**
 * Add (`sign` = 1) or subtract (`sign` = -1) the expansion of `seed` into
 * `target`, word by word modulo 2^32, without materialising the mask.
 * This is how masks are applied and removed (Bonawitz et al. 2017, §4).
 * @param target - accumulator, modified in place; its length is the number of words expanded
 * @param seed - 32-byte seed
 * @param sign - 1 to add the mask, -1 to subtract it
 * @param opts - nonce and initial block counter
 * @returns `target`
 * @throws TypeError/RangeError on wrong-typed arguments
 */
export function addExpandedSeed(target: Uint32Array, seed: Uint8Array, sign: 1 | -1, opts?: PrgOptions): Uint32Array {
  if (!(target instanceof Uint32Array)) throw new TypeError('addExpandedSeed: target: expected Uint32Array');
  assertBytes('addExpandedSeed: seed', seed, PRG_SEED_BYTES);
  if (sign !== 1 && sign !== -1) throw new RangeError(`addExpandedSeed: sign: expected 1 or -1, got ${String(sign)}`);
  const { nonce, counter } = checkOptions('addExpandedSeed', target.length, opts);
  const acc = asInt32(target);
  const apply = sign === 1 ? addWords : subtractWords;
  const cipher = openStream(seed, nonce, counter);
  for (let offset = 0; offset < target.length; offset += CHUNK_WORDS) apply(acc, asInt32(nextWords(cipher, Math.min(CHUNK_WORDS, target.length - offset))), offset);
  return target;
}

/** One mask of {@link addExpandedSeeds}: the seed to expand and whether to add (1) or subtract (−1) it. */
export interface SignedSeed {
  seed: Uint8Array;
  sign: 1 | -1;
}

/**
 * Add or subtract many seeds' expansions into `target` at once, modulo 2^32:
 * the same result as calling {@link addExpandedSeed} for each, in any order
 * (addition in Z_2^32 commutes). The work is done block by block — every
 * stream's next 16 KiB is added into the same 16 KiB of `target` while it
 * is still in cache — instead of one full pass over `target` per mask. The
 * server unmasks this way (all survivors' self masks and all dropped
 * clients' pairwise masks; Bonawitz et al. 2017, §4, round 4), and a client
 * masks its input this way.
 * @param target - accumulator, modified in place; its length is the number of words expanded
 * @param masks - seeds (32 bytes each) and signs; the nonce is zero and the counter starts at 0
 * @returns `target`
 * @throws TypeError/RangeError on wrong-typed arguments
 * @example
 * addExpandedSeeds(sum, [{ seed: selfSeed, sign: -1 }, { seed: pairSeed, sign: 1 }]);
 */
export function addExpandedSeeds(target: Uint32Array, masks: readonly SignedSeed[]): Uint32Array {
  if (!(target instanceof Uint32Array)) throw new TypeError('addExpandedSeeds: target: expected Uint32Array');
  if (!Array.isArray(masks)) throw new TypeError('addExpandedSeeds: masks: expected an array of { seed, sign }');
  masks.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new TypeError(`addExpandedSeeds: masks[${i}]: expected { seed, sign }`);
    assertBytes(`addExpandedSeeds: masks[${i}].seed`, m.seed, PRG_SEED_BYTES);
    if (m.sign !== 1 && m.sign !== -1) throw new RangeError(`addExpandedSeeds: masks[${i}].sign: expected 1 or -1, got ${String(m.sign)}`);
  });
  checkOptions('addExpandedSeeds', target.length, undefined);
  const acc = asInt32(target);
  const plus = masks.filter((m) => m.sign === 1).map((m) => openStream(m.seed, ZERO_NONCE, 0));
  const minus = masks.filter((m) => m.sign === -1).map((m) => openStream(m.seed, ZERO_NONCE, 0));
  for (let offset = 0; offset < target.length; offset += CHUNK_WORDS) {
    const n = Math.min(CHUNK_WORDS, target.length - offset);
    applyStreams(acc, plus, offset, n, true);
    applyStreams(acc, minus, offset, n, false);
  }
  return target;
}
