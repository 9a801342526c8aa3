/**
 * SecAgg+ parameter choice (Bell, Bonawitz, Gascón, Lepoint, Raykova,
 * "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead",
 * CCS 2020, §4–5): pick the neighbourhood degree k and the Shamir threshold
 * t from the number of clients n, the fraction γ of clients the adversary may
 * corrupt (in collusion with the coordinator) and the dropout rate δ, for
 * statistical security σ = 40 and correctness η = 30 bits.
 *
 * In our graph (a Harary graph over a uniformly random permutation, see
 * `graph.ts`) the k neighbours of a client are a uniformly random k-subset of
 * the other n − 1, so the number of corrupted neighbours of a client is
 * hypergeometric Hyp(n − 1, ⌊γn⌋, k), and so is the number of dropped ones
 * (Hyp(n − 1, round(δn), k)). We bound, with a union bound over the n clients:
 *
 * - **security**: n · P[corrupted neighbours ≥ t] ≤ 2^−σ. With the consistency
 *   check (every honest holder reveals the same kind of share for a peer),
 *   the adversary gets the other kind only from corrupted holders, so fewer
 *   than t corrupted neighbours keep both secrets of every honest client out
 *   of reach (Bell et al. Lemma 4.x, condition "t > corrupted neighbours").
 * - **correctness**: n · P[surviving neighbours < t] ≤ 2^−η, so every
 *   survivor's self-mask seed and every dropped client's mask key can be
 *   recovered from t shares.
 *
 * k is the smallest even degree for which some t satisfies both; t is the
 * largest t ≤ ⌊k/2⌋ + 1 that still does ({@link chooseThreshold}). When no
 * k < n − 1 works the graph is complete (plain SecAgg, Bonawitz et al.
 * 2017) and t = max(⌊γn⌋ + 1, min(⌊(n−1)/2⌋ + 1, n − 1 − round(δn))).
 *
 * What this does not bound (documented, not computed): the connectivity of
 * the honest survivors' subgraph, which Bell et al. also require so that the
 * server learns only the full sum and not sums of small components; for the
 * degrees chosen here (k ≥ 2·log2 n in every case we tabulate) the
 * Harary-over-random-permutation graph stays connected after removing the
 * corrupted and dropped clients with overwhelming probability, but the figure
 * is not part of the computed bound.
 *
 * The survivor-set signature threshold (the consistency check of Bonawitz et
 * al. 2017, §6) is a separate, global bound: {@link minimumSignatures}.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';

/** Default fraction of clients assumed corrupted (colluding with the coordinator). */
export const DEFAULT_CORRUPTED_FRACTION = 0.1;
/** Default dropout rate the parameters must tolerate. */
export const DEFAULT_DROPOUT_RATE = 0.3;
/** Statistical security parameter σ (bits), as Bell et al. 2020. */
export const SECAGG_SECURITY_BITS = 40;
/** Correctness parameter η (bits), as Bell et al. 2020. */
export const SECAGG_CORRECTNESS_BITS = 30;

/** Inputs of {@link chooseSecAggPlusParameters}. */
export interface SecAggPlusAssumptions {
  /** number of selected clients, ≥ 3 */
  clients: number;
  /** γ ∈ [0, 0.5): fraction of clients the adversary may corrupt; default {@link DEFAULT_CORRUPTED_FRACTION} */
  corruptedFraction?: number;
  /** δ ∈ [0, 1): fraction of clients that may drop out; default {@link DEFAULT_DROPOUT_RATE} */
  dropoutRate?: number;
  /** σ, default 40 */
  securityBits?: number;
  /** η, default 30 */
  correctnessBits?: number;
}

/** Chosen parameters with the bounds they achieve. */
export interface SecAggPlusParameters {
  /** neighbourhood degree k (n − 1 when complete) */
  neighbours: number;
  /** Shamir threshold t */
  threshold: number;
  /** true for the complete graph (plain SecAgg) */
  complete: boolean;
  /** survivor-set signatures each client requires before revealing shares */
  signatureThreshold: number;
  /** log2 of the union-bounded probability that some client has ≥ t corrupted neighbours */
  securityLog2: number;
  /** log2 of the union-bounded probability that some client has < t surviving neighbours */
  correctnessLog2: number;
}

