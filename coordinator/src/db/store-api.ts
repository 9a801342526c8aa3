/**
 * The coordinator's persistence API, async (issue 15): the same operations as the synchronous SQLite
 * `Store` (store.ts), every one returning a Promise, so PostgreSQL (node-postgres, one round trip
 * per statement) can stand behind it. Two implementations: {@link SqliteAsyncStore}
 * (`store-sqlite-async.ts`, over today's `Store`) and `PgStore` (`store-pg.ts`). Both pass one
 * conformance suite (`store-conformance.test.ts`).
 *
 * Rows are the SQLite schema's row types; the PostgreSQL schema's rows have the same shape (checked
 * at compile time in `store-pg.ts`).
 *
 * Privacy ledger and caps (append-only tables) go through {@link AsyncStore.chargeLedger} and
 * {@link AsyncStore.commitRound}'s ledger plan: the plan is a pure function of a snapshot (the
 * federation's cap history and newest `spent` row per partner and level) read INSIDE the writing
 * transaction while the federation is locked, so a cap check and the append it permits are one
 * atomic step: two rounds of one federation can never both pass a check against the same snapshot.
 */
import type { FederationConfig, Metrics } from '@fedmart/shared/protocol';
import type { SignedTreeHead } from '@fedmart/shared/audit-log';
import type * as t from './schema.ts';
import type { Fence } from '../cluster/lease.ts';
import type { AuditConsistency, AuditInclusion } from './audit-log.ts';

export type NewLedgerRow = typeof t.privacyLedger.$inferInsert;
export type NewCapRow = Omit<typeof t.privacyCaps.$inferInsert, 'id' | 'createdAt'>;

/** What a ledger plan sees: read under the federation's lock, in the transaction that appends. */
export interface LedgerSnapshot {
  readonly federationId: string;
  /** Every cap row of the federation, oldest first (newest per partner/level is in force). */
  readonly caps: readonly t.PrivacyCapRow[];
  /** The newest `spent` row of (partner or null = the federation row, level). */
  latestSpent(partnerId: string | null, level: 'record' | 'partner'): t.PrivacyLedgerRow | undefined;
}

/**
 * Decide the ledger rows of one round from the snapshot. Throwing (e.g. a FedmartError naming a
 * cap) rolls the whole transaction back, model version included.
 * @param modelVersionId - the version being committed (null from {@link AsyncStore.chargeLedger})
 */
export type LedgerPlan = (snapshot: LedgerSnapshot, modelVersionId: string | null) => NewLedgerRow[];

/** A start-time refusal: the reason and the `refused` ledger rows. */
export interface AdmissionRefusal { reason: string; rows: NewLedgerRow[] }
/** Decide a round's admission from the snapshot and the other unfinished rounds (pure; see {@link AsyncStore.admitRound}). */
export type AdmissionCheck = (snapshot: LedgerSnapshot, inFlight: readonly t.RoundRow[]) => AdmissionRefusal | null;

export interface CommitRoundArgs {
  federationId: string;
  roundId: string;
  parentId: string;
  strategy: string;
  participants: string[];
  metrics: Record<string, unknown>;
  spec: unknown;
  weights: Float32Array;
  encrypted?: { blob: Uint8Array; paramCount: number };
  /**
   * Cluster mode (PostgreSQL): the committing coordinator's lease on the federation, checked inside
   * the commit transaction; a stale leader's commit fails with CONFLICT (cluster/lease.ts). SQLite
   * (one coordinator) has no leases and ignores it.
   */
  fence?: Fence;
}

export interface AuditVerifySummary { ok: boolean; entries: number; brokenAt: number | null; reason: string | null }
export type ParticipantFields = { status: string; reason?: string | null; numExamples?: number; trainMetrics?: Metrics; evalMetrics?: Metrics };
export type ScheduleFields = Partial<Pick<t.ScheduleRow, 'remaining' | 'status' | 'reason' | 'completed' | 'failed' | 'skipped' | 'nextRunAt' | 'currentRoundId' | 'progress'>>;
export type NewSchedule = { kind: t.ScheduleRow['kind']; requested: number; spec: string; nextRunAt: number | null; at: number };

