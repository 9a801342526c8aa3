/**
 * The two-stage DP release through the task seam (task.ts: stageNoiseMultiplier, roundTwoPlans, partnerRoundTwo,
 * solveTwoStage): two rounds of the same pricing task, the budget split, and the w rule.
 */
import { describe, expect, it } from 'vitest';
import { createSeededRng } from '@fedmart/shared/data/rng';
import { productStats, statCount, type DemandRow } from './demand.ts';
import { pricingLayout, productWidth, type PricingTaskSpec } from './wire.ts';
import { pricingTask, recordSensitivity, solveTwoStage, stageNoiseMultiplier } from './task.ts';
import { flattenResidualStats, residualStats, roundTwoPlan, twoStageSolve, xtxWeightRule } from './two-stage.ts';
import { pairResidualStats, pairStats } from './pairwise.ts';

const gen = createSeededRng(5);
const u = () => gen.nextFloat();
const gauss = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());

/** Two products, 12 stores × 60 weeks each, elasticities −2.5 and −1.2, a deal lowers the price and lifts log units. */
function rowsOf(): DemandRow[] {
  const out: DemandRow[] = [];
  for (const [product, e] of [['a', -2.5], ['b', -1.2]] as const) {
    for (let s = 0; s < 12; s++) {
      const base = 4 + gauss();
      for (let w = 0; w < 60; w++) {
        const deal = u() < 0.25 ? 1 : 0;
        const lp = -2 + 0.08 * gauss() - 0.3 * deal;
        out.push({ product, level: `s${s}`, y: base + e * lp + 2 * deal + 0.25 * gauss(), x: [lp, deal], price: Math.exp(lp), index: out.length });
      }
    }
  }
  return out;
}

const twoStage = { residualK: 3, xRadius: 1.5, budget: [0.2, 0.8] as [number, number], partners: 3, dpScale2: 2000 };
const spec: PricingTaskSpec = { products: ['a', 'b'], regressors: ['log_price', 'deal'], fixedEffects: true, encoding: 'dp', dpScale: 1000, rowBound: 1, rowScale: [0.6, 1, 3], twoStage };

/** Three partners (stores dealt by index mod 3) accepting `sp`, and one FedAvg commit (mean of their recordDp deltas). */
function federation(rows: DemandRow[], sp: PricingTaskSpec, clip: number, sigma: number) {
  const parts = [0, 1, 2].map((k) => rows.filter((r) => Number(r.level.slice(1)) % 3 === k));
  const layout = pricingLayout(sp);
  const n = 1 + sp.products.length * productWidth(sp);
  const tasks = parts.map((r) => pricingTask(r, r));
  for (const t of tasks) t.accept(layout, sp);
  const commit = async (global: Float32Array) => {
    const next = Float32Array.from(global);
    for (const t of tasks) {
      const { delta } = await t.round({ weights: global }).recordDp({ clip, noiseMultiplier: sigma });
      for (let i = 0; i < n; i++) next[i]! += delta[i]! / tasks.length;
    }
    return next;
  };
  return { layout, n, tasks, commit };
}

