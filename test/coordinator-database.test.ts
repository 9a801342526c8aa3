/**
 * `fedmart coordinator --migrate-only` and `--database` (issue 15, phase 1) as a user runs them: a
 * real process against a real SQLite file and a real throwaway PostgreSQL cluster.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../coordinator/src/db/migrations.ts';
import { PG_MIGRATIONS, PG_ONLY_TABLES } from '../coordinator/src/db/migrations-pg.ts';
import { CLUSTER_TABLES } from '../coordinator/src/cluster/migrations.ts';
import type { PgCluster } from '../coordinator/src/db/pg-cluster.ts';
import { usePgClusterAndTmpDir } from './pg-tmp.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const HANG_GUARD = 300_000;

function fedmart(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, FEDMART_DATABASE_URL: '', ...env }, timeout: 240_000 }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
let cluster: PgCluster | null = null;
const pgBin = usePgClusterAndTmpDir('coordinator-database', 'fedmart-migrate-', (c, d) => { cluster = c; dir = d; }, HANG_GUARD);

describe('fedmart coordinator --migrate-only / --database', () => {
  it('--migrate-only migrates the SQLite database of --data-dir and exits', async () => {
    const dataDir = path.join(dir, 'sqlite');
    const r = await fedmart(['coordinator', '--migrate-only', '--data-dir', dataDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`schema version ${MIGRATIONS.length}`);
    const db = new Database(path.join(dataDir, 'fedmart.db'), { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    db.close();
  }, HANG_GUARD);

  it('a --database that is not a postgres:// URL is a one-line error', async () => {
    const r = await fedmart(['coordinator', '--database', 'mysql://x', '--migrate-only']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--database must be a postgres:\/\/ URL/);
  }, HANG_GUARD);

  it('--cluster without a PostgreSQL, or --coordinator-id without --cluster, is a one-line error', async () => {
    const noDb = await fedmart(['coordinator', '--cluster', '--data-dir', path.join(dir, 'cluster')]);
    expect(noDb.code).not.toBe(0);
    expect(noDb.stderr.trim().split('\n')).toHaveLength(1);
    expect(noDb.stderr).toMatch(/--cluster needs --database postgres:\/\//);
    const noCluster = await fedmart(['coordinator', '--coordinator-id', 'c1', '--data-dir', path.join(dir, 'cluster')]);
    expect(noCluster.code).not.toBe(0);
    expect(noCluster.stderr).toMatch(/--coordinator-id only applies with --cluster/);
    const badId = await fedmart(['coordinator', '--cluster', '--coordinator-id', 'a b', '--database', 'postgres://x@127.0.0.1:1/y', '--migrate-only']);
    expect(badId.stderr).toMatch(/--coordinator-id must be 1-100 letters/);
  }, HANG_GUARD);

  it.skipIf(pgBin === null)('--database postgres://… --migrate-only (or FEDMART_DATABASE_URL) migrates PostgreSQL; --cluster without --advertise-url stops with the reason', async () => {
    const admin = new pg.Client(cluster!.url);
    await admin.connect();
    await admin.query('CREATE DATABASE migrate_cli');
    await admin.end();
    const url = cluster!.url.replace(/\/postgres$/, '/migrate_cli');
    const r = await fedmart(['coordinator', '--database', url, '--migrate-only']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain(`(PostgreSQL) to schema version ${PG_MIGRATIONS.length}`);
    const again = await fedmart(['coordinator', '--migrate-only'], { FEDMART_DATABASE_URL: url });
    expect(again.code).toBe(0);
    const c = new pg.Client(url);
    await c.connect();
    const tables = (await c.query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'")).rows[0]!.n;
    const version = (await c.query<{ version: number }>('SELECT version FROM fedmart_schema')).rows[0]!.version;
    // --migrate-only also runs the cluster's own migrations (cluster/migrations.ts: fedmart_coordinators, ...)
    const clusterVersion = (await c.query<{ version: number }>('SELECT version FROM fedmart_cluster_schema')).rows[0]!.version;
    await c.end();
    expect(r.stdout).toContain(`cluster tables at version ${clusterVersion}`);
    expect(clusterVersion).toBeGreaterThanOrEqual(1);
    // 12 store tables + fedmart_schema, the cluster-coordination tables of migration 2, and the cluster's own (shared secrets included)
    expect([Number(tables), version]).toEqual([13 + PG_ONLY_TABLES.length + CLUSTER_TABLES.length, PG_MIGRATIONS.length]);

    // Serving from it is test/coordinator-postgres.test.ts, several coordinators test/cluster-serve.test.ts; --cluster needs the advertised URL.
    const several = await fedmart(['coordinator', '--database', url, '--cluster', '--port', '0']);
    expect(several.code).not.toBe(0);
    expect(several.stderr.trim().split('\n')).toHaveLength(1);
    expect(several.stderr).toMatch(/--cluster needs --advertise-url http\(s\):\/\/host:port/);
    const badUrl = await fedmart(['coordinator', '--database', url, '--cluster', '--advertise-url', 'ftp://x/y', '--port', '0']);
    expect(badUrl.stderr.trim().split('\n')).toHaveLength(1);
    expect(badUrl.stderr).toMatch(/--advertise-url: advertised URL "ftp:\/\/x\/y" must be an http\(s\) origin/);
    const noCluster = await fedmart(['coordinator', '--database', url, '--advertise-url', 'http://127.0.0.1:1', '--port', '0']);
    expect(noCluster.stderr).toMatch(/--advertise-url only applies with --cluster/);

    const down = await fedmart(['coordinator', '--database', 'postgres://nobody:secret@127.0.0.1:1/none', '--migrate-only']);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(/cannot connect to PostgreSQL at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(down.stderr).not.toContain('secret');
  }, HANG_GUARD);
});
