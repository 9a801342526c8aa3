/**
 * The pricing task (task id `pricing`) through the seam of
 * `client-node/src/task.ts`: a partner's "update" is its sufficient
 * statistics, demeaned inside its own fixed-effect cells, in the layout of
 * `wire.ts`; one FedAvg round (weight 1 per partner) commits their mean,
 * which the coordinator side turns back into the exact sum and solves.
 * Rows never leave the partner. The object matches `PartnerTask`
 * structurally (scenarios import only `shared`).
 */
import { FedmartError } from '@fedmart/shared/errors';
import { gaussianNoise } from '@fedmart/shared/dp/gaussian';
import type { JointModelSpec } from '@fedmart/shared/task/layout';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { fitFromStats, flattenStats, productStats, statCount, unflattenStats, type DemandRow, type ProductFit, type ProductStats } from './demand.ts';
import { decodeLimbMean, decodeLimbSum, encodeLimbs, LIMBS, pricingLayout, productWidth, readLayout, type PricingTaskSpec, type TwoStageSpec } from './wire.ts';
import { flattenResidualStats, residualSensitivity, residualStats, roundTwoPlan, twoStageSolve, type RoundTwoPlan } from './two-stage.ts';
import { pairResidualSensitivity, pairResidualStats, pairSensitivity, pairStats } from './pairwise.ts';

/**
 * Record-level L2 sensitivity Δ₂ of one product's released statistics
 * (sufficient-statistics perturbation, the "Analyze Gauss" mechanism of
 * Dwork, Talwar, Thakurta & Zhang, STOC 2014; for linear regression Sheffet
 * 2017, "Differentially private ordinary least squares", ICML, and Wang 2018,
 * "Revisiting differentially private linear regression", NeurIPS).
 *
 * Record = one row (a store-week-product observation); neighbours add or
 * remove one row. Write z = (x, y) ∈ ℝ^(p+1); XᵀX (upper triangle), Xᵀy and
 * yᵀy are exactly the upper triangle of Z̃ᵀZ̃, Z̃ the demeaned, clipped rows
 * (‖z̃‖ ≤ R, `RowClip`). The released vector is that triangle, n and the
 * number of fixed-effect levels (Σy, Σy² are not released under DP).
 * - The row's own term: ‖upper(z̃z̃ᵀ)‖₂ ≤ ‖z̃z̃ᵀ‖_F = ‖z̃‖² ≤ R².
 * - Fixed effects couple rows of a cell: adding z* to a cell of m rows with
 *   mean z̄ moves the mean by s = u/(m+1), u = z* − z̄, so every other row's
 *   demeaned value moves by −s. Projection onto the R-ball is
 *   non-expansive, so each other clipped row moves by ≤ ‖s‖, and
 *   ‖aaᵀ − bbᵀ‖_F ≤ ‖a − b‖(‖a‖ + ‖b‖) ≤ 2R‖s‖; over the m others that is
 *   ≤ 2R·m‖u‖/(m+1) < 2R‖u‖. For a row within R of its cell's mean
 *   (‖u‖ ≤ R) the coupling adds < 2R². (Without clipping the exact
 *   within identity gives the rank-one change m/(m+1)·uuᵀ, norm < ‖u‖².)
 * - n changes by 1 and the level count by at most 1 (a new cell).
 * So Δ₂ = √((3R²)² + 1 + 1). The bound on the coupling needs the row's raw
 * deviation from its cell mean to be ≤ R: a row further out is clipped in
 * its own term but its pull on the cell mean is not bounded by R — the
 * guarantee is stated for rows within R of their cell mean (README).
 * Without fixed effects there is no coupling: Δ₂ = √(R⁴ + 1).
 * @param rowBound - R
 * @param fixedEffects - whether rows are demeaned within cells
 */
