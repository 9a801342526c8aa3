import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CLIP_COUNT_SENSITIVITY,
  adaptiveClipEffectiveNoiseMultiplier,
  adaptiveClipUpdateNoiseMultiplier,
  centredClipBit,
  centralNoiseStd,
  clipFactor,
  clipToNorm,
  clipToNormInPlace,
  distributedNoiseStd,
  l2Norm,
  noisedUnclippedFraction,
  updateAdaptiveClip,
  type AdaptiveClipState,
} from './clip.ts';
import { createSeededRandomSource, gaussianNoise } from './gaussian.ts';

const finite32 = fc.float({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });

describe('l2Norm', () => {
  it('computes known norms', () => {
    expect(l2Norm([3, 4])).toBe(5);
    expect(l2Norm(new Float32Array(0))).toBe(0);
    expect(l2Norm(Float64Array.of(1e200, 1e200))).toBeCloseTo(Math.SQRT2 * 1e200, -186);
  });
  it('rejects non-vectors', () => {
    expect(() => l2Norm('abc' as unknown as number[])).toThrow(TypeError);
  });
});

describe('clipping bound', () => {
  it('property: clipped float32 vectors have norm ≤ C, direction kept, short vectors untouched', () => {
    fc.assert(
      fc.property(fc.array(finite32, { minLength: 1, maxLength: 300 }), fc.double({ min: 1e-3, max: 1e3, noNaN: true }), (values, c) => {
        const v = Float32Array.from(values);
        const before = l2Norm(v);
        const out = clipToNorm(v, c);
        const after = l2Norm(out);
        if (after > c) return false;
        if (before <= c) return out.every((x, i) => x === v[i]);
        // same direction: out = f·v with one factor f
        const f = clipFactor(before, c);
        return out.every((x, i) => Math.abs(x - v[i]! * f) <= 1e-6 * Math.abs(v[i]!) + 1e-30) && Math.abs(after - c) <= 1e-5 * c;
      }),
      { numRuns: 300 },
    );
  });

  it('clipToNorm copies; clipToNormInPlace mutates and returns the factor', () => {
    const v = Float64Array.of(6, 8);
    const copy = clipToNorm(v, 5);
    expect([...v]).toEqual([6, 8]);
    expect(l2Norm(copy)).toBeLessThanOrEqual(5);
    const f = clipToNormInPlace(v, 5);
    expect(f).toBeCloseTo(0.5, 12);
    expect(l2Norm(v)).toBeLessThanOrEqual(5);
    expect(clipToNorm([1, 1], 10)).toEqual([1, 1]);
  });

  it('clipFactor is min(1, C/norm)', () => {
    expect(clipFactor(0, 1)).toBe(1);
    expect(clipFactor(4, 2)).toBe(0.5);
    expect(() => clipFactor(-1, 1)).toThrow(RangeError);
    expect(() => clipFactor(1, 0)).toThrow(RangeError);
  });

  it('rejects non-finite vectors and bad norms', () => {
    expect(() => clipToNormInPlace([1, Infinity], 1)).toThrow(/non-finite/);
    expect(() => clipToNormInPlace([1, NaN], 1)).toThrow(RangeError);
    expect(() => clipToNorm([1], -2)).toThrow(RangeError);
  });
});

describe('DP-FedAvg noise calibration', () => {
  it('central noise is σ·C', () => {
    expect(centralNoiseStd(1.2, 0.5)).toBeCloseTo(0.6, 15);
    expect(() => centralNoiseStd(0, 1)).toThrow(RangeError);
  });

  it('property: any m ≥ minClients distributed shares sum to variance ≥ (σC)²', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.1, max: 10, noNaN: true }), fc.double({ min: 0.01, max: 10, noNaN: true }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 1000 }), (z, c, minClients, extra) => {
        const s = distributedNoiseStd(z, c, minClients);
        const m = minClients + extra;
        return m * s * s >= (z * c) ** 2 * (1 - 1e-12);
      }),
    );
  });

  it('empirically: the sum of minClients shares has the central std (seeded, 20,000 rounds)', () => {
    const rng = createSeededRandomSource(new Uint8Array(32).fill(5));
    const minClients = 8;
    const s = distributedNoiseStd(1.1, 2, minClients);
    const rounds = 20_000;
    const shares = gaussianNoise(rounds * minClients, s, rng);
    let ss = 0;
    for (let r = 0; r < rounds; r++) {
      let sum = 0;
      for (let k = 0; k < minClients; k++) sum += shares[r * minClients + k]!;
      ss += sum * sum;
    }
    const z = (ss / (1.1 * 2) ** 2 - rounds) / Math.sqrt(2 * rounds);
    expect(Math.abs(z)).toBeLessThan(4);
  });

  it('rejects minClients < 1', () => {
    expect(() => distributedNoiseStd(1, 1, 0)).toThrow(RangeError);
  });
});

