/**
 * Secure aggregation: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017) with the SecAgg+
 * neighbourhood graph of Bell et al. (CCS 2020).
 *
 * - `quantize.ts`: clip, weight and quantize updates into Z_{2^bits}; dequantize the sum.
 * - `graph.ts`: the public, seeded k-regular neighbourhood graph.
 * - `secagg-plus-params.ts`: k and t from n, γ, δ (Bell et al. 2020), the survivor-set signature threshold.
 * - `client.ts` / `server.ts`: the paired, staged state machines.
 * - `messages.ts`: the messages (small JSON part + binary parts).
 * - `simulate.ts`: an in-memory round with dropouts, for tests and `fedmart bench secagg`.
 *
 * Threat model: an actively malicious coordinator colluding with up to a
 * fraction γ of the clients (default 0.1). It may drop, delay, reorder or
 * forge any message it relays and lie to each client about who dropped out.
 * Advertised keys are signed with each partner's pinned Ed25519 identity
 * key, so it cannot substitute keys; the consistency check (Bonawitz et al.
 * 2017 §6) makes every honest client unmask against the one survivor set
 * an honest majority signed; the SecAgg+ parameters (Bell et al. 2020;
 * `secagg-plus-params.ts`) keep corrupted neighbours below t except with
 * probability 2^-40. It learns Σ of the survivors' inputs, nothing about
 * one honest input beyond that sum. Not covered: who the participants are
 * (the coordinator enrolls partners, so it could enrol sybils — operators
 * and partners compare identity fingerprints out of band), the choice of
 * the graph seed (a coordinator colluding with clients could grind it to
 * crowd one client's neighbourhood; the 2^-40 bound assumes a seed it did
 * not choose adversarially), or clients sending bad inputs (use robust
 * aggregation or DP for that).
 */
export { SecAggClient, checkSurvivorSet, type SecAggClientOptions, type SecAggClientState } from './client.ts';
export { SecAggServer, type SecAggResult, type SecAggServerState } from './server.ts';
export { GRAPH_SEED_BYTES, buildNeighbourGraph, defaultNeighbourDegree, type NeighbourGraph } from './graph.ts';
export { SECAGG_MAX_VECTOR_LENGTH, resolveRoundParameters, type ResolvedRoundParameters, type SecAggRoundParameters } from './params.ts';
export {
  DEFAULT_CORRUPTED_FRACTION,
  DEFAULT_DROPOUT_RATE,
  SECAGG_CORRECTNESS_BITS,
  SECAGG_SECURITY_BITS,
  chooseSecAggPlusParameters,
  chooseThreshold,
  minimumSecureThreshold,
  minimumSignatures,
  type SecAggPlusAssumptions,
  type SecAggPlusParameters,
} from './secagg-plus-params.ts';
export {
  dequantizeSum,
  quantizationErrorBound,
  quantizeWeightedUpdate,
  resolveQuantization,
  type DequantizedSum,
  type QuantizationConfig,
  type ResolvedQuantization,
  type RoundingMode,
} from './quantize.ts';
export {
  SECAGG_PROTOCOL,
  SECAGG_STAGES,
  splitBinaryParts,
  wireByteLength,
  type AdvertiseKeysReply,
  type AdvertiseKeysRequest,
  ADVERTISE_SIGNATURE_PURPOSE,
  SURVIVORS_SIGNATURE_PURPOSE,
  type BinarySplit,
  type ConsistencyCheckReply,
  type ConsistencyCheckRequest,
  type IdentityEntry,
  type SurvivorSignature,
  type MaskedInputReply,
  type MaskedInputRequest,
  type PeerKeys,
  type RevealedShare,
  type RevealedShareKind,
  type SealedShares,
  type SecAggReply,
  type SecAggRequest,
  type SecAggStage,
  type ShareKeysReply,
  type ShareKeysRequest,
  type UnmaskReply,
  type UnmaskRequest,
} from './messages.ts';
export { runSecAggInMemory, type SecAggSimulationOptions, type SecAggSimulationReport } from './simulate.ts';
