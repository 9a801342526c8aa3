/**
 * The recommendation task under record-level DP by the two-release item-Gram
 * mechanism of `dp-gram.ts`, through the seam of `client-node/src/task.ts`
 * (task id `recommendation`, the federation's taskSpec carrying `gram`).
 * A brand's "update" is its noised statistics (divided by the public scale)
 * minus the global weights; FedAvg at weight 1 per brand commits their mean,
 * which every reader turns back into the sum (× P), as the pricing task does
 * with its sufficient statistics (`pricing/task.ts`). Round 1 releases the
 * counts, round 2 the Gram over the N items of largest released count;
 * a third release is refused. Customers' histories never leave the brand.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { JointModelSpec } from '@fedmart/shared/task/layout';
import type { PinnedTerms } from '@fedmart/shared/task/types';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { gaussianNoise, type RandomSource } from '@fedmart/shared/dp/gaussian';
import { COUNT_SENSITIVITY, countRelease, GRAM_SENSITIVITY, gramLayout, gramRelease, positions, releaseNoiseMultiplier, shrinkWeights, spectralFromGram, topItems, triangle, type GramDpSpec, type GramModel } from './dp-gram.ts';
import { RECOMMENDATION_TASK } from './task.ts';

/** Coordinates noised between event-loop yields (the agent's socket must keep answering pings during a release). */
const NOISE_SLICE = 1 << 16;

/** Add N(0, std²) to every coordinate of `v` in slices, yielding between them. */
async function addNoiseYielding(v: Float64Array, std: number, rng: RandomSource | undefined): Promise<void> {
  for (let o = 0; o < v.length; o += NOISE_SLICE) {
    const n = Math.min(NOISE_SLICE, v.length - o);
    const z = gaussianNoise(n, std, rng);
    for (let i = 0; i < n; i++) v[o + i]! += z[i]!;
    await new Promise((r) => setImmediate(r));
  }
}

/** The std of one brand's noise for release r: σ_r·Δ_r, or its 1/√S share under a secure sum of S brands. */
export function brandNoiseStd(g: GramDpSpec, sigma: number, release: 0 | 1): number {
  const d = release === 0 ? COUNT_SENSITIVITY : GRAM_SENSITIVITY;
  return (releaseNoiseMultiplier(sigma, g, release) * d) / Math.sqrt(g.noiseShares ?? 1);
}

/** The std of the summed release r over P brands (σ_rΔ_r·√(P/S)). */
export const sumNoiseStd = (g: GramDpSpec, sigma: number, release: 0 | 1): number => brandNoiseStd(g, sigma, release) * Math.sqrt(g.partners);

/** The summed counts of release 1 from committed weights (P × mean × scale). */
export function committedCounts(g: GramDpSpec, weights: Float32Array): Float64Array {
  return Float64Array.from(weights.subarray(0, g.items), (v) => v * g.partners * g.scale);
}

/**
 * The public item model from the committed releases (post-processing): the private set from the counts, the rank-k
 * PSD part of the Gram, and the noise edge 2s√N (s the summed noise's per-entry std) for the report.
 * @param sigma - the federation's noise multiplier (the ledger's σ for the two steps)
 */
export function gramModelOf(g: GramDpSpec, weights: Float32Array, sigma: number): GramModel & { values: Float64Array; weights: Float64Array; noiseEdge: number } {
  const counts = committedCounts(g, weights);
  const top = topItems(counts, g.top);
  const upper = Float64Array.from(weights.subarray(g.items, g.items + triangle(top.length)), (v) => v * g.partners * g.scale);
  const spectral = spectralFromGram(upper, top.length, g.rank);
  const noiseEdge = 2 * sumNoiseStd(g, sigma, 1) * Math.sqrt(top.length);
  // Each direction scaled by √w, so V·(Vᵀ1_h) in gramScores is V diag(w) Vᵀ1_h; directions with w = 0 are dropped.
  const w = shrinkWeights(spectral.values, noiseEdge);
  const keep = Array.from(w.keys()).filter((c) => w[c]! > 0);
  const r0 = spectral.values.length;
  const V = new Float64Array(top.length * keep.length);
  for (let i = 0; i < top.length; i++) keep.forEach((c, k) => { V[i * keep.length + k] = spectral.V[i * r0 + c]! * Math.sqrt(w[c]!); });
  return { top, pos: positions(top, g.items), V, rank: keep.length, counts, values: Float64Array.from(keep, (c) => spectral.values[c]!), weights: Float64Array.from(keep, (c) => w[c]!), noiseEdge };
}

/**
 * A brand's task over its customers' training histories (catalogue indices, time order).
 * @param histories - each customer's training items
 * @param items - catalogue size
 * @param rng - noise source (default: the platform CSPRNG)
 */