export function recordSensitivity(rowBound: number, fixedEffects: boolean): number {
  const r2 = rowBound * rowBound;
  return fixedEffects ? Math.sqrt(9 * r2 * r2 + 2) : Math.sqrt(r2 * r2 + 1);
}

/**
 * Round 1's record-level sensitivity as the spec releases it: on pairwise differences (`pairwise.ts`, two stages with
 * fixed effects) √(R⁴ + 2), else the within-demeaned {@link recordSensitivity}.
 */
export function roundOneSensitivity(spec: Pick<PricingTaskSpec, 'rowBound' | 'fixedEffects' | 'twoStage'>): number {
  return spec.twoStage?.pairs ? pairSensitivity(spec.rowBound!) : recordSensitivity(spec.rowBound!, spec.fixedEffects);
}

/** Round 1's clipped statistics of some rows, as the spec releases them (pairs, or within-demeaned rows). */
function roundOneStats(rows: readonly DemandRow[], spec: PricingTaskSpec): Map<string, ProductStats> {
  const p = spec.regressors.length;
  if (spec.encoding !== 'dp') return productStats(rows, p, spec.fixedEffects);
  const pairs = spec.twoStage?.pairs;
  return pairs ? pairStats(rows, p, { radius: spec.rowBound!, scale: spec.rowScale!, cellCap: pairs.cellCap }) : productStats(rows, p, spec.fixedEffects, { radius: spec.rowBound!, scale: spec.rowScale! });
}

/**
 * The std of one partner's noise: σΔ₂ at each partner, or its 1/√S share when the noise is distributed over a secure
 * sum of S partners (S independent N(0, σ²Δ₂²/S) sum to N(0, σ²Δ₂²)).
 * @param fullStd - σΔ₂, the noise the released sum must carry
 * @param shares - S (undefined = 1)
 */
export function shareNoiseStd(fullStd: number, shares: number | undefined): number {
  return fullStd / Math.sqrt(shares ?? 1);
}

/**
 * The std of the noise on the summed statistics of P partners: √P·σΔ₂ with noise at each partner, σΔ₂·√(P/S) with
 * S shares (σΔ₂ when P = S).
 */
export function sumNoiseStd(fullStd: number, partners: number, shares: number | undefined): number {
  return shareNoiseStd(fullStd, shares) * Math.sqrt(partners);
}

/**
 * The vector a partner contributes (before subtracting the global weights).
 * @param noiseStd - DP only: this partner adds N(0, noiseStd²) to every statistic of every product (σ·Δ₂) before scaling
 */
export function partnerContribution(rows: readonly DemandRow[], spec: PricingTaskSpec, noiseStd = 0): Float32Array {
  const p = spec.regressors.length;
  const s = statCount(p);
  const stats = roundOneStats(rows, spec);
  const out = new Float32Array(jointParameterCount(pricingLayout(spec)));
  const width = productWidth(spec);
  for (const [k, name] of spec.products.entries()) {
    const st = stats.get(name);
    if (spec.encoding === 'exact') {
      if (st) encodeLimbs(flattenStats(st, p), out, 1 + k * s * LIMBS); // a product this partner does not sell: zeros
    } else {
      // Every product is noised, sold here or not: which products a partner sells is data too.
      const flat = st ? flattenStats(st, p) : new Float64Array(s);
      const noise = gaussianNoise(s, noiseStd);
      const scale = spec.dpScale!;
      for (let i = 0; i < s; i++) out[1 + k * width + i] = (flat[i]! + noise[i]!) / scale;
    }
  }
  return out;
}

/**
 * Noise multiplier of release r of the two-stage mechanism: σ/√(2·budget[r]). Two Gaussian releases of
 * sensitivity-normalised noise σ₁, σ₂ have RDP α/2·(1/σ₁² + 1/σ₂²) (Mironov 2017, Prop. 7 and composition), which at
 * budget[0] + budget[1] = 1 is α/σ², exactly the ledger's charge for two steps at σ and q = 1 — so the budget can be
 * split unevenly (round 2 carries the estimate; round 1 only centres its clip) at no cost in the accounting.
 */
