import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { l2Norm } from '../dp/clip.ts';
import { isFedmartError } from '../errors.ts';
import { weightedMetricMeans } from './base.ts';
import { FedAvg } from './fedavg.ts';
import { boundExampleCount, boundUpdates, checkMetricRanges, lowerMedian, resolveUpdateNormBound, type PartnerLimits } from './partner-bounds.ts';
import type { ClientUpdate } from './types.ts';

const LIMITS: PartnerLimits = { maxExamplesPerPartner: 10_000_000, medianNormFactor: 3, onLargeUpdate: 'clip' };
const update = (nodeId: string, numExamples: number, delta: ArrayLike<number>): ClientUpdate => ({ nodeId, numExamples, delta: Float32Array.from(delta), metrics: {} });

describe('boundExampleCount', () => {
  it('is the least of the claim and the caps that apply', () => {
    expect(boundExampleCount(2 ** 52, [2 ** 52, null, 1_000_000])).toBe(1_000_000);
    expect(boundExampleCount(300, [undefined, 500])).toBe(300);
    expect(boundExampleCount(12.7, [])).toBe(12);
    expect(() => boundExampleCount(Number.NaN, [])).toThrow(RangeError);
    fc.assert(fc.property(fc.nat(), fc.array(fc.option(fc.nat())), (claimed, caps) => {
      const n = boundExampleCount(claimed, caps);
      expect(n).toBe(Math.min(claimed, ...caps.filter((c): c is number => c !== null)));
    }));
  });
});

describe('lowerMedian', () => {
  it('is the smaller of two and the middle of three, so one of two or one of three cannot raise it', () => {
    expect(lowerMedian([5, 1e38])).toBe(5);
    expect(lowerMedian([1e38, 2, 3])).toBe(3);
    expect(() => lowerMedian([])).toThrow(RangeError);
  });
});

describe('resolveUpdateNormBound', () => {
  it('takes a fixed bound first, then the DP clip, then the median rule', () => {
    expect(resolveUpdateNormBound({ ...LIMITS, maxUpdateNorm: 0.5 }, { level: 'partner', clip: 2, noiseMultiplier: 1 }, [1], 10, 2)).toEqual({ bound: 0.5, source: 'maxUpdateNorm' });
    expect(resolveUpdateNormBound(LIMITS, { level: 'partner', clip: 2, noiseMultiplier: 1 }, [1], 10, 2)).toEqual({ bound: 2, source: 'dp-clip' });
    // Distributed: C + s(√P + 8), s = σC/√m
    expect(resolveUpdateNormBound(LIMITS, { level: 'partner', clip: 2, noiseMultiplier: 1, mode: 'distributed' }, [1], 16, 4)!.bound).toBeCloseTo(2 + 1 * (4 + 8), 12);
    expect(resolveUpdateNormBound(LIMITS, { level: 'record', clip: 2, noiseMultiplier: 1 }, [1, 2, 9], 10, 2)).toEqual({ bound: 6, source: 'median' });
    expect(resolveUpdateNormBound(LIMITS, undefined, [], 10, 2)).toBeNull();
  });
});

describe('boundUpdates', () => {
  it('clips an update above the bound to it, leaves the inputs untouched, and rejects non-finite ones', () => {
    const attack = update('m', 1, new Float32Array(4).fill(1e38));
    const nan = update('n', 1, [Number.NaN, 0, 0, 0]);
    const out = boundUpdates([update('a', 1, [0.1, 0, 0, 0]), update('b', 1, [0, 0.2, 0, 0]), attack, nan], LIMITS, undefined, 2);
    expect(out.bound).toEqual({ bound: expect.closeTo(0.6, 6), source: 'median' });
    expect(out.kept.map((u) => u.nodeId)).toEqual(['a', 'b', 'm']);
    expect(l2Norm(out.kept[2]!.delta)).toBeLessThanOrEqual(out.bound!.bound);
    expect(attack.delta[0]).toBe(Math.fround(1e38));
    expect(out.clipped).toEqual([{ nodeId: 'm', norm: expect.any(Number) }]);
    expect(out.rejected).toEqual([{ nodeId: 'n', reason: expect.stringMatching(/NaN/) }]);
  });

  it("rejects instead in 'reject' mode, naming the norm, the bound and what to do", () => {
    const out = boundUpdates([update('a', 1, [0.1, 0]), update('m', 1, [3, 4])], { ...LIMITS, maxUpdateNorm: 1, onLargeUpdate: 'reject' }, undefined, 2);
    expect(out.kept.map((u) => u.nodeId)).toEqual(['a']);
    expect(out.rejected[0]!.reason).toMatch(/update norm 5\.000 exceeds the federation's bound 1\.000 \(limits\.maxUpdateNorm\).*learning rate/);
  });

  it('property: one attacker moves FedAvg by at most s·(B + ‖honest mean‖) from the honest FedAvg, whatever it sends', () => {
    const finite = fc.float({ min: Math.fround(-1e38), max: Math.fround(1e38), noNaN: true, noDefaultInfinity: true });
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 5 }).chain((k) => fc.tuple(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: 6, maxLength: 6 })), { minLength: k, maxLength: k }),
        fc.array(finite, { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 1, max: 1000 }),
      )),
      ([honest, attack, attackN]) => {
        const global = new Float32Array(6);
        const honestUpdates = honest.map(([n, d], i) => update(`h${i}`, n, d));
        const { kept, bound } = boundUpdates([...honestUpdates, update('m', attackN, attack)], LIMITS, undefined, 2);
        const B = bound!.bound;
        // Honest updates within the bound (the median rule's slack keeps them so here unless they differ by > 3×): skip cases where honest ones were clipped too.
        fc.pre(honestUpdates.every((u) => l2Norm(u.delta) <= B));
        const fedavg = new FedAvg();
        const withAttack = fedavg.aggregateTrain(1, global, kept, []).weights!;
        const honestOnly = fedavg.aggregateTrain(1, global, honestUpdates, []).weights!;
        const s = attackN / (attackN + honest.reduce((acc, [n]) => acc + n, 0));
        const distance = l2Norm(Float64Array.from(withAttack, (w, i) => w - honestOnly[i]!));
        expect(distance).toBeLessThanOrEqual(s * (B + l2Norm(honestOnly)) * (1 + 1e-5) + 1e-6);
      },
    ), { numRuns: 200 });
  });
});

describe('evaluation metrics', () => {
  it('property: one fake value of a [0, 1] metric moves the weighted mean by at most its weight share', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true }),
      (honest, fakeN, fake) => {
        const items = honest.map(([numExamples, auc]) => ({ numExamples, metrics: { auc } }));
        const base = weightedMetricMeans(items).auc!;
        const moved = weightedMetricMeans([...items, { numExamples: fakeN, metrics: { auc: fake } }]).auc!;
        const s = fakeN / (fakeN + honest.reduce((acc, [n]) => acc + n, 0));
        expect(Math.abs(moved - base)).toBeLessThanOrEqual(s + 1e-12);
      },
    ));
  });

  it('refuses bounded metrics outside their range', () => {
    expect(() => checkMetricRanges({ auc: 0.7, loss: 0.3, custom: 99 })).not.toThrow();
    for (const bad of [{ auc: 1.5 }, { accuracy: -0.1 }, { loss: -1 }] as Record<string, number>[]) {
      let err: unknown;
      try {
        checkMetricRanges(bad);
      } catch (e) {
        err = e;
      }
      expect(isFedmartError(err) && err.code === 'INVALID_MESSAGE' && /outside its range/.test(err.message)).toBe(true);
    }
  });
});
