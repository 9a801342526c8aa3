/**
 * The partner's check of round instructions against its pinned terms:
 * every field a lying coordinator could weaken is refused; honest
 * instructions produce the plan the partner runs.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isFedmartError } from '@fedmart/shared/errors';
import type { FederationTerms, TrainDp } from '@fedmart/shared/protocol';
import { checkRoundParticipants, pinFederationTerms, planRoundDp, termsChange } from './dp-terms.ts';

const secagg = { threshold: undefined, neighbours: undefined, clip: 4, bits: 32 };
const distributed = (extra: Partial<NonNullable<FederationTerms['dp']>> = {}): FederationTerms => ({
  strategy: 'fedavg', minClients: 4, encryption: 'none', secureAggregation: secagg as never,
  dp: { level: 'partner', noiseMultiplier: 0.5, clip: 0.2, delta: 1e-5, mode: 'distributed', ...extra },
});
const honest = (t: FederationTerms): TrainDp => ({ level: 'partner', clip: 0.2, noiseMultiplier: 0.5, delta: 1e-5, noiseStd: (0.5 * 0.2) / 2 });
const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(isFedmartError(e, 'FORBIDDEN')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('planRoundDp', () => {
  it('computes the distributed share from the terms: σ·C/√minClients', () => {
    const plan = planRoundDp(distributed(), { protection: 'secagg', dp: honest(distributed()) })!;
    expect(plan).toMatchObject({ level: 'partner', clipHere: true, clipBitNoiseStd: null });
    expect(plan.noiseStd).toBeCloseTo(0.05, 15);
  });

  it('property: any noise share other than the terms\' is refused, lower or higher', () => {
    fc.assert(fc.property(fc.double({ min: 0, max: 10, noNaN: true }).filter((x) => Math.abs(x - 0.05) > 1e-6), (std) => {
      expect(refusal(() => planRoundDp(distributed(), { protection: 'secagg', dp: { ...honest(distributed()), noiseStd: std } }))).toMatch(/noise share std/);
    }));
  });

  it('refuses omitted DP or share, changed σ/δ/q/level, a fixed clip moved, and a protection change', () => {
    const t = distributed();
    const { noiseStd: _s, ...noShare } = honest(t);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg', dp: noShare }))).toMatch(/omits the distributed noise share/);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg' }))).toMatch(/omits differential privacy/);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg', dp: { ...honest(t), noiseMultiplier: 0.4 } }))).toMatch(/noise multiplier 0.4/);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg', dp: { ...honest(t), delta: 1e-3 } }))).toMatch(/delta/);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg', dp: { ...honest(t), level: 'record' } }))).toMatch(/record-level/);
    expect(refusal(() => planRoundDp(t, { protection: 'secagg', dp: { ...honest(t), clip: 0.4, noiseStd: 0.1 } }))).toMatch(/clip 0.4/);
    expect(refusal(() => planRoundDp(t, { dp: honest(t) }))).toMatch(/with none where the terms say secagg/);
    expect(refusal(() => planRoundDp({ ...t, dp: undefined }, { protection: 'secagg', dp: honest(t) }))).toMatch(/terms have none/);
  });

  it('adaptive clipping: the clip may move (the noise scales with it), the update share uses z_Δ, and a noised bit joins the secure sum', () => {
    const t = distributed({ adaptiveClip: { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 1 } });
    const zd = (0.5 ** -2 - 2 ** -2) ** -0.5;
    const plan = planRoundDp(t, { protection: 'secagg', dp: { ...honest(t), clip: 0.3, noiseStd: (zd * 0.3) / 2 } })!;
    expect(plan.clip).toBe(0.3);
    expect(plan.clipBitNoiseStd).toBeCloseTo(0.5, 15);
  });

  it('central mode: no share; with adaptive clipping the trusted coordinator clips', () => {
    const t: FederationTerms = { strategy: 'fedavg', minClients: 2, encryption: 'none', dp: { level: 'partner', noiseMultiplier: 1, clip: 1, delta: 1e-5, adaptiveClip: { targetQuantile: 0.5, clipLearningRate: 0.2, countStd: 1 } } };
    const dp: TrainDp = { level: 'partner', clip: 1, noiseMultiplier: 1, delta: 1e-5 };
    expect(planRoundDp(t, { dp })).toMatchObject({ clipHere: false, noiseStd: 0 });
    expect(refusal(() => planRoundDp(t, { dp: { ...dp, noiseStd: 0.1 } }))).toMatch(/coordinator adds the noise/);
  });
});

describe('pinned terms', () => {
  it('refuse incoherent terms (partner-added noise with visible updates) and absent ones', () => {
    const t = { ...distributed(), secureAggregation: undefined };
    expect(() => pinFederationTerms(JSON.parse(JSON.stringify(t)))).toThrow(/refusing to join.*needs updates hidden/);
    expect(() => pinFederationTerms(undefined)).toThrow(/sent no federation terms/);
  });

  it('name what changed after a reconnect', () => {
    const a = pinFederationTerms(JSON.parse(JSON.stringify(distributed())));
    expect(termsChange(a, pinFederationTerms(JSON.parse(JSON.stringify(distributed()))))).toBeNull();
    expect(termsChange(a, { ...a, minClients: 3 })).toMatch(/\(minClients\)/);
  });

  it('refuse a distributed round below minClients', () => {
    expect(() => checkRoundParticipants(distributed(), 3, 'advertise-keys')).toThrow(/3 partner\(s\) at advertise-keys, fewer than the 4/);
    expect(() => checkRoundParticipants(distributed(), 4, 'advertise-keys')).not.toThrow();
  });

  it("refuse a secure sum smaller than a task's own noise split (record-level item-Gram release: noiseShares)", () => {
    const record = { ...distributed(), dp: undefined, minClients: 2 };
    expect(() => checkRoundParticipants(record, 2, 'unmask', 3)).toThrow(/2 partner\(s\) at unmask, fewer than the 3 the DP noise is split over/);
    expect(() => checkRoundParticipants(record, 3, 'unmask', 3)).not.toThrow();
    expect(() => checkRoundParticipants(record, 1, 'unmask')).not.toThrow(); // full noise at every partner: no minimum
  });
});
