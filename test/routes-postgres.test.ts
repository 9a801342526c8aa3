/**
 * Issue 15: the REST routes run unchanged on PostgreSQL. The coordinator's Express app (`createHttpApp`)
 * over a PgStore on a throwaway PostgreSQL 15 cluster, on a real port, driven over HTTP with real
 * tokens: model publish / approve / retire / rollback (two people, each step audited in the step's
 * transaction), a partner's consent in the portal, federation delete (erasure) and archive refusals,
 * and the verifiable audit log's reads (signed head, inclusion and consistency proofs checked the way a
 * partner checks them). Skips with a printed reason only when no PostgreSQL binaries exist.
 *
 * The round engine is not part of this test: its version on PostgreSQL is another branch's, so the
 * app gets a stand-in with no connected partners and the one committed round is written by the store
 * (`commitRound`), as the engine writes it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkEntryIncluded, checkHeadExtends, verifyTreeHead, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { TokenAuthority } from '@fedmart/coordinator/auth';
import { createHttpApp } from '@fedmart/coordinator/http';
import type { Orchestrator } from '@fedmart/coordinator/orchestrator';
import { ERASED_WEIGHTS_SHA256 } from '../coordinator/src/db/store-api.ts';
import { HANG_GUARD, usePgStore } from '../coordinator/src/cluster/pg-fixture.ts';
import { ApiClient } from '../cli/api-client.ts';

const fx = usePgStore('routes on PostgreSQL');

/** The app's view of the round engine here: nobody connected, no rounds run by it. */
const noRoundEngine = { connectedClients: () => [], scheduler: undefined } as unknown as Orchestrator;

