/**
 * `fedmart bench scale` (issue 15 acceptance): round latency and coordinator memory of N coordinator
 * processes on one PostgreSQL beside ONE SQLite coordinator measured in the same run, and the failover time.
 *
 * Every coordinator is a real `fedmart coordinator` child process on a real port (its memory is its own
 * /proc figure, not this process's); the partners are lightweight protocol clients in this process
 * (real Socket.IO over websocket, the real envelope schemas, one shared pre-encoded update of `params`
 * float32 per train instruction, a fixed evaluation answer), so 200 of them cost the bench little and the
 * coordinator does all of a real round's work: selection, 2 × partners model sends, decode + FedAvg of
 * every update, evaluation, the commit transaction.
 *
 * A figure that cannot be measured in this build is null with a `…Reason` field beside it, never estimated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { encodeFloat32 } from '@fedmart/shared/codec';
import { FEDERATION_NAMESPACE, PROTOCOL_VERSION } from '@fedmart/shared/protocol';
import { FedmartError } from '@fedmart/shared/errors';
import { findPgBin, startPgCluster, type PgCluster } from '@fedmart/coordinator/db/pg-cluster';
import { probeFailover } from '@fedmart/coordinator/cluster/failover-probe';
import { probeRelay } from '@fedmart/coordinator/cluster/relay-probe';
import { ApiClient } from './api-client.ts';
import { progress } from './args.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/fedmart.js');

export interface ScaleBenchOptions {
  coordinators: number;
  partners: number;
  params: number;
  /** Rounds of the multi-round figure (one schedule of this many rounds). */
  rounds: number;
  /** An existing PostgreSQL; absent: a throwaway cluster is started and removed. */
  database?: string;
}

/** A `fedmart coordinator` child process. */
interface CoordinatorProcess {
  url: string;
  pid: number;
  api: ApiClient;
  child: ChildProcess;
  dataDir: string;
  /** The tail of its stderr (for a one-line reason when it dies mid-run). */
  stderr(): string;
}

/**
 * Start `fedmart coordinator` as a child process on a free port.
 * @returns the running coordinator, or the one-line reason it stopped before listening
 */
async function startCoordinatorProcess(extra: string[], scratch: string): Promise<CoordinatorProcess | { refused: string }> {
  const dataDir = await mkdtemp(path.join(scratch, 'coord-'));
  const child = spawn(process.execPath, [BIN, 'coordinator', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-8000); });
  const url = await new Promise<string | null>((resolve) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearInterval(timer); resolve(m[1]!); }
    }, 50);
    child.once('exit', () => { clearInterval(timer); resolve(null); });
  });
  if (url === null) {
    const line = err.trim().split('\n').filter((l) => l.trim() !== '').pop() ?? `exited with code ${child.exitCode}`;
    return { refused: line.replace(/^fedmart: /, '') };
  }
  const token = (await readFile(path.join(dataDir, 'operator.token'), 'utf8')).trim();
  return { url, pid: child.pid!, api: new ApiClient(url, token), child, dataDir, stderr: () => err };
}

/** A coordinator that died mid-run: say how (exit code or signal) and its last stderr line, not just "fetch failed". */
function explainExit(c: CoordinatorProcess, err: unknown): unknown {
  if (c.child.exitCode === null && c.child.signalCode === null) return err;
  const last = c.stderr().trim().split('\n').filter((l) => l.trim() !== '').pop() ?? 'nothing on stderr';
  return new FedmartError('INTERNAL', `bench scale: the coordinator (pid ${c.pid}) exited mid-run (${c.child.signalCode ? `signal ${c.child.signalCode}` : `code ${c.child.exitCode}`}): ${last.slice(0, 300)}`, { cause: err });
}

async function stopCoordinatorProcess(c: CoordinatorProcess): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) {
    const exited = new Promise<void>((resolve) => c.child.once('exit', () => resolve()));
    c.child.kill('SIGTERM');
    const t = setTimeout(() => c.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }
}

