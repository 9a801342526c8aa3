import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isFedmartError } from '../errors.ts';
import { partitionByColumn, rowsOfPartner, selectRows, stratifiedSplit, takeRows } from './split.ts';

/** `pos` positives spread evenly among `pos + neg` rows. */
function labels(pos: number, neg: number): Float32Array {
  const n = pos + neg;
  const y = new Float32Array(n);
  for (let k = 0; k < pos; k++) y[Math.floor((k * n) / pos)] = 1;
  return y;
}

describe('stratifiedSplit', () => {
  it('holds out the exact share of each class, disjointly and covering all rows', () => {
    // Arrange: 117 positives, 883 negatives
    const y = labels(117, 883);
    // Act
    const { train, test } = stratifiedSplit(y, 0.2, 42);
    // Assert
    const testPos = Array.from(test).filter((i) => y[i] === 1).length;
    expect(testPos).toBe(Math.round(117 * 0.2)); // 23
    expect(test.length - testPos).toBe(Math.round(883 * 0.2)); // 177
    const all = [...train, ...test].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(train)).toEqual([...train].sort((a, b) => a - b));
  });

  it('is reproducible by seed and changes with it', () => {
    const y = labels(50, 150);
    expect(stratifiedSplit(y, 0.25, 1)).toEqual(stratifiedSplit(y, 0.25, 1));
    expect(stratifiedSplit(y, 0.25, 1).test).not.toEqual(stratifiedSplit(y, 0.25, 2).test);
  });

  it('keeps at least one row of a class with >= 2 rows on each side', () => {
    const y = labels(2, 98);
    const { train, test } = stratifiedSplit(y, 0.1, 3);
    expect(Array.from(test).filter((i) => y[i] === 1)).toHaveLength(1);
    expect(Array.from(train).filter((i) => y[i] === 1)).toHaveLength(1);
  });

  it('preserves the positive rate for any sizes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }), fc.double({ min: 0.05, max: 0.95, noNaN: true }), fc.integer(), (pos, neg, f, seed) => {
        const y = labels(pos, neg);
        const { train, test } = stratifiedSplit(y, f, seed);
        expect(train.length + test.length).toBe(pos + neg);
        const testPos = Array.from(test).filter((i) => y[i] === 1).length;
        // rounding is off by <= 0.5; the at-least-one-per-side rule by < 1
        expect(Math.abs(testPos - pos * f)).toBeLessThanOrEqual(1);
        expect(labels(pos, neg).reduce((a, b) => a + b, 0)).toBe(pos);
        expect(new Set([...train, ...test]).size).toBe(pos + neg);
      }),
      { numRuns: 100 },
    );
  });

  it('checks its arguments', () => {
    expect(() => stratifiedSplit([0, 1] as unknown as Float32Array, 0.5, 1)).toThrow(TypeError);
    for (const f of [0, 1, -0.1, Number.NaN]) expect(() => stratifiedSplit(new Float32Array(4), f, 1)).toThrow(RangeError);
    expect(() => stratifiedSplit(Float32Array.from([0, 0.5]), 0.5, 1)).toThrow(/y\[1\] is 0.5/);
  });
});

describe('partitionByColumn', () => {
  it('places values largest first onto the smallest partner (known answer)', () => {
    // Arrange: a×5, b×4, c×3, d×3, e×1 → LPT gives {a, c|d} = 8 and {b, d|c, e} = 8
    const values = [...'aaaaabbbbcccddde'];
    // Act
    const { groups, assignment, sizes } = partitionByColumn(values, 2, 9);
    // Assert
    expect(sizes).toEqual([8, 8]);
    const sets = groups.map((g) => [...g].sort().join('')).sort();
    expect([['ac', 'bde'], ['ad', 'bce']]).toContainEqual(sets);
    for (let i = 0; i < values.length; i++) expect(groups[assignment[i]!]).toContain(values[i]);
  });

  it('is reproducible by seed, and the seed breaks ties', () => {
    const values = [...'abcdefgh'];
    const a = partitionByColumn(values, 4, 1);
    expect(partitionByColumn(values, 4, 1)).toEqual(a);
    const variants = new Set(Array.from({ length: 10 }, (_, s) => partitionByColumn(values, 4, s).groups.join('|')));
    expect(variants.size).toBeGreaterThan(1);
  });

  it('balances rows within the largest value count and gives every partner rows (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', ''), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 4 }), fc.integer(), (values, k, seed) => {
        const distinct = new Set(values).size;
        fc.pre(distinct >= k);
        const { groups, assignment, sizes } = partitionByColumn(values, k, seed);
        const counts = new Map<string, number>();
        for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(Math.max(...counts.values()));
        expect(sizes.every((s) => s > 0)).toBe(true);
        expect(groups.flat().sort()).toEqual([...counts.keys()].sort());
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(values.length);
        for (let p = 0; p < k; p++) expect(rowsOfPartner(assignment, p).length).toBe(sizes[p]);
      }),
      { numRuns: 200 },
    );
  });

  it('asks for fewer --partners when the column has too few values', () => {
    let err: unknown;
    try {
      partitionByColumn(['x', 'y', 'x'], 3, 1, { column: 'marital' });
    } catch (e) {
      err = e;
    }
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    expect((err as Error).message).toMatch(/column "marital" has 2 distinct value\(s\), fewer than the 3 partners requested.*--partners 2 or fewer/);
  });

  it('checks partners', () => {
    expect(() => partitionByColumn(['a'], 0, 1)).toThrow(RangeError);
    expect(() => partitionByColumn(['a'], 1.5, 1)).toThrow(RangeError);
  });
});

describe('selectRows / takeRows / rowsOfPartner', () => {
  it('select rows of a table and of a matrix', () => {
    // Arrange
    const t = { columns: ['a', 'b'], rows: [['1', '2'], ['3', '4'], ['5', '6']] };
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    // Act / Assert
    expect(selectRows(t, [2, 0])).toEqual({ columns: ['a', 'b'], rows: [['5', '6'], ['1', '2']] });
    expect(Array.from(takeRows(x, 2, Int32Array.from([2, 0])))).toEqual([5, 6, 1, 2]);
    expect(Array.from(takeRows(x, 1, [5]))).toEqual([6]);
    expect(Array.from(rowsOfPartner(Int32Array.from([1, 0, 1]), 1))).toEqual([0, 2]);
  });

  it('reject out-of-range indices and a bad width', () => {
    const t = { columns: ['a'], rows: [['1']] };
    expect(() => selectRows(t, [1])).toThrow(RangeError);
    expect(() => takeRows(new Float32Array(6), 4, [0])).toThrow(RangeError);
    expect(() => takeRows(new Float32Array(6), 2, [3])).toThrow(RangeError);
  });
});
