import { describe, expect, it } from 'vitest';
import { runPsiInMemory } from './simulate.ts';

describe('runPsiInMemory', () => {
  it('finds the planted intersection in ids mode', () => {
    // Act
    const r = runPsiInMemory({ size: 2000, overlap: 0.5, seed: 3 });
    // Assert
    expect(r).toMatchObject({ size: 2000, overlap: 0.5, mode: 'ids', intersection: 1000, expected: 1000, correct: true, bytesPerParty: 2 * 2000 * 32 });
    expect(r.seconds).toBeGreaterThan(0);
  });

  it('finds the planted cardinality in size mode, and handles 0 and full overlap', () => {
    // Act
    const sizeOnly = runPsiInMemory({ size: 500, overlap: 0.3, mode: 'size' });
    const none = runPsiInMemory({ size: 200, overlap: 0 });
    const all = runPsiInMemory({ size: 200, overlap: 1 });
    // Assert
    expect(sizeOnly).toMatchObject({ intersection: 150, correct: true, mode: 'size' });
    expect(none).toMatchObject({ intersection: 0, correct: true });
    expect(all).toMatchObject({ intersection: 200, correct: true });
  });

  it('times the protocol on an injected CPU clock too, and only when given one', () => {
    // Arrange: a fake clock that advances 1 ms per reading, so the figure is exact.
    let now = 0;
    // Act
    const withClock = runPsiInMemory({ size: 20, overlap: 0.5, cpuClock: () => now++ });
    const without = runPsiInMemory({ size: 20, overlap: 0.5 });
    // Assert: read once before and once after the exchange
    expect(withClock.cpuSeconds).toBe(0.001);
    expect(without.cpuSeconds).toBeUndefined();
  });

  it('is reproducible for a seed and rejects bad options', () => {
    expect(runPsiInMemory({ size: 50, overlap: 0.5, seed: 9 }).intersection).toBe(25);
    expect(() => runPsiInMemory({ size: 0, overlap: 0.5 })).toThrow(RangeError);
    expect(() => runPsiInMemory({ size: 10, overlap: 1.5 })).toThrow(RangeError);
    expect(() => runPsiInMemory({ size: 10, overlap: Number.NaN })).toThrow(RangeError);
  });
});
