import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { addClusterSums, computeClusterSums, type ClusterSums } from './lloyd.ts';
import { clusterSumScales, secureSumClusterSums, type ClusterSumBounds } from './secure-sum.ts';

interface ScaleVector { name: string; maxRows: number; columnBounds: number[]; partners: number; k: number; withPositives: boolean; scales: number[] }
const VECTORS = JSON.parse(readFileSync(new URL('../../../test/vectors/kmeans/secure-sum-scales.json', import.meta.url), 'utf8')) as { cases: ScaleVector[] };

/** One partner's sums over random rows in [-clip, clip]^d with 0/1 labels. */
function partnerSums(values: number[], d: number, k: number, clip: number): ClusterSums {
  const n = Math.floor(values.length / d);
  const x = Float32Array.from(values.slice(0, n * d), (v) => v * clip);
  const centroids = Float64Array.from({ length: k * d }, (_, i) => ((i * 37) % 11) / 5 - 1);
  return computeClusterSums({ x, n, d }, centroids, k, Float32Array.from({ length: n }, (_, i) => i % 3 === 0 ? 1 : 0));
}

describe('secure sum of cluster sums (SecAgg, Bonawitz et al. 2017)', () => {
  it.each(VECTORS.cases)('fixed-point scales, known answer: $name', (v) => {
    const scales = clusterSumScales({ maxRows: v.maxRows, columnBounds: Float64Array.from(v.columnBounds), partners: v.partners }, v.k, v.withPositives);
    expect(Array.from(scales)).toEqual(v.scales);
  });

  it('equals the plain sum: counts and positives exactly, sums and inertia within the stated bound (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 5 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 0, maxLength: 60 }), { minLength: 5, maxLength: 5 }),
        (partners, k, d, data) => {
          const clip = 5;
          const contributions = data.slice(0, partners).map((v) => partnerSums(v, d, k, clip));
          const bounds: ClusterSumBounds = { maxRows: 60, columnBounds: new Float64Array(d).fill(clip), partners };
          const plain = addClusterSums(contributions);
          const { total, errorBound } = secureSumClusterSums(contributions, bounds, `prop-${partners}-${k}-${d}`);
          expect(total.counts).toEqual(plain.counts);
          expect(total.positives).toEqual(plain.positives);
          plain.sums.forEach((v, i) => expect(Math.abs(total.sums[i]! - v)).toBeLessThanOrEqual(errorBound[k + i]!));
          expect(Math.abs(total.sse - plain.sse)).toBeLessThanOrEqual(errorBound.at(-1)!);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('refuses a contribution outside its public bound instead of clipping it', () => {
    const ok = partnerSums([0.5, -0.5, 0.25], 1, 1, 1);
    const tooMany = partnerSums(Array.from({ length: 20 }, () => 1), 1, 1, 1); // 20 rows, but maxRows 3 (count scale 4)
    let error: unknown;
    try {
      secureSumClusterSums([ok, ok, tooMany], { maxRows: 3, columnBounds: Float64Array.from([1]), partners: 3 }, 'bound');
    } catch (e) {
      error = e;
    }
    expect(isFedmartError(error, 'INVALID_UPDATE')).toBe(true);
    expect((error as Error).message).toMatch(/partner 3: cluster-sum coordinate 0 is 20, outside its public bound ±4/);
  });

  it('needs at least 3 partners (the protocol refuses 2)', () => {
    const s = partnerSums([0.1, 0.2], 1, 1, 1);
    expect(() => secureSumClusterSums([s, s], { maxRows: 10, columnBounds: Float64Array.from([1]), partners: 2 }, 'two')).toThrow(/at least 3 clients/);
  });
});
