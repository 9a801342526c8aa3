import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { dequantizeSum, quantizationErrorBound, quantizeWeightedUpdate, resolveQuantization, type QuantizationConfig } from './quantize.ts';

/** Sum quantized vectors mod 2^32, as the masked protocol does. */
function ringSum(vectors: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(vectors[0]!.length);
  for (const v of vectors) for (let j = 0; j < v.length; j++) out[j] = (out[j]! + v[j]!) >>> 0;
  return out;
}

const configArb = fc.record({
  clip: fc.double({ min: 0.01, max: 100, noNaN: true }),
  maxClients: fc.integer({ min: 1, max: 200 }),
  maxWeight: fc.integer({ min: 1, max: 1000 }),
  bits: fc.integer({ min: 20, max: 32 }),
  rounding: fc.constantFrom('stochastic' as const, 'deterministic' as const),
});

describe('quantize / dequantize', () => {
  it('recovers Σ w·clip(Δ) and Σ w within the stated bound', () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 10 }), fc.integer(), (config, length, clients0, salt) => {
        // Arrange
        const q = resolveQuantization(config);
        const clients = Math.min(clients0, config.maxClients);
        const updates = Array.from({ length: clients }, (_, i) => Float32Array.from({ length }, (_, j) => Math.sin(salt + i * 31 + j) * config.clip * 1.5));
        const weights = updates.map((_, i) => 1 + ((salt + i) >>> 0) % config.maxWeight);
        // Act
        const { weightedSum, totalWeight } = dequantizeSum(ringSum(updates.map((u, i) => quantizeWeightedUpdate(u, weights[i]!, q))), q);
        // Assert
        expect(totalWeight).toBe(weights.reduce((a, b) => a + b, 0));
        const bound = quantizationErrorBound(q, clients);
        for (let j = 0; j < length; j++) {
          const exact = updates.reduce((acc, u, i) => acc + weights[i]! * Math.max(-config.clip, Math.min(config.clip, u[j]!)), 0);
          expect(Math.abs(weightedSum[j]! - exact)).toBeLessThanOrEqual(bound * (1 + 1e-9));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('never wraps: maxClients clients at ±clip with maxWeight sum exactly', () => {
    for (const rounding of ['deterministic', 'stochastic'] as const) {
      for (const bits of [8, 16, 24, 32]) {
        // Arrange
        const config: QuantizationConfig = { clip: 2, maxClients: 7, maxWeight: 3, bits, rounding };
        const q = resolveQuantization(config);
        const extremes = Float32Array.from([2, -2, 5, -5]); // ±5 is clipped to ±2
        // Act
        const sum = dequantizeSum(ringSum(Array.from({ length: 7 }, () => quantizeWeightedUpdate(extremes, 3, q))), q);
        // Assert: 7 · 3 · (±2) = ±42
        expect(Array.from(sum.weightedSum).map((x) => Math.round(x))).toEqual([42, -42, 42, -42]);
        expect(Math.abs(sum.weightedSum[0]! - 42)).toBeLessThanOrEqual(quantizationErrorBound(q, 7));
        expect(sum.totalWeight).toBe(21);
      }
    }
  });

  it('stochastic rounding is unbiased (mean of many roundings → the value)', () => {
    // Arrange: a value exactly 0.3 levels above a level
    const q = resolveQuantization({ clip: 1, maxClients: 1, bits: 8, rounding: 'stochastic' }); // scale 127
    const x = Float32Array.from({ length: 20_000 }, () => 10.3 / 127);
    // Act
    const levels = quantizeWeightedUpdate(x, 1, q).subarray(0, x.length);
    const mean = levels.reduce((a, b) => a + b, 0) / levels.length;
    // Assert: E = 10.3, sd of the mean = sqrt(0.21 / 20000) ≈ 0.0032
    expect(new Set(levels)).toEqual(new Set([10, 11]));
    expect(Math.abs(mean - 10.3)).toBeLessThan(0.02);
  });

  it('encodes negatives in two’s complement of Z_2^bits and puts the weight last', () => {
    const q = resolveQuantization({ clip: 1, maxClients: 1, bits: 16, rounding: 'deterministic' }); // scale 32767
    const out = quantizeWeightedUpdate(Float32Array.from([-1, 0, 1]), 1, q);
    expect(Array.from(out)).toEqual([65536 - 32767, 0, 32767, 1]);
  });

  it('rejects bad settings (CONFIG_ERROR), bad weights (RangeError) and non-finite updates (INVALID_UPDATE)', () => {
    const bad: QuantizationConfig[] = [
      { clip: 0, maxClients: 1 },
      { clip: Number.NaN, maxClients: 1 },
      { clip: 1, maxClients: 0 },
      { clip: 1, maxClients: 1, bits: 33 },
      { clip: 1, maxClients: 1, bits: 7 },
      { clip: 1, maxClients: 1, maxWeight: 1.5 },
      { clip: 1, maxClients: 2 ** 20, maxWeight: 2 ** 13 },
      { clip: 1, maxClients: 1, rounding: 'up' as 'stochastic' },
    ];
    for (const config of bad) expect(() => resolveQuantization(config), JSON.stringify(config)).toThrow(expect.objectContaining({ code: 'CONFIG_ERROR' }));
    const q = resolveQuantization({ clip: 1, maxClients: 2, maxWeight: 10 });
    expect(() => quantizeWeightedUpdate(new Float32Array(1), 11, q)).toThrow(/weight: expected an integer in \[0, 10\]/);
    expect(() => quantizeWeightedUpdate(new Float32Array(1), 1.5, q)).toThrow(RangeError);
    let caught: unknown;
    try {
      quantizeWeightedUpdate(Float32Array.from([0, Number.NaN]), 1, q);
    } catch (e) {
      caught = e;
    }
    expect(isFedmartError(caught, 'INVALID_UPDATE')).toBe(true);
    expect((caught as Error).message).toMatch(/coordinate 1/);
  });
});
