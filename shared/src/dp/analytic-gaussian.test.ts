import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { analyticGaussianDelta, analyticGaussianEpsilon, analyticGaussianSigma } from './analytic-gaussian.ts';
import { computePldEpsilon } from './pld.ts';
import { computeEpsilon } from './rdp.ts';

describe('analytic Gaussian mechanism (Balle & Wang 2018, Theorem 8)', () => {
  it('known answers: σ for (Δ, ε, δ) as published by independent implementations', () => {
    // (Δ, ε, δ) → σ: the sds_core test vectors (√30, 6, 0.5) → 1.46597315, (√30, 6, 1e-5) → 4.18260214,
    // (10, 0.1, 1e-5) → 307.495661; (1, 4, 1e-5) and (1, 1, 1e-5) from scipy brentq on Theorem 8.
    const cases: [number, number, number, number][] = [
      [Math.sqrt(30), 6, 0.5, 1.465973147],
      [Math.sqrt(30), 6, 1e-5, 4.182602138],
      [10, 0.1, 1e-5, 307.4956613],
      [1, 4, 1e-5, 1.08116185],
      [1, 1, 1e-5, 3.73063163],
    ];
    for (const [sens, eps, delta, sigma] of cases) expect(analyticGaussianSigma(eps, delta) * sens).toBeCloseTo(sigma, 6);
  });

  it('ε of the σ the RDP conversion picks for (4, 1e-5): 3.698 (tight), the RDP accountant says 4', () => {
    expect(analyticGaussianEpsilon(1.1575747408844843, 1e-5)).toBeCloseTo(3.69807616, 6);
    expect(computeEpsilon({ q: 1, sigma: 1.1575747408844843, steps: 1, delta: 1e-5 }).epsilon).toBeCloseTo(4, 3);
  });

  it('agrees with the PLD accountant at q = 1, one step (an independent numerical route), which may only be above', () => {
    for (const z of [0.6, 1.081, 2, 5]) {
      const exact = analyticGaussianEpsilon(z, 1e-5);
      const pld = computePldEpsilon({ q: 1, sigma: z, steps: 1, delta: 1e-5 }).epsilon;
      expect(pld).toBeGreaterThanOrEqual(exact - 1e-9);
      expect(pld - exact).toBeLessThan(0.02 * exact + 1e-3);
    }
  });

  it('properties: calibration inverts the curve; δ decreases in ε and in σ/Δ', () => {
    fc.assert(fc.property(fc.double({ min: 0.05, max: 20, noNaN: true }), fc.double({ min: 1e-12, max: 0.5, noNaN: true }), (eps, delta) => {
      const z = analyticGaussianSigma(eps, delta);
      expect(analyticGaussianDelta(z, eps)).toBeLessThanOrEqual(delta * (1 + 1e-9));
      expect(analyticGaussianDelta(z * (1 - 1e-6), eps)).toBeGreaterThan(delta * (1 - 1e-6)); // smallest such z
      expect(analyticGaussianEpsilon(z, delta)).toBeCloseTo(eps, 5);
      expect(analyticGaussianDelta(z, eps * 1.1)).toBeLessThanOrEqual(analyticGaussianDelta(z, eps));
      expect(analyticGaussianDelta(z * 1.1, eps)).toBeLessThanOrEqual(analyticGaussianDelta(z, eps));
    }), { numRuns: 200 });
  });

  it('refuses arguments outside the domain', () => {
    expect(() => analyticGaussianSigma(0, 1e-5)).toThrow(/epsilon/);
    expect(() => analyticGaussianSigma(1, 1)).toThrow(/delta/);
    expect(() => analyticGaussianEpsilon(-1, 1e-5)).toThrow(/noise multiplier/);
  });
});
