/**
 * Persistence operations the coordinator needs, over drizzle. Every write
 * that must be atomic (a model version with its round's final phase and the
 * federation's current-model pointer) runs in one transaction.
 */
import { and, asc, desc, eq, inArray, notInArray, sql } from 'drizzle-orm';
import { createHash, randomUUID } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { identityFingerprint } from '@fedmart/shared/crypto/ed25519';
import { FederationConfigSchema, type FederationConfig, type Metrics } from '@fedmart/shared/protocol';
import type { Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import type { Db } from './client.ts';
import { AuditLog } from './audit-log.ts';
import * as t from './schema.ts';

const now = () => Date.now();

/** Round phases a restart leaves alone: committed, failed, and a vertical overlap check's `checked`. */
export const TERMINAL_ROUND_PHASES = ['committed', 'failed', 'checked'];

export class Store {
  // ------------------------------------------------------------ audit
  /** The verifiable audit log (RFC 6962 Merkle tree with signed heads, `audit-log.ts`). */
  readonly auditLog: AuditLog;

  /**
   * @param db - the database
   * @param logKey - the coordinator's log key (`log-key.ts`); null: read-only use, appending audit entries throws
   */
  constructor(readonly db: Db, logKey: Ed25519KeyPair | null = null) {
    this.auditLog = new AuditLog(db, logKey);
  }

  /** Append an audit entry and sign the new tree head (one transaction). */
  audit(actor: string, action: string, subject: string | null = null, data: unknown = null): void {
    this.auditLog.append(actor, action, subject, data);
  }

  /** Verify the stored log against its signed heads. @returns the first bad sequence number, or null when intact. */
  verifyAudit(): { ok: boolean; entries: number; brokenAt: number | null; reason: string | null } {
    const v = this.auditLog.verify();
    return { ok: v.ok, entries: v.entries, brokenAt: v.firstBad?.seq ?? null, reason: v.firstBad?.reason ?? null };
  }

  listAudit(limit = 200, afterSeq = 0): t.AuditRow[] {
    return this.db.select().from(t.auditLog).where(sql`${t.auditLog.seq} > ${afterSeq}`).orderBy(asc(t.auditLog.seq)).limit(limit).all();
  }

  // ------------------------------------------------------------ partners
  /** Find a partner by name or create it. */
  ensurePartner(name: string): t.PartnerRow {
    const found = this.db.select().from(t.partners).where(eq(t.partners.name, name)).get();
    if (found) return found;
    const row = { id: `p_${randomUUID().slice(0, 12)}`, name, createdAt: now() };
    this.db.insert(t.partners).values(row).run();
    return row;
  }

  listPartners(): t.PartnerRow[] {
    return this.db.select().from(t.partners).orderBy(asc(t.partners.name)).all();
  }

  getPartner(id: string): t.PartnerRow | undefined {
    return this.db.select().from(t.partners).where(eq(t.partners.id, id)).get();
  }

  // ------------------------------------------------------------ federations
  /**
   * Create a federation and its initial model (version 0) in one transaction.
   * @param initialWeights - version-0 parameters (Float32)
   */
  createFederation(name: string, config: FederationConfig, initialWeights: Float32Array): { federation: t.FederationRow; model: t.ModelVersionRow } {
    const fedId = `f_${randomUUID().slice(0, 12)}`;
    const modelId = `m_${randomUUID().slice(0, 12)}`;
    return this.db.$client.transaction(() => {
      const federation: t.FederationRow = { id: fedId, name, config: JSON.stringify(config), status: 'active', currentModelVersionId: modelId, createdAt: now(), endedAt: null };
      this.db.insert(t.federations).values(federation).run();
      const weights = Buffer.from(initialWeights.buffer, initialWeights.byteOffset, initialWeights.byteLength);
      const model: t.ModelVersionRow = {
        id: modelId, federationId: fedId, version: 0, roundId: null, parentId: null, strategy: config.strategy,
        participants: '[]', metrics: '{}', spec: JSON.stringify(config.model), paramCount: initialWeights.length,
        weights: Buffer.from(weights), sha256: createHash('sha256').update(weights).digest('hex'), createdAt: now(), encrypted: false,
        ...initialRelease(config),
      };
      this.db.insert(t.modelVersions).values(model).run();
      return { federation, model };
    }).immediate();
  }

  getFederation(id: string): t.FederationRow {
    const row = this.db.select().from(t.federations).where(eq(t.federations.id, id)).get();
    if (!row) throw new FedmartError('NOT_FOUND', `federation "${id}" not found; list federations with GET /api/v1/federations`);
    return row;
  }

  /** Parse a federation's stored config (schema-checked: a corrupt row is a 500, not a silent default). */
  federationConfig(row: t.FederationRow): FederationConfig {
    const parsed = FederationConfigSchema.safeParse(JSON.parse(row.config));
    if (!parsed.success) throw new FedmartError('INTERNAL', `stored config of federation ${row.id} is invalid`);
    return parsed.data;
  }

  listFederations(): t.FederationRow[] {
    return this.db.select().from(t.federations).orderBy(asc(t.federations.createdAt)).all();
  }

  // ------------------------------------------------------------ enrollments
  /** @param maxExamples - most examples the partner may claim (null: only the federation's limit) */
  createEnrollment(federationId: string, partnerId: string, tokenId: string, expiresAt: number, maxExamples: number | null = null): t.EnrollmentRow {
    const existing = this.db.select().from(t.enrollments).where(and(eq(t.enrollments.federationId, federationId), eq(t.enrollments.partnerId, partnerId))).get();
    if (existing) {
      // Re-issuing replaces the old token (the old jti stops working) and releases the identity
      // binding: re-enrolling is how an operator lets a partner come back with a new identity key.
      const status = existing.status === 'revoked' ? 'invited' : existing.status;
      this.db.update(t.enrollments).set({ tokenId, expiresAt, maxExamples, status, identityKey: null }).where(eq(t.enrollments.id, existing.id)).run();
      return { ...existing, tokenId, expiresAt, maxExamples, status, identityKey: null };
    }
    const row: t.EnrollmentRow = { id: `e_${randomUUID().slice(0, 12)}`, federationId, partnerId, tokenId, status: 'invited', expiresAt, consentedAt: null, lastSeenAt: null, numExamples: null, createdAt: now(), maxExamples, identityKey: null, termsHash: null, purposes: null };
    this.db.insert(t.enrollments).values(row).run();
    return row;
  }

  findEnrollmentByToken(tokenId: string): t.EnrollmentRow | undefined {
    return this.db.select().from(t.enrollments).where(eq(t.enrollments.tokenId, tokenId)).get();
  }

  listEnrollments(federationId: string): (t.EnrollmentRow & { partnerName: string })[] {
    return this.db
      .select({ e: t.enrollments, partnerName: t.partners.name })
      .from(t.enrollments)
      .innerJoin(t.partners, eq(t.partners.id, t.enrollments.partnerId))
      .where(eq(t.enrollments.federationId, federationId))
      .orderBy(asc(t.partners.name))
      .all()
      .map((r) => ({ ...r.e, partnerName: r.partnerName }));
  }

  markEnrollmentSeen(id: string, numExamples: number): void {
    const row = this.db.select().from(t.enrollments).where(eq(t.enrollments.id, id)).get();
    if (!row) return;
    this.db.update(t.enrollments).set({ status: row.status === 'revoked' ? 'revoked' : 'active', consentedAt: row.consentedAt ?? now(), lastSeenAt: now(), numExamples }).where(eq(t.enrollments.id, id)).run();
  }

  /**
   * Bind a partner's identity key to its enrollment on first connect (trust on first use); later
   * connects must present the same key.
   * @param id - enrollment id
   * @param identityKey - hex Ed25519 public key
   * @param termsHash - hex hash of the terms the partner consents to
   * @throws FedmartError CONFLICT when a different key is already bound (the operator must re-enroll the partner)
   */
  bindIdentity(id: string, identityKey: string, termsHash: string | null): void {
    const row = this.db.select().from(t.enrollments).where(eq(t.enrollments.id, id)).get();
    if (!row) throw new FedmartError('NOT_FOUND', `enrollment ${id} not found`);
    if (row.identityKey !== null && row.identityKey !== identityKey) {
      throw new FedmartError('CONFLICT', `partner ${row.partnerId} connected with identity key ${identityFingerprint(hexToBytes(identityKey))}, but its enrollment is bound to ${identityFingerprint(hexToBytes(row.identityKey))}; if the partner really has a new key, the operator must re-enroll it (fedmart federation enroll) and the other partners must accept its new fingerprint`);
    }
    this.db.update(t.enrollments).set({ identityKey, termsHash }).where(eq(t.enrollments.id, id)).run();
  }

  /**
   * Record the purposes a partner consented to (enrollment or hello).
   * @returns the purposes recorded before (null: none stated)
   */
  setEnrollmentPurposes(id: string, purposes: readonly string[]): string[] | null {
    const row = this.db.select({ purposes: t.enrollments.purposes }).from(t.enrollments).where(eq(t.enrollments.id, id)).get();
    this.db.update(t.enrollments).set({ purposes: JSON.stringify(purposes) }).where(eq(t.enrollments.id, id)).run();
    return row?.purposes ? (JSON.parse(row.purposes) as string[]) : null;
  }

  revokeEnrollment(id: string): void {
    this.db.update(t.enrollments).set({ status: 'revoked' }).where(eq(t.enrollments.id, id)).run();
  }

  // ------------------------------------------------------------ rounds
  nextRoundNumber(federationId: string): number {
    const r = this.db.select({ n: sql<number>`coalesce(max(${t.rounds.number}), 0)` }).from(t.rounds).where(eq(t.rounds.federationId, federationId)).get();
    return (r?.n ?? 0) + 1;
  }

  createRound(row: Omit<t.RoundRow, 'updatedAt' | 'endedAt' | 'reason' | 'metrics'>): t.RoundRow {
    const full: t.RoundRow = { ...row, reason: null, metrics: null, updatedAt: row.startedAt, endedAt: null };
    this.db.insert(t.rounds).values(full).run();
    return full;
  }

  /** Persist a phase transition. */
  setRoundPhase(roundId: string, phase: string, reason?: string): void {
    const terminal = phase === 'committed' || phase === 'failed';
    this.db.update(t.rounds).set({ phase, reason: reason ?? null, updatedAt: now(), ...(terminal ? { endedAt: now() } : {}) }).where(eq(t.rounds.id, roundId)).run();
  }

  setParticipant(roundId: string, partnerId: string, fields: { status: string; reason?: string | null; numExamples?: number; trainMetrics?: Metrics; evalMetrics?: Metrics }): void {
    const values = {
      roundId, partnerId, status: fields.status, reason: fields.reason ?? null, updatedAt: now(),
      ...(fields.numExamples !== undefined ? { numExamples: fields.numExamples } : {}),
      ...(fields.trainMetrics ? { trainMetrics: JSON.stringify(fields.trainMetrics) } : {}),
      ...(fields.evalMetrics ? { evalMetrics: JSON.stringify(fields.evalMetrics) } : {}),
    };
    const { roundId: _r, partnerId: _p, ...set } = values;
    this.db.insert(t.roundParticipants).values(values).onConflictDoUpdate({ target: [t.roundParticipants.roundId, t.roundParticipants.partnerId], set }).run();
  }

  getRound(id: string): t.RoundRow {
    const row = this.db.select().from(t.rounds).where(eq(t.rounds.id, id)).get();
    if (!row) throw new FedmartError('NOT_FOUND', `round "${id}" not found`);
    return row;
  }

  listRounds(federationId: string): t.RoundRow[] {
    return this.db.select().from(t.rounds).where(eq(t.rounds.federationId, federationId)).orderBy(asc(t.rounds.number)).all();
  }

  listParticipants(roundId: string): t.RoundParticipantRow[] {
    return this.db.select().from(t.roundParticipants).where(eq(t.roundParticipants.roundId, roundId)).all();
  }

  /**
   * Mark every round that is not committed/failed as failed(interrupted).
   * Called at start-up: a restarted coordinator never resumes a half-done
   * round, and the federation's current model stays the last committed one.
   * @returns ids of the rounds marked
   */
  failInterruptedRounds(): string[] {
    const open = this.db.select({ id: t.rounds.id }).from(t.rounds).where(notInArray(t.rounds.phase, TERMINAL_ROUND_PHASES)).all();
    if (open.length === 0) return [];
    const ids = open.map((r) => r.id);
    this.db.update(t.rounds).set({ phase: 'failed', reason: 'interrupted: the coordinator restarted during this round', updatedAt: now(), endedAt: now() }).where(inArray(t.rounds.id, ids)).run();
    return ids;
  }

  // ------------------------------------------------------------ models
  /**
   * Commit a round: new model version, round → committed with metrics,
   * federation's current model pointer — one transaction, so nothing
   * half-written is ever served.
   * @param extra - runs inside the same transaction (e.g. privacy-ledger entries)
   */
  commitRound(args: { federationId: string; roundId: string; parentId: string; strategy: string; participants: string[]; metrics: Record<string, unknown>; spec: unknown; weights: Float32Array; encrypted?: { blob: Uint8Array; paramCount: number } }, extra?: (modelVersionId: string) => void): t.ModelVersionRow {
    return this.db.$client.transaction(() => {
      const v = this.db.select({ n: sql<number>`coalesce(max(${t.modelVersions.version}), -1)` }).from(t.modelVersions).where(eq(t.modelVersions.federationId, args.federationId)).get();
      const bytes = args.encrypted ? Buffer.from(args.encrypted.blob.buffer, args.encrypted.blob.byteOffset, args.encrypted.blob.byteLength) : Buffer.from(args.weights.buffer, args.weights.byteOffset, args.weights.byteLength);
      const row: t.ModelVersionRow = {
        id: `m_${randomUUID().slice(0, 12)}`, federationId: args.federationId, version: (v?.n ?? -1) + 1, roundId: args.roundId, parentId: args.parentId,
        strategy: args.strategy, participants: JSON.stringify(args.participants), metrics: JSON.stringify(args.metrics), spec: JSON.stringify(args.spec),
        paramCount: args.encrypted ? args.encrypted.paramCount : args.weights.length, weights: Buffer.from(bytes), sha256: createHash('sha256').update(bytes).digest('hex'), createdAt: now(),
        encrypted: args.encrypted !== undefined,
        ...initialRelease(this.federationConfig(this.getFederation(args.federationId))),
      };
      // Auto-published versions retire the one published before them.
      if (row.releaseStatus === 'published') this.db.update(t.modelVersions).set({ releaseStatus: 'retired' }).where(and(eq(t.modelVersions.federationId, args.federationId), eq(t.modelVersions.releaseStatus, 'published'))).run();
      this.db.insert(t.modelVersions).values(row).run();
      this.db.update(t.rounds).set({ phase: 'committed', metrics: JSON.stringify(args.metrics), updatedAt: now(), endedAt: now() }).where(eq(t.rounds.id, args.roundId)).run();
      this.db.update(t.federations).set({ currentModelVersionId: row.id }).where(eq(t.federations.id, args.federationId)).run();
      extra?.(row.id);
      return row;
    }).immediate();
  }

  getModelVersion(id: string): t.ModelVersionRow {
    const row = this.db.select().from(t.modelVersions).where(eq(t.modelVersions.id, id)).get();
    if (!row) throw new FedmartError('NOT_FOUND', `model version "${id}" not found`);
    return row;
  }

  getModelByNumber(federationId: string, version: number): t.ModelVersionRow {
    const row = this.db.select().from(t.modelVersions).where(and(eq(t.modelVersions.federationId, federationId), eq(t.modelVersions.version, version))).get();
    if (!row) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model version ${version}`);
    return row;
  }

  listModelVersions(federationId: string): Omit<t.ModelVersionRow, 'weights'>[] {
    return this.db
      .select({ id: t.modelVersions.id, federationId: t.modelVersions.federationId, version: t.modelVersions.version, roundId: t.modelVersions.roundId, parentId: t.modelVersions.parentId, strategy: t.modelVersions.strategy, participants: t.modelVersions.participants, metrics: t.modelVersions.metrics, spec: t.modelVersions.spec, paramCount: t.modelVersions.paramCount, sha256: t.modelVersions.sha256, createdAt: t.modelVersions.createdAt, encrypted: t.modelVersions.encrypted, releaseStatus: t.modelVersions.releaseStatus, publishRequestedBy: t.modelVersions.publishRequestedBy, approvedBy: t.modelVersions.approvedBy, publishedAt: t.modelVersions.publishedAt })
      .from(t.modelVersions)
      .where(eq(t.modelVersions.federationId, federationId))
      .orderBy(asc(t.modelVersions.version))
      .all();
  }

  /**
   * The federation's current model with its weights as Float32Array.
   * @throws FedmartError CONFLICT for a CKKS federation past version 0 (the coordinator holds only the encrypted aggregate; use {@link currentModelRow})
   */
  currentModel(federationId: string): { row: t.ModelVersionRow; weights: Float32Array } {
    const row = this.currentModelRow(federationId);
    if (row.encrypted) throw new FedmartError('CONFLICT', `federation ${federationId} aggregates under CKKS: model version ${row.version} is encrypted and only the partners can decrypt it; fetch the model from a partner`);
    return { row, weights: weightsOf(row) };
  }

  /** The federation's current model version row (plaintext or encrypted). */
  currentModelRow(federationId: string): t.ModelVersionRow {
    const fed = this.getFederation(federationId);
    if (!fed.currentModelVersionId) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no model yet`);
    return this.getModelVersion(fed.currentModelVersionId);
  }

  // ------------------------------------------------------------ schedules
  createSchedule(federationId: string, s: { kind: t.ScheduleRow['kind']; requested: number; spec: string; nextRunAt: number | null; at: number }): t.ScheduleRow {
    const row: t.ScheduleRow = { id: `s_${randomUUID().slice(0, 12)}`, federationId, kind: s.kind, requested: s.requested, remaining: s.requested, status: 'pending', reason: null, createdAt: s.at, updatedAt: s.at, spec: s.spec, completed: 0, failed: 0, skipped: 0, nextRunAt: s.nextRunAt, currentRoundId: null, progress: null };
    this.db.insert(t.schedules).values(row).run();
    return row;
  }

  updateSchedule(id: string, fields: Partial<Pick<t.ScheduleRow, 'remaining' | 'status' | 'reason' | 'completed' | 'failed' | 'skipped' | 'nextRunAt' | 'currentRoundId' | 'progress'>>): void {
    this.db.update(t.schedules).set({ ...fields, updatedAt: now() }).where(eq(t.schedules.id, id)).run();
  }

  /**
   * Claim a due cron/every tick (compare-and-set on next_run_at, see AsyncStore.claimScheduleTick).
   * @returns true when this caller moved next_run_at from `dueAt` to `nextRunAt`
   */
  claimScheduleTick(id: string, dueAt: number, nextRunAt: number | null): boolean {
    const s = t.schedules;
    return this.db.update(s).set({ nextRunAt, updatedAt: now() }).where(and(eq(s.id, id), eq(s.nextRunAt, dueAt), inArray(s.status, ['pending', 'running']))).run().changes === 1;
  }

  getSchedule(id: string): t.ScheduleRow {
    const row = this.db.select().from(t.schedules).where(eq(t.schedules.id, id)).get();
    if (!row) throw new FedmartError('NOT_FOUND', `schedule ${id} not found; list them with: fedmart schedule list --federation F`);
    return row;
  }

  /** Schedules that still have rounds to run (resumed at start-up). */
  listOpenSchedules(): t.ScheduleRow[] {
    return this.db.select().from(t.schedules).where(inArray(t.schedules.status, ['pending', 'running', 'paused'])).orderBy(asc(t.schedules.createdAt)).all();
  }

  listSchedules(federationId: string): t.ScheduleRow[] {
    return this.db.select().from(t.schedules).where(eq(t.schedules.federationId, federationId)).orderBy(asc(t.schedules.createdAt)).all();
  }
}

