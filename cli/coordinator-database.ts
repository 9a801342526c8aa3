/**
 * `fedmart coordinator --database postgres://… | FEDMART_DATABASE_URL` and `--migrate-only` (issue 15):
 * `--migrate-only` migrates the SQLite database of --data-dir, or a PostgreSQL database, and exits;
 * without it the coordinator serves from that PostgreSQL (startCoordinator's `databaseUrl`). Several
 * coordinators on one database (`--cluster`) are not wired into serving in this build: `--cluster`
 * without `--migrate-only` stops with a one-line error instead of running one unleased coordinator.
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
 * Check `--cluster` / `--coordinator-id`: cluster mode shares a PostgreSQL (the lease table and the
 * Socket.IO adapter live there), so it needs one.
 * @returns the coordinator id (default `<hostname>-<pid>`), or null without --cluster
 * @throws FedmartError CONFIG_ERROR for --cluster without a database, or a malformed id
 */
export function clusterFlags(o: { cluster: boolean; coordinatorId: string | undefined; url: string | null }): string | null {
  if (!o.cluster) {
    if (o.coordinatorId !== undefined) throw new FedmartError('CONFIG_ERROR', 'coordinator: --coordinator-id only applies with --cluster; add --cluster (with --database) or drop it');
    return null;
  }
  if (o.url === null) throw new FedmartError('CONFIG_ERROR', 'coordinator: --cluster needs --database postgres://… (or FEDMART_DATABASE_URL): the coordinators share their leases and Socket.IO rooms through that PostgreSQL; without it run one coordinator on SQLite');
  const id = o.coordinatorId ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id)) throw new FedmartError('CONFIG_ERROR', `coordinator: --coordinator-id must be 1-100 letters, digits, dots, dashes or underscores, got "${id.slice(0, 40)}"`);
  return id;
}

/**
 * Migrate and exit (`--migrate-only`), or let the coordinator start (on SQLite, or on the PostgreSQL of `url`).
 * @param opts.url - the PostgreSQL URL, or null for the SQLite database of the data dir
 * @param opts.migrateOnly - whether --migrate-only was given
 * @param opts.cluster - whether --cluster was given (serving refused in this build)
 * @returns the exit code when this handled the command, null when the coordinator should start
 * @throws FedmartError CONFIG_ERROR for --cluster without --migrate-only
 */
export async function coordinatorDatabaseStep(opts: { url: string | null; migrateOnly: boolean; dataDir: string; out: (line: string) => void; cluster?: boolean }): Promise<number | null> {
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
  if (!opts.migrateOnly) {
    if (opts.cluster === true) throw new FedmartError('CONFIG_ERROR', `coordinator: --cluster (several coordinators on ${redactUrl(opts.url)}, each federation led by its lease holder) is not wired into serving in this build; run one coordinator on this database without --cluster, or --migrate-only to prepare it`);
    return null;
  }
  const client = new pg.Client({ connectionString: opts.url });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new FedmartError('UNAVAILABLE', `coordinator: --migrate-only cannot connect to PostgreSQL at ${redactUrl(opts.url)}: ${(err as Error).message}; check the URL, that the server runs and that the user may connect`, { cause: err });
  }
  try {
    const version = await migratePg(client);
    opts.out(`migrated ${redactUrl(opts.url)} (PostgreSQL) to schema version ${version}`);
    return 0;
  } catch (err) {
    if (err instanceof FedmartError) throw err;
    throw new FedmartError('CONFIG_ERROR', `coordinator: --migrate-only: migrating ${redactUrl(opts.url)} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end();
  }
}