export function stageNoiseMultiplier(sigma: number, ts: TwoStageSpec, release: 0 | 1): number {
  return sigma / Math.sqrt(2 * ts.budget[release]);
}

/**
 * Round 2's plan per product (β₀, c, w, Δ) from round 1's committed section of the global weights, as every partner
 * and the coordinator derive it (post-processing of round 1; `two-stage.ts`, roundTwoPlan).
 * @param sigma - the federation's noise multiplier (the ledger's σ for two steps)
 */
export function roundTwoPlans(spec: PricingTaskSpec, weights: Float32Array, sigma: number): Map<string, RoundTwoPlan | null> {
  const ts = spec.twoStage!;
  const p = spec.regressors.length;
  const s = statCount(p);
  const width = productWidth(spec);
  const noiseStd1 = sumNoiseStd(stageNoiseMultiplier(sigma, ts, 0) * roundOneSensitivity(spec), ts.partners, spec.noiseShares);
  const out = new Map<string, RoundTwoPlan | null>();
  for (const [k, name] of spec.products.entries()) {
    const v = Float64Array.from(weights.subarray(1 + k * width, 1 + k * width + s), (x) => x * ts.partners * spec.dpScale!);
    out.set(name, roundTwoPlan(unflattenStats(v, p), p, { scale: spec.rowScale!, noiseStd1, residualK: ts.residualK, xRadius: ts.xRadius, fixedEffects: spec.fixedEffects, pairs: Boolean(ts.pairs) }));
  }
  return out;
}

/** Whether round 1's section of the global weights is still empty (no release committed yet). */
function roundOneCommitted(spec: PricingTaskSpec, weights: Float32Array): boolean {
  const s = statCount(spec.regressors.length);
  const width = productWidth(spec);
  for (let k = 0; k < spec.products.length; k++) for (let i = 0; i < s; i++) if (weights[1 + k * width + i] !== 0) return true;
  return false;
}

/**
 * A partner's round-2 contribution: for each product, [w·upper(x̂x̂ᵀ), x̂ψ(r)/c] of its own rows (`residualStats`)
 * plus N(0, (σ₂Δ_k)²/S), Δ_k the product's round-2 sensitivity at its planned w (a row touches one product's block,
 * so each block is calibrated to its own Δ_k). Round 1's section of the update is 0 (the global keeps it).
 * A product whose round-1 solve failed is released as pure noise at w = 1.
 */
export function partnerRoundTwo(rows: readonly DemandRow[], spec: PricingTaskSpec, plans: ReadonlyMap<string, RoundTwoPlan | null>, noiseMultiplier2: number): Float32Array {
  const ts = spec.twoStage!;
  const p = spec.regressors.length;
  const s = statCount(p);
  const width = productWidth(spec);
  const t = width - s;
  const beta0 = new Map<string, number[]>();
  const clip = new Map<string, number>();
  for (const [k, pl] of plans) if (pl) { beta0.set(k, pl.beta0); clip.set(k, pl.residualClip); }
  const xScale = spec.rowScale!.slice(0, p);
  const stats = ts.pairs ? pairResidualStats(rows, p, { beta0, residualClip: clip, scale: xScale, xRadius: ts.xRadius, cellCap: ts.pairs.cellCap }) : residualStats(rows, p, spec.fixedEffects, { beta0, residualClip: clip, scale: xScale, xRadius: ts.xRadius, xtxWeight: 1 });
  const out = new Float32Array(jointParameterCount(pricingLayout(spec)));
  for (const [k, name] of spec.products.entries()) {
    const pl = plans.get(name) ?? null;
    const w = pl?.xtxWeight ?? 1;
    const st = stats.get(name);
    const flat = st ? flattenResidualStats(st, p, w) : new Float64Array(t);
    const noise = gaussianNoise(t, shareNoiseStd(noiseMultiplier2 * (pl?.sensitivity ?? (ts.pairs ? pairResidualSensitivity(ts.xRadius, 1) : residualSensitivity(ts.xRadius, 1, spec.fixedEffects))), spec.noiseShares));
    for (let i = 0; i < t; i++) out[1 + k * width + s + i] = (flat[i]! + noise[i]!) / ts.dpScale2;
  }
  return out;
}