describe.skipIf(fx.skip)('REST routes on PostgreSQL', () => {
  it('publish/approve/retire/rollback, consent, delete and the audit log over HTTP, each step one transaction on PgStore', async () => {
    const store = fx.store;
    const authority = await TokenAuthority.open(null);
    const app = createHttpApp({ store, authority, orchestrator: noRoundEngine, disconnectToken: () => 0, version: 'test', portalDir: null, log: () => undefined });
    const server: Server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fx.onCleanup(() => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = async (sub: string, role: 'operator' | 'compliance') => new ApiClient(url, (await authority.issue({ sub, role }, 3600)).token);
    const op = await client('olga', 'operator');
    const cora = await client('cora', 'compliance');
    const olgaCompliance = await client('olga', 'compliance');

    // A rejected store call is the one-line JSON error, not a hung request.
    await expect(op.get('/api/v1/federations/f_nope')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/federation "f_nope" not found/) });

    const config = FederationConfigSchema.parse({
      model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 },
      purpose: 'pricing', release: { requiresApproval: true },
    });
    const { federation } = await op.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'pg routes', config });
    const fed = federation.id;
    // One committed round, written as the round engine writes it.
    const v0 = await store.currentModelRow(fed);
    const round = { id: `r_${fed}_1`, federationId: fed, number: 1, phase: 'scheduled', strategy: 'fedavg', config: '{}', baseModelVersionId: v0.id, startedAt: Date.now() };
    await store.createRound(round);
    await store.commitRound({ federationId: fed, roundId: round.id, parentId: v0.id, strategy: 'fedavg', participants: [], metrics: {}, spec: config.model, weights: new Float32Array(4).fill(0.25) });

    // Model release: two people; each step audited; rollback re-publishes; retire.
    const base = `/api/v1/federations/${fed}/models`;
    const states = async () => (await op.get<{ models: { version: number; releaseStatus: string }[] }>(base)).models.map((m) => [m.version, m.releaseStatus]);
    expect(await states()).toEqual([[0, 'candidate'], [1, 'candidate']]);
    await expect(op.get(`${base}/published`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await op.post(`${base}/1/publish`)).toMatchObject({ version: 1, status: 'candidate', awaiting: 'approval' });
    await expect(olgaCompliance.post(`${base}/1/approve`)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/another person/) });
    // Two racing approvals of one candidate: the first publishes it, the second finds it published.
    const race = await Promise.allSettled([cora.post(`${base}/1/approve`), (await client('carl', 'compliance')).post(`${base}/1/approve`)]);
    expect(race.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<unknown>).value)).toEqual([{ version: 1, status: 'published' }]);
    expect(race.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['CONFLICT']);
    expect(await cora.post(`${base}/0/approve`)).toMatchObject({ status: 'approved', awaiting: 'publish-request' });
    expect(await op.post(`${base}/0/publish`)).toMatchObject({ version: 0, status: 'published' });
    expect(await states()).toEqual([[0, 'published'], [1, 'retired']]);
    expect(await op.post(`${base}/rollback`, {})).toMatchObject({ version: 1, status: 'published' });
    expect(await op.get(`${base}/published`)).toMatchObject({ version: 1, releaseStatus: 'published' });
    expect(await op.post(`${base}/1/retire`)).toEqual({ version: 1, status: 'retired' });
    await expect(op.post(`${base}/1/retire`)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/already retired/) });
    expect(await states()).toEqual([[0, 'retired'], [1, 'retired']]);

    // A partner's consent in the portal.
    const enrolled = await op.post<{ token: string; enrollment: { id: string; partnerId: string } }>(`/api/v1/federations/${fed}/enrollments`, { partner: 'acme' });
    const acme = new ApiClient(url, enrolled.token);
    const shown = await acme.get<{ termsHash: string; enrollment: { current: boolean } }>(`/api/v1/federations/${fed}/consent`);
    expect(shown.enrollment.current).toBe(false);
    await expect(acme.post(`/api/v1/federations/${fed}/consent`, { termsHash: shown.termsHash, purposes: ['service'] })).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/consent not recorded/) });
    const consented = await acme.post<{ enrollment: { current: boolean; purposes: string[] } }>(`/api/v1/federations/${fed}/consent`, { termsHash: shown.termsHash, purposes: ['pricing'] });
    expect(consented.enrollment).toMatchObject({ current: true, purposes: ['pricing'] });

    // The audit log: every step above, in order, with its actor; proofs from the stored rows.
    const { entries } = await cora.get<{ entries: { seq: number; actor: string; action: string; subject: string | null; at: number; data: string | null }[] }>('/api/v1/audit/entries');
    const approver = race[0]!.status === 'fulfilled' ? 'cora' : 'carl';
    expect(entries.map((e) => e.actor)).toEqual(['olga', 'olga', approver, approver, 'cora', 'olga', 'olga', 'olga', 'olga', enrolled.enrollment.partnerId]);
    const actions = entries.map((e) => e.action);
    expect(actions).toEqual(['federation.created', 'model.publish-requested', 'model.approved', 'model.published', 'model.approved', 'model.published', 'model.rolled-back', 'model.retired', 'enrollment.issued', 'partner.consent']);
    const { head } = await acme.get<{ head: SignedTreeHead }>('/api/v1/audit/sth');
    expect([head.size, verifyTreeHead(head)]).toEqual([entries.length, true]);
    const consent = entries.at(-1)!;
    // A partner reads its own consent entry and its inclusion proof, not another party's.
    const proof = await acme.get<{ entry: typeof consent; leafIndex: number; treeSize: number; proof: string[] }>(`/api/v1/audit/entries/${consent.seq}/proof`);
    expect(checkEntryIncluded(proof.entry, proof, head)).toBeNull();
    const older = (await op.get<{ heads: SignedTreeHead[] }>('/api/v1/audit/heads')).heads[2]!;
    expect(checkHeadExtends(older, head, (await acme.get<{ proof: string[] }>(`/api/v1/audit/consistency?from=${older.size}`)).proof)).toBeNull();
    const mine = await acme.get<{ entries: { action: string }[] }>(`/api/v1/federations/${fed}/audit/entries`);
    expect(mine.entries.map((e) => e.action)).toContain('partner.consent');
    expect((await op.get<{ chain: { ok: boolean; entries: number } }>('/api/v1/audit')).chain).toMatchObject({ ok: true, entries: entries.length });

    const other = await op.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'another federation', config });
    const otherEntry = (await cora.get<{ entries: { seq: number; subject: string | null }[] }>(`/api/v1/federations/${other.federation.id}/audit/entries`)).entries[0]!;
    await expect(acme.get(`/api/v1/audit/entries/${otherEntry.seq}/proof`)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/own federation/) });

    // Delete: the weights and per-partner data erased in one transaction with its audit entry; then refused.
    const deleted = await op.delete<{ status: string; retention: { deleted: string[] } }>(`/api/v1/federations/${fed}`);
    expect(deleted.status).toBe('deleted');
    for (const v of [0, 1]) expect((await store.getModelByNumber(fed, v)).sha256).toBe(ERASED_WEIGHTS_SHA256);
    expect((await store.listEnrollments(fed)).map((e) => [e.status, e.identityKey, e.termsHash, e.purposes])).toEqual([['revoked', null, null, null]]);
    await expect(op.delete(`/api/v1/federations/${fed}`)).rejects.toMatchObject({ code: 'CONFLICT', message: `federation ${fed} is already deleted` });
    await expect(op.post(`/api/v1/federations/${fed}/archive`)).rejects.toMatchObject({ code: 'CONFLICT', message: `federation ${fed} is already deleted` });
    await expect(op.post(`${base}/0/publish`)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/can no longer be released/) });
    await expect(acme.get(`/api/v1/federations/${fed}/consent`)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const after = (await cora.get<{ entries: { action: string }[] }>('/api/v1/audit/entries')).entries.map((e) => e.action);
    expect(after.slice(actions.length)).toEqual(['federation.created', 'federation.deleted']);
    expect((await store.verifyAudit()).ok).toBe(true);
  }, HANG_GUARD);
});
