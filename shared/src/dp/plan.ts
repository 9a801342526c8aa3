/**
 * How many mechanism steps one round of a DP federation takes, computed the
 * same way by the partner (which runs them and reports its ε) and by the
 * coordinator (which projects them before a round and charges them to the
 * privacy ledger after it), so both accountants see identical (q, σ, steps).
 *
 * - Record level (DP-SGD, Abadi et al. 2016): each local step Poisson-samples
 *   every example with probability q; `localEpochs` expected passes over the
 *   data take ⌈localEpochs / q⌉ steps. Absent an explicit rate,
 *   q = min(1, batchSize / n), so the expected batch is the configured batch.
 *   The partner's example count n is treated as public (it is already sent
 *   in the hello; the standard assumption of DP-SGD implementations).
 * - Partner level (DP-FedAvg, McMahan et al. 2018): one step per round with
 *   q = 1. The coordinator picks a fixed-size subset of live partners, which
 *   is not Poisson sampling, so no amplification by sampling is claimed.
 *
 * Pure: no I/O.
 */

/** One round's charge to one accountant: `steps` steps of the subsampled Gaussian mechanism. */
export interface DpRoundCharge {
  /** Sampling probability per step, in (0, 1]. */
  q: number;
  /** Steps this round. */
  steps: number;
}

/**
 * Record-level steps of one partner in one round.
 * @param p - sampleRate (optional), batchSize, localEpochs and the partner's training example count
 * @returns q and the number of DP-SGD steps
 * @throws RangeError on a non-positive batch size, epoch count or example count
 * @example
 * recordLevelCharge({ batchSize: 256, localEpochs: 1, numExamples: 5120 }); // { q: 0.05, steps: 20 }
 */
export function recordLevelCharge(p: { sampleRate?: number | undefined; batchSize: number; localEpochs: number; numExamples: number }): DpRoundCharge {
  if (!(Number.isInteger(p.batchSize) && p.batchSize >= 1)) throw new RangeError(`recordLevelCharge: batchSize must be an integer >= 1, got ${String(p.batchSize)}`);
  if (!(Number.isInteger(p.localEpochs) && p.localEpochs >= 1)) throw new RangeError(`recordLevelCharge: localEpochs must be an integer >= 1, got ${String(p.localEpochs)}`);
  if (!(Number.isInteger(p.numExamples) && p.numExamples >= 1)) throw new RangeError(`recordLevelCharge: numExamples must be an integer >= 1, got ${String(p.numExamples)}`);
  const q = p.sampleRate ?? Math.min(1, p.batchSize / p.numExamples);
  if (!(q > 0 && q <= 1)) throw new RangeError(`recordLevelCharge: sampleRate must be in (0, 1], got ${String(q)}`);
  // 1e-9 guards ⌈1/0.05⌉ against 20.000000000000004.
  return { q, steps: Math.max(1, Math.ceil(p.localEpochs / q - 1e-9)) };
}

/** Partner-level charge of one round: one step, q = 1 (no sampling amplification claimed). */
export const PARTNER_LEVEL_CHARGE: Readonly<DpRoundCharge> = Object.freeze({ q: 1, steps: 1 });
