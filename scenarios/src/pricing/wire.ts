/**
 * How the pricing task's sufficient statistics travel as the federation's
 * joint Float32 vector, exactly.
 *
 * The coordinator commits global + Σ wᵢ·δᵢ / Σ wᵢ in Float32, and secure
 * aggregation quantizes each coordinate (clip c, scale Q/(W·c), Q =
 * ⌊(2^31−1)/M⌋; `shared/src/secagg/quantize.ts`). Neither keeps a float64
 * statistic. So each partner (weight 1: the pooled normal equations are the
 * SUM of the partners' statistics) writes every statistic u as the integer
 * U = round(u·2^F) (F = 40, so 2^−40 absolute resolution, |u| < 2^55) and
 * sends U's balanced base-2^12 digits ("limbs", |L| ≤ 2048, 8 of them) —
 * small integers that Float32 holds exactly. The committed value of a limb
 * is ΣL/P in Float32, off by at most |ΣL|·2^−24 ≤ P·2^−13; secure
 * aggregation adds at most M·c/Q·… ≤ M²·2048/2^31 per coordinate. Both stay
 * far below ½ for P, M ≤ 200, so P·committed rounds back to the exact
 * integer ΣL, and Σ_k ΣL_k·2^(12k−F) is the pooled statistic to 2^−40·P.
 * P is the number of partners in the committing round (the model version's
 * participants).
 *
 * With record-level DP the statistics are instead sent as one scaled float
 * vector (noise and limbs do not mix), see `dpScale` in the task spec.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { TensorLayoutSpec } from '@fedmart/shared/task/layout';
import { statCount } from './demand.ts';

export const LIMBS = 8;
export const LIMB_BITS = 12;
export const FRACTION_BITS = 40;
/** Largest limb magnitude, the secure-aggregation clip that never clips a limb. */
export const LIMB_BOUND = 2 ** (LIMB_BITS - 1);
const BASE = 2 ** LIMB_BITS;

/** The task's settings every partner agrees on (the federation's `taskSpec`). */
export interface PricingTaskSpec {
  products: string[];
  regressors: string[];
  fixedEffects: boolean;
  /** 'exact' = limbs; 'dp' = scaled floats, each partner's clipped and noised (record-level DP, `task.ts`). */
  encoding: 'exact' | 'dp';
  /** DP only: statistics travel divided by this public constant (keeps coordinates O(1) for Float32 and SecAgg). */
  dpScale?: number;
  /** DP only: the public bound R on each demeaned row, ‖(x̃, ỹ)‖₂ ≤ R. */
  rowBound?: number;
  /** DP only: public scale of each regressor and, last, of log units; rows are divided by it before the bound. */
  rowScale?: number[];
  /**
   * DP only: distributed noise (Distributed Gaussian; Dwork, Kenthapadi, McSherry, Mironov & Naor, EUROCRYPT 2006,
   * "Our data, ourselves"; Kairouz, Liu & Steinke, ICML 2021). Set to P (the federation's pinned minClients) only under
   * secure aggregation: each partner adds N(0, σ²Δ₂²/P), so the secure sum of ≥ P partners carries N(0, σ²Δ₂²).
   * Absent or 1: each partner adds the full σΔ₂ to its own statistics.
   */
  noiseShares?: number;
  /** DP with noiseShares > 1: the federation aggregates by secure aggregation (partners refuse shares otherwise). */
  secureSum?: boolean;
  /** DP only: the two-stage mechanism of `two-stage.ts` in two federated rounds (absent: one release). */
  twoStage?: TwoStageSpec;
}

/**
 * The two-stage DP release (`two-stage.ts`, `task.ts`): round 1 releases the row-clipped statistics, round 2 the
 * residual-clipped ones, each at noise multiplier σ/√(2·budget[r]) (budget[0] + budget[1] = 1), so the two Gaussian
 * releases compose in RDP to exactly the ledger's charge for two steps at σ (Σ α/(2σ_r²) = α/σ²).
 */
export interface TwoStageSpec {
  /** k: the residual clip is c = k·σ̂ (σ̂ from round 1's noisy release). */
  residualK: number;
  /** R_x: bound on ‖x̃/scale‖₂ in round 2. */
  xRadius: number;
  /** Budget shares of the two releases (RDP), summing to 1. */
  budget: [number, number];
  /** P: the partners of each round (pinned minClients); turns committed means into sums. */
  partners: number;
  /** Round 2's statistics travel divided by this public constant. */
  dpScale2: number;
  /**
   * With fixed effects: both rounds on pairwise differences inside each cell (`pairwise.ts`), no cell mean, so no
   * fixed-effect coupling in the sensitivity. cellCap = T, the public bound on rows per (product, level) cell.
   */
  pairs?: { cellCap: number };
}

/** Released coordinates per product: round 1's statistics, then (two-stage) round 2's w·upper(A), b. */
export function productWidth(spec: Pick<PricingTaskSpec, 'regressors' | 'twoStage'>): number {
  const p = spec.regressors.length;
  return statCount(p) + (spec.twoStage ? (p * (p + 1)) / 2 + p : 0);
}

