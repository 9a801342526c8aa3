import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addClusterSums, assignToNearest, computeClusterSums, runLloyd, updateCentroids, type Points } from './lloyd.ts';

interface LloydVector { name: string; d: number; k: number; x: number[]; initial: number[]; centroids: number[]; inertia: number; history: number[]; iterations: number; counts: number[] }
const VECTORS = JSON.parse(readFileSync(new URL('../../../test/vectors/kmeans/lloyd.json', import.meta.url), 'utf8')) as { cases: LloydVector[] };

/** Split rows 0..n-1 among partners by `owner` (one partner index per row). */
function splitPoints(p: Points, owner: number[], partners: number): Points[] {
  return Array.from({ length: partners }, (_, q) => {
    const rows = owner.flatMap((o, i) => (o === q ? [i] : []));
    const x = new Float32Array(rows.length * p.d);
    rows.forEach((i, r) => x.set(p.x.subarray(i * p.d, (i + 1) * p.d), r * p.d));
    return { x, n: rows.length, d: p.d };
  });
}

/** Small integer-valued data, so every float64 sum is exact and order cannot matter. */
const dataset = fc
  .record({ d: fc.integer({ min: 1, max: 4 }), k: fc.integer({ min: 1, max: 4 }), n: fc.integer({ min: 1, max: 40 }), partners: fc.integer({ min: 1, max: 5 }) })
  .chain(({ d, k, n, partners }) =>
    fc.record({
      d: fc.constant(d),
      k: fc.constant(k),
      partners: fc.constant(partners),
      x: fc.array(fc.integer({ min: -50, max: 50 }), { minLength: n * d, maxLength: n * d }),
      owner: fc.array(fc.integer({ min: 0, max: partners - 1 }), { minLength: n, maxLength: n }),
      centroids: fc.array(fc.integer({ min: -50, max: 50 }), { minLength: k * d, maxLength: k * d }),
    }),
  );

describe('Lloyd over partners', () => {
  it.each(VECTORS.cases)('known answer: $name', (v) => {
    // Arrange
    const points: Points = { x: Float32Array.from(v.x), n: v.x.length / v.d, d: v.d };
    // Act
    const r = runLloyd({ initial: Float64Array.from(v.initial), k: v.k, d: v.d, tolerance: 0, step: (c) => computeClusterSums(points, c, v.k) });
    // Assert
    expect(Array.from(r.centroids)).toEqual(v.centroids);
    expect(r.inertia).toBe(v.inertia);
    expect(r.history).toEqual(v.history);
    expect(r.iterations).toBe(v.iterations);
    expect(Array.from(r.sums.counts)).toEqual(v.counts);
  });

  it('the sum of the partners\' cluster sums is the pooled cluster sums, exactly (property)', () => {
    fc.assert(
      fc.property(dataset, ({ d, k, partners, x, owner, centroids }) => {
        const pooled: Points = { x: Float32Array.from(x), n: owner.length, d };
        const c = Float64Array.from(centroids);
        const federated = addClusterSums(splitPoints(pooled, owner, partners).map((p) => computeClusterSums(p, c, k)));
        const central = computeClusterSums(pooled, c, k);
        expect(federated).toEqual(central);
        expect(updateCentroids(c, federated)).toEqual(updateCentroids(c, central));
      }),
    );
  });

  it('a federated run follows the centralized run step for step on real-valued data (property)', () => {
    fc.assert(
      fc.property(dataset, fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 160, maxLength: 160 }), ({ d, k, partners, owner, centroids }, noise) => {
        const n = owner.length;
        const pooled: Points = { x: Float32Array.from({ length: n * d }, (_, i) => noise[i % noise.length]! * 10 + (i % 7)), n, d };
        const parts = splitPoints(pooled, owner, partners);
        const initial = Float64Array.from(centroids);
        const central = runLloyd({ initial, k, d, step: (c) => computeClusterSums(pooled, c, k) });
        const federated = runLloyd({ initial, k, d, step: (c) => addClusterSums(parts.map((p) => computeClusterSums(p, c, k))) });
        expect(federated.iterations).toBe(central.iterations);
        expect(federated.inertia).toBeCloseTo(central.inertia, 6);
        federated.centroids.forEach((v, i) => expect(v).toBeCloseTo(central.centroids[i]!, 9));
        expect(assignToNearest(pooled, federated.centroids, k)).toEqual(assignToNearest(pooled, central.centroids, k));
      }),
    );
  });

  it('inertia never increases and the run stops within maxIterations (property)', () => {
    fc.assert(
      fc.property(dataset, fc.integer({ min: 0, max: 6 }), ({ d, k, x, owner, centroids }, maxIterations) => {
        const pooled: Points = { x: Float32Array.from(x), n: owner.length, d };
        const r = runLloyd({ initial: Float64Array.from(centroids), k, d, maxIterations, tolerance: 0, step: (c) => computeClusterSums(pooled, c, k) });
        expect(r.iterations).toBeLessThanOrEqual(maxIterations);
        expect(r.history).toHaveLength(r.iterations + 1);
        for (let i = 1; i < r.history.length; i++) expect(r.history[i]!).toBeLessThanOrEqual(r.history[i - 1]! + 1e-9);
        expect(r.inertia).toBe(r.history.at(-1));
      }),
    );
  });

  it('an empty cluster keeps its previous centroid and is reported', () => {
    const total = computeClusterSums({ x: Float32Array.from([0, 1]), n: 2, d: 1 }, Float64Array.from([0, 100]), 2);
    const { centroids, empty } = updateCentroids(Float64Array.from([0, 100]), total);
    expect(Array.from(centroids)).toEqual([0.5, 100]);
    expect(empty).toEqual([1]);
  });

  it('adds positive counts only when labels are given, and weights rows', () => {
    const points: Points = { x: Float32Array.from([0, 1, 10]), n: 3, d: 1, weights: Float64Array.from([1, 2, 3]) };
    const s = computeClusterSums(points, Float64Array.from([0, 10]), 2, Float32Array.from([1, 1, 0]));
    expect(Array.from(s.counts)).toEqual([3, 3]);
    expect(Array.from(s.sums)).toEqual([2, 30]);
    expect(Array.from(s.positives!)).toEqual([3, 0]);
    expect(s.sse).toBe(2);
    expect(computeClusterSums(points, Float64Array.from([0, 10]), 2).positives).toBeUndefined();
  });

  it('rejects mismatched shapes with a message naming them', () => {
    const p: Points = { x: new Float32Array(4), n: 2, d: 2 };
    expect(() => computeClusterSums(p, new Float64Array(3), 2)).toThrow(/centroids: expected k·d = 2·2 values, got 3/);
    expect(() => computeClusterSums({ x: new Float32Array(3), n: 2, d: 2 }, new Float64Array(4), 2)).toThrow(/x has 3 values, expected n·d/);
    const a = computeClusterSums(p, new Float64Array(4), 2);
    const b = computeClusterSums({ x: new Float32Array(3), n: 1, d: 3 }, new Float64Array(6), 2);
    expect(() => addClusterSums([a, b])).toThrow(/cluster sums #2 have k = 2, d = 3, but #1 has k = 2, d = 2/);
  });
});
