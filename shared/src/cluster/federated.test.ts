import { describe, expect, it } from 'vitest';
import { createSeededRng } from '../data/rng.ts';
import { isFedmartError } from '../errors.ts';
import { assignToNearest, type Points } from './lloyd.ts';
import { KMeansPartner, initializeFederated, runCentralizedKMeans, runFederatedKMeans } from './federated.ts';

/** Three blobs in 3-D, spread unevenly over `partners` partners (non-IID), with labels. */
function population(partners: number, seed: number): { parts: { points: Points; labels: Float32Array }[]; pooled: Points; labels: Float32Array } {
  const rng = createSeededRng(seed);
  const d = 3;
  const rows: number[][] = Array.from({ length: partners }, () => []);
  const labels: number[][] = Array.from({ length: partners }, () => []);
  for (let i = 0; i < 600; i++) {
    const blob = i % 3;
    const owner = (blob + (rng.nextFloat() < 0.7 ? 0 : 1 + (i % (partners - 1)))) % partners;
    for (let t = 0; t < d; t++) rows[owner]!.push(blob * 4 * (t === blob ? 1 : 0) + rng.nextFloat() - 0.5);
    labels[owner]!.push(blob === 2 && rng.nextFloat() < 0.5 ? 1 : 0);
  }
  const parts = rows.map((x, p) => ({ points: { x: Float32Array.from(x), n: x.length / d, d }, labels: Float32Array.from(labels[p]!) }));
  return { parts, pooled: { x: Float32Array.from(rows.flat()), n: 600, d }, labels: Float32Array.from(labels.flat()) };
}

describe('runFederatedKMeans', () => {
  it('matches centralized k-means from the same start: inertia, centroids, and every customer\'s segment', () => {
    // Arrange
    const { parts, pooled, labels } = population(4, 3);
    const partners = parts.map((p, i) => new KMeansPartner(`p${i + 1}`, p.points, p.labels));
    // Act
    const fed = runFederatedKMeans(partners, { k: 3, seed: 5 });
    const central = runCentralizedKMeans(pooled, fed.initial, { k: 3, labels });
    // Assert
    expect(fed.iterations).toBe(central.iterations);
    expect(fed.inertia).toBeCloseTo(central.inertia, 8);
    fed.centroids.forEach((v, i) => expect(v).toBeCloseTo(central.centroids[i]!, 10));
    const pooledAssignments = assignToNearest(pooled, central.centroids, 3);
    expect(Int32Array.from(fed.assignments.flatMap((a) => Array.from(a)))).toEqual(pooledAssignments);
    expect(fed.profile.counts).toEqual(central.profile.counts);
    expect(fed.profile.positives).toEqual(central.profile.positives);
    expect(fed.secureRounds).toBe(0);
  });

  it('with secure aggregation: one SecAgg round per step, counts exact, inertia within 1e-4 relative', () => {
    const { parts, pooled } = population(3, 4);
    const partners = parts.map((p, i) => new KMeansPartner(`p${i + 1}`, p.points, p.labels));
    const fed = runFederatedKMeans(partners, { k: 3, seed: 2, aggregation: { kind: 'secure', bounds: { maxRows: 600, columnBounds: new Float64Array(3).fill(5), partners: 3 } } });
    const central = runCentralizedKMeans(pooled, fed.initial, { k: 3 });
    expect(fed.secureRounds).toBe(fed.history.length + 1); // every Lloyd step + the profile pass
    // the inertia scale is 2^18 here, so the fixed-point error is ≈ 0.05 on an inertia of ≈ 450
    expect(Math.abs(fed.inertia - central.inertia) / central.inertia).toBeLessThan(1e-4);
    expect(fed.profile.counts).toEqual(central.profile.counts);
  });

  it('refuses secure aggregation with 2 partners, naming the fix', () => {
    const { parts } = population(2, 1);
    const partners = parts.map((p, i) => new KMeansPartner(`p${i + 1}`, p.points));
    let error: unknown;
    try {
      runFederatedKMeans(partners, { k: 2, seed: 1, aggregation: { kind: 'secure', bounds: { maxRows: 600, columnBounds: new Float64Array(3).fill(5), partners: 2 } } });
    } catch (e) {
      error = e;
    }
    expect(isFedmartError(error, 'CONFIG_ERROR')).toBe(true);
    expect((error as Error).message).toMatch(/at least 3 partners.*--partners 3 or more/);
  });
});

describe('adversary: what a partner sends at initialization', () => {
  it('contains no customer row, only means of >= m customers', () => {
    // Arrange: a coordinator that records every summary it receives
    const { parts } = population(4, 9);
    const received: { partner: number; means: Float64Array; sizes: Float64Array }[] = [];
    const partners = parts.map((p, i) => {
      const partner = new KMeansPartner(`p${i + 1}`, p.points);
      const summarize = partner.summarizeGroups.bind(partner);
      partner.summarizeGroups = (opts, seed) => {
        const s = summarize(opts, seed);
        received.push({ partner: i, means: s.centroids, sizes: s.sizes });
        return s;
      };
      return partner;
    });
    // Act
    initializeFederated(partners, { k: 3, seed: 1, init: { minGroupSize: 15 } });
    // Assert: no sent vector equals any row of its partner (to float32 precision), every group >= 15
    expect(received).toHaveLength(4);
    for (const { partner, means, sizes } of received) {
      const { x, n, d } = parts[partner]!.points;
      for (const size of sizes) expect(size).toBeGreaterThanOrEqual(15);
      for (let g = 0; g < sizes.length; g++) {
        for (let i = 0; i < n; i++) {
          let same = true;
          for (let t = 0; t < d && same; t++) same = Math.fround(means[g * d + t]!) === x[i * d + t];
          expect(same, `partner ${partner + 1} group ${g} equals its row ${i}`).toBe(false);
        }
      }
    }
  });
});
