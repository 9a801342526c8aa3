/**
 * Wrapping 32-bit vector accumulation (Z_2^32, the group secure aggregation
 * masks and sums in) as a WebAssembly SIMD kernel: `i32x4.add`/`i32x4.sub`
 * over 16-byte lanes, four sources per pass. The server adds every masked
 * input and removes hundreds of 400 kB masks (Bonawitz et al. 2017, §4,
 * round 4); in JavaScript each word costs a typed-array load, a tagged add
 * and a store, while one SIMD instruction adds four. Measured on the
 * unmasking path (280 masks × 100 001 words, keystream chunks already made):
 * 28 ms of CPU in the JS loop, 3.8 ms for copy-in plus SIMD (README).
 *
 * The module is 200-odd bytes assembled below (no toolchain, no dependency):
 * one exported memory and four functions `add4/sub4(dst, a, b, c, d, n)` and
 * `add1/sub1(dst, a, n)` with byte offsets and a byte count that is a
 * multiple of 16. Each {@link Z32Accumulator} owns its own instance and
 * memory, so concurrent rounds never share state.
 *
 * WebAssembly memory is little-endian; on a big-endian host, or where SIMD
 * is not supported, {@link simdAvailable} is false and callers use their
 * JavaScript loops. Tested against the JS reference (`z32-simd.test.ts`).
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
const section = (id: number, bytes: number[]): number[] => [id, ...leb128(bytes.length), ...bytes];
const vector = (items: number[][]): number[] => [...leb128(items.length), ...items.flat()];
const name = (s: string): number[] => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];

const I32 = 0x7f;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_GE_U = 0x4f;
const V128_LOAD = [0xfd, 0x00, 0x04, 0x00]; // align 2^4, offset 0
const V128_STORE = [0xfd, 0x0b, 0x04, 0x00];
const I32X4_ADD = [0xfd, 0xae, 0x01];
const I32X4_SUB = [0xfd, 0xb1, 0x01];

/** dst[i] = dst[i] op src_1[i] op … op src_k[i] for i < n/4 (params: dst, src_1..src_k, n; one local: end). */
function kernel(sources: number, op: number[]): number[] {
  const n = sources + 1;
  const end = sources + 2;
  const code = [LOCAL_GET, 0, LOCAL_GET, n, I32_ADD, LOCAL_SET, end];
  code.push(0x02, 0x40, 0x03, 0x40); // block, loop
  code.push(LOCAL_GET, 0, LOCAL_GET, end, I32_GE_U, 0x0d, 1); // br_if out when dst ≥ end
  code.push(LOCAL_GET, 0, LOCAL_GET, 0, ...V128_LOAD);
  for (let k = 1; k <= sources; k++) code.push(LOCAL_GET, k, ...V128_LOAD, ...op);
  code.push(...V128_STORE);
  for (let k = 0; k <= sources; k++) code.push(LOCAL_GET, k, I32_CONST, 16, I32_ADD, LOCAL_SET, k);
  code.push(0x0c, 0, 0x0b, 0x0b, 0x0b); // br loop, end loop, end block, end func
  const body = [1, 1, I32, ...code];
  return [...leb128(body.length), ...body];
}

const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vector([
    [0x60, ...vector([[I32], [I32], [I32], [I32], [I32], [I32]]), 0],
    [0x60, ...vector([[I32], [I32], [I32]]), 0],
  ])),
  ...section(3, vector([[0], [0], [1], [1]])),
  ...section(5, vector([[0x00, 1]])),
  ...section(7, vector([
    [...name('m'), 0x02, 0],
    [...name('add4'), 0x00, 0],
    [...name('sub4'), 0x00, 1],
    [...name('add1'), 0x00, 2],
    [...name('sub1'), 0x00, 3],
  ])),
  ...section(10, vector([kernel(4, I32X4_ADD), kernel(4, I32X4_SUB), kernel(1, I32X4_ADD), kernel(1, I32X4_SUB)])),
]);

/* The shared package compiles without DOM/WebAssembly lib types; this is the part of the API used. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;
function compiledModule(): object | null {
  if (compiled === undefined) compiled = LITTLE_ENDIAN && wasm !== undefined && wasm.validate(MODULE_BYTES) ? new wasm.Module(MODULE_BYTES) : null;
  return compiled;
}

/** Whether the SIMD kernel can run here (little-endian host with WebAssembly SIMD). */
export function simdAvailable(): boolean {
  return compiledModule() !== null;
}

