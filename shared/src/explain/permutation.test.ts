import { describe, expect, it } from 'vitest';
import { createSeededRng } from '../data/rng.ts';
import type { DatasetSchema } from '../data/index.ts';
import { denseModel } from './mlp.ts';
import { featureGroups } from './features.ts';
import { aggregatePermutationImportance, partnerPermutationImportance, type PartnerImportance } from './permutation.ts';

// Two features: `signal` (numeric, drives the label) and `channel` (3 categories, ignored by the model).
const schema: DatasetSchema = { label: 'y', positive: ['1'], features: [{ name: 'signal', type: 'numeric' }, { name: 'channel', type: 'categorical', categories: ['a', 'b', 'c'] }] };
const groups = featureGroups(schema);

function data(n: number, seed: number) {
  const rng = createSeededRng(seed);
  const x = new Float32Array(n * 4);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = rng.nextFloat() * 4 - 2;
    x[i * 4] = s;
    x[i * 4 + 1 + (i % 3)] = 1;
    y[i] = rng.nextFloat() < 1 / (1 + Math.exp(-3 * s)) ? 1 : 0;
  }
  return { x, y, n };
}

describe('permutation importance', () => {
  const lr = denseModel({ kind: 'mlp', inputDim: 4, hidden: [] }, new Float32Array([3, 0, 0, 0, 0]));

  it('is large for the feature the model uses and exactly zero for one it ignores', () => {
    // Act
    const r = partnerPermutationImportance(lr, groups, data(400, 1), { seed: 7, repeats: 3 });
    // Assert
    const [signal, channel] = r.features;
    expect(signal!.feature).toBe('signal');
    expect(signal!.importance).toBeGreaterThan(0.2);
    expect(signal!.aucDrop).toBeGreaterThan(0.2);
    expect(channel).toEqual({ feature: 'channel', importance: 0, aucDrop: 0 });
  });

  it('permutes a one-hot group as a whole, so every permuted row stays a valid encoding', () => {
    // A model that scores the number of hot channel columns: a row with two (or zero) hot columns would move its score.
    const counter = denseModel({ kind: 'mlp', inputDim: 4, hidden: [] }, new Float32Array([0, 1, 1, 1, 0]));
    const r = partnerPermutationImportance(counter, groups, data(300, 2), { seed: 3, repeats: 4 });
    expect(r.features[1]!.importance).toBe(0);
  });

  it('is reproducible from the seed and changes with it', () => {
    const d = data(200, 3);
    const a = partnerPermutationImportance(lr, groups, d, { seed: 11 });
    expect(partnerPermutationImportance(lr, groups, d, { seed: 11 })).toEqual(a);
    expect(partnerPermutationImportance(lr, groups, d, { seed: 12 }).features[0]!.importance).not.toBe(a.features[0]!.importance);
    expect(a.repeats).toBe(5);
  });

  it('leaves the caller\'s rows untouched', () => {
    const d = data(50, 4);
    const copy = Float32Array.from(d.x);
    partnerPermutationImportance(lr, groups, d, { seed: 1 });
    expect(d.x).toEqual(copy);
  });

  it('refuses empty or mis-shaped rows', () => {
    expect(() => partnerPermutationImportance(lr, groups, { x: new Float32Array(0), y: new Float32Array(0), n: 0 }, { seed: 1 })).toThrow(/at least one validation row/);
    expect(() => partnerPermutationImportance(lr, groups, { x: new Float32Array(6), y: new Float32Array(2), n: 2 }, { seed: 1 })).toThrow(/expected 2 × 4 features/);
  });
});

describe('aggregating partners\' importance vectors', () => {
  const part = (n: number, signal: number, aucDrop: number): PartnerImportance => ({ n, baseLogLoss: 0.5, baseAuc: 0.8, repeats: 5, features: [{ feature: 'signal', importance: signal, aucDrop }, { feature: 'channel', importance: 0.01, aucDrop: 0 }] });

  it('weights each partner by its validation rows and sorts by importance', () => {
    // Act
    const agg = aggregatePermutationImportance([part(100, 0.3, 0.2), part(300, 0.1, Number.NaN)]);
    // Assert: loss importance over all 400 rows; AUC drop only over the partner where AUC is defined
    expect(agg.n).toBe(400);
    expect(agg.global[0]!.feature).toBe('signal');
    expect(agg.global[0]!.importance).toBeCloseTo((100 * 0.3 + 300 * 0.1) / 400, 12);
    expect(agg.global[0]!.aucDrop).toBeCloseTo(0.2, 12);
    expect(agg.global[1]).toEqual({ feature: 'channel', importance: 0.01, aucDrop: 0 });
  });

  it('equals the importance of one partner holding all the rows when partners agree', () => {
    const agg = aggregatePermutationImportance([part(10, 0.2, 0.1), part(30, 0.2, 0.1)]);
    expect(agg.global[0]!.importance).toBeCloseTo(0.2, 12);
  });

  it('refuses no partners and partners over different features', () => {
    expect(() => aggregatePermutationImportance([])).toThrow(/no partner importance vectors/);
    const other = { ...part(10, 0.1, 0), features: [{ feature: 'age', importance: 0, aucDrop: 0 }] };
    expect(() => aggregatePermutationImportance([part(10, 0.1, 0), other])).toThrow(/different features/);
  });
});