/** Peak and current resident memory of a process in MB (Linux /proc), null elsewhere. */
export function processMemoryMb(pid: number): { peakRssMb: number; rssMb: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    const peak = kb('VmHWM'), rss = kb('VmRSS');
    if (!Number.isFinite(peak) || !Number.isFinite(rss)) return null;
    return { peakRssMb: Math.round(peak / 1024), rssMb: Math.round(rss / 1024) };
  } catch {
    return null;
  }
}

/**
 * One lightweight partner: says hello, answers every train instruction with the shared update and every
 * evaluation with a fixed metric, over the real protocol.
 * @returns the socket, once the coordinator welcomed it
 */
async function connectPartner(url: string, token: string, update: Uint8Array, params: number): Promise<Socket> {
  const s = io(url + FEDERATION_NAMESPACE, { auth: { token }, transports: ['websocket'], reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 5000 });
  let seq = 0;
  const send = (envelope: Record<string, unknown>, attachment?: Uint8Array) => {
    const e = { v: PROTOCOL_VERSION, seq: ++seq, ...envelope };
    if (attachment) s.emit('msg', e, attachment, () => undefined);
    else s.emit('msg', e, () => undefined);
  };
  s.on('train', (t: { roundId: string }) => send({ type: 'train-result', roundId: t.roundId, payload: { numExamples: 100, metrics: { loss: 0.5 }, length: params } }, update));
  s.on('evaluate', (e: { roundId: string }) => send({ type: 'evaluate-result', roundId: e.roundId, payload: { numExamples: 100, metrics: { loss: 0.5 } } }));
  await new Promise<void>((resolve, reject) => {
    s.once('welcome', () => resolve());
    s.once('connect_error', (e) => reject(new FedmartError('UNAVAILABLE', `bench scale: a partner could not connect to ${url}: ${e.message}`)));
    s.once('protocol-error', (e: { message: string }) => reject(new FedmartError('INTERNAL', `bench scale: the coordinator refused a partner's hello: ${e.message}`)));
    // Every (re)connection says hello again, as the real agent does.
    s.on('connect', () => send({ type: 'hello', payload: { numExamples: 100, consent: true } }));
  });
  return s;
}

interface RoundView { id: string; number: number; phase: string; reason: string | null; startedAt: string; endedAt: string | null }

