import { describe, expect, it } from 'vitest';
import { createSeededRandomSource, cryptoRandomSource, gaussianNoise, type RandomSource } from './gaussian.ts';

const seed = (b: number): Uint8Array => new Uint8Array(32).fill(b);

/** z-score of Σx²/σ² against χ²_n ≈ N(n, 2n) (mean known to be 0). */
function varianceZ(xs: Float64Array, std: number): number {
  let ss = 0;
  for (const x of xs) ss += (x / std) ** 2;
  return (ss - xs.length) / Math.sqrt(2 * xs.length);
}

describe('gaussianNoise — distribution (n = 200,000, seeded ChaCha20 source)', () => {
  const n = 200_000;
  const std = 2.5;
  const xs = gaussianNoise(n, std, createSeededRandomSource(seed(42)));

  it('has the stated variance: chi-square test, |z| < 4 (two-sided p ≈ 6e-5)', () => {
    expect(Math.abs(varianceZ(xs, std))).toBeLessThan(4);
  });

  it('the same test rejects a 1% wrong std (so it can fail)', () => {
    // Σx²/(1.01σ)² is ~2% low: z ≈ −6.3 at this n.
    expect(Math.abs(varianceZ(xs, std * 1.01))).toBeGreaterThan(4);
  });

  it('has mean 0: |mean|/(σ/√n) < 4', () => {
    const mean = xs.reduce((s, x) => s + x, 0) / n;
    expect(Math.abs(mean) / (std / Math.sqrt(n))).toBeLessThan(4);
  });

  it('matches normal tail frequencies within 4 binomial standard deviations', () => {
    // P(|Z| > 1) = 0.31731, P(|Z| > 2) = 0.04550, P(|Z| > 3) = 0.0026998
    for (const [k, p] of [
      [1, 0.3173105078629141],
      [2, 0.04550026389635842],
      [3, 0.0026997960632601866],
    ] as const) {
      const count = xs.reduce((c, x) => c + (Math.abs(x) > k * std ? 1 : 0), 0);
      expect(Math.abs(count - n * p)).toBeLessThan(4 * Math.sqrt(n * p * (1 - p)));
    }
  });
});

describe('gaussianNoise — sources and arguments', () => {
  it('is reproducible for a seed and differs across seeds', () => {
    const a = gaussianNoise(7, 1, createSeededRandomSource(seed(1)));
    const b = gaussianNoise(7, 1, createSeededRandomSource(seed(1)));
    const c = gaussianNoise(7, 1, createSeededRandomSource(seed(2)));
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
  });

  it('uses both Box–Muller outputs: 16 bytes per pair', () => {
    let drawn = 0;
    const inner = createSeededRandomSource(seed(3));
    const counting: RandomSource = { fill: (bytes) => ((drawn += bytes.length), inner.fill(bytes)) };
    gaussianNoise(10, 1, counting);
    expect(drawn).toBe(80);
  });

  it('the seeded stream is continuous across fill calls (chunking does not change it)', () => {
    const one = new Uint8Array(10_000);
    createSeededRandomSource(seed(9)).fill(one);
    const src = createSeededRandomSource(seed(9));
    const parts = [3, 4093, 1, 5903].map((len) => {
      const b = new Uint8Array(len);
      src.fill(b);
      return b;
    });
    expect(Buffer.concat(parts).equals(Buffer.from(one))).toBe(true);
  });

  it('defaults to the platform CSPRNG and handles > 64 KiB requests', () => {
    const xs = gaussianNoise(10_000, 1); // 80 KB of randomness
    expect(xs.length).toBe(10_000);
    expect(new Set(xs).size).toBe(10_000);
    const big = new Uint8Array(70_000);
    cryptoRandomSource.fill(big);
    expect(big.some((b) => b !== 0)).toBe(true);
  });

  it('std 0 gives zeros; n 0 gives an empty array', () => {
    expect([...gaussianNoise(3, 0, createSeededRandomSource(seed(0)))]).toEqual([0, 0, 0]);
    expect(gaussianNoise(0, 1).length).toBe(0);
  });

  it('rejects bad arguments', () => {
    expect(() => gaussianNoise(-1, 1)).toThrow(RangeError);
    expect(() => gaussianNoise(1.5, 1)).toThrow(RangeError);
    expect(() => gaussianNoise(1, -1)).toThrow(RangeError);
    expect(() => gaussianNoise(1, NaN)).toThrow(RangeError);
    expect(() => gaussianNoise(1, 1, {} as RandomSource)).toThrow(TypeError);
    expect(() => createSeededRandomSource(new Uint8Array(16))).toThrow(RangeError);
    expect(() => createSeededRandomSource(seed(0), new Uint8Array(8))).toThrow(RangeError);
  });
});
