import { describe, expect, it } from 'vitest';
import { createSeededRng, shuffleInPlace } from '@fedmart/shared/data/rng';
import { rocAuc } from '@fedmart/shared/metrics';
import { DEFAULT_DECRYPT_FLOOD_STD } from '@fedmart/shared/he/ckks-ops';
import { parseVerticalMessage, readVector, type VerticalWireMessage } from '@fedmart/shared/protocol-vertical';
import { createInMemoryVerticalHub, FeatureHolder, LabelHolder, type LabelledRows, type PartyRows } from './index.ts';

/** A small synthetic customer base: label depends on both parties' columns. */
function makeParties(n: number, dA: number, dB: number, seed: number, opts: { overlap?: number } = {}) {
  const rng = createSeededRng(seed);
  const u = () => rng.nextFloat();
  const emails = Array.from({ length: n }, (_, i) => `customer${i}.${seed}@example.com`);
  const xa = new Float32Array(n * dA).map(() => u() * 2 - 1);
  const xb = new Float32Array(n * dB).map(() => u() * 2 - 1);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = -0.5;
    for (let j = 0; j < dA; j++) z += (j % 2 ? 1 : -1) * xa[i * dA + j]!;
    for (let j = 0; j < dB; j++) z += 1.5 * xb[i * dB + j]!;
    y[i] = u() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  // Each party holds the shared customers plus some of its own, in its own row order.
  const overlap = opts.overlap ?? 1;
  const shared = Math.round(overlap * n);
  const lhRows = shuffleInPlace(Int32Array.from({ length: shared + Math.floor((n - shared) / 2) }, (_, i) => i), rng);
  const fhRows = shuffleInPlace(Int32Array.from([...Array(shared).keys(), ...Array.from({ length: n - shared - Math.floor((n - shared) / 2) }, (_, i) => shared + Math.floor((n - shared) / 2) + i)]), rng);
  const take = (x: Float32Array, d: number, rows: Int32Array) => {
    const out = new Float32Array(rows.length * d);
    rows.forEach((r, k) => out.set(x.subarray(r * d, (r + 1) * d), k * d));
    return out;
  };
  const lh: LabelledRows = { ids: Array.from(lhRows, (r) => emails[r]!), x: take(xa, dA, lhRows), d: dA, y: Float32Array.from(lhRows, (r) => y[r]!) };
  const fh: PartyRows = { ids: Array.from(fhRows, (r) => emails[r]!), x: take(xb, dB, fhRows), d: dB };
  // The same customers with all columns, for the centralized reference.
  const all: LabelledRows = { ids: emails, x: new Float32Array(n * (dA + dB)), d: dA + dB, y };
  for (let i = 0; i < n; i++) {
    all.x.set(xa.subarray(i * dA, (i + 1) * dA), i * (dA + dB));
    all.x.set(xb.subarray(i * dB, (i + 1) * dB), i * (dA + dB) + dA);
  }
  return { lh, fh, all, emails, sharedIds: emails.slice(0, shared) };
}

function setup(lhSets: Record<string, LabelledRows>, fhSets: Record<string, PartyRows>, opts: { onGradient?: (step: number, g: Float64Array) => void } = {}) {
  const wire: VerticalWireMessage[] = [];
  const hub = createInMemoryVerticalHub({ session: 'test', tap: (w) => wire.push(w) });
  const lh = new LabelHolder(hub.channel('platform'), { featureHolders: ['brand'], sets: lhSets, session: 'test' });
  const fh = new FeatureHolder(hub.channel('brand'), { labelHolder: 'platform', sets: fhSets, session: 'test', ...(opts.onGradient ? { onGradient: opts.onGradient } : {}) });
  return { hub, lh, fh, wire };
}

describe('vertical FL: PSI alignment inside the flow', () => {
  it('aligns the shared customers in the same order on both sides, and no ID ever travels in the clear', async () => {
    // Arrange: 400 customers, 60 % shared
    const p = makeParties(400, 2, 3, 7, { overlap: 0.6 });
    const { lh, fh, wire } = setup({ train: p.lh }, { train: p.fh });
    // Act
    const [a, b] = await Promise.all([lh.align('train'), fh.align('train')]);
    // Assert: the exact intersection, same order, rows point at the same customers
    expect(a.size).toBe(240);
    expect(b.size).toBe(240);
    expect([...a.ids!].sort()).toEqual([...p.sharedIds].sort());
    expect(b.ids).toEqual(a.ids);
    a.rows!.forEach((r, i) => expect(p.lh.ids[r]).toBe(a.ids![i]));
    b.rows!.forEach((r, i) => expect(p.fh.ids[r]).toBe(a.ids![i]));
    // Assert: captured traffic holds no ID, in headers or binary parts
    expect(wire.length).toBeGreaterThan(0);
    const haystackHeaders = wire.map((w) => w.header).join('\n');
    const haystackParts = Buffer.concat(wire.flatMap((w) => w.parts.map((x) => Buffer.from(x)))).toString('latin1');
    for (const id of p.emails) {
      expect(haystackHeaders.includes(id)).toBe(false);
      expect(haystackParts.includes(id)).toBe(false);
    }
    expect(haystackParts.includes('@example.com')).toBe(false);
  });

  it('mode "size" reveals only the number of shared customers', async () => {
    const p = makeParties(200, 2, 2, 8, { overlap: 0.5 });
    const { lh, fh } = setup({ train: p.lh }, { train: p.fh });
    const [a, b] = await Promise.all([lh.align('train', 'size'), fh.align('train', 'size')]);
    expect(a).toMatchObject({ size: 100 });
    expect(b).toMatchObject({ size: 100 });
    expect(a.ids).toBeUndefined();
    expect(b.rows).toBeUndefined();
  });
});

