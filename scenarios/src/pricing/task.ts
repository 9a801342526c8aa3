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
import type { JointModelSpec } from '@fedmart/shared/task/layout';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { fitFromStats, flattenStats, productStats, statCount, unflattenStats, type DemandRow, type ProductFit } from './demand.ts';
import { decodeLimbMean, decodeLimbSum, encodeLimbs, LIMBS, pricingLayout, readLayout, type PricingTaskSpec } from './wire.ts';

/** The vector a partner contributes (before subtracting the global weights). */
export function partnerContribution(rows: readonly DemandRow[], spec: PricingTaskSpec): Float32Array {
  const p = spec.regressors.length;
  const s = statCount(p);
  const stats = productStats(rows, p, spec.fixedEffects, spec.encoding === 'dp' ? spec.rowClip : undefined);
  const out = new Float32Array(jointParameterCount(pricingLayout(spec)));
  for (const [k, name] of spec.products.entries()) {
    const st = stats.get(name);
    if (!st) continue; // this partner does not sell the product: zeros
    const flat = flattenStats(st, p);
    if (spec.encoding === 'exact') encodeLimbs(flat, out, 1 + k * s * LIMBS);
    else {
      const scale = spec.dpScale!;
      for (let i = 0; i < s; i++) out[1 + k * s + i] = flat[i]! / scale;
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
 * @returns product → fit, or an error message for products that cannot be solved
 */
export function solveCommitted(layout: JointModelSpec, weights: Float32Array, partners: number): Map<string, ProductFit | { error: string }> {
  if (layout.kind !== 'tensors') throw new FedmartError('UNPROCESSABLE', 'pricing: the model is an MLP, not a pricing demand model');
  const meta = readLayout(layout);
  const p = meta.regressors.length;
  const out = new Map<string, ProductFit | { error: string }>();
  for (const [name, v] of committedStats(layout, weights, partners)) {
    const st = unflattenStats(meta.encoding === 'dp' ? v.map((x) => x * meta.dpScale) : v, p);
    try {
      out.set(name, fitFromStats(st, p, `product "${name}"`, meta.fixedEffects));
    } catch (e) {
      out.set(name, { error: meta.encoding === 'dp' ? `pricing: product "${name}": the DP noise on its statistics left normal equations that are not positive definite (noise σ·C swamps the partners' statistics; see the README on partner-level DP with few partners)` : (e as Error).message });
    }
  }
  return out;
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
      if (ts.encoding === 'dp' && !(ts.dpScale! > 0 && ts.rowClip)) throw new FedmartError('CONFIG_ERROR', 'pricing: a DP federation must set dpScale and rowClip in its task spec');
      if (jointParameterCount(model) !== jointParameterCount(pricingLayout(ts))) throw new FedmartError('CONFIG_ERROR', "pricing: the federation's layout does not match its task spec");
      spec = ts;
    },
    round({ weights }: { weights: Float32Array }) {
      return {
        plain: async () => {
          if (!spec) throw new FedmartError('UNAVAILABLE', 'pricing: no task spec yet (no welcome received)');
          const c = partnerContribution(train, spec);
          const delta = new Float32Array(c.length);
          for (let i = 0; i < c.length; i++) delta[i] = c[i]! - weights[i]!;
          return { delta, metrics: { rows: train.length } };
        },
      };
    },
    async evaluate(weights: Float32Array) {
      if (!spec) throw new FedmartError('UNAVAILABLE', 'pricing: no task spec yet (no welcome received)');
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
