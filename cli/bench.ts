/**
 * `fedmart bench …`: speed figures, each beside a baseline measured in the
 * same run on the same machine (shared machines are noisy; ratios travel).
 */
import { FedmartError } from '@fedmart/shared/errors';
import { decodeFloat32, encodeFloat32 } from '@fedmart/shared/codec';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import { seededRandom } from '@fedmart/shared/model';
import type { ClientUpdate } from '@fedmart/shared/strategy/types';
import { availableParallelism } from 'node:os';
import { parseFlags, intFlag, numberFlag, progress } from './args.ts';

const USAGE = `fedmart bench <what> [flags] --json

  aggregate --clients N --params D    coordinator aggregation path (wire decode + FedAvg) vs a plain Float32Array sum;
                                      "correct" compares the aggregate with an independent weighted mean
  secagg --clients N --params D --dropout P [--neighbours K]
                                      secure aggregation (Bonawitz et al. 2017 / SecAgg+) vs the plain sum of the survivors
  he --clients N --params D           CKKS encrypted aggregation (node-seal) vs the plain sum
  psi --size N --overlap F [--threads T]
                                      ECDH private set intersection of two parties of N ids each (ids hashed onto
                                      Curve25519, RFC 9380) vs the native X25519 multiplications alone (one thread);
                                      each party spreads its multiplications over T threads (default: the cores)
  text [--size N]                     text classifier on real reviews: p95 latency of one classification (JS) beside the
                                      same weights' tfjs predict call; training examples/s (N texts timed, default 2000)
  recommendation                      MovieLens: the recommendation task's local epoch vs a plain TensorFlow.js loop, bytes
                                      per round per partner with and without sparse rows, recommend latency per user
                                      (--only recommend: the recommend latency and held-out fold-in HR alone)
  scale --coordinators N --partners P --params D [--rounds R] [--database postgres://…] [--transport]
                                      N \`fedmart coordinator --cluster\` processes on one PostgreSQL (a throwaway
                                      cluster without --database) beside one SQLite coordinator, P real Socket.IO
                                      partners: round latency, memory, and kill -9 of the leader mid-round
                                      (failoverSeconds, recoverySeconds); null with a reason without PostgreSQL
                                      (--database: a scratch database, the bench creates federations in it;
                                      --transport: also the adapter transport probe, minutes at 200 partners)
  all                                 every benchmark at its default size, one JSON object

Example:
  fedmart bench aggregate --clients 32 --params 1000000 --json`;

const round2 = (x: number) => Math.round(x * 100) / 100;

/** This process's CPU time (user + system) in ms: the figure a machine shared with other jobs disturbs least. */
export const cpuClockMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median wall time of `fn` over `reps` runs (after one warm-up), in ms. */
export function timeMs(fn: () => void, reps: number): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  return medianOf(t);
}

/** What {@link benchAggregate} reports. */
export type AggregateBench = {
  clients: number;
  params: number;
  /** The timed FedAvg output equals an independent float64 weighted mean within float32 rounding. */
  correct: boolean;
  /** max_i |fedavg[i] − reference[i]|. */
  maxAbsError: number;
  floatsPerSecond: number;
  plainFloatsPerSecond: number;
  aggregateMs: number;
  plainSumMs: number;
  ratio: number;
};

/**
 * Time the coordinator's aggregation path (wire decode + FedAvg) against a
 * plain Float32Array sum of the same vectors, and check the aggregate it
 * timed against an independent example-weighted mean computed here.
 * @param clients - number of updates
 * @param params - parameters per update
 * @param reps - timed repetitions (median reported), after one warm-up
 * @returns speed figures, the baseline, and whether the aggregate was right
 */