export interface AsyncStore {
  readonly dialect: 'sqlite' | 'postgres';

  // audit (RFC 6962 Merkle tree, a signed head per append)
  audit(actor: string, action: string, subject?: string | null, data?: unknown): Promise<void>;
  verifyAudit(): Promise<AuditVerifySummary>;
  listAudit(limit?: number, afterSeq?: number): Promise<t.AuditRow[]>;
  newestAuditHead(): Promise<SignedTreeHead | null>;
  /** Stored heads with size > after, oldest first. */
  listAuditHeads(after?: number, limit?: number): Promise<SignedTreeHead[]>;
  /** RFC 6962 §2.1.2 consistency proof from the stored rows (to: default the newest head). */
  auditConsistency(from: number, to?: number): Promise<AuditConsistency>;
  /** RFC 6962 §2.1.1 inclusion proof of entry `seq` (size: default the newest head). */
  auditInclusion(seq: number, size?: number): Promise<AuditInclusion>;
  /**
   * At start-up: refuse (FedmartError CONFIG_ERROR) a log whose rows no longer reproduce its newest
   * signed head, before anything is appended.
   */
  checkAuditAtStart(): Promise<void>;

  // partners
  ensurePartner(name: string): Promise<t.PartnerRow>;
  listPartners(): Promise<t.PartnerRow[]>;
  getPartner(id: string): Promise<t.PartnerRow | undefined>;

  // federations
  /** The federation and its version-0 model, with `audit` (subject null: the new federation's id) in the same transaction. */
  createFederation(name: string, config: FederationConfig, initialWeights: Float32Array, audit?: AuditEntryInput): Promise<{ federation: t.FederationRow; model: t.ModelVersionRow }>;
  getFederation(id: string): Promise<t.FederationRow>;
  /** Pure: parse a stored config (schema-checked). */
  federationConfig(row: t.FederationRow): FederationConfig;
  listFederations(): Promise<t.FederationRow[]>;

  // enrollments
  /**
   * Issue (or re-issue: the old token stops working) a partner's enrollment; with `extra`, the purposes it consented
   * to and the issuing audit entry are written in the same transaction.
   */
  createEnrollment(federationId: string, partnerId: string, tokenId: string, expiresAt: number, maxExamples?: number | null, extra?: EnrollmentExtra): Promise<t.EnrollmentRow>;
  findEnrollmentByToken(tokenId: string): Promise<t.EnrollmentRow | undefined>;
  listEnrollments(federationId: string): Promise<(t.EnrollmentRow & { partnerName: string })[]>;
  markEnrollmentSeen(id: string, numExamples: number): Promise<void>;
  bindIdentity(id: string, identityKey: string, termsHash: string | null): Promise<void>;
  /** Revoke an enrollment, with `audit` in the same transaction. */
  revokeEnrollment(id: string, audit?: AuditEntryInput): Promise<void>;
  /**
   * A partner's consent in one transaction: the purposes and, with `termsHash` (the portal's consent, before the node
   * connects), the terms hash and the time on the enrollment, together with the audit entries `plan` returns from what
   * was recorded before. A plan that throws writes nothing; an unknown enrollment is NOT_FOUND.
   * @returns what the enrollment recorded before
   */
  recordConsent(id: string, change: ConsentChange, plan: (previous: RecordedConsent) => AuditEntryInput[]): Promise<RecordedConsent>;

