/**
 * The centralized reference of a vertical model: the SAME algorithm as the
 * vertical protocol, run in one place on the joined columns — what a single
 * party holding every column of the shared customers would train. It is the
 * yardstick of "vertical within 0.01 of centralized" (issue 16), built so
 * that the only difference left is the protocol itself:
 *
 * - rows: the customers shared by every party, in the common (sorted) order;
 * - columns: each party's columns encoded as that party encodes them, joined
 *   side by side (label holder first, then the feature holders in spec order);
 * - LR: {@link LabelHolder} with no feature holders on the joined columns —
 *   the same Adam, learning rate, batches (seeded shuffle, same cut) and
 *   epochs. Adam is coordinate-wise, so per-party Adam equals joint Adam;
 *   what differs is the CKKS approximation and decryption flooding on the
 *   feature holders' gradients and the label holder's secret N(0, 2^-32)
 *   initial weights;
 * - split NN: one tfjs graph with a bottom model per party's column block
 *   (the same widths and seeds as the parties' bottoms: label holder `seed`,
 *   feature holder k `seed + 1 + k`), the same top model (`seed + 1000`),
 *   one Adam over every variable (again coordinate-wise, so the same as one
 *   Adam per party), the same batches, and no embedding noise. The vertical
 *   run differs by the noise (if configured) and float32 rounding order.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { createSeededRng, shuffleInPlace } from '@fedmart/shared/data/rng';
import { cutVerticalBatches } from '@fedmart/shared/vertical-leakage';
import { initBackend } from '../ml/backend.ts';
import { compareIds } from './align.ts';
import { LabelHolder, type LabelledRows, type PartyRows, type SplitNnOptions, type VerticalLrOptions } from './label-holder.ts';
import { DenseStack, bceWithLogits, gatherRows } from './models.ts';

/** Joined rows of the centralized reference: every party's columns side by side, and each party's width. */
export interface JoinedRows extends LabelledRows {
  /** Width of each party's block, label holder first. */
  readonly blocks: readonly number[];
}

/**
 * Join parties' rows on ID: the IDs every party holds, in the common order, each party's columns side by side.
 * @param label - the label holder's rows (first block)
 * @param others - the feature holders' rows, in spec order
 * @param only - restrict to these IDs (e.g. the shared test customers); default every shared ID
 */
export function joinPartyRows(label: LabelledRows, others: readonly PartyRows[], only?: readonly string[]): JoinedRows {
  const parties: PartyRows[] = [label, ...others];
  const pos = parties.map((p) => new Map(p.ids.map((id, i) => [id, i])));
  const ids = (only ? [...only] : label.ids.filter((id) => pos.every((m) => m.has(id)))).sort(compareIds);
  const blocks = parties.map((p) => p.d);
  const d = blocks.reduce((s, w) => s + w, 0);
  const x = new Float32Array(ids.length * d);
  ids.forEach((id, i) => {
    let off = i * d;
    parties.forEach((p, k) => {
      const r = pos[k]!.get(id);
      if (r === undefined) throw new FedmartError('DATA_ERROR', `centralized reference: customer "${id}" is not held by every party`);
      x.set(p.x.subarray(r * p.d, (r + 1) * p.d), off);
      off += p.d;
    });
  });
  return { ids, x, d, y: Float32Array.from(ids, (id) => label.y[pos[0]!.get(id)!]!), blocks };
}

/**
 * Train the centralized reference and score a test set.
 * @param model - "lr" or "splitnn"
 * @param train - joined training rows
 * @param test - joined test rows (same blocks)
 * @param o - the vertical run's options (epochs, seed, batch size, learning rate; split NN widths)
 * @returns P(y = 1) per test row (in `test.ids` order) and the labels
 */
export async function trainCentralizedReference(model: 'lr' | 'splitnn', train: JoinedRows, test: JoinedRows, o: VerticalLrOptions | SplitNnOptions): Promise<{ p: Float32Array; y: Float32Array }> {
  if (model === 'lr') {
    const lh = new LabelHolder(null, { featureHolders: [], sets: { train, test } });
    await lh.align('train');
    await lh.align('test');
    await lh.trainLr(o as VerticalLrOptions);
    const r = await lh.predict('test');
    await lh.finish();
    return r;
  }
  return centralSplitNn(train, test, o as SplitNnOptions);
}

async function centralSplitNn(train: JoinedRows, test: JoinedRows, o: SplitNnOptions): Promise<{ p: Float32Array; y: Float32Array }> {
  await initBackend();
  const E = o.embeddingDim ?? 8;
  const batchSize = o.batchSize ?? 256;
  const bottoms = train.blocks.map((w, k) => new DenseStack([w, E], k === 0 ? o.seed : o.seed + k, true));
  const top = new DenseStack([E * train.blocks.length, ...(o.topHidden ?? [16]), 1], o.seed + 1000, false);
  const vars = [...bottoms.flatMap((b) => b.vars), ...top.vars];
  const optimizer = tf.train.adam(o.learningRate ?? 0.01);
  const forward = (x: tf.Tensor2D): tf.Tensor1D => {
    let off = 0;
    const embs = bottoms.map((b, k) => {
      const w = train.blocks[k]!;
      const e = b.apply(tf.slice(x, [0, off], [-1, w]) as tf.Tensor2D);
      off += w;
      return e;
    });
    return tf.reshape(top.apply(tf.concat(embs, 1) as tf.Tensor2D), [-1]) as tf.Tensor1D;
  };
  try {
    const n = train.ids.length;
    const rng = createSeededRng(o.seed);
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      let lossSum = 0;
      for (const batch of cutVerticalBatches(shuffleInPlace(Uint32Array.from({ length: n }, (_, i) => i), rng), batchSize)) {
        const m = batch.length;
        const xb = tf.tensor2d(gatherRows(train.x, train.d, batch), [m, train.d]);
        const yb = tf.tensor1d(Float32Array.from(batch, (r) => train.y[r]!));
        try {
          const { value, grads } = tf.variableGrads(() => bceWithLogits(forward(xb), yb), vars);
          lossSum += value.dataSync()[0]! * m;
          optimizer.applyGradients(vars.map((v) => ({ name: v.name, tensor: grads[v.name]! })));
          tf.dispose([value, ...Object.values(grads)]);
        } finally {
          tf.dispose([xb, yb]);
        }
      }
      o.onEpoch?.(epoch, lossSum / n);
      await new Promise((r) => setImmediate(r));
    }
    const probs = tf.tidy(() => tf.sigmoid(forward(tf.tensor2d(test.x, [test.ids.length, test.d]))));
    const p = Float32Array.from(probs.dataSync() as Float32Array);
    probs.dispose();
    return { p, y: test.y };
  } finally {
    optimizer.dispose();
    for (const b of bottoms) b.dispose();
    top.dispose();
  }
}
