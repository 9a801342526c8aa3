/**
 * DpStrategy (server half of DP-FedAvg): updates are clipped to C, the
 * central noise on the sum has std σ·C (chi-square test on the real
 * wrapper), distributed mode refuses too few partners, adaptive clipping
 * moves C toward the target quantile, and record level leaves aggregation
 * to the inner strategy.
 */
import { describe, expect, it } from 'vitest';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import { createSeededRandomSource } from '@fedmart/shared/dp/gaussian';
import { l2Norm } from '@fedmart/shared/dp/clip';
import { isFedmartError } from '@fedmart/shared/errors';
import type { ClientUpdate } from '@fedmart/shared/strategy/types';
import type { DpConfig } from '@fedmart/shared/protocol';
import { DpStrategy } from './privacy.ts';

const P = 5000;
const rng = (b: number) => createSeededRandomSource(new Uint8Array(32).fill(b));
const update = (nodeId: string, fill: (i: number) => number, numExamples = 100, metrics: Record<string, number> = {}): ClientUpdate => ({ nodeId, numExamples, delta: Float32Array.from({ length: P }, (_, i) => fill(i)), metrics });
const partner = (extra: Partial<DpConfig> = {}): DpConfig => ({ level: 'partner', noiseMultiplier: 1.5, clip: 0.5, delta: 1e-5, ...extra });

describe('DpStrategy, partner level (DP-FedAvg)', () => {
  it('adds central noise of std σ·C to the sum: the mean of 4 zero updates has std σC/4', () => {
    // Arrange
    const s = new DpStrategy(createStrategy('fedavg'), partner(), 2, undefined, rng(1));
    const global = new Float32Array(P);
    const zeros = ['a', 'b', 'c', 'd'].map((id) => update(id, () => 0));
    // Act
    const out = s.aggregateTrain(1, global, zeros, []);
    // Assert: Σ w² / (σC/4)² ~ χ²_P
    let ss = 0;
    for (const w of out.weights!) ss += w * w;
    const chi = ss / ((1.5 * 0.5) / 4) ** 2;
    expect(Math.abs(chi - P)).toBeLessThan(5 * Math.sqrt(2 * P));
    expect(out.metrics.dp_clip).toBe(0.5);
  });

  it('clips every update to C, so one partner moves the mean by at most C/n (plus noise)', () => {
    const s = new DpStrategy(createStrategy('fedavg'), partner({ noiseMultiplier: 1e-9 }), 1, undefined, rng(2));
    const huge = [update('a', (i) => Math.cos(i) * 100), update('b', () => 0)];
    const out = s.aggregateTrain(1, new Float32Array(P), huge, []);
    expect(l2Norm(out.weights!)).toBeLessThanOrEqual(0.5 / 2 + 1e-6);
    expect(l2Norm(out.weights!)).toBeGreaterThan(0.24); // it was clipped, not dropped
  });

  it('distributed mode: partners noise their own updates inside a secure sum; fewer than minClients, or plaintext updates, are refused', () => {
    const s = new DpStrategy(createStrategy('fedavg'), partner({ mode: 'distributed' }), 3, undefined, rng(3));
    expect(s.trainDp()).toMatchObject({ level: 'partner', clip: 0.5, noiseStd: (1.5 * 0.5) / Math.sqrt(3) });
    const mean = new Float64Array(P);
    const info = (clients: number) => ({ totalWeight: clients, clients, metrics: {} });
    const refused = (f: () => unknown, code: string) => {
      try {
        f();
      } catch (e) {
        return isFedmartError(e, code as never);
      }
      return false;
    };
    expect(refused(() => s.aggregateMean!(1, new Float32Array(P), mean, info(2)), 'ROUND_FAILED')).toBe(true);
    expect(refused(() => s.aggregateTrain(1, new Float32Array(P), [update('a', () => 0), update('b', () => 0), update('c', () => 0)], []), 'CONFIG_ERROR')).toBe(true);
    // no server noise is added on top: a zero secure mean stays exactly zero
    const out = s.aggregateMean!(1, new Float32Array(P), mean, info(3));
    expect(l2Norm(out.weights!)).toBe(0);
  });

  it('distributed adaptive clipping moves C from the secure sum\'s noised centred count only', () => {
    const adaptive = { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 1 };
    const s = new DpStrategy(createStrategy('fedavg'), partner({ mode: 'distributed', adaptiveClip: adaptive }), 3, undefined, rng(6));
    expect(s.securedExtraCoordinates).toBe(1);
    const info = { totalWeight: 3, clients: 3, metrics: {} };
    expect(() => s.aggregateMean!(1, new Float32Array(P), new Float64Array(P), info)).toThrow(/carried no clip count/);
    // Σ(b_i − ½) = +1.5: all three unclipped, b̃ = 1 → C shrinks by exp(−η(1 − γ))
    s.aggregateMean!(1, new Float32Array(P), new Float64Array(P), { ...info, noisedClipCount: 1.5 });
    expect(s.clip).toBeCloseTo(0.5 * Math.exp(-0.2 * 0.5), 12);
  });

  it('adaptive clipping shrinks C when every update is inside the ball and grows it when none is', () => {
    const adaptive = { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 0.0001 };
    const small = new DpStrategy(createStrategy('fedavg'), partner({ adaptiveClip: adaptive, noiseMultiplier: 1e-4 }), 2, undefined, rng(4));
    small.aggregateTrain(1, new Float32Array(P), [update('a', () => 1e-6), update('b', () => 1e-6)], []);
    expect(small.clip).toBeCloseTo(0.5 * Math.exp(-0.2 * 0.5), 3);
    const big = new DpStrategy(createStrategy('fedavg'), partner({ adaptiveClip: adaptive, noiseMultiplier: 1e-4 }), 2, undefined, rng(5));
    const out = big.aggregateTrain(1, new Float32Array(P), [update('a', () => 1), update('b', () => 1)], []);
    expect(big.clip).toBeCloseTo(0.5 * Math.exp(0.2 * 0.5), 3);
    expect(out.metrics.dp_next_clip).toBe(big.clip);
    expect(big.trainDp().clip).toBe(big.clip);
  });
});

describe('DpStrategy, record level', () => {
  it('sends the DP-SGD settings and leaves aggregation to the inner strategy', () => {
    const s = new DpStrategy(createStrategy('fedavg'), { level: 'record', noiseMultiplier: 0.9, clip: 1, delta: 1e-5, sampleRate: 0.05 }, 2);
    const cfg = s.configureTrain({ round: 1, global: new Float32Array(P), clients: [] }, { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 }) as unknown as { dp: unknown };
    expect(cfg.dp).toEqual({ level: 'record', clip: 1, noiseMultiplier: 0.9, delta: 1e-5, sampleRate: 0.05 });
    const out = s.aggregateTrain(1, new Float32Array(P), [update('a', () => 1, 1), update('b', () => 3, 3)], []);
    expect(out.weights![0]).toBeCloseTo(2.5, 6); // example-weighted FedAvg, untouched
  });
});
