/**
 * Starts a coordinator: SQLite (via drizzle) under the data dir, the signing
 * key, express + Socket.IO on one HTTP server. Supports `await using`.
 */
import { wireParser } from '@fedmart/shared/wire-parser';
import { createServer, type Server as HttpServer } from 'node:http';
import { lookup } from 'node:dns/promises';
import path from 'node:path';
import { Server as IoServer } from 'socket.io';
import { FedmartError } from '@fedmart/shared/errors';
import { MAX_ATTACHMENT_BYTES } from '@fedmart/shared/protocol';
import { TokenAuthority } from './auth.ts';
import { openDatabase, type Db } from './db/client.ts';
import { Store } from './db/store.ts';
import { SqliteAsyncStore } from './db/store-sqlite-async.ts';
import type { AsyncStore } from './db/store-api.ts';
import { PgStore } from './db/store-pg.ts';
import type { ScheduleClock } from './scheduler.ts';
import type { Logger } from 'pino';
import { createMetrics } from './metrics.ts';
import { attachEventStream } from './events.ts';
import { logOrchestrator } from './logger.ts';
import { Orchestrator } from './orchestrator.ts';
import { recordReleasedSpend } from './privacy.ts';
import { createHttpApp } from './http.ts';
import { attachFederationNamespace } from './socket.ts';
import { attachVerticalRelay } from './vertical-relay.ts';
import { VerticalRounds } from './vertical-rounds.ts';
import { TokenRevocations } from './db/revocations.ts';
import { prepareDataDir, restrictFiles } from './data-dir.ts';
import { operatorTokenAtStart, writeOperatorTokenFile } from './operator-token.ts';
import { describeSharedSecrets, keyEncryptionKeyFromEnv, openSharedSecrets, type SharedSecrets } from './shared-secrets.ts';
import { migrateCluster } from './cluster/migrations.ts';
import { LOG_KEY_FILE, openLogKey } from './log-key.ts';
import { guardDefaultNamespace, disconnectToken } from './socket-auth.ts';
import pg from 'pg';
import { FEDERATION_NAMESPACE } from '@fedmart/shared/protocol';
import { startClusterNode, type ClusterNode } from './cluster/node.ts';
import type { Fence } from './cluster/lease.ts';

export const COORDINATOR_VERSION = '0.1.0';

export interface CoordinatorOptions {
  /** TCP port; 0 picks a free one (tests). Default 7300. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Directory for `fedmart.db` and the signing key; `null` = in-memory (tests). */
  dataDir: string | null;
  /** Log sink; default silent. */
  log?: (msg: string) => void;
  /** Mint a new operator token even if the stored one is still good, and revoke the old one. */
  rotateOperatorToken?: boolean;
  /**
   * How long a client may go without answering a ping before it counts as gone (Socket.IO's
   * pingTimeout; default 20 s), for clients on slow links or very loaded machines.
   */
  pingTimeoutMs?: number;
  /** The built partner portal served at `/` (default `partner-portal/dist`; null: no portal). */
  portalDir?: string | null;
  /** Clock of schedule ticks (tests pass a fake one; default: Node's timers). */
  scheduleClock?: ScheduleClock;
  /** Structured log (pino, logger.ts) of rounds, partners and schedules; absent: none. */
  logger?: Logger;
  /**
   * Serve from this PostgreSQL database (postgres://…, issue 15) instead of the SQLite file of the
   * data dir; it is migrated at start. The signing key, the log key and the operator token live in the
   * database too, shared by every coordinator on it (shared-secrets.ts; a data dir's files are
   * imported once where the database has none; the data dir gets a copy of the operator token).
   */
  databaseUrl?: string;
  /**
   * With {@link databaseUrl}: the key-encryption key the shared secrets are stored wrapped with
   * (32 bytes; default `FEDMART_KEY_ENCRYPTION_KEY`, null: none).
   */
  keyEncryptionKey?: Buffer | null;
  /**
   * One of several coordinators on {@link databaseUrl} (issue 15, `fedmart coordinator --cluster`):
   * leases per federation, the Socket.IO PostgreSQL adapter, and a `redirect` to the leader for a
   * partner's hello here for a federation another coordinator leads (cluster/node.ts). Rounds start
   * only at the leader: elsewhere runRound (REST, schedules) is a CONFLICT naming the leader's URL.
   */
  cluster?: { coordinatorId: string; advertiseUrl: string; lease?: { ttlMs?: number; renewMs?: number }; redirectRetryMs?: number };
}

