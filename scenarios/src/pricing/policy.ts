/**
 * Pricing from a constant-elasticity demand curve, within guardrails (issue 11).
 *
 * Demand q(p) = q₀·(p/x)^e around the current price x (q₀ its expected
 * units). Margin m(p) = (p − c)·q(p) has m′(p) ∝ p(1 + e) − c·e, so for
 * e < −1 it is unimodal with its maximum at the Lerner / inverse-elasticity
 * price p* = c·e/(1 + e) (markup rule, e.g. Tirole 1988 §1.1), and for
 * e ≥ −1 it increases with p (no interior optimum: the upper guardrail binds).
 * Because m is unimodal, the best price inside a band [lo, hi] is p*
 * clamped to it.
 *
 * Guardrails, all hard: [minPrice, maxPrice]; |p/x − 1| ≤ maxChange (the
 * tighter `highSensitivityMaxChange` when |e| ≥ the class threshold: a
 * price-sensitive product moves less per period); margin floor
 * (p − c)/p ≥ minMargin, i.e. p ≥ c/(1 − minMargin). When they cannot all
 * hold, the answer is `feasible: false`, names the conflict, keeps the
 * price inside the price and change bands, and is as close to the margin
 * floor as they allow.
 *
 * The brief's cost-plus rule is the second policy:
 * base = c(1 + targetMargin); competitor factor = 0.3·(1 − min(competitor)/base);
 * demand factor = 0.5·score with score = −min(1, max(0, (|e| − 1)/4)) ∈ [−1, 0]
 * (more elastic → lower); price = base·(1 + competitor + demand factor), then
 * the same guardrails.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';

export type PricingPolicy = 'margin-optimal' | 'cost-plus';
export type Guardrail = 'min-price' | 'max-price' | 'max-change' | 'high-sensitivity-band' | 'min-margin';

export interface PriceRequest {
  cost: number;
  currentPrice: number;
  elasticity: number;
  competitorPrices?: number[] | undefined;
  /** Expected units at the current price (default 1: units are then an index). */
  baseUnits?: number | undefined;
  policy?: PricingPolicy | undefined;
  minPrice?: number | undefined;
  maxPrice?: number | undefined;
  /** Largest relative change per period (default 0.1). */
  maxChange?: number | undefined;
  /** Largest relative change for high-sensitivity products (default 0.05). */
  highSensitivityMaxChange?: number | undefined;
  /** |e| at or above which a product is high-sensitivity (default 2). */
  threshold?: number | undefined;
  /** Margin floor as a fraction of price (default 0.15). */
  minMargin?: number | undefined;
  /** Cost-plus target margin (default 0.3). */
  targetMargin?: number | undefined;
}

export interface PriceAnswer {
  price: number;
  expectedUnits: number;
  expectedMargin: number;
  policy: PricingPolicy;
  /** The guardrail that moved the policy's price (null: none did). */
  boundBy: Guardrail | null;
  /** The policy's price before guardrails (null: inelastic, no finite optimum). */
  unconstrainedPrice: number | null;
  elasticity: number;
  class: 'high' | 'low';
  feasible: boolean;
  conflict?: string;
  band: { lo: number; hi: number };
}

const bad = (what: string, v: unknown): never => {
  throw new FedmartError('CONFIG_ERROR', `price: ${what}, got ${String(v)}`);
};

/**
 * Price one SKU.
 * @param r - the request
 * @returns the price, expected units and margin, and which guardrail bound it
 * @throws FedmartError CONFIG_ERROR on non-finite or out-of-range inputs
 * @example priceSku({ cost: 1, currentPrice: 2, elasticity: -3 }).price // 1.8 (the −10 % band; p* = 1.5)
 */