/** Poll the federation's rounds until `count` of them ended (committed or failed). */
async function waitRoundsEnded(api: ApiClient, fed: string, count: number, hangGuardMs: number): Promise<RoundView[]> {
  const end = Date.now() + hangGuardMs;
  let refused = 0;
  for (;;) {
    let rounds: RoundView[];
    try {
      ({ rounds } = await api.get<{ rounds: RoundView[] }>(`/api/v1/federations/${fed}/rounds`));
      refused = 0;
    } catch (err) {
      // A read poll: a connection dropped by a coordinator busy aggregating (keep-alive race under load) is retried, a few times.
      if (!(err instanceof FedmartError && err.code === 'UNAVAILABLE') || ++refused > 5) throw err;
      const cause = (err.cause as { cause?: { code?: string; message?: string } } | undefined)?.cause;
      progress(`bench scale:   polling the rounds failed (${cause?.code ?? cause?.message ?? err.message}); retrying`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    const ended = rounds.filter((r) => r.phase === 'committed' || r.phase === 'failed').sort((a, b) => a.number - b.number);
    if (ended.length >= count) return ended;
    if (Date.now() > end) throw new FedmartError('UNAVAILABLE', `bench scale: only ${ended.length} of ${count} rounds ended within ${hangGuardMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ms = (r: RoundView) => Date.parse(r.endedAt!) - Date.parse(r.startedAt);

/**
 * Run rounds on coordinators already serving one federation: a warm-up round, one timed round, then one
 * schedule of `rounds` rounds. Round times are the coordinator's own startedAt → endedAt.
 */
async function timeRounds(api: ApiClient, fed: string, rounds: number): Promise<{ singleRoundMs: number; multiRoundMs: number; perRoundMs: number[] }> {
  const guard = 600_000 + rounds * 300_000;
  let done = 0;
  const run = async (count: number) => {
    await api.post(`/api/v1/federations/${fed}/rounds`, { count });
    done += count;
    const ended = await waitRoundsEnded(api, fed, done, guard);
    const mine = ended.slice(done - count);
    const failed = mine.find((r) => r.phase !== 'committed');
    if (failed) throw new FedmartError('INTERNAL', `bench scale: round ${failed.number} failed: ${failed.reason}`);
    return mine;
  };
  progress('bench scale:   warm-up round');
  await run(1);
  progress('bench scale:   single round');
  const [single] = await run(1);
  progress(`bench scale:   ${rounds} rounds in one schedule`);
  const multi = await run(rounds);
  return { singleRoundMs: ms(single!), multiRoundMs: Date.parse(multi.at(-1)!.endedAt!) - Date.parse(multi[0]!.startedAt), perRoundMs: multi.map(ms) };
}

/** Create the bench federation on `api`, enroll `partners` partners and return their tokens. */
async function setUpFederation(api: ApiClient, partners: number, params: number): Promise<{ fed: string; tokens: string[] }> {
  const config = {
    task: 'bench-scale', model: { kind: 'tensors', tensors: [{ name: 'w', shape: [params], init: { type: 'zeros' } }] },
    localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 },
    minClients: partners, timeouts: { selectingMs: 120_000, trainingMs: 600_000, evaluatingMs: 600_000 },
  };
  const { federation } = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'bench scale', config });
  const tokens: string[] = [];
  for (let i = 0; i < partners; i++) tokens.push((await api.post<{ token: string }>(`/api/v1/federations/${federation.id}/enrollments`, { partner: `bench-partner-${i}` })).token);
  return { fed: federation.id, tokens };
}

async function connectAll(urls: string[], tokens: string[], update: Uint8Array, params: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  // A few at a time: 200 simultaneous handshakes only measure the accept queue.
  for (let i = 0; i < tokens.length; i += 20) sockets.push(...(await Promise.all(tokens.slice(i, i + 20).map((t, j) => connectPartner(urls[(i + j) % urls.length]!, t, update, params)))));
  return sockets;
}

/** The single SQLite coordinator (the baseline). */
async function sqliteBaseline(o: ScaleBenchOptions, update: Uint8Array, scratch: string) {
  progress(`bench scale: baseline: 1 SQLite coordinator, ${o.partners} partners × ${o.params} params`);
  const c = await startCoordinatorProcess([], scratch);
  if ('refused' in c) throw new FedmartError('INTERNAL', `bench scale: the SQLite coordinator did not start: ${c.refused}`);
  let sockets: Socket[] = [];
  try {
    const { fed, tokens } = await setUpFederation(c.api, o.partners, o.params);
    sockets = await connectAll([c.url], tokens, update, o.params);
    const t = await timeRounds(c.api, fed, o.rounds).catch((err: unknown) => { throw explainExit(c, err); });
    return { ...t, memory: processMemoryMb(c.pid) };
  } finally {
    for (const s of sockets) s.close();
    await stopCoordinatorProcess(c);
  }
}

/** The PostgreSQL coordinators: measured when they serve, else null with the coordinator's own reason. */
async function pgCoordinators(o: ScaleBenchOptions, update: Uint8Array, scratch: string) {
  let cluster: PgCluster | null = null;
  let url = o.database;
  if (url === undefined) {
    const bin = findPgBin();
    if (!bin) return { database: null, probe: null, transport: null, reason: 'no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin) and no --database; install them with apt-get install -y postgresql' };
    progress('bench scale: starting a throwaway PostgreSQL cluster');
    cluster = await startPgCluster({ bin });
    url = cluster.url;
  }
  const coords: CoordinatorProcess[] = [];
  let sockets: Socket[] = [];
  try {
    progress('bench scale: kill -9 of a cluster member process leading a federation mid-round (lease TTL 6 s, renew 2 s)');
    const probe = await probeFailover(url);
    progress(`bench scale: cluster transport: ${o.coordinators} Socket.IO servers on the postgres adapter (partners routed to the leader; partners spread, messages relayed) vs one, ${o.partners} partners × ${o.params} params`);
    const transport = await probeRelay(url, { nodes: o.coordinators, partners: o.partners, params: o.params });
    const database = cluster ? 'throwaway PostgreSQL cluster' : 'given by --database';
    progress(`bench scale: ${o.coordinators} coordinators on PostgreSQL`);
    for (let i = 0; i < o.coordinators; i++) {
      const c = await startCoordinatorProcess(['--database', url, '--cluster', '--coordinator-id', `bench-${i}`], scratch);
      if ('refused' in c) return { database, probe, transport, reason: `coordinator ${i + 1} of ${o.coordinators} did not start: ${c.refused}` };
      coords.push(c);
    }
    const { fed, tokens } = await setUpFederation(coords[0]!.api, o.partners, o.params);
    sockets = await connectAll(coords.map((c) => c.url), tokens, update, o.params);
    const t = await timeRounds(coords[0]!.api, fed, o.rounds);
    return { database, probe, transport, reason: null, ...t, memory: coords.map((c) => processMemoryMb(c.pid)) };
  } finally {
    for (const s of sockets) s.close();
    for (const c of coords) await stopCoordinatorProcess(c);
    await cluster?.stop();
  }
}

/**
 * The whole bench: baseline, then the PostgreSQL coordinators.
 * @returns the JSON `fedmart bench scale` prints
 */
export async function benchScale(o: ScaleBenchOptions): Promise<Record<string, unknown>> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'fedmart-bench-scale-'));
  // One shared update, as sent on the wire: small values, so no norm limit refuses it.
  const delta = new Float32Array(o.params);
  for (let i = 0; i < o.params; i++) delta[i] = ((i % 17) - 8) * 1e-5;
  const update = encodeFloat32(delta);
  try {
    const base = await sqliteBaseline(o, update, scratch);
    const pgRun = await pgCoordinators(o, update, scratch);
    const measured = pgRun.reason === null && 'singleRoundMs' in pgRun;
    const notMeasured = measured ? null : pgRun.reason;
    return {
      coordinators: o.coordinators, partners: o.partners, params: o.params, rounds: o.rounds,
      baseline: { coordinators: 1, database: 'sqlite', singleRoundMs: base.singleRoundMs, multiRoundMs: base.multiRoundMs, perRoundMs: base.perRoundMs, memory: base.memory },
      singleRoundMs: measured ? pgRun.singleRoundMs : null,
      multiRoundMs: measured ? pgRun.multiRoundMs : null,
      perRoundMs: measured ? pgRun.perRoundMs : null,
      memory: measured ? pgRun.memory : null,
      ratio: measured ? Math.round((pgRun.singleRoundMs! / base.singleRoundMs) * 1000) / 1000 : null,
      multiRatio: measured ? Math.round((pgRun.multiRoundMs! / base.multiRoundMs) * 1000) / 1000 : null,
      failoverSeconds: null,
      ...(notMeasured ? { reason: notMeasured } : {}),
      failoverReason: measured ? 'the whole-coordinator kill -9 failover (partners reconnecting, the next round committed) is not yet measured by this bench' : `no coordinators on PostgreSQL: ${notMeasured}`,
      // Measured: the transport part of a two-coordinator round (cluster/relay-probe.ts).
      transport: pgRun.transport === null ? null : {
        ...pgRun.transport,
        what: 'one round of traffic only (model out to every partner, a same-size update back, model out again, a small answer back; no aggregation, no store), median of 3 after a warm-up, each layout beside the same traffic on ONE server without the adapter measured in the same run (singleServerRoundMs, measured just before the routed layout). clusterRouted (routedRoundMs, routedRatio): what the product does (cluster/route.ts): partners connect to the servers in turn, a non-leader redirects each of its partners to the leader, so partner traffic is local to the leader and only a round-status room broadcast per phase crosses the postgres adapter. cluster (clusterRoundMs, ratio): partners spread over the servers, the non-leader forwarding every message through ClusterRelay and the leader reaching them through the adapter. clusterRoomBroadcast: as cluster, with the model sent once per phase to the federation room',
      },
      // Measured: the lease part of failover, with real processes (cluster/failover-probe.ts).
      leaseFailover: pgRun.probe === null ? null : { ...pgRun.probe, what: 'kill -9 of a cluster member process (cluster/node-process.ts: Socket.IO + postgres adapter + lease manager) leading a federation mid-round, until the other process holds the lease and has marked the round failed; not a whole coordinator' },
    };
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}
