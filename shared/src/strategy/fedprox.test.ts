import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { FedAvg } from './fedavg.ts';
import { DEFAULT_PROXIMAL_MU, FedProx } from './fedprox.ts';
import type { ClientUpdate, LocalTrainConfig, RoundContext } from './types.ts';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const update = (nodeId: string, numExamples: number, delta: number[]): ClientUpdate => ({ nodeId, numExamples, delta: f32(delta), metrics: {} });
const ctx: RoundContext = { round: 1, global: f32([0]), clients: ['a', 'b'] };
const base: LocalTrainConfig = { localEpochs: 2, batchSize: 32, learningRate: 0.05, proximalMu: 0 };

describe('FedProx', () => {
  it('tells every client μ = 0.01 by default, keeping the rest of the local config', () => {
    // Arrange
    const s = new FedProx();
    // Act
    const cfg = s.configureTrain(ctx, base);
    // Assert
    expect(DEFAULT_PROXIMAL_MU).toBe(0.01);
    expect(cfg).toEqual({ localEpochs: 2, batchSize: 32, learningRate: 0.05, proximalMu: 0.01 });
    expect(base.proximalMu).toBe(0); // the federation default is not mutated
  });

  it('uses the configured μ, overriding the base config, including μ = 0', () => {
    expect(new FedProx({ proximalMu: 0.5 }).configureTrain(ctx, { ...base, proximalMu: 1 }).proximalMu).toBe(0.5);
    expect(new FedProx({ proximalMu: 0 }).configureTrain(ctx, { ...base, proximalMu: 1 }).proximalMu).toBe(0);
  });

  it('aggregates exactly like FedAvg (hand-computed)', () => {
    // global [2]; Δ = 4 (n=1), Δ = 0 (n=3) ⇒ mean 1 ⇒ [3].
    const results = [update('a', 1, [4]), update('b', 3, [0])];
    const prox = new FedProx().aggregateTrain(1, f32([2]), results, []);
    const avg = new FedAvg().aggregateTrain(1, f32([2]), results, []);
    expect(Array.from(prox.weights!)).toEqual([3]);
    expect(prox).toEqual(avg);
  });

  it('rejects a negative or non-finite μ with CONFIG_ERROR', () => {
    for (const proximalMu of [-0.1, Number.NaN, Infinity]) {
      let err: unknown;
      try {
        new FedProx({ proximalMu });
      } catch (e) {
        err = e;
      }
      expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    }
  });

  it('has its own id and a summary naming μ', () => {
    const s = new FedProx({ proximalMu: 0.1 });
    expect(s.id).toBe('fedprox');
    expect(s.needsIndividualUpdates).toBe(false);
    expect(s.summary()).toContain('μ=0.1');
  });
});