  // rounds
  nextRoundNumber(federationId: string): Promise<number>;
  createRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>): Promise<t.RoundRow>;
  setRoundPhase(roundId: string, phase: string, reason?: string): Promise<void>;
  /** One transaction: insert the round and fail it with `reason` (a round refused before it could start). */
  createRefusedRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>, reason: string): Promise<t.RoundRow>;
  setParticipant(roundId: string, partnerId: string, fields: ParticipantFields): Promise<void>;
  getRound(id: string): Promise<t.RoundRow>;
  listRounds(federationId: string): Promise<t.RoundRow[]>;
  listParticipants(roundId: string): Promise<t.RoundParticipantRow[]>;
  failInterruptedRounds(): Promise<string[]>;

  // models
  /**
   * One transaction: the new model version, the round → committed, the federation's current model
   * pointer and the ledger rows of `ledger` (planned under the federation's lock). A round commits
   * at most once (unique index on model_versions.round_id).
   */
  commitRound(args: CommitRoundArgs, ledger?: LedgerPlan): Promise<t.ModelVersionRow>;
  getModelVersion(id: string): Promise<t.ModelVersionRow>;
  getModelByNumber(federationId: string, version: number): Promise<t.ModelVersionRow>;
  listModelVersions(federationId: string): Promise<Omit<t.ModelVersionRow, 'weights'>[]>;
  currentModel(federationId: string): Promise<{ row: t.ModelVersionRow; weights: Float32Array }>;
  currentModelRow(federationId: string): Promise<t.ModelVersionRow>;

  // privacy ledger and caps (append-only)
  /** Append rows planned under the federation's lock (a cap check and its spend, atomically). @returns the rows appended */
  chargeLedger(federationId: string, plan: LedgerPlan): Promise<NewLedgerRow[]>;
  /**
   * A round's start-time cap check, atomic (issue 15): under the federation's lock (PostgreSQL: its row
   * lock; SQLite: an IMMEDIATE transaction) `check` sees the ledger snapshot and the federation's OTHER
   * unfinished rounds (oldest first, their planned spend counts as spending); a refusal it returns is
   * written in the same transaction (its ledger rows, the round → failed with the reason). An admitted
   * round stays unfinished, so a concurrent check sees it in flight.
   * @returns the refusal written, or null when the round may run
   */
  admitRound(federationId: string, roundId: string, check: AdmissionCheck): Promise<AdmissionRefusal | null>;
  /** Append a cap row (under the federation's lock, so it orders with spends). */
  /** Append a cap (or its lifting), with `audit` in the same transaction: a cap is never in force unaudited. */
  appendPrivacyCap(cap: NewCapRow, audit?: AuditEntryInput): Promise<void>;
  privacyCapHistory(federationId: string): Promise<t.PrivacyCapRow[]>;
  ledgerRows(federationId: string): Promise<t.PrivacyLedgerRow[]>;

  // schedules
  createSchedule(federationId: string, s: NewSchedule): Promise<t.ScheduleRow>;
  updateSchedule(id: string, fields: ScheduleFields): Promise<void>;
  /**
   * Claim a due cron/every tick, once across all coordinators sharing the database: a compare-and-set
   * that moves `next_run_at` from `dueAt` (the value the caller read) to `nextRunAt`, only while it
   * still reads `dueAt` and the schedule is pending or running. Of any number of racing callers
   * exactly one gets true and runs the tick; the others see false and do nothing for it.
   */
  claimScheduleTick(id: string, dueAt: number, nextRunAt: number | null): Promise<boolean>;
  getSchedule(id: string): Promise<t.ScheduleRow>;
  listOpenSchedules(): Promise<t.ScheduleRow[]>;
  listSchedules(federationId: string): Promise<t.ScheduleRow[]>;

  // --- scheduler/socket/vertical (s8-15serve) ---
  /**
   * End a vertical overlap-check round (psi "size"): phase `checked` (terminal: no model version, no
   * ledger rows; {@link failInterruptedRounds} leaves it alone) with its metrics, in one statement.
   */
  endRoundChecked(roundId: string, metrics: Record<string, unknown>): Promise<void>;
  // --- end scheduler/socket/vertical (s8-15serve) ---

  // revoked tokens (append-only)
  revokeToken(jti: string, by: string, reason: string | null): Promise<boolean>;
  isTokenRevoked(jti: string): Promise<boolean>;

  // --- REST routes (s8-15routes) ---
  /**
   * End a federation, one transaction: every enrollment revoked, the status and `ended_at` set, and
   * `entry` appended to the audit log; `deleted` also erases what the retention rules delete (every
   * version's weights, per-partner round records, the enrollments' identity keys, terms hashes,
   * purposes and example counts). Checked under the federation's lock, so of two racing calls one
   * ends it and the other gets CONFLICT, with nothing written.
   * @throws FedmartError NOT_FOUND for an unknown federation; CONFLICT when archiving a federation that is not active, or deleting a deleted one
   */
  endFederation(federationId: string, status: 'archived' | 'deleted', entry: AuditEntryInput): Promise<void>;
  /**
   * One model-release step (publish, approve, retire, rollback; model-release.ts), one transaction:
   * `plan` decides from the federation and its versions read under the federation's lock, then its
   * release fields, its publication (which retires the version published before) and its audit
   * entries are written together. A plan that throws writes nothing; of two racing steps on one
   * federation the second plans on what the first wrote.
   * @returns the plan's result
   */
  releaseModel<R>(federationId: string, plan: ReleasePlan<R>): Promise<R>;
  // --- end REST routes (s8-15routes) ---

  close(): Promise<void>;
}

