/**
 * Fixture of the CLI-level PostgreSQL tests: a throwaway PostgreSQL cluster (coordinator/src/db/pg-cluster.ts) and a temp
 * dir for the whole file, or a printed reason to skip the PostgreSQL cases when no server binaries exist.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { findPgBin, startPgCluster, type PgCluster } from '../coordinator/src/db/pg-cluster.ts';

/**
 * Register beforeAll/afterAll that make the temp dir and start the cluster (when binaries exist), and remove both.
 * @param what - the file's subject, for the skip message
 * @param prefix - temp dir name prefix
 * @param ready - receives the cluster (null without binaries) and the temp dir once they exist
 * @param hangGuard - hook timeout (a hang guard, not a speed assertion)
 * @returns the PostgreSQL bin dir, or null when the PostgreSQL cases skip
 */
export function usePgClusterAndTmpDir(what: string, prefix: string, ready: (cluster: PgCluster | null, dir: string) => void, hangGuard: number): string | null {
  const pgBin = findPgBin();
  if (!pgBin) console.warn(`${what}: skipping the PostgreSQL cases: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql`);
  let cluster: PgCluster | null = null;
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
    if (pgBin) cluster = await startPgCluster({ bin: pgBin });
    ready(cluster, dir);
  }, hangGuard);
  afterAll(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, hangGuard);
  return pgBin;
}
