/** Test helper: ε of compositions of the Gaussian mechanism, written out independently of shared/src/dp. */
import { DEFAULT_RDP_ORDERS } from '@fedmart/shared/dp/rdp';

/**
 * ε of T compositions of the Gaussian mechanism with noise multiplier σ: closed-form RDP T·α/(2σ²)
 * (Mironov 2017), converted with Balle et al. 2020 Thm 21 over the shared orders.
 */
export function independentEpsilon(sigma: number, steps: number, delta: number): number {
  let best = Infinity;
  for (const a of DEFAULT_RDP_ORDERS) {
    const rdp = (steps * a) / (2 * sigma * sigma);
    best = Math.min(best, rdp - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a));
  }
  return Math.max(0, best);
}