/** log C(a, b) by summing logs (exact enough for the small b we use; O(b)). */
function logChoose(a: number, b: number): number {
  if (b < 0 || b > a) return Number.NEGATIVE_INFINITY;
  b = Math.min(b, a - b);
  let s = 0;
  for (let i = 0; i < b; i++) s += Math.log(a - i) - Math.log(i + 1);
  return s;
}

/** Upper tails P[X ≥ x] for x = 0..k of X ~ Hyp(N, K, k) (population N, K marked, k draws). */
function hypergeometricUpperTails(N: number, K: number, k: number): Float64Array {
  const pmf = new Float64Array(k + 1);
  const logTotal = logChoose(N, k);
  for (let i = 0; i <= k; i++) {
    const l = logChoose(K, i) + logChoose(N - K, k - i) - logTotal;
    pmf[i] = Number.isFinite(l) ? Math.exp(l) : 0;
  }
  const tails = new Float64Array(k + 2);
  for (let i = k; i >= 0; i--) tails[i] = tails[i + 1]! + pmf[i]!;
  return tails;
}

function checkFraction(label: string, x: number, max: number): number {
  if (typeof x !== 'number' || !(x >= 0 && x < max)) throw new FedmartError('CONFIG_ERROR', `secure aggregation: ${label}: expected a number in [0, ${max}), got ${String(x)}`);
  return x;
}

/**
 * Signatures on one survivor set a client requires before it reveals any
 * share: more than (n + c)/2 with c = ⌈γn⌉. Honest clients sign one set per
 * round, so two different sets would need 2T − n > c signatures from
 * corrupted clients: at most one survivor set can ever be certified, and
 * every honest client reveals shares for the same set (Bonawitz et al. 2017,
 * §6 ConsistencyCheck, with the threshold raised from t to an honest
 * majority because under SecAgg+ t is far below n/2).
 * @param clients - n, the round's participants
 * @param corruptedFraction - γ
 * @returns T
 * @throws FedmartError CONFIG_ERROR on a bad n or γ
 */
export function minimumSignatures(clients: number, corruptedFraction: number = DEFAULT_CORRUPTED_FRACTION): number {
  if (!Number.isSafeInteger(clients) || clients < 1) throw new FedmartError('CONFIG_ERROR', `secure aggregation: clients: expected a positive integer, got ${String(clients)}`);
  checkFraction('corruptedFraction', corruptedFraction, 0.5);
  return Math.floor((clients + Math.ceil(corruptedFraction * clients)) / 2) + 1;
}

/**
 * Smallest threshold t for which no client has t or more corrupted
 * neighbours, except with probability 2^−σ (union bound over n clients).
 * A client uses this to refuse a round whose t is too small for its own γ.
 * @param clients - n
 * @param neighbours - k (≥ n − 1: complete graph)
 * @param corruptedFraction - γ
 * @param securityBits - σ
 * @returns t (may exceed k: then no t is secure for this k)
 * @throws FedmartError CONFIG_ERROR on bad inputs
 */
export function minimumSecureThreshold(clients: number, neighbours: number, corruptedFraction: number = DEFAULT_CORRUPTED_FRACTION, securityBits = SECAGG_SECURITY_BITS): number {
  checkFraction('corruptedFraction', corruptedFraction, 0.5);
  const c = Math.floor(corruptedFraction * clients);
  const k = Math.min(neighbours, clients - 1);
  if (k >= clients - 1) return Math.max(2, c + 1);
  const tails = hypergeometricUpperTails(clients - 1, c, k);
  for (let t = 2; t <= k; t++) if (clients * tails[t]! <= 2 ** -securityBits) return t;
  return k + 1;
}

/**
 * Threshold for a given degree: the largest t in [t_min, ⌊k/2⌋ + 1] whose
 * correctness bound still holds (a larger t leaves more margin should more
 * clients be corrupted than assumed), else t_min = {@link minimumSecureThreshold}.
 * @param clients - n
 * @param neighbours - k (≥ n − 1: complete graph)
 * @param corruptedFraction - γ
 * @param dropoutRate - δ
 * @param correctnessBits - η
 * @returns t (greater than k when no t is secure for this k)
 * @throws FedmartError CONFIG_ERROR on bad inputs
 */
