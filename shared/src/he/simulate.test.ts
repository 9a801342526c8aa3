import { describe, expect, it } from 'vitest';
import { runHeAggregationInMemory } from './simulate.ts';

describe('runHeAggregationInMemory', () => {
  it('sums encrypted update-like vectors within 1e-6 and reports sizes and timings', async () => {
    // Act: 3 clients × 10 000 parameters (3 chunks each) keeps this test fast.
    const r = await runHeAggregationInMemory({ clients: 3, params: 10_000, seed: 5 });
    // Assert
    expect(r.correct).toBe(true);
    expect(r.maxAbsError).toBeLessThanOrEqual(1e-6);
    expect(r.maxAbsError).toBeGreaterThan(0); // CKKS is approximate: an exact 0 would mean nothing was encrypted
    expect(r.plainBytesPerClient).toBe(40_000);
    expect(r.bytesPerClient).toBeGreaterThan(r.plainBytesPerClient);
    expect(r.bytesPerClient).toBeLessThanOrEqual(15 * r.plainBytesPerClient);
    for (const ms of [r.clientEncryptMs, r.serverAggregateMs, r.decryptMs, r.plainSumMs]) expect(ms).toBeGreaterThanOrEqual(0);
    expect(r.ckks.polyModulusDegree).toBe(8192);
  });

  it('flags an aggregate as incorrect when the tolerance is below CKKS precision', async () => {
    // Act
    const r = await runHeAggregationInMemory({ clients: 2, params: 100, tolerance: 1e-15 });
    // Assert
    expect(r.correct).toBe(false);
  });

  it('rejects bad sizes', async () => {
    await expect(runHeAggregationInMemory({ clients: 0, params: 10 })).rejects.toThrow(RangeError);
    await expect(runHeAggregationInMemory({ clients: 1, params: 1.5 })).rejects.toThrow(RangeError);
  });
});
