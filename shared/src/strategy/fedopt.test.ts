import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { FEDOPT_DEFAULTS, FedAdam, FedYogi } from './fedopt.ts';
import type { ClientUpdate } from './types.ts';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const update = (nodeId: string, numExamples: number, delta: number[], metrics: Record<string, number> = {}): ClientUpdate => ({ nodeId, numExamples, delta: f32(delta), metrics });

// Hyper-parameters chosen so every step is exact in binary: η = 1, β1 = β2 = 0.5, τ = 1 (v₋₁ = τ² = 1).
const EXACT = { serverLearningRate: 1, beta1: 0.5, beta2: 0.5, tau: 1 };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('FedAdam', () => {
  it('follows a hand-computed two-round sequence (Reddi et al. 2021, Algorithm 2)', () => {
    // Arrange
    const s = new FedAdam(EXACT);
    const x0 = f32([10, 0]);
    // Round 1: one client, Δ = [1, −1].
    //   m = 0.5·0 + 0.5·Δ        = [0.5, −0.5]
    //   v = 0.5·1 + 0.5·Δ²       = [1, 1]
    //   x = x0 + 1·m/(√v + 1)    = [10 + 0.5/2, 0 − 0.5/2] = [10.25, −0.25]
    const r1 = s.aggregateTrain(1, x0, [update('a', 5, [1, -1])], []);
    expect(Array.from(r1.weights!)).toEqual([10.25, -0.25]);
    // Round 2: A Δ=[8, −8] n=3, B Δ=[4, −4] n=1 ⇒ pseudo-gradient (24 + 4)/4 = [7, −7].
    //   m = 0.5·[0.5, −0.5] + 0.5·[7, −7] = [3.75, −3.75]
    //   v = 0.5·1 + 0.5·49               = [25, 25]
    //   x = [10.25, −0.25] + m/(5 + 1)    = [10.25 + 0.625, −0.25 − 0.625] = [10.875, −0.875]
    const r2 = s.aggregateTrain(2, r1.weights!, [update('a', 3, [8, -8]), update('b', 1, [4, -4])], []);
    expect(Array.from(r2.weights!)).toEqual([10.875, -0.875]);
    const st = s.getState();
    expect(st.steps).toBe(2);
    expect(Array.from(st.m!)).toEqual([3.75, -3.75]);
    expect(Array.from(st.v!)).toEqual([25, 25]);
  });

  it('takes the hand-computed first step with the paper defaults (η=0.01, β1=0.9, β2=0.99, τ=1e-3)', () => {
    // Δ = fround(0.1) ≈ 0.1: m = 0.1·Δ = 0.01; v = 0.99·τ² + 0.01·Δ² = 9.9e-7 + 1e-4 = 1.0099e-4;
    // √v ≈ 0.0100494; step = 0.01·0.01/(0.0100494 + 0.001) = 1e-4/0.0110494 ≈ 0.0090503.
    const s = new FedAdam();
    expect(s.serverLearningRate).toBe(FEDOPT_DEFAULTS.serverLearningRate);
    const { weights } = s.aggregateTrain(1, f32([0]), [update('a', 1, [0.1])], []);
    expect(weights![0]).toBeCloseTo(0.0090503, 6);
  });

  it('starts v at τ², so a zero pseudo-gradient changes nothing but decays v towards 0', () => {
    // Δ = 0: m = 0, v = 0.5·1 = 0.5, x unchanged.
    const s = new FedAdam(EXACT);
    const { weights } = s.aggregateTrain(1, f32([3]), [update('a', 1, [0])], []);
    expect(Array.from(weights!)).toEqual([3]);
    expect(Array.from(s.getState().v!)).toEqual([0.5]);
  });
});

describe('FedYogi', () => {
  it('follows a hand-computed two-round sequence, including sign(0) = 0 and a shrinking v', () => {
    // Arrange
    const s = new FedYogi(EXACT);
    const x0 = f32([0, 0]);
    // Round 1: Δ = [1, 0].
    //   coord 0: Δ² = 1 = v ⇒ sign(0) = 0 ⇒ v = 1; m = 0.5; x = 0.5/(1 + 1) = 0.25
    //   coord 1: Δ² = 0 ⇒ v = 1 − 0.5·0·(+1) = 1; m = 0; x = 0
    const r1 = s.aggregateTrain(1, x0, [update('a', 1, [1, 0])], []);
    expect(Array.from(r1.weights!)).toEqual([0.25, 0]);
    // Round 2: A Δ=[5, 0.5], B Δ=[3, 0.5], n=1 each ⇒ pseudo-gradient [4, 0.5].
    //   coord 0: Δ² = 16 > v = 1 ⇒ v = 1 + 0.5·16 = 9; m = 0.25 + 2 = 2.25; x = 0.25 + 2.25/(3 + 1) = 0.8125
    //   coord 1: Δ² = 0.25 < v = 1 ⇒ v = 1 − 0.5·0.25 = 0.875 (Adam would give 0.625);
    //            m = 0 + 0.25 = 0.25; x = 0 + 0.25/(√0.875 + 1) = 0.25/1.9354143… = 0.1291713…
    const r2 = s.aggregateTrain(2, r1.weights!, [update('a', 1, [5, 0.5]), update('b', 1, [3, 0.5])], []);
    expect(r2.weights![0]).toBe(0.8125);
    expect(r2.weights![1]).toBeCloseTo(0.1291713, 6);
    expect(Array.from(s.getState().v!)).toEqual([9, 0.875]);
  });

  it('takes the hand-computed first step with the paper defaults', () => {
    // Δ = 0.1: Δ² = 0.01 > τ² = 1e-6 ⇒ v = 1e-6 + 0.01·0.01 = 1.01e-4; m = 0.01;
    // step = 1e-4/(√1.01e-4 + 1e-3) = 1e-4/0.0110499 ≈ 0.0090499.
    const { weights } = new FedYogi().aggregateTrain(1, f32([0]), [update('a', 1, [0.1])], []);
    expect(weights![0]).toBeCloseTo(0.0090499, 6);
  });
});

