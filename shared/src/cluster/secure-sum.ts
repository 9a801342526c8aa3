/**
 * The per-cluster sums of a Lloyd iteration, added up by the repository's
 * secure-aggregation protocol (Bonawitz et al., "Practical Secure
 * Aggregation for Privacy-Preserving Machine Learning", CCS 2017; the
 * `secagg/` client and server state machines, all four stages, fresh X25519
 * keys and Shamir shares every round).
 *
 * Threat model: that of `secagg/` — an honest-but-curious coordinator (which
 * may lie about dropouts) learns the sum over partners of the counts, sums,
 * inertia shares (and, in the profile pass, positive counts) and nothing
 * about any one partner's; partners learn only the published centroids.
 * Collusion of the coordinator with t or more partners can unmask the
 * others. Not covered: partners that send wrong sums.
 *
 * Quantization. SecAgg sums integers in Z_2^32, from values in [−c, c]. Each
 * coordinate v of a partner's vector has a public bound |v| ≤ B_v, known
 * before any data is read:
 * - count_j, positives_j ≤ maxRows (a public upper bound on any partner's rows);
 * - Σx_{j,t} ≤ maxRows · b_t, where b_t bounds the encoded column t
 *   (the clip Z for standardised numeric columns, 1 for one-hot columns);
 * - inertia share ≤ maxRows · Σ_t (2 b_t)² (centroids are means of rows, so
 *   they lie in the same box and every coordinate differs by at most 2 b_t).
 * Each coordinate is divided by S_v = 2^⌈log2 B_v⌉ (a power of two, so
 * integer counts stay exact in float32) and quantized with c = 1, weight 1,
 * M = partners clients, 32 bits, stochastic rounding: s = ⌊(2^31 − 1)/M⌋
 * levels per unit. The summed coordinate is off by less than
 * S_v · M · (1/s + 2^−24): quantization (secagg `quantizationErrorBound`)
 * plus float32 rounding of v / S_v. Counts are integers below 2^24, so
 * v / S_v is exact in float32 and their error is S_v · M / s; it must be
 * below ½ (checked), and counts are rounded back to exact integers. On the
 * bank data (6 partners, 45,211 rows, Z = 5) that is ≈ 0.001 on a count,
 * ≈ 0.1 on a sum over a numeric column (a centroid of 100 customers moves
 * by ≈ 0.001 standard deviations) and ≈ 25 on an inertia of ≈ 4·10^5
 * (< 10^−4 relative): far inside the 2 % the segments command promises.
 * A value outside its bound is refused, not
 * clipped: it would mean the encoding broke the bound.
 *
 * Pure: the protocol's keys and rounding noise come from the OS CSPRNG
 * (inside `secagg/`); the public neighbourhood-graph seed is derived from
 * the round id.
 */
import { generateEd25519KeyPair } from '../crypto/ed25519.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { FedmartError } from '../errors.ts';
import { SecAggClient } from '../secagg/client.ts';
import { quantizationErrorBound, resolveQuantization, type QuantizationConfig } from '../secagg/quantize.ts';
import { SecAggServer } from '../secagg/server.ts';
import type { ClusterSums } from './lloyd.ts';

/** Public bounds that fix the quantization of every round. */
export interface ClusterSumBounds {
  /** upper bound on the rows of any one partner (public) */
  maxRows: number;
  /** per encoded column t, a bound b_t on |x_t| (public: from the encoding, not the data) */
  columnBounds: Float64Array;
  /** number of partners summed (SecAgg's maxClients) */
  partners: number;
}

function powerOfTwoAtLeast(v: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(v, 1)));
}

/**
 * The divisor S_v of every coordinate of the packed vector
 * [counts (k), sums (k·d), positives (k, if present), inertia (1)].
 *
 * @param bounds - the public bounds
 * @param k - number of clusters
 * @param withPositives - whether the vector carries positive counts
 * @returns one power-of-two scale per coordinate
 */
export function clusterSumScales(bounds: ClusterSumBounds, k: number, withPositives: boolean): Float64Array {
  const d = bounds.columnBounds.length;
  const out = new Float64Array(k + k * d + (withPositives ? k : 0) + 1);
  const rows = powerOfTwoAtLeast(bounds.maxRows);
  out.fill(rows, 0, k);
  let rowSse = 0;
  for (let t = 0; t < d; t++) rowSse += 4 * bounds.columnBounds[t]! ** 2;
  for (let j = 0; j < k; j++) for (let t = 0; t < d; t++) out[k + j * d + t] = powerOfTwoAtLeast(bounds.maxRows * bounds.columnBounds[t]!);
  if (withPositives) out.fill(rows, k + k * d, k + k * d + k);
  out[out.length - 1] = powerOfTwoAtLeast(bounds.maxRows * rowSse);
  return out;
}

/**
 * The quantization every partner and the coordinator use for a round: the
 * packed vector is already divided into [−1, 1], so clip 1, weight 1.
 * @param partners - number of partners summed (M)
 * @returns the SecAgg quantization settings
 */
