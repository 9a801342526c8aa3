/**
 * In-process secure-aggregation round: n {@link SecAggClient}s and one
 * {@link SecAggServer} driven through all five stages, with clients dropping
 * out at chosen or random stages. It measures the costs the protocol adds
 * over a plain (unprotected) weighted sum and checks the unmasked result
 * against that plain sum. Backs `fedmart bench secagg`.
 *
 * Non-secret randomness (updates, weights, who drops, the public graph
 * seed) comes from a ChaCha20 PRG under `seed`, so a run is reproducible;
 * keys, masks and rounding noise still come from the OS CSPRNG.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { expandSeed } from '../crypto/prg.ts';
import { isFedmartError } from '../errors.ts';
import { generateEd25519KeyPair } from '../crypto/ed25519.ts';
import { SecAggClient } from './client.ts';
import { SECAGG_STAGES, wireByteLength, type SecAggStage } from './messages.ts';
import { type QuantizationConfig, quantizationErrorBound } from './quantize.ts';
import { SecAggServer, type SecAggResult } from './server.ts';

/** Options of {@link runSecAggInMemory}. */
export interface SecAggSimulationOptions {
  /** number of clients n (≥ 3) */
  clients: number;
  /** model parameters per update */
  params: number;
  /** fraction of clients that drop, 0 ≤ dropout < 1 (round(dropout·n) clients); default 0 */
  dropout?: number;
  /** stage at which dropping clients stop replying; default 'random' (uniform per client) */
  dropoutStage?: SecAggStage | 'random';
  /** SecAgg+ degree k; default from `chooseSecAggPlusParameters` (≥ n − 1: plain SecAgg) */
  neighbours?: number;
  /** Shamir threshold t; default the smallest secure t for k */
  threshold?: number;
  /** γ assumed by server and clients; default 0.1 */
  corruptedFraction?: number;
  /** seed of the non-secret randomness; default 1 */
  seed?: number;
  /** overrides of the default quantization { clip: 1, maxClients: n, maxWeight: 1000, bits: 32, rounding: 'stochastic' } */
  quantization?: Partial<QuantizationConfig>;
  /**
   * CPU-time clock in ms (e.g. from `process.cpuUsage()`), injected because
   * this module stays free of process globals. When given, server and plain
   * sum are also timed in CPU time, which a machine shared with other jobs
   * disturbs far less than wall time.
   */
  cpuClock?: () => number;
}

/** What one simulated round cost and whether it was right. */
export interface SecAggSimulationReport {
  clients: number;
  params: number;
  /** effective degree k and threshold t */
  neighbours: number;
  threshold: number;
  /** how many clients stopped replying at each stage */
  droppedAt: Record<SecAggStage, number>;
  /** clients whose input is in the sum */
  survivors: number;
  /** survivors excluded for too few surviving neighbours */
  excluded: number;
  /** survivor-set signatures each client required */
  signatureThreshold: number;
  /** 'ok', or 'failed' with the reason (e.g. too many dropouts for the threshold) */
  outcome: 'ok' | 'failed';
  failure?: string;
  /** mean time a surviving client spent in protocol calls (incl. quantization), ms */
  clientMs: number;
  /** server time to sum the masked inputs, check the survivor-set signatures and unmask (stages 2–4), ms */
  serverMs: number;
  /** server time over all stages, ms */
  serverTotalMs: number;
  /** mean bytes a surviving client sent over all stages (JSON + binary parts) */
  bytesPerClient: number;
  /** bytes of the plain update, 4·params */
  plainBytesPerClient: number;
  /** time of a plain Float32Array weighted sum of the survivors' updates, ms */
  plainSumMs: number;
  /** serverMs and plainSumMs in CPU time, when a cpuClock was given */
  serverCpuMs?: number;
  plainSumCpuMs?: number;
  /** the secure weighted mean matches the plain one within errorBound, and the total weight is exact */
  correct: boolean;
  /** largest |secure mean − plain mean| over coordinates */
  maxAbsError: number;
  /** quantization bound on that error */
  errorBound: number;
}

/** Non-secret, reproducible uniform integers from a ChaCha20 stream. */
function seededRandom(seed: number, label: string): (m: number) => number {
  const key = sha256(new TextEncoder().encode(`fedmart/secagg/simulation/${label}/${seed}`));
  let buffer: Uint32Array = new Uint32Array(0);
  let pos = 0;
  let counter = 0;
  return (m: number) => {
    const limit = Math.floor(2 ** 32 / m) * m;
    for (;;) {
      if (pos === buffer.length) {
        buffer = expandSeed(key, 1024, { counter });
        counter += 64;
        pos = 0;
      }
      const w = buffer[pos++]!;
      if (w < limit) return w % m;
    }
  };
}

