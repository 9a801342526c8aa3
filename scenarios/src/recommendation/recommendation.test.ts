import { describe, expect, it } from 'vitest';
import { aucOf, hitAt, ndcgAt, rankOf, RankingAccumulator } from './metrics.ts';
import { leaveLastOut, partitionUsers, readInteractions, sampleEvalNegatives } from './data.ts';
import { jointViews, initRecWeights, initUserParams, recLayout, Scorer, flattenFeatures, WideDeep } from './model.ts';
import { composedEpsilon, countReleaseRdp, itemTowerFromCounts, noisyItemCounts, sigmaWithCountRelease } from './dp-prior.ts';
import { computeEpsilon, computeSigma, DEFAULT_RDP_ORDERS, rdpToEpsilon } from '@fedmart/shared/dp/rdp';
import { createSeededRandomSource } from '@fedmart/shared/dp/gaussian';
import { jointParameterCount } from '@fedmart/shared/task/layout';

describe('ranking metrics (known answers)', () => {
  it('HR@10 and NDCG@10 of a positive at rank r among 99 negatives', () => {
    const negs = Array.from({ length: 99 }, (_, k) => 99 - k); // 99, 98, …, 1
    expect(rankOf(100, negs)).toBe(0);
    expect(rankOf(95.5, negs)).toBe(4); // 99, 98, 97, 96 above it
    expect(hitAt(4, 10)).toBe(1);
    expect(ndcgAt(4, 10)).toBeCloseTo(1 / Math.log2(6), 12);
    expect(ndcgAt(0, 10)).toBe(1);
    expect(rankOf(89.5, negs)).toBe(10);
    expect(hitAt(10, 10)).toBe(0);
    expect(ndcgAt(10, 10)).toBe(0);
    expect(aucOf(50.5, negs)).toBeCloseTo(50 / 99, 12);
  });
  it('ties count against the positive; a NaN score gets no credit', () => {
    expect(rankOf(1, [1, 1, 1])).toBe(3);
    expect(aucOf(1, [1, 0])).toBe(0.75);
    expect(rankOf(Number.NaN, [0, 1])).toBe(2);
    expect(aucOf(Number.NaN, [0, 1])).toBe(0);
  });
  it('the accumulator averages over users', () => {
    const acc = new RankingAccumulator();
    acc.add(10, [1, 2, 3], 0); // rank 0
    acc.add(0, Array.from({ length: 20 }, () => 1), 30); // rank 20
    const r = acc.result();
    expect(r.hr10).toBe(0.5);
    expect(r.ndcg10).toBe(0.5);
    expect(r.hr10Full).toBe(0.5);
    expect(r.users).toBe(2);
  });
});

