/**
 * The centralized reference is the vertical algorithm run in one place
 * (centralized.ts): trained on the same customers with the same seeds and
 * batches, its predictions equal the vertical protocol's up to the protocol's
 * own approximation (CKKS + flooding for LR, float32 order for split NN).
 */
import { describe, expect, it } from 'vitest';
import { createSeededRng, shuffleInPlace } from '@fedmart/shared/data/rng';
import { createInMemoryVerticalHub, FeatureHolder, LabelHolder, type LabelledRows, type PartyRows } from './index.ts';
import { joinPartyRows, trainCentralizedReference } from './centralized.ts';

/** Three parties (label holder + two feature holders), 70 % of customers shared, each in its own row order. */
function parties(n: number, seed: number) {
  const rng = createSeededRng(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const ids = Array.from({ length: n }, (_, i) => `c${i}`);
  const widths = [3, 2, 4];
  const x = widths.map((d) => Float32Array.from({ length: n * d }, u));
  const y = Float32Array.from({ length: n }, (_, i) => {
    let z = 0.3;
    widths.forEach((d, k) => { for (let j = 0; j < d; j++) z += (k + 1) * (j % 2 ? 0.8 : -0.6) * x[k]![i * d + j]!; });
    return rng.nextFloat() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  });
  const shared = Math.round(0.7 * n);
  const rowsOf = (k: number) => shuffleInPlace([...Array(shared).keys(), ...Array.from({ length: n - shared }, (_, i) => shared + i).filter((i) => i % 3 === k)], rng);
  const take = (k: number, rows: number[]): PartyRows => {
    const d = widths[k]!;
    const out = new Float32Array(rows.length * d);
    rows.forEach((r, i) => out.set(x[k]!.subarray(r * d, (r + 1) * d), i * d));
    return { ids: rows.map((r) => ids[r]!), x: out, d };
  };
  const split = (rows: number[], test: boolean) => rows.filter((r) => (r % 5 === 0) === test);
  return [0, 1, 2].map((k) => {
    const rows = rowsOf(k);
    const mk = (rs: number[]) => (k === 0 ? { ...take(0, rs), y: Float32Array.from(rs, (r) => y[r]!) } : take(k, rs));
    return { train: mk(split(rows, false)), test: mk(split(rows, true)) };
  });
}

async function vertical(model: 'lr' | 'splitnn', p: ReturnType<typeof parties>, o: { epochs: number; batchSize: number; learningRate: number; seed: number }) {
  const hub = createInMemoryVerticalHub({ session: 't' });
  const sets = (k: number) => ({ train: p[k]!.train, test: p[k]!.test });
  const lh = new LabelHolder(hub.channel('lh'), { featureHolders: ['a', 'b'], sets: sets(0) as Record<string, LabelledRows>, session: 't' });
  const fhs = ['a', 'b'].map((name, k) => new FeatureHolder(hub.channel(name), { labelHolder: 'lh', sets: sets(k + 1), session: 't' }));
  for (const set of ['train', 'test']) await Promise.all([lh.align(set), ...fhs.map((f) => f.align(set))]);
  const serving = fhs.map((f) => f.serve());
  if (model === 'lr') await lh.trainLr(o);
  else await lh.trainSplitNn({ ...o, noiseStd: 0 });
  const r = await lh.predict('test');
  await lh.finish();
  await Promise.all(serving);
  return r;
}

describe('centralized reference = the vertical algorithm in one place', () => {
  const p = parties(3000, 11);
  const join = () => ({
    train: joinPartyRows(p[0]!.train as LabelledRows, [p[1]!.train, p[2]!.train]),
    test: joinPartyRows(p[0]!.test as LabelledRows, [p[1]!.test, p[2]!.test]),
  });

  it('LR: the same predictions up to the CKKS approximation', async () => {
    const o = { epochs: 3, batchSize: 512, learningRate: 0.05, seed: 5 };
    const v = await vertical('lr', p, o);
    const { train, test } = join();
    const c = await trainCentralizedReference('lr', train, test, o);
    expect(c.p.length).toBe(v.p.length);
    expect(Array.from(c.y)).toEqual(Array.from(v.y));
    expect(Math.max(...Array.from(v.p, (q, i) => Math.abs(q - c.p[i]!)))).toBeLessThan(1e-3);
  }, 300_000);

  it('split NN: the same architecture, seeds and batches give the same predictions up to float32 rounding', async () => {
    const o = { epochs: 3, batchSize: 128, learningRate: 0.01, seed: 9 };
    const v = await vertical('splitnn', p, o);
    const { train, test } = join();
    const c = await trainCentralizedReference('splitnn', train, test, o);
    expect(Array.from(c.y)).toEqual(Array.from(v.y));
    expect(Math.max(...Array.from(v.p, (q, i) => Math.abs(q - c.p[i]!)))).toBeLessThan(1e-3);
  }, 300_000);
});
