/**
 * The public side of the DP recommendation model: a popularity prior and
 * the choice of items with a free embedding row, both computed from a
 * Gaussian-mechanism release of item counts, so DP-SGD's noise only lands
 * on a small item tower (model.ts `ItemTower`).
 *
 * Release: each brand adds N(0, σ_h²) to every coordinate of its own
 * training-interaction count vector (CSPRNG noise) and the noisy vectors are
 * summed. One interaction (the DP unit of `--dp record`) changes one
 * brand's count of one item by 1: L2 sensitivity 1, and brands hold
 * disjoint interactions (parallel composition). The Gaussian mechanism with
 * sensitivity 1 is (α, α/(2σ_h²))-RDP for every order α (Mironov 2017,
 * "Rényi Differential Privacy", CSF, Proposition 7); it composes with
 * DP-SGD's RDP by adding the curves (Proposition 1), then one conversion to
 * (ε, δ) (Balle et al. 2020, shared/src/dp/rdp.ts).
 */
import { computeRdp, computeSigma, DEFAULT_RDP_ORDERS, rdpToEpsilon } from '@fedmart/shared/dp/rdp';
import { gaussianNoise, type RandomSource } from '@fedmart/shared/dp/gaussian';
import { FedmartError } from '@fedmart/shared/errors';
import type { ItemTower } from './model.ts';

/**
 * One brand's noisy count vector (its release).
 * @param items - catalogue size
 * @param trainItems - the item of each of the brand's training interactions
 * @param sigma - noise std σ_h (sensitivity 1)
 * @param rng - randomness (the CSPRNG in production)
 * @returns counts + N(0, σ_h²) per item
 */
export function noisyItemCounts(items: number, trainItems: ArrayLike<number>, sigma: number, rng: RandomSource): Float64Array {
  if (!(sigma > 0)) throw new RangeError(`noisyItemCounts: sigma must be > 0, got ${sigma}`);
  const out = gaussianNoise(items, sigma, rng);
  for (let k = 0; k < trainItems.length; k++) out[trainItems[k]!]! += 1;
  return out;
}

/**
 * The item tower from released counts (post-processing only): items whose
 * released count reaches `minCount` get a free row (in catalogue order), and
 * every item's prior is log(1 + max(0, count)).
 * @throws FedmartError CONFIG_ERROR when no item reaches minCount
 */
export function itemTowerFromCounts(counts: ArrayLike<number>, minCount: number): ItemTower {
  const rowOf: number[] = [];
  const prior: number[] = [];
  let rows = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    rowOf.push(c >= minCount ? rows++ : -1);
    prior.push(Math.log1p(Math.max(0, c)));
  }
  if (rows === 0) throw new FedmartError('CONFIG_ERROR', `no item reaches the released count ${minCount} for a free embedding row; lower --dp-free-min`);
  return { rows, rowOf, prior };
}

/** RDP of the count release at each order: α / (2σ_h²). */
export function countReleaseRdp(sigma: number, orders: readonly number[] = DEFAULT_RDP_ORDERS): Float64Array {
  return Float64Array.from(orders, (a) => a / (2 * sigma * sigma));
}

/**
 * ε of DP-SGD (q, σ, steps) composed with the count release at σ_h.
 * @returns ε at δ and the order that gave it
 */
export function composedEpsilon(p: { q: number; sigma: number; steps: number; countSigma: number; delta: number }): { epsilon: number; order: number } {
  const sgd = computeRdp(p.q, p.sigma, p.steps);
  const rel = countReleaseRdp(p.countSigma);
  return rdpToEpsilon(DEFAULT_RDP_ORDERS, sgd.map((x, k) => x + rel[k]!), p.delta);
}

/**
 * The smallest DP-SGD σ such that DP-SGD composed with the count release
 * spends at most `epsilon`.
 * @returns σ, the composed ε, and the ε of DP-SGD alone (what the federation's ledger charges)
 * @throws FedmartError CONFIG_ERROR when the count release alone exceeds the budget
 */
export function sigmaWithCountRelease(p: { q: number; steps: number; delta: number; epsilon: number; countSigma: number }): { sigma: number; epsilon: number; sgdEpsilon: number } {
  const alone = rdpToEpsilon(DEFAULT_RDP_ORDERS, countReleaseRdp(p.countSigma), p.delta).epsilon;
  if (alone >= p.epsilon) throw new FedmartError('CONFIG_ERROR', `the item-count release at sigma ${p.countSigma} alone spends epsilon ${alone.toFixed(3)} >= the budget ${p.epsilon}; raise --dp-count-sigma or --epsilon`);
  // Bisection on DP-SGD's own target t: composed ε(σ(t)) is non-decreasing in t.
  const at = (t: number) => {
    const { sigma, epsilon: sgdEpsilon } = computeSigma({ q: p.q, steps: p.steps, delta: p.delta, epsilon: t });
    return { sigma, sgdEpsilon, epsilon: composedEpsilon({ q: p.q, sigma, steps: p.steps, countSigma: p.countSigma, delta: p.delta }).epsilon };
  };
  let lo = (p.epsilon - alone) / 4;
  let best = at(lo);
  for (let k = 0; best.epsilon > p.epsilon && k < 20; k++) best = at((lo /= 2));
  if (best.epsilon > p.epsilon) throw new FedmartError('CONFIG_ERROR', `no DP-SGD noise fits the budget ${p.epsilon} beside the item-count release; raise --epsilon or --dp-count-sigma`);
  let hi = p.epsilon;
  for (let k = 0; k < 30 && hi - lo > 1e-4; k++) {
    const mid = (lo + hi) / 2;
    const r = at(mid);
    if (r.epsilon <= p.epsilon) {
      lo = mid;
      best = r;
    } else hi = mid;
  }
  return best;
}
