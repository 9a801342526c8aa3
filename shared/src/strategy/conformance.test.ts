/**
 * One conformance suite, run against every registered strategy (the shape of
 * drizzle's per-driver `tests()`): the contract of {@link Strategy} that the
 * orchestrator relies on, whatever the aggregation rule.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { createStrategy, listStrategies } from './registry.ts';
import type { ClientUpdate, LocalTrainConfig, RoundContext, StrategyId, StrategyOptions } from './types.ts';

/** How each strategy is expected to behave on identical updates. */
interface Case {
  opts: StrategyOptions;
  /** Identical deltas Δ from every client ⇒ exactly global + Δ. Server optimizers instead step in Δ's direction. */
  kind: 'averaging' | 'server-optimizer';
  /**
   * The rule written out independently of the implementation, straight from
   * its paper: the expected new weight at coordinate i of `global` (first
   * round, fresh strategy). `deltas[k]`, `n[k]` per client.
   */
  expected: (global: Float32Array, deltas: readonly Float32Array[], n: readonly number[], i: number) => number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const column = (deltas: readonly Float32Array[], i: number): number[] => deltas.map((d) => d[i]!);
const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
/** FedAvg (McMahan et al. 2017): Σ n_k·Δ_k[i] / Σ n_k. */
const weightedMean = (deltas: readonly Float32Array[], n: readonly number[], i: number): number => deltas.reduce((s, d, k) => s + n[k]! * d[i]!, 0) / n.reduce((a, b) => a + b, 0);
/** Median (Yin et al. 2018), unweighted, numpy convention for even counts. */
const median = (xs: number[]): number => {
  const s = sorted(xs);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
/** Reddi et al. 2021, Algorithm 2, first step from m = 0, v = τ², defaults η = 0.01, β1 = 0.9, β2 = 0.99, τ = 1e-3. */
const fedOptFirstStep = (yogi: boolean) => (global: Float32Array, deltas: readonly Float32Array[], n: readonly number[], i: number): number => {
  const [eta, b1, b2, tau] = [0.01, 0.9, 0.99, 1e-3];
  const d = weightedMean(deltas, n, i);
  const m = (1 - b1) * d;
  const v0 = tau * tau;
  const v = yogi ? v0 - (1 - b2) * d * d * Math.sign(v0 - d * d) : b2 * v0 + (1 - b2) * d * d;
  return global[i]! + (eta * m) / (Math.sqrt(v) + tau);
};
/** Multi-Krum (Blanchard et al. 2017) by brute force: score = Σ of the K − f − 2 smallest squared distances; mean of the m lowest. */
const multiKrum = (f: number, m: number) => (global: Float32Array, deltas: readonly Float32Array[], _n: readonly number[], i: number): number => {
  const dist2 = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, j) => s + (x - b[j]!) ** 2, 0);
  const scores = deltas.map((a, ka) => sorted(deltas.filter((_, kb) => kb !== ka).map((b) => dist2(a, b))).slice(0, deltas.length - f - 2).reduce((x, y) => x + y, 0));
  const chosen = scores.map((sc, k) => [sc, k] as const).sort((x, y) => x[0] - y[0]).slice(0, m).map(([, k]) => k);
  return global[i]! + mean(chosen.map((k) => deltas[k]![i]!));
};

const CASES: Record<StrategyId, Case> = {
  fedavg: { opts: {}, kind: 'averaging', expected: (g, d, n, i) => g[i]! + weightedMean(d, n, i) },
  fedprox: { opts: { proximalMu: 0.1 }, kind: 'averaging', expected: (g, d, n, i) => g[i]! + weightedMean(d, n, i) },
  fedadam: { opts: {}, kind: 'server-optimizer', expected: fedOptFirstStep(false) },
  fedyogi: { opts: {}, kind: 'server-optimizer', expected: fedOptFirstStep(true) },
  median: { opts: {}, kind: 'averaging', expected: (g, d, _n, i) => g[i]! + median(column(d, i)) },
  // β = 0.2 of 5 clients: ⌊0.2·5⌋ = 1 value cut from each end (Yin et al. 2018).
  'trimmed-mean': { opts: { trimBeta: 0.2 }, kind: 'averaging', expected: (g, d, _n, i) => g[i]! + mean(sorted(column(d, i)).slice(1, -1)) },
  krum: { opts: { krumF: 1, krumM: 2 }, kind: 'averaging', expected: multiKrum(1, 2) },
};

