import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import vectors from '../../../test/vectors/rng/xoshiro128starstar.json' with { type: 'json' };
import { createSeededRng, randomInt, shuffleInPlace, Xoshiro128StarStar } from './rng.ts';

describe('Xoshiro128StarStar', () => {
  it.each(vectors.cases)('matches the reference C outputs from state $state', ({ state, outputs }) => {
    // Arrange
    const rng = new Xoshiro128StarStar(state);
    // Act
    const got = outputs.map(() => rng.nextUint32());
    // Assert
    expect(got).toEqual(outputs);
  });

  it('rejects an all-zero or malformed state', () => {
    expect(() => new Xoshiro128StarStar([0, 0, 0, 0])).toThrow(RangeError);
    expect(() => new Xoshiro128StarStar([1, 2, 3])).toThrow(TypeError);
    expect(() => new Xoshiro128StarStar([1, 2, 3, 0.5])).toThrow(TypeError);
  });
});

describe('createSeededRng', () => {
  it.each(vectors.seeded.cases)('seed $seed gives the frozen stream', ({ seed, outputs }) => {
    const rng = createSeededRng(seed);
    expect(outputs.map(() => rng.nextUint32())).toEqual(outputs);
  });

  it('is reproducible and seed-sensitive', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (seed) => {
        const a = createSeededRng(seed);
        const b = createSeededRng(seed);
        const c = createSeededRng(seed + 1);
        const sa = [a.nextUint32(), a.nextUint32(), a.nextUint32()];
        expect([b.nextUint32(), b.nextUint32(), b.nextUint32()]).toEqual(sa);
        expect([c.nextUint32(), c.nextUint32(), c.nextUint32()]).not.toEqual(sa);
      }),
      { numRuns: 200 },
    );
  });

  it('distinguishes seeds that differ only above bit 32', () => {
    expect(createSeededRng(5).nextUint32()).not.toBe(createSeededRng(5 + 2 ** 32).nextUint32());
  });

  it('nextFloat stays in [0, 1) with a plausible mean', () => {
    const rng = createSeededRng(1);
    let sum = 0;
    for (let i = 0; i < 20_000; i++) {
      const u = rng.nextFloat();
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    expect(sum / 20_000).toBeCloseTo(0.5, 1.5);
  });

  it('rejects non-integer seeds', () => {
    for (const bad of [1.5, Number.NaN, Infinity, '1', null, 2 ** 60]) {
      expect(() => createSeededRng(bad as unknown as number)).toThrow(TypeError);
    }
  });
});

describe('randomInt', () => {
  it('covers [0, max) evenly (chi-square, 10 bins)', () => {
    // Arrange
    const rng = createSeededRng(7);
    const counts = new Array<number>(10).fill(0);
    const draws = 50_000;
    // Act
    for (let i = 0; i < draws; i++) counts[randomInt(rng, 10)]!++;
    // Assert: 9 degrees of freedom, p = 0.001 critical value is 27.88
    const e = draws / 10;
    const chi2 = counts.reduce((acc, c) => acc + (c - e) ** 2 / e, 0);
    expect(chi2).toBeLessThan(27.88);
  });

  it('handles the extremes', () => {
    const rng = createSeededRng(3);
    expect(randomInt(rng, 1)).toBe(0);
    const big = randomInt(rng, 2 ** 32);
    expect(big >= 0 && big < 2 ** 32).toBe(true);
  });

  it('rejects bad bounds', () => {
    const rng = createSeededRng(3);
    for (const bad of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) expect(() => randomInt(rng, bad)).toThrow(RangeError);
  });
});

describe('shuffleInPlace', () => {
  it('returns a permutation of the input, reproducibly', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 50 }), fc.integer(), (arr, seed) => {
        const a = shuffleInPlace([...arr], createSeededRng(seed));
        const b = shuffleInPlace([...arr], createSeededRng(seed));
        expect(a).toEqual(b);
        expect([...a].sort((x, y) => x - y)).toEqual([...arr].sort((x, y) => x - y));
      }),
    );
  });

  it('works on typed arrays and reaches every position', () => {
    // Each of 4 elements should land first sometimes over many shuffles.
    const rng = createSeededRng(11);
    const firsts = new Set<number>();
    for (let k = 0; k < 200; k++) firsts.add(shuffleInPlace(Int32Array.from([0, 1, 2, 3]), rng)[0]!);
    expect([...firsts].sort()).toEqual([0, 1, 2, 3]);
  });
});
