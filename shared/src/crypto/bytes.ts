/**
 * Argument checks and byte helpers shared by the crypto wrappers.
 *
 * Programming errors (wrong type, wrong length, out-of-range integer) throw a
 * labelled `TypeError`/`RangeError`, the way noble's `abytes`/`anumber` do
 * (paulmillr/noble-curves `src/utils.ts`): the label names the function and
 * the argument so the caller sees at once which call was wrong.
 *
 * Pure: no I/O.
 */

/**
 * True for a real `Uint8Array` (Node `Buffer` included), false for look-alikes
 * such as `Uint8ClampedArray`, `DataView`, `ArrayBuffer`, number arrays or hex strings.
 * @param value - anything
 * @returns whether `value` is a `Uint8Array`
 */
export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array || (ArrayBuffer.isView(value) && value.constructor.name === 'Uint8Array');
}

/** A short, safe description of a value for error messages (never prints secret bytes). */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (isBytes(value)) return `Uint8Array(${value.length})`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as { length?: number }).length ?? value.byteLength})`;
  if (value instanceof ArrayBuffer) return `ArrayBuffer(${value.byteLength})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  if (typeof value === 'string') return `string(${value.length})`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value;
}

/**
 * Check that `value` is a `Uint8Array`, optionally of one of the given lengths.
 * @param label - "function: argument" used in the error
 * @param value - the argument
 * @param lengths - allowed lengths (any length when empty)
 * @returns `value`, narrowed
 * @throws TypeError if not a Uint8Array; RangeError on a wrong length
 */
export function assertBytes(label: string, value: unknown, ...lengths: number[]): Uint8Array {
  if (!isBytes(value)) throw new TypeError(`${label}: expected Uint8Array, got ${describeValue(value)}`);
  if (lengths.length > 0 && !lengths.includes(value.length)) {
    throw new RangeError(`${label}: expected Uint8Array of length ${lengths.join(' or ')}, got length ${value.length}`);
  }
  return value;
}

/**
 * Check that `value` is a safe integer in `[min, max]`.
 * @param label - "function: argument" used in the error
 * @param value - the argument
 * @param min - smallest allowed value
 * @param max - largest allowed value
 * @returns `value`, narrowed
 * @throws TypeError if not a number; RangeError if not an integer in range
 */
export function assertInteger(label: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${label}: expected an integer, got ${describeValue(value)}`);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${label}: expected an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/**
 * Concatenate byte arrays into a fresh array.
 * @param parts - arrays to join, in order
 * @returns a new Uint8Array
 */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Big-endian 32-bit encoding of a non-negative integer.
 * @param value - integer in [0, 2^32)
 * @returns 4 bytes
 */
export function u32be(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, false);
  return out;
}

/**
 * Length-prefixed UTF-8 encoding, so that concatenations of several strings
 * are unambiguous (used for domain separation in HKDF info and AEAD data).
 * @param text - string to encode
 * @returns 4-byte big-endian length followed by the UTF-8 bytes
 */
export function lengthPrefixed(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  return concatBytes(u32be(bytes.length), bytes);
}

/**
 * Equality of two byte arrays without early exit on the first difference
 * (still not a guaranteed constant-time comparison in JavaScript).
 * @param a - first array
 * @param b - second array
 * @returns true when both have the same length and bytes
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Hex encoding (for vectors and test output, never for secrets in logs). */
export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += bytes[i]!.toString(16).padStart(2, '0');
  return out;
}

/**
 * Hex decoding.
 * @param hex - even-length hex string
 * @returns bytes
 * @throws TypeError on a non-string; RangeError on odd length or non-hex characters
 */
export function hexToBytes(hex: string): Uint8Array {
  if (typeof hex !== 'string') throw new TypeError(`hexToBytes: expected string, got ${describeValue(hex)}`);
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new RangeError(`hexToBytes: expected an even-length hex string, got length ${hex.length}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Best-effort overwrite of secret bytes with zeros. JavaScript gives no
 * guarantee that copies made by the engine, the GC or Node's buffer pool are
 * erased; see "What we don't guarantee" in `crypto/index.ts`.
 * @param buffers - arrays to zero (null/undefined are skipped)
 */
export function wipeBytes(...buffers: (Uint8Array | null | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}
