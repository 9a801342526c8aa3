import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import vectors from '../../../test/vectors/dp/rdp-reference.json' with { type: 'json' };
import { FedmartError } from '../errors.ts';
import { DEFAULT_RDP_ORDERS, RdpAccountant, computeEpsilon, computeRdp, computeSigma, rdpToEpsilon } from './rdp.ts';

const REL = vectors.tolerance.relative; // 1%

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const GRIDS: Record<string, readonly number[]> = {
  opacus: [...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10), ...range(12, 63)],
  tf: [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...range(5, 63), 128, 256, 512],
  '2..32': range(2, 32),
  default: DEFAULT_RDP_ORDERS,
};
const grid = (name: string): readonly number[] => {
  const g = GRIDS[name];
  if (g === undefined) throw new Error(`unknown grid ${name}`);
  return g;
};
const expectRel = (actual: number, expected: number, rel = REL): void => {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected));
};

describe('computeRdp — known answers', () => {
  for (const v of vectors.rdp) {
    it(`q=${v.q} sigma=${v.sigma} steps=${v.steps} (${v.source.split(',')[1]?.trim() ?? v.source})`, () => {
      // Act
      const rdp = computeRdp(v.q, v.sigma, v.steps, v.orders);
      // Assert
      v.expected.forEach((e, i) => expect(Math.abs(rdp[i]! - e)).toBeLessThanOrEqual(v.absoluteTolerance));
    });
  }

  it('uses the Opacus default grid plus 128..1024', () => {
    expect(DEFAULT_RDP_ORDERS.length).toBe(99 + 52 + 4);
    expect(DEFAULT_RDP_ORDERS.slice(0, 151)).toEqual(GRIDS.opacus);
    expect(DEFAULT_RDP_ORDERS.slice(151)).toEqual([128, 256, 512, 1024]);
  });

  it('returns zeros for zero steps', () => {
    expect([...computeRdp(0.1, 1, 0)].every((x) => x === 0)).toBe(true);
  });
});

describe('rdpToEpsilon — Balle et al. 2020 conversion', () => {
  it('matches TF Privacy on constant RDP', () => {
    // Arrange
    const c = vectors.conversion[0]!;
    const orders = grid(c.orders);
    // Act
    const res = rdpToEpsilon(orders, orders.map(() => c.rdpConstant), c.delta);
    // Assert
    expect(res.order).toBe(c.expectedOrder);
    expect(res.epsilon).toBeCloseTo(c.expectedEpsilon, 9);
  });

  it('gives exactly (1, 1e-6)-DP for the Gaussian with sigma 4.530877117 on a fine grid (TF test_get_privacy_spent_check_target_delta)', () => {
    const orders = Array.from({ length: 99000 }, (_, i) => 0.001 * (i + 1000)).filter((a) => a > 1);
    const { epsilon } = rdpToEpsilon(orders, computeRdp(1, 4.530877117, 1, orders), 1e-6);
    expect(epsilon).toBeCloseTo(1, 6);
  });

  it('rejects mismatched lengths and bad values', () => {
    expect(() => rdpToEpsilon([2, 3], [1], 1e-5)).toThrow(RangeError);
    expect(() => rdpToEpsilon([2], [-1], 1e-5)).toThrow(/rdp\[0\]/);
    expect(() => rdpToEpsilon([2], [NaN], 1e-5)).toThrow(RangeError);
    expect(() => rdpToEpsilon([1], [1], 1e-5)).toThrow(/orders\[0\]/);
  });

  it('is +∞ when every order diverges', () => {
    expect(rdpToEpsilon([2, 3], [Infinity, Infinity], 1e-5).epsilon).toBe(Infinity);
  });
});

describe('computeEpsilon — published epsilons', () => {
  for (const v of vectors.epsilon) {
    it(v.source.slice(0, 90), () => {
      // Arrange
      const orders = grid(v.orders);
      // Act
      let res;
      if ('heterogeneous' in v && v.heterogeneous !== undefined) {
        const acc = new RdpAccountant(orders);
        for (const s of v.heterogeneous) acc.step(s.q, s.sigma, s.steps);
        res = acc.epsilon(v.delta);
      } else {
        res = computeEpsilon({ q: v.q!, sigma: v.sigma!, steps: v.steps!, delta: v.delta, orders });
      }
      // Assert
      expectRel(res.epsilon, v.expectedEpsilon);
      if ('expectedOrder' in v && v.expectedOrder !== undefined) expect(res.order).toBe(v.expectedOrder);
    });
  }

  for (const v of vectors.classicConversion) {
    it(`reproduces the classic-conversion value ${v.expectedEpsilon} and improves on it (${v.source.slice(0, 60)})`, () => {
      // Arrange
      const orders = grid(v.orders);
      // Act
      const rdp = computeRdp(v.q, v.sigma, v.steps, orders);
      const classic = Math.min(...orders.map((a, i) => rdp[i]! - Math.log(v.delta) / (a - 1)));
      const modern = computeEpsilon({ q: v.q, sigma: v.sigma, steps: v.steps, delta: v.delta, orders }).epsilon;
      // Assert
      expectRel(classic, v.expectedEpsilon);
      expect(modern).toBeLessThan(classic);
    });
  }
});

