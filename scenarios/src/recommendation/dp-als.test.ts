import { describe, expect, it } from 'vitest';
import { alsSensitivity, alsStatsLength, brandStats, type AlsSettings } from './dp-als.ts';

const a: AlsSettings = { rank: 4, alpha: 4, lambda: 0.1, itemLambda: 0.1, clip: 1, c0: 1, cap: 5 };

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

describe('private ALS release (Chien et al. 2021, billboard model)', () => {
  it('one-record change (add/remove, any user vector) moves a brand\'s statistics by at most alsSensitivity', () => {
    const r = rng(7);
    const items = 12;
    let worst = 0;
    for (let t = 0; t < 400; t++) {
      const len = 1 + Math.floor(r() * 9);
      // A history is a set of distinct items in the brand's order; the neighbour adds or removes one record.
      const perm = Array.from({ length: items }, (_, i) => i).sort(() => r() - 0.5);
      const h = perm.slice(0, len);
      const h2 = h.slice();
      if (r() < 0.5 && h2.length > 1) h2.splice(Math.floor(r() * h2.length), 1); else h2.splice(Math.floor(r() * (h2.length + 1)), 0, perm[len]!);
      const u = Float64Array.from({ length: a.rank }, () => (r() - 0.5) * 6);
      const u2 = Float64Array.from({ length: a.rank }, () => (r() - 0.5) * 6);
      const s1 = brandStats([h], u, items, a);
      const s2 = brandStats([h2], u2, items, a);
      expect(s1.length).toBe(alsStatsLength(items, a.rank));
      let d = 0;
      for (let i = 0; i < s1.length; i++) d += (s1[i]! - s2[i]!) ** 2;
      worst = Math.max(worst, Math.sqrt(d));
    }
    expect(worst).toBeLessThanOrEqual(alsSensitivity(a) * (1 + 1e-5));
    expect(worst).toBeGreaterThan(0.5 * alsSensitivity(a)); // the bound is not vacuous
  });

  it('the cap bounds the contribution: uncapped histories would exceed the stated sensitivity', () => {
    const items = 40;
    const h = Array.from({ length: 30 }, (_, i) => i);
    const u = Float64Array.from([1, 0, 0, 0]);
    const u2 = Float64Array.from([-1, 0, 0, 0]);
    const s1 = brandStats([h], u, items, a);
    const s2 = brandStats([h.slice(1)], u2, items, a);
    let d = 0;
    for (let i = 0; i < s1.length; i++) d += (s1[i]! - s2[i]!) ** 2;
    expect(Math.sqrt(d)).toBeLessThanOrEqual(alsSensitivity(a) * (1 + 1e-5));
  });
});
