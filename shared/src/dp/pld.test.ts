import { describe, expect, it } from 'vitest';
import vectors from '../../../test/vectors/dp/pld-reference.json' with { type: 'json' };
import { PrivacyLossDistribution, computePldEpsilon, defaultPldDiscretization } from './pld.ts';
import { DEFAULT_RDP_ORDERS, computeRdp, rdpToEpsilon } from './rdp.ts';
import { logErfc, normalCdf } from './special-functions.ts';

const REL = vectors.tolerance.relative; // 1%

/** Tight ε of the k-fold Gaussian mechanism: μ-GDP with μ = sqrt(k)/σ (Balle & Wang 2018, Thm 8; Dong et al. 2019). */
function exactGaussianEpsilon(sigma: number, steps: number, delta: number): number {
  const mu = Math.sqrt(steps) / sigma;
  // e^ε·Φ(t) in log space: e^ε overflows long before Φ(t) underflows for large μ.
  const d = (e: number): number => normalCdf(-e / mu + mu / 2) - Math.exp(e + Math.log(0.5) + logErfc((e / mu + mu / 2) * Math.SQRT1_2));
  let lo = 0;
  let hi = 1;
  while (d(hi) > delta) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const m = (lo + hi) / 2;
    if (d(m) > delta) lo = m;
    else hi = m;
  }
  return hi;
}

describe('computePldEpsilon — published PLD values (TF Privacy / dp_accounting)', () => {
  for (const v of vectors.epsilon) {
    it(v.source.slice(0, 100), () => {
      const { epsilon } = computePldEpsilon({ q: v.q, sigma: v.sigma, steps: v.steps, delta: v.delta });
      expect(Math.abs(epsilon - v.expectedEpsilon)).toBeLessThanOrEqual(REL * v.expectedEpsilon);
    });
  }
});

describe('pessimism and accuracy against the exact Gaussian (q = 1)', () => {
  for (const [sigma, steps, delta] of [
    [1, 1, 1e-5],
    [0.5, 100, 1e-6],
    [2, 100, 1e-5],
    [5, 10000, 1e-6],
    [1, 10000, 1e-5],
  ] as const) {
    it(`σ=${sigma}, ${steps} steps, δ=${delta}: exact ≤ PLD ≤ exact·1.002`, () => {
      // Arrange
      const exact = exactGaussianEpsilon(sigma, steps, delta);
      // Act
      const { epsilon } = computePldEpsilon({ q: 1, sigma, steps, delta });
      // Assert
      expect(epsilon).toBeGreaterThanOrEqual(exact * (1 - 1e-9));
      expect(epsilon).toBeLessThanOrEqual(exact * 1.002);
    });
  }

  it('a coarser grid is never less pessimistic', () => {
    const h = defaultPldDiscretization(0.01, 1);
    const fine = computePldEpsilon({ q: 0.01, sigma: 1, steps: 300, delta: 1e-5, discretization: h }).epsilon;
    const coarse = computePldEpsilon({ q: 0.01, sigma: 1, steps: 300, delta: 1e-5, discretization: 8 * h }).epsilon;
    expect(coarse).toBeGreaterThanOrEqual(fine);
  });

  it('the single-step discrete PLD dominates the exact hockey-stick curve', () => {
    // Exact δ(ε) for q = 1 at one step is the Gaussian curve with μ = 1/σ.
    const sigma = 1.3;
    const pld = PrivacyLossDistribution.subsampledGaussian(1, sigma, 'remove', 0.05);
    const mu = 1 / sigma;
    for (let eps = 0; eps <= 4; eps += 0.037) {
      const exact = normalCdf(-eps / mu + mu / 2) - Math.exp(eps) * normalCdf(-eps / mu - mu / 2);
      expect(pld.deltaForEpsilon(eps)).toBeGreaterThanOrEqual(exact - 1e-15);
    }
  });

  it('masses form a probability distribution and ε/δ are inverse', () => {
    const pld = PrivacyLossDistribution.subsampledGaussian(0.05, 0.9, 'add', 1e-3).selfCompose(37);
    const total = pld.masses.reduce((s, m) => s + m, 0) + pld.infMass;
    expect(total).toBeCloseTo(1, 9);
    expect(pld.masses.every((m) => m >= 0)).toBe(true);
    const eps = pld.epsilonForDelta(1e-5);
    expect(pld.deltaForEpsilon(eps)).toBeCloseTo(1e-5, 12);
  });
});

describe('RDP is never below the (pessimistic) PLD ε', () => {
  // Full grid from the brief: q × σ × steps × δ = 4 × 4 × 3 × 2 = 96 cases.
  // Each (q, σ, steps) is composed once per direction and read at both δ (~5 s in all).
  for (const q of [0.001, 0.01, 0.1, 1]) {
    it(`q=${q}, σ ∈ {0.5, 1, 2, 5}, steps ∈ {1, 100, 10000}, δ ∈ {1e-5, 1e-6}`, () => {
      for (const sigma of [0.5, 1, 2, 5]) {
        const h = defaultPldDiscretization(q, sigma);
        const single = (['remove', 'add'] as const).map((d) => PrivacyLossDistribution.subsampledGaussian(q, sigma, d, h));
        for (const steps of [1, 100, 10000]) {
          const plds = single.map((p) => p.selfCompose(steps));
          const rdp = computeRdp(q, sigma, steps);
          for (const delta of [1e-5, 1e-6]) {
            const pldEps = Math.max(...plds.map((p) => p.epsilonForDelta(delta)));
            const rdpEps = rdpToEpsilon(DEFAULT_RDP_ORDERS, rdp, delta).epsilon;
            expect(rdpEps, `q=${q} σ=${sigma} steps=${steps} δ=${delta}`).toBeGreaterThanOrEqual(pldEps);
          }
        }
      }
    });
  }
});

describe('argument validation', () => {
  it('rejects bad arguments with RangeError', () => {
    expect(() => PrivacyLossDistribution.subsampledGaussian(0, 1, 'add', 1e-3)).toThrow(RangeError);
    expect(() => PrivacyLossDistribution.subsampledGaussian(0.1, -1, 'add', 1e-3)).toThrow(RangeError);
    expect(() => PrivacyLossDistribution.subsampledGaussian(0.1, 1, 'both' as 'add', 1e-3)).toThrow(RangeError);
    expect(() => PrivacyLossDistribution.subsampledGaussian(0.1, 1, 'add', 0)).toThrow(RangeError);
    expect(() => PrivacyLossDistribution.subsampledGaussian(0.1, 1, 'add', 1e-9)).toThrow(/bins/);
    expect(() => computePldEpsilon({ q: 0.1, sigma: 1, steps: 0, delta: 1e-5 })).toThrow(RangeError);
    expect(() => computePldEpsilon({ q: 0.1, sigma: 1, steps: 1, delta: 1 })).toThrow(RangeError);
    const a = PrivacyLossDistribution.subsampledGaussian(0.1, 1, 'add', 1e-2);
    const b = PrivacyLossDistribution.subsampledGaussian(0.1, 1, 'add', 2e-2);
    expect(() => a.compose(b)).toThrow(/grid spacings differ/);
    expect(() => a.selfCompose(0)).toThrow(RangeError);
  });
});