export function priceSku(r: PriceRequest): PriceAnswer {
  const { cost: c, currentPrice: x, elasticity: e } = r;
  if (!(Number.isFinite(c) && c >= 0)) bad('--cost must be a number ≥ 0', c);
  if (!(Number.isFinite(x) && x > 0)) bad('--current-price must be a number > 0', x);
  if (!Number.isFinite(e)) bad('the elasticity must be finite', e);
  const maxChange = r.maxChange ?? 0.1;
  const hsChange = r.highSensitivityMaxChange ?? Math.min(0.05, maxChange);
  const minMargin = r.minMargin ?? 0.15;
  const threshold = r.threshold ?? 2;
  const q0 = r.baseUnits ?? 1;
  if (!(maxChange > 0 && maxChange < 1)) bad('--max-change must be in (0, 1)', maxChange);
  if (!(hsChange > 0 && hsChange <= maxChange)) bad('the high-sensitivity change must be in (0, --max-change]', hsChange);
  if (!(minMargin >= 0 && minMargin < 1)) bad('--min-margin must be in [0, 1)', minMargin);
  if (!(q0 > 0 && Number.isFinite(q0))) bad('base units must be > 0', q0);
  if (r.minPrice !== undefined && !(r.minPrice >= 0)) bad('--min-price must be ≥ 0', r.minPrice);
  if (r.maxPrice !== undefined && !(r.maxPrice > 0)) bad('--max-price must be > 0', r.maxPrice);
  if (r.minPrice !== undefined && r.maxPrice !== undefined && r.minPrice > r.maxPrice) bad('--min-price must not exceed --max-price', `${r.minPrice} > ${r.maxPrice}`);
  for (const cp of r.competitorPrices ?? []) if (!(cp > 0 && Number.isFinite(cp))) bad('competitor prices must be > 0', cp);
  const cls = Math.abs(e) >= threshold ? 'high' : 'low';
  const policy = r.policy ?? 'margin-optimal';
  let target: number | null;
  if (policy === 'margin-optimal') target = e < -1 ? (c * e) / (1 + e) : null;
  else {
    const base = c * (1 + (r.targetMargin ?? 0.3));
    const comp = r.competitorPrices?.length && base > 0 ? 0.3 * (1 - Math.min(...r.competitorPrices) / base) : 0;
    const score = -Math.min(1, Math.max(0, (Math.abs(e) - 1) / 4));
    target = base * (1 + comp + 0.5 * score);
  }
  // The band, tightest bound last-wins per side, remembering which guardrail set each edge.
  const m = cls === 'high' ? hsChange : maxChange;
  let lo = x * (1 - m), loBy: Guardrail = cls === 'high' ? 'high-sensitivity-band' : 'max-change';
  let hi = x * (1 + m), hiBy: Guardrail = loBy;
  if (r.minPrice !== undefined && r.minPrice > lo) { lo = r.minPrice; loBy = 'min-price'; }
  if (r.maxPrice !== undefined && r.maxPrice < hi) { hi = r.maxPrice; hiBy = 'max-price'; }
  let feasible = lo <= hi;
  let conflict: string | undefined;
  if (!feasible) conflict = `the price bounds [${r.minPrice}, ${r.maxPrice}] lie outside the ±${m} change band around ${x}`;
  const floor = minMargin > 0 || c > 0 ? c / (1 - minMargin) : 0;
  if (feasible && floor > lo) {
    if (floor > hi) { feasible = false; conflict = `the margin floor needs a price ≥ ${floor.toPrecision(6)}, above the highest allowed ${hi.toPrecision(6)} (${hiBy})`; lo = hi; }
    else { lo = floor; loBy = 'min-margin'; }
  }
  if (!feasible && lo > hi) {
    // price and change bands disjoint: stay inside the change band, nearest the price bounds
    const clo = x * (1 - m), chi = x * (1 + m);
    lo = hi = r.minPrice !== undefined && r.minPrice > chi ? chi : clo;
  }
  const want = target ?? Number.POSITIVE_INFINITY;
  let price = want;
  let boundBy: Guardrail | null = null;
  if (want > hi) { price = hi; boundBy = hiBy; }
  else if (want < lo) { price = lo; boundBy = loBy; }
  const units = q0 * (price / x) ** e;
  return { price, expectedUnits: units, expectedMargin: (price - c) * units, policy, boundBy, unconstrainedPrice: target, elasticity: e, class: cls, feasible, ...(conflict ? { conflict } : {}), band: { lo, hi } };
}

/** One period of a backtest: the observed price and units. */
export interface BacktestPeriod { price: number; units: number }

/**
 * Replay held-out periods: each period a policy sets the price from the
 * previous period's price; its margin is modelled from the observed units
 * at the observed price through the estimated elasticity. Volatility is the
 * mean |Δ log price| between periods.
 * @returns per policy (and the observed prices): total modelled margin and volatility
 */
export function backtest(periods: readonly BacktestPeriod[], elasticity: number, cost: number, guard: Omit<PriceRequest, 'cost' | 'currentPrice' | 'elasticity' | 'policy'> = {}): Record<'observed' | PricingPolicy, { margin: number; volatility: number }> {
  const run = (pick: (prev: number, i: number) => number) => {
    let margin = 0, vol = 0, prev = periods[0]!.price;
    for (const [i, t] of periods.entries()) {
      const p = i === 0 ? t.price : pick(prev, i);
      margin += (p - cost) * t.units * (p / t.price) ** elasticity;
      if (i > 0) vol += Math.abs(Math.log(p / prev));
      prev = p;
    }
    return { margin, volatility: periods.length > 1 ? vol / (periods.length - 1) : 0 };
  };
  return {
    observed: run((_, i) => periods[i]!.price),
    'margin-optimal': run((prev) => priceSku({ ...guard, cost, currentPrice: prev, elasticity, policy: 'margin-optimal' }).price),
    'cost-plus': run((prev) => priceSku({ ...guard, cost, currentPrice: prev, elasticity, policy: 'cost-plus' }).price),
  };
}
