/**
 * {@link AsyncStore} over today's synchronous SQLite {@link Store}: each call runs the Store method
 * and settles a Promise with its result (or its error). SQLite serializes writers (`BEGIN
 * IMMEDIATE`), so a ledger plan's snapshot and its append are atomic by construction.
 */
import { and, asc, eq, inArray, ne, notInArray, sql } from 'drizzle-orm';
import { FedmartError } from '@fedmart/shared/errors';
import { TokenRevocations } from './revocations.ts';
import { Store, TERMINAL_ROUND_PHASES } from './store.ts';
import { ERASED_WEIGHTS_SHA256, endFederationRefusal, ledgerSnapshot, type AdmissionCheck, type AdmissionRefusal, type AsyncStore, type AuditEntryInput, type ConsentChange, type EnrollmentExtra, type RecordedConsent, type ReleasePlan, type CommitRoundArgs, type LedgerPlan, type NewCapRow, type NewLedgerRow, type NewSchedule, type ParticipantFields, type ScheduleFields } from './store-api.ts';
import type { Db } from './client.ts';
import type { FederationConfig } from '@fedmart/shared/protocol';
import * as t from './schema.ts';

export class SqliteAsyncStore implements AsyncStore {
  readonly dialect = 'sqlite' as const;
  readonly #revocations: TokenRevocations;

  constructor(readonly store: Store) {
    this.#revocations = new TokenRevocations(store.db);
  }