/**
 * The coordinator's two-stage solve per product: round 2's plan from the committed round-1 section, then
 * β = β₀ + D⁻¹(A + E)⁻¹(b + e)·c (`twoStageSolve`). SE and R² are round 1's noisy OLS ones (the DP noise is not in them).
 * @param sigma - the federation's noise multiplier
 */
export function solveTwoStage(layout: JointModelSpec, spec: PricingTaskSpec, weights: Float32Array, sigma: number): Map<string, (ProductFit & { plan: RoundTwoPlan }) | { error: string }> {
  const ts = spec.twoStage!;
  const p = spec.regressors.length;
  const s = statCount(p);
  const round1 = solveCommitted(layout, weights, ts.partners, stageNoiseMultiplier(sigma, ts, 0) * roundOneSensitivity(spec), spec.rowScale, spec.noiseShares);
  const plans = roundTwoPlans(spec, weights, sigma);
  const sums = committedStats(layout, weights, ts.partners);
  const out = new Map<string, (ProductFit & { plan: RoundTwoPlan }) | { error: string }>();
  const s2 = stageNoiseMultiplier(sigma, ts, 1);
  for (const name of spec.products) {
    const f1 = round1.get(name);
    const pl = plans.get(name);
    if (!f1 || 'error' in f1 || !pl) { out.set(name, f1 && 'error' in f1 ? f1 : { error: `pricing: product "${name}": round 1's noisy normal equations stay singular` }); continue; }
    const released = Float64Array.from(sums.get(name)!.subarray(s), (x) => x * ts.dpScale2);
    const beta = twoStageSolve(released, p, { beta0: pl.beta0, residualClip: pl.residualClip, scale: spec.rowScale!.slice(0, p), xtxWeight: pl.xtxWeight, noiseStd: sumNoiseStd(s2 * pl.sensitivity, ts.partners, spec.noiseShares) });
    if (!beta) { out.set(name, { error: `pricing: product "${name}": round 2's noisy normal equations stay singular even with a ridge of the noise scale` }); continue; }
    out.set(name, { ...f1, elasticity: beta[0]!, coefficients: beta, plan: pl });
  }
  return out;
}

/**
 * Summed statistics per product from committed weights.
 * @param layout - the published layout
 * @param weights - committed weights
 * @param partners - P, or null for the mean up to 1/P (a partner's view)
 */
export function committedStats(layout: JointModelSpec, weights: Float32Array, partners: number | null): Map<string, Float64Array> {
  if (layout.kind !== 'tensors') throw new FedmartError('UNPROCESSABLE', 'pricing: the model is an MLP, not a pricing demand model');
  const meta = readLayout(layout);
  const s = statCount(meta.regressors.length);
  const width = layout.tensors[1] ? layout.tensors[1].shape[0]! : s;
  const out = new Map<string, Float64Array>();
  for (const [k, name] of meta.products.entries()) {
    if (meta.encoding === 'exact') {
      const w = weights.subarray(1 + k * s * LIMBS, 1 + (k + 1) * s * LIMBS);
      out.set(name, partners === null ? decodeLimbMean(w) : decodeLimbSum(w, partners));
    } else out.set(name, Float64Array.from(weights.subarray(1 + k * width, 1 + (k + 1) * width), (v) => v * (partners ?? 1))); // two-stage: round 1 then round 2
  }
  return out;
}

