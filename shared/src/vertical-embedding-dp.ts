/**
 * Differential privacy of a feature holder's customers in a split NN (issue
 * 16 item 1, "embedding noise for split NN, accounted"): what the label holder
 * sees of a feature holder's customer x_j is (a) the embedding of x_j each
 * time x_j is in a batch and (b) every later embedding, which depends on x_j
 * through the bottom model's weights. Both are made Gaussian mechanisms
 * (Dwork & Roth 2014, §3.5 / App. A) with respect to replacing one customer's
 * feature vector (the label holder knows WHICH customers are aligned — PSI
 * ids — so presence is public and replace-one is the right adjacency):
 * - each released embedding row is clipped to L2 norm C and gets
 *   N(0, (z·2C)²) per coordinate: sensitivity ‖ê(x) − ê(x′)‖ ≤ 2C;
 * - the bottom model trains with DP-SGD (Abadi et al. 2016): each row's
 *   gradient is clipped to C_g, the batch sum gets N(0, (z·2C_g)²) per
 *   weight, so the weights, hence every later embedding of other rows, are
 *   post-processing of DP releases.
 * Per epoch a training row takes part in one batch: one embedding release and
 * one gradient-sum release, each with noise multiplier z. The label holder
 * chooses the batches, so no amplification by sampling is claimed (q = 1):
 * a round of E epochs charges 2E steps of the Gaussian mechanism at q = 1,
 * composed with the RDP accountant (Mironov 2017; ε from RDP with Balle et
 * al. 2020) — a held-out row is released once, within that bound. The
 * feature holder enforces the count: it refuses a batch that would release a
 * row more often than the terms it pinned account for.
 * Not covered: the labels (feature holders see ∂loss/∂embedding; Li et al.,
 * ICLR 2022). Scoring requests (each one more noised release of the scored
 * customers) are charged to each feature holder's own ledger, not the
 * coordinator's (cli/vertical-dp-ledger.ts).
 *
 * Pure: no I/O.
 */
import { computeEpsilon } from './dp/rdp.ts';
import type { DpRoundCharge } from './dp/plan.ts';

/** The embedding-DP terms of a split-NN federation (`VerticalSpec.protections.embeddingDp`). */
export interface EmbeddingDpTerms {
  /** z: noise std divided by the sensitivity (2 × clip). */
  readonly noiseMultiplier: number;
  /** C: L2 bound of each released embedding row. */
  readonly clip: number;
  /** C_g: L2 bound of each row's bottom-model gradient. */
  readonly gradientClip: number;
  readonly delta: number;
}

/** Gaussian releases per training row per epoch: its embedding, and the DP-SGD gradient sum of its batch. */
export const EMBEDDING_DP_RELEASES_PER_EPOCH = 2;

/**
 * One round's charge to each feature holder's accountant.
 * @param epochs - the round's epochs (the spec's)
 * @example embeddingDpCharge(20) // { q: 1, steps: 40 }
 */
export function embeddingDpCharge(epochs: number): DpRoundCharge {
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw new RangeError(`embeddingDpCharge: epochs must be an integer >= 1, got ${String(epochs)}`);
  return { q: 1, steps: EMBEDDING_DP_RELEASES_PER_EPOCH * epochs };
}

/** Noise std on each coordinate of a released embedding row. */
export function embeddingNoiseStd(t: EmbeddingDpTerms): number {
  return t.noiseMultiplier * 2 * t.clip;
}

/** Noise std on each coordinate of the bottom model's summed (clipped) row gradients. */
export function gradientNoiseStd(t: EmbeddingDpTerms): number {
  return t.noiseMultiplier * 2 * t.gradientClip;
}

/** ε after `rounds` rounds of `epochs` epochs each (what the ledger shows). */
export function embeddingDpEpsilon(t: EmbeddingDpTerms, epochs: number, rounds = 1): number {
  const c = embeddingDpCharge(epochs);
  return computeEpsilon({ q: c.q, sigma: t.noiseMultiplier, steps: c.steps * rounds, delta: t.delta }).epsilon;
}

/**
 * Clip each row of a row-major m × dim matrix to L2 norm ≤ c, in place.
 * @returns the same array
 */
export function clipRowsInPlace(e: Float32Array, dim: number, c: number): Float32Array {
  for (let o = 0; o < e.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += e[o + j]! * e[o + j]!;
    const n = Math.sqrt(s);
    if (n > c) for (let j = 0; j < dim; j++) e[o + j]! *= c / n;
  }
  return e;
}