describe('interactions, leave-last-out and partitions', () => {
  // A small interaction table in MovieLens's shape (users, items, times, genres).
  const table = {
    columns: ['u', 'i', 't', 'g'],
    rows: [
      ['a', 'x', '3', 'Drama'], ['a', 'y', '1', 'Drama|Comedy'], ['a', 'z', '2', 'Comedy'], ['a', 'w', '4', 'Drama'],
      ['b', 'x', '9', 'Drama'], ['b', 'v', '5', 'Action'], ['b', 'z', '7', 'Comedy'], ['b', 'v', '8', 'Action'], ['b', 'y', '6', 'Drama|Comedy'],
      ['c', 'v', '1', 'Action'], ['c', 'w', '2', 'Drama'], ['c', 'x', '3', 'Drama'],
      ['d', 'x', '1', 'Drama'], ['d', 'y', '2', 'Drama|Comedy'],
    ],
  };
  it('orders by time, counts repeats once, drops users with fewer than 3 items, holds out the last two', () => {
    const d = readInteractions(table, { user: 'u', item: 'i', time: 't', itemFeatures: ['g'] }, 1);
    expect(d.users).toEqual(['a', 'b', 'c']);
    const s = leaveLastOut(d);
    const name = (k: number) => d.items[k];
    expect(Array.from(s[0]!.train, name)).toEqual(['y', 'z']);
    expect(name(s[0]!.val)).toBe('x');
    expect(name(s[0]!.test)).toBe('w');
    expect(Array.from(s[1]!.train, name)).toEqual(['v', 'y']);
    expect(name(s[1]!.test)).toBe('x');
    expect(d.featureNames.sort()).toEqual(['Action', 'Comedy', 'Drama']);
  });
  it('every user belongs to exactly one partner, by dominant feature or at random', () => {
    const d = readInteractions(table, { user: 'u', item: 'i', time: 't', itemFeatures: ['g'] }, 1);
    const s = leaveLastOut(d);
    const byFeature = partitionUsers(d, s, 2, 'dominant-feature', 1);
    expect(byFeature.length).toBe(3);
    // a's training items y, z are Drama|Comedy and Comedy → Comedy; b's v, y → Action/Comedy/Drama tie → lowest id; c's v → Action.
    expect(new Set(byFeature).size).toBe(2);
    const random = partitionUsers(d, s, 3, 'random', 5);
    expect([...random].sort()).toEqual([0, 1, 2]);
    expect(() => partitionUsers(d, s, 4, 'random', 1)).toThrow(/more than the 3 users/);
  });
  it('evaluation negatives are never in the user history and are seeded', () => {
    const d = readInteractions(table, { user: 'u', item: 'i', time: 't' }, 1);
    const n1 = sampleEvalNegatives(d, 99, 3);
    expect(n1.map((x) => Array.from(x))).toEqual(sampleEvalNegatives(d, 99, 3).map((x) => Array.from(x)));
    d.histories.forEach((h, u) => {
      for (const j of n1[u]!) expect(Array.from(h)).not.toContain(j);
      expect(n1[u]!.length).toBe(d.items.length - h.length); // small catalogue: every unseen item
    });
  });
  it('a bad rating cell or a missing column is a clear error', () => {
    expect(() => readInteractions(table, { user: 'u', item: 'nope' }, 1)).toThrow(/nope/);
    expect(() => readInteractions({ columns: ['u', 'i', 'r'], rows: [['a', 'x', 'five']] }, { user: 'u', item: 'i', rating: 'r', minRating: 4 }, 1)).toThrow(/rating "five"/);
  });
});

describe('the joint layout', () => {
  it('holds item embeddings, biases, feature weights and the network, and no user parameters', () => {
    const spec = { items: 50, features: 4, dim: 8, hidden: 6 };
    const layout = recLayout(spec);
    expect(layout.tensors.map((t) => t.name)).toEqual(['item_emb', 'item_bias', 'feature_w', 'deep_w1', 'deep_b1', 'deep_v']);
    expect(jointParameterCount(layout)).toBe(50 * 8 + 50 + 4 + 16 * 6 + 6 + 6);
    const w = initRecWeights(spec, 1);
    const v = jointViews(spec, w);
    expect(v.q.length).toBe(400);
    // The fast scorer agrees with the definition s = b + wide + p·q + v·relu(W1ᵀ[p;q] + b1).
    const feats = flattenFeatures(Array.from({ length: 50 }, (_, i) => Int32Array.of(i % 4)));
    v.b[3] = 0.7;
    v.w[3] = 0.2;
    const p = Float32Array.from({ length: 8 }, (_, k) => (k - 3) / 10);
    const c = Float32Array.of(0, 0, 0, 0.5);
    let z = 0;
    let s = 0.7 + 0.2 + 0.5;
    for (let k = 0; k < 8; k++) s += p[k]! * v.q[3 * 8 + k]!;
    for (let h = 0; h < 6; h++) {
      z = v.b1[h]!;
      for (let k = 0; k < 8; k++) z += v.w1[k * 6 + h]! * p[k]! + v.w1[(8 + k) * 6 + h]! * v.q[3 * 8 + k]!;
      if (z > 0) s += v.v[h]! * z;
    }
    expect(new Scorer(spec, v, feats).scores(p, c, [3])[0]).toBeCloseTo(s, 5);
  });
});

