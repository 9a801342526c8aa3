/**
 * The coordinator's tables (drizzle, SQLite dialect). The same shapes port to
 * PostgreSQL (`pg-core`) when several coordinators share one database.
 * Row types come from `$inferSelect` / `$inferInsert`.
 */
import { sqliteTable, text, integer, real, blob, index, uniqueIndex } from 'drizzle-orm/sqlite-core';

export const partners = sqliteTable('partners', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: integer('created_at').notNull(),
}, (t) => [uniqueIndex('partners_name_idx').on(t.name)]);

export const federations = sqliteTable('federations', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** FederationConfig as JSON (validated on read). */
  config: text('config').notNull(),
  status: text('status', { enum: ['active', 'archived', 'deleted'] }).notNull().default('active'),
  /** The model version clients receive next; null before the first commit. */
  currentModelVersionId: text('current_model_version_id'),
  createdAt: integer('created_at').notNull(),
  /** When it was archived or deleted (issue 13). */
  endedAt: integer('ended_at'),
});

export const enrollments = sqliteTable('enrollments', {
  id: text('id').primaryKey(),
  federationId: text('federation_id').notNull().references(() => federations.id),
  partnerId: text('partner_id').notNull().references(() => partners.id),
  /** The `jti` of the enrollment token. */
  tokenId: text('token_id').notNull(),
  status: text('status', { enum: ['invited', 'active', 'revoked'] }).notNull().default('invited'),
  expiresAt: integer('expires_at').notNull(),
  consentedAt: integer('consented_at'),
  lastSeenAt: integer('last_seen_at'),
  numExamples: integer('num_examples'),
  createdAt: integer('created_at').notNull(),
  /** Most examples this partner may claim (agreed at enrollment); null = only the federation's limit applies. */
  maxExamples: integer('max_examples'),
  /** Hex Ed25519 identity key bound at the partner's first connect; cleared when the operator re-enrolls it. */
  identityKey: text('identity_key'),
  /** Hex SHA-256 of the federation terms the partner consented to (`federationTermsHash`). */
  termsHash: text('terms_hash'),
  /** JSON array of the purposes the partner consented to (enrollment, then its latest hello); null: not stated. */
  purposes: text('purposes'),
}, (t) => [uniqueIndex('enrollments_fed_partner_idx').on(t.federationId, t.partnerId), index('enrollments_token_idx').on(t.tokenId)]);

export const rounds = sqliteTable('rounds', {
  id: text('id').primaryKey(),
  federationId: text('federation_id').notNull().references(() => federations.id),
  number: integer('number').notNull(),
  phase: text('phase').notNull(),
  reason: text('reason'),
  strategy: text('strategy').notNull(),
  /** LocalTrainConfig sent to clients, JSON. */
  config: text('config').notNull(),
  /** Aggregated train/eval metrics, JSON. */
  metrics: text('metrics'),
  baseModelVersionId: text('base_model_version_id'),
  startedAt: integer('started_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  endedAt: integer('ended_at'),
}, (t) => [uniqueIndex('rounds_fed_number_idx').on(t.federationId, t.number)]);

export const roundParticipants = sqliteTable('round_participants', {
  roundId: text('round_id').notNull().references(() => rounds.id),
  partnerId: text('partner_id').notNull().references(() => partners.id),
  /** selected → trained | failed; evaluated after evaluation. */
  status: text('status').notNull(),
  reason: text('reason'),
  numExamples: integer('num_examples'),
  trainMetrics: text('train_metrics'),
  evalMetrics: text('eval_metrics'),
  updatedAt: integer('updated_at').notNull(),
}, (t) => [uniqueIndex('round_participants_pk').on(t.roundId, t.partnerId)]);

export const modelVersions = sqliteTable('model_versions', {
  id: text('id').primaryKey(),
  federationId: text('federation_id').notNull().references(() => federations.id),
  version: integer('version').notNull(),
  /** Null for the initial model (version 0). */
  roundId: text('round_id'),
  parentId: text('parent_id'),
  strategy: text('strategy').notNull(),
  /** JSON array of partner ids whose updates made this version. */
  participants: text('participants').notNull(),
  metrics: text('metrics').notNull(),
  /** ModelSpec JSON. */
  spec: text('spec').notNull(),
  paramCount: integer('param_count').notNull(),
  /** Float32 little-endian parameters. */
  weights: blob('weights', { mode: 'buffer' }).notNull(),
  /** SHA-256 of `weights`, hex. */
  sha256: text('sha256').notNull(),
  createdAt: integer('created_at').notNull(),
  /** CKKS federations: `weights` holds the packed ciphertexts of the round's encrypted aggregate [Σ n·Δ, Σ n], not plaintext parameters. */
  encrypted: integer('encrypted', { mode: 'boolean' }).notNull().default(false),
  /** candidate → approved → published → retired (issue 13); scenarios read published versions only. */
  releaseStatus: text('release_status', { enum: ['candidate', 'approved', 'published', 'retired'] }).notNull().default('candidate'),
  /** The operator who asked to publish this version (awaiting approval when the policy requires it). */
  publishRequestedBy: text('publish_requested_by'),
  /** The compliance officer who approved it. */
  approvedBy: text('approved_by'),
  /** When it was (last) published; set once published, so a rollback can re-publish it. */
  publishedAt: integer('published_at'),
}, (t) => [uniqueIndex('model_versions_fed_version_idx').on(t.federationId, t.version), uniqueIndex('model_versions_round_idx').on(t.roundId)]);

export const privacyLedger = sqliteTable('privacy_ledger', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  federationId: text('federation_id').notNull().references(() => federations.id),
  partnerId: text('partner_id'),
  roundId: text('round_id'),
  modelVersionId: text('model_version_id'),
  level: text('level', { enum: ['record', 'partner'] }).notNull(),
  /** 'spent' for committed rounds, 'refused' for rounds refused for budget. */
  kind: text('kind', { enum: ['spent', 'refused'] }).notNull(),
  epsilon: real('epsilon'),
  delta: real('delta'),
  sigma: real('sigma'),
  q: real('q'),
  steps: integer('steps'),
  /** Accountant state (per-order RDP) JSON, so totals compose exactly. */
  accountant: text('accountant'),
  reason: text('reason'),
  createdAt: integer('created_at').notNull(),
  /** Clipping norm C of the round (adaptive clipping moves it). */
  clip: real('clip'),
  /**
   * false: the round failed after updates left their partners, so the spend
   * is charged (it counts toward totals and caps) but no model version came of it.
   */
  committed: integer('committed', { mode: 'boolean' }).notNull().default(true),
  /** z_Δ, the noise multiplier on the update sum (σ without adaptive clipping). */
  updateSigma: real('update_sigma'),
  /** σ_b, the std of the noise on the centred clipped count (adaptive clipping only). */
  countStd: real('count_std'),
}, (t) => [index('privacy_ledger_fed_idx').on(t.federationId, t.id)]);

