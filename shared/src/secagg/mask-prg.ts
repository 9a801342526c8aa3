/**
 * The mask PRG of secure aggregation (Bonawitz et al., CCS 2017, §4 "PRG";
 * protocol `fedmart/secagg+/v3`): a 256-bit seed is expanded into a mask of
 * uint32 words by AES-256 in counter mode (NIST SP 800-38A §6.5; the
 * construction behind NIST SP 800-90A's CTR_DRBG), key = the seed, initial
 * counter block = 0^128 (the 128-bit block counter increments big-endian),
 * word i = keystream bytes [4i, 4i+4) read little-endian.
 *
 * Every seed is single-purpose, so the fixed initial counter block is safe:
 * pairwise seeds come from HKDF-SHA256 bound to the protocol, purpose, round
 * and pair (`keys.ts`), self-mask seeds are fresh 32 CSPRNG bytes per round.
 * A mask of at most 2^28 words is 2^26 AES blocks, far below the 2^64-block
 * bound beyond which AES-CTR output is distinguishable from random.
 *
 * Why AES-CTR and not ChaCha20 (the v2 mask PRG): the server re-expands one
 * mask per survivor and one per (dropped client, surviving neighbour), the
 * hot loop of the protocol. node:crypto's `cipher.update` returns a freshly
 * allocated Buffer per call (it cannot write into a caller's buffer), so each
 * 64 KiB chunk is released as soon as it is summed ({@link releaseChunk}) and
 * malloc hands the same memory back for the next one; with AES-NI/VAES
 * OpenSSL's AES-CTR produces the chunks with less CPU than its ChaCha20 here
 * (measured in `fedmart bench secagg`, see README). Masks are applied block by
 * block: every stream's next 64 KiB is added into the same 64 KiB of the
 * accumulator while it is in cache.
 *
 * Tests: NIST SP 800-38A F.5.5 known-answer vector and equality with the
 * independent `@noble/ciphers` AES-CTR (`mask-prg.test.ts`).
 */
import { createCipheriv } from 'node:crypto';
import { assertBytes, assertInteger } from '../crypto/bytes.ts';
import { addWords as add1, addWords4 as add4, subtractWords as sub1, subtractWords4 as sub4 } from '../crypto/prg.ts';
import { Z32Accumulator, simdAvailable } from './z32-simd.ts';

/** Mask seed length in bytes (an AES-256 key). */
export const MASK_SEED_BYTES = 32;
/** Largest mask, in words (1 GiB). */
export const MASK_MAX_WORDS = 2 ** 28;

/** Words per chunk: 64 KiB of keystream per `cipher.update` (measured best of 16/64/256 KiB on the unmasking path). */
const CHUNK_WORDS = 16_384;
const ZERO_CHUNK = new Uint8Array(CHUNK_WORDS * 4);
const ZERO_COUNTER_BLOCK = new Uint8Array(16);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

type Stream = ReturnType<typeof createCipheriv>;

/**
 * A closed port: an ArrayBuffer posted in its transfer list is detached and,
 * the message being dropped, its memory is freed at once instead of at the
 * next GC (see {@link releaseChunk}).
 */
const DROP_PORT: InstanceType<typeof MessageChannel>["port1"] | null = (() => {
  // The global MessageChannel (Node ≥ 15 and browsers): shared/ imports no Node-only module.
  if (typeof MessageChannel !== 'function') return null;
  const { port1, port2 } = new MessageChannel();
  port2.close();
  port1.close();
  return port1;
})();

/**
 * Free a keystream chunk now. `cipher.update` returns a fresh Buffer per call
 * and V8 frees external memory only when it collects, so unmasking piles up
 * ~100 MB of dead keystream; on a host where every newly touched page costs a
 * hypervisor fault (this VM: ~25 µs per 4 KiB page) that, not AES, was most of
 * the server's time. Detaching the Buffer's own ArrayBuffer hands the same
 * 64 KiB back to malloc, which reuses it for the next chunk (memory stays hot).
 * Only a Buffer that owns its whole ArrayBuffer is released (never a slice of
 * a shared pool). Exported for its test.
 * @param bytes - a chunk nobody reads again
 */
export function releaseChunk(bytes: Uint8Array): void {
  const buffer = bytes.buffer;
  if (bytes.byteOffset !== 0 || buffer.byteLength !== bytes.byteLength || !(buffer instanceof ArrayBuffer)) return;
  DROP_PORT?.postMessage(null, [buffer]);
}

