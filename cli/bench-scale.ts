/**
 * `fedmart bench scale` (issue 15 acceptance): round latency and coordinator memory of N coordinator
 * processes on one PostgreSQL beside ONE SQLite coordinator measured in the same run, and the failover
 * time of a whole coordinator killed with `kill -9` mid-round.
 *
 * Every coordinator is a real `fedmart coordinator` child process on a real port (its memory is its own
 * /proc figure, not this process's): the baseline one on SQLite, the N others with `--cluster --database
 * postgres://… --advertise-url` on one PostgreSQL sharing one data dir's secrets (signing key, log key,
 * operator token), as the coordinators of one deployment do. The partners are lightweight protocol
 * clients in this process (real Socket.IO over websocket, the real envelope schemas, one shared
 * pre-encoded update of `params` float32 per train instruction, a fixed evaluation answer), so 200 of
 * them cost the bench little and the coordinator does all of a real round's work: selection, 2 ×
 * partners model sends, decode + FedAvg of every update, evaluation, the commit transaction. In the
 * cluster arm partner i is configured with coordinator i mod N and follows the non-leaders' `redirect`
 * to the leader with the agent's own code (client-node leader-redirect.ts).
 *
 * A figure that cannot be measured (no PostgreSQL binaries and no --database) is null with a `reason`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { io, type Socket } from 'socket.io-client';
import { encodeFloat32 } from '@fedmart/shared/codec';
import { FEDERATION_NAMESPACE, PROTOCOL_VERSION } from '@fedmart/shared/protocol';
import { FedmartError } from '@fedmart/shared/errors';
import { followLeaderRedirects } from '@fedmart/client-node/leader-redirect';
import { findPgBin, freePort, startPgCluster, type PgCluster } from '@fedmart/coordinator/db/pg-cluster';
import { probeRelay } from '@fedmart/coordinator/cluster/relay-probe';
import { ApiClient } from './api-client.ts';
import { progress } from './args.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/fedmart.js');
/** Give up a wait of the failover after this long (a hang, not a figure). */
const FAILOVER_GUARD_MS = 300_000;

export interface ScaleBenchOptions {
  coordinators: number;
  partners: number;
  params: number;
  /** Rounds of the multi-round figure (one schedule of this many rounds). */
  rounds: number;
  /** An existing PostgreSQL; absent: a throwaway cluster is started and removed. */
  database?: string;
  /** Also run the transport probe (cluster/relay-probe.ts: minutes at 200 partners). */
  transport?: boolean;
}

/** A `fedmart coordinator` child process. */
interface CoordinatorProcess {
  /** Its --coordinator-id (`sqlite` for the baseline). */
  id: string;
  url: string;
  pid: number;
  api: ApiClient;
  child: ChildProcess;
  /** The tail of its stderr (for a one-line reason when it dies mid-run). */
  stderr(): string;
}

/**
 * Start `fedmart coordinator` as a child process.
 * @param dataDir - its data dir (the cluster members share one)
 * @param port - its port (0: any; a cluster member's must be known before, for --advertise-url)
 * @returns the running coordinator, or the one-line reason it stopped before listening
 */
