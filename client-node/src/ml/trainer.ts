/**
 * Local training, prediction and evaluation for {@link ModelSpec} models,
 * written directly on tfjs-core ops rather than tfjs-layers: we need the
 * FedProx proximal term in the loss now and per-example gradients for
 * DP-SGD later, and a hand-written loop makes both a few lines.
 *
 * Weights enter and leave as flat Float32Arrays in `parameterShapes` order
 * (the wire format); tensors never escape this module, and every tensor made
 * here is disposed before a function returns.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { parameterCount, parameterShapes, seededRandom, splitWeights, type ModelSpec } from '@fedmart/shared/model';
import type { LocalTrainConfig } from '@fedmart/shared/strategy/types';
import type { TrainProgress } from '@fedmart/shared/task/types';
import { initBackend } from './backend.ts';
import { DEFAULT_OPTIMIZER, type OptimizerKind } from './defaults.ts';
import { accuracy, logLoss, rocAuc } from '@fedmart/shared/metrics';

/** Rows per forward pass in {@link predict}, bounding peak tensor memory. */
export const PREDICT_BATCH_ROWS = 8192;

/** Arguments of {@link trainLocal}. */
export interface TrainLocalArgs {
  /** Model architecture. */
  spec: ModelSpec;
  /** Starting weights (the global model); not mutated. Also the FedProx anchor. */
  weights: Float32Array;
  /** Features, `n × spec.inputDim`, row-major. */
  x: Float32Array;
  /** Labels, 0 or 1, length `n`. */
  y: Float32Array;
  /** Number of examples. */
  n: number;
  /** Local epochs, batch size, learning rate and FedProx μ. */
  config: LocalTrainConfig;
  /** Seed of the mini-batch shuffle (non-secret). */
  seed: number;
  /** Called after each epoch with the 1-based epoch and its mean training cross-entropy. */
  onEpoch?: (epoch: number, loss: number) => void;
  /** Local optimizer (fresh state each call); defaults to {@link DEFAULT_OPTIMIZER}. */
  optimizer?: OptimizerKind;
  /**
   * Called after each epoch with the 1-based epoch and a copy of the weights
   * at that point (flat, wire order). The experiment harness scores them on
   * validation rows to pick the early-stopping epoch; awaited before the next
   * epoch starts.
   */
  onEpochWeights?: (epoch: number, weights: Float32Array) => void | Promise<void>;
  /** Stops training at the next yield (FedmartError UNAVAILABLE). */
  signal?: AbortSignal | undefined;
  /** Called at every yield with the steps done and planned. */
  onProgress?: ((p: TrainProgress) => void) | undefined;
}

/** Result of {@link trainLocal}. */
export interface TrainLocalResult {
  /** Weights after local training (flat, wire order). */
  weights: Float32Array;
  /** Mean binary cross-entropy over the last epoch's mini-batches (without the proximal term). */
  loss: number;
  /** Optimizer steps taken. */
  steps: number;
}

/** Result of {@link evaluate}. */
export interface EvaluateResult {
  /** Mean log loss. */
  loss: number;
  /** ROC AUC (NaN when only one class is present). */
  auc: number;
  /** Accuracy at threshold 0.5. */
  accuracy: number;
  /** Number of examples evaluated. */
  numExamples: number;
}

function checkData(spec: ModelSpec, x: Float32Array, n: number, y?: Float32Array): void {
  if (!Number.isInteger(n) || n < 1) throw new FedmartError('DATA_ERROR', `expected at least one example (n a positive integer), got n=${String(n)}; check the partner's data split`);
  if (!(x instanceof Float32Array)) throw new TypeError(`x must be a Float32Array, got ${Object.prototype.toString.call(x)}`);
  if (x.length !== n * spec.inputDim) {
    throw new FedmartError('DATA_ERROR', `features have ${x.length} values but n=${n} rows × inputDim=${spec.inputDim} needs ${n * spec.inputDim}; the data's feature encoding does not match the model spec`);
  }
  if (y !== undefined) {
    if (!(y instanceof Float32Array)) throw new TypeError(`y must be a Float32Array, got ${Object.prototype.toString.call(y)}`);
    if (y.length !== n) throw new FedmartError('DATA_ERROR', `expected ${n} labels, got ${y.length}; features and labels must have the same number of rows`);
    for (let i = 0; i < n; i++) {
      if (y[i] !== 0 && y[i] !== 1) throw new FedmartError('DATA_ERROR', `labels must be 0 or 1, got ${y[i]} at row ${i}; binarise the label column`);
    }
  }
}