export function gramDpTask(histories: readonly Int32Array[], items: number, rng?: RandomSource) {
  let spec: GramDpSpec | null = null;
  let released = 0;
  const need = (): GramDpSpec => {
    if (!spec) throw new FedmartError('UNAVAILABLE', 'recommendation: no task spec yet (no welcome received)');
    return spec;
  };
  return {
    id: RECOMMENDATION_TASK,
    /** Weight 1: the committed mean × P is the plain sum of the brands' statistics. */
    numExamples: 1,
    /** The noise split of the accepted spec: the agent refuses a secure sum of fewer brands (client-node dp-terms.ts). */
    get noiseShares(): number | undefined {
      return spec?.noiseShares;
    },
    accept(model: JointModelSpec, taskSpec: unknown, terms?: PinnedTerms): void {
      const g = (taskSpec as { gram?: GramDpSpec } | undefined)?.gram;
      if (model.kind !== 'tensors' || !g) throw new FedmartError('CONFIG_ERROR', "recommendation: this brand runs the private item-Gram release, but the federation's taskSpec has no gram settings; create it with fedmart scenario recommendation simulate --dp record");
      if (g.items !== items) throw new FedmartError('DATA_ERROR', `recommendation: the federation's catalogue has ${g.items} items, this brand's ${items}; use the federation's catalogue`);
      if (!(g.top >= 2 && g.top <= items && g.scale > 0 && Number.isSafeInteger(g.rank) && g.rank >= 1 && Number.isSafeInteger(g.partners) && g.partners >= 1 && g.budget.length === 2 && g.budget.every((b) => b > 0) && Math.abs(g.budget[0] + g.budget[1] - 1) < 1e-9)) throw new FedmartError('CONFIG_ERROR', `recommendation: bad gram settings ${JSON.stringify(g)} (2 <= top <= items, scale > 0, rank >= 1, two budget shares > 0 summing to 1)`);
      if (jointParameterCount(model) !== jointParameterCount(gramLayout(g))) throw new FedmartError('CONFIG_ERROR', "recommendation: the federation's layout does not match its gram settings");
      // Distributed noise: this brand adds only a 1/√S share, which covers an interaction only inside a secure sum of at
      // least S brands. The taskSpec comes from the coordinator; the pinned terms are what this brand accepted.
      const shares = g.noiseShares ?? 1;
      if (!(Number.isSafeInteger(shares) && shares >= 1)) throw new FedmartError('CONFIG_ERROR', `recommendation: noiseShares must be an integer >= 1, got ${String(g.noiseShares)}`);
      if (shares > 1 && !terms?.secureAggregation) throw new FedmartError('FORBIDDEN', `recommendation: the task spec splits the DP noise into ${shares} shares, but the federation terms this brand accepted have no secure aggregation, so the coordinator would see a release with a 1/sqrt(${shares}) share of the noise; refusing (the operator creates it with --dp-noise distributed, or --dp-noise local)`);
      if (shares > 1 && shares > terms!.minClients) throw new FedmartError('FORBIDDEN', `recommendation: the task spec splits the DP noise into ${shares} shares, but a round's secure sum covers only ${terms!.minClients} brands (the terms' minClients), which would carry less than the planned noise; refusing`);
      spec = g;
    },
    round({ weights }: { weights: Float32Array }) {
      const deltaOf = (c: Float32Array): Float32Array => {
        const d = new Float32Array(c.length);
        for (let i = 0; i < c.length; i++) d[i] = c[i]! - weights[i]!;
        return d;
      };
      return {
        plain: async (): Promise<never> => {
          throw new FedmartError('CONFIG_ERROR', 'recommendation: the item-Gram release is a DP mechanism; its federation must carry a record-level DP plan (--dp record)');
        },
        /**
         * Release 1 while the count section is empty, then release 2 over the private set the committed counts
         * define; q = 1, one step each (the ledger charges two steps at σ; dp-gram.ts).
         */
        recordDp: async (dp: { clip: number; noiseMultiplier: number }) => {
          const g = need();
          if (!(dp.clip >= GRAM_SENSITIVITY * (1 - 1e-9))) throw new FedmartError('FORBIDDEN', `recommendation: the terms set the DP clip to ${dp.clip}, below the Gram release's sensitivity ${GRAM_SENSITIVITY}; the noise would not cover one interaction`);
          const out = new Float32Array(weights.length);
          const countsCommitted = weights.subarray(0, g.items).some((v) => v !== 0);
          if (!countsCommitted) {
            if (released > 0) throw new FedmartError('FORBIDDEN', 'recommendation: this brand already released its counts and the federation has not committed them; a second count release would spend budget the mechanism does not plan');
            released = 1;
            const c = countRelease(histories, g.items, 0);
            await addNoiseYielding(c, brandNoiseStd(g, dp.noiseMultiplier, 0), rng);
            for (let i = 0; i < g.items; i++) out[i] = c[i]! / g.scale;
            return { delta: deltaOf(out), q: 1, steps: 1 };
          }
          if (released > 1) throw new FedmartError('FORBIDDEN', 'recommendation: this brand already made both releases of the item-Gram mechanism; a third round would spend budget the mechanism does not use');
          released = 2;
          const top = topItems(committedCounts(g, weights), g.top);
          await new Promise((r) => setImmediate(r));
          const s = gramRelease(histories, positions(top, g.items), top.length, 0);
          await addNoiseYielding(s, brandNoiseStd(g, dp.noiseMultiplier, 1), rng);
          out.set(weights.subarray(0, g.items)); // release 1's committed section: delta 0
          for (let i = 0; i < s.length; i++) out[g.items + i] = s[i]! / g.scale;
          return { delta: deltaOf(out), q: 1, steps: 1 };
        },
      };
    },
    /** Nothing is released at evaluation: a validation metric would be a noiseless statistic of the brand's customers. */
    async evaluate(): Promise<{ numExamples: number; metrics: Record<string, number> }> {
      return { numExamples: 1, metrics: { loss: 0 } };
    },
  };
}
