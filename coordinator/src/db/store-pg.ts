/**
 * {@link AsyncStore} on PostgreSQL (issue 15) through drizzle's node-postgres driver, with the
 * SQLite Store's semantics:
 *
 * - `createFederation` and `commitRound` are one transaction each: the model version, the round's
 *   final phase, the federation's current-model pointer and the planned ledger rows commit together
 *   or not at all.
 * - Caps under concurrency: every ledger-writing transaction (`commitRound` with a plan,
 *   `chargeLedger`, `appendPrivacyCap`) first takes `SELECT … FROM federations WHERE id = $1 FOR
 *   UPDATE`, then reads the snapshot the plan decides on. Chosen over SERIALIZABLE: the race is a
 *   write skew between two INSERTs that both read the same newest `spent` row; a row lock on the
 *   federation serializes exactly the writers of that federation (others proceed), commitRound
 *   updates that row anyway, and callers need no retry loop (SERIALIZABLE would abort one of two
 *   concurrent commits with 40001 and every caller would have to re-run its round logic).
 * - A round commits at most once: unique index `model_versions_round_idx`; a second commit is a
 *   FedmartError CONFLICT and writes nothing.
 * - Append-only tables refuse UPDATE/DELETE/TRUNCATE by trigger (migrations-pg.ts).
 * - The audit log: `audit-log-pg.ts` (same leaves, heads and verification as SQLite's).
 */
import { and, asc, eq, getTableColumns, inArray, ne, notInArray, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { createHash, randomUUID } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { identityFingerprint, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FederationConfigSchema, type FederationConfig } from '@fedmart/shared/protocol';
import { PgAuditLog, type PgDb } from './audit-log-pg.ts';
import { migratePg } from './migrations-pg.ts';
import { assertFence } from '../cluster/lease.ts';
import { TERMINAL_ROUND_PHASES, initialRelease, weightsOf } from './store.ts';
import { ERASED_WEIGHTS_SHA256, endFederationRefusal, ledgerSnapshot, type AdmissionCheck, type AdmissionRefusal, type AsyncStore, type AuditEntryInput, type ConsentChange, type EnrollmentExtra, type RecordedConsent, type ReleasePlan, type CommitRoundArgs, type LedgerPlan, type NewCapRow, type NewLedgerRow, type NewSchedule, type ParticipantFields, type ScheduleFields } from './store-api.ts';
import type * as sqliteT from './schema.ts';
import * as t from './schema-pg.ts';

// Compile-time conformance: PostgreSQL rows have exactly the SQLite rows' shapes.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const rowShapesAgree: [
  Same<t.PartnerRow, sqliteT.PartnerRow>, Same<t.FederationRow, sqliteT.FederationRow>, Same<t.EnrollmentRow, sqliteT.EnrollmentRow>,
  Same<t.RoundRow, sqliteT.RoundRow>, Same<t.RoundParticipantRow, sqliteT.RoundParticipantRow>, Same<t.ModelVersionRow, sqliteT.ModelVersionRow>,
  Same<t.PrivacyLedgerRow, sqliteT.PrivacyLedgerRow>, Same<t.PrivacyCapRow, sqliteT.PrivacyCapRow>, Same<t.ScheduleRow, sqliteT.ScheduleRow>,
  Same<t.AuditRow, sqliteT.AuditRow>, Same<t.AuditTreeHeadRow, sqliteT.AuditTreeHeadRow>, Same<t.RevokedTokenRow, sqliteT.RevokedTokenRow>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];
void rowShapesAgree;

type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];
const now = () => Date.now();
const id = (prefix: string) => `${prefix}_${randomUUID().slice(0, 12)}`;
const isUniqueViolation = (err: unknown, index: string) => {
  const e = (err as { cause?: { code?: string; constraint?: string } }).cause ?? (err as { code?: string; constraint?: string });
  return e.code === '23505' && e.constraint === index;
};