// --- REST routes (s8-15routes) ---
/** An audit entry to append inside a store transaction. */
export interface AuditEntryInput { actor: string; action: string; subject: string | null; data: unknown }

/** What an enrollment records of a partner's consent (null: nothing yet). */
export interface RecordedConsent { purposes: string[] | null; termsHash: string | null }

/** What an enrollment's issue writes with it: the purposes consented to, the audit entry. */
export interface EnrollmentExtra { purposes?: readonly string[] | undefined; audit?: AuditEntryInput | undefined }

/** A consent to record: the purposes, and the terms hash when the partner consented to the terms (the portal). */
export interface ConsentChange { purposes: readonly string[]; termsHash?: string | undefined }
/** A model version without its weights (what a release step decides on). */
export type ModelVersionMeta = Omit<t.ModelVersionRow, 'weights'>;
/** What a release plan sees: read under the federation's lock, in the transaction that writes. */
export interface ReleaseSnapshot {
  readonly federation: t.FederationRow;
  /** Every version of the federation, oldest first. */
  readonly versions: readonly ModelVersionMeta[];
}
/** What a release step writes. */
export interface ReleaseChange<R> {
  /** The version changed (null: no version changes, only the audit entries). */
  versionId: string | null;
  /** Release fields set on it. */
  set?: Partial<Pick<t.ModelVersionRow, 'releaseStatus' | 'publishRequestedBy' | 'approvedBy'>>;
  /** Publish it: the version published before is retired, this one becomes published with `published_at` now. */
  publish?: boolean;
  /** Appended in order, in the same transaction. */
  audit: AuditEntryInput[];
  result: R;
}
/** Decide a release step from the snapshot (throwing, e.g. a FedmartError CONFLICT, writes nothing). */
export type ReleasePlan<R> = (snapshot: ReleaseSnapshot) => ReleaseChange<R>;
/** The retention rules' erasure of a deleted federation's model weights: an empty blob and its SHA-256. */
export const ERASED_WEIGHTS_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Refuse ending a federation that already ended (archive: not active; delete: already deleted). */
export function endFederationRefusal(f: t.FederationRow, status: 'archived' | 'deleted'): string | null {
  if (status === 'archived' && f.status !== 'active') return `federation ${f.id} is already ${f.status}`;
  if (status === 'deleted' && f.status === 'deleted') return `federation ${f.id} is already deleted`;
  return null;
}
// --- end REST routes (s8-15routes) ---

/**
 * A snapshot from the rows a transaction read (newest `spent` rows and the cap history).
 * @param federationId - the federation whose rows these are
 * @param caps - cap rows, oldest first
 * @param latest - newest `spent` row per (partner, level)
 */
export function ledgerSnapshot(federationId: string, caps: readonly t.PrivacyCapRow[], latest: readonly t.PrivacyLedgerRow[]): LedgerSnapshot {
  const byKey = new Map(latest.map((r) => [`${r.partnerId ?? ''}|${r.level}`, r]));
  return { federationId, caps, latestSpent: (partnerId, level) => byKey.get(`${partnerId ?? ''}|${level}`) };
}
