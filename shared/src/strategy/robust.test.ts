import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { CoordinateMedian, Krum, TrimmedMean, coordinateMedian, krumMinClients, krumScores, pairwiseSquaredDistances, trimmedMean } from './robust.ts';
import type { ClientUpdate } from './types.ts';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const update = (nodeId: string, numExamples: number, delta: number[], metrics: Record<string, number> = {}): ClientUpdate => ({ nodeId, numExamples, delta: f32(delta), metrics });

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

const finiteVec = (len: number) => fc.float32Array({ minLength: len, maxLength: len, noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 });

describe('coordinateMedian', () => {
  it('takes the middle value per coordinate for odd n', () => {
    // columns: {1, 2, 9} → 2; {5, 0, 4} → 4; {−1, −3, −2} → −2
    expect(Array.from(coordinateMedian([f32([1, 5, -1]), f32([2, 0, -3]), f32([9, 4, -2])]))).toEqual([2, 4, -2]);
  });

  it('averages the two middle values for even n, including ties', () => {
    // columns: {1, 3, 3, 7} → (3 + 3)/2 = 3; {1, 2, 4, 10} → (2 + 4)/2 = 3; {5, 5, 5, 5} → 5; {−4, 0, 1, 100} → (0 + 1)/2 = 0.5
    const m = coordinateMedian([f32([1, 10, 5, -4]), f32([3, 2, 5, 100]), f32([7, 1, 5, 0]), f32([3, 4, 5, 1])]);
    expect(Array.from(m)).toEqual([3, 3, 5, 0.5]);
  });

  it('with one vector returns it', () => {
    expect(Array.from(coordinateMedian([f32([0.5, -2])]))).toEqual([0.5, -2]);
  });

  it('uses the sort path above 64 clients and agrees with a reference median', () => {
    // 101 clients, value k at client k ⇒ median 50; second coordinate 100 − k ⇒ 50.
    const deltas = Array.from({ length: 101 }, (_, k) => f32([k, 100 - k]));
    expect(Array.from(coordinateMedian(deltas))).toEqual([50, 50]);
    const even = Array.from({ length: 100 }, (_, k) => f32([k]));
    expect(Array.from(coordinateMedian(even))).toEqual([49.5]);
  });

  it('property: equals the sorted-array median and ignores client order', () => {
    fc.assert(
      fc.property(fc.array(finiteVec(3), { minLength: 1, maxLength: 9 }), (deltas) => {
        const m = coordinateMedian(deltas);
        const r = coordinateMedian([...deltas].reverse());
        for (let i = 0; i < 3; i++) {
          const col = deltas.map((d) => d[i]!).sort((a, b) => a - b);
          const h = col.length >> 1;
          const want = col.length % 2 ? col[h]! : (col[h - 1]! + col[h]!) / 2;
          expect(m[i]).toBe(want);
          expect(r[i]).toBe(m[i]);
        }
      }),
    );
  });

  it('rejects no deltas or ragged deltas', () => {
    expect(() => coordinateMedian([])).toThrow(RangeError);
    expect(() => coordinateMedian([f32([1]), f32([1, 2])])).toThrow(RangeError);
  });
});

describe('trimmedMean', () => {
  it('cuts ⌊β·n⌋ from each end per coordinate', () => {
    // n = 5, β = 0.2 ⇒ cut 1 each end. {1, 2, 3, 4, 100} → mean(2, 3, 4) = 3; {−50, 0, 0, 6, 6} → mean(0, 0, 6) = 2
    const deltas = [f32([1, -50]), f32([100, 0]), f32([3, 6]), f32([2, 0]), f32([4, 6])];
    expect(Array.from(trimmedMean(deltas, 0.2))).toEqual([3, 2]);
  });

  it('cuts nothing when ⌊β·n⌋ = 0 (β = 0.1, n = 5 ⇒ plain mean)', () => {
    // {1, 2, 3, 4, 100} → 110/5 = 22
    expect(Array.from(trimmedMean([f32([1]), f32([2]), f32([3]), f32([4]), f32([100])], 0.1))).toEqual([22]);
  });

  it('handles β just under 0.5 (n = 4, β = 0.49 ⇒ cut 1 each end, mean of the middle two)', () => {
    // {−9, 1, 3, 99} → (1 + 3)/2 = 2
    expect(Array.from(trimmedMean([f32([99]), f32([1]), f32([-9]), f32([3])], 0.49))).toEqual([2]);
  });

  it('with one vector returns it', () => {
    expect(Array.from(trimmedMean([f32([7, -1])], 0.4))).toEqual([7, -1]);
  });

  it('rejects β outside [0, 0.5)', () => {
    expect(() => trimmedMean([f32([1])], 0.5)).toThrow(RangeError);
    expect(() => trimmedMean([f32([1])], -0.1)).toThrow(RangeError);
  });

  it('property: β = 0 is the unweighted mean; the result lies within [min, max] per coordinate', () => {
    fc.assert(
      fc.property(fc.array(finiteVec(2), { minLength: 1, maxLength: 10 }), fc.double({ min: 0, max: 0.49, noNaN: true }), (deltas, beta) => {
        const plain = trimmedMean(deltas, 0);
        const trimmed = trimmedMean(deltas, beta);
        for (let i = 0; i < 2; i++) {
          const col = deltas.map((d) => d[i]!);
          expect(plain[i]).toBeCloseTo(col.reduce((a, b) => a + b, 0) / col.length, 6);
          expect(trimmed[i]).toBeGreaterThanOrEqual(Math.min(...col) - 1e-9);
          expect(trimmed[i]).toBeLessThanOrEqual(Math.max(...col) + 1e-9);
        }
      }),
    );
  });
});

