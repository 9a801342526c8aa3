import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { isFedmartError } from '@fedmart/shared/errors';
import { initWeights, parameterCount, seededRandom, type ModelSpec } from '@fedmart/shared/model';
import type { LocalTrainConfig } from '@fedmart/shared/strategy/types';
import { initBackend } from './backend.ts';
import { DEFAULT_LOCAL_TRAIN, DEFAULT_MODEL_HIDDEN } from './defaults.ts';
import { evaluate, predict, PREDICT_BATCH_ROWS, trainLocal } from './trainer.ts';

/** Two Gaussian blobs in d dims, label 1 iff the first two coordinates sum > 0 (with a margin). */
function separable(n: number, d: number, seed: number): { x: Float32Array; y: Float32Array; n: number } {
  const rand = seededRandom(seed);
  const x = new Float32Array(n * d);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    for (let j = 0; j < d; j++) x[i * d + j] = rand() * 2 - 1;
    const shift = label === 1 ? 0.6 : -0.6;
    x[i * d] += shift;
    x[i * d + 1] += shift;
    y[i] = label;
  }
  return { x, y, n };
}

const config = (over: Partial<LocalTrainConfig> = {}): LocalTrainConfig => ({ localEpochs: 10, batchSize: 32, learningRate: 0.01, proximalMu: 0, ...over });
const l2 = (a: Float32Array, b: Float32Array): number => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

beforeAll(async () => {
  await initBackend();
});

describe('trainLocal', () => {
  const spec: ModelSpec = { kind: 'mlp', inputDim: 4, hidden: [8] };
  const data = separable(400, 4, 3);

  it('reduces the loss on a separable problem and learns it', async () => {
    // Arrange
    const w0 = initWeights(spec, 1);
    const before = await evaluate(spec, w0, data.x, data.y, data.n);
    const epochLosses: number[] = [];
    // Act
    const res = await trainLocal({ spec, weights: w0, ...data, config: config(), seed: 5, onEpoch: (_e, loss) => epochLosses.push(loss) });
    const after = await evaluate(spec, res.weights, data.x, data.y, data.n);
    // Assert
    expect(epochLosses).toHaveLength(10);
    expect(res.loss).toBe(epochLosses[9]);
    expect(res.steps).toBe(10 * Math.ceil(400 / 32));
    expect(epochLosses[9]).toBeLessThan(epochLosses[0]);
    expect(after.loss).toBeLessThan(before.loss * 0.6);
    expect(after.auc).toBeGreaterThan(0.97);
    expect(after.accuracy).toBeGreaterThan(0.9);
    expect(after.numExamples).toBe(400);
  });

  it('learns with the shipped defaults', async () => {
    const dSpec: ModelSpec = { kind: 'mlp', inputDim: 4, hidden: [...DEFAULT_MODEL_HIDDEN] };
    const res = await trainLocal({ spec: dSpec, weights: initWeights(dSpec, 1), ...data, config: { ...DEFAULT_LOCAL_TRAIN, localEpochs: 20 }, seed: 1 });
    expect((await evaluate(dSpec, res.weights, data.x, data.y, data.n)).auc).toBeGreaterThan(0.95);
  });

  it('does not mutate the input weights', async () => {
    const w0 = initWeights(spec, 1);
    const copy = Float32Array.from(w0);
    await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 1 }), seed: 1 });
    expect(w0).toEqual(copy);
  });

  it('is deterministic given the seed', async () => {
    const w0 = initWeights(spec, 2);
    const a = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 2 }), seed: 9 });
    const b = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 2 }), seed: 9 });
    const c = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 2 }), seed: 10 });
    expect(a.weights).toEqual(b.weights);
    expect(a.loss).toBe(b.loss);
    expect(c.weights).not.toEqual(a.weights);
  });

  it('FedProx with a huge μ keeps the weights near the start', async () => {
    // Arrange
    const w0 = initWeights(spec, 4);
    // Act
    const free = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 5 }), seed: 1 });
    const held = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 5, proximalMu: 1e4 }), seed: 1 });
    const mild = await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 5, proximalMu: 0.1 }), seed: 1 });
    // Assert
    const dFree = l2(free.weights, w0);
    const dHeld = l2(held.weights, w0);
    expect(dFree).toBeGreaterThan(1);
    expect(dHeld).toBeLessThan(0.1 * dFree);
    expect(l2(mild.weights, w0)).toBeLessThan(dFree);
  });

  it('keeps the loss finite for huge logits (stable cross-entropy)', async () => {
    const lr: ModelSpec = { kind: 'mlp', inputDim: 4, hidden: [] };
    const w = new Float32Array([1e4, -1e4, 1e4, -1e4, 0]);
    const res = await trainLocal({ spec: lr, weights: w, ...data, config: config({ localEpochs: 1, learningRate: 1e-6 }), seed: 1 });
    expect(Number.isFinite(res.loss)).toBe(true);
    expect(res.loss).toBeGreaterThan(10); // confidently wrong on ~half the rows
    expect(res.weights.every(Number.isFinite)).toBe(true);
  });

  it('refuses to return diverged (non-finite) weights', async () => {
    const lr: ModelSpec = { kind: 'mlp', inputDim: 4, hidden: [] };
    const huge = Float32Array.from(data.x, (v) => v * 1e38);
    const err = await rejection(trainLocal({ spec: lr, weights: new Float32Array(5), x: huge, y: data.y, n: data.n, config: config({ localEpochs: 1, learningRate: 1e30 }), seed: 1, optimizer: 'sgd' }));
    expect(isFedmartError(err, 'INVALID_UPDATE')).toBe(true);
    expect((err as Error).message).toMatch(/diverged/);
  });

  it('leaks no tensors (train, predict, evaluate, and failures)', async () => {
    const w0 = initWeights(spec, 1);
    await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 1, proximalMu: 0.5 }), seed: 1 }); // warm-up
    const before = tf.memory().numTensors;
    await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 2, proximalMu: 0.5 }), seed: 1 });
    await trainLocal({ spec, weights: w0, ...data, config: config({ localEpochs: 1 }), seed: 1, optimizer: 'momentum' });
    await predict(spec, w0, data.x, data.n);
    await evaluate(spec, w0, data.x, data.y, data.n);
    await rejection(trainLocal({ spec, weights: new Float32Array(3), ...data, config: config(), seed: 1 }));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects wrong-sized weights with INVALID_UPDATE', async () => {
    const err = await rejection(trainLocal({ spec, weights: new Float32Array(parameterCount(spec) - 1), ...data, config: config(), seed: 1 }));
    expect(isFedmartError(err, 'INVALID_UPDATE')).toBe(true);
    const err2 = await rejection(predict(spec, new Float32Array(parameterCount(spec) + 1), data.x, data.n));
    expect(isFedmartError(err2, 'INVALID_UPDATE')).toBe(true);
  });

  it.each([
    ['zero epochs', { localEpochs: 0 }],
    ['fractional batch', { batchSize: 2.5 }],
    ['negative learning rate', { learningRate: -1 }],
    ['NaN μ', { proximalMu: Number.NaN }],
  ])('rejects a bad config (%s) with CONFIG_ERROR', async (_name, over) => {
    const err = await rejection(trainLocal({ spec, weights: initWeights(spec, 1), ...data, config: config(over), seed: 1 }));
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
  });

  it('rejects inconsistent data with DATA_ERROR', async () => {
    const w0 = initWeights(spec, 1);
    const short = await rejection(trainLocal({ spec, weights: w0, x: data.x.subarray(4), y: data.y, n: data.n, config: config(), seed: 1 }));
    expect(isFedmartError(short, 'DATA_ERROR')).toBe(true);
    const badLabel = Float32Array.from(data.y);
    badLabel[7] = 2;
    const label = await rejection(trainLocal({ spec, weights: w0, x: data.x, y: badLabel, n: data.n, config: config(), seed: 1 }));
    expect(isFedmartError(label, 'DATA_ERROR')).toBe(true);
    expect((label as Error).message).toMatch(/got 2 at row 7/);
  });
});