describe('the DP item tower (dp-prior.ts, model.ts ItemTower)', () => {
  // 4 items, 3 feature values; items 0 and 2 have free rows.
  const feats = flattenFeatures([Int32Array.of(0), Int32Array.of(0, 1), Int32Array.of(2), Int32Array.of()]);
  const tower = { rows: 2, rowOf: [0, -1, 1, -1], prior: [Math.log1p(9), 0.5, 0, 1] };
  const spec = { items: 4, features: 3, dim: 2, hidden: 3, tower };

  it('embeddings and biases come from free rows, feature embeddings and the prior (known answer)', () => {
    const w = initRecWeights(spec, 5);
    const layout = recLayout(spec);
    expect(layout.tensors.map((t) => `${t.name}:${t.shape.join('x')}`)).toEqual(['item_emb:2x2', 'item_bias:2', 'feature_emb:3x2', 'prior_w:1', 'feature_w:3', 'deep_w1:4x3', 'deep_b1:3', 'deep_v:3']);
    expect(w.length).toBe(jointParameterCount(layout));
    const E = w.subarray(0, 4);
    const beta = w.subarray(4, 6);
    beta.set([0.25, -0.5]);
    const F = w.subarray(6, 12);
    w[12] = 0.5; // prior_w: bias = β + 1.5 · prior
    const v = jointViews(spec, w, feats);
    for (let k = 0; k < 2; k++) {
      expect(v.q[0 * 2 + k]).toBeCloseTo(E[k]! + F[k]!, 6);
      expect(v.q[1 * 2 + k]).toBeCloseTo((F[k]! + F[2 + k]!) / 2, 6);
      expect(v.q[2 * 2 + k]).toBeCloseTo(E[2 + k]! + F[4 + k]!, 6);
      expect(v.q[3 * 2 + k]).toBe(0);
    }
    expect(Array.from(v.b)).toEqual([0.25 + 1.5 * Math.log1p(9), 0.75, -0.5, 1.5].map(Math.fround));
    expect(() => jointViews(spec, w)).toThrow(/needs the item features/);
  });

  it("a DP-SGD step without noise or clipping moves the tower's tensors by −lr × the loss gradient (finite differences)", () => {
    const w0 = initRecWeights(spec, 7);
    w0.subarray(6, 12).forEach((_, k, a) => { a[k] = 0.3 * Math.sin(k + 1); });
    const users = initUserParams(spec, 1, 3);
    users.c.set([0.1, -0.2, 0.05]);
    const model = new WideDeep(spec, feats, 4);
    // One example (user 0, item 1: no free row), one negative: item 2 (the stub rng always draws 0.6 → ⌊0.6·4⌋ = 2).
    const negRng = { nextUint32: () => 0, nextFloat: () => 0.6 };
    const loss = (flat: Float32Array) => {
      const sc = new Scorer(spec, jointViews(spec, flat, feats), feats);
      const [sp, sn] = sc.scores(users.p, users.c, [1, 2]);
      return Math.log1p(Math.exp(-(sp! - sn!)));
    };
    const w = w0.slice();
    const u = { p: users.p.slice(), c: users.c.slice() };
    const lr = 1e-3;
    model.dpStep(w, u, { user: Int32Array.of(0), item: Int32Array.of(1) }, Int32Array.of(0), 1, { clip: 1e9, sigma: 0, expectedBatch: 1, learningRate: lr, negatives: 1, negRng, noise: (n) => new Float64Array(n), clipFactor: (sq, c) => Math.min(1, c / Math.sqrt(sq)) });
    const h = 1e-3;
    let checked = 0;
    for (let d = 0; d < w0.length; d++) {
      const a = Float32Array.from(w0); a[d]! += h;
      const b = Float32Array.from(w0); b[d]! -= h;
      const g = (loss(a) - loss(b)) / (2 * h);
      expect((w0[d]! - w[d]!) / lr).toBeCloseTo(g, 2);
      if (Math.abs(g) > 1e-3) checked++;
    }
    expect(checked).toBeGreaterThan(10); // the free row of item 2, feature embeddings, prior weight, MLP
    // Item 0's free row is untouched (not in the example), item 2's is.
    expect(Array.from(w.subarray(0, 2))).toEqual(Array.from(w0.subarray(0, 2)));
    expect(Array.from(w.subarray(2, 4))).not.toEqual(Array.from(w0.subarray(2, 4)));
  });

  it('clipping bounds the whole tower gradient of one example by C', () => {
    const w0 = initRecWeights(spec, 9);
    const users = initUserParams(spec, 1, 3);
    const w = w0.slice();
    const u = { p: users.p.slice(), c: users.c.slice() };
    const negRng = { nextUint32: () => 0, nextFloat: () => 0.6 };
    const clip = 1e-3;
    model2().dpStep(w, u, { user: Int32Array.of(0), item: Int32Array.of(0) }, Int32Array.of(0), 1, { clip, sigma: 0, expectedBatch: 1, learningRate: 1, negatives: 1, negRng, noise: (n) => new Float64Array(n), clipFactor: (sq, c) => Math.min(1, c / Math.sqrt(sq)) });
    let sq = 0;
    for (let d = 0; d < w.length; d++) sq += (w[d]! - w0[d]!) ** 2;
    for (let d = 0; d < u.p.length; d++) sq += (u.p[d]! - users.p[d]!) ** 2;
    for (let d = 0; d < u.c.length; d++) sq += (u.c[d]! - users.c[d]!) ** 2;
    expect(Math.sqrt(sq)).toBeLessThanOrEqual(clip * (1 + 1e-3));
    expect(Math.sqrt(sq)).toBeGreaterThan(clip * 0.99);
    function model2() { return new WideDeep(spec, feats, 4); }
  });

  it('plain (non-DP) training refuses the tower model', () => {
    const model = new WideDeep(spec, feats, 4);
    expect(() => model.epoch(initRecWeights(spec, 1), initUserParams(spec, 1, 1), { user: Int32Array.of(0), item: Int32Array.of(0) }, [new Set([0])], { learningRate: 0.1, l2: 0, negatives: 1 }, 1)).toThrow(/DP-SGD only/);
  });

  it('the count release: free rows where the released count reaches the threshold, log prior, noise std σ', () => {
    const t = itemTowerFromCounts([30, 19.5, -4, 20], 20);
    expect(t).toEqual({ rows: 2, rowOf: [0, -1, -1, 1], prior: [Math.log1p(30), Math.log1p(19.5), 0, Math.log1p(20)] });
    expect(() => itemTowerFromCounts([1, 2], 5)).toThrow(/--dp-free-min/);
    const c = noisyItemCounts(20_000, [3, 3, 3], 5, createSeededRandomSource(new Uint8Array(32).fill(1)));
    let m = 0;
    let v = 0;
    for (let i = 4; i < c.length; i++) { m += c[i]!; v += c[i]! ** 2; }
    m /= c.length - 4;
    v = v / (c.length - 4) - m * m;
    expect(Math.abs(m)).toBeLessThan(0.15);
    expect(Math.sqrt(v)).toBeGreaterThan(4.85);
    expect(Math.sqrt(v)).toBeLessThan(5.15);
  });

  it('accounting: the release is α/(2σ²)-RDP, composition costs more than either part, and σ is raised to fit the budget', () => {
    const rdp = countReleaseRdp(2, [2, 8]);
    expect(Array.from(rdp)).toEqual([2 / 8, 8 / 8]);
    const sgdAlone = computeEpsilon({ q: 0.05, sigma: 1, steps: 400, delta: 1e-5 }).epsilon;
    const both = composedEpsilon({ q: 0.05, sigma: 1, steps: 400, countSigma: 5, delta: 1e-5 }).epsilon;
    const relAlone = rdpToEpsilon(DEFAULT_RDP_ORDERS, countReleaseRdp(5), 1e-5).epsilon;
    expect(both).toBeGreaterThan(sgdAlone);
    expect(both).toBeGreaterThan(relAlone);
    expect(both).toBeLessThan(sgdAlone + relAlone); // RDP composition is tighter than adding ε's
    const r = sigmaWithCountRelease({ q: 0.05, steps: 400, delta: 1e-5, epsilon: 8, countSigma: 5 });
    expect(r.epsilon).toBeLessThanOrEqual(8);
    expect(r.epsilon).toBeGreaterThan(7.99);
    expect(composedEpsilon({ q: 0.05, sigma: r.sigma, steps: 400, countSigma: 5, delta: 1e-5 }).epsilon).toBeCloseTo(r.epsilon, 9);
    expect(r.sigma).toBeGreaterThan(computeSigma({ q: 0.05, steps: 400, delta: 1e-5, epsilon: 8 }).sigma);
    expect(r.sgdEpsilon).toBeLessThan(8);
    expect(() => sigmaWithCountRelease({ q: 0.05, steps: 400, delta: 1e-5, epsilon: 0.5, countSigma: 0.5 })).toThrow(/--dp-count-sigma/);
  });
});