describe('Krum scores', () => {
  // Honest a=[1,1], b=[1,2], c=[2,1], d=[3,3]; outlier e=[20,−20].
  // Squared distances: ab=1, ac=1, ad=8, bc=2, bd=5, cd=5, ae=19²+21²=802, be=19²+22²=845, ce=18²+21²=765, de=17²+23²=818.
  // n=5, f=1 ⇒ sum of the n−f−2 = 2 closest:
  //   a: {1, 1, 8, 802} → 2;  b: {1, 2, 5, 845} → 3;  c: {1, 2, 5, 765} → 3;  d: {8, 5, 5, 818} → 10;  e: {802, 845, 765, 818} → 1567.
  const a = [1, 1], b = [1, 2], c = [2, 1], d = [3, 3], e = [20, -20];

  it('computes pairwise squared distances by hand', () => {
    const dist = pairwiseSquaredDistances([a, b, c, d, e].map(f32));
    expect(Array.from(dist.subarray(0, 5))).toEqual([0, 1, 1, 8, 802]);
    expect(dist[4 * 5 + 2]).toBe(765);
    expect(dist[2 * 5 + 4]).toBe(765);
  });

  it('computes Krum scores by hand', () => {
    expect(Array.from(krumScores([a, b, c, d, e].map(f32), 1))).toEqual([2, 3, 3, 10, 1567]);
  });

  it('accumulates distances correctly across coordinate blocks', () => {
    // 10,000 coordinates (> one 4096 block): x = 0, y = 1 everywhere, z = 3 ⇒ ‖x−y‖² = 10⁴, ‖x−z‖² = 9·10⁴, ‖y−z‖² = 4·10⁴.
    const n = 10_000;
    const dist = pairwiseSquaredDistances([new Float32Array(n), new Float32Array(n).fill(1), new Float32Array(n).fill(3)]);
    expect([dist[1], dist[2], dist[5]]).toEqual([1e4, 9e4, 4e4]);
  });

  it('requires n > 2f + 2', () => {
    expect(krumMinClients(1)).toBe(5);
    expect(() => krumScores([a, b, c, d].map(f32), 1)).toThrow(RangeError);
    expect(() => krumScores([a, b, c].map(f32), 0)).not.toThrow();
  });
});

