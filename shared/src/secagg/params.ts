/**
 * Round parameters of secure aggregation, validated identically by the
 * coordinator (before it starts a round) and by every client (before it
 * generates keys), so a client never runs a weaker configuration than the
 * one it would accept.
 */
import { bytesToHex, isBytes } from '../crypto/bytes.ts';
import { FedmartError } from '../errors.ts';
import { ED25519_KEY_BYTES } from '../crypto/ed25519.ts';
import { GRAPH_SEED_BYTES, buildNeighbourGraph, type NeighbourGraph } from './graph.ts';
import type { IdentityEntry } from './messages.ts';
import { DEFAULT_CORRUPTED_FRACTION, DEFAULT_DROPOUT_RATE, chooseSecAggPlusParameters, chooseThreshold, minimumSecureThreshold, minimumSignatures } from './secagg-plus-params.ts';
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
  /** SecAgg+ degree k (default: {@link chooseSecAggPlusParameters} for n, γ, δ; ≥ n − 1 means plain SecAgg) */
  neighbourDegree?: number;
  /** Shamir threshold t (default: the smallest t secure for n, k, γ); 2 ≤ t ≤ k */
  threshold?: number;
  /** survivor-set signatures required before unmasking (default {@link minimumSignatures}(n, γ)) */
  signatureThreshold?: number;
  /** γ: fraction of clients assumed corrupted, default {@link DEFAULT_CORRUPTED_FRACTION} */
  corruptedFraction?: number;
  /** δ: dropout rate the default k must tolerate, default 0.3 */
  dropoutRate?: number;
  /** 32-byte public seed of the neighbourhood graph */
  graphSeed: Uint8Array;
  /** the Ed25519 identity key of every participant */
  identities: readonly IdentityEntry[];
}

/** Validated parameters with the derived graph and quantization. */
export interface ResolvedRoundParameters {
  readonly roundId: string;
  readonly participants: readonly number[];
  readonly vectorLength: number;
  readonly quantization: ResolvedQuantization;
  readonly graph: NeighbourGraph;
  readonly threshold: number;
  readonly signatureThreshold: number;
  readonly corruptedFraction: number;
  /** copy of the public graph seed */
  readonly graphSeed: Uint8Array;
  /** participant id → Ed25519 identity key */
  readonly identities: ReadonlyMap<number, Uint8Array>;
}

function configError(message: string): FedmartError {
  return new FedmartError('CONFIG_ERROR', `secure aggregation: ${message}`);
}

/**
 * Validate round parameters and build the neighbourhood graph.
 *
 * Defaults come from {@link chooseSecAggPlusParameters} (Bell et al. 2020).
 * Explicit settings are checked against the same security bound: t must be
 * at least {@link minimumSecureThreshold} for n, k and γ, and the signature
 * threshold at least {@link minimumSignatures}(n, γ) — so neither the
 * coordinator nor a misconfiguration can weaken a round below what a client
 * with the same γ accepts. The old SecAgg rule 2t > k is no longer needed:
 * the consistency check makes every honest holder reveal the same kind of
 * share for a given peer.
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
  const gamma = params.corruptedFraction ?? DEFAULT_CORRUPTED_FRACTION;
  if (typeof gamma !== 'number' || !(gamma >= 0 && gamma < 0.5)) throw configError(`corruptedFraction: expected a number in [0, 0.5), got ${String(gamma)}`);
  const chosen = params.neighbourDegree === undefined ? chooseSecAggPlusParameters({ clients: n, corruptedFraction: gamma, ...(params.dropoutRate !== undefined ? { dropoutRate: params.dropoutRate } : {}) }) : null;
  const k = params.neighbourDegree ?? chosen!.neighbours;
  if (!Number.isSafeInteger(k) || k < 2) throw configError(`neighbourDegree: expected an integer ≥ 2, got ${String(k)}`);
  if (k < n - 1 && k % 2 !== 0) throw configError(`neighbourDegree: expected an even k (or k ≥ n − 1 = ${n - 1} for plain SecAgg), got ${k}`);
  let graph: NeighbourGraph;
  try {
    graph = buildNeighbourGraph(participants, graphSeed, k);
  } catch (cause) {
    throw new FedmartError('CONFIG_ERROR', `secure aggregation: cannot build the neighbourhood graph: ${(cause as Error).message}`, { cause });
  }
  const tMin = minimumSecureThreshold(n, graph.degree, gamma);
  if (tMin > graph.degree) throw configError(`neighbourDegree: k = ${graph.degree} is too small for ${n} clients with corrupted fraction ${gamma}: some client would have t or more corrupted neighbours for every t ≤ k; use a larger k or leave it unset`);
  const t = params.threshold ?? chosen?.threshold ?? chooseThreshold(n, graph.degree, gamma, params.dropoutRate ?? DEFAULT_DROPOUT_RATE);
  if (!Number.isSafeInteger(t) || t < tMin || t > graph.degree) {
    throw configError(`threshold: expected an integer t with ${tMin} ≤ t ≤ ${graph.degree} (below ${tMin}, corrupted neighbours could hold t shares with probability above 2^-40 for corrupted fraction ${gamma}), got ${String(t)}`);
  }
  const sMin = Math.max(t, minimumSignatures(n, gamma));
  const signatureThreshold = params.signatureThreshold ?? sMin;
  if (!Number.isSafeInteger(signatureThreshold) || signatureThreshold < sMin || signatureThreshold > n) {
    throw configError(`signatureThreshold: expected an integer in [${sMin}, ${n}] (an honest majority beyond the corrupted fraction ${gamma}, so only one survivor set can be certified), got ${String(signatureThreshold)}`);
  }
  if (!Array.isArray(params.identities)) throw configError('identities: expected one { id, publicKey } per participant');
  const identities = new Map<number, Uint8Array>();
  const keysSeen = new Set<string>();
  for (const entry of params.identities) {
    if (typeof entry !== 'object' || entry === null || !seen.has(entry.id)) throw configError(`identities: entry for ${String(entry?.id)}, which is not a participant`);
    if (identities.has(entry.id)) throw configError(`identities: two entries for participant ${entry.id}`);
    if (!isBytes(entry.publicKey) || entry.publicKey.length !== ED25519_KEY_BYTES) throw configError(`identities: participant ${entry.id}: expected a ${ED25519_KEY_BYTES}-byte Ed25519 public key`);
    const hex = bytesToHex(entry.publicKey);
    if (keysSeen.has(hex)) throw configError(`identities: participant ${entry.id} has the same identity key as another participant`);
    keysSeen.add(hex);
    identities.set(entry.id, entry.publicKey.slice());
  }
  if (identities.size !== n) throw configError(`identities: expected one entry per participant (${n}), got ${identities.size}`);
  return Object.freeze({ roundId, participants: graph.ids, vectorLength, quantization: q, graph, threshold: t, signatureThreshold, corruptedFraction: gamma, graphSeed: graphSeed.slice(), identities });
}
