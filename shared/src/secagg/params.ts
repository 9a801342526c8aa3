/**
 * Round parameters of secure aggregation, validated identically by the
 * coordinator (before it starts a round) and by every client (before it
 * generates keys), so a client never runs a weaker configuration than the
 * one it would accept.
 */
import { isBytes } from '../crypto/bytes.ts';
import { FedmartError } from '../errors.ts';
import { GRAPH_SEED_BYTES, buildNeighbourGraph, defaultNeighbourDegree, type NeighbourGraph } from './graph.ts';
import { resolveQuantization, type QuantizationConfig, type ResolvedQuantization } from './quantize.ts';

/** Largest vector a round may aggregate (2^26 parameters ≈ 256 MiB masked). */
export const SECAGG_MAX_VECTOR_LENGTH = 2 ** 26;

/** Settings of one secure-aggregation round. */
export interface SecAggRoundParameters {
  roundId: string;
  /** selected client ids (positive uint32, distinct); at least 3 */
  participants: readonly number[];
  /** model parameters per update */
  vectorLength: number;
  quantization: QuantizationConfig;
  /** SecAgg+ degree k (default ⌈2·log2 n⌉ rounded to even; ≥ n − 1 means plain SecAgg) */
  neighbourDegree?: number;
  /** Shamir threshold t (default ⌊k/2⌋ + 1); must satisfy k/2 < t ≤ k */
  threshold?: number;
  /** 32-byte public seed of the neighbourhood graph */
  graphSeed: Uint8Array;
}

/** Validated parameters with the derived graph and quantization. */
export interface ResolvedRoundParameters {
  readonly roundId: string;
  readonly participants: readonly number[];
  readonly vectorLength: number;
  readonly quantization: ResolvedQuantization;
  readonly graph: NeighbourGraph;
  readonly threshold: number;
  /** copy of the public graph seed */
  readonly graphSeed: Uint8Array;
}

function configError(message: string): FedmartError {
  return new FedmartError('CONFIG_ERROR', `secure aggregation: ${message}`);
}

/**
 * Default threshold for a degree: ⌊k/2⌋ + 1, the smallest t with 2t > k.
 * @param degree - effective neighbour count k
 * @returns t
 */
export function defaultThreshold(degree: number): number {
  return Math.floor(degree / 2) + 1;
}

/**
 * Validate round parameters and build the neighbourhood graph.
 *
 * Why 2t > k: each neighbour reveals, for a given peer, either a share of
 * its mask key or a share of its self-mask seed, never both. A peer has at
 * most k share holders, so with 2t > k no coordinator can collect t shares
 * of both secrets of one client, and that client's input stays masked
 * (Bonawitz et al. 2017, §4, security argument for honest-but-curious and
 * for a server lying about dropouts).
 *
 * @param params - the round settings
 * @returns resolved parameters
 * @throws FedmartError CONFIG_ERROR naming the bad setting
 */
export function resolveRoundParameters(params: SecAggRoundParameters): ResolvedRoundParameters {
  if (typeof params !== 'object' || params === null) throw configError('expected round parameters, got ' + String(params));
  const { roundId, participants, vectorLength, quantization, graphSeed } = params;
  if (typeof roundId !== 'string' || roundId.length === 0 || roundId.length > 256) throw configError(`roundId: expected a non-empty string of ≤ 256 characters, got ${String(roundId)}`);
  if (!Array.isArray(participants)) throw configError('participants: expected an array of client ids');
  if (participants.length < 3) throw configError(`participants: expected at least 3 clients (the sum of 2 reveals each to the other), got ${participants.length}`);
  const seen = new Set<number>();
  for (const id of participants) {
    if (!Number.isSafeInteger(id) || id < 1 || id > 0xffffffff) throw configError(`participants: expected positive uint32 ids, got ${String(id)}`);
    if (seen.has(id)) throw configError(`participants: duplicate id ${id}`);
    seen.add(id);
  }
  if (!Number.isSafeInteger(vectorLength) || vectorLength < 1 || vectorLength > SECAGG_MAX_VECTOR_LENGTH) {
    throw configError(`vectorLength: expected an integer in [1, ${SECAGG_MAX_VECTOR_LENGTH}], got ${String(vectorLength)}`);
  }
  if (!isBytes(graphSeed) || graphSeed.length !== GRAPH_SEED_BYTES) throw configError(`graphSeed: expected ${GRAPH_SEED_BYTES} bytes`);
  const q = resolveQuantization(quantization);
  if (participants.length > q.maxClients) throw configError(`quantization.maxClients (${q.maxClients}) is below the ${participants.length} participants; the sum could wrap`);
  const n = participants.length;
  const k = params.neighbourDegree ?? defaultNeighbourDegree(n);
  if (!Number.isSafeInteger(k) || k < 2) throw configError(`neighbourDegree: expected an integer ≥ 2, got ${String(k)}`);
  if (k < n - 1 && k % 2 !== 0) throw configError(`neighbourDegree: expected an even k (or k ≥ n − 1 = ${n - 1} for plain SecAgg), got ${k}`);
  let graph: NeighbourGraph;
  try {
    graph = buildNeighbourGraph(participants, graphSeed, k);
  } catch (cause) {
    throw new FedmartError('CONFIG_ERROR', `secure aggregation: cannot build the neighbourhood graph: ${(cause as Error).message}`, { cause });
  }
  const t = params.threshold ?? defaultThreshold(graph.degree);
  if (!Number.isSafeInteger(t) || 2 * t <= graph.degree || t > graph.degree || t < 2) {
    throw configError(`threshold: expected an integer t with ${graph.degree}/2 < t ≤ ${graph.degree} and t ≥ 2 (so no coordinator can learn both secrets of a client), got ${String(t)}`);
  }
  return Object.freeze({ roundId, participants: graph.ids, vectorLength, quantization: q, graph, threshold: t, graphSeed: graphSeed.slice() });
}
