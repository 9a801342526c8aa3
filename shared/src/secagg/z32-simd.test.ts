import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Z32Accumulator, simdAvailable } from './z32-simd.ts';

const words = (n: number) => fc.array(fc.nat({ max: 0xffffffff }), { minLength: n, maxLength: n }).map((xs) => Uint32Array.from(xs));

describe('Z32Accumulator (WebAssembly SIMD, Z_2^32)', () => {
  it('is available on this host (Node 20, little-endian x86-64/arm64)', () => {
    expect(simdAvailable()).toBe(true);
  });

  it('add/subtract of whole vectors and four staged slots equals the wrapping JS sum, for lengths not divisible by 4 or by the slot size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 70 }).chain((n) => fc.tuple(fc.constant(n), words(n), fc.array(fc.tuple(words(n), fc.constantFrom(1 as const, -1 as const)), { maxLength: 9 }))),
        fc.constantFrom(4, 8, 64),
        ([n, start, terms], slotWords) => {
          // Arrange
          const expected = start.slice();
          for (const [x, sign] of terms) for (let j = 0; j < n; j++) expected[j] = (expected[j]! + sign * x[j]!) >>> 0;
          const acc = new Z32Accumulator(n, slotWords);
          acc.load(start);
          // Act: the first terms as whole vectors, the rest staged four at a time per chunk
          const whole = terms.length % 4;
          for (const [x, sign] of terms.slice(0, whole)) acc.add(x, sign);
          for (let g = whole; g < terms.length; g += 4) {
            for (const sign of [1, -1] as const) {
              for (let offset = 0; offset < n; offset += slotWords) {
                const len = Math.min(slotWords, n - offset);
                terms.slice(g, g + 4).forEach(([x, s], q) => acc.stage(q, new Int32Array(x.buffer).subarray(offset, offset + len).map((v) => (s === sign ? v : 0))));
                acc.addSlots(offset, len, 4, sign);
              }
            }
          }
          // Assert
          expect(acc.read()).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('wipe zeroes the vector; slot sizes must be multiples of 4', () => {
    const acc = new Z32Accumulator(5, 4);
    acc.load(Uint32Array.of(1, 2, 3, 4, 5));
    acc.wipe();
    expect(acc.read()).toEqual(new Uint32Array(5));
    expect(() => new Z32Accumulator(5, 6)).toThrow(/multiple of 4/);
  });
});