function checkConfig(config: LocalTrainConfig): void {
  const problems: string[] = [];
  if (!Number.isInteger(config.localEpochs) || config.localEpochs < 1) problems.push(`localEpochs must be a positive integer (got ${config.localEpochs})`);
  if (!Number.isInteger(config.batchSize) || config.batchSize < 1) problems.push(`batchSize must be a positive integer (got ${config.batchSize})`);
  if (!(Number.isFinite(config.learningRate) && config.learningRate > 0)) problems.push(`learningRate must be a finite number > 0 (got ${config.learningRate})`);
  if (!(Number.isFinite(config.proximalMu) && config.proximalMu >= 0)) problems.push(`proximalMu must be a finite number ≥ 0 (got ${config.proximalMu})`);
  if (config.l2 !== undefined && !(Number.isFinite(config.l2) && config.l2 >= 0)) problems.push(`l2 must be a finite number ≥ 0 (got ${config.l2})`);
  if (problems.length) throw new FedmartError('CONFIG_ERROR', `invalid local training config: ${problems.join('; ')}; fix the federation's training settings`);
}

/** Forward pass to logits: ReLU hidden layers, linear output, shape [rows]. */
function forwardLogits(params: readonly tf.Tensor[], x: tf.Tensor2D): tf.Tensor1D {
  let h: tf.Tensor2D = x;
  const layers = params.length / 2;
  for (let l = 0; l < layers; l++) {
    const z = tf.add(tf.matMul(h, params[2 * l] as tf.Tensor2D), params[2 * l + 1]) as tf.Tensor2D;
    h = l + 1 < layers ? tf.relu(z) : z;
  }
  return tf.reshape(h, [-1]) as tf.Tensor1D;
}

/**
 * Numerically stable mean binary cross-entropy on logits z:
 * max(z, 0) − z·y + log(1 + e^(−|z|)) (never exponentiates a large positive number).
 */
function bceWithLogits(z: tf.Tensor1D, y: tf.Tensor1D): tf.Scalar {
  return tf.mean(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))))) as tf.Scalar;
}

/** A fresh tfjs optimizer of the given kind (shared with DP-SGD in `dp-sgd.ts`, so both take the same update). */
export function makeOptimizer(kind: OptimizerKind, learningRate: number): tf.Optimizer {
  switch (kind) {
    case 'adam':
      return tf.train.adam(learningRate);
    case 'momentum':
      return tf.train.momentum(learningRate, 0.9);
    case 'sgd':
      return tf.train.sgd(learningRate);
  }
}

/**
 * tfjs 4.22's MomentumOptimizer.dispose() overrides SGD's and forgets the
 * learning-rate scalar `c`, leaking one tensor per optimizer; dispose it too.
 */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  const c = (optimizer as unknown as { c?: tf.Tensor }).c;
  if (c !== undefined && !c.isDisposed) c.dispose();
}

