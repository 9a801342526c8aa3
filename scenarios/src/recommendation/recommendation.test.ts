import { describe, expect, it } from 'vitest';
import { aucOf, hitAt, ndcgAt, rankOf, RankingAccumulator } from './metrics.ts';
import { leaveLastOut, partitionUsers, readInteractions, sampleEvalNegatives } from './data.ts';
import { jointViews, initRecWeights, recLayout, Scorer, flattenFeatures } from './model.ts';
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
