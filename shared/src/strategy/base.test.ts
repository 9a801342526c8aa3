import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { assertFiniteAggregate, assertUpdates, findNonFinite, readOption, weightedMetricMeans } from './base.ts';
import { FedAvg } from './fedavg.ts';
import type { ClientUpdate } from './types.ts';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const update = (nodeId: string, numExamples: number, delta: number[]): ClientUpdate => ({ nodeId, numExamples, delta: f32(delta), metrics: {} });

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('findNonFinite', () => {
  it('finds the first NaN or ±Infinity', () => {
    expect(findNonFinite(f32([1, 2, 3]))).toBe(-1);
    expect(findNonFinite(f32([1, Number.NaN, Infinity]))).toBe(1);
    expect(findNonFinite(new Float64Array([0, 0, -Infinity]))).toBe(2);
    expect(findNonFinite(new Float64Array([Number.MAX_VALUE, -0]))).toBe(-1);
  });
});

describe('assertUpdates', () => {
  it('accepts well-formed updates, including an empty list', () => {
    expect(() => assertUpdates('t', f32([0, 0]), [update('a', 1, [1, 2]), update('b', 0, [3, 4])])).not.toThrow();
    expect(() => assertUpdates('t', f32([0]), [])).not.toThrow();
  });

  it('treats caller bugs as TypeError and client faults as INVALID_UPDATE', () => {
    expect(() => assertUpdates('t', [0] as unknown as Float32Array, [])).toThrow(TypeError);
    expect(() => assertUpdates('t', f32([0]), { length: 0 } as unknown as ClientUpdate[])).toThrow(TypeError);
    expect(() => assertUpdates('t', f32([0]), [{ ...update('a', 1, [0]), delta: new Float64Array(1) as unknown as Float32Array }])).toThrow(TypeError);
    expect(isFedmartError(thrown(() => assertUpdates('t', f32([0]), [update('a', 1, [0, 0])])), 'INVALID_UPDATE')).toBe(true);
  });

  it('scans for non-finite values only when asked', () => {
    const bad = [update('a', 1, [Number.NaN])];
    expect(() => assertUpdates('t', f32([0]), bad)).not.toThrow();
    expect(isFedmartError(thrown(() => assertUpdates('t', f32([0]), bad, { requireFinite: true })), 'INVALID_UPDATE')).toBe(true);
  });
});

describe('assertFiniteAggregate', () => {
  it('passes a finite aggregate and blames the first non-finite delta otherwise', () => {
    const results = [update('a', 1, [1]), update('b', 1, [-Infinity])];
    expect(() => assertFiniteAggregate('t', new Float64Array([1]), results)).not.toThrow();
    const err = thrown(() => assertFiniteAggregate('t', new Float64Array([Number.NaN]), results));
    expect(isFedmartError(err, 'INVALID_UPDATE')).toBe(true);
    expect((err as { details: unknown }).details).toEqual({ nodeId: 'b', index: 0 });
  });
});

describe('weightedMetricMeans', () => {
  it('weights by examples, averages each metric over its reporters, skips non-finite values and zero weights', () => {
    // loss: (1·2 + 3·4)/(1 + 3) = 3.5; acc only from a: 0.5; b's NaN auc is skipped ⇒ auc from c only (n=0 ⇒ dropped entirely).
    const out = weightedMetricMeans([
      { numExamples: 1, metrics: { loss: 2, acc: 0.5 } },
      { numExamples: 3, metrics: { loss: 4, auc: Number.NaN } },
      { numExamples: 0, metrics: { loss: 1000, auc: 0.9 } },
    ]);
    expect(out).toEqual({ loss: 3.5, acc: 0.5 });
  });

  it('returns {} for no clients', () => {
    expect(weightedMetricMeans([])).toEqual({});
  });
});

describe('readOption', () => {
  it('applies the default and enforces the range with CONFIG_ERROR', () => {
    expect(readOption('t', undefined, 'tau', 0.5, { min: 0 })).toBe(0.5);
    expect(readOption('t', { tau: 2 }, 'tau', 0.5, { min: 0 })).toBe(2);
    const err = thrown(() => readOption('t', { krumF: 1.5 }, 'krumF', 1, { min: 0, integer: true }));
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    expect((err as Error).message).toMatch(/krumF must be an integer in \[0, ∞\), got 1.5/);
    expect(isFedmartError(thrown(() => readOption('t', { tau: '1' as unknown as number }, 'tau', 1, {})), 'CONFIG_ERROR')).toBe(true);
  });
});

describe('BaseStrategy defaults (via FedAvg)', () => {
  it('copies the base local config, evaluates every round, and sums numExamples in evaluation', () => {
    const s = new FedAvg();
    const base = { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 };
    const cfg = s.configureTrain({ round: 1, global: f32([0]), clients: [] }, base);
    expect(cfg).toEqual(base);
    expect(cfg).not.toBe(base);
    expect(s.configureEvaluate({ round: 1, global: f32([0]), clients: [] })).toEqual({ evaluate: true });
    // auc: (0.6·10 + 0.8·30)/40 = 0.75; a client's own "numExamples" metric is overridden by the total.
    const ev = s.aggregateEvaluate(1, [
      { nodeId: 'a', numExamples: 10, metrics: { auc: 0.6, numExamples: 1 } },
      { nodeId: 'b', numExamples: 30, metrics: { auc: 0.8 } },
    ], [{ nodeId: 'c', code: 'TIMEOUT', reason: 'late' }]);
    expect(ev.auc).toBeCloseTo(0.75, 12);
    expect(ev.numExamples).toBe(40);
    expect(s.aggregateEvaluate(1, [], [])).toEqual({ numExamples: 0 });
  });
});
