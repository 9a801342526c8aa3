import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_RDP_ORDERS, rdpToEpsilon } from './dp/rdp.ts';
import { checkVerticalBatching, cutVerticalBatches, labelDpEpsilon, minimumVerticalBatch, planLabelDp } from './vertical-leakage.ts';

describe('vertical leakage bounds', () => {
  it('minimum batch is max(64, 4·E·d_max), and 1 without feature holders', () => {
    expect(minimumVerticalBatch(8, [21])).toBe(672);
    expect(minimumVerticalBatch(1, [3, 1])).toBe(64);
    expect(minimumVerticalBatch(2, [16, 5])).toBe(128);
    expect(minimumVerticalBatch(5, [])).toBe(1);
    expect(() => minimumVerticalBatch(0, [3])).toThrow(RangeError);
    expect(() => minimumVerticalBatch(1, [0])).toThrow(RangeError);
  });

  it('property: every batch has at least min(n, batchSize) rows and every row is used exactly once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 700 }), (n, b) => {
        const order = Uint32Array.from({ length: n }, (_, i) => i);
        const batches = cutVerticalBatches(order, b);
        const seen = new Uint8Array(n);
        for (const batch of batches) {
          expect(batch.length).toBeGreaterThanOrEqual(Math.min(n, b));
          expect(batch.length).toBeLessThan(2 * b);
          for (const r of batch) seen[r]!++;
        }
        expect(seen.every((c) => c === 1)).toBe(true);
        // the attacker's equation count over a run never exceeds a quarter of the rows when b is at the minimum
        const E = 1 + (n % 5);
        const d = 1 + (b % 9);
        const min = minimumVerticalBatch(E, [d]);
        if (n >= min) expect(E * cutVerticalBatches(order, min).length * d).toBeLessThanOrEqual(n / 4);
      }),
    );
  });

  it('refuses a batch below the minimum and a training set smaller than it, naming the rule', () => {
    expect(checkVerticalBatching({ rows: 1000, batchSize: 128, epochs: 2, widths: [16] })).toBe(128);
    expect(() => checkVerticalBatching({ rows: 1000, batchSize: 12, epochs: 2, widths: [16] })).toThrow(expect.objectContaining({ code: 'CONFIG_ERROR', message: expect.stringMatching(/batch size 12 is below the minimum 128 = max\(64, 4 × 2 epochs × widest feature holder 16\).*Raise the batch size/) }));
    expect(() => checkVerticalBatching({ rows: 100, batchSize: 4096, epochs: 2, widths: [16] })).toThrow(expect.objectContaining({ code: 'DATA_ERROR', message: expect.stringMatching(/only 100 aligned training rows, below the minimum batch 128/) }));
  });

  it('label DP: q = 1 accounting equals the closed-form Gaussian RDP E·α/(2σ²), and σ ↔ ε round-trips', () => {
    // Known answer: the Gaussian mechanism with sensitivity 1 has RDP α/(2σ²) at every order (Mironov 2017, Prop. 7)
    fc.assert(
      fc.property(fc.double({ min: 0.5, max: 20, noNaN: true }), fc.integer({ min: 1, max: 50 }), (sigma, epochs) => {
        const closed = rdpToEpsilon(DEFAULT_RDP_ORDERS, DEFAULT_RDP_ORDERS.map((a) => (epochs * a) / (2 * sigma * sigma)), 1e-5).epsilon;
        expect(labelDpEpsilon({ sigma, delta: 1e-5, epochs })).toBeCloseTo(closed, 9);
      }),
      { numRuns: 50 },
    );
    const plan = planLabelDp({ epsilon: 1, delta: 1e-5, epochs: 4 });
    expect(plan.epsilon).toBeLessThanOrEqual(1);
    expect(plan.epsilon).toBeGreaterThan(0.99);
    expect(plan.compositions).toBe(4);
    expect(labelDpEpsilon({ sigma: plan.sigma, delta: 1e-5, epochs: 4 })).toBeCloseTo(plan.epsilon, 12);
  });
});