/**
 * The coordinator-side solve: per product, OLS from the summed statistics.
 * @param layout - the published layout
 * @param weights - committed weights
 * @param partners - P (participants of the committing round)
 * @param noiseStd - DP: σΔ₂ (the sum's noise under shares), for the ridge's scale
 * @param rowScale - DP: the public column units
 * @param noiseShares - DP: the task spec's noiseShares
 * @returns product → fit, or an error message for products that cannot be solved
 */
export function solveCommitted(layout: JointModelSpec, weights: Float32Array, partners: number, noiseStd = 0, rowScale?: readonly number[], noiseShares?: number): Map<string, ProductFit | { error: string }> {
  if (layout.kind !== 'tensors') throw new FedmartError('UNPROCESSABLE', 'pricing: the model is an MLP, not a pricing demand model');
  const meta = readLayout(layout);
  const p = meta.regressors.length;
  const out = new Map<string, ProductFit | { error: string }>();
  for (const [name, all] of committedStats(layout, weights, partners)) {
    const v = all.subarray(0, statCount(p));
    const st = unflattenStats(meta.encoding === 'dp' ? v.map((x) => x * meta.dpScale) : v, p);
    if (meta.encoding === 'exact') {
      try {
        out.set(name, fitFromStats(st, p, `product "${name}"`, meta.fixedEffects));
      } catch (e) {
        out.set(name, { error: (e as Error).message });
      }
      continue;
    }
    out.set(name, solveNoisy(st, p, name, meta.fixedEffects, sumNoiseStd(noiseStd, partners, noiseShares), rowScale ?? Array(p + 1).fill(1)));
  }
  return out;
}

/**
 * Solve noisy normal equations (post-processing, no privacy cost). XᵀX plus
 * a symmetric Gaussian noise matrix may be indefinite; as Sheffet 2017 and
 * Wang 2018 (AdaSSP) do, add a ridge λI of the noise scale: the noise
 * matrix's spectral norm is about s·2√p (s the per-entry noise std of the
 * summed statistics), so λ starts there and doubles until Cholesky succeeds.
 * No ridge when the noisy matrix is already positive definite. R² is the
 * within R² (raw Σy, Σy² are not released under DP).
 */
function solveNoisy(st: ProductStats, p: number, name: string, fixedEffects: boolean, sumNoiseStd: number, scale: readonly number[]): ProductFit | { error: string } {
  let lambda = 0;
  const sy = scale[p]!;
  const xty = Float64Array.from(st.xty, (v, a) => v * scale[a]! * sy);
  for (let k = 0; k < 40; k++) {
    // ridge in the released (scaled) units, then back to the data's units
    const xtx = Float64Array.from(st.xtx, (v, i) => (v + (Math.floor(i / p) === i % p ? lambda : 0)) * scale[Math.floor(i / p)]! * scale[i % p]!);
    try {
      const f = fitFromStats({ ...st, xtx, xty, yty: st.yty * sy * sy }, p, `product "${name}"`, fixedEffects);
      return { ...f, r2: f.r2Within, n: Math.round(f.n) };
    } catch {
      lambda = lambda === 0 ? Math.max(sumNoiseStd, 1e-9) * 2 * Math.sqrt(p) : lambda * 2;
    }
  }
  return { error: `pricing: product "${name}": its noisy normal equations stay singular even with a ridge of the noise scale (too few rows for the DP noise); pool more rows, raise --epsilon or lower --dp-row-bound` };
}

/**
 * A partner's pricing task.
 * @param id - unused by the seam; names the partner in errors
 * @param train - rows the statistics come from
 * @param validation - rows the committed model is scored on (mean squared within residual)
 */