describe('vertical logistic regression (CKKS residuals, masked gradients)', () => {
  it('the feature holder’s gradients equal the centralized LR gradients, the trained model equals centralized training, and the label holder only sees masked gradients', async () => {
    // Arrange
    const p = makeParties(600, 3, 4, 11);
    const gradients: Float64Array[] = [];
    const { lh, fh, wire } = setup({ train: p.lh, test: p.lh }, { train: p.fh, test: p.fh }, { onGradient: (_s, g) => gradients.push(g) });
    await Promise.all([lh.align('train'), fh.align('train')]);
    await Promise.all([lh.align('test'), fh.align('test')]);
    const serving = fh.serve();
    // Act: 3 epochs of 2 steps
    const opts = { epochs: 3, batchSize: 300, learningRate: 0.1, seed: 5 };
    await lh.trainLr(opts);
    const vertical = await lh.predict('test');
    await lh.finish();
    expect((await serving).steps).toBe(7); // 6 training steps + 1 scoring batch

    // Assert 1: first step gradient = plain centralized gradient at w = 0 (z = 0, d = 0.5 − y)
    const central = new LabelHolder(null, { featureHolders: [], sets: { train: p.all, test: p.all } });
    const ca = await central.align('train');
    await central.align('test');
    const first = new Float64Array(4);
    // the first batch's rows, reproduced from the label holder's seeded order
    const order = shuffleInPlace(Uint32Array.from({ length: 600 }, (_, i) => i), createSeededRng(5)).subarray(0, 300);
    for (const i of order) {
      const r = ca.rows![i]!;
      const d = 0.5 - p.all.y[r]!;
      for (let j = 0; j < 4; j++) first[j]! += (p.all.x[r * 7 + 3 + j]! * d) / 300;
    }
    expect(gradients).toHaveLength(6);
    // tolerance: CKKS error (≈1e-9 here) + the key holder's flooding noise (std 2^-10 on the sum, so 6σ/m per coordinate)
    const tolerance = (6 * DEFAULT_DECRYPT_FLOOD_STD) / 300;
    for (let j = 0; j < 4; j++) expect(Math.abs(gradients[0]![j]! - first[j]!)).toBeLessThan(tolerance);
    expect(Math.max(...first.map(Math.abs))).toBeGreaterThan(100 * tolerance); // the check is not vacuous

    // Assert 2: the whole trajectory matches centralized LR on the joined columns
    await central.trainLr(opts);
    const reference = await central.predict('test');
    let maxDiff = 0;
    for (let i = 0; i < 600; i++) maxDiff = Math.max(maxDiff, Math.abs(vertical.p[i]! - reference.p[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(rocAuc(vertical.p, vertical.y)).toBeGreaterThan(0.75);

    // Assert 3: what the label holder decrypts differs from the true (unnormalised) gradient by a large mask
    const seen = wire.map((w) => parseVerticalMessage(w)).filter((m) => m.type === 'vlr.decrypted');
    expect(seen).toHaveLength(6);
    seen.forEach((m, s) => {
      const view = readVector(m.parts[0]!, 'f64');
      for (let j = 0; j < 4; j++) expect(Math.abs(view[j]! - gradients[s]![j]! * 300)).toBeGreaterThan(1e3);
    });
    // and the label holder never receives feature values: only partial logits, ciphertexts and embeddings flow to it
    const toLh = new Set(wire.map((w) => parseVerticalMessage(w)).filter((m) => m.to === 'platform').map((m) => m.type));
    expect([...toLh].sort()).toEqual(['psi.blinded', 'vlr.declare', 'vlr.maskedGradient', 'vlr.partial']);
  });
});

describe('split neural network', () => {
  it('trains (loss falls, test AUC well above chance), with and without embedding noise', async () => {
    const p = makeParties(2000, 3, 4, 21);
    const test = makeParties(600, 3, 4, 22);
    for (const noiseStd of [0, 0.1]) {
      const { lh, fh, wire } = setup({ train: p.lh, test: test.lh }, { train: p.fh, test: test.fh });
      await Promise.all([lh.align('train'), fh.align('train')]);
      await Promise.all([lh.align('test'), fh.align('test')]);
      const serving = fh.serve();
      const losses: number[] = [];
      await lh.trainSplitNn({ epochs: 6, batchSize: 128, learningRate: 0.01, noiseStd, seed: 3, onEpoch: (_e, l) => losses.push(l) });
      const r = await lh.predict('test');
      await lh.finish();
      await serving;
      expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.05);
      expect(rocAuc(r.p, r.y)).toBeGreaterThan(0.8);
      expect(wire.some((w) => w.header.includes('"snn.gradient"'))).toBe(true);
    }
  });

  it('a feature holder that gets a message out of order fails with a clear error and the label holder sees it', async () => {
    const p = makeParties(50, 1, 1, 2);
    const { hub, lh, fh } = setup({ train: p.lh }, { train: p.fh });
    await Promise.all([lh.align('train'), fh.align('train')]);
    const serving = fh.serve();
    await hub.channel('platform').send('brand', 'vlr.decrypted', { step: 0, dims: 1 }, [new Uint8Array(8)]);
    await expect(serving).rejects.toThrow(/unexpected vlr.decrypted/);
  });
});