describe('pricing DP: the two-stage release through the task seam', () => {
  it('an uneven budget split composes to exactly the ledger charge of two steps at σ (RDP α/σ²)', () => {
    for (const budget of [[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]] as [number, number][]) {
      const ts = { ...twoStage, budget };
      const s1 = stageNoiseMultiplier(1.6, ts, 0);
      const s2 = stageNoiseMultiplier(1.6, ts, 1);
      expect(1 / s1 ** 2 + 1 / s2 ** 2).toBeCloseTo(2 / 1.6 ** 2, 12);
    }
    expect(stageNoiseMultiplier(1.6, twoStage, 1)).toBeLessThan(1.6); // round 2 gets more than an even share
  });

  it('the w rule minimises the first-order variance (w²R_x⁴ + R_x²)(1 + ‖d‖²/w²) over w in [0.05, 1]', () => {
    const f = (w: number, d: number, r: number) => (w * w * r ** 4 + r * r) * (1 + (d * d) / (w * w));
    for (const d of [0.01, 0.05, 0.2, 0.8]) {
      const w = xtxWeightRule(d, 1.5);
      for (let v = 0.05; v <= 1; v += 0.01) expect(f(w, d, 1.5)).toBeLessThanOrEqual(f(v, d, 1.5) * (1 + 1e-12));
    }
  });

  it('two rounds of three partners give the pooled two-stage estimate (noise 1e-9); round 1 is kept; a third release is refused', async () => {
    const rows = rowsOf();
    const sigma = 1e-9;
    const clip = recordSensitivity(1, true);
    const { layout, n, tasks, commit } = federation(rows, spec, clip, sigma);
    const g1 = await commit(new Float32Array(n));
    const g2 = await commit(g1);
    const s = statCount(2);
    for (let k = 0; k < 2; k++) {
      for (let i = 0; i < s; i++) expect(g2[1 + k * productWidth(spec) + i]).toBe(g1[1 + k * productWidth(spec) + i]);
      expect(g1[1 + k * productWidth(spec) + s]).toBe(0); // round 2's section is empty after round 1
      expect(g2[1 + k * productWidth(spec) + s]).not.toBe(0);
    }
    await expect(tasks[0]!.round({ weights: g2 }).recordDp({ clip, noiseMultiplier: sigma })).rejects.toThrow(/already made both releases/);

    const solved = solveTwoStage(layout, spec, g2, sigma);
    // The same mechanism on the pooled rows, computed directly (float64 all the way; the wire is Float32).
    const pooled1 = productStats(rows, 2, true, { radius: 1, scale: [0.6, 1, 3] });
    for (const k of ['a', 'b']) {
      const plan = roundTwoPlan(pooled1.get(k)!, 2, { scale: [0.6, 1, 3], noiseStd1: 0, residualK: 3, xRadius: 1.5, fixedEffects: true })!;
      const st = residualStats(rows, 2, true, { beta0: new Map([[k, plan.beta0]]), residualClip: new Map([[k, plan.residualClip]]), scale: [0.6, 1], xRadius: 1.5, xtxWeight: 1 }).get(k)!;
      const direct = twoStageSolve(flattenResidualStats(st, 2, 0.5), 2, { beta0: plan.beta0, residualClip: plan.residualClip, scale: [0.6, 1], xtxWeight: 0.5, noiseStd: 0 })!;
      const f = solved.get(k)!;
      if ('error' in f) throw new Error(f.error);
      expect(Math.abs(f.elasticity - direct[0]!)).toBeLessThan(1e-4);
      // and it is not round 1's row-clipped estimate: the second round moved it
      expect(Math.abs(f.elasticity - plan.beta0[0]!)).toBeGreaterThan(1e-3);
    }
  });

  it('on within-cell pairs: three partners\' two rounds give the pooled pairwise two-stage estimate (noise 1e-9)', async () => {
    const rows = rowsOf();
    const pspec: PricingTaskSpec = { ...spec, rowBound: 1.5, twoStage: { ...twoStage, pairs: { cellCap: 60 } } };
    const sigma = 1e-9;
    const { layout, n, commit } = federation(rows, pspec, Math.sqrt(1.5 ** 4 + 2), sigma);
    const solved = solveTwoStage(layout, pspec, await commit(await commit(new Float32Array(n))), sigma);
    const pooled1 = pairStats(rows, 2, { radius: 1.5, scale: [0.6, 1, 3], cellCap: 60 });
    for (const k of ['a', 'b']) {
      const plan = roundTwoPlan(pooled1.get(k)!, 2, { scale: [0.6, 1, 3], noiseStd1: 0, residualK: 3, xRadius: 1.5, fixedEffects: true, pairs: true })!;
      const st = pairResidualStats(rows, 2, { beta0: new Map([[k, plan.beta0]]), residualClip: new Map([[k, plan.residualClip]]), scale: [0.6, 1], xRadius: 1.5, cellCap: 60 }).get(k)!;
      const direct = twoStageSolve(flattenResidualStats(st, 2, 0.5), 2, { beta0: plan.beta0, residualClip: plan.residualClip, scale: [0.6, 1], xtxWeight: 0.5, noiseStd: 0 })!;
      const f = solved.get(k)!;
      if ('error' in f) throw new Error(f.error);
      expect(Math.abs(f.elasticity - direct[0]!)).toBeLessThan(1e-4);
      expect(f.plan.sensitivity).toBeCloseTo(Math.sqrt(f.plan.xtxWeight ** 2 * 1.5 ** 4 + 1.5 ** 2), 9); // no fixed-effect coupling
      expect(Math.abs(f.elasticity - (k === 'a' ? -2.5 : -1.2))).toBeLessThan(0.1);
    }
  });

  it('a partner refuses two-stage settings whose budget shares do not sum to 1', () => {
    const t = pricingTask([], []);
    const bad = { ...spec, twoStage: { ...twoStage, budget: [0.5, 0.6] as [number, number] } };
    expect(() => t.accept(pricingLayout(bad), bad)).toThrow(/bad two-stage settings/);
  });
});
