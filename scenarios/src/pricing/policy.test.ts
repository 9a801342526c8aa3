import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backtest, priceSku, type PriceRequest } from './policy.ts';

const TOL = 1e-9;

/** Every guardrail the answer claims to respect, checked from the request alone. */
function guardrailBreaks(r: PriceRequest, a: ReturnType<typeof priceSku>): string[] {
  const out: string[] = [];
  const maxChange = r.maxChange ?? 0.1;
  const high = Math.abs(r.elasticity) >= (r.threshold ?? 2);
  const m = high ? (r.highSensitivityMaxChange ?? Math.min(0.05, maxChange)) : maxChange;
  // The change band (brand protection) holds always, feasible or not.
  if (Math.abs(a.price / r.currentPrice - 1) > m + TOL) out.push(`change ${a.price / r.currentPrice - 1} beyond ±${m}`);
  if (a.feasible) {
    if (r.minPrice !== undefined && a.price < r.minPrice * (1 - TOL)) out.push('below min price');
    if (r.maxPrice !== undefined && a.price > r.maxPrice * (1 + TOL)) out.push('above max price');
    if ((a.price - r.cost) / a.price < (r.minMargin ?? 0.15) - TOL) out.push('below margin floor');
  } else if (!a.conflict) out.push('infeasible without a reason');
  if (!Number.isFinite(a.price) || !Number.isFinite(a.expectedMargin) || !Number.isFinite(a.expectedUnits)) out.push('non-finite answer');
  return out;
}

const request = fc.record({
  cost: fc.double({ min: 0, max: 100, noNaN: true }),
  currentPrice: fc.double({ min: 0.01, max: 200, noNaN: true }),
  elasticity: fc.double({ min: -8, max: 0.5, noNaN: true }),
  maxChange: fc.option(fc.double({ min: 0.01, max: 0.5, noNaN: true }), { nil: undefined }),
  minMargin: fc.option(fc.double({ min: 0, max: 0.9, noNaN: true }), { nil: undefined }),
  minPrice: fc.option(fc.double({ min: 0, max: 150, noNaN: true }), { nil: undefined }),
  span: fc.option(fc.double({ min: 0, max: 150, noNaN: true }), { nil: undefined }),
  policy: fc.constantFrom('margin-optimal' as const, 'cost-plus' as const),
  competitorPrices: fc.option(fc.array(fc.double({ min: 0.01, max: 200, noNaN: true }), { minLength: 1, maxLength: 3 }), { nil: undefined }),
}).map(({ span, ...r }): PriceRequest => ({ ...r, ...(r.minPrice !== undefined && span !== undefined ? { maxPrice: r.minPrice + span + 0.01 } : {}) }));

describe('pricing policies within guardrails', () => {
  it('10,000 random pricing requests never break a guardrail (and name the conflict when the guardrails cannot all hold)', () => {
    fc.assert(fc.property(request, (r) => {
      const a = priceSku(r);
      expect(guardrailBreaks(r, a)).toEqual([]);
    }), { numRuns: 10_000 });
  });

  it('the unconstrained optimum is the closed form p* = c·e/(1+e) for e < −1, and maximises margin', () => {
    fc.assert(fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), fc.double({ min: -10, max: -1.05, noNaN: true }), (c, e) => {
      const pStar = (c * e) / (1 + e);
      // Wide guardrails that cannot bind: current price at p*, change band ±99 %, no floor.
      const a = priceSku({ cost: c, currentPrice: pStar, elasticity: e, maxChange: 0.99, highSensitivityMaxChange: 0.99, minMargin: 0 });
      expect(a.unconstrainedPrice).toBeCloseTo(pStar, 10);
      expect(a.boundBy).toBeNull();
      expect(a.price).toBeCloseTo(pStar, 10);
      const margin = (p: number) => (p - c) * (p / pStar) ** e;
      expect(margin(pStar)).toBeGreaterThanOrEqual(margin(pStar * 1.01));
      expect(margin(pStar)).toBeGreaterThanOrEqual(margin(pStar * 0.99));
    }), { numRuns: 2000 });
  });

  it('names the guardrail that bound the price', () => {
    expect(priceSku({ cost: 1, currentPrice: 2, elasticity: -3, threshold: 5 })).toMatchObject({ price: 1.8, boundBy: 'max-change', unconstrainedPrice: 1.5 });
    expect(priceSku({ cost: 1, currentPrice: 2, elasticity: -3 })).toMatchObject({ price: 1.9, boundBy: 'high-sensitivity-band', class: 'high' });
    expect(priceSku({ cost: 1, currentPrice: 1.2, elasticity: -6, minMargin: 0.2, threshold: 10 }).boundBy).toBe('min-margin');
    expect(priceSku({ cost: 1, currentPrice: 2, elasticity: -0.5, maxPrice: 2.05 })).toMatchObject({ price: 2.05, boundBy: 'max-price', unconstrainedPrice: null });
    const infeasible = priceSku({ cost: 10, currentPrice: 2, elasticity: -3 });
    expect(infeasible.feasible).toBe(false);
    expect(infeasible.conflict).toMatch(/margin floor/);
  });

  it('the backtest replays policies and measures volatility', () => {
    const periods = [2, 2.2, 1.8, 2.4, 2].map((p) => ({ price: p, units: 100 * p ** -3 }));
    const b = backtest(periods, -3, 1, { maxChange: 0.1, threshold: 5 });
    expect(b.observed.volatility).toBeGreaterThan(b['margin-optimal'].volatility);
    expect(b['margin-optimal'].volatility).toBeLessThanOrEqual(Math.log(1 / 0.9) + 1e-12);
    expect(b['margin-optimal'].margin).toBeGreaterThan(b.observed.margin);
  });
});
