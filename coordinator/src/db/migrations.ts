/**
 * Schema migrations, in code. Each entry runs once, in order, inside a
 * transaction; SQLite's `user_version` pragma records how far a database is.
 * Keep them in step with `schema.ts` (a test compares the two).
 */
import type Database from 'better-sqlite3';

export const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX partners_name_idx ON partners(name);

  CREATE TABLE federations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    current_model_version_id TEXT,
    created_at INTEGER NOT NULL
  );

  CREATE TABLE enrollments (
    id TEXT PRIMARY KEY,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    partner_id TEXT NOT NULL REFERENCES partners(id),
    token_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'invited',
    expires_at INTEGER NOT NULL,
    consented_at INTEGER,
    last_seen_at INTEGER,
    num_examples INTEGER,
    created_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX enrollments_fed_partner_idx ON enrollments(federation_id, partner_id);
  CREATE INDEX enrollments_token_idx ON enrollments(token_id);

  CREATE TABLE rounds (
    id TEXT PRIMARY KEY,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    number INTEGER NOT NULL,
    phase TEXT NOT NULL,
    reason TEXT,
    strategy TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT,
    base_model_version_id TEXT,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    ended_at INTEGER
  );
  CREATE UNIQUE INDEX rounds_fed_number_idx ON rounds(federation_id, number);

  CREATE TABLE round_participants (
    round_id TEXT NOT NULL REFERENCES rounds(id),
    partner_id TEXT NOT NULL REFERENCES partners(id),
    status TEXT NOT NULL,
    reason TEXT,
    num_examples INTEGER,
    train_metrics TEXT,
    eval_metrics TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX round_participants_pk ON round_participants(round_id, partner_id);

  CREATE TABLE model_versions (
    id TEXT PRIMARY KEY,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    version INTEGER NOT NULL,
    round_id TEXT,
    parent_id TEXT,
    strategy TEXT NOT NULL,
    participants TEXT NOT NULL,
    metrics TEXT NOT NULL,
    spec TEXT NOT NULL,
    param_count INTEGER NOT NULL,
    weights BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX model_versions_fed_version_idx ON model_versions(federation_id, version);

  CREATE TABLE privacy_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    partner_id TEXT,
    round_id TEXT,
    model_version_id TEXT,
    level TEXT NOT NULL,
    kind TEXT NOT NULL,
    epsilon REAL,
    delta REAL,
    sigma REAL,
    q REAL,
    steps INTEGER,
    accountant TEXT,
    reason TEXT,
    created_at INTEGER NOT NULL
  );

  CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    kind TEXT NOT NULL,
    requested INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    data TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  -- The audit log is append-only: the database itself refuses edits.
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  -- So is the privacy ledger.
  CREATE TRIGGER privacy_ledger_no_update BEFORE UPDATE ON privacy_ledger BEGIN SELECT RAISE(ABORT, 'privacy_ledger is append-only'); END;
  CREATE TRIGGER privacy_ledger_no_delete BEFORE DELETE ON privacy_ledger BEGIN SELECT RAISE(ABORT, 'privacy_ledger is append-only'); END;
  `,
  // 2: CKKS federations store the encrypted aggregate as the model version (the coordinator never sees the joint model)
  `
  ALTER TABLE model_versions ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
  `,
  // 3: privacy caps set by compliance (append-only: the newest row per federation/partner/level is in force) and the clip each ledger row was charged at
  `
  ALTER TABLE privacy_ledger ADD COLUMN clip REAL;
  CREATE TABLE privacy_caps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    federation_id TEXT NOT NULL REFERENCES federations(id),
    partner_id TEXT REFERENCES partners(id),
    level TEXT NOT NULL,
    epsilon REAL,
    set_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX privacy_caps_fed_idx ON privacy_caps(federation_id);
  CREATE INDEX privacy_ledger_fed_idx ON privacy_ledger(federation_id, id);
  CREATE TRIGGER privacy_caps_no_update BEFORE UPDATE ON privacy_caps BEGIN SELECT RAISE(ABORT, 'privacy_caps is append-only'); END;
  CREATE TRIGGER privacy_caps_no_delete BEFORE DELETE ON privacy_caps BEGIN SELECT RAISE(ABORT, 'privacy_caps is append-only'); END;
  `,
  // 4: revoked token ids (any role; checked at every REST call and Socket.IO handshake) and the example count an
  //    enrollment allows a partner to claim (issue 8: a partner's weight is capped by what was agreed at enrollment)
  `
  CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    revoked_by TEXT NOT NULL,
    reason TEXT,
    revoked_at INTEGER NOT NULL
  );
  CREATE TRIGGER revoked_tokens_no_update BEFORE UPDATE ON revoked_tokens BEGIN SELECT RAISE(ABORT, 'revoked_tokens is append-only'); END;
  CREATE TRIGGER revoked_tokens_no_delete BEFORE DELETE ON revoked_tokens BEGIN SELECT RAISE(ABORT, 'revoked_tokens is append-only'); END;
  ALTER TABLE enrollments ADD COLUMN max_examples INTEGER;
  `,
  // 5: spend is charged when updates are released: rows of rounds that failed after uploads are 'spent' but not committed
  // (no model version); and the two mechanisms of adaptive clipping (update multiplier, count std) beside the charged σ
  `
  ALTER TABLE privacy_ledger ADD COLUMN committed INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE privacy_ledger ADD COLUMN update_sigma REAL;
  ALTER TABLE privacy_ledger ADD COLUMN count_std REAL;
  `,
  // 6: partner identity (issue 8): the Ed25519 key bound at first connect, and the terms hash consented to
  `
  ALTER TABLE enrollments ADD COLUMN identity_key TEXT;
  ALTER TABLE enrollments ADD COLUMN terms_hash TEXT;
  `,
  // (issue 13, item 1) schedules: kind settings, round counts by outcome, overrun skips, the next tick and the round in flight (resume after a restart)
  `
  ALTER TABLE schedules ADD COLUMN spec TEXT;
  ALTER TABLE schedules ADD COLUMN completed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE schedules ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE schedules ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE schedules ADD COLUMN next_run_at INTEGER;
  ALTER TABLE schedules ADD COLUMN current_round_id TEXT;
  ALTER TABLE schedules ADD COLUMN progress TEXT;
  `,
  // (issue 13, audit) the audit log becomes an RFC 6962 Merkle tree with signed tree heads: the linear chain's
  // columns go (leaves are recomputed from the entries), heads are stored append-only; a migrated log gets its
  // first signed head at the next start (AuditLog.checkAtStart)
  `
  ALTER TABLE audit_log DROP COLUMN prev_hash;
  ALTER TABLE audit_log DROP COLUMN hash;
  CREATE TABLE audit_tree_heads (
    size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
  );
  CREATE TRIGGER audit_tree_heads_no_update BEFORE UPDATE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END;
  CREATE TRIGGER audit_tree_heads_no_delete BEFORE DELETE ON audit_tree_heads BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END;
  `,
  // (issue 13, release + consent + lifecycle) model versions move candidate → approved → published → retired
  // (existing versions: the current one is published, older ones retired); who asked and who approved; the
  // purposes a partner consented to; when a federation was archived or deleted
  `
  ALTER TABLE model_versions ADD COLUMN release_status TEXT NOT NULL DEFAULT 'candidate';
  ALTER TABLE model_versions ADD COLUMN publish_requested_by TEXT;
  ALTER TABLE model_versions ADD COLUMN approved_by TEXT;
  ALTER TABLE model_versions ADD COLUMN published_at INTEGER;
  UPDATE model_versions SET release_status = 'retired' WHERE id NOT IN (SELECT current_model_version_id FROM federations WHERE current_model_version_id IS NOT NULL);
  UPDATE model_versions SET release_status = 'published', published_at = created_at WHERE id IN (SELECT current_model_version_id FROM federations);
  ALTER TABLE enrollments ADD COLUMN purposes TEXT;
  ALTER TABLE federations ADD COLUMN ended_at INTEGER;
  `,
  // (issue 15) a round commits at most once: a second model version for the same round is refused by the database
  // (null round ids, the initial versions, stay free)
  `
  CREATE UNIQUE INDEX model_versions_round_idx ON model_versions(round_id);
  `,
];

/**
 * Bring a database up to the newest schema.
 * @param sqlite - an open better-sqlite3 handle
 * @returns the schema version after migrating
 * @throws Error when the database is newer than this code (refuses to downgrade)
 */
export function migrate(sqlite: Database.Database): number {
  const current = sqlite.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this fedmart (knows ${MIGRATIONS.length}); upgrade fedmart or use another --data-dir`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    sqlite.transaction(() => {
      sqlite.exec(MIGRATIONS[v]!);
      sqlite.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}
