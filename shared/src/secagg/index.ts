/**
 * Secure aggregation: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017) with the SecAgg+
 * neighbourhood graph of Bell et al. (CCS 2020).
 *
 * - `quantize.ts`: clip, weight and quantize updates into Z_{2^bits}; dequantize the sum.
 * - `graph.ts`: the public, seeded k-regular neighbourhood graph.
 * - `client.ts` / `server.ts`: the paired, staged state machines.
 * - `messages.ts`: the messages (small JSON part + binary parts).
 * - `simulate.ts`: an in-memory round with dropouts, for tests and `fedmart bench secagg`.
 *
 * Threat model: an honest-but-curious coordinator that may also lie about
 * who dropped out (each client refuses to reveal both secrets of one peer,
 * and 2t > k). Not covered: a coordinator that forges messages between
 * clients beyond relaying them (the active variant of Bonawitz et al. adds
 * signatures and a consistency round), or clients sending bad inputs (use
 * robust aggregation or DP for that).
 */
export { SecAggClient, type SecAggClientState } from './client.ts';
export { SecAggServer, type SecAggResult, type SecAggServerState } from './server.ts';
export { GRAPH_SEED_BYTES, buildNeighbourGraph, defaultNeighbourDegree, type NeighbourGraph } from './graph.ts';
export { SECAGG_MAX_VECTOR_LENGTH, defaultThreshold, resolveRoundParameters, type ResolvedRoundParameters, type SecAggRoundParameters } from './params.ts';
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
  type BinarySplit,
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