async function startCoordinatorProcess(id: string, dataDir: string, port: number, extra: string[]): Promise<CoordinatorProcess | { refused: string }> {
  // The baseline is SQLite whatever the caller's environment says; the cluster members get --database.
  const env = { ...process.env };
  delete env.FEDMART_DATABASE_URL;
  const child = spawn(process.execPath, [BIN, 'coordinator', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn', ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
  return { id, url, pid: child.pid!, api: new ApiClient(url, token), child, stderr: () => err };
}

/** A coordinator that died mid-run: say how (exit code or signal) and its last stderr line, not just "fetch failed". */
function explainExit(c: CoordinatorProcess, err: unknown): unknown {
  if (c.child.exitCode === null && c.child.signalCode === null) return err;
  const last = c.stderr().trim().split('\n').filter((l) => l.trim() !== '').pop() ?? 'nothing on stderr';
  return new FedmartError('INTERNAL', `bench scale: the coordinator ${c.id} (pid ${c.pid}) exited mid-run (${c.child.signalCode ? `signal ${c.child.signalCode}` : `code ${c.child.exitCode}`}): ${last.slice(0, 300)}`, { cause: err });
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

/** One lightweight partner. */
interface BenchPartner {
  /** The coordinator it is configured with. */
  home: string;
  /** Every welcome: the coordinator origin and when (ms since epoch). */
  welcomes: { url: string; at: number }[];
  close(): void;
}

/**
 * What a load balancer's health check does for a partner configured with one coordinator's address:
 * while that coordinator refuses connections (it was killed), a connection made THROUGH the configured
 * address (Socket.IO's reconnection, which leader-redirect.ts points at it, or a redirect naming no
 * leader) goes to the first of `homes` that does not refuse; a redirect naming a coordinator is followed
 * as given (it is a coordinator's own advertised URL, not the balancer's). It wraps the Socket.IO
 * Manager's `uri`, which Socket.IO opens and leader-redirect.ts sets.
 * @returns the origin the socket is connected (or connecting) to
 */
function routeAroundRefusingCoordinators(s: Socket, homes: string[]): () => string {
  const manager = s.io as unknown as { uri: string };
  const refusedAt = new Map<string, number>();
  const refusing = (origin: string) => Date.now() - (refusedAt.get(origin) ?? -Infinity) < 30_000;
  const originOf = (uri: string) => (uri.endsWith(FEDERATION_NAMESPACE) ? uri.slice(0, -FEDERATION_NAMESPACE.length) : uri);
  let uri = manager.uri;
  let throughHome = false;
  Object.defineProperty(manager, 'uri', {
    configurable: true, enumerable: true, get: () => uri,
    set: (v: string) => {
      const alive = throughHome && originOf(v) === homes[0] && refusing(homes[0]) ? homes.find((h) => !refusing(h)) : undefined;
      uri = alive === undefined ? v : alive + FEDERATION_NAMESPACE;
      throughHome = false;
    },
  });
  s.io.on('error', () => void refusedAt.set(originOf(uri), Date.now()));
  // Registered after leader-redirect.ts's handlers, so these run after theirs.
  s.io.on('reconnect_attempt', () => {
    throughHome = true;
    manager.uri = homes[0] + FEDERATION_NAMESPACE;
  });
  s.on('redirect' as 'connect', (r?: { url?: unknown }) => { if (r?.url === null) throughHome = true; });
  return () => originOf(uri);
}

/**
 * One lightweight partner: says hello on every (re)connection, follows the non-leaders' redirects to
 * the federation's leader, answers every train instruction with the shared update and every
 * evaluation with a fixed metric, over the real protocol.
 * @param homes - the coordinator it is configured with first, then the others (used only while it refuses connections)
 * @returns the partner, once a coordinator welcomed it
 */
async function connectPartner(homes: string[], token: string, update: Uint8Array, params: number): Promise<BenchPartner> {
  const home = homes[0]!;
  const s = io(home + FEDERATION_NAMESPACE, { auth: { token }, transports: ['websocket'], forceNew: true, reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 5000 });
  const welcomes: { url: string; at: number }[] = [];
  let refuse: (err: Error) => void = () => undefined;
  const routes = followLeaderRedirects(s, { homeUrl: home, giveUp: (err) => { if (welcomes.length > 0) return false; refuse(err); return true; } });
  const connectedTo = routeAroundRefusingCoordinators(s, homes);
  let seq = 0;
  const send = (envelope: Record<string, unknown>, attachment?: Uint8Array) => {
    const e = { v: PROTOCOL_VERSION, seq: ++seq, ...envelope };
    if (attachment) s.emit('msg', e, attachment, () => undefined);
    else s.emit('msg', e, () => undefined);
  };
  s.on('train', (t: { roundId: string }) => send({ type: 'train-result', roundId: t.roundId, payload: { numExamples: 100, metrics: { loss: 0.5 }, length: params } }, update));
  s.on('evaluate', (e: { roundId: string }) => send({ type: 'evaluate-result', roundId: e.roundId, payload: { numExamples: 100, metrics: { loss: 0.5 } } }));
  s.on('welcome', () => void welcomes.push({ url: connectedTo(), at: Date.now() }));
  // Every (re)connection says hello again, as the real agent does (a non-leader answers with a redirect).
  s.on('connect', () => send({ type: 'hello', payload: { numExamples: 100, consent: true } }));
  await new Promise<void>((resolve, reject) => {
    refuse = reject;
    s.once('welcome', () => resolve());
    s.once('connect_error', (e) => reject(new FedmartError('UNAVAILABLE', `bench scale: a partner could not connect to ${connectedTo()}: ${e.message}`)));
    s.once('protocol-error', (e: { message: string }) => reject(new FedmartError('INTERNAL', `bench scale: the coordinator refused a partner's hello: ${e.message}`)));
  }).catch((err: unknown) => { routes.stop(); s.close(); throw err; });
  return { home, welcomes, close: () => { routes.stop(); s.close(); } };
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

/**
 * Connect every partner, a few at a time (200 simultaneous handshakes only measure the accept queue).
 * @param homes - partner i is configured with `homes[i % homes.length]` (the others are its fallbacks, in turn)
 */
async function connectAll(homes: string[], tokens: string[], update: Uint8Array, params: number): Promise<BenchPartner[]> {
  const partners: BenchPartner[] = [];
  const homesOf = (i: number) => homes.map((_, k) => homes[(i + k) % homes.length]!);
  for (let i = 0; i < tokens.length; i += 20) partners.push(...(await Promise.all(tokens.slice(i, i + 20).map((t, j) => connectPartner(homesOf(i + j), t, update, params)))));
  return partners;
}

/** The single SQLite coordinator (the baseline). */
async function sqliteBaseline(o: ScaleBenchOptions, update: Uint8Array, scratch: string) {
  progress(`bench scale: baseline: 1 SQLite coordinator, ${o.partners} partners × ${o.params} params`);
  const c = await startCoordinatorProcess('sqlite', await mkdtemp(path.join(scratch, 'sqlite-')), 0, []);
  if ('refused' in c) throw new FedmartError('INTERNAL', `bench scale: the SQLite coordinator did not start: ${c.refused}`);
  let partners: BenchPartner[] = [];
  try {
    const { fed, tokens } = await setUpFederation(c.api, o.partners, o.params);
    partners = await connectAll([c.url], tokens, update, o.params);
    const t = await timeRounds(c.api, fed, o.rounds).catch((err: unknown) => { throw explainExit(c, err); });
    return { ...t, memory: processMemoryMb(c.pid) };
  } finally {
    for (const p of partners) p.close();
    await stopCoordinatorProcess(c);
  }
}

/**
 * Poll `probe` every `everyMs` until it returns a value.
 * @throws FedmartError UNAVAILABLE naming `what` after {@link FAILOVER_GUARD_MS}
 */
async function pollUntil<T>(what: string, everyMs: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const end = Date.now() + FAILOVER_GUARD_MS;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new FedmartError('UNAVAILABLE', `bench scale: ${what} did not happen within ${FAILOVER_GUARD_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The live lease holder of a federation, by the database's clock (undefined: none). */
async function leaseHolder(db: pg.Client, fed: string): Promise<string | undefined> {
  return (await db.query<{ holder: string }>('SELECT holder FROM fedmart_leases WHERE federation_id = $1 AND expires_at > clock_timestamp()', [fed])).rows[0]?.holder;
}

const seconds = (fromMs: number, toMs: number) => Math.round((toMs - fromMs) / 10) / 100;

/** What the failover figures mean (it goes into the JSON). */
const FAILOVER_DEFINITION = 'kill -9 of the leading coordinator process once its round left selecting (every partner gathered, the model sent, updates on the way; phaseAtKill). failoverSeconds (leaseAndRoundFailedSeconds): kill → another coordinator holds the lease (fedmart_leases, live by the database clock) AND the interrupted round reads failed, both polled from PostgreSQL every 50 ms. recoverySeconds (nextRoundCommittedSeconds): kill → the next round, started by REST (POST /rounds) at the new leader as soon as it held the lease, committed there (its endedAt); it needs every partner back (minClients = partners), so it includes partnersBackSeconds: kill → every partner welcomed again by the new leader, having reconnected through the coordinator it is configured with (a partner configured with the killed one goes to the next coordinator while the killed one refuses connections, as behind a load balancer) and followed the redirect there';

/**
 * kill -9 the leader mid-round and time the takeover and the recovery.
 * @returns the figures, the coordinator now leading, and its memory after the recovered round
 */
async function measureFailover(db: pg.Client, fed: string, coords: CoordinatorProcess[], leader: CoordinatorProcess, partners: BenchPartner[]) {
  const roundsBefore = (await leader.api.get<{ rounds: RoundView[] }>(`/api/v1/federations/${fed}/rounds`)).rounds.length;
  progress(`bench scale:   failover: a round at ${leader.id}, kill -9 once it left selecting`);
  await leader.api.post(`/api/v1/federations/${fed}/rounds`, { count: 1 });
  const interrupted = await pollUntil('the failover round leaving selecting', 5, async () => {
    const r = (await db.query<{ id: string; number: number; phase: string }>('SELECT id, number::int AS number, phase FROM rounds WHERE federation_id = $1 ORDER BY number DESC LIMIT 1', [fed])).rows[0];
    return r && r.number > roundsBefore && r.phase !== 'scheduled' && r.phase !== 'selecting' ? r : null;
  });
  if (interrupted.phase === 'committed' || interrupted.phase === 'failed') throw new FedmartError('INTERNAL', `bench scale: the failover round ended (${interrupted.phase}) before the kill; use more --params or --partners`);
  const exited = new Promise<void>((r) => leader.child.once('exit', () => r()));
  const killedAt = Date.now();
  leader.child.kill('SIGKILL');
  await exited;
  let leaseAt = 0, holder = '';
  const failedAt = await pollUntil('another coordinator holding the lease with the interrupted round failed', 50, async () => {
    const h = await leaseHolder(db, fed);
    if (h !== undefined && h !== leader.id && leaseAt === 0) { leaseAt = Date.now(); holder = h; }
    const phase = (await db.query<{ phase: string }>('SELECT phase FROM rounds WHERE id = $1', [interrupted.id])).rows[0]?.phase;
    return leaseAt > 0 && phase === 'failed' ? Date.now() : null;
  });
  const next = coords.find((c) => c.id === holder);
  if (!next) throw new FedmartError('INTERNAL', `bench scale: the lease went to "${holder}", not one of this bench's coordinators`);
  progress(`bench scale:   ${next.id} took over after ${seconds(killedAt, failedAt)} s; the next round by REST there`);
  // leads() turns true once the takeover's onAcquired resolved, a moment after the round reads failed: a 409 then is retried.
  await pollUntil(`a round start accepted by ${next.id}`, 100, () => next.api.post(`/api/v1/federations/${fed}/rounds`, { count: 1 }).then(() => true, (err: unknown) => {
    if (err instanceof FedmartError && err.code === 'CONFLICT') return null;
    throw err;
  }));
  const backAt = await pollUntil('every partner welcomed by the new leader', 50, async () => (partners.every((p) => p.welcomes.some((w) => w.at > killedAt && w.url === next.url)) ? Math.max(...partners.map((p) => p.welcomes.findLast((w) => w.at > killedAt && w.url === next.url)!.at)) : null));
  const ended = await waitRoundsEnded(next.api, fed, roundsBefore + 2, FAILOVER_GUARD_MS).catch((err: unknown) => { throw explainExit(next, err); });
  const [failedRound, nextRound] = [ended.find((r) => r.id === interrupted.id), ended.at(-1)!];
  if (nextRound.phase !== 'committed') throw new FedmartError('INTERNAL', `bench scale: the round after the failover failed at ${next.id}: ${nextRound.reason}`);
  const versions = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM model_versions WHERE round_id = $1', [interrupted.id])).rows[0]!.n;
  return {
    failoverSeconds: seconds(killedAt, failedAt),
    recoverySeconds: seconds(killedAt, Date.parse(nextRound.endedAt!)),
    survivor: next,
    detail: {
      killed: leader.id, survivor: next.id, phaseAtKill: interrupted.phase,
      leaseTakenSeconds: seconds(killedAt, leaseAt), leaseAndRoundFailedSeconds: seconds(killedAt, failedAt),
      partnersBackSeconds: seconds(killedAt, backAt), nextRoundCommittedSeconds: seconds(killedAt, Date.parse(nextRound.endedAt!)),
      nextRoundMs: ms(nextRound),
      interruptedRound: { number: interrupted.number, phase: failedRound?.phase ?? null, reason: failedRound?.reason ?? null, modelVersions: versions },
      nextRound: { number: nextRound.number, phase: nextRound.phase },
      nextRoundStartedBy: `REST POST /api/v1/federations/:id/rounds at the new leader ${next.id} (the bench's round was a one-off REST round, not a schedule; a schedule is resumed by the coordinator taking the lease, test/cluster-serve.test.ts)`,
      definition: FAILOVER_DEFINITION,
    },
  };
}

/** N `fedmart coordinator --cluster` processes on one PostgreSQL: rounds at the leader, then the leader killed. */
async function clusterArm(o: ScaleBenchOptions, update: Uint8Array, scratch: string, url: string) {
  progress(`bench scale: ${o.coordinators} coordinators (--cluster) on PostgreSQL, ${o.partners} partners spread over them`);
  const dataDir = await mkdtemp(path.join(scratch, 'cluster-'));
  const coords: CoordinatorProcess[] = [];
  let partners: BenchPartner[] = [];
  const db = new pg.Client(url);
  await db.connect();
  try {
    // One after another: the first writes the shared data-dir secrets, the others read them.
    for (let i = 0; i < o.coordinators; i++) {
      const port = await freePort();
      const c = await startCoordinatorProcess(`bench-${i}`, dataDir, port, ['--database', url, '--cluster', '--coordinator-id', `bench-${i}`, '--advertise-url', `http://127.0.0.1:${port}`]);
      if ('refused' in c) throw new FedmartError('INTERNAL', `bench scale: cluster coordinator bench-${i} did not start: ${c.refused}`);
      coords.push(c);
    }
    const { fed, tokens } = await setUpFederation(coords[0]!.api, o.partners, o.params);
    const holder = await pollUntil('a coordinator taking the new federation\'s lease', 50, () => leaseHolder(db, fed));
    const leader = coords.find((c) => c.id === holder);
    if (!leader) throw new FedmartError('INTERNAL', `bench scale: the lease went to "${holder}", not one of this bench's coordinators`);
    progress(`bench scale:   ${leader.id} leads; connecting the partners (partner i configured with coordinator i mod ${o.coordinators})`);
    partners = await connectAll(coords.map((c) => c.url), tokens, update, o.params);
    const redirectedPartners = partners.filter((p) => p.welcomes[0]!.url !== p.home).length;
    const t = await timeRounds(leader.api, fed, o.rounds).catch((err: unknown) => { throw explainExit(leader, err); });
    const memory = coords.map((c) => ({ coordinator: c.id, leader: c === leader, ...(processMemoryMb(c.pid) ?? { peakRssMb: null, rssMb: null }) }));
    const f = await measureFailover(db, fed, coords, leader, partners);
    return { ...t, leader: leader.id, redirectedPartners, memory, failoverSeconds: f.failoverSeconds, recoverySeconds: f.recoverySeconds, failover: f.detail, survivorMemoryAfterFailover: processMemoryMb(f.survivor.pid) };
  } finally {
    for (const p of partners) p.close();
    for (const c of coords) await stopCoordinatorProcess(c);
    await db.end();
  }
}

const ratioOf = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

/**
 * The whole bench: the SQLite baseline, then the cluster arm on PostgreSQL (and the transport probe with `transport`).
 * @returns the JSON `fedmart bench scale` prints
 */
export async function benchScale(o: ScaleBenchOptions): Promise<Record<string, unknown>> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'fedmart-bench-scale-'));
  const loadAtStart = load();
  // One shared update, as sent on the wire: small values, so no norm limit refuses it.
  const delta = new Float32Array(o.params);
  for (let i = 0; i < o.params; i++) delta[i] = ((i % 17) - 8) * 1e-5;
  const update = encodeFloat32(delta);
  let cluster: PgCluster | null = null;
  try {
    const base = await sqliteBaseline(o, update, scratch);
    const head = {
      coordinators: o.coordinators, partners: o.partners, params: o.params, rounds: o.rounds,
      baseline: { coordinators: 1, database: 'sqlite', singleRoundMs: base.singleRoundMs, multiRoundMs: base.multiRoundMs, perRoundMs: base.perRoundMs, memory: base.memory },
    };
    let url = o.database;
    if (url === undefined) {
      const bin = findPgBin();
      if (!bin) {
        const reason = 'no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin) and no --database; install them with apt-get install -y postgresql';
        return { ...head, database: null, singleRoundMs: null, multiRoundMs: null, memory: null, ratio: null, multiRatio: null, failoverSeconds: null, recoverySeconds: null, reason, machine: { cpus: cpus().length, loadAverage: { start: loadAtStart, end: load() } } };
      }
      progress('bench scale: starting a throwaway PostgreSQL cluster');
      cluster = await startPgCluster({ bin });
      url = cluster.url;
    }
    const arm = await clusterArm(o, update, scratch, url);
    let transport: Record<string, unknown> | null = null;
    if (o.transport) {
      progress(`bench scale: transport probe: ${o.coordinators} Socket.IO servers on the postgres adapter vs one, ${o.partners} partners × ${o.params} params`);
      transport = { ...(await probeRelay(url, { nodes: o.coordinators, partners: o.partners, params: o.params })), what: 'one round of traffic only (cluster/relay-probe.ts: model out to every partner, a same-size update back, model out again, a small answer back; no aggregation, no store), median of 3 after a warm-up, each layout beside the same traffic on ONE server without the adapter measured in the same run' };
    }
    return {
      ...head,
      database: cluster ? 'throwaway PostgreSQL cluster' : 'given by --database',
      leader: arm.leader, redirectedPartners: arm.redirectedPartners,
      singleRoundMs: arm.singleRoundMs, multiRoundMs: arm.multiRoundMs, perRoundMs: arm.perRoundMs, memory: arm.memory,
      ratio: ratioOf(arm.singleRoundMs, base.singleRoundMs), multiRatio: ratioOf(arm.multiRoundMs, base.multiRoundMs),
      ratioDefinition: `ratio: the ${o.coordinators} coordinators' singleRoundMs ÷ the SQLite coordinator's; multiRatio: the same for multiRoundMs (${o.rounds} rounds in one schedule); round times are each leader's own startedAt → endedAt`,
      failoverSeconds: arm.failoverSeconds, recoverySeconds: arm.recoverySeconds, failover: arm.failover,
      survivorMemoryAfterFailover: arm.survivorMemoryAfterFailover,
      ...(transport ? { transport } : {}),
      machine: { cpus: cpus().length, loadAverage: { start: loadAtStart, end: load() } },
    };
  } finally {
    await cluster?.stop();
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}
