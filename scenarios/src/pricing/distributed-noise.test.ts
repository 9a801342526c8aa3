/**
 * Distributed Gaussian noise for the pricing task's record-level DP (task.ts `noiseShares`): under secure aggregation
 * each of S partners adds a 1/√S share, so the secure sum carries the σΔ₂ the ledger charges (Dwork et al. 2006).
 */
import { describe, expect, it } from 'vitest';
import { statCount } from './demand.ts';
import { pricingLayout, type PricingTaskSpec } from './wire.ts';
import { pricingTask, shareNoiseStd, sumNoiseStd } from './task.ts';

const base: PricingTaskSpec = { products: ['a', 'b'], regressors: ['log_price', 'deal'], fixedEffects: true, encoding: 'dp', dpScale: 1, rowBound: 1, rowScale: [1, 1, 1] };

/** The empirical std of a partner's released vector when it has no rows: its noise alone (dpScale 1). */
async function releasedStd(spec: PricingTaskSpec, sigma: number, clip: number): Promise<number> {
  const t = pricingTask([], []);
  const layout = pricingLayout(spec);
  t.accept(layout, spec);
  const n = 1 + spec.products.length * statCount(spec.regressors.length);
  let sq = 0;
  let k = 0;
  for (let rep = 0; rep < 400; rep++) {
    const { delta } = await t.round({ weights: new Float32Array(n) }).recordDp({ clip, noiseMultiplier: sigma });
    for (let i = 1; i < n; i++) { sq += delta[i]! ** 2; k++; }
  }
  return Math.sqrt(sq / k);
}

describe('pricing DP: distributed noise shares', () => {
  it('the std algebra: S shares of σΔ/√S sum to σΔ; P partners each adding σΔ sum to √P·σΔ', () => {
    expect(shareNoiseStd(6, 9)).toBeCloseTo(2, 12);
    expect(sumNoiseStd(6, 9, 9)).toBeCloseTo(6, 12);
    expect(sumNoiseStd(6, 9, undefined)).toBeCloseTo(18, 12);
  });

  it('a partner adds only its 1/√S share under noiseShares = S (secure sum), the full σΔ₂ otherwise', async () => {
    const sigma = 1.2;
    const clip = 4; // ≥ Δ₂ = √11 at R = 1
    const full = await releasedStd(base, sigma, clip);
    const share = await releasedStd({ ...base, noiseShares: 6, secureSum: true }, sigma, clip);
    // 400 × 2 × 10 draws each: the sample std is within ~2 % of the truth.
    expect(full / (sigma * clip)).toBeGreaterThan(0.94);
    expect(full / (sigma * clip)).toBeLessThan(1.06);
    expect(share / ((sigma * clip) / Math.sqrt(6))).toBeGreaterThan(0.94);
    expect(share / ((sigma * clip) / Math.sqrt(6))).toBeLessThan(1.06);
    // Six independent shares sum to the full noise.
    expect(Math.sqrt(6) * share / full).toBeGreaterThan(0.9);
    expect(Math.sqrt(6) * share / full).toBeLessThan(1.1);
  });

  it('a partner refuses noise shares when the federation does not aggregate by a secure sum, and a bad share count', () => {
    const t = pricingTask([], []);
    expect(() => t.accept(pricingLayout(base), { ...base, noiseShares: 6 })).toThrow(/shares .* secure aggregation/);
    expect(() => t.accept(pricingLayout(base), { ...base, noiseShares: 0, secureSum: true })).toThrow(/noiseShares must be an integer >= 1/);
  });
});
