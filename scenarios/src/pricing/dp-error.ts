/**
 * Where the error of a DP elasticity comes from (issue 11: "measure which
 * term dominates"), computed, not sampled, from the noiseless statistics a
 * simulation holds anyway.
 *
 * The DP estimate is β̂ = (A + E)⁻¹(b + e), with A, b the clipped statistics
 * (scaled units, `RowClip`), E symmetric with independent N(0, s²) entries on
 * and above the diagonal and e ~ N(0, s² I) on Xᵀy (s: the per-coordinate
 * noise std of the SUM of the partners' releases). Two terms:
 * - clipping bias: β(A, b) − β_pooled (no noise; rows scaled onto the ball
 *   are re-weighted, and promotion spikes are the rows clipped);
 * - noise: to first order dβ = A⁻¹(e − Eβ), so with g the elasticity's row
 *   of A⁻¹, Var from Xᵀy = s²Σg_a², and from XᵀX
 *   = s²[Σ_a (g_aβ_a)² + Σ_{a<b} (g_aβ_b + g_bβ_a)²]
 *   (the delta method; the ridge of `solveNoisy` is ignored).
 * Both are reported in the data's units (× scale_y / scale_price).
 *
 * Pure: no I/O.
 */
import { solveNormal, type ProductStats } from './demand.ts';

/** One product's error terms, in elasticity units. */
export interface ElasticityErrorTerms {
  /** Noiseless clipped estimate minus the pooled (unclipped) one. */
  clipBias: number;
  /** First-order std of the noise term: total, and the parts from noise on XᵀX and on Xᵀy. */
  noiseSd: number;
  noiseSdFromXtx: number;
  noiseSdFromXty: number;
}

/**
 * @param clipped - the pooled statistics of the clipped rows, in scaled units
 * @param p - regressors
 * @param pooledElasticity - the unclipped pooled estimate
 * @param noiseStd - per-coordinate noise std s of the summed release (scaled units)
 * @param scale - public unit of each regressor and, last, of y (`RowClip.scale`)
 * @returns the error terms
 * @throws FedmartError UNPROCESSABLE when the clipped normal equations are singular
 */
export function elasticityErrorTerms(clipped: ProductStats, p: number, pooledElasticity: number, noiseStd: number, scale: readonly number[]): ElasticityErrorTerms {
  const { x: beta } = solveNormal(clipped.xtx, clipped.xty, p, 'the clipped statistics');
  const g = new Float64Array(p);
  const e0 = new Float64Array(p);
  e0[0] = 1;
  // g = A⁻¹ e₀ (A symmetric: its first row is its first column)
  g.set(solveNormal(clipped.xtx, e0, p, 'the clipped statistics').x);
  let vXty = 0;
  let vXtx = 0;
  for (let a = 0; a < p; a++) {
    vXty += g[a]! ** 2;
    vXtx += (g[a]! * beta[a]!) ** 2;
    for (let b = a + 1; b < p; b++) vXtx += (g[a]! * beta[b]! + g[b]! * beta[a]!) ** 2;
  }
  const unit = scale[p]! / scale[0]!;
  const sXty = noiseStd * Math.sqrt(vXty) * unit;
  const sXtx = noiseStd * Math.sqrt(vXtx) * unit;
  return { clipBias: beta[0]! * unit - pooledElasticity, noiseSd: Math.hypot(sXty, sXtx), noiseSdFromXtx: sXtx, noiseSdFromXty: sXty };
}
