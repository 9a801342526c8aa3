/**
 * Test fixture of the cluster tests: a throwaway PostgreSQL 15 (pg-cluster.ts) with a migrated
 * PgStore for the whole file, or a printed reason to skip when no PostgreSQL binaries exist.
 */
import { afterAll, beforeAll } from 'vitest';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { findPgBin, startPgCluster, type PgCluster } from '../db/pg-cluster.ts';
import { PgStore } from '../db/store-pg.ts';

export const HANG_GUARD = 180_000;

/**
 * Register beforeAll/afterAll for a cluster test file.
 * @param what - the file's subject, for the skip message
 * @returns `skip` (no binaries), the running cluster and store (after beforeAll), and `onCleanup` (run before the store closes, last registered first)
 */
export function usePgStore(what: string) {
  const pgBin = findPgBin();
  if (!pgBin) console.warn(`${what}: skipping: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql`);
  const cleanup: (() => Promise<void>)[] = [];
  const fx = { skip: pgBin === null, cluster: null as PgCluster | null, store: null as unknown as PgStore, onCleanup: (fn: () => Promise<void>) => void cleanup.push(fn) };
  beforeAll(async () => {
    if (!pgBin) return;
    fx.cluster = await startPgCluster({ bin: pgBin });
    fx.store = await PgStore.open(fx.cluster.url, generateEd25519KeyPair());
  }, HANG_GUARD);
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await fx.store?.close();
    await fx.cluster?.stop();
  }, HANG_GUARD);
  return fx;
}
