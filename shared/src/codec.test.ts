import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeFloat32, encodeFloat32, toUint8Array } from './codec.ts';
import { FedmartError } from './errors.ts';

describe('wire codec', () => {
  it('round-trips any float32 vector bit-exactly', () => {
    fc.assert(
      fc.property(fc.float32Array({ noNaN: true, noDefaultInfinity: true, maxLength: 300 }), (v) => {
        const back = decodeFloat32(Buffer.from(encodeFloat32(v)), v.length);
        expect(Array.from(back)).toEqual(Array.from(v));
      }),
    );
  });

  it('encodes little-endian IEEE-754 (known answer)', () => {
    // 1.0f = 0x3f800000, -2.5f = 0xc0200000
    expect(Array.from(encodeFloat32(new Float32Array([1, -2.5])))).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0]);
  });

  it('decodes unaligned attachments', () => {
    const bytes = new Uint8Array(9);
    bytes.set(encodeFloat32(new Float32Array([1.5, -3])), 1);
    expect(Array.from(decodeFloat32(bytes.subarray(1), 2))).toEqual([1.5, -3]);
  });

  it('rejects wrong sizes, non-finite values and JSON arrays with INVALID_UPDATE', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as FedmartError;
      }
      throw new Error('did not throw');
    };
    expect(err(() => decodeFloat32(new Uint8Array(8), 3))).toMatchObject({ code: 'INVALID_UPDATE', message: expect.stringMatching(/expected 3 float32 values \(12 bytes\), got 8 bytes/) });
    expect(err(() => decodeFloat32(encodeFloat32(new Float32Array([0, NaN])), 2)).message).toMatch(/index 1 is NaN/);
    expect(err(() => decodeFloat32(encodeFloat32(new Float32Array([-Infinity])), 1)).message).toMatch(/-Infinity/);
    expect(err(() => decodeFloat32([1, 2, 3], 3)).message).toMatch(/JSON array of 3 items/);
    expect(err(() => decodeFloat32('abc', 3)).message).toMatch(/got string/);
    expect(decodeFloat32(encodeFloat32(new Float32Array([NaN])), 1, { requireFinite: false })[0]).toBeNaN();
  });

  it('accepts Buffer, Uint8Array, other views and ArrayBuffer', () => {
    const f = new Float32Array([7]);
    expect(toUint8Array(f.buffer)).toBeInstanceOf(Uint8Array);
    expect(toUint8Array(f)!.byteLength).toBe(4);
    expect(toUint8Array(Buffer.from([1]))!.byteLength).toBe(1);
    expect(toUint8Array(null)).toBeNull();
    expect(() => encodeFloat32([1] as unknown as Float32Array)).toThrow(TypeError);
  });
});
