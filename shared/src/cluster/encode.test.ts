import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import type { Table } from '../data/table.ts';
import { encodeForClustering } from './encode.ts';
import { computeClusterSums } from './lloyd.ts';
import { describeSegments } from './profile.ts';

// Ten customers: amount 10..100 plus one outlier, a channel, a label.
const table: Table = {
  columns: ['amount', 'channel', 'bought'],
  rows: [
    ['10', 'web', 'no'], ['20', 'web', 'no'], ['30', 'web', 'yes'], ['40', 'store', 'no'], ['50', 'store', 'no'],
    ['60', 'store', 'yes'], ['70', 'web', 'no'], ['80', 'store', 'yes'], ['90', 'app', 'no'], ['100000', 'app', 'yes'],
  ],
};
const halves = [{ columns: table.columns, rows: table.rows.slice(0, 4) }, { columns: table.columns, rows: table.rows.slice(4) }];

describe('encodeForClustering', () => {
  it('standardises with pooled statistics from the partners\' sums, clips at ±Z, and never uses the label as a feature', () => {
    // Act
    const enc = encodeForClustering(table, halves, { label: 'bought', clip: 2 });
    // Assert: features amount + channel one-hot (app, store, web); the label is not one
    expect(enc.features.map((f) => f.name)).toEqual(['amount', 'channel']);
    expect(enc.d).toBe(4);
    expect(Array.from(enc.columnBounds)).toEqual([2, 1, 1, 1]);
    const values = table.rows.map((r) => Number(r[0]));
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    const amount = enc.features[0]!;
    expect(amount.type === 'numeric' && amount.mean).toBeCloseTo(mean, 9);
    // the outlier is 3 std out: clipped to 2; everyone else is just below the mean
    const last = enc.partners[1]!.points;
    expect(last.x[(last.n - 1) * 4]).toBe(2);
    expect(Array.from(enc.partners[1]!.labels!)).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it('works without a label (no positive rates) and rejects --positive without --label', () => {
    const enc = encodeForClustering(table, halves, { drop: ['bought'] });
    expect(enc.features.map((f) => f.name)).toEqual(['amount', 'channel']);
    expect(enc.partners[0]!.labels).toBeUndefined();
    expect(() => encodeForClustering(table, halves, { positive: 'yes' })).toThrow(/--positive needs --label/);
  });

  it('names an unknown column and the flag to fix', () => {
    let error: unknown;
    try {
      encodeForClustering(table, halves, { label: 'nope' });
    } catch (e) {
      error = e;
    }
    expect(isFedmartError(error, 'DATA_ERROR')).toBe(true);
    expect((error as Error).message).toMatch(/column "nope" not found.*pass --label/);
    expect(() => encodeForClustering(table, halves, { drop: ['zzz'] })).toThrow(/--drop names "zzz", not found/);
  });
});

describe('describeSegments', () => {
  it('reports sizes, positive rates, numeric means in original units and top categories with shares', () => {
    // Arrange: two segments, cheap web buyers vs. the rest
    const enc = encodeForClustering(table, [table], { label: 'bought', clip: 10 });
    const { points, labels } = enc.partners[0]!;
    const amount = enc.features[0]!;
    if (amount.type !== 'numeric') throw new Error('amount should be numeric');
    const z = (v: number) => (v - amount.mean!) / amount.std!;
    const centroids = Float64Array.from([z(30), 0, 0, 1, z(100000), 1, 0, 0]);
    // Act
    const d = describeSegments(enc.features, computeClusterSums(points, centroids, 2, labels));
    // Assert: 9 customers nearest the first centroid, 1 the second; larger first
    expect(d.order).toEqual([0, 1]);
    const [big, small] = d.segments;
    expect(big!.size).toBe(9);
    expect(big!.share).toBe(0.9);
    expect(big!.positiveRate).toBeCloseTo(3 / 9, 4);
    expect(big!.profile.amount).toBeCloseTo(50, 2);
    expect(big!.profile.channel).toEqual([
      { value: 'store', share: 0.444 },
      { value: 'web', share: 0.444 },
      { value: 'app', share: 0.111 },
    ]);
    expect(small!.profile.amount).toBeCloseTo(100000, 1);
    expect(small!.positiveRate).toBe(1);
    // what sets the outlier apart: 3 std of amount, then channel=app (share 1 vs 0.2: 2 std)
    expect(small!.distinctive![0]).toEqual({ column: 'amount', segment: 100000, overall: 10045 });
    expect(small!.distinctive![1]).toEqual({ column: 'channel', value: 'app', segment: 1, overall: 0.2 });
    expect(d.overall.distinctive).toBeUndefined();
    expect(d.overall.size).toBe(10);
    expect(d.overall.positiveRate).toBe(0.4);
  });
});