describe('FedOpt state', () => {
  it('persists across rounds through getState/setState (a restarted coordinator continues identically)', () => {
    // Arrange: run two rounds in one instance; run round 1 in another, move its state to a third.
    const rounds = [
      [update('a', 2, [0.3, -0.2, 0.05]), update('b', 1, [0.1, 0.4, -0.5])],
      [update('a', 1, [-0.1, 0.2, 0.3]), update('b', 3, [0.2, 0.1, 0.0])],
    ];
    const x0 = f32([1, 2, 3]);
    for (const Ctor of [FedAdam, FedYogi]) {
      const straight = new Ctor();
      const s1 = straight.aggregateTrain(1, x0, rounds[0]!, []).weights!;
      const s2 = straight.aggregateTrain(2, s1, rounds[1]!, []).weights!;
      const first = new Ctor();
      const f1 = first.aggregateTrain(1, x0, rounds[0]!, []).weights!;
      const snapshot = first.getState();
      first.aggregateTrain(2, f1, rounds[1]!, []); // later rounds must not leak into the snapshot
      // Act
      const resumed = new Ctor();
      resumed.setState(snapshot);
      const r2 = resumed.aggregateTrain(2, f1, rounds[1]!, []).weights!;
      // Assert
      expect(Array.from(r2)).toEqual(Array.from(s2));
      expect(resumed.getState().steps).toBe(2);
    }
  });

  it('leaves state untouched when a round has no results or only zero-example clients', () => {
    const s = new FedAdam(EXACT);
    s.aggregateTrain(1, f32([0]), [update('a', 1, [1])], []);
    const before = s.getState();
    expect(s.aggregateTrain(2, f32([0.25]), [], []).weights).toBeNull();
    expect(s.aggregateTrain(2, f32([0.25]), [update('a', 0, [9])], []).weights).toBeNull();
    expect(s.getState()).toEqual(before);
  });

  it('resets with setState({ steps: 0, m: null, v: null })', () => {
    const s = new FedAdam(EXACT);
    s.aggregateTrain(1, f32([0]), [update('a', 1, [1])], []);
    s.setState({ steps: 0, m: null, v: null });
    expect(Array.from(s.aggregateTrain(1, f32([0]), [update('a', 1, [1])], []).weights!)).toEqual([0.25]);
  });

  it('rejects inconsistent stored state', () => {
    const s = new FedYogi();
    const ok = new Float64Array(2);
    expect(isFedmartError(thrown(() => s.setState({ steps: 1, m: ok, v: null })), 'DATA_ERROR')).toBe(true);
    expect(isFedmartError(thrown(() => s.setState({ steps: 1, m: ok, v: new Float64Array(3) })), 'DATA_ERROR')).toBe(true);
    expect(isFedmartError(thrown(() => s.setState({ steps: 1, m: ok, v: new Float64Array([1, -1]) })), 'DATA_ERROR')).toBe(true);
    expect(isFedmartError(thrown(() => s.setState({ steps: 1, m: new Float64Array([Number.NaN, 0]), v: ok })), 'DATA_ERROR')).toBe(true);
    expect(() => s.setState({ steps: -1, m: null, v: null })).toThrow(TypeError);
    expect(() => s.setState({ steps: 1, m: [0, 0] as unknown as Float64Array, v: ok })).toThrow(TypeError);
    expect(() => s.setState(null as unknown as never)).toThrow(TypeError);
  });

  it('refuses a model whose size differs from the stored moments with CONFIG_ERROR', () => {
    const s = new FedAdam();
    s.aggregateTrain(1, f32([0, 0]), [update('a', 1, [1, 1])], []);
    const err = thrown(() => s.aggregateTrain(2, f32([0, 0, 0]), [update('a', 1, [1, 1, 1])], []));
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
  });
});

describe('FedOpt options', () => {
  it('rejects out-of-range hyper-parameters with CONFIG_ERROR', () => {
    for (const bad of [{ serverLearningRate: 0 }, { beta1: 1 }, { beta2: -0.1 }, { tau: 0 }, { tau: Number.NaN }]) {
      expect(isFedmartError(thrown(() => new FedAdam(bad)), 'CONFIG_ERROR')).toBe(true);
      expect(isFedmartError(thrown(() => new FedYogi(bad)), 'CONFIG_ERROR')).toBe(true);
    }
  });

  it('summarises its parameters', () => {
    expect(new FedAdam().summary()).toContain('FedAdam(η=0.01, β1=0.9, β2=0.99, τ=0.001)');
    expect(new FedYogi({ tau: 0.01 }).summary()).toContain('FedYogi(η=0.01, β1=0.9, β2=0.99, τ=0.01)');
  });

  it('reports example-weighted training metrics', () => {
    const res = new FedYogi().aggregateTrain(1, f32([0]), [update('a', 1, [0], { loss: 2 }), update('b', 3, [0], { loss: 4 })], []);
    expect(res.metrics).toEqual({ loss: 3.5 });
  });
});