/** Tensor names carry what a consumer needs to read the model without the task spec. */
const META = 'pricing-ols-v1';

/**
 * The joint layout: one tensor per product (`[statistics, limbs]`, or
 * `[statistics]` under DP) named `product:<name>`, and one naming the regressors.
 * @param spec - the task spec
 * @returns the federation's model
 * @throws FedmartError CONFIG_ERROR when names are too long for a tensor name
 */
export function pricingLayout(spec: PricingTaskSpec): TensorLayoutSpec {
  const p = spec.regressors.length;
  const s = statCount(p);
  const head = `${META}|${spec.encoding}|fe=${spec.fixedEffects ? 1 : 0}|${spec.regressors.join(',')}${spec.encoding === 'dp' ? `|s=${spec.dpScale}` : ''}${spec.twoStage ? `|s2=${spec.twoStage.dpScale2}` : ''}`;
  if (head.length > 100) throw new FedmartError('CONFIG_ERROR', `pricing: the regressor names (${spec.regressors.join(', ')}) are too long to publish with the model (100 characters in all); rename the columns`);
  const long = spec.products.find((k) => k.length > 90);
  if (long) throw new FedmartError('CONFIG_ERROR', `pricing: product name "${long.slice(0, 20)}…" is longer than 90 characters; shorten the product column's values`);
  return {
    kind: 'tensors',
    tensors: [{ name: head, shape: [1], init: { type: 'zeros' } }, ...spec.products.map((k) => ({ name: `product:${k}`, shape: spec.encoding === 'exact' ? [s, LIMBS] : [productWidth(spec)], init: { type: 'zeros' as const } }))],
  };
}

/** Read what {@link pricingLayout} wrote. */
export function readLayout(layout: TensorLayoutSpec): { encoding: 'exact' | 'dp'; fixedEffects: boolean; regressors: string[]; products: string[]; dpScale: number; dpScale2: number | null } {
  const head = layout.tensors[0]?.name.split('|') ?? [];
  if (head[0] !== META || (head[1] !== 'exact' && head[1] !== 'dp')) throw new FedmartError('UNPROCESSABLE', `pricing: this model is not a pricing demand model (its first tensor is "${layout.tensors[0]?.name ?? ''}"); pass a federation of task pricing`);
  return { encoding: head[1], fixedEffects: head[2] === 'fe=1', regressors: (head[3] ?? '').split(','), products: layout.tensors.slice(1).map((t) => t.name.replace(/^product:/, '')), dpScale: head[4]?.startsWith('s=') ? Number(head[4].slice(2)) : 1, dpScale2: head[5]?.startsWith('s2=') ? Number(head[5].slice(3)) : null };
}

/**
 * Write statistics as balanced base-2^12 limbs of round(u·2^40).
 * @param stats - float64 statistics
 * @param out - destination, `stats.length × LIMBS`, row-major
 * @throws FedmartError DATA_ERROR when a statistic exceeds 2^55 in magnitude
 */
export function encodeLimbs(stats: ArrayLike<number>, out: Float32Array, offset = 0): void {
  for (let i = 0; i < stats.length; i++) {
    const u = stats[i]!;
    if (!Number.isFinite(u) || Math.abs(u) >= 2 ** (LIMBS * LIMB_BITS - 1 - FRACTION_BITS)) throw new FedmartError('DATA_ERROR', `pricing: a sufficient statistic is ${u}, beyond the ±2^55 the exact encoding carries; rescale the quantity or price columns`);
    let r = Math.round(u * 2 ** FRACTION_BITS);
    for (let k = 0; k < LIMBS; k++) {
      const q = Math.round(r / BASE);
      out[offset + i * LIMBS + k] = r - q * BASE;
      r = q;
    }
  }
}

/**
 * Recover the SUM over P partners of their statistics from the committed mean of their limbs.
 * @param committed - committed limbs (ΣL/P in Float32), `count × LIMBS`
 * @param partners - P, the partners whose updates were averaged
 * @returns the summed statistics
 * @throws FedmartError UNPROCESSABLE when a limb is not P·(an integer) within ¼ (wrong P, or altered weights)
 */
export function decodeLimbSum(committed: Float32Array, partners: number): Float64Array {
  const count = committed.length / LIMBS;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let k = LIMBS - 1; k >= 0; k--) {
      const t = committed[i * LIMBS + k]! * partners;
      const s = Math.round(t);
      if (Math.abs(t - s) > 0.25) throw new FedmartError('UNPROCESSABLE', `pricing: committed statistic ${i} limb ${k} times ${partners} partners is ${t}, not an integer; the model was not made by ${partners} pricing partners (or its weights were altered)`);
      v = v * BASE + s;
    }
    out[i] = v * 2 ** -FRACTION_BITS;
  }
  return out;
}

/** Approximate sums up to the common factor 1/P (a partner, not knowing P, evaluating the model). */
export function decodeLimbMean(committed: Float32Array): Float64Array {
  const count = committed.length / LIMBS;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let k = LIMBS - 1; k >= 0; k--) v = v * BASE + committed[i * LIMBS + k]!;
    out[i] = v * 2 ** -FRACTION_BITS;
  }
  return out;
}
