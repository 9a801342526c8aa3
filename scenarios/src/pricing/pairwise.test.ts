/**
 * The pairwise two-stage release (pairwise.ts): its record-level sensitivity bounds, checked as properties over random
 * and adversarial panels (add/remove one row inside the cell-cap domain), and the partner's refusal of a cell beyond the cap.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { flattenStats, type DemandRow } from './demand.ts';
import { flattenResidualStats } from './two-stage.ts';
import { pairCells, pairResidualSensitivity, pairResidualStats, pairSensitivity, pairStats } from './pairwise.ts';
import { pricingTask, partnerContribution } from './task.ts';
import { pricingLayout, type PricingTaskSpec } from './wire.ts';

const p = 2;
const scale = [0.6, 1, 3];
const norm = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
};

/** A row: log price, deal, log units; big values on purpose (outliers far from their cell are where coupling bites). */
const rowArb = fc.record({ lp: fc.double({ min: -6, max: 2, noNaN: true }), deal: fc.constantFrom(0, 1), y: fc.double({ min: -5, max: 15, noNaN: true }), level: fc.constantFrom('s0', 's1', 's2') });
/** Adversarial cells: most rows at one point, the new row far away (every pair with it clipped and aligned). */
const clusterArb = fc.record({ m: fc.integer({ min: 1, max: 9 }), at: fc.double({ min: -1, max: 1, noNaN: true }), far: fc.double({ min: 3, max: 40, noNaN: true }) });

const toRows = (rs: { lp: number; deal: number; y: number; level: string }[]): DemandRow[] => rs.map((r, index) => ({ product: 'a', level: r.level, y: r.y, x: [r.lp, r.deal], price: Math.exp(r.lp), index }));
const cap = 10;
/** Round 1's released vector of product a: upper(S), n, levels (Σy, Σy² are zeros, unreleased). */
const release1 = (rows: DemandRow[], radius: number): Float64Array => {
  const s = pairStats(rows, p, { radius, scale, cellCap: cap }).get('a');
  return s ? flattenStats(s, p) : new Float64Array(flattenStats({ xtx: new Float64Array(p * p), xty: new Float64Array(p), yty: 0, n: 0, levels: 0, sumY: 0, sumY2: 0 }, p).length);
};
const release2 = (rows: DemandRow[], xRadius: number, w: number): Float64Array => {
  const s = pairResidualStats(rows, p, { beta0: new Map([['a', [-2, 0.8]]]), residualClip: new Map([['a', 0.9]]), scale: scale.slice(0, p), xRadius, cellCap: cap }).get('a');
  return s ? flattenResidualStats(s, p, w) : new Float64Array((p * (p + 1)) / 2 + p);
};
/** A panel of ≤ cap rows per cell and one of its rows removed (add/remove neighbours inside the domain). */
const neighbours = fc.array(rowArb, { minLength: 1, maxLength: 24 }).chain((rs) => fc.integer({ min: 0, max: rs.length - 1 }).map((drop) => ({ rs, drop })))
  .filter(({ rs }) => ['s0', 's1', 's2'].every((l) => rs.filter((r) => r.level === l).length <= cap));

describe('pricing DP on within-cell pairs: record-level sensitivity without fixed-effect coupling', () => {
  it('round 1: removing any row moves the released vector by at most √(R⁴ + 2) (random panels)', () => {
    fc.assert(fc.property(neighbours, fc.constantFrom(0.5, 1, 1.5, 3), ({ rs, drop }, radius) => {
      const all = toRows(rs);
      const less = all.filter((_, i) => i !== drop);
      expect(norm(release1(all, radius), release1(less, radius))).toBeLessThanOrEqual(pairSensitivity(radius) * (1 + 1e-9));
    }), { numRuns: 400 });
  });

  it('round 1 and 2: the bound holds for a far outlier added to a full cluster (where a demeaned release moves every row)', () => {
    fc.assert(fc.property(clusterArb, fc.constantFrom(1, 1.5), fc.constantFrom(0.05, 0.3, 1), ({ m, at, far }, radius, w) => {
      const base = Array.from({ length: m }, () => ({ lp: at, deal: 0, y: 9, level: 's0' }));
      const all = toRows([...base, { lp: at - far, deal: 1, y: 9 + far, level: 's0' }]);
      const less = all.slice(0, m);
      expect(norm(release1(all, radius), release1(less, radius))).toBeLessThanOrEqual(pairSensitivity(radius) * (1 + 1e-9));
      expect(norm(release2(all, radius, w), release2(less, radius, w))).toBeLessThanOrEqual(pairResidualSensitivity(radius, w) * (1 + 1e-9));
    }), { numRuns: 200 });
  });

  it('round 2: removing any row moves [w·upper(A), b] by at most √(w²R_x⁴ + R_x²) (random panels, fixed β₀ and c)', () => {
    fc.assert(fc.property(neighbours, fc.constantFrom(1, 1.5), fc.constantFrom(0.05, 0.3, 1), ({ rs, drop }, xRadius, w) => {
      const all = toRows(rs);
      const less = all.filter((_, i) => i !== drop);
      expect(norm(release2(all, xRadius, w), release2(less, xRadius, w))).toBeLessThanOrEqual(pairResidualSensitivity(xRadius, w) * (1 + 1e-9));
    }), { numRuns: 400 });
  });

  it('without clipping, round 1 is the within scatter weighted by n_c / T (fixed effects cancel in differences)', () => {
    const rows = toRows([{ lp: 0.1, deal: 0, y: 1, level: 's0' }, { lp: 0.3, deal: 1, y: 2.5, level: 's0' }, { lp: -0.2, deal: 0, y: 0.4, level: 's0' }, { lp: 5, deal: 1, y: 20, level: 's1' }, { lp: 5.4, deal: 0, y: 19, level: 's1' }]);
    const s = pairStats(rows, p, { radius: 1e9, scale: [1, 1, 1], cellCap: cap }).get('a')!;
    let want = 0;
    for (const lv of ['s0', 's1']) {
      const c = rows.filter((r) => r.level === lv);
      const mx = c.reduce((t, r) => t + r.x[0]!, 0) / c.length;
      const my = c.reduce((t, r) => t + r.y, 0) / c.length;
      want += (c.length / cap) * c.reduce((t, r) => t + (r.x[0]! - mx) * (r.y - my), 0);
    }
    expect(s.xty[0]).toBeCloseTo(want, 12);
    expect(s.n).toBe(5);
    expect(s.levels).toBe(2);
  });

  it('a partner refuses a cell with more rows than the public cap, before releasing anything', () => {
    const rows = toRows(Array.from({ length: 4 }, (_, i) => ({ lp: i / 10, deal: 0, y: i, level: 's0' })));
    expect(() => pairCells(rows, 3)).toThrow(/more than 3 rows, the public cap per cell/);
    const spec: PricingTaskSpec = { products: ['a'], regressors: ['log_price', 'deal'], fixedEffects: true, encoding: 'dp', dpScale: 100, rowBound: 1.5, rowScale: scale, twoStage: { residualK: 3, xRadius: 1.5, budget: [0.2, 0.8], partners: 1, dpScale2: 100, pairs: { cellCap: 3 } } };
    expect(() => partnerContribution(rows, spec, 1)).toThrow(/--dp-cell-cap/);
    const t = pricingTask(rows, rows);
    expect(() => t.accept(pricingLayout({ ...spec, fixedEffects: false }), { ...spec, fixedEffects: false })).toThrow(/needs fixed effects/);
  });
});
