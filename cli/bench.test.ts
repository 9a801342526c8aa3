import { describe, expect, it } from 'vitest';
import { benchAggregate } from './bench.ts';

describe('bench aggregate', () => {
  it('checks the aggregate it timed against an independent weighted mean', () => {
    // Act: 5 clients exercise both the 4-at-a-time and the remainder loops of the weighted sum.
    const r = benchAggregate(5, 3000, 1);
    // Assert
    expect(r).toMatchObject({ clients: 5, params: 3000, correct: true });
    expect(r.maxAbsError).toBeLessThan(1e-6);
    expect(r.aggregateMs).toBeGreaterThan(0);
    expect(r.plainSumMs).toBeGreaterThan(0);
  });
});