function syntheticUpdate(seed: number, id: number, params: number, clip: number): Float32Array {
  const words = expandSeed(sha256(new TextEncoder().encode(`fedmart/secagg/simulation/update/${seed}/${id}`)), params);
  const out = new Float32Array(params);
  for (let j = 0; j < params; j++) out[j] = (words[j]! * 2 ** -31 - 1) * clip;
  return out;
}

/**
 * Run one secure-aggregation round in memory and measure it.
 * @param options - round size, dropout, SecAgg+ degree, threshold, seed
 * @returns costs, correctness and the outcome (a round that fails for too many dropouts is reported, not thrown)
 * @throws RangeError on invalid options; rethrows any error other than ROUND_FAILED
 * @example
 * const r = runSecAggInMemory({ clients: 50, params: 100_000, dropout: 0.2 });
 * r.correct && r.bytesPerClient <= 2 * r.plainBytesPerClient;
 */
export function runSecAggInMemory(options: SecAggSimulationOptions): SecAggSimulationReport {
  const { clients: n, params: L, dropout = 0, dropoutStage = 'random', seed = 1 } = options;
  if (!Number.isSafeInteger(n) || n < 3) throw new RangeError(`runSecAggInMemory: clients: expected an integer ≥ 3, got ${n}`);
  if (!Number.isSafeInteger(L) || L < 1) throw new RangeError(`runSecAggInMemory: params: expected an integer ≥ 1, got ${L}`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new RangeError(`runSecAggInMemory: dropout: expected a number in [0, 1), got ${dropout}`);
  if (dropoutStage !== 'random' && !SECAGG_STAGES.includes(dropoutStage)) throw new RangeError(`runSecAggInMemory: dropoutStage: expected 'random' or one of ${SECAGG_STAGES.join(', ')}`);

  // Arrange the population: ids 1..n, updates, weights, dropouts.
  const quantization: QuantizationConfig = { clip: 1, maxClients: n, maxWeight: 1000, bits: 32, rounding: 'stochastic', ...options.quantization };
  const rnd = seededRandom(seed, 'population');
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const updates = new Map(ids.map((id) => [id, syntheticUpdate(seed, id, L, quantization.clip)]));
  const weights = new Map(ids.map((id) => [id, 1 + rnd(quantization.maxWeight ?? 1)]));
  const order = ids.slice();
  for (let i = n - 1; i > 0; i--) {
    const j = rnd(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const dropStage = new Map<number, SecAggStage>();
  for (const id of order.slice(0, Math.round(dropout * n))) dropStage.set(id, dropoutStage === 'random' ? SECAGG_STAGES[rnd(SECAGG_STAGES.length)]! : dropoutStage);
  const droppedAt = Object.fromEntries(SECAGG_STAGES.map((s) => [s, 0])) as Record<SecAggStage, number>;
  for (const s of dropStage.values()) droppedAt[s]++;
  const graphSeed = sha256(new TextEncoder().encode(`fedmart/secagg/simulation/graph/${seed}`));

  // Act: drive every stage, timing each side.
  let serverTotalMs = 0;
  let serverMs = 0;
  let serverCpuMs = 0;
  const cpu = options.cpuClock ?? (() => 0);
  const clientMs = new Map(ids.map((id) => [id, 0]));
  const clientBytes = new Map(ids.map((id) => [id, 0]));
  const timeServer = <T>(counts: boolean, fn: () => T): T => {
    const t0 = performance.now();
    const c0 = cpu();
    try {
      return fn();
    } finally {
      const dt = performance.now() - t0;
      serverTotalMs += dt;
      if (counts) {
        serverMs += dt;
        serverCpuMs += cpu() - c0;
      }
    }
  };
  const identityKeys = new Map(ids.map((id) => [id, generateEd25519KeyPair()]));
  const identities = ids.map((id) => ({ id, publicKey: identityKeys.get(id)!.publicKey }));
  const gamma = options.corruptedFraction === undefined ? {} : { corruptedFraction: options.corruptedFraction };
  const server = timeServer(false, () => new SecAggServer({ roundId: `sim-${seed}`, participants: ids, vectorLength: L, quantization, neighbourDegree: options.neighbours, threshold: options.threshold, graphSeed, identities, ...gamma }));
  const agents = new Map(ids.map((id) => [id, new SecAggClient(id, identityKeys.get(id)!, gamma)]));
  const stageOf = (s: SecAggStage) => SECAGG_STAGES.indexOf(s);
  const replies = (stage: SecAggStage, id: number) => {
    const d = dropStage.get(id);
    return d === undefined || stageOf(d) > stageOf(stage);
  };
  const runStage = <Req extends { clientId: number }, Rep>(stage: SecAggStage, requests: Req[], act: (client: SecAggClient, req: Req) => Rep, receive: (rep: Rep) => void) => {
    for (const req of requests) {
      if (!replies(stage, req.clientId)) continue;
      const t0 = performance.now();
      const reply = act(agents.get(req.clientId)!, req);
      clientMs.set(req.clientId, clientMs.get(req.clientId)! + performance.now() - t0);
      clientBytes.set(req.clientId, clientBytes.get(req.clientId)! + wireByteLength(reply));
      timeServer(stage !== 'advertise-keys' && stage !== 'share-keys', () => receive(reply));
    }
  };

  let result: SecAggResult | null = null;
  let failure: string | undefined;
  try {
    runStage('advertise-keys', timeServer(false, () => server.advertiseKeysRequests()), (c, r) => c.advertiseKeys(r), (r) => server.receiveAdvertiseKeys(r));
    runStage('share-keys', timeServer(false, () => server.closeAdvertiseKeys()), (c, r) => c.shareKeys(r), (r) => server.receiveShareKeys(r));
    runStage('masked-input', timeServer(false, () => server.closeShareKeys()), (c, r) => c.maskInput(r, updates.get(r.clientId)!, weights.get(r.clientId)!), (r) => server.receiveMaskedInput(r));
    runStage('consistency-check', timeServer(true, () => server.closeMaskedInput()), (c, r) => c.consistencyCheck(r), (r) => server.receiveConsistencyCheck(r));
    runStage('unmask', timeServer(true, () => server.closeConsistencyCheck()), (c, r) => c.unmask(r), (r) => server.receiveUnmask(r));
    result = timeServer(true, () => server.closeUnmask());
  } catch (error) {
    if (!isFedmartError(error, 'ROUND_FAILED')) throw error;
    failure = error.message;
  }

  // Plain baseline over the same survivors: what an unprotected server would do.
  const survivors = result?.survivors ?? [];
  const t0 = performance.now();
  const c0 = cpu();
  const plain = new Float32Array(L);
  for (const id of survivors) {
    const x = updates.get(id)!;
    const w = weights.get(id)!;
    for (let j = 0; j < L; j++) plain[j] += w * x[j]!;
  }
  const plainSumMs = performance.now() - t0;
  const plainSumCpuMs = cpu() - c0;

  // Assert-style checks against an exact float64 reference.
  let maxAbsError = Number.POSITIVE_INFINITY;
  let errorBound = 0;
  let correct = false;
  if (result) {
    const totalWeight = survivors.reduce((acc, id) => acc + weights.get(id)!, 0);
    const reference = new Float64Array(L);
    for (const id of survivors) {
      const x = updates.get(id)!;
      const w = weights.get(id)!;
      for (let j = 0; j < L; j++) reference[j] += w * x[j]!;
    }
    maxAbsError = 0;
    for (let j = 0; j < L; j++) maxAbsError = Math.max(maxAbsError, Math.abs(result.weightedSum[j]! / result.totalWeight - reference[j]! / totalWeight));
    errorBound = quantizationErrorBound(server.params.quantization, survivors.length) / totalWeight;
    const excluded = new Set(result.excluded);
    const expectedSurvivors = ids.filter((id) => replies('masked-input', id) && agents.get(id)!.state !== 'aborted' && !excluded.has(id));
    correct = result.totalWeight === totalWeight && maxAbsError <= errorBound * (1 + 1e-9) + 1e-12 && expectedSurvivors.length === survivors.length && expectedSurvivors.every((id, i) => survivors[i] === id);
  }
  const mean = (m: Map<number, number>) => (survivors.length === 0 ? 0 : survivors.reduce((acc, id) => acc + m.get(id)!, 0) / survivors.length);
  return {
    clients: n,
    params: L,
    neighbours: server.params.graph.degree,
    threshold: server.params.threshold,
    droppedAt,
    survivors: survivors.length,
    excluded: result?.excluded.length ?? 0,
    signatureThreshold: server.params.signatureThreshold,
    outcome: result ? 'ok' : 'failed',
    ...(failure === undefined ? {} : { failure }),
    clientMs: mean(clientMs),
    serverMs,
    serverTotalMs,
    bytesPerClient: mean(clientBytes),
    plainBytesPerClient: 4 * L,
    plainSumMs,
    ...(options.cpuClock ? { serverCpuMs, plainSumCpuMs } : {}),
    correct,
    maxAbsError,
    errorBound,
  };
}