describe('Krum strategy', () => {
  const honest = [
    update('a', 10, [1, 1]),
    update('b', 10, [1, 2]),
    update('c', 10, [2, 1]),
    update('d', 10, [3, 3]),
  ];
  const outlier = update('evil', 1_000_000, [20, -20]);

  it('picks the honest update with the lowest score, wherever the outlier arrives', () => {
    // Scores above: a wins with 2 ⇒ new = global + [1, 1].
    for (const results of [[outlier, ...honest], [...honest, outlier]]) {
      const s = new Krum({ krumF: 1 });
      const { weights } = s.aggregateTrain(1, f32([0.5, 0.5]), results, []);
      expect(Array.from(weights!)).toEqual([1.5, 1.5]);
      expect(s.lastSelected).toEqual(['a']);
    }
  });

  it('Multi-Krum averages the m best, unweighted', () => {
    // m = 3 ⇒ a (2), b (3), c (3) ⇒ mean = [(1+1+2)/3, (1+2+1)/3] = [4/3, 4/3].
    const s = new Krum({ krumF: 1, krumM: 3 });
    const { weights } = s.aggregateTrain(1, f32([0, 0]), [outlier, ...honest], []);
    expect(weights![0]).toBeCloseTo(4 / 3, 6);
    expect(weights![1]).toBeCloseTo(4 / 3, 6);
    expect(s.lastSelected).toEqual(['a', 'b', 'c']);
  });

  it('breaks score ties by nodeId, not arrival order', () => {
    // b and c tie at 3; with m = 2 the second pick is b (b < c).
    const s = new Krum({ krumF: 1, krumM: 2 });
    s.aggregateTrain(1, f32([0, 0]), [honest[2]!, outlier, honest[3]!, honest[1]!, honest[0]!], []);
    expect(s.lastSelected).toEqual(['a', 'b']);
  });

  it('caps m at n − f so Multi-Krum never averages in the worst-scored updates', () => {
    // n = 5, f = 1, m = 50 ⇒ m = 4: a, b, c, d ⇒ mean = [7/4, 7/4]; the outlier is excluded.
    const s = new Krum({ krumF: 1, krumM: 50 });
    const { weights } = s.aggregateTrain(1, f32([0, 0]), [outlier, ...honest], []);
    expect(Array.from(weights!)).toEqual([1.75, 1.75]);
    expect(s.lastSelected).not.toContain('evil');
  });

  it('fails closed with CONFIG_ERROR when n ≤ 2f + 2 (no silent fallback)', () => {
    const err = thrown(() => new Krum({ krumF: 1 }).aggregateTrain(1, f32([0, 0]), honest, []));
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    expect((err as Error).message).toMatch(/at least 5 updates.*got 4/);
    // One client is too few even for f = 0 (needs 3).
    expect(isFedmartError(thrown(() => new Krum({ krumF: 0 }).aggregateTrain(1, f32([0]), [update('a', 1, [1])], [])), 'CONFIG_ERROR')).toBe(true);
  });

  it('ignores claimed example counts when choosing, but still weights metrics by them', () => {
    // The outlier claims 10⁶ examples; it is still rejected. loss: (4·10·1 + 10⁶·9)/(40 + 10⁶).
    const withLoss = [...honest.map((u) => ({ ...u, metrics: { loss: 1 } })), { ...outlier, metrics: { loss: 9 } }];
    const res = new Krum().aggregateTrain(1, f32([0, 0]), withLoss, []);
    expect(Array.from(res.weights!)).toEqual([1, 1]);
    expect(res.metrics.loss).toBeCloseTo((40 + 9e6) / (40 + 1e6), 9);
  });

  it('rejects out-of-range options', () => {
    for (const bad of [{ krumF: -1 }, { krumF: 1.5 }, { krumM: 0 }]) expect(isFedmartError(thrown(() => new Krum(bad)), 'CONFIG_ERROR')).toBe(true);
  });
});

describe('CoordinateMedian / TrimmedMean strategies', () => {
  it('median resists one outlier and ignores example counts', () => {
    // columns {1, 2, 3, 1000} → 2.5 (even n); {0, 0, 1, −1000} → 0
    const res = new CoordinateMedian().aggregateTrain(1, f32([10, 10]), [update('a', 1, [1, 0]), update('b', 1, [2, 0]), update('c', 1, [3, 1]), update('x', 1e9, [1000, -1000])], []);
    expect(Array.from(res.weights!)).toEqual([12.5, 10]);
  });

  it('median with one client adds its delta; zero-example clients still count', () => {
    expect(Array.from(new CoordinateMedian().aggregateTrain(1, f32([1]), [update('a', 0, [2])], []).weights!)).toEqual([3]);
  });

  it('trimmed mean with β = 0.25 and n = 4 cuts one from each end', () => {
    // {−100, 1, 3, 1000} → (1 + 3)/2 = 2
    const s = new TrimmedMean({ trimBeta: 0.25 });
    const res = s.aggregateTrain(1, f32([0]), [update('a', 1, [1]), update('b', 1, [3]), update('c', 1, [1000]), update('d', 1, [-100])], []);
    expect(Array.from(res.weights!)).toEqual([2]);
    expect(s.summary()).toContain('β=0.25');
  });

  it('trimmed mean rejects β ≥ 0.5 with CONFIG_ERROR', () => {
    expect(isFedmartError(thrown(() => new TrimmedMean({ trimBeta: 0.5 })), 'CONFIG_ERROR')).toBe(true);
  });

  it('robust strategies reject NaN/Infinity before sorting, naming the node', () => {
    for (const s of [new CoordinateMedian(), new TrimmedMean(), new Krum({ krumF: 0 })]) {
      const err = thrown(() => s.aggregateTrain(1, f32([0, 0]), [update('a', 1, [1, 1]), update('b', 1, [1, 1]), update('c', 1, [Number.NaN, 1])], []));
      expect(isFedmartError(err, 'INVALID_UPDATE')).toBe(true);
      expect((err as Error).message).toMatch(/"c".*index 0/);
    }
  });

  it('all three declare that they need individual updates', () => {
    for (const s of [new CoordinateMedian(), new TrimmedMean(), new Krum()]) expect(s.needsIndividualUpdates).toBe(true);
  });
});
