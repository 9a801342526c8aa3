import { describe, expect, it } from 'vitest';
import { COUNT_SENSITIVITY, countRelease, GRAM_SENSITIVITY, gramLayout, gramRelease, gramScores, positions, shrinkWeights, spectralFromGram, SHRINK_STRENGTH, topItems, triangle, type GramDpSpec } from './dp-gram.ts';
import { gramDpTask, gramModelOf } from './gram-task.ts';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}
const dist = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

describe('item-Gram release (Analyze Gauss, Dwork et al. 2014): record-level sensitivity', () => {
  it('adding or removing one interaction anywhere in a history moves the counts by <= 1 and the weighted Gram by <= GRAM_SENSITIVITY, whatever the history length', () => {
    const r = rng(11);
    const items = 60;
    const pos = positions(Int32Array.from({ length: 40 }, (_, i) => (i * 3) % items).sort((a, b) => a - b), items);
    let worst = 0;
    for (let t = 0; t < 500; t++) {
      const perm = Array.from({ length: items }, (_, i) => i).sort(() => r() - 0.5);
      const len = Math.floor(r() * (t % 2 ? 50 : 4));
      const h = perm.slice(0, len);
      const h2 = h.slice();
      if (r() < 0.5 && h2.length > 0) h2.splice(Math.floor(r() * h2.length), 1);
      else h2.splice(Math.floor(r() * (h2.length + 1)), 0, perm[len]!);
      const other = [Int32Array.from(perm.slice(3, 20))];
      const c1 = countRelease([...other, Int32Array.from(h)], items, 0);
      const c2 = countRelease([...other, Int32Array.from(h2)], items, 0);
      expect(dist(c1, c2)).toBeLessThanOrEqual(COUNT_SENSITIVITY);
      const g1 = gramRelease([...other, Int32Array.from(h)], pos, 40, 0);
      const g2 = gramRelease([...other, Int32Array.from(h2)], pos, 40, 0);
      expect(g1.length).toBe(triangle(40));
      worst = Math.max(worst, dist(g1, g2));
    }
    expect(worst).toBeLessThanOrEqual(GRAM_SENSITIVITY * (1 + 1e-12));
    expect(worst).toBeGreaterThanOrEqual(1); // the bound is not vacuous: the new item's row alone has norm 1
  });

  it('the 1/sqrt(n) weight is what bounds it: one added item at n = 1 reaches the bound exactly', () => {
    const pos = positions(Int32Array.from([0, 1]), 2);
    const d = dist(gramRelease([Int32Array.from([0])], pos, 2, 0), gramRelease([Int32Array.from([0, 1])], pos, 2, 0));
    expect(d).toBeCloseTo(GRAM_SENSITIVITY, 12);
  });
});