export function pricingTask(train: readonly DemandRow[], validation: readonly DemandRow[]) {
  let spec: PricingTaskSpec | null = null;
  let released2 = false;
  return {
    id: 'pricing',
    /** Weight 1: the pooled normal equations are the plain sum of the partners' statistics. */
    numExamples: 1,
    accept(model: JointModelSpec, taskSpec: unknown): void {
      const ts = taskSpec as PricingTaskSpec | undefined;
      if (model.kind !== 'tensors' || !ts || !Array.isArray(ts.regressors) || !Array.isArray(ts.products)) throw new FedmartError('CONFIG_ERROR', "pricing: the federation's model is not a pricing layout with its task spec; create it with fedmart scenario pricing");
      if (train.length > 0 && train[0]!.x.length !== ts.regressors.length) throw new FedmartError('DATA_ERROR', `pricing: local rows have ${train[0]!.x.length} regressors, the federation expects ${ts.regressors.length} (${ts.regressors.join(', ')}); use the same --controls and --cross-prices`);
      if (ts.encoding === 'dp' && !(ts.dpScale! > 0 && ts.rowBound! > 0)) throw new FedmartError('CONFIG_ERROR', 'pricing: a DP federation must set dpScale and rowBound in its task spec');
      if (ts.noiseShares !== undefined && !(Number.isSafeInteger(ts.noiseShares) && ts.noiseShares >= 1)) throw new FedmartError('CONFIG_ERROR', `pricing: noiseShares must be an integer >= 1, got ${String(ts.noiseShares)}`);
      // A share is 1/√P of the noise: released in the clear it would not cover a row, so shares need the secure sum.
      if ((ts.noiseShares ?? 1) > 1 && ts.secureSum !== true) throw new FedmartError('FORBIDDEN', 'pricing: the task spec splits the DP noise into shares but the federation does not aggregate by secure aggregation; a share alone would not cover a row (create it with --secure-agg)');
      if (ts.twoStage) {
        const t = ts.twoStage;
        if (ts.encoding !== 'dp') throw new FedmartError('CONFIG_ERROR', 'pricing: the two-stage mechanism is a DP release; its task spec must use the dp encoding');
        if (t.pairs && !(ts.fixedEffects && Number.isSafeInteger(t.pairs.cellCap) && t.pairs.cellCap >= 2)) throw new FedmartError('CONFIG_ERROR', `pricing: the pairwise two-stage release needs fixed effects and an integer cell cap >= 2, got ${JSON.stringify(t.pairs)}`);
        if (!(t.residualK > 0 && t.xRadius > 0 && t.dpScale2 > 0 && Number.isSafeInteger(t.partners) && t.partners >= 1 && t.budget.length === 2 && t.budget.every((b) => b > 0) && Math.abs(t.budget[0] + t.budget[1] - 1) < 1e-9)) throw new FedmartError('CONFIG_ERROR', `pricing: bad two-stage settings ${JSON.stringify(t)} (residualK, xRadius, dpScale2 > 0; partners an integer; two budget shares > 0 summing to 1)`);
      }
      if (jointParameterCount(model) !== jointParameterCount(pricingLayout(ts))) throw new FedmartError('CONFIG_ERROR', "pricing: the federation's layout does not match its task spec");
      spec = ts;
    },
    round({ weights }: { weights: Float32Array }) {
      const deltaOf = (c: Float32Array): Float32Array => {
        const delta = new Float32Array(c.length);
        for (let i = 0; i < c.length; i++) delta[i] = c[i]! - weights[i]!;
        return delta;
      };
      return {
        plain: async () => {
          if (!spec) throw new FedmartError('UNAVAILABLE', 'pricing: no task spec yet (no welcome received)');
          if (spec.encoding === 'dp') throw new FedmartError('CONFIG_ERROR', 'pricing: this federation publishes a DP layout but its round carries no record-level DP plan; create it with --dp record');
          return { delta: deltaOf(partnerContribution(train, spec)), metrics: { rows: train.length } };
        },
        /**
         * Record-level DP: this partner clips its rows, adds N(0, (σ·Δ₂)²/S) to its own statistics (the agent's
         * plan gives σ and clip = Δ₂ from the pinned terms; S = noiseShares, 1 unless the noise is distributed over
         * a secure sum of S partners) and releases them once: q = 1, one step. The charge is for the sum's σ.
         */
        recordDp: async (dp: { clip: number; noiseMultiplier: number }) => {
          if (!spec) throw new FedmartError('UNAVAILABLE', 'pricing: no task spec yet (no welcome received)');
          if (spec.encoding !== 'dp') throw new FedmartError('CONFIG_ERROR', 'pricing: record-level DP needs the DP layout (scaled statistics); create the federation with --dp record');
          const need = roundOneSensitivity(spec);
          if (!(dp.clip >= need * (1 - 1e-9))) throw new FedmartError('FORBIDDEN', `pricing: the terms set the DP clip to ${dp.clip}, below the sensitivity ${need} of row bound ${spec.rowBound}; the noise would not cover one row`);
          const ts = spec.twoStage;
          if (!ts) return { delta: deltaOf(partnerContribution(train, spec, shareNoiseStd(dp.noiseMultiplier * dp.clip, spec.noiseShares))), q: 1, steps: 1 };
          // Two stages: release 1 while round 1's section is empty, then release 2 from the committed release 1; never a third.
          if (!roundOneCommitted(spec, weights)) return { delta: deltaOf(partnerContribution(train, spec, shareNoiseStd(stageNoiseMultiplier(dp.noiseMultiplier, ts, 0) * dp.clip, spec.noiseShares))), q: 1, steps: 1 };
          if (released2) throw new FedmartError('FORBIDDEN', 'pricing: this partner already made both releases of the two-stage mechanism; a third round would spend budget the mechanism does not use');
          released2 = true;
          const c = partnerRoundTwo(train, spec, roundTwoPlans(spec, weights, dp.noiseMultiplier), stageNoiseMultiplier(dp.noiseMultiplier, ts, 1));
          const s = statCount(spec.regressors.length);
          const width = productWidth(spec);
          // keep round 1's committed section: its delta is 0
          for (let k = 0; k < spec.products.length; k++) for (let i = 0; i < s; i++) c[1 + k * width + i] = weights[1 + k * width + i]!;
          return { delta: deltaOf(c), q: 1, steps: 1 };
        },
      };
    },
    async evaluate(weights: Float32Array) {
      if (!spec) throw new FedmartError('UNAVAILABLE', 'pricing: no task spec yet (no welcome received)');
      // Under DP a validation loss would be a noiseless statistic of this partner's rows: release nothing.
      if (spec.encoding === 'dp') return { numExamples: 1, metrics: { loss: 0 } };
      const p = spec.regressors.length;
      const layout = pricingLayout(spec);
      const sums = committedStats(layout, weights, null);
      const local = productStats(validation, p, spec.fixedEffects);
      let sq = 0;
      let n = 0;
      for (const [name, v] of sums) {
        const st = unflattenStats(v, p);
        const loc = local.get(name);
        if (!loc || !(st.n > 0)) continue;
        let beta: number[];
        try {
          beta = fitFromStats({ ...st, levels: 0, n: Math.max(st.n, p + 1) }, p, name, spec.fixedEffects).coefficients;
        } catch {
          continue;
        }
        // Σ(ỹ − x̃β)² = yᵀy − 2βᵀXᵀy + βᵀXᵀXβ on this partner's own validation cells.
        let r = loc.yty;
        for (let a = 0; a < p; a++) {
          r -= 2 * beta[a]! * loc.xty[a]!;
          for (let b = 0; b < p; b++) r += beta[a]! * beta[b]! * loc.xtx[a * p + b]!;
        }
        sq += r;
        n += loc.n;
      }
      return { numExamples: Math.max(1, n), metrics: { loss: n > 0 ? sq / n : 0 } };
    },
  };
}
