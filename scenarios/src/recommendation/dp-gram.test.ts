import { describe, expect, it } from 'vitest';
import { COUNT_SENSITIVITY, countRelease, gramRelease, gramSensitivity, gramScores, positions, spectralFromGram, topItems, triangle } from './dp-gram.ts';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}
const dist = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

describe('item-Gram release (Analyze Gauss, Dwork et al. 2014): record-level sensitivity', () => {
  it('adding or removing one interaction anywhere in a history moves the counts by <= 1 and the capped Gram by <= sqrt(2m)', () => {
    const r = rng(11);
    const items = 15;
    const pos = positions(Int32Array.from([0, 2, 3, 5, 6, 7, 9, 11, 12, 14]), items); // a private set of 10 items
    for (const cap of [1, 3, 6]) {
      let worst = 0;
      for (let t = 0; t < 600; t++) {
        const perm = Array.from({ length: items }, (_, i) => i).sort(() => r() - 0.5);
        const len = Math.floor(r() * 12);
        const h = perm.slice(0, len);
        const h2 = h.slice();
        if (r() < 0.5 && h2.length > 0) h2.splice(Math.floor(r() * h2.length), 1);
        else h2.splice(Math.floor(r() * (h2.length + 1)), 0, perm[len]!);
        const other = [Int32Array.from(perm.slice(3, 9))];
        const c1 = countRelease([...other, Int32Array.from(h)], items, 0);
        const c2 = countRelease([...other, Int32Array.from(h2)], items, 0);
        expect(dist(c1, c2)).toBeLessThanOrEqual(COUNT_SENSITIVITY);
        const g1 = gramRelease([...other, Int32Array.from(h)], pos, 10, cap, 0);
        const g2 = gramRelease([...other, Int32Array.from(h2)], pos, 10, cap, 0);
        expect(g1.length).toBe(triangle(10));
        worst = Math.max(worst, dist(g1, g2));
      }
      expect(worst).toBeLessThanOrEqual(gramSensitivity(cap) * (1 + 1e-12));
      expect(worst).toBeGreaterThanOrEqual(Math.sqrt(cap)); // the bound is not vacuous: a full cap's add reaches √m
    }
  });

  it('the cap is what bounds it: a history past the cap moves the Gram by sqrt(2m) at most, not by its length', () => {
    const items = 40;
    const pos = positions(Int32Array.from({ length: items }, (_, i) => i), items);
    const h = Int32Array.from({ length: 30 }, (_, i) => i + 1);
    const withEarly = Int32Array.from([0, ...h]); // one interaction before all others: enters the cap, pushes the m-th out
    const d = dist(gramRelease([h], pos, items, 5, 0), gramRelease([withEarly], pos, items, 5, 0));
    expect(d).toBeLessThanOrEqual(gramSensitivity(5));
    expect(dist(gramRelease([h], pos, items, 1000, 0), gramRelease([withEarly], pos, items, 1000, 0))).toBeGreaterThan(gramSensitivity(5));
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
    const { V, values } = spectralFromGram(gramRelease(hist, pos, n, 10, 0), n, 2, 30);
    expect(values[0]).toBeCloseTo(60, 6);
    expect(values[1]).toBeCloseTo(30, 6);
    const s = gramScores({ top: Int32Array.from({ length: n }, (_, i) => i), pos, V, rank: 2, counts: new Float64Array(n).fill(1) }, [3], null);
    expect(Math.min(s[4]!, s[5]!)).toBeGreaterThan(Math.max(s[0]!, s[1]!, s[2]!));
  });
});