export function chooseThreshold(clients: number, neighbours: number, corruptedFraction: number = DEFAULT_CORRUPTED_FRACTION, dropoutRate: number = DEFAULT_DROPOUT_RATE, correctnessBits = SECAGG_CORRECTNESS_BITS): number {
  checkFraction('dropoutRate', dropoutRate, 1);
  const tMin = minimumSecureThreshold(clients, neighbours, corruptedFraction);
  const k = Math.min(neighbours, clients - 1);
  const d = Math.round(dropoutRate * clients);
  const cap = Math.floor(k / 2) + 1;
  if (k >= clients - 1) return Math.max(tMin, Math.min(cap, k - d));
  const dropped = hypergeometricUpperTails(clients - 1, d, k);
  for (let t = cap; t > tMin; t--) if (clients * dropped[k - t + 1]! <= 2 ** -correctnessBits) return t;
  return tMin;
}

/**
 * Choose k and t (see the module comment for the bounds).
 * @param assumptions - n, γ, δ, σ, η
 * @returns the parameters and the bounds they achieve
 * @throws FedmartError CONFIG_ERROR on out-of-range assumptions, or when even the complete graph cannot meet them (say which to relax)
 * @example
 * chooseSecAggPlusParameters({ clients: 100 }); // { neighbours: 36, threshold: 11, … } for γ = 0.1, δ = 0.3
 */
export function chooseSecAggPlusParameters(assumptions: SecAggPlusAssumptions): SecAggPlusParameters {
  const n = assumptions.clients;
  if (!Number.isSafeInteger(n) || n < 3) throw new FedmartError('CONFIG_ERROR', `secure aggregation: clients: expected an integer ≥ 3, got ${String(n)}`);
  const gamma = checkFraction('corruptedFraction', assumptions.corruptedFraction ?? DEFAULT_CORRUPTED_FRACTION, 0.5);
  const delta = checkFraction('dropoutRate', assumptions.dropoutRate ?? DEFAULT_DROPOUT_RATE, 1);
  const sigma = assumptions.securityBits ?? SECAGG_SECURITY_BITS;
  const eta = assumptions.correctnessBits ?? SECAGG_CORRECTNESS_BITS;
  const c = Math.floor(gamma * n);
  const d = Math.round(delta * n);
  const signatureThreshold = minimumSignatures(n, gamma);
  const log2 = (p: number) => (p <= 0 ? Number.NEGATIVE_INFINITY : Math.log2(p));
  for (let k = 2; k < n - 1; k += 2) {
    const corrupt = hypergeometricUpperTails(n - 1, c, k);
    let t = 2;
    while (t <= k && n * corrupt[t]! > 2 ** -sigma) t++;
    if (t > k) continue;
    // k − X_dropped < t  ⇔  X_dropped ≥ k − t + 1
    const fail = n * hypergeometricUpperTails(n - 1, d, k)[k - t + 1]!;
    if (fail <= 2 ** -eta) {
      const chosen = chooseThreshold(n, k, gamma, delta, eta);
      const failChosen = n * hypergeometricUpperTails(n - 1, d, k)[k - chosen + 1]!;
      return { neighbours: k, threshold: chosen, complete: false, signatureThreshold, securityLog2: log2(n * corrupt[chosen]!), correctnessLog2: log2(failChosen) };
    }
  }
  const k = n - 1;
  const t = chooseThreshold(n, k, gamma, delta, eta);
  if (t > k || signatureThreshold > n) {
    throw new FedmartError('CONFIG_ERROR', `secure aggregation: no parameters for ${n} clients with corrupted fraction ${gamma}: even the complete graph cannot keep corrupted clients below the threshold; lower corruptedFraction or select more clients`);
  }
  // Small federations may not tolerate δn dropouts at all (t > n − 1 − δn): the round then
  // runs, and fails with the reason if too many clients actually drop.
  return { neighbours: k, threshold: t, complete: true, signatureThreshold, securityLog2: Number.NEGATIVE_INFINITY, correctnessLog2: t <= k - d ? Number.NEGATIVE_INFINITY : 0 };
}