/**
 * Privacy caps set by a compliance officer. Append-only: the newest row for a
 * (federation, partner or null = whole federation, level) is in force, and
 * `epsilon` null lifts the cap. Older rows are the caps' history.
 */
export const privacyCaps = sqliteTable('privacy_caps', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  federationId: text('federation_id').notNull().references(() => federations.id),
  partnerId: text('partner_id').references(() => partners.id),
  level: text('level', { enum: ['record', 'partner'] }).notNull(),
  epsilon: real('epsilon'),
  setBy: text('set_by').notNull(),
  createdAt: integer('created_at').notNull(),
}, (t) => [index('privacy_caps_fed_idx').on(t.federationId)]);

export const schedules = sqliteTable('schedules', {
  id: text('id').primaryKey(),
  federationId: text('federation_id').notNull().references(() => federations.id),
  kind: text('kind', { enum: ['now', 'cron', 'every', 'until-converged'] }).notNull(),
  /** Rounds requested (0 = no limit: cron/every until cancelled) / remaining. */
  requested: integer('requested').notNull(),
  remaining: integer('remaining').notNull(),
  status: text('status', { enum: ['pending', 'running', 'paused', 'done', 'failed', 'cancelled'] }).notNull(),
  reason: text('reason'),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  /** The kind's settings (ScheduleSpec JSON: cron + time zone, interval, convergence rule); null on rows from before issue 13 (kind now). */
  spec: text('spec'),
  /** Rounds of this schedule that committed / failed (refused and interrupted rounds count as failed). */
  completed: integer('completed').notNull().default(0),
  failed: integer('failed').notNull().default(0),
  /** Ticks that arrived while a round of the federation was running (skipped, not queued). */
  skipped: integer('skipped').notNull().default(0),
  /** When the next tick is due (ms since epoch; cron/every), null otherwise. */
  nextRunAt: integer('next_run_at'),
  /** The round this schedule is running, so a restart can count it (it is failed as interrupted). */
  currentRoundId: text('current_round_id'),
  /** Until-converged: the metric's best value and rounds without improvement (JSON). */
  progress: text('progress'),
});

/** Token ids (`jti`) an operator revoked, or the coordinator retired when rotating its operator token. Append-only. */
export const revokedTokens = sqliteTable('revoked_tokens', {
  jti: text('jti').primaryKey(),
  revokedBy: text('revoked_by').notNull(),
  reason: text('reason'),
  revokedAt: integer('revoked_at').notNull(),
});

export const auditLog = sqliteTable('audit_log', {
  seq: integer('seq').primaryKey({ autoIncrement: true }),
  at: integer('at').notNull(),
  actor: text('actor').notNull(),
  action: text('action').notNull(),
  subject: text('subject'),
  data: text('data'),
});

/**
 * Signed tree heads of the audit log (issue 13): after every append, the RFC 6962 root of the first `size`
 * entries, signed with the coordinator's log key (`@fedmart/shared/audit-log`). Append-only.
 */
export const auditTreeHeads = sqliteTable('audit_tree_heads', {
  size: integer('size').primaryKey(),
  /** MTH of entries 1..size, hex. */
  root: text('root').notNull(),
  /** ms since the epoch. */
  timestamp: integer('timestamp').notNull(),
  /** The log key (Ed25519 public key), hex. */
  publicKey: text('public_key').notNull(),
  /** Ed25519 signature over `treeHeadMessage`, hex. */
  signature: text('signature').notNull(),
});

export type PartnerRow = typeof partners.$inferSelect;
export type FederationRow = typeof federations.$inferSelect;
export type EnrollmentRow = typeof enrollments.$inferSelect;
export type RoundRow = typeof rounds.$inferSelect;
export type RoundParticipantRow = typeof roundParticipants.$inferSelect;
export type ModelVersionRow = typeof modelVersions.$inferSelect;
export type PrivacyLedgerRow = typeof privacyLedger.$inferSelect;
export type PrivacyCapRow = typeof privacyCaps.$inferSelect;
export type ScheduleRow = typeof schedules.$inferSelect;
export type AuditRow = typeof auditLog.$inferSelect;
export type AuditTreeHeadRow = typeof auditTreeHeads.$inferSelect;
export type RevokedTokenRow = typeof revokedTokens.$inferSelect;
