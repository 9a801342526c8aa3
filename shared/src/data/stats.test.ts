import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isFedmartError } from '../errors.ts';
import type { DatasetSchema } from './schema.ts';
import { applyNumericStats, computeNumericStats, mergeNumericStats, type NumericStats } from './stats.ts';
import type { Table } from './table.ts';

const schema: DatasetSchema = {
  label: 'y',
  positive: ['yes'],
  features: [
    { name: 'a', type: 'numeric' },
    { name: 'c', type: 'categorical', categories: ['u', 'v'] },
    { name: 'b', type: 'numeric' },
  ],
};

function table(a: string[], b: string[]): Table {
  return { columns: ['b', 'a', 'c', 'y'], rows: a.map((v, i) => [b[i]!, v, 'u', 'no']) };
}

describe('computeNumericStats', () => {
  it('sums non-empty values per numeric feature, in schema order', () => {
    // Arrange
    const t = table(['1', '2', '', '5'], ['10', '10', '10', '10']);
    // Act
    const s = computeNumericStats(t, schema);
    // Assert: a = 1+2+5, 1+4+25; b = 4×10, 4×100
    expect(s).toEqual([
      { name: 'a', count: 3, sum: 8, sumSq: 30 },
      { name: 'b', count: 4, sum: 40, sumSq: 400 },
    ]);
  });

  it('rejects a non-number in a numeric column and a missing column', () => {
    const bad = table(['1', 'x'], ['1', '2']);
    expect(() => computeNumericStats(bad, schema)).toThrow(/column "a" data row 2: "x" is not a number/);
    expect(() => computeNumericStats({ columns: ['a'], rows: [] }, schema)).toThrow(/numeric feature "b" is not a column/);
  });
});

describe('mergeNumericStats + applyNumericStats', () => {
  it('gives the pooled population mean and std (known answer)', () => {
    // Arrange: partner 1 has a = [2, 4], partner 2 has a = [4, 4, 5, 5, 7, 9] → all 8 values
    // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, population std 2 (the textbook example).
    const p1 = computeNumericStats(table(['2', '4'], ['1', '1']), schema);
    const p2 = computeNumericStats(table(['4', '4', '5', '5', '7', '9'], ['1', '1', '1', '1', '1', '1']), schema);
    // Act
    const merged = mergeNumericStats([p1, p2]);
    const s = applyNumericStats(schema, merged);
    // Assert
    expect(merged[0]).toEqual({ name: 'a', count: 8, sum: 40, sumSq: 232 });
    expect(s.features[0]).toEqual({ name: 'a', type: 'numeric', mean: 5, std: 2 });
    // b is constant 1: std floors to 1 so encoding never divides by ~0
    expect(s.features[2]).toEqual({ name: 'b', type: 'numeric', mean: 1, std: 1 });
    expect(s.features[1]).toBe(schema.features[1]);
    expect(schema.features[0]).toEqual({ name: 'a', type: 'numeric' }); // input untouched
  });

  it('equals the statistics of the pooled data however rows are split among partners', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: -1e4, max: 1e4, noNaN: true }), fc.integer({ min: 0, max: 3 })), { minLength: 2, maxLength: 60 }),
        (cells) => {
          // Arrange: assign each value to one of 4 partners
          const parts = [0, 1, 2, 3].map((p) => cells.filter(([, q]) => q === p).map(([v]) => String(v)));
          const all = cells.map(([v]) => String(v));
          const ones = (n: number) => new Array<string>(n).fill('0');
          // Act
          const merged = mergeNumericStats(parts.map((a) => computeNumericStats(table(a, ones(a.length)), schema)));
          const pooled = computeNumericStats(table(all, ones(all.length)), schema);
          const fed = applyNumericStats(schema, merged).features[0] as { mean: number; std: number };
          // Assert against a two-pass computation, within float64 rounding of the sums
          const xs = cells.map(([v]) => v);
          const scale = Math.max(1, ...xs.map(Math.abs));
          const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
          const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
          expect(merged[0]!.count).toBe(pooled[0]!.count);
          expect(Math.abs(fed.mean - mean)).toBeLessThanOrEqual(1e-12 * scale * xs.length);
          if (sd > 1e-3 * scale) expect(fed.std / sd).toBeCloseTo(1, 8); // well-conditioned: must match
          else expect(fed.std === 1 || Math.abs(fed.std - sd) <= 1e-3 * scale).toBe(true); // near-constant: floor or close
        },
      ),
      { numRuns: 200 },
    );
  });

  it('treats a large constant column as constant despite rounding in Σv² − n·mean²', () => {
    // Σv²/n − mean² over 7 × 5000.1 is 1.4901161193847656e-8 in float64 (std ≈ 1.2e-4,
    // far above STD_FLOOR): rounding, not spread, so it must still count as constant.
    const big = new Array<string>(7).fill('5000.1');
    const s = applyNumericStats(schema, computeNumericStats(table(big, big.map(() => '0.1')), schema));
    expect(s.features[0]).toMatchObject({ std: 1 });
    expect((s.features[0] as { mean: number }).mean).toBeCloseTo(5000.1, 9);
    expect(s.features[2]).toMatchObject({ std: 1 });
  });

  it('gives mean 0 / std 1 to a feature with no values', () => {
    const s = applyNumericStats(schema, [
      { name: 'a', count: 0, sum: 0, sumSq: 0 },
      { name: 'b', count: 2, sum: 0, sumSq: 8 },
    ]);
    expect(s.features.map((f) => (f.type === 'numeric' ? [f.mean, f.std] : null))).toEqual([[0, 1], null, [0, 2]]);
  });

  it('rejects stats lists that disagree or hold invalid numbers', () => {
    const ok: NumericStats[] = [{ name: 'a', count: 1, sum: 1, sumSq: 1 }];
    expect(() => mergeNumericStats([])).toThrow(RangeError);
    expect(() => mergeNumericStats([ok, [{ name: 'z', count: 1, sum: 1, sumSq: 1 }]])).toThrow(/#2 cover \[z\] but #1 covers \[a\]/);
    expect(() => mergeNumericStats([ok, [{ name: 'a', count: -1, sum: 1, sumSq: 1 }]])).toThrow(/#2 are invalid at 0\.count/);
    expect(() => mergeNumericStats([ok, [{ name: 'a', count: 1, sum: Infinity, sumSq: 1 }]])).toThrow(/#2 are invalid at 0\.sum/);
  });

  it('rejects stats that do not match the schema', () => {
    const err = (() => {
      try {
        applyNumericStats(schema, [{ name: 'a', count: 1, sum: 1, sumSq: 1 }]);
      } catch (e) {
        return e;
      }
    })();
    expect(isFedmartError(err, 'DATA_ERROR')).toBe(true);
    expect((err as Error).message).toMatch(/no stats for numeric feature "b"/);
    expect(() => applyNumericStats(schema, [{ name: 'c', count: 1, sum: 1, sumSq: 1 }])).toThrow(/"c", which is not a numeric feature/);
  });
});