describe('computeEpsilon — properties', () => {
  const qArb = fc.double({ min: 1e-4, max: 1, noNaN: true });
  const sigmaArb = fc.double({ min: 0.5, max: 20, noNaN: true });
  const stepsArb = fc.integer({ min: 1, max: 5000 });
  const deltaArb = fc.constantFrom(1e-5, 1e-6, 1e-8);
  const orders = [1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128]; // a cheap grid keeps the properties fast

  it('ε decreases in σ', () => {
    fc.assert(
      fc.property(qArb, sigmaArb, stepsArb, deltaArb, (q, sigma, steps, delta) => {
        const a = computeEpsilon({ q, sigma, steps, delta, orders }).epsilon;
        const b = computeEpsilon({ q, sigma: sigma * 1.1, steps, delta, orders }).epsilon;
        return b <= a;
      }),
      { numRuns: 40 },
    );
  });

  // σ ≥ 0.8: below that the fractional-order series may not converge and a
  // conservative bound (RDP at ⌈α⌉) stands in, which is safe but not monotone in q.
  it('ε increases in steps and in q', () => {
    fc.assert(
      fc.property(qArb, fc.double({ min: 0.8, max: 20, noNaN: true }), stepsArb, deltaArb, (q, sigma, steps, delta) => {
        const base = computeEpsilon({ q, sigma, steps, delta, orders }).epsilon;
        const moreSteps = computeEpsilon({ q, sigma, steps: steps + 10, delta, orders }).epsilon;
        const moreQ = computeEpsilon({ q: Math.min(1, q * 1.5), sigma, steps, delta, orders }).epsilon;
        // (relative 1e-9 slack: at q → 1 the series and the q = 1 closed form differ by float noise)
        return moreSteps >= base * (1 - 1e-9) && moreQ >= base * (1 - 1e-9);
      }),
      { numRuns: 40 },
    );
  });

  it('q = 1 matches the closed form α·steps/(2σ²) at every order', () => {
    fc.assert(
      fc.property(sigmaArb, stepsArb, (sigma, steps) => {
        const rdp = computeRdp(1, sigma, steps);
        return DEFAULT_RDP_ORDERS.every((a, i) => Math.abs(rdp[i]! - (a * steps) / (2 * sigma * sigma)) <= 1e-12 * rdp[i]!);
      }),
      { numRuns: 30 },
    );
  });

  it('q → 1 is continuous with the closed form', () => {
    const near = computeRdp(1 - 1e-9, 2, 1, [2, 3.5, 10]);
    const exact = computeRdp(1, 2, 1, [2, 3.5, 10]);
    near.forEach((v, i) => expectRel(v, exact[i]!, 1e-6));
  });

  it('composition: k steps at once equal k single steps', () => {
    const acc = new RdpAccountant();
    for (let i = 0; i < 25; i++) acc.step(0.02, 1.2);
    const once = computeRdp(0.02, 1.2, 25);
    acc.rdp.forEach((v, i) => expectRel(v, once[i]!, 1e-12));
  });
});