/**
 * A stored model version's weight blob (plaintext floats or, under CKKS, the
 * encrypted aggregate), checked against the SHA-256 recorded when it was
 * committed. The database file is outside the coordinator's control
 * (backups, disks, anyone with file access): bytes that no longer match are
 * never served or trained on, they stop the caller with the reason.
 * @param row - the model version row (with its blob)
 * @returns the blob, verified
 * @throws FedmartError UNAVAILABLE when the blob does not match its SHA-256
 */
export function verifiedWeightBytes(row: Pick<t.ModelVersionRow, 'id' | 'federationId' | 'version' | 'weights' | 'sha256'>): Buffer {
  const got = createHash('sha256').update(row.weights).digest('hex');
  if (got !== row.sha256) {
    throw new FedmartError(
      'UNAVAILABLE',
      `model version ${row.version} of federation ${row.federationId} is corrupted: its stored weights do not match their SHA-256 (recorded ${row.sha256.slice(0, 12)}…, now ${got.slice(0, 12)}…), so they are neither served nor used as a base model; restore the data dir from a backup`,
      { details: { modelVersionId: row.id, version: row.version, recorded: row.sha256, computed: got } },
    );
  }
  return row.weights;
}

/**
 * Decode a stored model's weights (copy into an aligned Float32Array) after
 * {@link verifiedWeightBytes}.
 * @param row - a plaintext model version row
 * @returns the weights
 * @throws FedmartError UNAVAILABLE when the blob does not match its SHA-256
 */
export function weightsOf(row: Pick<t.ModelVersionRow, 'id' | 'federationId' | 'version' | 'weights' | 'sha256' | 'paramCount'>): Float32Array {
  const bytes = verifiedWeightBytes(row);
  const out = new Float32Array(row.paramCount);
  new Uint8Array(out.buffer).set(bytes.subarray(0, row.paramCount * 4));
  return out;
}

/**
 * Release fields of a new model version: published at once when the federation has no release policy (as
 * before issue 13) or asks for autoPublish; otherwise a candidate waiting for `fedmart model publish`.
 */
export function initialRelease(config: FederationConfig): Pick<t.ModelVersionRow, 'releaseStatus' | 'publishRequestedBy' | 'approvedBy' | 'publishedAt'> {
  const auto = config.release === undefined || (config.release.autoPublish && !config.release.requiresApproval);
  return { releaseStatus: auto ? 'published' : 'candidate', publishRequestedBy: null, approvedBy: null, publishedAt: auto ? now() : null };
}