export function clusterSumQuantization(partners: number): QuantizationConfig {
  return { clip: 1, maxClients: partners, maxWeight: 1, bits: 32, rounding: 'stochastic' };
}

function pack(s: ClusterSums, scales: Float64Array, withPositives: boolean, partner: number): Float32Array {
  const values = [...s.counts, ...s.sums, ...(withPositives ? s.positives! : []), s.sse];
  const out = new Float32Array(values.length);
  values.forEach((v, i) => {
    const scaled = v / scales[i]!;
    if (!(Math.abs(scaled) <= 1)) {
      throw new FedmartError('INVALID_UPDATE', `partner ${partner}: cluster-sum coordinate ${i} is ${v}, outside its public bound ±${scales[i]}; the rows break the encoding's bound (more rows than maxRows, or unclipped values)`);
    }
    out[i] = scaled;
  });
  return out;
}

/** The result of {@link secureSumClusterSums}. */
export interface SecureClusterSum {
  /** the dequantized sum; counts and positives rounded to integers */
  total: ClusterSums;
  /** the largest quantization error bound over coordinates, relative to each coordinate's scale */
  errorBound: Float64Array;
}

/**
 * Sum the partners' cluster sums with secure aggregation: every partner
 * holds its own {@link SecAggClient} and sees only its own vector; the
 * {@link SecAggServer} sees public keys, sealed share bundles and masked
 * vectors, and outputs only the sum. Runs the five stages in process (the
 * partners are separate objects here, not separate machines).
 *
 * @param contributions - one per partner, in partner order
 * @param bounds - public bounds (see the module doc)
 * @param roundId - unique per round (keys and masks are bound to it)
 * @returns the sum and its per-coordinate error bound
 * @throws FedmartError INVALID_UPDATE on a value outside its bound; CONFIG_ERROR with fewer than 3 partners; ROUND_FAILED if the protocol fails
 */
export function secureSumClusterSums(contributions: readonly ClusterSums[], bounds: ClusterSumBounds, roundId: string): SecureClusterSum {
  if (contributions.length !== bounds.partners) throw new RangeError(`secureSumClusterSums: expected ${bounds.partners} contributions, got ${contributions.length}`);
  const { k, d } = contributions[0]!;
  if (d !== bounds.columnBounds.length) throw new RangeError(`secureSumClusterSums: columnBounds has ${bounds.columnBounds.length} entries, sums have d = ${d}`);
  const withPositives = contributions.every((c) => c.positives !== undefined);
  const scales = clusterSumScales(bounds, k, withPositives);
  const quantization = clusterSumQuantization(bounds.partners);
  const ids = contributions.map((_, i) => i + 1);
  // In-process partners: fresh identity keys per run sign the advertised keys and the survivor set.
  const keys = new Map(ids.map((id) => [id, generateEd25519KeyPair()]));
  const server = new SecAggServer({
    roundId,
    participants: ids,
    vectorLength: scales.length,
    quantization,
    graphSeed: sha256(new TextEncoder().encode(`fedmart/kmeans/graph/${roundId}`)),
    identities: ids.map((id) => ({ id, publicKey: keys.get(id)!.publicKey })),
  });
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, keys.get(id)!)]));
  const inputs = new Map(ids.map((id) => [id, pack(contributions[id - 1]!, scales, withPositives, id)]));
  for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
  for (const req of server.closeAdvertiseKeys()) server.receiveShareKeys(clients.get(req.clientId)!.shareKeys(req));
  for (const req of server.closeShareKeys()) server.receiveMaskedInput(clients.get(req.clientId)!.maskInput(req, inputs.get(req.clientId)!, 1));
  for (const req of server.closeMaskedInput()) server.receiveConsistencyCheck(clients.get(req.clientId)!.consistencyCheck(req));
  for (const req of server.closeConsistencyCheck()) server.receiveUnmask(clients.get(req.clientId)!.unmask(req));
  const result = server.closeUnmask();
  const sum = result.weightedSum;
  const unit = quantizationErrorBound(resolveQuantization(quantization), ids.length);
  const errorBound = scales.map((s) => s * (unit + ids.length * 2 ** -24));
  if (scales[0]! * unit >= 0.5) {
    throw new FedmartError('CONFIG_ERROR', `secure k-means: with ${ids.length} partners and up to ${bounds.maxRows} rows each, counts cannot be summed exactly in 32 bits; use fewer partners per round`);
  }
  const counts = new Float64Array(k);
  for (let j = 0; j < k; j++) counts[j] = Math.round(sum[j]! * scales[j]!);
  const sums = new Float64Array(k * d);
  for (let t = 0; t < k * d; t++) sums[t] = sum[k + t]! * scales[k + t]!;
  const last = scales.length - 1;
  const total: ClusterSums = { k, d, counts, sums, sse: sum[last]! * scales[last]! };
  if (withPositives) {
    const positives = new Float64Array(k);
    for (let j = 0; j < k; j++) positives[j] = Math.round(sum[k + k * d + j]! * scales[k + k * d + j]!);
    total.positives = positives;
  }
  return { total, errorBound };
}