  get #db(): Db {
    return this.store.db;
  }

  #snapshotAndAppend(federationId: string, plan: LedgerPlan, modelVersionId: string | null): NewLedgerRow[] {
    const l = t.privacyLedger;
    const newest = this.#db.select({ id: sql<number>`max(${l.id})` }).from(l).where(and(eq(l.federationId, federationId), eq(l.kind, 'spent'))).groupBy(l.partnerId, l.level);
    const latest = this.#db.select().from(l).where(inArray(l.id, newest)).all();
    const caps = this.#db.select().from(t.privacyCaps).where(eq(t.privacyCaps.federationId, federationId)).orderBy(asc(t.privacyCaps.id)).all();
    const rows = plan(ledgerSnapshot(federationId, caps, latest), modelVersionId);
    for (const row of rows) this.#db.insert(l).values(row).run();
    return rows;
  }

  async audit(actor: string, action: string, subject: string | null = null, data: unknown = null) { this.store.audit(actor, action, subject, data); }
  async verifyAudit() { return this.store.verifyAudit(); }
  async listAudit(limit?: number, afterSeq?: number) { return this.store.listAudit(limit, afterSeq); }
  async newestAuditHead() { return this.store.auditLog.newestHead(); }
  async listAuditHeads(after?: number, limit?: number) { return this.store.auditLog.listHeads(after, limit); }
  async auditConsistency(from: number, to?: number) { return this.store.auditLog.consistency(from, to); }
  async auditInclusion(seq: number, size?: number) { return this.store.auditLog.inclusion(seq, size); }
  async checkAuditAtStart() { this.store.auditLog.checkAtStart(); }

  async ensurePartner(name: string) { return this.store.ensurePartner(name); }
  async listPartners() { return this.store.listPartners(); }
  async getPartner(id: string) { return this.store.getPartner(id); }

  async createFederation(name: string, config: FederationConfig, initialWeights: Float32Array, audit?: AuditEntryInput) {
    return this.#auditedTx(() => {
      const created = this.store.createFederation(name, config, initialWeights);
      if (audit) this.store.audit(audit.actor, audit.action, audit.subject ?? created.federation.id, audit.data);
      return created;
    });
  }
  async getFederation(id: string) { return this.store.getFederation(id); }
  federationConfig(row: t.FederationRow) { return this.store.federationConfig(row); }
  async listFederations() { return this.store.listFederations(); }

  async createEnrollment(federationId: string, partnerId: string, tokenId: string, expiresAt: number, maxExamples: number | null = null, extra?: EnrollmentExtra) {
    return this.#auditedTx(() => {
      const row = this.store.createEnrollment(federationId, partnerId, tokenId, expiresAt, maxExamples);
      if (extra?.purposes) this.store.setEnrollmentPurposes(row.id, extra.purposes);
      if (extra?.audit) this.store.audit(extra.audit.actor, extra.audit.action, extra.audit.subject ?? row.id, extra.audit.data);
      return extra?.purposes ? { ...row, purposes: JSON.stringify(extra.purposes) } : row;
    });
  }
  async findEnrollmentByToken(tokenId: string) { return this.store.findEnrollmentByToken(tokenId); }
  async listEnrollments(federationId: string) { return this.store.listEnrollments(federationId); }
  async markEnrollmentSeen(id: string, numExamples: number) { this.store.markEnrollmentSeen(id, numExamples); }
  async bindIdentity(id: string, identityKey: string, termsHash: string | null) { this.store.bindIdentity(id, identityKey, termsHash); }
  async revokeEnrollment(id: string, audit?: AuditEntryInput) {
    this.#auditedTx(() => {
      this.store.revokeEnrollment(id);
      if (audit) this.store.audit(audit.actor, audit.action, audit.subject ?? id, audit.data);
    });
  }

  async nextRoundNumber(federationId: string) { return this.store.nextRoundNumber(federationId); }
  async createRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>) { return this.store.createRound(row); }
  async setRoundPhase(roundId: string, phase: string, reason?: string) { this.store.setRoundPhase(roundId, phase, reason); }
  async createRefusedRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>, reason: string) {
    return this.#db.$client.transaction(() => {
      this.store.createRound(row);
      this.store.setRoundPhase(row.id, 'failed', reason);
      return this.store.getRound(row.id);
    }).immediate();
  }
  async setParticipant(roundId: string, partnerId: string, fields: ParticipantFields) { this.store.setParticipant(roundId, partnerId, fields); }
  async getRound(id: string) { return this.store.getRound(id); }
  async listRounds(federationId: string) { return this.store.listRounds(federationId); }
  async listParticipants(roundId: string) { return this.store.listParticipants(roundId); }
  async failInterruptedRounds() { return this.store.failInterruptedRounds(); }

  async commitRound(args: CommitRoundArgs, ledger?: LedgerPlan) {
    return this.store.commitRound(args, ledger ? (id) => void this.#snapshotAndAppend(args.federationId, ledger, id) : undefined);
  }
  async getModelVersion(id: string) { return this.store.getModelVersion(id); }
  async getModelByNumber(federationId: string, version: number) { return this.store.getModelByNumber(federationId, version); }
  async listModelVersions(federationId: string) { return this.store.listModelVersions(federationId); }
  async currentModel(federationId: string) { return this.store.currentModel(federationId); }
  async currentModelRow(federationId: string) { return this.store.currentModelRow(federationId); }

  async admitRound(federationId: string, roundId: string, check: AdmissionCheck): Promise<AdmissionRefusal | null> {
    return this.#db.$client.transaction(() => {
      const r = t.rounds;
      const inFlight = this.#db.select().from(r).where(and(eq(r.federationId, federationId), ne(r.id, roundId), notInArray(r.phase, TERMINAL_ROUND_PHASES))).orderBy(asc(r.startedAt)).all();
      let refusal: AdmissionRefusal | null = null;
      this.#snapshotAndAppend(federationId, (snapshot) => (refusal = check(snapshot, inFlight))?.rows ?? [], null);
      if (refusal !== null) this.store.setRoundPhase(roundId, 'failed', (refusal as AdmissionRefusal).reason);
      return refusal;
    }).immediate();
  }
  async chargeLedger(federationId: string, plan: LedgerPlan) {
    return this.#db.$client.transaction(() => this.#snapshotAndAppend(federationId, plan, null)).immediate();
  }
  async appendPrivacyCap(cap: NewCapRow, audit?: AuditEntryInput) {
    this.#auditedTx(() => {
      this.#db.insert(t.privacyCaps).values({ ...cap, createdAt: Date.now() }).run();
      if (audit) this.store.audit(audit.actor, audit.action, audit.subject ?? cap.federationId, audit.data);
    });
  }
  async privacyCapHistory(federationId: string) { return this.#db.select().from(t.privacyCaps).where(eq(t.privacyCaps.federationId, federationId)).orderBy(asc(t.privacyCaps.id)).all(); }
  async ledgerRows(federationId: string) { return this.#db.select().from(t.privacyLedger).where(eq(t.privacyLedger.federationId, federationId)).orderBy(asc(t.privacyLedger.id)).all(); }

  async createSchedule(federationId: string, s: NewSchedule) { return this.store.createSchedule(federationId, s); }
  async updateSchedule(id: string, fields: ScheduleFields) { this.store.updateSchedule(id, fields); }
  async claimScheduleTick(id: string, dueAt: number, nextRunAt: number | null) { return this.store.claimScheduleTick(id, dueAt, nextRunAt); }
  async getSchedule(id: string) { return this.store.getSchedule(id); }
  async listOpenSchedules() { return this.store.listOpenSchedules(); }
  async listSchedules(federationId: string) { return this.store.listSchedules(federationId); }

  // --- scheduler/socket/vertical (s8-15serve) ---
  async endRoundChecked(roundId: string, metrics: Record<string, unknown>) {
    const at = Date.now();
    this.#db.update(t.rounds).set({ phase: 'checked', metrics: JSON.stringify(metrics), updatedAt: at, endedAt: at }).where(eq(t.rounds.id, roundId)).run();
  }
  // --- end scheduler/socket/vertical (s8-15serve) ---

  async revokeToken(jti: string, by: string, reason: string | null) { return this.#revocations.revoke(jti, by, reason); }
  async isTokenRevoked(jti: string) { return this.#revocations.isRevoked(jti); }

  // --- REST routes (s8-15routes) ---
  /** A write transaction that may append audit entries; on rollback the log's cached frontier (holding their leaves) is dropped. */
  #auditedTx<T>(fn: () => T): T {
    try {
      return this.#db.$client.transaction(fn).immediate();
    } catch (err) {
      this.store.auditLog.forgetFrontier();
      throw err;
    }
  }

  async recordConsent(id: string, change: ConsentChange, plan: (previous: RecordedConsent) => AuditEntryInput[]): Promise<RecordedConsent> {
    const db = this.#db;
    const e = t.enrollments;
    return this.#auditedTx(() => {
      const row = db.select({ purposes: e.purposes, termsHash: e.termsHash }).from(e).where(eq(e.id, id)).get();
      if (!row) throw new FedmartError('NOT_FOUND', `enrollment ${id} not found; it may have been deleted with its federation`);
      const previous: RecordedConsent = { purposes: row.purposes ? (JSON.parse(row.purposes) as string[]) : null, termsHash: row.termsHash };
      db.update(e).set({ purposes: JSON.stringify(change.purposes), ...(change.termsHash !== undefined ? { termsHash: change.termsHash, consentedAt: Date.now() } : {}) }).where(eq(e.id, id)).run();
      for (const a of plan(previous)) this.store.audit(a.actor, a.action, a.subject, a.data);
      return previous;
    });
  }

  async endFederation(federationId: string, status: 'archived' | 'deleted', entry: AuditEntryInput) {
    const db = this.#db;
    this.#auditedTx(() => {
      const refusal = endFederationRefusal(this.store.getFederation(federationId), status);
      if (refusal) throw new FedmartError('CONFLICT', refusal);
      db.update(t.enrollments).set({ status: 'revoked' }).where(eq(t.enrollments.federationId, federationId)).run();
      db.update(t.federations).set({ status, endedAt: Date.now() }).where(eq(t.federations.id, federationId)).run();
      if (status === 'deleted') {
        db.update(t.modelVersions).set({ weights: Buffer.alloc(0), sha256: ERASED_WEIGHTS_SHA256, paramCount: 0, releaseStatus: 'retired' }).where(eq(t.modelVersions.federationId, federationId)).run();
        const rounds = db.select({ id: t.rounds.id }).from(t.rounds).where(eq(t.rounds.federationId, federationId));
        db.update(t.roundParticipants).set({ numExamples: null, trainMetrics: null, evalMetrics: null, reason: null }).where(inArray(t.roundParticipants.roundId, rounds)).run();
        db.update(t.enrollments).set({ identityKey: null, termsHash: null, purposes: null, numExamples: null }).where(eq(t.enrollments.federationId, federationId)).run();
      }
      this.store.audit(entry.actor, entry.action, entry.subject, entry.data);
    });
  }

  async releaseModel<R>(federationId: string, plan: ReleasePlan<R>): Promise<R> {
    const db = this.#db;
    const m = t.modelVersions;
    return this.#auditedTx(() => {
      const change = plan({ federation: this.store.getFederation(federationId), versions: this.store.listModelVersions(federationId) });
      if (change.versionId !== null) {
        if (change.publish) db.update(m).set({ releaseStatus: 'retired' }).where(and(eq(m.federationId, federationId), eq(m.releaseStatus, 'published'), ne(m.id, change.versionId))).run();
        const set = { ...change.set, ...(change.publish ? { releaseStatus: 'published' as const, publishedAt: Date.now() } : {}) };
        if (Object.keys(set).length > 0 && db.update(m).set(set).where(and(eq(m.id, change.versionId), eq(m.federationId, federationId))).run().changes !== 1) {
          throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model version ${change.versionId}`);
        }
      }
      for (const a of change.audit) this.store.audit(a.actor, a.action, a.subject, a.data);
      return change.result;
    });
  }
  // --- end REST routes (s8-15routes) ---

  async close() { this.#db.$client.close(); }
}
