/**
 * Wire codec for model parameters. Tensors travel as binary attachments
 * (Socket.IO sends Buffer/Uint8Array arguments as binary frames), never as
 * JSON number arrays. A flat Float32Array is sent as its little-endian bytes;
 * the JSON envelope beside it carries `length` so the receiver can check shape.
 *
 * Pure: no I/O.
 */
import { FedmartError } from './errors.ts';

/** True on little-endian hosts (all platforms Node supports today). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Encode a Float32Array for the wire. Zero-copy view on little-endian hosts.
 * @param values - the parameters
 * @returns bytes (a view over the same memory when possible)
 */
export function encodeFloat32(values: Float32Array): Uint8Array {
  if (!(values instanceof Float32Array)) throw new TypeError('encodeFloat32: expected a Float32Array');
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/**
 * Decode wire bytes into a Float32Array, checking the expected length and
 * (optionally) that every value is finite.
 *
 * @param bytes - received attachment (Buffer, Uint8Array or ArrayBuffer)
 * @param expectedLength - number of float32 values the receiver expects
 * @param opts.requireFinite - reject NaN/±Infinity (default true)
 * @returns the values (copied into an aligned buffer when needed)
 * @throws FedmartError INVALID_UPDATE on wrong size or non-finite values
 */
export function decodeFloat32(bytes: unknown, expectedLength: number, opts: { requireFinite?: boolean } = {}): Float32Array {
  const u8 = toUint8Array(bytes);
  if (u8 === null) {
    throw new FedmartError('INVALID_UPDATE', `expected a binary attachment of ${expectedLength} float32 values, got ${describe(bytes)}; send the tensor as a Buffer/Uint8Array, not as JSON`);
  }
  if (u8.byteLength !== expectedLength * 4) {
    throw new FedmartError('INVALID_UPDATE', `wrong shape: expected ${expectedLength} float32 values (${expectedLength * 4} bytes), got ${u8.byteLength} bytes; the update must match the global model's parameter count`);
  }
  let out: Float32Array;
  if (LITTLE_ENDIAN && u8.byteOffset % 4 === 0) {
    out = new Float32Array(u8.buffer, u8.byteOffset, expectedLength);
  } else if (LITTLE_ENDIAN) {
    out = new Float32Array(expectedLength);
    new Uint8Array(out.buffer).set(u8);
  } else {
    out = new Float32Array(expectedLength);
    const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    for (let i = 0; i < expectedLength; i++) out[i] = view.getFloat32(i * 4, true);
  }
  if (opts.requireFinite !== false) {
    for (let i = 0; i < out.length; i++) {
      const v = out[i]!;
      // v - v is NaN for NaN and ±Infinity, 0 otherwise: one branch per value.
      if (v - v !== 0) {
        throw new FedmartError('INVALID_UPDATE', `update value at index ${i} is ${v}; every value must be finite — check the local learning rate or clip the update`);
      }
    }
  }
  return out;
}

/** Accept Buffer, Uint8Array, any ArrayBufferView or ArrayBuffer. */
export function toUint8Array(bytes: unknown): Uint8Array | null {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return null;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `a JSON array of ${x.length} items`;
  return typeof x;
}
