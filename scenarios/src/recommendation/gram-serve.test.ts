import { describe, expect, it } from 'vitest';
import { gramLayout, gramRelease, gramScores, positions, spectralFromGram, topItems, countRelease, type GramDpSpec, type GramModel } from './dp-gram.ts';
import { GRAM_MODEL_FORMAT, GramRecommender, gramModelFileOf, gramReleaseRegistry } from './gram-serve.ts';
import type { ModelRegistry, PublishedModel } from '../model-registry.ts';
import { FileModelRegistry, parseAnyModelFile, RecommendationService } from './recommend.ts';
import type { InteractionData } from './data.ts';

// A small catalogue with two taste groups (items 0–4 and 5–9) and two unpopular items (10, 11) outside the private set.
const items = Array.from({ length: 12 }, (_, i) => `m${i}`);
const histories = [
  [0, 1, 2, 3], [0, 1, 2, 4], [1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3],
  [5, 6, 7, 8], [5, 6, 7, 9], [6, 7, 8, 9], [5, 7, 8, 9], [5, 6, 8], [10, 0, 1], [11, 5, 6],
].map((h) => Int32Array.from(h));
const data: InteractionData = { users: histories.map((_, u) => `u${u}`), items, featureNames: ['a', 'b'], itemFeatures: items.map((_, i) => Int32Array.from(i < 5 ? [0] : [1])), histories } as InteractionData;

function model(): GramModel {
  const counts = countRelease(histories, items.length, 0);
  const top = topItems(counts, 10);
  const pos = positions(top, items.length);
  const { V, values } = spectralFromGram(gramRelease(histories, pos, top.length, 0), top.length, 2, 50);
  return { top, pos, V, rank: values.length, counts };
}

const catalogue = { items, featureNames: data.featureNames, itemFeatures: data.itemFeatures.map((f) => Array.from(f)) };