export interface Coordinator {
  url: string;
  port: number;
  /** The synchronous SQLite store (tests, SQLite only: on PostgreSQL reading it throws CONFIG_ERROR; use {@link asyncStore}). */
  store: Store;
  /** The coordinator's store (SQLite or PostgreSQL) behind the async store API: what every caller runs on. */
  asyncStore: AsyncStore;
  /** The SQLite database (SQLite only, like {@link store}). */
  db: Db;
  authority: TokenAuthority;
  orchestrator: Orchestrator;
  io: IoServer;
  /** The operator token: reused from `<dataDir>/operator.token` while valid, else minted (and written there). */
  operatorToken: string;
  /** Revoked token ids (SQLite only, like {@link store}; both dialects: asyncStore.isTokenRevoked). */
  revocations: TokenRevocations;
  /** Rounds marked failed(interrupted) at start-up (cluster mode: none here; a lease takeover marks them). */
  interruptedRounds: string[];
  /** The cluster node (leases, relay, router) with {@link CoordinatorOptions.cluster}, else null. */
  cluster: ClusterNode | null;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Start a coordinator.
 * @throws FedmartError CONFIG_ERROR when the port is in use or the data dir is unusable
 */
export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const log = opts.log ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  // Resolve the interface first, so a typo in --host changes nothing on disk.
  await lookup(host).catch((err: NodeJS.ErrnoException) => {
    throw new FedmartError('CONFIG_ERROR', `cannot listen on --host "${host}": the name does not resolve (${err.code ?? err.message}); pass an address of this machine (127.0.0.1, or 0.0.0.0 for every interface) or a resolvable host name`, { cause: err });
  });
  if (opts.cluster && opts.databaseUrl === undefined) throw new FedmartError('CONFIG_ERROR', 'cluster mode needs a PostgreSQL databaseUrl (the coordinators share leases and Socket.IO rooms through it); without one run a single coordinator on SQLite');
  if (opts.dataDir !== null) await prepareDataDir(opts.dataDir);
  const opened = opts.databaseUrl !== undefined ? await openPostgres(opts.databaseUrl, opts.dataDir, opts.keyEncryptionKey === undefined ? keyEncryptionKeyFromEnv() : opts.keyEncryptionKey) : await openSqlite(opts.dataDir);
  const { asyncStore } = opened;
  const secretsLine = opened.secrets ? describeSharedSecrets(opened.secrets.report) : null;
  if (secretsLine !== null) log(secretsLine);
  try {
    // Rows that no longer reproduce the newest signed head are refused before anything is appended.
    await asyncStore.checkAuditAtStart();
  } catch (err) {
    await asyncStore.close();
    throw err;
  }
  // In a cluster another coordinator may be running those rounds: the one taking a federation's lease marks them (cluster/lease.ts).
  const interruptedRounds = opts.cluster ? [] : await asyncStore.failInterruptedRounds();
  for (const id of interruptedRounds) {
    await asyncStore.audit('coordinator', 'round.interrupted', id, { reason: 'coordinator restarted mid-round' });
    // Updates that reached the coordinator before it stopped were released: charge them (privacy.ts).
    await recordReleasedSpend(asyncStore, { federationId: (await asyncStore.getRound(id)).federationId, roundId: id });
  }
  const isRevoked = (jti: string) => asyncStore.isTokenRevoked(jti);
  const authority = opened.secrets ? await TokenAuthority.fromJwk(opened.secrets.signingKey, { isRevoked }) : await TokenAuthority.open(opts.dataDir, { isRevoked });
  if (opts.dataDir !== null) await restrictFiles(opts.dataDir, ['signing-key.jwk']);
  const orchestrator = new Orchestrator(asyncStore, { ...(opts.scheduleClock ? { clock: opts.scheduleClock } : {}) });
  const verticalRounds = new VerticalRounds(asyncStore, log);
  // The REST revoke route drops live sockets of the revoked token (called only once `io` below exists).
  const metrics = createMetrics({ orchestrator, store: asyncStore });
  if (opts.logger) logOrchestrator(opts.logger, orchestrator);
  const app = createHttpApp({ store: asyncStore, authority, orchestrator, verticalRounds, disconnectToken: (jti) => disconnectToken(io, jti), version: COORDINATOR_VERSION, log, metrics, ...(opts.portalDir !== undefined ? { portalDir: opts.portalDir } : {}) });
  const http: HttpServer = createServer(app);
  const io = new IoServer(http, { ...(opts.pingTimeoutMs !== undefined ? { pingTimeout: opts.pingTimeoutMs } : {}), maxHttpBufferSize: MAX_ATTACHMENT_BYTES + 1024 * 1024, serveClient: false, cors: { origin: false }, parser: wireParser });
  guardDefaultNamespace(io, authority);
  const cluster = opts.cluster ? await startCluster(io, orchestrator, opts.databaseUrl!, opts.cluster, log).catch(async (err) => {
    await asyncStore.close();
    throw err;
  }) : null;
  attachFederationNamespace(io, { store: asyncStore, authority, orchestrator, log, ...(cluster ? { cluster: cluster.node } : {}) });
  attachVerticalRelay(io, { store: asyncStore, authority, log, rounds: verticalRounds });
  attachEventStream(io, { store: asyncStore, authority, orchestrator });
  metrics.attachIo(io);

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      http.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new FedmartError('CONFIG_ERROR', `port ${opts.port ?? 7300} on ${host} is already in use; pass --port with a free port (or 0 for any) or stop the other process`, { cause: err }));
      else if (err.code === 'EACCES') reject(new FedmartError('CONFIG_ERROR', `not allowed to listen on port ${opts.port}; use a port above 1024`, { cause: err }));
      else if (err.code === 'EADDRNOTAVAIL') reject(new FedmartError('CONFIG_ERROR', `cannot listen on --host "${host}": it is not an address of this machine; pass one of its interface addresses (0.0.0.0 for every interface)`, { cause: err }));
      else reject(err);
    };
    const onListening = () => {
      http.off('error', onError);
      resolve();
    };
    http.once('error', onError);
    http.once('listening', onListening);
    http.listen(opts.port ?? 7300, host);
  }).catch(async (err) => {
    await cluster?.close();
    await asyncStore.close();
    throw err;
  });
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 7300);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const { token: operatorToken, origin, revokedJti } = await operatorTokenAtStart({ authority, store: asyncStore }, opened.secrets?.operatorToken ?? opts.dataDir, opts.rotateOperatorToken === true);
  // The token lives in PostgreSQL; the data dir keeps a copy for the CLI (fedmart … reads <data-dir>/operator.token).
  if (opened.secrets && opts.dataDir !== null) await writeOperatorTokenFile(opts.dataDir, operatorToken);
  if (origin !== 'reused') await asyncStore.audit('coordinator', origin === 'rotated' ? 'operator-token.rotated' : 'operator-token.issued', 'operator', revokedJti ? { revokedJti } : {});
  await asyncStore.audit('coordinator', 'coordinator.started', null, { url, interruptedRounds: interruptedRounds.length, database: asyncStore.dialect });
  // Schedules that were open when the coordinator stopped carry on (scheduler.ts). Cluster mode: each
  // federation's schedules are resumed by the coordinator that takes its lease (startCluster, onAcquired).
  if (!cluster) await orchestrator.scheduler.resumeOpen();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      // First: partners of the federations led here are redirected and the leases released (a clean hand-over).
      await cluster?.node.close();
      orchestrator.close();
      await verticalRounds.close();
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => {
        // io.close() also closes the HTTP server; idle keep-alive connections
        // (fetch/undici) would otherwise hold it open.
        io.close(() => resolve());
        http.closeAllConnections();
      });
      await orchestrator.flushWrites();
      await cluster?.pool.end();
      await asyncStore.close();
    })());

  const coordinator = { url, port, asyncStore, authority, orchestrator, io, operatorToken, interruptedRounds, cluster: cluster?.node ?? null, close, [Symbol.asyncDispose]: close };
  return Object.defineProperties(coordinator, {
    store: { get: () => opened.sqlite().store, enumerable: true },
    db: { get: () => opened.sqlite().db, enumerable: true },
    revocations: { get: () => opened.sqlite().revocations, enumerable: true },
  }) as Coordinator;
}

