/**
 * Private alternating least squares in the billboard model (Chien, Jain,
 * Krichene, Rendle, Song, Thakurta & Zhang, "Private Alternating Least
 * Squares", ICML 2021; Jain, Thakkar & Thakurta, "Differentially private
 * matrix completion revisited", ICML 2018), with the implicit-feedback
 * weighting of Hu, Koren & Volinsky (2008).
 *
 * Each brand solves its own users' vectors exactly from the PUBLIC item
 * factors (never released); item factors are solved from released sufficient
 * statistics: per item s_i = Σ_{u ∈ I_i} ũ (ũ = [clip_C(u); c0]) and one
 * global Gram G = Σ_u clip_C(u) clip_C(u)ᵀ, each summed over brands with
 * Gaussian noise added by each brand.
 *
 * Sensitivity (record level = one interaction, add/remove or replace): a
 * changed record changes that user's item set by at most one item in the
 * capped set (≤ m items used, the first m in the brand's order) and changes
 * its vector u → u' (both ‖·‖ ≤ C). For the s rows: items in both sets move
 * by u' − u (‖·‖ ≤ 2C, the c0 coordinate unchanged), items in one set only
 * move by ũ (‖·‖² ≤ C² + c0²), at most two such items; so
 * Δ_s² ≤ 4C²(m − 1) + 2(C² + c0²). The Gram moves by uuᵀ − u'u'ᵀ,
 * ‖·‖_F ≤ 2C². One release is the Gaussian mechanism on the concatenation,
 * Δ² = Δ_s² + 4C⁴; noise N(0, σ²Δ²) per coordinate is α/(2σ²)-RDP per
 * iteration (Mironov 2017), composed over the iterations by the ledger
 * (q = 1, one step per round). User-level DP would need m ≥ every history.
 */
export interface AlsSettings {
  rank: number;
  /** HKV confidence of an observed item (c = 1 + alpha). */
  alpha: number;
  /** Ridge λ (user step, absolute). */
  lambda: number;
  /** Ridge of the item step, relative to trace(G)/rank. */
  itemLambda: number;
  /** User-vector clip C. */
  clip: number;
  /** The constant coordinate c0 (its item weight is the item bias). */
  c0: number;
  /** Interactions per user used in the item step (m). */
  cap: number;
}

/** Joint vector length: items × (rank + 1) sums plus the rank × rank Gram. */
export const alsStatsLength = (items: number, rank: number): number => items * (rank + 1) + rank * rank;

/** Δ₂ of one brand's statistics under a one-record change (proof above). */
export function alsSensitivity(a: AlsSettings): number {
  const C = a.clip;
  return Math.sqrt(4 * C * C * Math.max(0, a.cap - 1) + 2 * (C * C + a.c0 * a.c0) + 4 * C ** 4);
}

/** Solve A x = b in place for symmetric positive definite A (n × n, row-major) by Cholesky. */
function cholSolve(A: Float64Array, b: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j]!;
    for (let k = 0; k < j; k++) d -= A[j * n + k]! ** 2;
    d = Math.sqrt(Math.max(d, 1e-12));
    A[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j]!;
      for (let k = 0; k < j; k++) s -= A[i * n + k]! * A[j * n + k]!;
      A[i * n + j] = s / d;
    }
  }
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= A[i * n + k]! * b[k]!;
    b[i] = s / A[i * n + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let k = i + 1; k < n; k++) s -= A[k * n + i]! * b[k]!;
    b[i] = s / A[i * n + i]!;
  }
}

