import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import aucVectors from '../../test/vectors/metrics/roc-auc.json' with { type: 'json' };
import logLossVectors from '../../test/vectors/metrics/log-loss.json' with { type: 'json' };
import accuracyVectors from '../../test/vectors/metrics/accuracy.json' with { type: 'json' };
import { accuracy, logLoss, rocAuc } from './metrics.ts';

/** O(n²) definition: P(score of a positive > score of a negative), ties ½. */
function aucByPairs(s: number[], y: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j] !== 0) continue;
      pairs++;
      wins += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

const scoredLabels = fc
  .array(fc.tuple(fc.integer({ min: -5, max: 5 }).map((v) => v / 4), fc.constantFrom(0, 1)), { minLength: 2, maxLength: 40 })
  .filter((xs) => xs.some(([, y]) => y === 1) && xs.some(([, y]) => y === 0));

describe('rocAuc', () => {
  it.each(aucVectors.cases)('$name', ({ scores, labels, expected }) => {
    const got = rocAuc(scores, labels);
    if (expected === null) expect(got).toBeNaN();
    else expect(got).toBeCloseTo(expected, 12);
  });

  it('equals pair counting with many ties (property)', () => {
    fc.assert(
      fc.property(scoredLabels, (xs) => {
        const s = xs.map(([v]) => v);
        const y = xs.map(([, l]) => l);
        expect(rocAuc(s, y)).toBeCloseTo(aucByPairs(s, y), 12);
      }),
      { numRuns: 300 },
    );
  });

  it('is invariant to monotone transforms and flips when scores are negated (property)', () => {
    fc.assert(
      fc.property(scoredLabels, (xs) => {
        const s = xs.map(([v]) => v);
        const y = xs.map(([, l]) => l);
        const auc = rocAuc(s, y);
        expect(rocAuc(s.map((v) => 1 / (1 + Math.exp(-v))), y)).toBeCloseTo(auc, 12);
        expect(rocAuc(s.map((v) => -v), y)).toBeCloseTo(1 - auc, 12);
      }),
    );
  });

  it('accepts typed arrays and scales to 45k scores', () => {
    const n = 45_000;
    const s = new Float32Array(n);
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 5 === 0 ? 1 : 0;
      s[i] = (i % 97) / 97 + y[i]! * 0.3; // positives shifted up
    }
    const auc = rocAuc(s, y);
    expect(auc).toBeGreaterThan(0.7);
    expect(auc).toBeLessThan(1);
  });

  it('rejects bad input', () => {
    expect(() => rocAuc([0.1], [1, 0])).toThrow(RangeError);
    expect(() => rocAuc([], [])).toThrow(RangeError);
    expect(() => rocAuc([Number.NaN, 0.2], [1, 0])).toThrow(/scores\[0\] is NaN/);
    expect(() => rocAuc([0.1, 0.2], [1, 2])).toThrow(/labels\[1\] is 2/);
    expect(() => rocAuc(null as unknown as number[], [])).toThrow(TypeError);
  });
});

describe('logLoss', () => {
  it.each(logLossVectors.cases)('$name', ({ probs, labels, eps, expected }) => {
    expect(logLoss(probs, labels, eps)).toBeCloseTo(expected, 12);
  });

  it('uses eps = 1e-7 by default', () => {
    expect(logLoss([0], [1])).toBeCloseTo(-Math.log(1e-7), 12);
  });

  it('is finite and non-negative for any valid input (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1)), { minLength: 1, maxLength: 30 }), (xs) => {
        const v = logLoss(xs.map(([p]) => p), xs.map(([, y]) => y));
        expect(Number.isFinite(v) && v >= 0).toBe(true);
      }),
    );
  });

  it('rejects bad input', () => {
    expect(() => logLoss([1.5], [1])).toThrow(/probs\[0\] is 1.5/);
    expect(() => logLoss([0.5], [1], 0)).toThrow(RangeError);
    expect(() => logLoss([0.5, 0.5], [1])).toThrow(RangeError);
  });
});

describe('accuracy', () => {
  it.each(accuracyVectors.cases)('$name', ({ probs, labels, threshold, expected }) => {
    expect(accuracy(probs, labels, threshold)).toBe(expected);
  });

  it('uses threshold 0.5 by default and rejects bad input', () => {
    expect(accuracy([0.5, 0.4], [1, 0])).toBe(1);
    expect(() => accuracy([0.5], [1], Number.NaN)).toThrow(RangeError);
    expect(() => accuracy([-0.1], [1])).toThrow(RangeError);
  });
});
