import { describe, expect, it } from 'vitest';
import { createSeededRng } from '@fedmart/shared/data/rng';
import { fitFromStats, pooledLsdv, productStats, type DemandRow, type ProductFit } from './demand.ts';
import { flattenResidualStats, residualSensitivity, residualStats, twoStageSolve, type ResidualClip } from './two-stage.ts';

const gen = createSeededRng(11);
const rng = () => gen.nextFloat();
const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());

/** Log-log demand, 30 stores × 80 weeks, elasticity −2; a deal cuts the price and lifts log units by 3.5 (a promotion spike). */
function panel(): DemandRow[] {
  const out: DemandRow[] = [];
  for (let s = 0; s < 30; s++) {
    const level = 5 + normal();
    for (let w = 0; w < 80; w++) {
      const deal = rng() < 0.2 ? 1 : 0;
      const lp = -3 + 0.05 * normal() - 0.4 * deal;
      out.push({ product: 'all', level: String(s), y: level - 2 * lp + 3.5 * deal + 0.3 * normal(), x: [lp, deal], price: Math.exp(lp), index: out.length });
    }
  }
  return out;
}

const clipOf = (beta0: number[], c: number, scale: number[], xRadius: number, xtxWeight = 1): ResidualClip => ({ beta0: new Map([['all', beta0]]), residualClip: new Map([['all', c]]), scale, xRadius, xtxWeight });
const l2 = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((t, v, i) => t + (v - b[i]!) ** 2, 0));

describe('two-stage residual-clipped DP estimate', () => {
  it('without clipping or noise, β₀ plus one correction is the pooled OLS exactly, whatever β₀', () => {
    const rows = panel();
    const pooled = (pooledLsdv(rows, 2, true).get('all') as ProductFit).coefficients;
    for (const beta0 of [[0, 0], [-5, 3], [pooled[0]! + 0.7, pooled[1]! - 0.2]]) {
      const o = clipOf(beta0, 1e6, [0.6, 1], 1e6, 0.5);
      const st = residualStats(rows, 2, true, o).get('all')!;
      const beta = twoStageSolve(flattenResidualStats(st, 2, 0.5), 2, { beta0, residualClip: 1e6, scale: [0.6, 1], xtxWeight: 0.5, noiseStd: 0 })!;
      expect(Math.abs(beta[0]! - pooled[0]!)).toBeLessThan(1e-9);
      expect(Math.abs(beta[1]! - pooled[1]!)).toBeLessThan(1e-9);
    }
  });

  it('clipping residuals biases the elasticity far less than clipping the rows (noiseless, same public units)', () => {
    const rows = panel();
    const pooled = (pooledLsdv(rows, 2, true).get('all') as ProductFit).elasticity;
    const scale = [0.6, 1, 3];
    const one = productStats(rows, 2, true, { radius: 1, scale }).get('all')!;
    const g = fitFromStats({ ...one, sumY: 0, sumY2: 1 }, 2, 'all', true).coefficients;
    const beta0 = g.map((v, j) => (v * scale[2]!) / scale[j]!);
    const oneStageBias = beta0[0]! - pooled;
    // c = 3 × the residual scale of round 1 (noiseless here), R_x = 1.5 in the same units
    let ssr = one.yty;
    for (let a = 0; a < 2; a++) { ssr -= 2 * g[a]! * one.xty[a]!; for (let b = 0; b < 2; b++) ssr += g[a]! * g[b]! * one.xtx[a * 2 + b]!; }
    const c = 3 * scale[2]! * Math.sqrt(ssr / one.n);
    const st = residualStats(rows, 2, true, clipOf(beta0, c, [0.6, 1], 1.5)).get('all')!;
    const beta = twoStageSolve(flattenResidualStats(st, 2, 1), 2, { beta0, residualClip: c, scale: [0.6, 1], xtxWeight: 1, noiseStd: 0 })!;
    const twoStageBias = beta[0]! - pooled;
    expect(Math.abs(oneStageBias)).toBeGreaterThan(0.04); // 0.051 here
    expect(Math.abs(twoStageBias)).toBeLessThan(Math.abs(oneStageBias) / 10); // 0.0006 here
  });

  it('record-level sensitivity: adding a row within the bounds moves the release by ≤ Δ, and the fixed-effect coupling is needed', () => {
    // Small cells with rows on and beyond the bounds; a neighbour adds one row whose x̃ lies within R_x and whose
    // residual lies within c of its cell's means (the stated caveat).
    let worstRatio = 0;
    let worstOwn = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const p = 1 + (trial % 2);
      const xRadius = 0.5 + 2 * rng();
      const w = [0.3, 1, 2][trial % 3]!;
      const c = 0.2 + rng();
      const beta0 = Array.from({ length: p }, () => 2 * normal());
      const scale = Array.from({ length: p }, () => 0.5 + rng());
      const m = 1 + Math.floor(rng() * 6);
      const base: DemandRow[] = [];
      for (let i = 0; i < m; i++) base.push({ product: 'all', level: 'g', y: 3 * normal(), x: Array.from({ length: p }, () => 3 * normal()), price: 1, index: i });
      const mx = Array.from({ length: p }, (_, j) => base.reduce((t, r) => t + r.x[j]!, 0) / m);
      const my = base.reduce((t, r) => t + r.y, 0) / m;
      // u_x within R_x in units; u_r = u_y − u_x·β₀ within c
      const dir = Array.from({ length: p }, () => normal());
      const nd = Math.hypot(...dir);
      const ux = dir.map((d, j) => ((d / nd) * xRadius * Math.sqrt(rng()) * scale[j]!));
      const ur = c * (2 * rng() - 1);
      const added: DemandRow = { product: 'all', level: 'g', y: my + ur + ux.reduce((t, v, j) => t + v * beta0[j]!, 0), x: mx.map((v, j) => v + ux[j]!), price: 1, index: m };
      const o = clipOf(beta0, c, scale, xRadius, w);
      const before = flattenResidualStats(residualStats(base, p, true, o).get('all')!, p, w);
      const after = flattenResidualStats(residualStats([...base, added], p, true, o).get('all')!, p, w);
      const change = l2(after, before);
      const delta = residualSensitivity(xRadius, w, true);
      expect(change).toBeLessThanOrEqual(delta * (1 + 1e-12));
      worstRatio = Math.max(worstRatio, change / delta);
      worstOwn = Math.max(worstOwn, change / residualSensitivity(xRadius, w, false));
    }
    // The bound is not vacuous, and the own term alone (no coupling) would not cover every neighbour.
    expect(worstRatio).toBeGreaterThan(0.4);
    expect(worstOwn).toBeGreaterThan(1);
  });
});
