import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeLimbSum, encodeLimbs, LIMB_BOUND, LIMBS } from './wire.ts';

describe('exact limb encoding of sufficient statistics', () => {
  it('the Float32 mean of P partners\' limbs decodes to the sum of their statistics within 2^-40 per partner', () => {
    fc.assert(fc.property(fc.array(fc.array(fc.double({ min: -1e9, max: 1e9, noNaN: true }), { minLength: 5, maxLength: 5 }), { minLength: 2, maxLength: 40 }), (parts) => {
      const P = parts.length;
      const acc = new Float64Array(5 * LIMBS);
      for (const s of parts) {
        const v = new Float32Array(5 * LIMBS);
        encodeLimbs(s, v);
        for (const l of v) expect(Math.abs(l)).toBeLessThanOrEqual(LIMB_BOUND);
        for (let i = 0; i < v.length; i++) acc[i]! += v[i]!;
      }
      // what the coordinator commits: the weight-1 mean, stored as Float32
      const committed = Float32Array.from(acc, (x) => x / P);
      const sum = decodeLimbSum(committed, P);
      for (let j = 0; j < 5; j++) {
        const exact = parts.reduce((t, s) => t + s[j]!, 0);
        // reference float64 summation is itself off by up to Σ|s|·2^-52 per step
        const mag = parts.reduce((t, s) => t + Math.abs(s[j]!), 0);
        expect(Math.abs(sum[j]! - exact)).toBeLessThanOrEqual(P * 2 ** -41 + mag * P * 2 ** -52);
      }
    }), { numRuns: 300 });
  });

  it('refuses a wrong partner count or altered weights instead of returning wrong statistics', () => {
    const v = new Float32Array(LIMBS);
    encodeLimbs([123.456], v);
    const committed = Float32Array.from(v, (x) => (x + 7) / 3); // three partners' mean
    expect(() => decodeLimbSum(committed, 3)).not.toThrow();
    expect(() => decodeLimbSum(committed, 2)).toThrow(/not an integer/);
    expect(() => encodeLimbs([2 ** 60], new Float32Array(LIMBS))).toThrow(/2\^55/);
  });
});
