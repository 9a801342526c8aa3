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
import { FedmartError } from '@fedmart/shared/errors';
import type { Principal } from './auth.ts';
import type { AsyncStore, ModelVersionMeta, ReleaseChange, ReleaseSnapshot } from './db/store-api.ts';
import type * as t from './db/schema.ts';

/** Outcome of a release step. */
export interface ReleaseStep {
  version: number;
  status: t.ModelVersionRow['releaseStatus'];
  /** Set when the step waits for the other person (approval or the operator's request). */
  awaiting?: 'approval' | 'publish-request';
}

// Each step is a plan (`AsyncStore.releaseModel`): it decides from the federation and its versions
// read under the federation's lock, and what it writes (fields, publication, audit entries) commits
// in one transaction, so two racing steps never both pass the same check.

function policy(store: AsyncStore, snap: ReleaseSnapshot) {
  return store.federationConfig(snap.federation).release ?? { requiresApproval: false, autoPublish: true };
}

function byNumber(snap: ReleaseSnapshot, version: number): ModelVersionMeta {
  const m = snap.versions.find((v) => v.version === version);
  if (!m) throw new FedmartError('NOT_FOUND', `federation ${snap.federation.id} has no model version ${version}`);
  return m;
}

/** Publish `m` (as it reads after `set`): the version published before is retired. */
function publishNow(snap: ReleaseSnapshot, m: ModelVersionMeta, actor: string, action: 'model.published' | 'model.rolled-back', opts: { set?: ReleaseChange<ReleaseStep>['set']; extra?: Record<string, unknown>; before?: ReleaseChange<ReleaseStep>['audit'] } = {}): ReleaseChange<ReleaseStep> {
  const previous = snap.versions.find((v) => v.releaseStatus === 'published');
  const entry = { actor, action, subject: m.id, data: { federationId: m.federationId, version: m.version, retired: previous?.version ?? null, requestedBy: m.publishRequestedBy, approvedBy: m.approvedBy, ...opts.extra } };
  return { versionId: m.id, publish: true, ...(opts.set ? { set: opts.set } : {}), audit: [...(opts.before ?? []), entry], result: { version: m.version, status: 'published' } };
}

function assertNotEnded(snap: ReleaseSnapshot): void {
  const f = snap.federation;
  if (f.status !== 'active') throw new FedmartError('CONFLICT', `federation ${f.id} is ${f.status}; its models can no longer be released`);
}

/**
 * An operator publishes a version (or, under requiresApproval, asks for it to be published).
 * @throws FedmartError CONFLICT for a published or retired version (use rollback for an earlier one)
 */
export function publishModel(store: AsyncStore, federationId: string, version: number, who: Principal): Promise<ReleaseStep> {
  return store.releaseModel(federationId, (snap) => {
    assertNotEnded(snap);
    const m = byNumber(snap, version);
    if (m.releaseStatus === 'published') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is already published`);
    if (m.releaseStatus === 'retired') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is retired; to serve it again use fedmart model rollback --to ${version}`);
    if (!policy(store, snap).requiresApproval) return publishNow(snap, { ...m, publishRequestedBy: who.sub }, who.sub, 'model.published');
    if (m.approvedBy !== null && m.approvedBy === who.sub) throw new FedmartError('FORBIDDEN', `${who.sub} approved version ${version}; the publish request must come from another person`);
    const set = { publishRequestedBy: who.sub };
    if (m.releaseStatus === 'approved') return publishNow(snap, { ...m, ...set }, who.sub, 'model.published', { set });
    return { versionId: m.id, set, audit: [{ actor: who.sub, action: 'model.publish-requested', subject: m.id, data: { federationId, version } }], result: { version, status: m.releaseStatus, awaiting: 'approval' } };
  });
}

/**
 * A compliance officer approves a version; if an operator already asked to publish it, it is published now.
 * @throws FedmartError FORBIDDEN when the approver is the person who asked; CONFLICT for a published or retired version
 */
export function approveModel(store: AsyncStore, federationId: string, version: number, who: Principal): Promise<ReleaseStep> {
  return store.releaseModel(federationId, (snap): ReleaseChange<ReleaseStep> => {
    assertNotEnded(snap);
    const m = byNumber(snap, version);
    if (m.releaseStatus !== 'candidate') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is ${m.releaseStatus}; only a candidate can be approved`);
    if (m.publishRequestedBy === who.sub) throw new FedmartError('FORBIDDEN', `${who.sub} asked to publish version ${version}; another person (a compliance officer) must approve it`);
    const approved = { actor: who.sub, action: 'model.approved', subject: m.id, data: { federationId, version, requestedBy: m.publishRequestedBy } };
    if (m.publishRequestedBy !== null) return publishNow(snap, { ...m, approvedBy: who.sub }, who.sub, 'model.published', { set: { approvedBy: who.sub }, before: [approved] });
    return { versionId: m.id, set: { releaseStatus: 'approved', approvedBy: who.sub }, audit: [approved], result: { version, status: 'approved', awaiting: 'publish-request' } };
  });
}

/**
 * Re-publish an earlier version that was published before (default: the one published most recently before the current).
 * @throws FedmartError CONFLICT when there is nothing to roll back to, or the target was never published
 */
export function rollbackModel(store: AsyncStore, federationId: string, to: number | undefined, who: Principal): Promise<ReleaseStep> {
  return store.releaseModel(federationId, (snap) => {
    assertNotEnded(snap);
    const current = snap.versions.find((v) => v.releaseStatus === 'published');
    let target: ModelVersionMeta | undefined;
    if (to !== undefined) target = byNumber(snap, to);
    else {
      const before = current?.publishedAt ?? Number.MAX_SAFE_INTEGER;
      target = snap.versions.filter((v) => v.releaseStatus === 'retired' && v.publishedAt !== null && v.publishedAt < before).sort((a, b) => b.publishedAt! - a.publishedAt!)[0];
      if (!target) throw new FedmartError('CONFLICT', `federation ${federationId} has no earlier published version to roll back to`);
    }
    if (target.releaseStatus === 'published') throw new FedmartError('CONFLICT', `version ${target.version} is the published version already`);
    if (target.publishedAt === null) throw new FedmartError('CONFLICT', `version ${target.version} was never published, so a rollback cannot serve it; publish it instead (fedmart model publish${policy(store, snap).requiresApproval ? ', then a compliance officer approves' : ''})`);
    return publishNow(snap, target, who.sub, 'model.rolled-back', { extra: { from: current?.version ?? null } });
  });
}

/** Retire a version (it is no longer served; a retired version that was published can come back by rollback). */
export function retireModel(store: AsyncStore, federationId: string, version: number, who: Principal): Promise<ReleaseStep> {
  return store.releaseModel(federationId, (snap) => {
    const m = byNumber(snap, version);
    if (m.releaseStatus === 'retired') throw new FedmartError('CONFLICT', `version ${version} of ${federationId} is already retired`);
    return { versionId: m.id, set: { releaseStatus: 'retired' }, audit: [{ actor: who.sub, action: 'model.retired', subject: m.id, data: { federationId, version, was: m.releaseStatus } }], result: { version, status: 'retired' } };
  });
}

/** The published version of a federation. @throws FedmartError NOT_FOUND when none is */
export async function publishedModel(store: AsyncStore, federationId: string): Promise<ModelVersionMeta> {
  await store.getFederation(federationId);
  const m = (await store.listModelVersions(federationId)).find((v) => v.releaseStatus === 'published');
  if (!m) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no published model version; an operator publishes one with fedmart model publish`);
  return m;
}