interface Kernel {
  m: WasmMemory;
  add4(d: number, a: number, b: number, c: number, e: number, n: number): void;
  sub4(d: number, a: number, b: number, c: number, e: number, n: number): void;
  add1(d: number, a: number, n: number): void;
  sub1(d: number, a: number, n: number): void;
}

const PAGE = 65_536;
const pad16 = (bytes: number) => (bytes + 15) & ~15;

/**
 * A Z_2^32 vector of `length` words living in WebAssembly memory, plus four
 * scratch slots of `slotWords` words that sources are copied into.
 *
 * @example
 * const acc = new Z32Accumulator(y.length, 16_384);
 * acc.add(y, 1);
 * const sum = acc.read();
 */
export class Z32Accumulator {
  readonly length: number;
  readonly slotWords: number;
  #k: Kernel;
  #slots: number[];

  /**
   * @param length - words in the vector
   * @param slotWords - capacity of each of the four scratch slots, in words
   * @throws Error when {@link simdAvailable} is false
   */
  constructor(length: number, slotWords: number) {
    const module = compiledModule();
    if (!Number.isSafeInteger(slotWords) || slotWords <= 0 || slotWords % 4 !== 0) throw new RangeError(`Z32Accumulator: slotWords: expected a positive multiple of 4, got ${slotWords}`);
    if (!module) throw new Error('Z32Accumulator: WebAssembly SIMD is not available on this host; use the JavaScript path');
    this.length = length;
    this.slotWords = slotWords;
    const accBytes = pad16(4 * length);
    const slotBytes = pad16(4 * slotWords);
    this.#k = new wasm!.Instance(module, {}).exports as Kernel;
    const need = accBytes + 4 * slotBytes;
    const have = this.#k.m.buffer.byteLength;
    if (need > have) this.#k.m.grow(Math.ceil((need - have) / PAGE));
    this.#slots = [0, 1, 2, 3].map((i) => accBytes + i * slotBytes);
  }

  #words(byteOffset: number, words: number): Int32Array {
    return new Int32Array(this.#k.m.buffer, byteOffset, words);
  }

  /** Overwrite the vector with `x` (length words). */
  load(x: Uint32Array | Int32Array): void {
    this.#words(0, this.length).set(new Int32Array(x.buffer, x.byteOffset, this.length));
  }

  /** Copy the vector out into `out` (default: a new Uint32Array). */
  read(out: Uint32Array = new Uint32Array(this.length)): Uint32Array {
    new Int32Array(out.buffer, out.byteOffset, this.length).set(this.#words(0, this.length));
    return out;
  }

  /** vector ± x (x has `length` words; it is copied through the scratch slots). */
  add(x: Uint32Array | Int32Array, sign: 1 | -1): void {
    const src = new Int32Array(x.buffer, x.byteOffset, this.length);
    for (let offset = 0; offset < this.length; offset += this.slotWords) {
      const n = Math.min(this.slotWords, this.length - offset);
      this.#words(this.#slots[0]!, n).set(src.subarray(offset, offset + n));
      this.addSlots(offset, n, 1, sign);
    }
  }

  /**
   * Copy `chunk` (≤ slotWords words) into scratch slot `slot` (0..3).
   * @param slot - slot index
   * @param chunk - words to stage
   */
  stage(slot: number, chunk: Int32Array): void {
    this.#words(this.#slots[slot]!, chunk.length).set(chunk);
  }

  /**
   * vector[offset, offset+n) ± the sum of the first `count` (1 or 4) slots' first n words.
   * offset and n must be multiples of 4 except for a chunk that ends the vector: there
   * the kernel runs to the next 16-byte boundary and the extra words land in the
   * vector's padding, which is never read.
   * @param offset - first word
   * @param n - words
   * @param count - 1 (slot 0) or 4 (slots 0–3)
   * @param sign - add (1) or subtract (−1)
   */
  addSlots(offset: number, n: number, count: 1 | 4, sign: 1 | -1): void {
    const k = this.#k;
    const d = 4 * offset;
    const bytes = offset + n === this.length ? pad16(4 * n) : 4 * n;
    const [a, b, c, e] = this.#slots as [number, number, number, number];
    if (count === 4) (sign === 1 ? k.add4 : k.sub4)(d, a, b, c, e, bytes);
    else (sign === 1 ? k.add1 : k.sub1)(d, a, bytes);
  }

  /** Zero the whole memory (vector and scratch); the accumulator stays usable. */
  wipe(): void {
    new Uint8Array(this.#k.m.buffer).fill(0);
  }
}