describe('item-Gram model (post-processing)', () => {
  it('the private set is the N largest released counts, ties to the lower index', () => {
    expect(Array.from(topItems([3, 9, 9, 1, 7], 3))).toEqual([1, 2, 4]);
  });

  it('recovers the leading eigenvectors of a Gram and ranks co-occurring items first', () => {
    // Two blocks of items always seen together: the Gram's two leading eigenvectors are the blocks.
    const n = 6;
    const hist = [...Array(20).fill([0, 1, 2]), ...Array(10).fill([3, 4, 5])].map((h: number[]) => Int32Array.from(h));
    const pos = positions(Int32Array.from({ length: n }, (_, i) => i), n);
    const { V, values } = spectralFromGram(gramRelease(hist, pos, n, 0), n, 2, 30);
    // Each block's Gram is c/√3 · 11ᵀ over 3 items: eigenvalue 3c/√3 = √3·c.
    expect(values[0]).toBeCloseTo(20 * Math.sqrt(3), 6);
    expect(values[1]).toBeCloseTo(10 * Math.sqrt(3), 6);
    const s = gramScores({ top: Int32Array.from({ length: n }, (_, i) => i), pos, V, rank: 2, counts: new Float64Array(n).fill(1) }, [3], null);
    expect(Math.min(s[4]!, s[5]!)).toBeGreaterThan(Math.max(s[0]!, s[1]!, s[2]!));
  });

  it('eigenvalue shrinkage: w = 1 − a·e²/λ², in [0, 1], monotone in λ, zero at or below √a·e; the served factors carry √w', () => {
    expect(SHRINK_STRENGTH).toBe(0.5);
    const w = shrinkWeights([400, 200, 100, 70, 50, -3], 100);
    expect(Array.from(w)).toEqual([1 - 0.5 / 16, 1 - 0.5 / 4, 0.5, Math.max(0, 1 - 0.5 / 0.49), 0, 0]);
    for (let i = 1; i < w.length; i++) expect(w[i]!).toBeLessThanOrEqual(w[i - 1]!);
    expect(Array.from(shrinkWeights([5, 1], 10, 0))).toEqual([1, 1]);
    expect(() => shrinkWeights([1], -1)).toThrow(/noise edge ≥ 0/);
    // gramModelOf: a committed release with one strong block and one weak one; the weak direction is shrunk.
    const n = 6;
    const g = { items: n, top: n, budget: [0.1, 0.9] as [number, number], partners: 1, scale: 1, rank: 2 };
    const hist = [...Array(40).fill([0, 1, 2]), ...Array(4).fill([3, 4, 5])].map((h: number[]) => Int32Array.from(h));
    const counts = countRelease(hist, n, 0);
    const upper = gramRelease(hist, positions(topItems(counts, n), n), n, 0);
    const weights = Float32Array.from([...counts, ...upper]);
    const sigma = 1; // noise edge 2·σ/√(2·0.9)·Δ·√6 ≈ 5.25: the weak block's eigenvalue 4√3 ≈ 6.93 is near it (w ≈ 0.85)
    const m = gramModelOf(g, weights, sigma);
    expect(m.rank).toBe(2);
    const expected = shrinkWeights(m.values, m.noiseEdge);
    expect(expected[1]!).toBeLessThan(0.9);
    expect(expected[0]!).toBeGreaterThan(0.99);
    for (let c = 0; c < m.rank; c++) {
      let sq = 0;
      for (let i = 0; i < n; i++) sq += m.V[i * m.rank + c]! ** 2;
      expect(sq).toBeCloseTo(expected[c]!, 6); // unit eigenvector × √w
      expect(m.weights[c]).toBeCloseTo(expected[c]!, 12);
    }
  });
});

describe('distributed noise needs the secure sum the brand accepted (gramDpTask.accept)', () => {
  const g: GramDpSpec = { items: 6, top: 4, budget: [0.1, 0.9], partners: 3, scale: 100, rank: 2, noiseShares: 3 };
  const task = () => gramDpTask([Int32Array.from([0, 1, 2])], 6);
  it('refuses noise shares when the pinned terms have no secure aggregation, or cover fewer brands than shares; accepts them under a secure sum of enough brands', () => {
    expect(() => task().accept(gramLayout(g), { gram: g }, { minClients: 3, encryption: 'none' })).toThrow(/no secure aggregation[^]*refusing/);
    expect(() => task().accept(gramLayout(g), { gram: g })).toThrow(/no secure aggregation/);
    expect(() => task().accept(gramLayout(g), { gram: g }, { minClients: 2, secureAggregation: {} })).toThrow(/covers only 2 brands/);
    expect(() => task().accept(gramLayout(g), { gram: { ...g, noiseShares: 1.5 } }, { minClients: 3, secureAggregation: {} })).toThrow(/noiseShares must be an integer/);
    const accepted = task();
    expect(accepted.noiseShares).toBeUndefined();
    accepted.accept(gramLayout(g), { gram: g }, { minClients: 3, secureAggregation: {} });
    expect(accepted.noiseShares).toBe(3); // the agent refuses a secure sum of fewer brands (dp-terms.ts checkRoundParticipants)
    const local = { ...g, noiseShares: undefined };
    expect(() => task().accept(gramLayout(local), { gram: local }, { minClients: 3, encryption: 'none' })).not.toThrow();
  });
});