/** Item factors (items × rank) and biases from the released statistics; all-zero statistics (round 1) give a public seeded start. */
export function itemsFromStats(stats: Float32Array, items: number, a: AlsSettings, seed = 1, noiseStd = 0): { q: Float64Array; b: Float64Array } {
  const k = a.rank;
  const q = new Float64Array(items * k);
  const b = new Float64Array(items);
  const G = stats.subarray(items * (k + 1));
  let tr = 0;
  for (let d = 0; d < k; d++) tr += G[d * k + d]!;
  if (!(tr > 0)) {
    let x = seed >>> 0 || 1;
    for (let i = 0; i < q.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      q[i] = (x / 4294967296 - 0.5) * 0.2;
    }
    return { q, b };
  }
  // Symmetrise the noisy Gram and add a ridge tied to the noise scale: a
  // k × k symmetric Gaussian matrix with entry std s has spectral norm about
  // 2s√k, so +3s√k keeps G PD with high probability (post-processing only).
  for (let x = 0; x < k; x++) for (let y = x + 1; y < k; y++) { const m = (G[x * k + y]! + G[y * k + x]!) / 2; G[x * k + y] = m; G[y * k + x] = m; }
  const lam = a.itemLambda * (tr / k) + 3 * noiseStd * Math.sqrt(k);
  // Number of users behind G ≈ tr / mean ‖u‖²; per-item Gram ≈ n_i · G / U with n_i = s_i[k] / c0 (HKV, item side).
  const U = Math.max(1, tr / (a.clip * a.clip));
  const A = new Float64Array(k * k);
  const r = new Float64Array(k);
  for (let i = 0; i < items; i++) {
    const s = stats.subarray(i * (k + 1), (i + 1) * (k + 1));
    const n = Math.max(0, s[k]! / a.c0);
    const w = 1 + a.alpha * n / U;
    for (let x = 0; x < k * k; x++) A[x] = w * G[x]!;
    for (let d = 0; d < k; d++) { A[d * k + d]! += lam; r[d] = (1 + a.alpha) * s[d]!; }
    cholSolve(A, r, k);
    q.set(r, i * k);
    // Bias: the constant coordinate's least-squares weight, shrunk like the count (public transform of the released n_i).
    b[i] = Math.log1p(n);
  }
  return { q, b };
}

/** Exact HKV user solves from public item factors: rows (users × rank). */
export function solveUsers(histories: readonly ArrayLike<number>[], q: Float64Array, items: number, a: AlsSettings): Float64Array {
  const k = a.rank;
  const QtQ = new Float64Array(k * k);
  for (let i = 0; i < items; i++) for (let x = 0; x < k; x++) { const qx = q[i * k + x]!; for (let y = 0; y < k; y++) QtQ[x * k + y]! += qx * q[i * k + y]!; }
  const out = new Float64Array(histories.length * k);
  const A = new Float64Array(k * k);
  const r = new Float64Array(k);
  histories.forEach((h, u) => {
    A.set(QtQ);
    r.fill(0);
    for (let d = 0; d < k; d++) A[d * k + d]! += a.lambda;
    for (let j = 0; j < h.length; j++) {
      const o = h[j]! * k;
      for (let x = 0; x < k; x++) {
        r[x]! += (1 + a.alpha) * q[o + x]!;
        for (let y = 0; y < k; y++) A[x * k + y]! += a.alpha * q[o + x]! * q[o + y]!;
      }
    }
    cholSolve(A, r, k);
    out.set(r, u * k);
  });
  return out;
}

/**
 * One brand's statistics from its users' vectors (clipped to C), using at
 * most `cap` interactions per user, plus N(0, (σΔ)²) on every coordinate.
 */
export function brandStats(histories: readonly ArrayLike<number>[], users: Float64Array, items: number, a: AlsSettings, noise?: { std: number; gaussian: (len: number, std: number) => Float64Array | Float32Array }): Float32Array {
  const k = a.rank;
  const out = new Float64Array(alsStatsLength(items, k));
  const g = items * (k + 1);
  const u = new Float64Array(k);
  histories.forEach((h, n) => {
    let norm = 0;
    for (let d = 0; d < k; d++) { u[d] = users[n * k + d]!; norm += u[d]! ** 2; }
    const f = Math.min(1, a.clip / Math.sqrt(norm || 1));
    for (let d = 0; d < k; d++) u[d]! *= f;
    const m = Math.min(h.length, a.cap);
    for (let j = 0; j < m; j++) {
      const o = h[j]! * (k + 1);
      for (let d = 0; d < k; d++) out[o + d]! += u[d]!;
      out[o + k]! += a.c0;
    }
    for (let x = 0; x < k; x++) for (let y = 0; y < k; y++) out[g + x * k + y]! += u[x]! * u[y]!;
  });
  if (noise) {
    const z = noise.gaussian(out.length, noise.std);
    for (let i = 0; i < out.length; i++) out[i]! += z[i]!;
  }
  return Float32Array.from(out);
}

/** Score every item for a user vector: q_i · u + bias weight × b_i. */
export function alsScores(q: Float64Array, b: Float64Array, u: ArrayLike<number>, rank: number, biasWeight: number, out = new Float32Array(b.length)): Float32Array {
  for (let i = 0; i < b.length; i++) {
    let s = biasWeight * b[i]!;
    for (let d = 0; d < rank; d++) s += q[i * rank + d]! * u[d]!;
    out[i] = s;
  }
  return out;
}