describe('adaptive clipping (Andrew et al. 2021)', () => {
  const state: AdaptiveClipState = { clip: 1, targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 0 };

  it('applies C ← C·exp(−η(b̃ − γ))', () => {
    expect(updateAdaptiveClip(state, 0.9).clip).toBeCloseTo(Math.exp(-0.2 * 0.4), 15);
    expect(updateAdaptiveClip(state, 0.1).clip).toBeCloseTo(Math.exp(0.2 * 0.4), 15);
    expect(updateAdaptiveClip(state, 0.5).clip).toBe(1);
    expect(state.clip).toBe(1); // input untouched
  });

  it('converges to the target quantile of a fixed norm distribution', () => {
    // Norms 1..100: the median clip is ~50. Noise-free counts, 400 rounds.
    const norms = Array.from({ length: 100 }, (_, i) => i + 1);
    let s: AdaptiveClipState = { clip: 0.1, targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 0 };
    for (let r = 0; r < 400; r++) {
      const unclipped = norms.filter((x) => x <= s.clip).length;
      s = updateAdaptiveClip(s, noisedUnclippedFraction(unclipped, norms.length, s.countStd));
    }
    expect(s.clip).toBeGreaterThan(45);
    expect(s.clip).toBeLessThan(56);
  });

  it('noisedUnclippedFraction adds N(0, σ_b²) to the count', () => {
    const rng = createSeededRandomSource(new Uint8Array(32).fill(11));
    const draws = Array.from({ length: 4000 }, () => noisedUnclippedFraction(30, 100, 5, rng));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const sd = Math.sqrt(draws.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws.length - 1));
    expect(mean).toBeCloseTo(0.3, 2);
    expect(Math.abs(sd - 0.05)).toBeLessThan(0.004);
    expect(() => noisedUnclippedFraction(101, 100, 1)).toThrow(RangeError);
  });

  it('update-noise multiplier satisfies z⁻² = z_Δ⁻² + (2σ_b)⁻²', () => {
    const z = 1.1;
    const sb = 5;
    const zd = adaptiveClipUpdateNoiseMultiplier(z, sb);
    expect(zd ** -2 + (2 * sb) ** -2).toBeCloseTo(z ** -2, 12);
    expect(zd).toBeGreaterThan(z);
    expect(() => adaptiveClipUpdateNoiseMultiplier(1, 0.5)).toThrow(RangeError);
  });

  it('property: the centred count Σ(b_i − ½) moves by exactly ½ when one partner is added or removed (TF Privacy quantile estimator)', () => {
    fc.assert(fc.property(fc.array(fc.boolean(), { maxLength: 200 }), fc.boolean(), (bits, extra) => {
      const sum = (bs: boolean[]) => bs.reduce((s, b) => s + centredClipBit(b), 0);
      expect(Math.abs(sum([...bits, extra]) - sum(bits))).toBe(CLIP_COUNT_SENSITIVITY);
    }));
  });

  it('property: the effective multiplier inverts the update split, so update + count cost exactly σ', () => {
    fc.assert(fc.property(fc.double({ min: 0.05, max: 50, noNaN: true }), fc.double({ min: 1.01, max: 100, noNaN: true }), (z, ratio) => {
      const sb = (z / 2) * ratio; // σ_b > z/2
      const zd = adaptiveClipUpdateNoiseMultiplier(z, sb);
      expect(Math.abs(adaptiveClipEffectiveNoiseMultiplier(zd, sb) - z)).toBeLessThanOrEqual(1e-9 * z);
      expect(adaptiveClipEffectiveNoiseMultiplier(zd, sb)).toBeLessThanOrEqual(Math.min(zd, 2 * sb) + 1e-12);
    }));
  });

  it('rejects invalid state', () => {
    expect(() => updateAdaptiveClip({ ...state, clip: 0 }, 0.5)).toThrow(RangeError);
    expect(() => updateAdaptiveClip({ ...state, targetQuantile: 2 }, 0.5)).toThrow(RangeError);
    expect(() => updateAdaptiveClip(state, NaN)).toThrow(RangeError);
  });
});
