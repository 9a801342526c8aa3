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
import { decodeLimbMean, decodeLimbSum, encodeLimbs, LIMBS, pricingLayout, readLayout, type PricingTaskSpec } from './wire.ts';

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
  const stats = productStats(rows, p, spec.fixedEffects, spec.encoding === 'dp' ? { radius: spec.rowBound!, scale: spec.rowScale! } : undefined);
  const out = new Float32Array(jointParameterCount(pricingLayout(spec)));
  for (const [k, name] of spec.products.entries()) {
    const st = stats.get(name);
    if (spec.encoding === 'exact') {
      if (st) encodeLimbs(flattenStats(st, p), out, 1 + k * s * LIMBS); // a product this partner does not sell: zeros
    } else {
      // Every product is noised, sold here or not: which products a partner sells is data too.
      const flat = st ? flattenStats(st, p) : new Float64Array(s);
      const noise = gaussianNoise(s, noiseStd);
      const scale = spec.dpScale!;
      for (let i = 0; i < s; i++) out[1 + k * s + i] = (flat[i]! + noise[i]!) / scale;
    }
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
  const out = new Map<string, Float64Array>();
  for (const [k, name] of meta.products.entries()) {
    if (meta.encoding === 'exact') {
      const w = weights.subarray(1 + k * s * LIMBS, 1 + (k + 1) * s * LIMBS);
      out.set(name, partners === null ? decodeLimbMean(w) : decodeLimbSum(w, partners));
    } else out.set(name, Float64Array.from(weights.subarray(1 + k * s, 1 + (k + 1) * s), (v) => v * (partners ?? 1)));
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
  for (const [name, v] of committedStats(layout, weights, partners)) {
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
          const need = recordSensitivity(spec.rowBound!, spec.fixedEffects);
          if (!(dp.clip >= need * (1 - 1e-9))) throw new FedmartError('FORBIDDEN', `pricing: the terms set the DP clip to ${dp.clip}, below the sensitivity ${need} of row bound ${spec.rowBound}; the noise would not cover one row`);
          return { delta: deltaOf(partnerContribution(train, spec, shareNoiseStd(dp.noiseMultiplier * dp.clip, spec.noiseShares))), q: 1, steps: 1 };
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
