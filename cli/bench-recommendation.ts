/**
 * `fedmart bench recommendation`: the recommendation task's local epoch
 * (hand-written Float32 forward/backward) against a plain TensorFlow.js
 * loop over the same model and data in the same run; bytes per round per
 * partner with and without sparse item-row encoding; `recommend` latency
 * per user after load.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parseCsv } from '@fedmart/shared/data/table';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { prepareScenario, partyOf, scenarioSpec, REC_DEFAULTS, type PreparedScenario } from '@fedmart/scenarios/recommendation/scenario';
import { RankingAccumulator } from '@fedmart/scenarios/recommendation/metrics';
import { initRecWeights, recLayout, type RecModelSpec } from '@fedmart/scenarios/recommendation/model';
import type { LocalRecommender } from '@fedmart/scenarios/recommendation/local';
import { FileModelRegistry, FOLD_IN_EPOCHS, FOLD_IN_MAX_STEPS, modelFileOf, Recommender } from '@fedmart/scenarios/recommendation/recommend';
import { fetchMovielens } from './datasets.ts';
import { progress } from './args.ts';

const r2 = (x: number) => Math.round(x * 100) / 100;

/**
 * The same Wide & Deep and BPR loss as the task, as a plain TensorFlow.js
 * loop: gathers, dense layers, tf.grad through an SGD optimizer, minibatches
 * of `batch` positives (each with the task's negatives).
 * @returns examples (positive interactions) per second over `examples` examples
 */
async function tfjsExamplesPerSecond(party: LocalRecommender, spec: RecModelSpec, examples: number, batch: number): Promise<number> {
  const w = initRecWeights(spec, 1);
  const layout = recLayout(spec);
  let off = 0;
  const vars: Record<string, tf.Variable> = {};
  for (const t of layout.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    vars[t.name] = tf.variable(tf.tensor(w.subarray(off, off + n), t.shape), true, t.name);
    off += n;
  }
  const users = party.splits.length;
  const P = tf.variable(tf.tensor2d(party.users.p, [users, spec.dim]), true, 'user_p');
  const C = tf.variable(tf.tensor2d(party.users.c.length ? party.users.c : new Float32Array(users), [users, Math.max(1, spec.features)]), true, 'user_c');
  // Normalised multi-hot item features (constant).
  const F = new Float32Array(spec.items * Math.max(1, spec.features));
  for (let i = 0; i < spec.items; i++) {
    const f0 = party.feats.offsets[i]!;
    const f1 = party.feats.offsets[i + 1]!;
    for (let k = f0; k < f1; k++) F[i * spec.features + party.feats.ids[k]!] = 1 / (f1 - f0);
  }
  const feat = tf.tensor2d(F, [spec.items, Math.max(1, spec.features)]);
  const opt = tf.train.sgd(REC_DEFAULTS.learningRate);
  const K = REC_DEFAULTS.negatives;
  const score = (u: tf.Tensor1D, it: tf.Tensor1D): tf.Tensor1D => {
    const p = tf.gather(P, u);
    const q = tf.gather(vars.item_emb!, it);
    let s = tf.add(tf.gather(vars.item_bias!, it), tf.sum(tf.mul(p, q), 1));
    if (spec.features > 0) s = tf.add(s, tf.sum(tf.mul(tf.gather(feat, it), tf.add(vars.feature_w!, tf.gather(C, u))), 1));
    if (spec.hidden > 0) {
      const z = tf.relu(tf.add(tf.matMul(tf.concat([p, q], 1), vars.deep_w1 as tf.Tensor2D), vars.deep_b1!));
      s = tf.add(s, tf.squeeze(tf.matMul(z, tf.reshape(vars.deep_v!, [spec.hidden, 1])), [1]));
    }
    return s as tf.Tensor1D;
  };
  const n = party.examples.user.length;
  const uArr = new Int32Array(batch * K);
  const pArr = new Int32Array(batch * K);
  const nArr = new Int32Array(batch * K);
  let done = 0;
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  // Warm-up step (kernel compilation), not timed.
  const step = () => {
    for (let b = 0; b < batch; b++) {
      const e = Math.floor(rnd() * n);
      for (let k = 0; k < K; k++) {
        uArr[b * K + k] = party.examples.user[e]!;
        pArr[b * K + k] = party.examples.item[e]!;
        nArr[b * K + k] = Math.floor(rnd() * spec.items);
      }
    }
    tf.tidy(() => {
      const u = tf.tensor1d(uArr, 'int32');
      const pi = tf.tensor1d(pArr, 'int32');
      const ni = tf.tensor1d(nArr, 'int32');
      opt.minimize(() => tf.mean(tf.softplus(tf.neg(tf.sub(score(u, pi), score(u, ni))))) as tf.Scalar);
    });
  };
  step();
  progress('bench recommendation: TensorFlow.js warm-up step done');
  const t0 = performance.now();
  while (done < examples) {
    step();
    done += batch;
  }
  const s = (performance.now() - t0) / 1000;
  tf.dispose([...Object.values(vars), P, C, feat]);
  opt.dispose();
  return done / s;
}