export function benchAggregate(clients: number, params: number, reps = 5): AggregateBench {
  const rand = seededRandom(1);
  const vectors: Float32Array[] = [];
  for (let c = 0; c < clients; c++) {
    const v = new Float32Array(params);
    for (let i = 0; i < params; i++) v[i] = rand() * 2 - 1;
    vectors.push(v);
  }
  const examples = vectors.map((_, c) => 100 + c);
  // What arrives on the wire: each update as its own little-endian byte buffer.
  const wire = vectors.map((v) => Buffer.from(encodeFloat32(v)));
  const global = new Float32Array(params);
  for (let i = 0; i < params; i++) global[i] = 0.5 - rand();
  const strategy = createStrategy('fedavg');
  const timed: { weights: Float32Array | null } = { weights: null }; // the output of the last timed run
  const aggregateMs = timeMs(() => {
    const updates: ClientUpdate[] = wire.map((b, c) => ({ nodeId: `c${c}`, numExamples: examples[c]!, delta: decodeFloat32(b, params), metrics: {} }));
    timed.weights = strategy.aggregateTrain(1, global, updates, []).weights;
  }, reps);
  const plainSumMs = timeMs(() => {
    const acc = new Float32Array(params);
    for (const v of vectors) for (let i = 0; i < params; i++) acc[i]! += v[i]!;
  }, reps);
  // Independent reference, straight from the definition: w + Σ n_k·Δ_k / Σ n_k, one coordinate at a time in float64.
  const total = examples.reduce((a, b) => a + b, 0);
  const aggregated = timed.weights;
  let maxAbsError = aggregated === null ? Number.POSITIVE_INFINITY : 0;
  let correct = aggregated !== null && aggregated.length === params;
  for (let i = 0; correct && i < params; i++) {
    let s = 0;
    for (let c = 0; c < clients; c++) s += examples[c]! * vectors[c]![i]!;
    const expected = global[i]! + s / total;
    const err = Math.abs(aggregated![i]! - expected);
    if (!(err <= maxAbsError)) maxAbsError = Number.isNaN(err) ? Number.POSITIVE_INFINITY : err;
    // float32 rounding of a value of magnitude ≤ 2 is at most 2^-23·2; allow a few ulps.
    if (!(err <= 4 * 2 ** -23 * Math.max(1, Math.abs(expected)))) correct = false;
  }
  const floats = clients * params;
  return {
    clients, params, correct, maxAbsError,
    floatsPerSecond: Math.round(floats / (aggregateMs / 1000)),
    plainFloatsPerSecond: Math.round(floats / (plainSumMs / 1000)),
    aggregateMs: round2(aggregateMs),
    plainSumMs: round2(plainSumMs),
    ratio: Math.round((plainSumMs / aggregateMs) * 1000) / 1000,
  };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (!what || what === '--help' || what === '-h') {
    process.stdout.write(USAGE + '\n');
    return what ? 0 : 2;
  }
  const { values } = parseFlags(`bench ${what}`, rest, {
    clients: { type: 'string' }, params: { type: 'string' }, json: { type: 'boolean' }, reps: { type: 'string' },
    dropout: { type: 'string' }, neighbours: { type: 'string' }, size: { type: 'string' }, overlap: { type: 'string' }, threads: { type: 'string' }, only: { type: 'string' },
    coordinators: { type: 'string' }, partners: { type: 'string' }, rounds: { type: 'string' }, database: { type: 'string' }, transport: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let result: Record<string, unknown>;
  switch (what) {
    case 'aggregate': {
      const clients = intFlag('bench aggregate', values, 'clients', 32, 1, 10_000);
      const params = intFlag('bench aggregate', values, 'params', 1_000_000, 1, 100_000_000);
      const reps = intFlag('bench aggregate', values, 'reps', 5, 1, 100);
      progress(`bench aggregate: ${clients} clients × ${params} params, median of ${reps}`);
      result = benchAggregate(clients, params, reps);
      break;
    }
    case 'secagg': {
      const clients = intFlag('bench secagg', values, 'clients', 50, 3, 10_000);
      const params = intFlag('bench secagg', values, 'params', 100_000, 1, 10_000_000);
      const dropout = numberFlag('bench secagg', values, 'dropout', 0, 0, 0.9);
      const neighbours = values.neighbours === undefined ? undefined : intFlag('bench secagg', values, 'neighbours', 0, 2, 10_000);
      progress(`bench secagg: ${clients} clients × ${params} params, dropout ${dropout}${neighbours ? `, ${neighbours} neighbours (SecAgg+)` : ''}`);
      const { runSecAggInMemory } = await import('@fedmart/shared/secagg/simulate');
      const r = runSecAggInMemory({ clients, params, dropout, cpuClock: cpuClockMs, ...(neighbours !== undefined ? { neighbours } : {}) });
      if (r.outcome === 'failed') progress(`round failed: ${r.failure}`);
      result = {
        clients: r.clients, params: r.params, dropout, correct: r.correct, maxAbsError: r.maxAbsError, plainSumMs: round2(r.plainSumMs), clientMs: round2(r.clientMs), serverMs: round2(r.serverMs), serverOverPlain: round2(r.serverMs / r.plainSumMs),
        serverCpuMs: round2(r.serverCpuMs!), plainSumCpuMs: round2(r.plainSumCpuMs!), serverOverPlainCpu: round2(r.serverCpuMs! / r.plainSumCpuMs!), threads: 1,
        bytesPerClient: r.bytesPerClient, plainBytesPerClient: r.plainBytesPerClient, neighbours: r.neighbours, threshold: r.threshold, survivors: r.survivors, errorBound: r.errorBound, serverTotalMs: round2(r.serverTotalMs),
        ...(r.failure ? { failure: r.failure } : {}),
      };
      break;
    }
    case 'he': {
      const clients = intFlag('bench he', values, 'clients', 10, 1, 1000);
      const params = intFlag('bench he', values, 'params', 100_000, 1, 10_000_000);
      progress(`bench he: ${clients} clients × ${params} params, CKKS N=8192`);
      const { runHeAggregationInMemory } = await import('@fedmart/shared/he/simulate');
      const r = await runHeAggregationInMemory({ clients, params });
      result = { clients: r.clients, params: r.params, correct: r.correct, maxAbsError: r.maxAbsError, clientEncryptMs: round2(r.clientEncryptMs), serverAggregateMs: round2(r.serverAggregateMs), decryptMs: round2(r.decryptMs), bytesPerClient: r.bytesPerClient, plainBytesPerClient: r.plainBytesPerClient, plainSumMs: round2(r.plainSumMs),
        binding: { ok: r.binding.ok, clientSignMs: round2(r.binding.clientSignMs), serverMaskMs: round2(r.binding.serverMaskMs), partnerCheckMs: round2(r.binding.partnerCheckMs), aggregateBytes: r.binding.aggregateBytes, extraBytesPerPartner: r.binding.extraBytesPerPartner } };
      break;
    }
    case 'psi': {
      const size = intFlag('bench psi', values, 'size', 100_000, 1, 10_000_000);
      const overlap = numberFlag('bench psi', values, 'overlap', 0.5, 0, 1);
      progress(`bench psi: two parties × ${size} ids, overlap ${overlap}`);
      const { runPsiInMemory } = await import('@fedmart/shared/psi/simulate');
      const threads = intFlag('bench psi', values, 'threads', availableParallelism(), 1, 64);
      const { X25519Pool } = await import('./x25519-pool.ts');
      const pool = new X25519Pool(threads);
      try {
        const r = runPsiInMemory({ size, overlap, cpuClock: cpuClockMs, multiplyBatch: pool.multiplyBatch });
        result = { size: r.size, overlap: r.overlap, intersection: r.intersection, correct: r.correct, seconds: round2(r.seconds), cpuSeconds: round2(r.cpuSeconds!), threads, x25519FloorSeconds: round2(r.x25519FloorSeconds) };
      } finally {
        await pool.close();
      }
      break;
    }
    case 'all': {
      progress('bench all: aggregate 32 × 1,000,000');
      result = { aggregate: benchAggregate(32, 1_000_000) };
      progress('bench all: secagg 50 × 100,000, dropout 0.2');
      const { runSecAggInMemory } = await import('@fedmart/shared/secagg/simulate');
      const sa = runSecAggInMemory({ clients: 50, params: 100_000, dropout: 0.2 });
      result.secagg = { clients: 50, params: 100_000, dropout: 0.2, correct: sa.correct, serverMs: round2(sa.serverMs), plainSumMs: round2(sa.plainSumMs), bytesPerClient: sa.bytesPerClient, plainBytesPerClient: sa.plainBytesPerClient };
      progress('bench all: he 10 × 100,000');
      const { runHeAggregationInMemory } = await import('@fedmart/shared/he/simulate');
      const he = await runHeAggregationInMemory({ clients: 10, params: 100_000 });
      result.he = { clients: 10, params: 100_000, correct: he.correct, maxAbsError: he.maxAbsError, serverAggregateMs: round2(he.serverAggregateMs), plainSumMs: round2(he.plainSumMs), bytesPerClient: he.bytesPerClient, plainBytesPerClient: he.plainBytesPerClient };
      progress('bench all: psi 20,000 ids, overlap 0.5');
      const { runPsiInMemory } = await import('@fedmart/shared/psi/simulate');
      const psi = runPsiInMemory({ size: 20_000, overlap: 0.5 });
      result.psi = { size: 20_000, overlap: 0.5, intersection: psi.intersection, correct: psi.correct, seconds: round2(psi.seconds), x25519FloorSeconds: round2(psi.x25519FloorSeconds) };
      break;
    }
    case 'text': {
      const { benchText } = await import('./bench-text.ts');
      result = await benchText({ texts: intFlag('bench text', values, 'size', 2000, 10, 100_000) });
      break;
    }
    case 'scale': {
      const { benchScale } = await import('./bench-scale.ts');
      const database = values.database as string | undefined;
      if (database !== undefined && !/^postgres(ql)?:\/\//.test(database)) throw new FedmartError('CONFIG_ERROR', `bench scale: --database must be a postgres:// URL (e.g. postgres://fedmart@db:5432/fedmart), got "${database.slice(0, 40)}"; leave it out to use a throwaway cluster`);
      result = await benchScale({
        coordinators: intFlag('bench scale', values, 'coordinators', 2, 2, 16),
        partners: intFlag('bench scale', values, 'partners', 200, 2, 5000),
        params: intFlag('bench scale', values, 'params', 100_000, 1, 10_000_000),
        rounds: intFlag('bench scale', values, 'rounds', 5, 1, 100),
        ...(database !== undefined ? { database } : {}),
        transport: values.transport === true,
      });
      break;
    }
    case 'recommendation': {
      const { benchRecommendation } = await import('./bench-recommendation.ts');
      const only = values.only as string | undefined;
      if (only !== undefined && only !== 'recommend') throw new FedmartError('CONFIG_ERROR', `bench recommendation: --only takes "recommend" (the recommend latency and fold-in quality alone), got "${only}"`);
      result = await benchRecommendation({ recommendOnly: only === 'recommend' });
      break;
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `bench: unknown benchmark "${what}"; choose one of: aggregate, secagg, he, psi, text, recommendation, scale, all`);
  }
  process.stdout.write(values.json ? JSON.stringify(result) + '\n' : JSON.stringify(result, null, 2) + '\n');
  return 0;
}
