import { readFileSync } from 'node:fs';
import { chacha20 } from '@noble/ciphers/chacha.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hexToBytes } from './bytes.ts';
import { addExpandedSeed, addExpandedSeeds, expandSeed } from './prg.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/chacha20/rfc8439.json', import.meta.url), 'utf8')) as {
  vectors: { name: string; key: string; nonce: string; counter: number; keystream: string }[];
};

function wordsLE(bytes: Uint8Array): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(4 * i, true));
}

describe('expandSeed (ChaCha20 keystream PRG)', () => {
  it.each(rfc.vectors)('matches RFC 8439 $name', (v) => {
    // Act
    const words = expandSeed(hexToBytes(v.key), 16, { nonce: hexToBytes(v.nonce), counter: v.counter });
    // Assert
    expect(words).toEqual(wordsLE(hexToBytes(v.keystream)));
  });

  it('equals the @noble/ciphers ChaCha20 keystream for any seed, length and counter (across chunk boundaries)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 0, max: 40_000 }), fc.integer({ min: 0, max: 1000 }), (seed, n, counter) => {
        const expected = wordsLE(chacha20(seed, new Uint8Array(12), new Uint8Array(n * 4), undefined, counter));
        expect(expandSeed(seed, n, { counter })).toEqual(expected);
      }),
      { numRuns: 20 },
    );
  });

  it('adding then subtracting a mask is the identity mod 2^32, and add equals expand + add', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 500 }), (seed, xs) => {
        const target = Uint32Array.from(xs);
        const mask = expandSeed(seed, xs.length);
        addExpandedSeed(target, seed, 1);
        expect(target).toEqual(Uint32Array.from(xs, (x, i) => (x + mask[i]!) >>> 0));
        addExpandedSeed(target, seed, -1);
        expect(target).toEqual(Uint32Array.from(xs));
      }),
      { numRuns: 30 },
    );
  });

  it('addExpandedSeeds (blocked, four masks per pass) equals one addExpandedSeed per mask, across chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ seed: fc.uint8Array({ minLength: 32, maxLength: 32 }), sign: fc.constantFrom(1 as const, -1 as const) }), { maxLength: 11 }),
        fc.integer({ min: 0, max: 9_000 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (masks, n, fill) => {
          // Arrange
          const expected = new Uint32Array(n).fill(fill);
          for (const m of masks) addExpandedSeed(expected, m.seed, m.sign);
          // Act
          const got = addExpandedSeeds(new Uint32Array(n).fill(fill), masks);
          // Assert
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 25 },
    );
    expect(() => addExpandedSeeds(new Uint32Array(2), [{ seed: new Uint8Array(32), sign: 0 as 1 }])).toThrow(/sign/);
    expect(() => addExpandedSeeds(new Uint32Array(2), [{ seed: new Uint8Array(31), sign: 1 }])).toThrow(/seed/);
  });

  // Speed is measured by `fedmart bench secagg`, not asserted here (shared machines are noisy).
  it('expands 100,000 words', () => {
    const out = expandSeed(new Uint8Array(32).fill(1), 100_000);
    expect(out.length).toBe(100_000);
    expect(new Set(out.subarray(0, 1000)).size).toBeGreaterThan(990);
  });

  it('rejects bad arguments and counter overflow', () => {
    const seed = new Uint8Array(32);
    expect(() => expandSeed(seed, -1)).toThrow(/expandSeed: words/);
    expect(() => expandSeed(seed, 32, { counter: 0xffffffff })).toThrow(/overflows/);
    expect(() => addExpandedSeed(new Uint32Array(2), seed, 2 as 1)).toThrow(/sign/);
    expect(() => addExpandedSeed([0, 1] as unknown as Uint32Array, seed, 1)).toThrow(TypeError);
  });
});