const quantiles = (xs: number[]) => {
  const t = [...xs].sort((a, b) => a - b);
  return { medianMs: r2(t[Math.floor(t.length / 2)]!), p95Ms: r2(t[Math.min(t.length - 1, Math.floor(t.length * 0.95))]!), maxMs: r2(t[t.length - 1]!) };
};

/**
 * `recommend` after load, per user: the serving fold-in (user-only gradient, cached item
 * pre-activations) beside the baseline fold-in (the full-backward SGD of WideDeep.foldIn) in the
 * same run, over every 4th user; and the answer quality of both on HELD-OUT users: the model is
 * trained (5 centralized epochs) without every 5th user, who are then folded in from their
 * training items and scored on their validation and test interactions (HR@10 vs 99 negatives).
 */
async function benchRecommend(s: PreparedScenario, spec: RecModelSpec): Promise<Record<string, unknown>> {
  const trainUsers = s.splits.map((_, u) => u).filter((u) => u % 5 !== 0);
  const heldOut = s.splits.map((_, u) => u).filter((u) => u % 5 === 0);
  const party = partyOf(s, spec, trainUsers, 1);
  const w = initRecWeights(spec, 1);
  progress('bench recommendation: training the model for the recommend figures (5 centralized epochs, every 5th user held out)…');
  party.train(w, { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives }, 5, 3);
  const file = modelFileOf(s.data, spec, w, { user: 'userId', item: 'movieId' });
  const rec = new Recommender(await new FileModelRegistry(file).load('simulation', 'latest'), file.catalogue, file.model);
  // Latency after load: the serving fold-in and the baseline, alternating per user.
  const sample = s.splits.map((_, u) => u).filter((u) => u % 4 === 0);
  const fast: number[] = [];
  const base: number[] = [];
  for (const u of sample) {
    const hist = Array.from(s.data.histories[u]!, (i) => s.data.items[i]!);
    for (const [baseline, out] of [[false, fast], [true, base]] as const) {
      const a = performance.now();
      rec.topK(hist, 10, s.data.users[u]!, { baseline });
      out.push(performance.now() - a);
    }
  }
  progress('bench recommendation: latency done; fold-in quality on the held-out users…');
  const quality = (baseline: boolean) => {
    const acc = { val: new RankingAccumulator(), test: new RankingAccumulator() };
    for (const u of heldOut) {
      const sp = s.splits[u]!;
      const user = rec.fold(sp.train, s.data.users[u]!, { baseline });
      for (const which of ['val', 'test'] as const) {
        const sc = rec.scores(user, [which === 'val' ? sp.val : sp.test, ...s.evalNegatives[u]!]);
        acc[which].add(sc[0]!, sc.subarray(1));
      }
    }
    return { valHr10: r4(acc.val.result().hr10), testHr10: r4(acc.test.result().hr10) };
  };
  return {
    users: sample.length,
    serving: quantiles(fast),
    baseline: quantiles(base),
    speedup: r2(base.reduce((a, b) => a + b, 0) / fast.reduce((a, b) => a + b, 0)),
    heldOutFoldInQuality: { heldOutUsers: heldOut.length, serving: quality(false), baseline: quality(true) },
    note: `after load, per user (every 4th of ${s.splits.length}; model: 5 centralized epochs without every 5th user): fold-in (${FOLD_IN_EPOCHS} seeded SGD epochs over the history; serving: at most ${FOLD_IN_MAX_STEPS} steps, so ≥ ${FOLD_IN_MAX_STEPS / FOLD_IN_EPOCHS}-item histories get fewer epochs) + scoring the whole catalogue + top-k + reasons; serving = the user-only gradient with cached item pre-activations (foldin.ts), baseline = the full-backward SGD (WideDeep.foldIn), same users, same run; quality: the held-out users folded in from their training items, HR@10 of their validation / test interaction vs 99 sampled negatives`,
  };
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** Run the recommendation bench on MovieLens small (6 partners by dominant genre). */
export async function benchRecommendation(o: { recommendOnly?: boolean } = {}): Promise<Record<string, unknown>> {
  await initBackend();
  const table = parseCsv(readFileSync(fetchMovielens(), 'utf8'));
  const s = prepareScenario(table, { user: 'userId', item: 'movieId', time: 'timestamp', itemFeatures: ['genres'] }, { partners: 6, seed: 1 });
  const spec = scenarioSpec(s, { dim: REC_DEFAULTS.dim, hidden: REC_DEFAULTS.hidden });
  const params = jointParameterCount(recLayout(spec));
  const t = { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives };
  const dataset = 'MovieLens small (dslabs), 6 partners by dominant genre';
  if (o.recommendOnly) return { dataset, model: { ...spec, jointParameters: params }, recommend: await benchRecommend(s, spec) };
  // One partner's local epoch: the median-sized partner.
  const sized = s.partners.map((p) => ({ p, n: p.users.length })).sort((a, b) => a.n - b.n);
  const mid = sized[Math.floor(sized.length / 2)]!.p;
  const party = partyOf(s, spec, mid.users, 1);
  const w = initRecWeights(spec, 1);
  party.train(w, t, 1, 0); // warm-up (JIT)
  const t0 = performance.now();
  party.train(w, t, 1, 1);
  const jsPerSecond = party.numExamples / ((performance.now() - t0) / 1000);
  progress(`bench recommendation: hand-written epoch ${Math.round(jsPerSecond)} examples/s on ${mid.id} (${party.numExamples} examples); bytes per round…`);
  // Bytes per round per partner: dense float32 vs sparse (touched item rows: id + embedding + bias; the rest dense).
  const dense = params * 4;
  const denseRest = (params - spec.items * (spec.dim + 1)) * 4;
  const perPartner = s.partners.map((p) => {
    const local = partyOf(s, spec, p.users, 1);
    const mask = new Uint8Array(spec.items);
    local.train(initRecWeights(spec, 1), t, 1, 2, mask);
    const rows = mask.reduce((a, x) => a + x, 0);
    return { id: p.id, users: p.users.length, touchedItemRows: rows, denseBytes: dense, sparseBytes: denseRest + rows * (4 + 4 * (spec.dim + 1)) };
  });
  progress('bench recommendation: bytes done; recommend latency…');
  const recommendFigures = await benchRecommend(s, spec);
  const tfBatch = 256;
  progress('bench recommendation: TensorFlow.js loop…');
  // The wasm backend has no UnsortedSegmentSum (the gradient of a gather): the plain loop runs on tfjs's CPU backend, last (switching back is not needed).
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  const tfBackend = tf.getBackend();
  const tfPerSecond = await tfjsExamplesPerSecond(partyOf(s, spec, mid.users, 1), spec, Math.min(party.numExamples, tfBatch), tfBatch);
  return {
    dataset,
    model: { ...spec, jointParameters: params },
    localEpoch: {
      partner: mid.id,
      examples: party.numExamples,
      handWrittenExamplesPerSecond: Math.round(jsPerSecond),
      tfjsExamplesPerSecond: Math.round(tfPerSecond),
      tfjsBackend: tfBackend,
      tfjsBatch: tfBatch,
      speedup: r2(jsPerSecond / tfPerSecond),
      note: 'one example = one positive interaction with 4 sampled negatives; hand-written = per-example SGD over sparse rows, TensorFlow.js = minibatches of 256 through tf.grad, timed over one minibatch after a warm-up one; the gradient of tf.gather is UnsortedSegmentSum, which tfjs-backend-cpu runs as one masked sum per table row (9,066 items) and tfjs-backend-wasm lacks, so the plain loop pays per catalogue row',
    },
    bytesPerRound: {
      perPartner,
      note: 'sparse = touched item rows (4-byte id + embedding + bias) plus the dense network; under --secure-agg updates stay dense (masks cover every coordinate, so a sparse pattern would reveal which items a brand touched)',
    },
    recommend: recommendFigures,
  };
}
