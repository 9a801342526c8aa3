/**
 * `fedmart bench text`: the text classifier's speed on real reviews, each
 * figure beside a baseline measured in the same run:
 * - classification latency (featurize + forward + softmax, one text per
 *   call, after load and warm-up) of the plain-JS model, beside the SAME
 *   weights' TensorFlow.js predict call (gather → √n-pool → matMul → softmax
 *   → dataSync) on the same texts; agreement of their probabilities;
 * - training examples per second of local SGD (what a partner's round costs),
 *   beside the same number of tfjs forward calls' throughput.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { initJointWeights } from '@fedmart/shared/task/layout';
import { DEFAULT_BUCKETS, DEFAULT_DIM, featurize, featurizeAll, predictProba, textLayout, trainSgd, viewParams } from '@fedmart/scenarios/text/fasttext';
import { loadTextDataset, haveFineFoods, type TextRow } from '@fedmart/scenarios/text/datasets';
import { progress } from './args.ts';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Run the text benchmark.
 * @param o - texts to time (default 2000) and training epochs (default 2)
 * @returns the figures
 */
export async function benchText(o: { texts?: number; epochs?: number } = {}) {
  const backend = await initBackend();
  const source = (await haveFineFoods()) ? 'fine-foods' : 'spam';
  const rows: TextRow[] = await loadTextDataset(source, 5000, 1);
  const classes = [...new Set(rows.map((r) => r.label))].sort();
  const y = rows.map((r) => classes.indexOf(r.label));
  const shape = { buckets: DEFAULT_BUCKETS, dim: DEFAULT_DIM, classes };
  progress(`bench text: ${rows.length} ${source} texts, model ${shape.buckets}×${shape.dim}, backend ${backend.name}`);
  const t0 = process.hrtime.bigint();
  const docs = featurizeAll(rows.map((r) => r.text), y, shape.buckets);
  const featurizeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const weights = initJointWeights(textLayout(shape), 1);
  const p = viewParams(weights, shape);
  const epochs = o.epochs ?? 2;
  const t1 = process.hrtime.bigint();
  await trainSgd(p, docs, { learningRate: 0.05, epochs, seed: 1 });
  const trainSeconds = Number(process.hrtime.bigint() - t1) / 1e9;

  const emb = tf.tensor2d(p.emb, [shape.buckets, shape.dim]);
  const head = tf.tensor2d(p.head, [shape.dim, classes.length]);
  const bias = tf.tensor1d(p.bias);
  const tfPredict = (ids: Int32Array): Float32Array => {
    const out = tf.tidy(() => {
      const rowsT = tf.gather(emb, tf.tensor1d(ids, 'int32'));
      const h = tf.div(tf.sum(rowsT, 0, true), Math.sqrt(ids.length));
      return tf.softmax(tf.add(tf.matMul(h, head), bias));
    });
    const v = out.dataSync() as Float32Array;
    out.dispose();
    return v;
  };
  const n = Math.min(o.texts ?? 2000, rows.length);
  const texts = rows.slice(0, n).map((r) => r.text);
  // Warm-up (JIT, tfjs kernels) on texts not timed.
  for (const t of rows.slice(n, n + 100).map((r) => r.text)) {
    predictProba(p, featurize(t, shape.buckets));
    tfPredict(featurize(t, shape.buckets));
  }
  const js: number[] = [];
  const tfj: number[] = [];
  let maxDiff = 0;
  for (const t of texts) {
    const a = process.hrtime.bigint();
    const pj = predictProba(p, featurize(t, shape.buckets));
    const b = process.hrtime.bigint();
    const pt = tfPredict(featurize(t, shape.buckets));
    const c = process.hrtime.bigint();
    js.push(Number(b - a) / 1e6);
    tfj.push(Number(c - b) / 1e6);
    for (let k = 0; k < pj.length; k++) maxDiff = Math.max(maxDiff, Math.abs(pj[k]! - pt[k]!));
  }
  tf.dispose([emb, head, bias]);
  const meanFeatures = docs.ids.length / docs.n;
  return {
    data: { source, texts: rows.length, meanFeatures: Math.round(meanFeatures), classes },
    model: { buckets: shape.buckets, dim: shape.dim, parameters: weights.length, updateBytes: weights.length * 4 },
    latencyMs: { texts: n, p50: r3(pct(js, 0.5)), p95: r3(pct(js, 0.95)), p99: r3(pct(js, 0.99)), target: { p95AtMost: 5, met: pct(js, 0.95) <= 5 } },
    tfjsPredictMs: { backend: backend.name, p50: r3(pct(tfj, 0.5)), p95: r3(pct(tfj, 0.95)), p99: r3(pct(tfj, 0.99)) },
    agreement: { maxAbsProbabilityDifference: maxDiff },
    training: { examplesPerSecond: Math.round((epochs * docs.n) / trainSeconds), epochs, seconds: r3(trainSeconds), featurizeTextsPerSecond: Math.round(docs.n / featurizeSeconds) },
  };
}