describe('serving the item-Gram DP model (gram-serve.ts)', () => {
  it('round-trips through the model file and the registry and ranks exactly as gramScores, unseen items only, with the history items behind each', async () => {
    const m = model();
    expect(m.rank).toBe(2);
    const file = gramModelFileOf(data, m, { user: 'u', item: 'i' }, { epsilon: 8 });
    expect(file.format).toBe(GRAM_MODEL_FORMAT);
    const parsed = parseAnyModelFile(JSON.stringify(file), 'model.json');
    expect('gram' in parsed).toBe(true);
    const history = ['m0', 'm1', 'nope'];
    const service = new RecommendationService(new FileModelRegistry(parsed), 'simulation', catalogue, 'gram', () => history);
    const out = await service.answer('u0', 5);
    const recs = out.recommendations;
    expect(recs).toHaveLength(5);
    expect(out.model).toBe('simulation/1');
    // The same order as the model's own scores (Float32 storage: equal to 4 decimals), seen items excluded.
    const scores = gramScores(m, Int32Array.from([0, 1]), null);
    const expected = Array.from(scores.keys()).filter((i) => i !== 0 && i !== 1).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 5);
    // (near-ties of the two near-zero cross-group items may swap after Float32 storage: their scores are compared instead)
    expect(recs.slice(0, 3).map((r) => r.item)).toEqual(expected.slice(0, 3).map((i) => items[i]));
    for (const [x, r] of recs.entries()) expect(r.score).toBeCloseTo(scores[expected[x]!]!, 3);
    expect(recs.every((r, x) => x === 0 || r.score <= recs[x - 1]!.score)).toBe(true);
    // Same-group items first: a history in group 1 is recommended the rest of group 1.
    expect(recs.slice(0, 3).every((r) => Number(r.item.slice(1)) < 5)).toBe(true);
    for (const r of recs) {
      expect(r.reason.becauseOf.every((h) => history.includes(h))).toBe(true);
      expect(r.reason.features).toEqual([Number(r.item.slice(1)) < 5 ? 'a' : 'b']);
    }
    expect(recs[0]!.reason.becauseOf.length).toBeGreaterThan(0);
    // Items outside the private set rank below every item in it.
    const all = new GramRecommender(await new FileModelRegistry(parsed).load('simulation', 'latest'), catalogue).topK(['m0'], 11, 'u');
    expect(all.slice(-2).map((r) => r.item).sort()).toEqual(['m10', 'm11']);
  });

  it('refuses a damaged file, a catalogue of another size and a user without history, each with what to do', async () => {
    const file = gramModelFileOf(data, model(), { user: 'u', item: 'i' }, {});
    const flipped = Buffer.from(file.weights, 'base64');
    flipped[flipped.length - 1] ^= 1;
    await expect(new FileModelRegistry({ ...file, weights: flipped.toString('base64') }).load('simulation', 'latest')).rejects.toThrow(/SHA-256.*write it again/);
    expect(() => parseAnyModelFile(JSON.stringify({ ...file, gram: { items: 1 } }), 'm.json')).toThrow(/not an item-Gram recommendation model file \(gram\.items.*\)/);
    const published = await new FileModelRegistry(file).load('simulation', 'latest');
    expect(() => new GramRecommender(published, { ...catalogue, items: items.slice(1) })).toThrow(/catalogue has 11 items but the item-Gram model was released over 12/);
    const badTop = Float32Array.from(published.weights);
    badTop[0] = 99;
    expect(() => new GramRecommender({ ...published, weights: badTop }, catalogue)).toThrow(/outside the catalogue/);
    expect(() => new GramRecommender(published, catalogue).topK(['zzz'], 3, 'u7')).toThrow(/user u7 has no interactions with catalogue items/);
  });

  it('serves a federation\'s committed releases only once both are in and all P brands committed them (gramReleaseRegistry)', async () => {
    // The committed weights of a real federation: the brands' mean of (statistics / scale), P = 2 (here: the exact sums / (P·scale)).
    const g: GramDpSpec = { items: items.length, top: 10, budget: [0.1, 0.9], partners: 2, scale: 100, rank: 2 };
    const counts = countRelease(histories, items.length, 0);
    const top = topItems(counts, g.top);
    const upper = gramRelease(histories, positions(top, items.length), top.length, 0);
    const full = new Float32Array(items.length + upper.length);
    for (let i = 0; i < items.length; i++) full[i] = counts[i]! / (g.partners * g.scale);
    for (let i = 0; i < upper.length; i++) full[items.length + i] = upper[i]! / (g.partners * g.scale);
    const published = (version: number, weights: Float32Array, clients: number): PublishedModel => ({ federationId: 'f', version, spec: gramLayout(g), weights, sha256: '', metrics: { clients }, participants: ['me'] });
    const at = (p: PublishedModel): ModelRegistry => ({ load: async () => p });
    const countsOnly = full.slice();
    countsOnly.fill(0, items.length);
    await expect(gramReleaseRegistry(at(published(1, countsOnly, 2)), g, 1e-9).load('f', 'latest')).rejects.toThrow(/not yet the co-occurrence Gram.*second round/);
    await expect(gramReleaseRegistry(at(published(2, full, 1)), g, 1e-9).load('f', 'latest')).rejects.toThrow(/committed by 1 brand\(s\).*planned for exactly 2/);
    await expect(gramReleaseRegistry(at(published(2, full.subarray(1), 2)), g, 1e-9).load('f', 'latest')).rejects.toThrow(/not the .* of the federation's item-Gram release/);
    // Both releases by both brands: the served model ranks as the item model of the exact statistics.
    const served = await gramReleaseRegistry(at(published(2, full, 2)), g, 1e-9).load('f', 'latest');
    const recs = new GramRecommender(served, catalogue).topK(['m5', 'm6'], 3, 'u');
    expect(recs.map((r) => r.item).every((i) => ['m7', 'm8', 'm9'].includes(i))).toBe(true);
    expect(recs.every((r) => r.reason.becauseOf.every((h) => h === 'm5' || h === 'm6'))).toBe(true);
  });
});