/**
 * Join the cluster on its own small pool (lease heartbeats do not queue behind round writes), and make
 * the orchestrator refuse rounds of federations this coordinator does not lead.
 */
async function startCluster(io: IoServer, orchestrator: Orchestrator, url: string, o: NonNullable<CoordinatorOptions['cluster']>, log: (msg: string) => void): Promise<{ node: ClusterNode; pool: pg.Pool; close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', (err) => log(`cluster pool: ${err.message}`));
  let node: ClusterNode | undefined;
  const wonAtStart: Fence[] = [];
  const resumeSchedules = (fence: Fence) => {
    if (node?.leases.fence(fence.federationId)?.epoch !== fence.epoch) return; // lost again meanwhile
    orchestrator.scheduler.resumeOpen(fence.federationId).catch((err) => log(`resuming the schedules of ${fence.federationId}: ${(err as Error).message}`));
  };
  try {
    node = await startClusterNode({
      pool, io, nsp: io.of(FEDERATION_NAMESPACE), coordinatorId: o.coordinatorId, advertiseUrl: o.advertiseUrl, log,
      // Partners are redirected to the leader (route.ts), so nothing is forwarded through the adapter.
      handle: () => ({ ok: false, error: { code: 'CONFLICT', message: 'partner messages are not relayed in this build: connect to the federation\'s leader (the redirect of hello)' } }),
      // Taking over: the interrupted round is failed (node.ts), then this federation's open schedules carry on
      // here. Deferred one macrotask: the lease counts as led (scheduler.leads) only once onAcquired resolved;
      // leases won by the first heartbeat, before startClusterNode returned, are resumed once it has.
      onAcquired: (fence) => {
        if (node === undefined) wonAtStart.push(fence);
        else setTimeout(() => resumeSchedules(fence), 0);
      },
      // Losing it: stop the round in progress at once (its commit would be fenced anyway) and this federation's schedule timers.
      onLost: (fence, reason) => {
        orchestrator.abort(fence.federationId, `interrupted: coordinator ${o.coordinatorId} lost the federation's lease (${reason}); the coordinator that takes it fails this round and runs the next`);
        orchestrator.scheduler.releaseFederation(fence.federationId).catch((err) => log(`stopping the schedules of ${fence.federationId}: ${(err as Error).message}`));
      },
      ...(o.lease ? { lease: o.lease } : {}), ...(o.redirectRetryMs !== undefined ? { redirectRetryMs: o.redirectRetryMs } : {}),
    });
  } catch (err) {
    await pool.end();
    if (err instanceof FedmartError) throw err;
    throw new FedmartError('UNAVAILABLE', `cannot join the cluster on ${redactDatabaseUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  const led = node;
  orchestrator.fenceOf = (federationId) => led.leases.fence(federationId);
  orchestrator.scheduler.leads = (federationId) => led.leases.leads(federationId);
  for (const fence of wonAtStart) resumeSchedules(fence);
  orchestrator.assertLeader = async (federationId) => {
    if (node.leases.leads(federationId)) return;
    const r = await node.router.redirectFor(federationId);
    throw new FedmartError('CONFLICT', `coordinator ${o.coordinatorId} does not lead federation ${federationId}: ${r.url !== null ? `start its rounds at the leader ${r.leader}, ${r.url}` : `${r.reason}, then start it at the leader`}`);
  };
  return { node, pool, close: async () => { await node.close(); await pool.end(); } };
}

/** The opened database: the async store, and the SQLite handles where there are some. */
interface OpenedStore {
  asyncStore: AsyncStore;
  /** PostgreSQL: the secrets shared by the coordinators of the database (SQLite: none, the data dir holds them). */
  secrets?: SharedSecrets;
  /** @throws FedmartError CONFIG_ERROR on PostgreSQL (the SQLite-only handles of {@link Coordinator}) */
  sqlite(): { store: Store; db: Db; revocations: TokenRevocations };
}

/** SQLite under the data dir (`fedmart.db`; in memory without one). */
async function openSqlite(dataDir: string | null): Promise<OpenedStore> {
  const dbFile = dataDir === null ? ':memory:' : path.join(dataDir, 'fedmart.db');
  let db: Db;
  try {
    db = openDatabase(dbFile);
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `cannot open database ${dbFile}: ${(err as Error).message}`, { cause: err });
  }
  if (dataDir !== null) await restrictFiles(dataDir, ['fedmart.db', 'fedmart.db-wal', 'fedmart.db-shm']);
  let store: Store;
  try {
    store = new Store(db, await logKeyOf(dataDir));
  } catch (err) {
    db.$client.close();
    throw err;
  }
  const handles = { store, db, revocations: new TokenRevocations(db) };
  return { asyncStore: new SqliteAsyncStore(store), sqlite: () => handles };
}

/** PostgreSQL at `url`, migrated (store and cluster tables), with the shared secrets (PgStore + PgAuditLog signing with the shared log key). */
async function openPostgres(url: string, dataDir: string | null, kek: Buffer | null, wrapUnwrapped = false): Promise<OpenedStore & { asyncStore: PgStore; secrets: SharedSecrets }> {
  let migrated: PgStore;
  try {
    migrated = await PgStore.open(url);
  } catch (err) {
    if (err instanceof FedmartError) throw err;
    throw new FedmartError('UNAVAILABLE', `cannot serve from PostgreSQL at ${redactDatabaseUrl(url)}: ${(err as Error).message}; check the URL, that the server runs and that the user may connect`, { cause: err });
  }
  let secrets: SharedSecrets;
  try {
    await migrateCluster(migrated.pool);
    secrets = await openSharedSecrets(migrated.pool, { dataDir, kek, wrapUnwrapped });
  } catch (err) {
    await migrated.close();
    if (err instanceof FedmartError) throw err;
    throw new FedmartError('UNAVAILABLE', `cannot read the shared secrets from PostgreSQL at ${redactDatabaseUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  const asyncStore = new PgStore(migrated.pool, migrated.db, secrets.logKey);
  return {
    asyncStore,
    secrets,
    sqlite: () => {
      throw new FedmartError('CONFIG_ERROR', `this coordinator serves from PostgreSQL (${redactDatabaseUrl(url)}): it has no SQLite store, db or revocations handle; use coordinator.asyncStore`);
    },
  };
}

/**
 * `fedmart coordinator --migrate-only --database …`: the store's and the cluster's migrations, then the
 * shared secrets: the missing ones created (or imported from `dataDir`), and with a KEK the rows stored
 * unwrapped wrapped; the operator token minted when there is none (audited).
 * @returns lines for the operator
 */
export async function migratePostgresOnly(url: string, dataDir: string | null, kek: Buffer | null): Promise<string[]> {
  const opened = await openPostgres(url, dataDir, kek, true);
  const store = opened.asyncStore;
  try {
    const lines = [`cluster tables at version ${await migrateCluster(store.pool)}`];
    const secretsLine = describeSharedSecrets(opened.secrets.report);
    lines.push(secretsLine ?? `shared secrets in PostgreSQL${kek ? ' (wrapped)' : ''}: present`);
    await store.checkAuditAtStart();
    const authority = await TokenAuthority.fromJwk(opened.secrets.signingKey, { isRevoked: (jti) => store.isTokenRevoked(jti) });
    const { origin } = await operatorTokenAtStart({ authority, store }, opened.secrets.operatorToken, false);
    if (origin === 'issued') {
      await store.audit('coordinator', 'operator-token.issued', 'operator', {});
      lines.push('operator token minted into PostgreSQL (every coordinator on the database uses it; each writes a copy to its data dir)');
    }
    return lines;
  } finally {
    await store.close();
  }
}

async function logKeyOf(dataDir: string | null) {
  const logKey = openLogKey(dataDir);
  if (dataDir !== null) await restrictFiles(dataDir, [LOG_KEY_FILE]);
  return logKey;
}

/** A database URL without its password, for messages. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
