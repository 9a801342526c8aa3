/**
 * Model release (issue 13, item 3): versions move candidate → approved →
 * published → retired. One version per federation is published at a time
 * (publishing retires the previous one). When the federation's policy says
 * `release: { requiresApproval: true }`, publishing takes two people: an
 * operator's request and a compliance officer's approval, in either order,
 * by different subjects. A rollback re-publishes a version that was published
 * before (it was released once, so it needs no new approval). Every step is
 * an audit entry naming its actor.
 */
import { and, desc, eq, isNotNull, lt } from 'drizzle-orm';
import { FedmartError } from '@fedmart/shared/errors';
import type { Principal } from './auth.ts';
import type { Store } from './db/store.ts';
import * as t from './db/schema.ts';

/** Outcome of a release step. */
export interface ReleaseStep {
  version: number;
  status: t.ModelVersionRow['releaseStatus'];
  /** Set when the step waits for the other person (approval or the operator's request). */
  awaiting?: 'approval' | 'publish-request';
}

function policy(store: Store, federationId: string) {
  return store.federationConfig(store.getFederation(federationId)).release ?? { requiresApproval: false, autoPublish: true };
}

function publishNow(store: Store, m: t.ModelVersionRow, actor: string, action: 'model.published' | 'model.rolled-back', extra: Record<string, unknown> = {}): ReleaseStep {
  const { db } = store;
  const previous = db.select().from(t.modelVersions).where(and(eq(t.modelVersions.federationId, m.federationId), eq(t.modelVersions.releaseStatus, 'published'))).get();
  db.$client.transaction(() => {
    db.update(t.modelVersions).set({ releaseStatus: 'retired' }).where(and(eq(t.modelVersions.federationId, m.federationId), eq(t.modelVersions.releaseStatus, 'published'))).run();
    db.update(t.modelVersions).set({ releaseStatus: 'published', publishedAt: Date.now() }).where(eq(t.modelVersions.id, m.id)).run();
    store.audit(actor, action, m.id, { federationId: m.federationId, version: m.version, retired: previous?.version ?? null, requestedBy: m.publishRequestedBy, approvedBy: m.approvedBy, ...extra });
  }).immediate();
  return { version: m.version, status: 'published' };
}

function assertNotEnded(store: Store, federationId: string): void {
  const f = store.getFederation(federationId);
  if (f.status !== 'active') throw new FedmartError('CONFLICT', `federation ${federationId} is ${f.status}; its models can no longer be released`);
}

/**
 * An operator publishes a version (or, under requiresApproval, asks for it to be published).
 * @throws FedmartError CONFLICT for a published or retired version (use rollback for an earlier one)
 */
export function publishModel(store: Store, federationId: string, version: number, who: Principal): ReleaseStep {
  assertNotEnded(store, federationId);
  const m = store.getModelByNumber(federationId, version);
  if (m.releaseStatus === 'published') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is already published`);
  if (m.releaseStatus === 'retired') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is retired; to serve it again use fedmart model rollback --to ${version}`);
  if (!policy(store, federationId).requiresApproval) return publishNow(store, { ...m, publishRequestedBy: who.sub }, who.sub, 'model.published');
  if (m.approvedBy !== null && m.approvedBy === who.sub) throw new FedmartError('FORBIDDEN', `${who.sub} approved version ${version}; the publish request must come from another person`);
  store.db.update(t.modelVersions).set({ publishRequestedBy: who.sub }).where(eq(t.modelVersions.id, m.id)).run();
  if (m.releaseStatus === 'approved') return publishNow(store, { ...m, publishRequestedBy: who.sub }, who.sub, 'model.published');
  store.audit(who.sub, 'model.publish-requested', m.id, { federationId, version });
  return { version, status: m.releaseStatus, awaiting: 'approval' };
}

/**
 * A compliance officer approves a version; if an operator already asked to publish it, it is published now.
 * @throws FedmartError FORBIDDEN when the approver is the person who asked; CONFLICT for a published or retired version
 */
export function approveModel(store: Store, federationId: string, version: number, who: Principal): ReleaseStep {
  assertNotEnded(store, federationId);
  const m = store.getModelByNumber(federationId, version);
  if (m.releaseStatus !== 'candidate') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is ${m.releaseStatus}; only a candidate can be approved`);
  if (m.publishRequestedBy === who.sub) throw new FedmartError('FORBIDDEN', `${who.sub} asked to publish version ${version}; another person (a compliance officer) must approve it`);
  store.db.update(t.modelVersions).set({ releaseStatus: 'approved', approvedBy: who.sub }).where(eq(t.modelVersions.id, m.id)).run();
  store.audit(who.sub, 'model.approved', m.id, { federationId, version, requestedBy: m.publishRequestedBy });
  if (m.publishRequestedBy !== null) return publishNow(store, { ...m, approvedBy: who.sub }, who.sub, 'model.published');
  return { version, status: 'approved', awaiting: 'publish-request' };
}

/**
 * Re-publish an earlier version that was published before (default: the one published most recently before the current).
 * @throws FedmartError CONFLICT when there is nothing to roll back to, or the target was never published
 */
export function rollbackModel(store: Store, federationId: string, to: number | undefined, who: Principal): ReleaseStep {
  assertNotEnded(store, federationId);
  const current = store.db.select().from(t.modelVersions).where(and(eq(t.modelVersions.federationId, federationId), eq(t.modelVersions.releaseStatus, 'published'))).get();
  let target: t.ModelVersionRow | undefined;
  if (to !== undefined) target = store.getModelByNumber(federationId, to);
  else {
    const before = current?.publishedAt ?? Number.MAX_SAFE_INTEGER;
    target = store.db.select().from(t.modelVersions)
      .where(and(eq(t.modelVersions.federationId, federationId), eq(t.modelVersions.releaseStatus, 'retired'), isNotNull(t.modelVersions.publishedAt), lt(t.modelVersions.publishedAt, before)))
      .orderBy(desc(t.modelVersions.publishedAt)).limit(1).get();
    if (!target) throw new FedmartError('CONFLICT', `federation ${federationId} has no earlier published version to roll back to`);
  }
  if (target.releaseStatus === 'published') throw new FedmartError('CONFLICT', `version ${target.version} is the published version already`);
  if (target.publishedAt === null) throw new FedmartError('CONFLICT', `version ${target.version} was never published, so a rollback cannot serve it; publish it instead (fedmart model publish${policy(store, federationId).requiresApproval ? ', then a compliance officer approves' : ''})`);
  return publishNow(store, target, who.sub, 'model.rolled-back', { from: current?.version ?? null });
}

/** Retire a version (it is no longer served; a retired version that was published can come back by rollback). */
export function retireModel(store: Store, federationId: string, version: number, who: Principal): ReleaseStep {
  const m = store.getModelByNumber(federationId, version);
  if (m.releaseStatus === 'retired') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is already retired`);
  store.db.update(t.modelVersions).set({ releaseStatus: 'retired' }).where(eq(t.modelVersions.id, m.id)).run();
  store.audit(who.sub, 'model.retired', m.id, { federationId, version, was: m.releaseStatus });
  return { version, status: 'retired' };
}

/** The published version of a federation. @throws FedmartError NOT_FOUND when none is */
export function publishedModel(store: Store, federationId: string): Omit<t.ModelVersionRow, 'weights'> {
  store.getFederation(federationId);
  const m = store.listModelVersions(federationId).find((v) => v.releaseStatus === 'published');
  if (!m) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no published model version; an operator publishes one with fedmart model publish`);
  return m;
}
