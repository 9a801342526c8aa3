import { describe, expect, it } from 'vitest';
import { FederationConfigSchema } from '../protocol.ts';
import { initWeights } from '../model.ts';
import { initJointWeights, jointParameterCount, tensorOffsets, TensorLayoutSpecSchema, type TensorLayoutSpec } from './layout.ts';

const layout: TensorLayoutSpec = {
  kind: 'tensors',
  tensors: [
    { name: 'item_emb', shape: [50, 8], init: { type: 'normal', std: 0.1 } },
    { name: 'dense', shape: [16, 4], init: { type: 'glorot' } },
    { name: 'bias', shape: [4], init: { type: 'constant', value: 0.5 } },
    { name: 'wide', shape: [10], init: { type: 'zeros' } },
  ],
};

describe('tensor layouts (the task seam)', () => {
  it('counts and places every tensor in order', () => {
    expect(jointParameterCount(layout)).toBe(400 + 64 + 4 + 10);
    const o = tensorOffsets(layout);
    expect(o.item_emb).toEqual({ offset: 0, length: 400, shape: [50, 8] });
    expect(o.dense!.offset).toBe(400);
    expect(o.bias!.offset).toBe(464);
    expect(o.wide!.offset).toBe(468);
  });

  it('initialises each tensor as declared, identically for the same seed', () => {
    const a = initJointWeights(layout, 7);
    const b = initJointWeights(layout, 7);
    const c = initJointWeights(layout, 8);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const emb = a.subarray(0, 400);
    const mean = emb.reduce((s, v) => s + v, 0) / 400;
    const sd = Math.sqrt(emb.reduce((s, v) => s + (v - mean) ** 2, 0) / 399);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(sd).toBeGreaterThan(0.08);
    expect(sd).toBeLessThan(0.12);
    const limit = Math.sqrt(6 / 20);
    expect(Math.max(...a.subarray(400, 464).map(Math.abs))).toBeLessThanOrEqual(limit);
    expect([...a.subarray(464, 468)]).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect([...a.subarray(468)].every((v) => v === 0)).toBe(true);
  });

  it('an MLP spec keeps its own initialisation', () => {
    const spec = { kind: 'mlp' as const, inputDim: 5, hidden: [3] };
    expect(initJointWeights(spec, 3, 0.2)).toEqual(initWeights(spec, 3, 0.2));
    expect(jointParameterCount(spec)).toBe(5 * 3 + 3 + 3 + 1);
  });

  it('refuses duplicate names and oversized layouts with the reason', () => {
    const dup = TensorLayoutSpecSchema.safeParse({ kind: 'tensors', tensors: [{ name: 'a', shape: [2] }, { name: 'a', shape: [3] }] });
    expect(dup.success).toBe(false);
    expect(dup.error!.issues[0]!.message).toMatch(/appears twice/);
    const big = TensorLayoutSpecSchema.safeParse({ kind: 'tensors', tensors: [{ name: 'a', shape: [1 << 20, 1 << 10] }] });
    expect(big.success).toBe(false);
    expect(big.error!.issues[0]!.message).toMatch(/more than/);
  });

  it('a federation pairs task binary with an MLP and a scenario task with a layout', () => {
    const localTrain = { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 };
    expect(FederationConfigSchema.safeParse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain }).success).toBe(true);
    expect(FederationConfigSchema.safeParse({ task: 'recommendation', model: layout, taskSpec: { k: 1 }, localTrain }).success).toBe(true);
    const wrong = FederationConfigSchema.safeParse({ model: layout, localTrain });
    expect(wrong.success).toBe(false);
    expect(wrong.error!.issues.map((i) => i.message).join(' ')).toMatch(/task 'binary' trains the tabular MLP/);
    const wrong2 = FederationConfigSchema.safeParse({ task: 'recommendation', model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain });
    expect(wrong2.success).toBe(false);
    const badId = FederationConfigSchema.safeParse({ task: 'Rec!', model: layout, localTrain });
    expect(badId.success).toBe(false);
  });
});