/** One mask: the seed to expand and whether to add (1) or subtract (−1) it. */
export interface SignedMask {
  seed: Uint8Array;
  sign: 1 | -1;
}

function openStream(seed: Uint8Array, counterBlock: Uint8Array = ZERO_COUNTER_BLOCK): Stream {
  return createCipheriv('aes-256-ctr', seed, counterBlock);
}

/** The next `n` (≤ CHUNK_WORDS) keystream words as int32; pass them to {@link doneWith} once used. */
function nextWords(stream: Stream, n: number): Int32Array {
  const bytes = stream.update(n === CHUNK_WORDS ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n * 4));
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Int32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 4);
  for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
  releaseChunk(bytes);
  return out;
}

/** Release the chunks from {@link nextWords}; they must not be read afterwards. */
function doneWith(...chunks: Int32Array[]): void {
  for (const c of chunks) releaseChunk(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
}

function applyChunk(target: Int32Array, streams: Stream[], offset: number, n: number, add: boolean): void {
  const one = add ? add1 : sub1;
  const four = add ? add4 : sub4;
  let k = 0;
  for (; k + 4 <= streams.length; k += 4) {
    const chunks = [nextWords(streams[k]!, n), nextWords(streams[k + 1]!, n), nextWords(streams[k + 2]!, n), nextWords(streams[k + 3]!, n)] as const;
    four(target, ...chunks, offset);
    doneWith(...chunks);
  }
  for (; k < streams.length; k++) {
    const chunk = nextWords(streams[k]!, n);
    one(target, chunk, offset);
    doneWith(chunk);
  }
}

function checkMasks(label: string, target: unknown, masks: unknown): asserts masks is readonly SignedMask[] {
  if (!(target instanceof Uint32Array)) throw new TypeError(`${label}: target: expected Uint32Array`);
  assertInteger(`${label}: target.length`, target.length, 0, MASK_MAX_WORDS);
  if (!Array.isArray(masks)) throw new TypeError(`${label}: masks: expected an array of { seed, sign }`);
  masks.forEach((m: unknown, i) => {
    if (typeof m !== 'object' || m === null) throw new TypeError(`${label}: masks[${i}]: expected { seed, sign }`);
    const { seed, sign } = m as { seed?: unknown; sign?: unknown };
    assertBytes(`${label}: masks[${i}].seed`, seed, MASK_SEED_BYTES);
    if (sign !== 1 && sign !== -1) throw new RangeError(`${label}: masks[${i}].sign: expected 1 or -1, got ${String(sign)}`);
  });
}

/**
 * A running sum in Z_2^32 that masked inputs are added to and masks removed
 * from: the WebAssembly SIMD accumulator of `z32-simd.ts` when the host has
 * it, the Int32 loops of `crypto/prg.ts` otherwise (same result, word for word).
 */
export class MaskedSum {
  readonly length: number;
  #simd: Z32Accumulator | null;
  #js: Int32Array | null;

  /**
   * @param length - words
   * @param opts - `simd: false` forces the JavaScript path (tests compare both)
   */
  constructor(length: number, opts: { simd?: boolean } = {}) {
    assertInteger('MaskedSum: length', length, 0, MASK_MAX_WORDS);
    this.length = length;
    this.#simd = opts.simd !== false && simdAvailable() ? new Z32Accumulator(length, CHUNK_WORDS) : null;
    this.#js = this.#simd ? null : new Int32Array(length);
  }

  /** Overwrite the sum with `x`. */
  load(x: Uint32Array): void {
    if (this.#simd) this.#simd.load(x);
    else this.#js!.set(new Int32Array(x.buffer, x.byteOffset, this.length));
  }

  /**
   * sum ± x.
   * @param x - `length` words
   * @param sign - 1 or −1
   */
  add(x: Uint32Array, sign: 1 | -1): void {
    if (this.#simd) return this.#simd.add(x, sign);
    const v = new Int32Array(x.buffer, x.byteOffset, this.length);
    (sign === 1 ? add1 : sub1)(this.#js!, v, 0);
  }

  /**
   * sum ± every mask's expansion, block by block: every stream's next 64 KiB
   * is produced and added into the same 64 KiB of the sum while it is in cache.
   * @param masks - 32-byte seeds and signs
   */
  addMasks(masks: readonly SignedMask[]): void {
    checkMasks('MaskedSum.addMasks', new Uint32Array(0), masks);
    const plus = masks.filter((m) => m.sign === 1).map((m) => openStream(m.seed));
    const minus = masks.filter((m) => m.sign === -1).map((m) => openStream(m.seed));
    for (let offset = 0; offset < this.length; offset += CHUNK_WORDS) {
      const n = Math.min(CHUNK_WORDS, this.length - offset);
      for (const [streams, sign] of [[plus, 1], [minus, -1]] as const) {
        if (this.#simd) applyChunkSimd(this.#simd, streams, offset, n, sign);
        else applyChunk(this.#js!, streams, offset, n, sign === 1);
      }
    }
  }

  /** The sum as words (a copy, or into `out`). */
  read(out: Uint32Array = new Uint32Array(this.length)): Uint32Array {
    if (this.#simd) return this.#simd.read(out);
    new Int32Array(out.buffer, out.byteOffset, this.length).set(this.#js!);
    return out;
  }

  /** Zero the sum and any staged keystream. */
  wipe(): void {
    if (this.#simd) this.#simd.wipe();
    else this.#js!.fill(0);
  }
}

function stageChunk(acc: Z32Accumulator, slot: number, chunk: Int32Array): void {
  acc.stage(slot, chunk);
  doneWith(chunk);
}

function applyChunkSimd(acc: Z32Accumulator, streams: Stream[], offset: number, n: number, sign: 1 | -1): void {
  let k = 0;
  for (; k + 4 <= streams.length; k += 4) {
    for (let q = 0; q < 4; q++) stageChunk(acc, q, nextWords(streams[k + q]!, n));
    acc.addSlots(offset, n, 4, sign);
  }
  for (; k < streams.length; k++) {
    stageChunk(acc, 0, nextWords(streams[k]!, n));
    acc.addSlots(offset, n, 1, sign);
  }
}

/**
 * Add or subtract every mask's expansion into `target`, word by word modulo
 * 2^32 (addition commutes, so order does not matter). Clients mask their
 * input this way; the server removes survivors' self masks and dropped
 * clients' pairwise masks the same way through {@link MaskedSum}
 * (Bonawitz et al. 2017, §4, round 4).
 * @param target - accumulator, modified in place; its length is the number of words expanded
 * @param masks - 32-byte seeds and signs
 * @returns `target`
 * @throws TypeError/RangeError on wrong-typed arguments
 * @example
 * addMasks(y, [{ seed: selfSeed, sign: 1 }, { seed: pairSeed, sign: -1 }]);
 */
export function addMasks(target: Uint32Array, masks: readonly SignedMask[]): Uint32Array {
  checkMasks('addMasks', target, masks);
  const sum = new MaskedSum(target.length);
  try {
    sum.load(target);
    sum.addMasks(masks);
    return sum.read(target);
  } finally {
    sum.wipe();
  }
}

/**
 * Add (`sign` = 1) or subtract (`sign` = −1) one seed's mask into `target`.
 * @param target - accumulator, modified in place
 * @param seed - 32-byte seed
 * @param sign - 1 or −1
 * @returns `target`
 * @throws TypeError/RangeError on wrong-typed arguments
 */
export function addMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): Uint32Array {
  return addMasks(target, [{ seed, sign }]);
}

/**
 * The mask itself: `words` uint32 words of AES-256-CTR keystream under `seed`.
 * @param seed - 32-byte seed
 * @param words - length, 0..2^28
 * @param counterBlock - initial 16-byte counter block; the protocol always uses 0^128, other values exist for the SP 800-38A vectors
 * @returns the mask
 * @throws TypeError/RangeError on wrong-typed arguments
 */
export function expandMask(seed: Uint8Array, words: number, counterBlock: Uint8Array = ZERO_COUNTER_BLOCK): Uint32Array {
  assertBytes('expandMask: seed', seed, MASK_SEED_BYTES);
  assertInteger('expandMask: words', words, 0, MASK_MAX_WORDS);
  assertBytes('expandMask: counterBlock', counterBlock, 16);
  const out = new Int32Array(words);
  const stream = openStream(seed, counterBlock);
  for (let offset = 0; offset < words; offset += CHUNK_WORDS) {
    const chunk = nextWords(stream, Math.min(CHUNK_WORDS, words - offset));
    out.set(chunk, offset);
    doneWith(chunk);
  }
  return new Uint32Array(out.buffer);
}
