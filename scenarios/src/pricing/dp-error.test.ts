import { describe, expect, it } from 'vitest';
import { createSeededRandomSource, gaussianNoise } from '@fedmart/shared/dp/gaussian';
import { createSeededRng } from '@fedmart/shared/data/rng';
import { pooledLsdv, productStats, solveNormal, type DemandRow, type ProductFit } from './demand.ts';
import { elasticityErrorTerms } from './dp-error.ts';

/** Synthetic log-log demand: 30 stores × 80 weeks, elasticity −2, a 0/1 promotion worth +0.5. */
function rows(): DemandRow[] {
  const gen = createSeededRng(7);
  const rng = () => gen.nextFloat();
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const out: DemandRow[] = [];
  for (let s = 0; s < 30; s++) {
    const level = 5 + normal();
    for (let w = 0; w < 80; w++) {
      const deal = rng() < 0.3 ? 1 : 0;
      const lp = -3 + 0.1 * s / 30 + 0.12 * normal() - 0.1 * deal;
      out.push({ product: 'all', level: String(s), y: level - 2 * lp + 0.5 * deal + 0.4 * normal(), x: [lp, deal], price: Math.exp(lp), index: out.length });
    }
  }
  return out;
}

describe('DP elasticity error terms (delta method)', () => {
  const data = rows();
  const pooled = (pooledLsdv(data, 2, true).get('all') as ProductFit).elasticity;
  const scale = [0.5, 1, 2];

  it('no clipping: no bias; the first-order noise std matches a Monte Carlo of the noisy solve within 10 %', () => {
    const clipped = productStats(data, 2, true, { radius: 1e6, scale })!.get('all')!;
    const s = 3;
    const t = elasticityErrorTerms(clipped, 2, pooled, s, scale);
    expect(Math.abs(t.clipBias)).toBeLessThan(1e-9);
    const src = createSeededRandomSource(new Uint8Array(32).fill(3));
    const draws: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const z = gaussianNoise(5, s, src);
      const a = Float64Array.from(clipped.xtx);
      a[0]! += z[0]!; a[1]! += z[1]!; a[2]! += z[1]!; a[3]! += z[2]!;
      const b = [clipped.xty[0]! + z[3]!, clipped.xty[1]! + z[4]!];
      draws.push(solveNormal(a, b, 2, 'mc').x[0]! * scale[2]! / scale[0]!);
    }
    const mean = draws.reduce((u, v) => u + v, 0) / draws.length;
    const sd = Math.sqrt(draws.reduce((u, v) => u + (v - mean) ** 2, 0) / (draws.length - 1));
    expect(t.noiseSd / sd).toBeGreaterThan(0.9);
    expect(t.noiseSd / sd).toBeLessThan(1.1);
    expect(t.noiseSd).toBeCloseTo(Math.hypot(t.noiseSdFromXtx, t.noiseSdFromXty), 12);
  });

  it('a tight row bound biases the elasticity toward 0 (the promotion rows are the ones clipped)', () => {
    const clipped = productStats(data, 2, true, { radius: 0.4, scale })!.get('all')!;
    const t = elasticityErrorTerms(clipped, 2, pooled, 0, scale);
    expect(t.noiseSd).toBe(0);
    expect(t.clipBias).toBeGreaterThan(0.05);
  });
});