export class PgStore implements AsyncStore {
  readonly dialect = 'postgres' as const;
  readonly auditLog: PgAuditLog;

  /**
   * @param pool - a node-postgres pool of the (migrated) database
   * @param logKey - the coordinator's log key; null: appending audit entries throws
   */
  constructor(readonly pool: pg.Pool, readonly db: PgDb, logKey: Ed25519KeyPair | null = null) {
    this.auditLog = new PgAuditLog(db, logKey);
  }

  /**
   * Connect to `url`, migrate, and return the store.
   * @param url - postgres://user@host:port/db
   * @param opts.max - pool size (default 10)
   * @param opts.onIdleError - an idle pooled connection died (server restart, failover); the pool replaces it on the next query, where errors surface (default: ignored)
   */
  static async open(url: string, logKey: Ed25519KeyPair | null = null, opts: { max?: number; onIdleError?: (err: Error) => void } = {}): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10 });
    pool.on('error', opts.onIdleError ?? (() => undefined));
    try {
      const client = await pool.connect();
      try {
        await migratePg(client);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgStore(pool, drizzle({ client: pool, schema: t }), logKey);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Lock the federation's row for the rest of the transaction (the serialization point of its ledger writers). */
  async #lockFederation(tx: Tx, federationId: string): Promise<t.FederationRow> {
    const [row] = await tx.select().from(t.federations).where(eq(t.federations.id, federationId)).for('update');
    if (!row) throw notFound(federationId);
    return row;
  }

  async #snapshot(tx: Tx, federationId: string) {
    const l = t.privacyLedger;
    const newest = tx.select({ id: sql<number>`max(${l.id})` }).from(l).where(and(eq(l.federationId, federationId), eq(l.kind, 'spent'))).groupBy(l.partnerId, l.level);
    const latest = await tx.select().from(l).where(inArray(l.id, newest));
    const caps = await tx.select().from(t.privacyCaps).where(eq(t.privacyCaps.federationId, federationId)).orderBy(asc(t.privacyCaps.id));
    return ledgerSnapshot(federationId, caps, latest);
  }

  async #snapshotAndAppend(tx: Tx, federationId: string, plan: LedgerPlan, modelVersionId: string | null): Promise<NewLedgerRow[]> {
    const rows = plan(await this.#snapshot(tx, federationId), modelVersionId);
    if (rows.length) await tx.insert(t.privacyLedger).values(rows);
    return rows;
  }

  admitRound(federationId: string, roundId: string, check: AdmissionCheck): Promise<AdmissionRefusal | null> {
    return this.db.transaction(async (tx) => {
      await this.#lockFederation(tx, federationId);
      // READ COMMITTED: read after the lock, so a round another coordinator admitted (and committed) before is seen.
      const inFlight = await tx.select().from(t.rounds).where(and(eq(t.rounds.federationId, federationId), ne(t.rounds.id, roundId), notInArray(t.rounds.phase, TERMINAL_ROUND_PHASES))).orderBy(asc(t.rounds.startedAt));
      const refusal = check(await this.#snapshot(tx, federationId), inFlight);
      if (refusal === null) return null;
      if (refusal.rows.length) await tx.insert(t.privacyLedger).values(refusal.rows);
      await tx.update(t.rounds).set({ phase: 'failed', reason: refusal.reason, updatedAt: now(), endedAt: now() }).where(eq(t.rounds.id, roundId));
      return refusal;
    });
  }

  // ------------------------------------------------------------ audit
  async audit(actor: string, action: string, subject: string | null = null, data: unknown = null): Promise<void> {
    await this.auditLog.append(actor, action, subject, data);
  }

  async verifyAudit() {
    const v = await this.auditLog.verify();
    return { ok: v.ok, entries: v.entries, brokenAt: v.firstBad?.seq ?? null, reason: v.firstBad?.reason ?? null };
  }

  async listAudit(limit = 200, afterSeq = 0) {
    return this.db.select().from(t.auditLog).where(sql`${t.auditLog.seq} > ${afterSeq}`).orderBy(asc(t.auditLog.seq)).limit(limit);
  }

  newestAuditHead() {
    return this.auditLog.newestHead();
  }

  listAuditHeads(after?: number, limit?: number) {
    return this.auditLog.listHeads(after, limit);
  }

  auditConsistency(from: number, to?: number) {
    return this.auditLog.consistency(from, to);
  }

  auditInclusion(seq: number, size?: number) {
    return this.auditLog.inclusion(seq, size);
  }

  checkAuditAtStart() {
    return this.auditLog.checkAtStart();
  }

  // ------------------------------------------------------------ partners
  async ensurePartner(name: string): Promise<t.PartnerRow> {
    const row = { id: id('p'), name, createdAt: now() };
    await this.db.insert(t.partners).values(row).onConflictDoNothing({ target: t.partners.name });
    const [found] = await this.db.select().from(t.partners).where(eq(t.partners.name, name));
    return found!;
  }

  listPartners() {
    return this.db.select().from(t.partners).orderBy(asc(t.partners.name));
  }

  async getPartner(partnerId: string) {
    const [row] = await this.db.select().from(t.partners).where(eq(t.partners.id, partnerId));
    return row;
  }

  // ------------------------------------------------------------ federations
  createFederation(name: string, config: FederationConfig, initialWeights: Float32Array, audit?: AuditEntryInput) {
    const fedId = id('f');
    const modelId = id('m');
    return this.#auditedTx(async (tx) => {
      const federation: t.FederationRow = { id: fedId, name, config: JSON.stringify(config), status: 'active', currentModelVersionId: modelId, createdAt: now(), endedAt: null };
      await tx.insert(t.federations).values(federation);
      const weights = Buffer.from(initialWeights.buffer, initialWeights.byteOffset, initialWeights.byteLength);
      const model: t.ModelVersionRow = {
        id: modelId, federationId: fedId, version: 0, roundId: null, parentId: null, strategy: config.strategy,
        participants: '[]', metrics: '{}', spec: JSON.stringify(config.model), paramCount: initialWeights.length,
        weights: Buffer.from(weights), sha256: createHash('sha256').update(weights).digest('hex'), createdAt: now(), encrypted: false,
        ...initialRelease(config),
      };
      await tx.insert(t.modelVersions).values(model);
      if (audit) await this.auditLog.appendIn(tx, audit.actor, audit.action, audit.subject ?? fedId, audit.data);
      return { federation, model };
    });
  }

  async getFederation(federationId: string): Promise<t.FederationRow> {
    const [row] = await this.db.select().from(t.federations).where(eq(t.federations.id, federationId));
    if (!row) throw notFound(federationId);
    return row;
  }

  federationConfig(row: t.FederationRow): FederationConfig {
    const parsed = FederationConfigSchema.safeParse(JSON.parse(row.config));
    if (!parsed.success) throw new FedmartError('INTERNAL', `stored config of federation ${row.id} is invalid`);
    return parsed.data;
  }

  listFederations() {
    return this.db.select().from(t.federations).orderBy(asc(t.federations.createdAt));
  }

  // ------------------------------------------------------------ enrollments
  async #enrollment(enrollmentId: string) {
    const [row] = await this.db.select().from(t.enrollments).where(eq(t.enrollments.id, enrollmentId));
    return row;
  }

  async createEnrollment(federationId: string, partnerId: string, tokenId: string, expiresAt: number, maxExamples: number | null = null, extra?: EnrollmentExtra): Promise<t.EnrollmentRow> {
    const e = t.enrollments;
    return this.#auditedTx(async (tx) => {
      const [existing] = await tx.select().from(e).where(and(eq(e.federationId, federationId), eq(e.partnerId, partnerId))).for('update');
      let row: t.EnrollmentRow;
      if (existing) {
        // As in Store: re-issuing replaces the token and releases the identity binding.
        const status = existing.status === 'revoked' ? 'invited' : existing.status;
        await tx.update(e).set({ tokenId, expiresAt, maxExamples, status, identityKey: null }).where(eq(e.id, existing.id));
        row = { ...existing, tokenId, expiresAt, maxExamples, status, identityKey: null };
      } else {
        row = { id: id('e'), federationId, partnerId, tokenId, status: 'invited', expiresAt, consentedAt: null, lastSeenAt: null, numExamples: null, createdAt: now(), maxExamples, identityKey: null, termsHash: null, purposes: null };
        await tx.insert(e).values(row);
      }
      if (extra?.purposes) {
        row = { ...row, purposes: JSON.stringify(extra.purposes) };
        await tx.update(e).set({ purposes: row.purposes }).where(eq(e.id, row.id));
      }
      if (extra?.audit) await this.auditLog.appendIn(tx, extra.audit.actor, extra.audit.action, extra.audit.subject ?? row.id, extra.audit.data);
      return row;
    });
  }

  async findEnrollmentByToken(tokenId: string) {
    const [row] = await this.db.select().from(t.enrollments).where(eq(t.enrollments.tokenId, tokenId));
    return row;
  }

  async listEnrollments(federationId: string) {
    const rows = await this.db.select({ e: t.enrollments, partnerName: t.partners.name }).from(t.enrollments).innerJoin(t.partners, eq(t.partners.id, t.enrollments.partnerId)).where(eq(t.enrollments.federationId, federationId)).orderBy(asc(t.partners.name));
    return rows.map((r) => ({ ...r.e, partnerName: r.partnerName }));
  }

  async markEnrollmentSeen(enrollmentId: string, numExamples: number): Promise<void> {
    const e = t.enrollments;
    await this.db.update(e).set({ status: sql`case when ${e.status} = 'revoked' then 'revoked' else 'active' end`, consentedAt: sql`coalesce(${e.consentedAt}, ${now()})`, lastSeenAt: now(), numExamples }).where(eq(e.id, enrollmentId));
  }

  async bindIdentity(enrollmentId: string, identityKey: string, termsHash: string | null): Promise<void> {
    const row = await this.#enrollment(enrollmentId);
    if (!row) throw new FedmartError('NOT_FOUND', `enrollment ${enrollmentId} not found`);
    // Trust on first use, race-free: the key is set only where none (or the same) is bound.
    const e = t.enrollments;
    const bound = await this.db.update(e).set({ identityKey, termsHash }).where(and(eq(e.id, enrollmentId), sql`(${e.identityKey} is null or ${e.identityKey} = ${identityKey})`)).returning({ id: e.id });
    if (bound.length === 0) {
      const current = (await this.#enrollment(enrollmentId))!;
      throw new FedmartError('CONFLICT', `partner ${current.partnerId} connected with identity key ${identityFingerprint(hexToBytes(identityKey))}, but its enrollment is bound to ${identityFingerprint(hexToBytes(current.identityKey!))}; if the partner really has a new key, the operator must re-enroll it (fedmart federation enroll) and the other partners must accept its new fingerprint`);
    }
  }

  async revokeEnrollment(enrollmentId: string, audit?: AuditEntryInput): Promise<void> {
    await this.#auditedTx(async (tx) => {
      await tx.update(t.enrollments).set({ status: 'revoked' }).where(eq(t.enrollments.id, enrollmentId));
      if (audit) await this.auditLog.appendIn(tx, audit.actor, audit.action, audit.subject ?? enrollmentId, audit.data);
    });
  }

  /** A transaction that may append audit entries (the cached Merkle frontier is forgotten when it rolls back). */
  async #auditedTx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction(fn);
    } catch (err) {
      this.auditLog.forgetFrontier();
      throw err;
    }
  }

  async recordConsent(enrollmentId: string, change: ConsentChange, plan: (previous: RecordedConsent) => AuditEntryInput[]): Promise<RecordedConsent> {
    const e = t.enrollments;
    return this.#auditedTx(async (tx) => {
      const [row] = await tx.select({ purposes: e.purposes, termsHash: e.termsHash }).from(e).where(eq(e.id, enrollmentId)).for('update');
      if (!row) throw new FedmartError('NOT_FOUND', `enrollment ${enrollmentId} not found; it may have been deleted with its federation`);
      const previous: RecordedConsent = { purposes: row.purposes ? (JSON.parse(row.purposes) as string[]) : null, termsHash: row.termsHash };
      await tx.update(e).set({ purposes: JSON.stringify(change.purposes), ...(change.termsHash !== undefined ? { termsHash: change.termsHash, consentedAt: now() } : {}) }).where(eq(e.id, enrollmentId));
      for (const a of plan(previous)) await this.auditLog.appendIn(tx, a.actor, a.action, a.subject, a.data);
      return previous;
    });
  }

  // ------------------------------------------------------------ rounds
  async nextRoundNumber(federationId: string) {
    const [r] = await this.db.select({ n: sql<number>`coalesce(max(${t.rounds.number}), 0)`.mapWith(Number) }).from(t.rounds).where(eq(t.rounds.federationId, federationId));
    return (r?.n ?? 0) + 1;
  }

  async createRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>) {
    const full: t.RoundRow = { ...row, reason: null, metrics: null, updatedAt: row.startedAt, endedAt: null };
    await this.db.insert(t.rounds).values(full);
    return full;
  }

  async setRoundPhase(roundId: string, phase: string, reason?: string): Promise<void> {
    const terminal = phase === 'committed' || phase === 'failed';
    await this.db.update(t.rounds).set({ phase, reason: reason ?? null, updatedAt: now(), ...(terminal ? { endedAt: now() } : {}) }).where(eq(t.rounds.id, roundId));
  }

  async createRefusedRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>, reason: string): Promise<t.RoundRow> {
    const at = now();
    const full: t.RoundRow = { ...row, phase: 'failed', reason, metrics: null, updatedAt: at, endedAt: at };
    // One INSERT of the final row: the scheduled-then-failed pair of the SQLite store, atomically.
    await this.db.insert(t.rounds).values(full);
    return full;
  }

  async setParticipant(roundId: string, partnerId: string, fields: ParticipantFields): Promise<void> {
    const values = {
      roundId, partnerId, status: fields.status, reason: fields.reason ?? null, updatedAt: now(),
      ...(fields.numExamples !== undefined ? { numExamples: fields.numExamples } : {}),
      ...(fields.trainMetrics ? { trainMetrics: JSON.stringify(fields.trainMetrics) } : {}),
      ...(fields.evalMetrics ? { evalMetrics: JSON.stringify(fields.evalMetrics) } : {}),
    };
    const { roundId: _r, partnerId: _p, ...set } = values;
    await this.db.insert(t.roundParticipants).values(values).onConflictDoUpdate({ target: [t.roundParticipants.roundId, t.roundParticipants.partnerId], set });
  }

  async getRound(roundId: string) {
    const [row] = await this.db.select().from(t.rounds).where(eq(t.rounds.id, roundId));
    if (!row) throw new FedmartError('NOT_FOUND', `round "${roundId}" not found`);
    return row;
  }

  listRounds(federationId: string) {
    return this.db.select().from(t.rounds).where(eq(t.rounds.federationId, federationId)).orderBy(asc(t.rounds.number));
  }

  listParticipants(roundId: string) {
    return this.db.select().from(t.roundParticipants).where(eq(t.roundParticipants.roundId, roundId));
  }

  /** As Store's (one coordinator). With several coordinators this becomes per-federation, under the lease (phase 2). */
  async failInterruptedRounds(): Promise<string[]> {
    const rows = await this.db.update(t.rounds).set({ phase: 'failed', reason: 'interrupted: the coordinator restarted during this round', updatedAt: now(), endedAt: now() }).where(notInArray(t.rounds.phase, TERMINAL_ROUND_PHASES)).returning({ id: t.rounds.id });
    return rows.map((r) => r.id);
  }

  // ------------------------------------------------------------ models
  async commitRound(args: CommitRoundArgs, ledger?: LedgerPlan): Promise<t.ModelVersionRow> {
    try {
      return await this.db.transaction(async (tx) => {
        const fed = await this.#lockFederation(tx, args.federationId);
        if (args.fence) await assertFence(tx, args.fence);
        const [v] = await tx.select({ n: sql<number>`coalesce(max(${t.modelVersions.version}), -1)`.mapWith(Number) }).from(t.modelVersions).where(eq(t.modelVersions.federationId, args.federationId));
        const bytes = args.encrypted ? Buffer.from(args.encrypted.blob.buffer, args.encrypted.blob.byteOffset, args.encrypted.blob.byteLength) : Buffer.from(args.weights.buffer, args.weights.byteOffset, args.weights.byteLength);
        const row: t.ModelVersionRow = {
          id: id('m'), federationId: args.federationId, version: (v?.n ?? -1) + 1, roundId: args.roundId, parentId: args.parentId,
          strategy: args.strategy, participants: JSON.stringify(args.participants), metrics: JSON.stringify(args.metrics), spec: JSON.stringify(args.spec),
          paramCount: args.encrypted ? args.encrypted.paramCount : args.weights.length, weights: Buffer.from(bytes), sha256: createHash('sha256').update(bytes).digest('hex'), createdAt: now(),
          encrypted: args.encrypted !== undefined,
          ...initialRelease(this.federationConfig(fed)),
        };
        if (row.releaseStatus === 'published') await tx.update(t.modelVersions).set({ releaseStatus: 'retired' }).where(and(eq(t.modelVersions.federationId, args.federationId), eq(t.modelVersions.releaseStatus, 'published')));
        await tx.insert(t.modelVersions).values(row);
        await tx.update(t.rounds).set({ phase: 'committed', metrics: JSON.stringify(args.metrics), updatedAt: now(), endedAt: now() }).where(eq(t.rounds.id, args.roundId));
        await tx.update(t.federations).set({ currentModelVersionId: row.id }).where(eq(t.federations.id, args.federationId));
        if (ledger) await this.#snapshotAndAppend(tx, args.federationId, ledger, row.id);
        return row;
      });
    } catch (err) {
      if (isUniqueViolation(err, 'model_versions_round_idx')) throw new FedmartError('CONFLICT', `round ${args.roundId} of federation ${args.federationId} is already committed; a round commits once`);
      throw err;
    }
  }

  async getModelVersion(modelId: string) {
    const [row] = await this.db.select().from(t.modelVersions).where(eq(t.modelVersions.id, modelId));
    if (!row) throw new FedmartError('NOT_FOUND', `model version "${modelId}" not found`);
    return row;
  }

  async getModelByNumber(federationId: string, version: number) {
    const [row] = await this.db.select().from(t.modelVersions).where(and(eq(t.modelVersions.federationId, federationId), eq(t.modelVersions.version, version)));
    if (!row) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model version ${version}`);
    return row;
  }

  listModelVersions(federationId: string) {
    const { weights: _w, ...cols } = getTableColumns(t.modelVersions);
    return this.db.select(cols).from(t.modelVersions).where(eq(t.modelVersions.federationId, federationId)).orderBy(asc(t.modelVersions.version));
  }

  async currentModel(federationId: string) {
    const row = await this.currentModelRow(federationId);
    if (row.encrypted) throw new FedmartError('CONFLICT', `federation ${federationId} aggregates under CKKS: model version ${row.version} is encrypted and only the partners can decrypt it; fetch the model from a partner`);
    return { row, weights: weightsOf(row) };
  }

  async currentModelRow(federationId: string) {
    const fed = await this.getFederation(federationId);
    if (!fed.currentModelVersionId) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model yet`);
    return this.getModelVersion(fed.currentModelVersionId);
  }

  // ------------------------------------------------------------ privacy ledger and caps
  chargeLedger(federationId: string, plan: LedgerPlan) {
    return this.db.transaction(async (tx) => {
      await this.#lockFederation(tx, federationId);
      return this.#snapshotAndAppend(tx, federationId, plan, null);
    });
  }

  async appendPrivacyCap(cap: NewCapRow, audit?: AuditEntryInput): Promise<void> {
    await this.#auditedTx(async (tx) => {
      await this.#lockFederation(tx, cap.federationId);
      await tx.insert(t.privacyCaps).values({ ...cap, createdAt: now() });
      if (audit) await this.auditLog.appendIn(tx, audit.actor, audit.action, audit.subject ?? cap.federationId, audit.data);
    });
  }

  privacyCapHistory(federationId: string) {
    return this.db.select().from(t.privacyCaps).where(eq(t.privacyCaps.federationId, federationId)).orderBy(asc(t.privacyCaps.id));
  }

  ledgerRows(federationId: string) {
    return this.db.select().from(t.privacyLedger).where(eq(t.privacyLedger.federationId, federationId)).orderBy(asc(t.privacyLedger.id));
  }

  // ------------------------------------------------------------ schedules
  async createSchedule(federationId: string, s: NewSchedule) {
    const row: t.ScheduleRow = { id: id('s'), federationId, kind: s.kind, requested: s.requested, remaining: s.requested, status: 'pending', reason: null, createdAt: s.at, updatedAt: s.at, spec: s.spec, completed: 0, failed: 0, skipped: 0, nextRunAt: s.nextRunAt, currentRoundId: null, progress: null };
    await this.db.insert(t.schedules).values(row);
    return row;
  }

  async updateSchedule(scheduleId: string, fields: ScheduleFields): Promise<void> {
    await this.db.update(t.schedules).set({ ...fields, updatedAt: now() }).where(eq(t.schedules.id, scheduleId));
  }

  /** One UPDATE … WHERE next_run_at = $due … RETURNING: row-level atomic under READ COMMITTED (a second updater re-checks the WHERE after the first commits, and no longer matches). */
  async claimScheduleTick(scheduleId: string, dueAt: number, nextRunAt: number | null): Promise<boolean> {
    const s = t.schedules;
    const won = await this.db.update(s).set({ nextRunAt, updatedAt: now() }).where(and(eq(s.id, scheduleId), eq(s.nextRunAt, dueAt), inArray(s.status, ['pending', 'running']))).returning({ id: s.id });
    return won.length === 1;
  }

  async getSchedule(scheduleId: string) {
    const [row] = await this.db.select().from(t.schedules).where(eq(t.schedules.id, scheduleId));
    if (!row) throw new FedmartError('NOT_FOUND', `schedule ${scheduleId} not found; list them with: fedmart schedule list --federation F`);
    return row;
  }

  listOpenSchedules() {
    return this.db.select().from(t.schedules).where(inArray(t.schedules.status, ['pending', 'running', 'paused'])).orderBy(asc(t.schedules.createdAt));
  }

  listSchedules(federationId: string) {
    return this.db.select().from(t.schedules).where(eq(t.schedules.federationId, federationId)).orderBy(asc(t.schedules.createdAt));
  }

  // --- scheduler/socket/vertical (s8-15serve) ---
  async endRoundChecked(roundId: string, metrics: Record<string, unknown>): Promise<void> {
    const at = now();
    await this.db.update(t.rounds).set({ phase: 'checked', metrics: JSON.stringify(metrics), updatedAt: at, endedAt: at }).where(eq(t.rounds.id, roundId));
  }
  // --- end scheduler/socket/vertical (s8-15serve) ---

  // --- REST routes (s8-15routes) ---
  /**
   * A transaction under the federation's row lock that may append audit entries (lock order:
   * federation row, then the audit log's table lock, as every writer takes them); on rollback the
   * log's cached frontier, which holds the appended leaves, is dropped.
   */
  async #auditedFederationTx<T>(federationId: string, fn: (tx: Tx, federation: t.FederationRow) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction(async (tx) => fn(tx, await this.#lockFederation(tx, federationId)));
    } catch (err) {
      this.auditLog.forgetFrontier();
      throw err;
    }
  }

  async endFederation(federationId: string, status: 'archived' | 'deleted', entry: AuditEntryInput): Promise<void> {
    await this.#auditedFederationTx(federationId, async (tx, f) => {
      const refusal = endFederationRefusal(f, status);
      if (refusal) throw new FedmartError('CONFLICT', refusal);
      await tx.update(t.enrollments).set({ status: 'revoked' }).where(eq(t.enrollments.federationId, federationId));
      await tx.update(t.federations).set({ status, endedAt: now() }).where(eq(t.federations.id, federationId));
      if (status === 'deleted') {
        await tx.update(t.modelVersions).set({ weights: Buffer.alloc(0), sha256: ERASED_WEIGHTS_SHA256, paramCount: 0, releaseStatus: 'retired' }).where(eq(t.modelVersions.federationId, federationId));
        const rounds = tx.select({ id: t.rounds.id }).from(t.rounds).where(eq(t.rounds.federationId, federationId));
        await tx.update(t.roundParticipants).set({ numExamples: null, trainMetrics: null, evalMetrics: null, reason: null }).where(inArray(t.roundParticipants.roundId, rounds));
        await tx.update(t.enrollments).set({ identityKey: null, termsHash: null, purposes: null, numExamples: null }).where(eq(t.enrollments.federationId, federationId));
      }
      await this.auditLog.appendIn(tx, entry.actor, entry.action, entry.subject, entry.data);
    });
  }

  async releaseModel<R>(federationId: string, plan: ReleasePlan<R>): Promise<R> {
    const m = t.modelVersions;
    const { weights: _w, ...meta } = getTableColumns(m);
    return this.#auditedFederationTx(federationId, async (tx, federation) => {
      const versions = await tx.select(meta).from(m).where(eq(m.federationId, federationId)).orderBy(asc(m.version));
      const change = plan({ federation, versions });
      if (change.versionId !== null) {
        if (change.publish) await tx.update(m).set({ releaseStatus: 'retired' }).where(and(eq(m.federationId, federationId), eq(m.releaseStatus, 'published'), ne(m.id, change.versionId)));
        const set = { ...change.set, ...(change.publish ? { releaseStatus: 'published' as const, publishedAt: now() } : {}) };
        if (Object.keys(set).length > 0 && (await tx.update(m).set(set).where(and(eq(m.id, change.versionId), eq(m.federationId, federationId))).returning({ id: m.id })).length !== 1) {
          throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model version ${change.versionId}`);
        }
      }
      for (const a of change.audit) await this.auditLog.appendIn(tx, a.actor, a.action, a.subject, a.data);
      return change.result;
    });
  }
  // --- end REST routes (s8-15routes) ---

  // ------------------------------------------------------------ revoked tokens
  async revokeToken(jti: string, by: string, reason: string | null) {
    const r = await this.db.insert(t.revokedTokens).values({ jti, revokedBy: by, reason, revokedAt: now() }).onConflictDoNothing().returning({ jti: t.revokedTokens.jti });
    return r.length > 0;
  }

  async isTokenRevoked(jti: string) {
    const r = await this.db.select({ jti: t.revokedTokens.jti }).from(t.revokedTokens).where(eq(t.revokedTokens.jti, jti)).limit(1);
    return r.length > 0;
  }
}

function notFound(federationId: string): FedmartError {
  return new FedmartError('NOT_FOUND', `federation "${federationId}" not found; list federations with GET /api/v1/federations`);
}

