/**
 * The cluster's own PostgreSQL tables (issue 15), beside the store's schema (db/migrations-pg.ts):
 * what only several coordinators need. Versioned in `fedmart_cluster_schema`, each step in its own
 * transaction under an advisory lock, so coordinators starting together migrate once.
 *
 * 1. `fedmart_coordinators`: each coordinator's advertised public URL (cluster/route.ts): a
 *    non-leader sends a partner to the URL of the coordinator holding its federation's lease.
 * 2. `fedmart_secrets`: the secrets every coordinator of one database must share (shared-secrets.ts:
 *    the token signing key, the audit log's Ed25519 key, the operator token), optionally wrapped with
 *    a key-encryption key. The two keys' rows are never deleted, and their value changes only from
 *    unwrapped to wrapped (partners pinned the log key; tokens are signed with the signing key).
 */
import type pg from 'pg';

const CLUSTER_MIGRATIONS = [
  `CREATE TABLE fedmart_coordinators (
     coordinator_id TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     advertised_at TIMESTAMPTZ NOT NULL
   )`,
  `CREATE TABLE fedmart_secrets (
     name TEXT PRIMARY KEY CHECK (name IN ('signing-key', 'log-key', 'operator-token')),
     value BYTEA NOT NULL,
     wrapped BOOLEAN NOT NULL,
     created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
     updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
   );
   CREATE FUNCTION fedmart_secrets_keep_keys() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     IF OLD.name = 'operator-token' THEN RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END IF;
     IF TG_OP = 'UPDATE' AND NEW.name = OLD.name AND NOT OLD.wrapped AND NEW.wrapped THEN RETURN NEW; END IF;
     RAISE EXCEPTION 'fedmart_secrets: the % row is kept as it is (only wrapping it with a key-encryption key changes it): tokens and audit heads partners hold depend on it', OLD.name;
   END $$;
   CREATE TRIGGER fedmart_secrets_keep_keys BEFORE UPDATE OR DELETE ON fedmart_secrets
     FOR EACH ROW EXECUTE FUNCTION fedmart_secrets_keep_keys()`,
];

/** The cluster-only tables, for a schema comparison to leave out (they have no SQLite twin). */
export const CLUSTER_TABLES = ['fedmart_cluster_schema', 'fedmart_coordinators', 'fedmart_secrets'] as const;

/** Advisory lock key of cluster migrations ('fclu' in ASCII); the store's migrations hold another. */
const CLUSTER_MIGRATION_LOCK = 0x66636c75;

/**
 * Bring the cluster tables up to date (after the store's migratePg: nothing here references it yet).
 * @param pool - a pool on the coordinators' PostgreSQL
 * @returns the cluster schema version
 * @throws Error when the database's cluster schema is newer than this fedmart
 */
export async function migrateCluster(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    for (;;) {
      let version: number;
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [CLUSTER_MIGRATION_LOCK]);
        await client.query('CREATE TABLE IF NOT EXISTS fedmart_cluster_schema (only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row), version INTEGER NOT NULL)');
        version = (await client.query<{ version: number }>('SELECT version FROM fedmart_cluster_schema')).rows[0]?.version ?? 0;
        if (version > CLUSTER_MIGRATIONS.length) throw new Error(`the database's cluster schema version ${version} is newer than this fedmart (knows ${CLUSTER_MIGRATIONS.length}); upgrade every coordinator to the same fedmart`);
        if (version < CLUSTER_MIGRATIONS.length) {
          await client.query(CLUSTER_MIGRATIONS[version]!);
          await client.query('INSERT INTO fedmart_cluster_schema (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = excluded.version', [++version]);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
      if (version === CLUSTER_MIGRATIONS.length) return version;
    }
  } finally {
    client.release();
  }
}