/** Five clients: enough for every rule (Krum with f = 1 needs n ≥ 5). */
const N_CLIENTS = 5;

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const ctx: RoundContext = { round: 1, global: f32([0]), clients: ['n0', 'n1'] };
const baseConfig: LocalTrainConfig = { localEpochs: 1, batchSize: 16, learningRate: 0.1, proximalMu: 0 };

function updates(deltas: Float32Array[], metrics: (k: number) => Record<string, number> = () => ({})): ClientUpdate[] {
  return deltas.map((delta, k) => ({ nodeId: `n${k}`, numExamples: 10 * (k + 1), delta, metrics: metrics(k) }));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

it('covers every registered strategy', () => {
  expect(Object.keys(CASES).sort()).toEqual(listStrategies().map((s) => s.id).sort());
});

describe.each(listStrategies().map((s) => [s.id, CASES[s.id]] as const))('%s conforms to Strategy', (id, c) => {
  const make = () => createStrategy(id, c.opts);

  it('reports its id, a summary and whether it needs individual updates', () => {
    const s = make();
    expect(s.id).toBe(id);
    expect(typeof s.summary()).toBe('string');
    expect(s.summary().length).toBeGreaterThan(10);
    expect(typeof s.needsIndividualUpdates).toBe('boolean');
  });

  it('identical updates move the model by exactly that delta (averaging) or in its direction (server optimizer)', () => {
    // Arrange
    const global = f32([1, -2, 0.5, 0]);
    const delta = f32([0.25, 0.5, -0.125, 0]);
    const s = make();
    // Act
    const { weights } = s.aggregateTrain(1, global, updates(Array.from({ length: N_CLIENTS }, () => delta.slice())), []);
    // Assert
    expect(weights).toBeInstanceOf(Float32Array);
    if (c.kind === 'averaging') {
      expect(Array.from(weights!)).toEqual([1.25, -1.5, 0.375, 0]);
    } else {
      for (let i = 0; i < global.length; i++) expect(Math.sign(weights![i]! - global[i]!)).toBe(Math.sign(delta[i]!));
    }
  });

  it('distinct updates with an outlier move the model exactly as the rule defines (independent reference)', () => {
    // Arrange: four close honest deltas and one far outlier; examples 10, 20, 30, 40, 50.
    const global = f32([1, -2, 0.5]);
    const deltas = [f32([0.1, -0.2, 0.3]), f32([0.2, -0.1, 0.1]), f32([0.15, -0.15, 0.2]), f32([0.12, -0.18, 0.25]), f32([5, 5, -5])];
    const list = updates(deltas);
    // Act
    const { weights } = make().aggregateTrain(1, global, list, []);
    // Assert: to float32 precision, every coordinate moved to where the rule puts it …
    for (let i = 0; i < global.length; i++) expect(weights![i]).toBeCloseTo(c.expected(global, deltas, list.map((u) => u.numExamples), i), 6);
    // … and it did move: no rule leaves the model where it was.
    expect(Array.from(weights!)).not.toEqual(Array.from(global));
  });

  it('preserves the length and returns a fresh array; global and deltas are not mutated', () => {
    const global = f32([1, 2, 3, 4, 5, 6, 7]);
    const deltas = Array.from({ length: N_CLIENTS }, (_, k) => f32([k, -k, 0.5 * k, 1, 2, 3, k * k]));
    const before = { g: global.slice(), d: deltas.map((d) => d.slice()) };
    const { weights } = make().aggregateTrain(1, global, updates(deltas), []);
    expect(weights!.length).toBe(global.length);
    expect(weights).not.toBe(global);
    for (const d of deltas) expect(weights).not.toBe(d);
    expect(global).toEqual(before.g);
    deltas.forEach((d, k) => expect(d).toEqual(before.d[k]));
  });

  it('keeps the previous model when no client succeeded', () => {
    const res = make().aggregateTrain(2, f32([1, 2]), [], [{ nodeId: 'n0', code: 'TIMEOUT', reason: 'no update within 120 s' }]);
    expect(res).toEqual({ weights: null, metrics: {} });
  });

  it('rejects a delta of the wrong length with INVALID_UPDATE', () => {
    const deltas = Array.from({ length: N_CLIENTS }, () => f32([1, 1, 1]));
    deltas[3] = f32([1, 1]);
    expect(isFedmartError(thrown(() => make().aggregateTrain(1, f32([0, 0, 0]), updates(deltas), [])), 'INVALID_UPDATE')).toBe(true);
  });

  it('rejects a non-finite delta with INVALID_UPDATE', () => {
    const deltas = Array.from({ length: N_CLIENTS }, () => f32([1, 1, 1]));
    deltas[2] = f32([1, Number.NaN, 1]);
    expect(isFedmartError(thrown(() => make().aggregateTrain(1, f32([0, 0, 0]), updates(deltas), [])), 'INVALID_UPDATE')).toBe(true);
  });

  it('is deterministic: fresh instances give bit-identical results on the same input', () => {
    const global = f32([0.1, 0.2, 0.3]);
    const deltas = Array.from({ length: N_CLIENTS }, (_, k) => f32([Math.sin(k), Math.cos(k), k / 7]));
    const a = make().aggregateTrain(1, global, updates(deltas), []).weights!;
    const b = make().aggregateTrain(1, global, updates(deltas), []).weights!;
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('property: the result does not depend on the order updates arrived in (up to float rounding)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float32Array({ minLength: 3, maxLength: 3, noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }), { minLength: N_CLIENTS, maxLength: N_CLIENTS + 3 }),
        (deltas) => {
          const global = f32([0, 1, -1]);
          const list = updates(deltas);
          const a = make().aggregateTrain(1, global, list, []).weights!;
          const b = make().aggregateTrain(1, global, [...list].reverse(), []).weights!;
          for (let i = 0; i < 3; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('reports example-weighted training metrics and ignores failures', () => {
    // loss_k = k with weights 10, 20, 30, 40, 50 ⇒ Σ 10(k+1)·k / 150 = (0 + 20 + 60 + 120 + 200)/150 = 8/3
    const deltas = Array.from({ length: N_CLIENTS }, () => f32([0]));
    const res = make().aggregateTrain(1, f32([0]), updates(deltas, (k) => ({ loss: k })), [{ nodeId: 'x', code: 'CRASH', reason: 'oom' }]);
    expect(res.metrics.loss).toBeCloseTo(8 / 3, 12);
  });

  it('configures training without mutating the base config, and evaluation every round', () => {
    const s = make();
    const base = { ...baseConfig };
    const cfg = s.configureTrain(ctx, base);
    expect(base).toEqual(baseConfig);
    expect(cfg.localEpochs).toBe(baseConfig.localEpochs);
    expect(cfg.proximalMu).toBe(id === 'fedprox' ? 0.1 : 0);
    expect(s.configureEvaluate(ctx)).toEqual({ evaluate: true });
  });

  it('aggregates evaluation as example-weighted means plus numExamples', () => {
    // auc: (0.5·100 + 0.9·300)/400 = 0.8
    const ev = make().aggregateEvaluate(1, [
      { nodeId: 'a', numExamples: 100, metrics: { auc: 0.5 } },
      { nodeId: 'b', numExamples: 300, metrics: { auc: 0.9 } },
    ], []);
    expect(ev.numExamples).toBe(400);
    expect(ev.auc).toBeCloseTo(0.8, 12);
  });

  it('handles 1,000,000-parameter deltas from 5 clients, and gets them right', () => {
    // Arrange
    const D = 1_000_000;
    const deltas = Array.from({ length: N_CLIENTS }, (_, k) => {
      const d = new Float32Array(D);
      for (let i = 0; i < D; i++) d[i] = ((i * 31 + k * 17) % 257) / 256 - 0.5;
      return d;
    });
    const global = new Float32Array(D).fill(0.5);
    const list = updates(deltas);
    // Act
    const { weights } = make().aggregateTrain(1, global, list, []);
    // Assert: the reference at a spread of coordinates (speed lives in `fedmart bench aggregate`).
    expect(weights!.length).toBe(D);
    const n = list.map((u) => u.numExamples);
    for (const i of [0, 1, 256, 65_537, D / 2, D - 2, D - 1]) expect(weights![i]).toBeCloseTo(c.expected(global, deltas, n, i), 6);
  });
});