describe('evaluate', () => {
  it('rejects weights that give non-finite predictions with INVALID_UPDATE', async () => {
    const spec: ModelSpec = { kind: 'mlp', inputDim: 2, hidden: [] };
    const err = await rejection(evaluate(spec, new Float32Array([Number.NaN, 0, 0]), new Float32Array([1, 2]), new Float32Array([1]), 1));
    expect(isFedmartError(err, 'INVALID_UPDATE')).toBe(true);
  });
});

describe('predict', () => {
  it('matches a hand-computed logistic regression across several chunks', async () => {
    // Arrange: p = σ(0.5·x0 − 2·x1 + 0.25)
    const spec: ModelSpec = { kind: 'mlp', inputDim: 2, hidden: [] };
    const w = new Float32Array([0.5, -2, 0.25]);
    const n = PREDICT_BATCH_ROWS * 2 + 7;
    const rand = seededRandom(11);
    const x = Float32Array.from({ length: n * 2 }, () => rand() * 6 - 3);
    // Act
    const p = await predict(spec, w, x, n);
    // Assert
    expect(p).toHaveLength(n);
    for (const i of [0, 1, PREDICT_BATCH_ROWS - 1, PREDICT_BATCH_ROWS, n - 1]) {
      const z = 0.5 * x[2 * i] - 2 * x[2 * i + 1] + 0.25;
      expect(p[i]).toBeCloseTo(1 / (1 + Math.exp(-z)), 5);
    }
  });
});
