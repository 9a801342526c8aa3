import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSeededRng } from '../data/rng.ts';
import { isFedmartError } from '../errors.ts';
import type { Points } from './lloyd.ts';
import { seedFromLocalSummaries, summarizeLocalGroups, weightedKMeansPlusPlus } from './seeding.ts';

const rows = (n: number, d: number) => fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: n * d, maxLength: n * d });

describe('summarizeLocalGroups: what a partner sends at initialization', () => {
  it('sends only means of >= m customers, and those means account for every row (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }).chain((d) => fc.integer({ min: 0, max: 60 }).chain((n) => fc.record({ d: fc.constant(d), n: fc.constant(n), x: rows(n, d) }))),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 25 }),
        ({ d, n, x }, groups, m) => {
          const points: Points = { x: Float64Array.from(x), n, d };
          const s = summarizeLocalGroups(points, { groups, minGroupSize: m }, createSeededRng(1));
          expect(s.groups).toBeLessThanOrEqual(groups);
          if (n < m) {
            expect(s.groups).toBe(0);
            return;
          }
          expect(s.groups).toBeGreaterThan(0);
          for (const size of s.sizes) expect(size).toBeGreaterThanOrEqual(m);
          expect(s.sizes.reduce((a, v) => a + v, 0)).toBe(n);
          // Σ size·mean over groups = Σ rows: every row is in exactly one group.
          for (let t = 0; t < d; t++) {
            let fromGroups = 0;
            for (let g = 0; g < s.groups; g++) fromGroups += s.sizes[g]! * s.centroids[g * d + t]!;
            let fromRows = 0;
            for (let i = 0; i < n; i++) fromRows += x[i * d + t]!;
            expect(fromGroups).toBeCloseTo(fromRows, 6);
          }
        },
      ),
    );
  });
});

describe('weightedKMeansPlusPlus (Arthur & Vassilvitskii 2007, weighted)', () => {
  it('never picks a zero-weight point, and picks one point per far-apart blob (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 1000 }), (k, seed) => {
        // k blobs 1e6 apart, 3 points each; plus a zero-weight point far from all
        const x: number[] = [];
        const w: number[] = [];
        for (let b = 0; b < k; b++) for (let j = 0; j < 3; j++) (x.push(b * 1e6 + j), w.push(1 + j));
        x.push(-5e6);
        w.push(0);
        const c = weightedKMeansPlusPlus({ x: Float64Array.from(x), n: x.length, d: 1, weights: Float64Array.from(w) }, k, createSeededRng(seed));
        const blobs = new Set(Array.from(c, (v) => Math.round(v / 1e6)));
        expect(blobs.size).toBe(k);
        expect(Array.from(c)).not.toContain(-5e6);
      }),
    );
  });

  it('with fewer distinct points than k it still returns k centres; with fewer points it refuses', () => {
    const points: Points = { x: Float64Array.from([1, 1, 1]), n: 3, d: 1 };
    expect(Array.from(weightedKMeansPlusPlus(points, 3, createSeededRng(2)))).toEqual([1, 1, 1]);
    let error: unknown;
    try {
      weightedKMeansPlusPlus(points, 4, createSeededRng(2));
    } catch (e) {
      error = e;
    }
    expect(isFedmartError(error, 'DATA_ERROR')).toBe(true);
    expect((error as Error).message).toMatch(/at least k = 4 candidate points, got 3; lower --k/);
  });
});

describe('seedFromLocalSummaries', () => {
  it('places the k seeds in the k well-separated populations spread over partners', () => {
    // Arrange: 3 partners, each holds parts of populations around 0, 100 and 200
    const centres = [0, 100, 200];
    const partners = [0, 1, 2].map((p) => {
      const x: number[] = [];
      for (const c of centres) for (let i = 0; i < 30; i++) x.push(c + ((i * 7 + p) % 11) - 5);
      return summarizeLocalGroups({ x: Float64Array.from(x), n: x.length, d: 1 }, { groups: 6, minGroupSize: 10 }, createSeededRng(p + 1));
    });
    // Act
    const seeds = Array.from(seedFromLocalSummaries(partners, 3, createSeededRng(9))).sort((a, b) => a - b);
    // Assert
    seeds.forEach((s, i) => expect(Math.abs(s - centres[i]!)).toBeLessThan(2));
  });

  it('refuses when the partners sent fewer groups than k, naming the flags', () => {
    const one = summarizeLocalGroups({ x: Float64Array.from([1, 2, 3]), n: 3, d: 1 }, { groups: 4, minGroupSize: 3 }, createSeededRng(1));
    expect(() => seedFromLocalSummaries([one], 2, createSeededRng(1))).toThrow(/hold 1 group\(s\) of enough customers, fewer than k = 2; lower --k or --min-group/);
  });
});