/** Fisher–Yates shuffle of 0..n-1 with the seeded PRNG. */
function permutation(n: number, rand: () => number, out: Int32Array): Int32Array {
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

function flatten(spec: ModelSpec, tensors: readonly tf.Tensor[]): Float32Array {
  const out = new Float32Array(parameterCount(spec));
  let offset = 0;
  for (const t of tensors) {
    const data = t.dataSync() as Float32Array;
    out.set(data, offset);
    offset += data.length;
  }
  return out;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Hand the event loop a turn (heartbeats, status replies, signals), then stop
 * if the partner is stopping. Shared by plain training and DP-SGD.
 * @throws FedmartError UNAVAILABLE when `signal` was aborted
 */
export async function trainingCheckpoint(signal: AbortSignal | undefined, onProgress: ((p: TrainProgress) => void) | undefined, p: TrainProgress): Promise<void> {
  await yieldToEventLoop();
  if (signal?.aborted) throw new FedmartError('UNAVAILABLE', `local training stopped at step ${p.step} of ${p.steps}: the partner is shutting down; nothing was sent`);
  onProgress?.(p);
}

/** Longest stretch of training work between two turns of the event loop. */
const YIELD_EVERY_MS = 100;

/**
 * Train the model on local data, starting from the global weights.
 *
 * Mini-batches are reshuffled each epoch with a PRNG seeded by `seed`, so a
 * run is reproducible on a given backend. The objective is the mean binary
 * cross-entropy on logits plus, when `config.proximalMu` > 0, the FedProx
 * proximal term μ/2·‖w − w_start‖² (Li et al. 2020, "Federated Optimization
 * in Heterogeneous Networks"), which keeps non-IID partners from drifting
 * far from the global model, and, when `config.l2` > 0, a ridge penalty
 * λ/2·Σ‖W‖² on the weight matrices (biases unpenalised). The optimizer state is fresh every call: it
 * is local to one round and never leaves the partner.
 *
 * @param args - see {@link TrainLocalArgs}
 * @returns the new weights, the last epoch's mean training loss and the step count
 * @throws FedmartError `INVALID_UPDATE` if `weights` does not match the spec, or training diverged to non-finite weights
 * @throws FedmartError `CONFIG_ERROR` for an invalid spec or training config
 * @throws FedmartError `DATA_ERROR` if x, y or n are inconsistent or labels are not 0/1
 * @example
 * const { weights, loss } = await trainLocal({ spec, weights: global, x, y, n, config: DEFAULT_LOCAL_TRAIN, seed: 1 });
 */
export async function trainLocal(args: TrainLocalArgs): Promise<TrainLocalResult> {
  const { spec, weights, x, y, n, config, seed, onEpoch } = args;
  const views = splitWeights(weights, spec);
  checkConfig(config);
  checkData(spec, x, n, y);
  await initBackend();

  const shapes = parameterShapes(spec);
  const optimizer = makeOptimizer(args.optimizer ?? DEFAULT_OPTIMIZER, config.learningRate);
  const vars = views.map((v, i) => tf.tidy(() => tf.variable(tf.tensor(v, shapes[i]), true)));
  const anchors = config.proximalMu > 0 ? views.map((v, i) => tf.tensor(v, shapes[i])) : [];
  const xAll = tf.tensor2d(x, [n, spec.inputDim]);
  const yAll = tf.tensor1d(y);
  const rand = seededRandom(seed);
  const order = new Int32Array(n);
  const halfMu = config.proximalMu / 2;
  const halfL2 = (config.l2 ?? 0) / 2;
  let steps = 0;
  let lastLoss = Number.NaN;
  let lastYield = Date.now();
  const totalSteps = config.localEpochs * Math.ceil(n / config.batchSize);
  try {
    for (let epoch = 1; epoch <= config.localEpochs; epoch++) {
      permutation(n, rand, order);
      let lossSum = 0;
      for (let start = 0; start < n; start += config.batchSize) {
        const end = Math.min(n, start + config.batchSize);
        const batchLoss = tf.tidy(() => {
          const idx = tf.tensor1d(order.subarray(start, end), 'int32');
          const xb = tf.gather(xAll, idx) as tf.Tensor2D;
          const yb = tf.gather(yAll, idx) as tf.Tensor1D;
          let dataLoss: tf.Scalar | undefined;
          const { grads } = tf.variableGrads(() => {
            dataLoss = tf.keep(bceWithLogits(forwardLogits(vars, xb), yb));
            let total: tf.Scalar = dataLoss;
            if (halfMu > 0) {
              const prox = tf.addN(vars.map((w, i) => tf.sum(tf.square(tf.sub(w, anchors[i])))));
              total = tf.add(total, tf.mul(prox, halfMu)) as tf.Scalar;
            }
            if (halfL2 > 0) {
              // Ridge on weight matrices only (even indices); biases stay free, as in the IRLS reference.
              const ridge = tf.addN(vars.filter((_, i) => i % 2 === 0).map((w) => tf.sum(tf.square(w))));
              total = tf.add(total, tf.mul(ridge, halfL2)) as tf.Scalar;
            }
            return total;
          }, vars);
          optimizer.applyGradients(grads);
          return dataLoss as tf.Scalar;
        });
        lossSum += (batchLoss.dataSync()[0] ?? Number.NaN) * (end - start);
        batchLoss.dispose();
        steps++;
        // A long epoch must not starve the node's socket heartbeats (Socket.IO drops a
        // client whose pong is ~20 s late): hand the event loop a turn every ~100 ms of work.
        if (Date.now() - lastYield > YIELD_EVERY_MS) {
          await trainingCheckpoint(args.signal, args.onProgress, { step: steps, steps: totalSteps, epoch });
          lastYield = Date.now();
        }
      }
      lastLoss = lossSum / n;
      onEpoch?.(epoch, lastLoss);
      if (args.onEpochWeights) await args.onEpochWeights(epoch, flatten(spec, vars));
      // Long local training must not starve the node's socket heartbeats.
      if (epoch < config.localEpochs) await yieldToEventLoop();
    }
    const trained = flatten(spec, vars);
    if (!trained.every(Number.isFinite)) {
      throw new FedmartError('INVALID_UPDATE', `local training diverged: weights became non-finite after ${steps} steps (learningRate ${config.learningRate}); lower the learning rate or check the features for huge values`);
    }
    return { weights: trained, loss: lastLoss, steps };
  } finally {
    disposeOptimizer(optimizer);
    tf.dispose([...vars, ...anchors, xAll, yAll]);
  }
}

/**
 * Predicted probabilities P(y=1) for each row, computed in chunks of
 * {@link PREDICT_BATCH_ROWS} rows.
 *
 * @param spec - model architecture
 * @param weights - flat weights in wire order
 * @param x - features, `n × spec.inputDim`, row-major
 * @param n - number of rows
 * @returns probabilities, length `n`
 * @throws FedmartError `INVALID_UPDATE` if `weights` does not match the spec
 * @throws FedmartError `DATA_ERROR` if `x` does not hold `n` rows
 */
export async function predict(spec: ModelSpec, weights: Float32Array, x: Float32Array, n: number): Promise<Float32Array> {
  const views = splitWeights(weights, spec);
  checkData(spec, x, n);
  await initBackend();
  const shapes = parameterShapes(spec);
  const params = views.map((v, i) => tf.tensor(v, shapes[i]));
  const out = new Float32Array(n);
  try {
    for (let start = 0; start < n; start += PREDICT_BATCH_ROWS) {
      const end = Math.min(n, start + PREDICT_BATCH_ROWS);
      const probs = tf.tidy(() => tf.sigmoid(forwardLogits(params, tf.tensor2d(x.subarray(start * spec.inputDim, end * spec.inputDim), [end - start, spec.inputDim]))));
      out.set(probs.dataSync() as Float32Array, start);
      probs.dispose();
    }
    return out;
  } finally {
    tf.dispose(params);
  }
}

/**
 * Evaluate the model on labelled data.
 *
 * @param spec - model architecture
 * @param weights - flat weights in wire order
 * @param x - features, `n × spec.inputDim`, row-major
 * @param y - 0/1 labels, length `n`
 * @param n - number of rows
 * @returns log loss, ROC AUC (NaN if one class only), accuracy at 0.5, and `n`
 * @throws FedmartError `INVALID_UPDATE` if `weights` does not match the spec
 * @throws FedmartError `DATA_ERROR` if x, y or n are inconsistent or labels are not 0/1
 */
export async function evaluate(spec: ModelSpec, weights: Float32Array, x: Float32Array, y: Float32Array, n: number): Promise<EvaluateResult> {
  checkData(spec, x, n, y);
  const probs = await predict(spec, weights, x, n);
  const bad = probs.findIndex((p) => !Number.isFinite(p));
  if (bad >= 0) {
    throw new FedmartError('INVALID_UPDATE', `the model predicts ${probs[bad]} for row ${bad}: its weights are not finite or overflow; discard this model version (lower the learning rate if training diverged)`);
  }
  return { loss: logLoss(probs, y), auc: rocAuc(probs, y), accuracy: accuracy(probs, y), numExamples: n };
}