describe('computeSigma', () => {
  for (const v of vectors.sigma) {
    it(v.source.slice(0, 90), () => {
      const { sigma, epsilon } = computeSigma({ q: v.q, steps: v.steps, delta: v.delta, epsilon: v.epsilon });
      expectRel(sigma, v.expectedSigma);
      expect(epsilon).toBeLessThanOrEqual(v.epsilon);
    });
  }

  it('round-trips computeEpsilon: σ → ε → σ', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-3, max: 0.5, noNaN: true }), fc.double({ min: 0.6, max: 8, noNaN: true }), fc.integer({ min: 1, max: 2000 }), (q, sigma0, steps) => {
        const orders = [1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64];
        const { epsilon: target } = computeEpsilon({ q, sigma: sigma0, steps, delta: 1e-5, orders });
        const { sigma, epsilon } = computeSigma({ q, steps, delta: 1e-5, epsilon: target, orders });
        return epsilon <= target && Math.abs(sigma - sigma0) <= 1e-4 * sigma0;
      }),
      { numRuns: 15 },
    );
  });

  it('returns the smallest σ: 0.1% less noise overshoots the target', () => {
    const { sigma } = computeSigma({ q: 0.01, steps: 1000, delta: 1e-5, epsilon: 1 });
    expect(computeEpsilon({ q: 0.01, sigma: sigma * 0.999, steps: 1000, delta: 1e-5 }).epsilon).toBeGreaterThan(1);
  });

  it('throws CONFIG_ERROR for ε ≤ 0 and unreachable targets', () => {
    const run = (epsilon: number) => () => computeSigma({ q: 0.1, steps: 100, delta: 1e-5, epsilon });
    expect(run(0)).toThrow(FedmartError);
    expect(run(-1)).toThrow(/raise the epsilon budget/);
    try {
      computeSigma({ q: 1, steps: 1e6, delta: 1e-5, epsilon: 1e-9 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FedmartError);
      expect((err as FedmartError).code).toBe('CONFIG_ERROR');
    }
  });
});

describe('argument validation', () => {
  const bad: [string, () => unknown][] = [
    ['q = 0', () => computeRdp(0, 1, 1)],
    ['q > 1', () => computeRdp(1.5, 1, 1)],
    ['q NaN', () => computeRdp(NaN, 1, 1)],
    ['q string', () => computeRdp('0.1' as unknown as number, 1, 1)],
    ['sigma 0', () => computeRdp(0.1, 0, 1)],
    ['sigma ∞', () => computeRdp(0.1, Infinity, 1)],
    ['steps fractional', () => computeRdp(0.1, 1, 1.5)],
    ['steps negative', () => computeRdp(0.1, 1, -1)],
    ['delta 0', () => computeEpsilon({ q: 0.1, sigma: 1, steps: 1, delta: 0 })],
    ['delta 1', () => computeEpsilon({ q: 0.1, sigma: 1, steps: 1, delta: 1 })],
    ['empty orders', () => computeRdp(0.1, 1, 1, [])],
    ['order 1', () => computeRdp(0.1, 1, 1, [1])],
    ['order ∞', () => computeRdp(0.1, 1, 1, [Infinity])],
  ];
  for (const [label, fn] of bad) it(`rejects ${label} with a labelled RangeError`, () => expect(fn).toThrow(RangeError));
});

describe('RdpAccountant', () => {
  it('composes heterogeneous steps by adding RDP, not epsilons', () => {
    // Arrange
    const acc = new RdpAccountant();
    // Act
    acc.step(0.01, 1.1, 500).step(0.05, 2, 100).step(0.05, 2, 50);
    // Assert
    const a = computeRdp(0.01, 1.1, 500);
    const b = computeRdp(0.05, 2, 150);
    acc.rdp.forEach((v, i) => expectRel(v, a[i]! + b[i]!, 1e-12));
    const eps = acc.epsilon(1e-5).epsilon;
    const sumOfEps = computeEpsilon({ q: 0.01, sigma: 1.1, steps: 500, delta: 1e-5 }).epsilon + computeEpsilon({ q: 0.05, sigma: 2, steps: 150, delta: 1e-5 }).epsilon;
    expect(eps).toBeLessThan(sumOfEps);
    expect(acc.steps).toEqual([
      { q: 0.01, sigma: 1.1, count: 500 },
      { q: 0.05, sigma: 2, count: 150 },
    ]);
  });

  it('reports ε = 0 before any step', () => {
    expect(new RdpAccountant().epsilon(1e-5).epsilon).toBe(0);
  });

  it('round-trips through JSON, including infinite RDP', () => {
    const acc = new RdpAccountant([1.5, 2, 1000]).step(0.5, 0.05, 3);
    const json = JSON.parse(JSON.stringify(acc));
    const back = RdpAccountant.fromJSON(json);
    expect(back.orders).toEqual(acc.orders);
    expect([...back.rdp]).toEqual([...acc.rdp]);
    expect(back.steps).toEqual(acc.steps);
    expect(back.epsilon(1e-5)).toEqual(acc.epsilon(1e-5));
  });

  it('rejects malformed state with DATA_ERROR', () => {
    const good = new RdpAccountant([2, 3]).step(0.1, 1).toJSON();
    for (const bad of [null, 7, { ...good, version: 2 }, { ...good, rdp: [1] }, { ...good, rdp: [-1, 0] }, { ...good, orders: [0.5, 2] }, { ...good, steps: [{ q: 2, sigma: 1, count: 1 }] }]) {
      expect(() => RdpAccountant.fromJSON(bad)).toThrow(FedmartError);
    }
  });
});
