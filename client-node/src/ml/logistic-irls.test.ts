import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fitLogisticIrls, predictLogistic, sparseRows } from './logistic-irls.ts';

const vector = JSON.parse(readFileSync(new URL('../../../test/vectors/logistic/glm-bank600.json', import.meta.url), 'utf8')) as { intercept: number; weights: number[]; x: number[][]; y: number[] };

function dataOf(rows: number[][], labels: number[]) {
  const d = rows[0]!.length;
  return { x: Float32Array.from(rows.flat()), y: Float32Array.from(labels), n: rows.length, d };
}

/** Gradient of the penalised mean log loss (the KKT residual). */
function gradient(data: ReturnType<typeof dataOf>, w: Float64Array, b: number, lambda: number): number[] {
  const g = new Array<number>(data.d + 1).fill(0);
  const p = predictLogistic({ w, b }, data.x, data.n);
  for (let i = 0; i < data.n; i++) {
    const r = (p[i]! - data.y[i]!) / data.n;
    for (let j = 0; j < data.d; j++) g[j]! += r * data.x[i * data.d + j]!;
    g[data.d]! += r;
  }
  for (let j = 0; j < data.d; j++) g[j]! += lambda * w[j]!;
  return g;
}

describe('fitLogisticIrls', () => {
  it('matches R glm (unpenalised maximum likelihood) on real bank rows as λ → 0', () => {
    // Arrange
    const data = dataOf(vector.x, vector.y);
    // Act
    const fit = fitLogisticIrls(data, 1e-10);
    // Assert: float32 inputs, so agreement to ~1e-5 is what the data allow.
    expect(fit.converged).toBe(true);
    expect(fit.b).toBeCloseTo(vector.intercept, 4);
    for (let j = 0; j < vector.weights.length; j++) expect(fit.w[j]).toBeCloseTo(vector.weights[j]!, 4);
  });

  it('satisfies the optimality condition (gradient ≈ 0) for random data and λ', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }), fc.integer({ min: 20, max: 80 }), fc.double({ min: 1e-4, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1e6 }),
        (d, n, lambda, seed) => {
          let s = seed;
          const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
          // One-hot-ish sparse columns and dense columns, labels from a noisy linear rule.
          const rows = Array.from({ length: n }, () => Array.from({ length: d }, (_, j) => (j % 2 ? (rand() < 0.3 ? 1 : 0) : 2 * rand() - 1)));
          const labels = rows.map((r) => (r.reduce((a, v) => a + v, 0) + rand() - 0.5 > 0 ? 1 : 0));
          const data = dataOf(rows, labels);
          const fit = fitLogisticIrls(data, lambda);
          const g = gradient(data, fit.w, fit.b, lambda);
          return fit.converged && g.every((v) => Math.abs(v) < 1e-6);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('shrinks the weights as λ grows, and a warm start reaches the same optimum', () => {
    const data = dataOf(vector.x, vector.y);
    const rows = sparseRows(data);
    const norm = (w: Float64Array) => Math.hypot(...w);
    const strong = fitLogisticIrls(data, 1, { rows });
    const weak = fitLogisticIrls(data, 1e-3, { rows });
    const warm = fitLogisticIrls(data, 1e-3, { rows, init: strong });
    expect(norm(strong.w)).toBeLessThan(norm(weak.w));
    for (let j = 0; j < weak.w.length; j++) expect(warm.w[j]).toBeCloseTo(weak.w[j]!, 7);
  });

  it('separable data stays finite for λ > 0', () => {
    const data = dataOf([[-2], [-1], [1], [2]], [0, 0, 1, 1]);
    const fit = fitLogisticIrls(data, 1e-3);
    expect(fit.converged).toBe(true);
    expect(Number.isFinite(fit.w[0]!)).toBe(true);
    expect(fit.w[0]).toBeGreaterThan(1);
  });

  it('rejects bad λ and labels with a clear error', () => {
    const data = dataOf([[0], [1]], [0, 1]);
    expect(() => fitLogisticIrls(data, 0)).toThrow(/lambda must be a finite number > 0/);
    expect(() => fitLogisticIrls(dataOf([[0], [1]], [0, 2]), 1)).toThrow(/labels must be 0 or 1, got 2 at row 1/);
    expect(() => fitLogisticIrls({ ...data, n: 3 }, 1)).toThrow(/needs n ≥ 1 rows/);
  });
});
