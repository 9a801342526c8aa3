/**
 * `fedmart coordinator --database postgres://… | FEDMART_DATABASE_URL` and `--migrate-only` (issue 15):
 * `--migrate-only` migrates the SQLite database of --data-dir, or a PostgreSQL database, and exits;
 * without it the coordinator serves from that PostgreSQL (startCoordinator's `databaseUrl`), alone or
 * (`--cluster --advertise-url URL`) as one of several coordinators on that database (startCoordinator's
 * `cluster`: leases, the Socket.IO adapter and leader redirects of coordinator/src/cluster/).
 */
import { hostname } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { FedmartError } from '@fedmart/shared/errors';
import { openDatabase } from '@fedmart/coordinator/db/client';
import { MIGRATIONS } from '@fedmart/coordinator/db/migrations';
import { migratePg } from '@fedmart/coordinator/db/migrations-pg';
import { prepareDataDir, restrictFiles } from '@fedmart/coordinator/data-dir';
import { redactDatabaseUrl } from '@fedmart/coordinator/server';
import { checkAdvertiseUrl } from '@fedmart/coordinator/cluster/route';
import { migrateCluster } from '@fedmart/coordinator/cluster/migrations';

/** The URL without its password, for messages. */
export const redactUrl = redactDatabaseUrl;

/**
 * The PostgreSQL URL the coordinator was given (--database, else $FEDMART_DATABASE_URL), or null for SQLite.
 * @throws FedmartError CONFIG_ERROR for a value that is not a postgres:// URL
 */
export function databaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  const from = flag !== undefined ? '--database' : 'FEDMART_DATABASE_URL';
  const url = flag ?? env.FEDMART_DATABASE_URL;
  if (url === undefined || url === '') return null;
  if (!/^postgres(ql)?:\/\//.test(url)) throw new FedmartError('CONFIG_ERROR', `coordinator: ${from} must be a postgres:// URL (e.g. postgres://fedmart@db:5432/fedmart), got "${url.slice(0, 40)}"; SQLite, the default, lives in --data-dir`);
  return url;
}

/**
 * Check `--cluster` / `--coordinator-id` / `--advertise-url`: cluster mode shares a PostgreSQL (the
 * lease table and the Socket.IO adapter live there), so it needs one, and the URL partners reach this
 * coordinator at (non-leaders redirect partners there).
 * @returns the coordinator id (default `<hostname>-<pid>`) and advertised origin, or null without --cluster
 * @throws FedmartError CONFIG_ERROR for --cluster without a database or --advertise-url, a malformed id or URL, or the flags without --cluster
 */
export function clusterFlags(o: { cluster: boolean; coordinatorId: string | undefined; advertiseUrl?: string | undefined; url: string | null }): { coordinatorId: string; advertiseUrl: string } | null {
  if (!o.cluster) {
    if (o.coordinatorId !== undefined) throw new FedmartError('CONFIG_ERROR', 'coordinator: --coordinator-id only applies with --cluster; add --cluster (with --database) or drop it');
    if (o.advertiseUrl !== undefined) throw new FedmartError('CONFIG_ERROR', 'coordinator: --advertise-url only applies with --cluster; add --cluster (with --database) or drop it');
    return null;
  }
  if (o.url === null) throw new FedmartError('CONFIG_ERROR', 'coordinator: --cluster needs --database postgres://… (or FEDMART_DATABASE_URL): the coordinators share their leases and Socket.IO rooms through that PostgreSQL; without it run one coordinator on SQLite');
  const id = o.coordinatorId ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id)) throw new FedmartError('CONFIG_ERROR', `coordinator: --coordinator-id must be 1-100 letters, digits, dots, dashes or underscores, got "${id.slice(0, 40)}"`);
  if (o.advertiseUrl === undefined) throw new FedmartError('CONFIG_ERROR', 'coordinator: --cluster needs --advertise-url http(s)://host:port, the address partners reach this coordinator at (the others send partners of the federations it leads there)');
  let advertiseUrl: string;
  try {
    advertiseUrl = checkAdvertiseUrl(o.advertiseUrl);
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `coordinator: --advertise-url: ${(err as Error).message.replace(/^cluster: /, '')}`, { cause: err });
  }
  return { coordinatorId: id, advertiseUrl };
}

/**
 * Migrate and exit (`--migrate-only`), or let the coordinator start (on SQLite, or on the PostgreSQL of `url`).
 * @param opts.url - the PostgreSQL URL, or null for the SQLite database of the data dir
 * @param opts.migrateOnly - whether --migrate-only was given
 * @returns the exit code when this handled the command, null when the coordinator should start
 */
export async function coordinatorDatabaseStep(opts: { url: string | null; migrateOnly: boolean; dataDir: string; out: (line: string) => void }): Promise<number | null> {
  if (opts.url === null) {
    if (!opts.migrateOnly) return null;
    await prepareDataDir(opts.dataDir);
    const file = path.join(opts.dataDir, 'fedmart.db');
    let db;
    try {
      db = openDatabase(file);
    } catch (err) {
      throw new FedmartError('CONFIG_ERROR', `coordinator: --migrate-only cannot migrate ${file}: ${(err as Error).message}`, { cause: err });
    }
    db.$client.close();
    await restrictFiles(opts.dataDir, ['fedmart.db', 'fedmart.db-wal', 'fedmart.db-shm']);
    opts.out(`migrated ${file} (SQLite) to schema version ${MIGRATIONS.length}`);
    return 0;
  }
  if (!opts.migrateOnly) return null;
  const client = new pg.Client({ connectionString: opts.url });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new FedmartError('UNAVAILABLE', `coordinator: --migrate-only cannot connect to PostgreSQL at ${redactUrl(opts.url)}: ${(err as Error).message}; check the URL, that the server runs and that the user may connect`, { cause: err });
  }
  try {
    const version = await migratePg(client);
    // The cluster's own tables too (cluster/migrations.ts), so a deploy pipeline prepares what `--cluster` coordinators need.
    const pool = new pg.Pool({ connectionString: opts.url, max: 1 });
    pool.on('error', () => undefined);
    const clusterVersion = await migrateCluster(pool).finally(() => pool.end());
    opts.out(`migrated ${redactUrl(opts.url)} (PostgreSQL) to schema version ${version}, cluster schema version ${clusterVersion}`);
    return 0;
  } catch (err) {
    if (err instanceof FedmartError) throw err;
    throw new FedmartError('CONFIG_ERROR', `coordinator: --migrate-only: migrating ${redactUrl(opts.url)} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end();
  }
}
