/**
 * Issue 14, the partner's side through the REST API the portal uses (a real coordinator, real partner
 * agents on the bank data): a partner consents to a federation's terms by their hash and for purposes,
 * recorded exactly as a partner node's hello records it; a partner lists the audit entries it may see
 * and fetches their RFC 6962 inclusion proofs, which verify against the signed tree head; it can read
 * neither another federation's entries nor another partner's, and cannot consent for another federation.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { checkEntryIncluded, type AuditEntry, type SignedTreeHead } from '@fedmart/shared/audit-log';
import type { ConsentView, EnrollmentView, FederationAuditView } from '@fedmart/shared/api-views';
import { federationTermsHash, type FederationTerms } from '@fedmart/shared/federation-terms';
import { federationTerms } from '@fedmart/shared/protocol';
import { ApiClient } from '../../cli/api-client.ts';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';

type Proof = { entry: AuditEntry; leafIndex: number; treeSize: number; proof: string[] };

describe('issue 14: partner consent and audit entries through the API', () => {
  it('records a portal consent like a hello, and scopes audit entries and proofs to the partner', { timeout: 300_000 }, async () => {
    await using fx = await startFixture();
    const exp = await bankPartners();
    const a = await fx.createFederation({ model: modelFor(exp), purpose: 'purchase-prediction' } as never, 'brand federation');
    const b = await fx.createFederation({ model: modelFor(exp), purpose: 'purchase-prediction' } as never, 'someone else');
    const viaPortal = new ApiClient(fx.url, await fx.enroll(a, 'brand-portal'));
    const nodeToken = await fx.enroll(a, 'brand-node');
    const other = new ApiClient(fx.url, await fx.enroll(b, 'brand-b'));
    // The hash of the terms exactly as a node's welcome carries them (coordinator/src/socket.ts).
    const expectedHash = federationTermsHash(federationTerms(fx.coord.store.federationConfig(fx.coord.store.getFederation(a))) as unknown as FederationTerms);

    // The invitation: the same terms and hash a node is welcomed with; nothing consented yet.
    const invite = await viaPortal.get<ConsentView>(`/api/v1/federations/${a}/consent`);
    expect(invite).toMatchObject({ federationId: a, termsHash: expectedHash, purpose: 'purchase-prediction', enrollment: { termsHash: null, consentedAt: null, purposes: null, current: false } });

    // Refusals, in words.
    const consent = (api: ApiClient, fed: string, body: unknown) => api.post<ConsentView>(`/api/v1/federations/${fed}/consent`, body);
    await expect(consent(viaPortal, a, { termsHash: '0'.repeat(64), purposes: ['purchase-prediction'] })).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/terms changed since they were shown/) });
    await expect(consent(viaPortal, a, { termsHash: expectedHash, purposes: ['recommendation'] })).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/does not cover/) });
    await expect(consent(viaPortal, a, { termsHash: expectedHash, purposes: [] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(consent(viaPortal, b, { termsHash: expectedHash, purposes: ['purchase-prediction'] })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(consent(fx.api, a, { termsHash: expectedHash, purposes: ['purchase-prediction'] })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(viaPortal.get(`/api/v1/federations/${b}/consent`)).rejects.toMatchObject({ code: 'FORBIDDEN' });

    const done = await consent(viaPortal, a, { termsHash: expectedHash, purposes: ['purchase-prediction', 'segments'] });
    expect(done.enrollment).toMatchObject({ termsHash: expectedHash, purposes: ['purchase-prediction', 'segments'], current: true });
    expect(done.enrollment.consentedAt).not.toBeNull();

    // The CLI path: a node consents in its hello. Both enrollments now hold the same record.
    const node = startPartnerAgent({ coordinatorUrl: fx.url, token: nodeToken, data: exp.partners[1]!.data, reconnect: false, identity: PartnerIdentity.ephemeral(), purposes: ['purchase-prediction', 'segments'] });
    // What the node pins (client-node/src/agent.ts: the hash of its welcome's terms).
    const pinned = federationTermsHash((await node.ready).terms as unknown as FederationTerms);
    expect(pinned).toBe(expectedHash);
    const rows = (await fx.api.get<{ enrollments: EnrollmentView[] }>(`/api/v1/federations/${a}/enrollments`)).enrollments;
    const row = (name: string) => rows.find((e) => e.partnerName === name)!;
    for (const name of ['brand-portal', 'brand-node']) {
      expect(row(name).termsHash).toBe(pinned);
      expect(JSON.parse(row(name).purposes as string)).toEqual(['purchase-prediction', 'segments']);
      expect(row(name).consentedAt).toEqual(expect.any(Number));
    }
    const consentEntries = () => fx.coord.store.auditLog.entries().filter((e) => e.action === 'partner.consent');
    const [fromPortal, fromNode] = consentEntries();
    expect(consentEntries()).toHaveLength(2);
    for (const [e, name] of [[fromPortal!, 'brand-portal'], [fromNode!, 'brand-node']] as const) {
      expect(e.actor).toBe(row(name).partnerId);
      expect(e.subject).toBe(row(name).id);
      expect(JSON.parse(e.data!)).toEqual({ federationId: a, purposes: ['purchase-prediction', 'segments'], previous: null, termsHash: pinned });
    }
    // The portal partner's node then joins: its hello finds the same consent, so nothing new is recorded.
    const portalNode = startPartnerAgent({ coordinatorUrl: fx.url, token: viaPortal.token, data: exp.partners[0]!.data, reconnect: false, identity: PartnerIdentity.ephemeral(), purposes: ['purchase-prediction', 'segments'] });
    await portalNode.ready;
    expect(consentEntries()).toHaveLength(2);
    await portalNode.close();
    await node.close();

    // Entries naming another partner are not shown (a round's participants), even in its own federation.
    const portalId = row('brand-portal').partnerId;
    fx.coord.store.audit('coordinator', 'round.committed', 'r_test', { federationId: a, round: 1, participants: [portalId, row('brand-node').partnerId] });
    fx.coord.store.audit('compliance@x', 'privacy.cap.set', a, { partnerId: row('brand-node').partnerId, level: 'record', epsilon: 1 });
    fx.coord.store.audit('compliance@x', 'privacy.cap.set', a, { partnerId: portalId, level: 'record', epsilon: 2 });
    fx.coord.store.audit('compliance@x', 'privacy.cap.set', a, { partnerId: null, level: 'record', epsilon: 3 });

    // The partner's entries: its own federation, about it, or federation-wide naming no other partner.
    const mine = await viaPortal.get<FederationAuditView>(`/api/v1/federations/${a}/audit/entries`);
    const actions = mine.entries.map((e) => `${e.action}:${e.action === 'privacy.cap.set' ? JSON.parse(e.data!).epsilon : ''}`);
    expect(actions).toEqual(['federation.created:', 'enrollment.issued:', 'partner.consent:', 'privacy.cap.set:2', 'privacy.cap.set:3']);
    expect(mine.entries.every((e) => e.data === null || !e.data.includes(row('brand-node').partnerId))).toBe(true);

    // Each proof verifies against the signed head; a changed entry does not.
    const { head } = await viaPortal.get<{ head: SignedTreeHead }>('/api/v1/audit/sth');
    for (const e of mine.entries) {
      const p = await viaPortal.get<Proof>(`/api/v1/audit/entries/${e.seq}/proof?size=${head.size}`);
      expect(p.entry).toEqual(e);
      expect(checkEntryIncluded(e, p, head)).toBeNull();
      expect(checkEntryIncluded({ ...e, actor: `${e.actor}x` }, p, head)).toMatch(/not in the log/);
      expect(checkEntryIncluded(e, p, { ...head, root: head.root.replace(/^./, (c) => (c === '0' ? '1' : '0')) })).toMatch(/not signed/);
    }

    // Refused: another federation's entries and proofs, another partner's entries, the whole log.
    await expect(viaPortal.get(`/api/v1/federations/${b}/audit/entries`)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const all = fx.coord.store.auditLog.entries();
    const bCreated = all.find((e) => e.action === 'federation.created' && e.subject === b)!;
    const nodeConsent = fromNode!;
    const committed = all.find((e) => e.action === 'round.committed')!;
    for (const e of [bCreated, nodeConsent, committed]) {
      await expect(viaPortal.get(`/api/v1/audit/entries/${e.seq}/proof`)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/only read audit entries of its own federation/) });
    }
    await expect(viaPortal.get('/api/v1/audit/entries')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // … and the other federation's partner sees none of this federation's entries.
    const theirs = await other.get<FederationAuditView>(`/api/v1/federations/${b}/audit/entries`);
    expect(theirs.entries.map((e) => e.action)).toEqual(['federation.created', 'enrollment.issued']);
    // Operators see every entry naming the federation.
    const op = await fx.api.get<FederationAuditView>(`/api/v1/federations/${a}/audit/entries`);
    expect(op.entries.map((e) => e.action)).toContain('round.committed');
  });
});
