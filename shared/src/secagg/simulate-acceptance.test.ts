import { describe, expect, it } from 'vitest';
import { runSecAggInMemory } from './simulate.ts';

/** The acceptance targets behind `fedmart bench secagg`. */
describe('secure aggregation cost targets (100,000 parameters)', () => {
  it('50 clients, 20% dropout: correct, and a client sends at most 1.1× its plain update (signatures included)', () => {
    // Act
    const r = runSecAggInMemory({ clients: 50, params: 100_000, dropout: 0.2, seed: 1 });
    // Assert
    expect(r.outcome, r.failure).toBe('ok');
    expect(r.correct).toBe(true);
    expect(r.bytesPerClient).toBeLessThanOrEqual(1.1 * r.plainBytesPerClient);
  });

  // The serverMs ≤ 5× plainSumMs target is a benchmark figure (`fedmart bench secagg`), not a timed test.
  it('100 clients, 30% dropout, default SecAgg+ neighbourhoods (k = 36): correct', () => {
    // Act
    const r = runSecAggInMemory({ clients: 100, params: 100_000, dropout: 0.3, seed: 1 });
    // Assert
    expect(r.outcome, r.failure).toBe('ok');
    expect(r.neighbours).toBe(36);
    expect(r.correct).toBe(true);
    expect(r.survivors).toBeGreaterThanOrEqual(70 - r.excluded);
  });
});
