/**
 * Issue 14 follow-up (privacy): free-text reasons name partners. A round refused for budget says whose
 * cap it would break ("would bring partner brand-b to record-level epsilon … above the record-level cap
 * of partner brand-b"), and the schedule that ran it ends with that reason (`schedule.ended`, "last: …",
 * or "stopped before the next round: …" for until-converged). Partners may read federation-wide
 * schedule entries, so before the fix brand-a read brand-b's cap and projected spend in its audit view.
 * Real coordinator, real SQLite, real caps and schedules (no agents are needed: the projection refuses
 * before selection). Checked: brand-a does not list these entries and is refused their proofs; brand-b
 * (whom they name) lists them and their inclusion proofs verify against the signed head; an entry naming
 * nobody stays visible to both; the REST rounds view and the event stream redact the other's name.
 */
import { describe, expect, it } from 'vitest';
import { checkEntryIncluded, mentionedPartner, partnerMaySeeAuditEntry, redactPartnerNames, type AuditEntry, type SignedTreeHead } from '@fedmart/shared/audit-log';
import type { FederationAuditView, RoundView } from '@fedmart/shared/api-views';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';
import { eventFor } from '@fedmart/coordinator/events';
import { ApiClient } from '../cli/api-client.ts';
import { bankPartners, modelFor, startFixture, type Fixture } from './helpers.ts';

type Proof = { entry: AuditEntry; leafIndex: number; treeSize: number; proof: string[] };

async function runSchedule(fx: Fixture, fed: string, spec: unknown): Promise<ScheduleView> {
  const { schedule } = await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/federations/${fed}/schedules`, spec);
  let s = schedule;
  const end = Date.now() + 120_000; // hang guard only
  while (s.status === 'pending' || s.status === 'running') {
    if (Date.now() > end) throw new Error(`schedule ${s.id} did not end: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
    s = (await fx.api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${s.id}`)).schedule;
  }
  return s;
}

describe('issue 14: reasons naming another partner stay with that partner', () => {
  it('hides schedule.ended entries carrying another partner\'s cap reason, keeps proofs for the named partner, redacts round reasons', { timeout: 300_000 }, async () => {
    await using fx = await startFixture();
    const exp = await bankPartners();
    const dp = { level: 'record' as const, noiseMultiplier: 1.1, clip: 1, delta: 1e-5 };
    const fed = await fx.createFederation({ model: modelFor(exp), dp } as never, 'capped');
    const a = new ApiClient(fx.url, await fx.enroll(fed, 'brand-a'));
    const b = new ApiClient(fx.url, await fx.enroll(fed, 'brand-b'));
    const ids = new Map(fx.coord.store.listEnrollments(fed).map((e) => [e.partnerName, e.partnerId]));
    const bId = ids.get('brand-b')!;
    const { token } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
    await new ApiClient(fx.url, token).request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'record', epsilon: 0.01, partnerId: bId });

    // A round now: refused for brand-b's cap; the schedule ends "…; last: privacy budget exceeded … partner brand-b …".
    const now = await runSchedule(fx, fed, { kind: 'now', rounds: 1 });
    expect(now.reason).toMatch(/last: privacy budget exceeded: .*partner brand-b/);
    // Until converged: stops before the next round, naming brand-b's cap and projected spend.
    const conv = await runSchedule(fx, fed, { kind: 'until-converged', maxRounds: 3, tolerance: 0, patience: 3 });
    expect(conv.reason).toMatch(/^stopped before the next round: privacy budget exceeded: .*partner brand-b/);
    // A schedule whose end names nobody.
    const quiet = (await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/federations/${fed}/schedules`, { kind: 'every', everySeconds: 3600 })).schedule;
    await fx.api.post(`/api/v1/schedules/${quiet.id}/cancel`, {});

    const ended = fx.coord.store.auditLog.entries().filter((e) => e.action === 'schedule.ended');
    expect(ended).toHaveLength(3);
    const [leakNow, leakConv, clean] = ended as [AuditEntry, AuditEntry, AuditEntry];
    for (const e of [leakNow, leakConv]) expect(e.data).toMatch(/partner brand-b/);
    expect(clean.data).not.toMatch(/brand-/);

    // brand-a: neither entry naming brand-b is listed, their proofs are refused; the clean one verifies.
    const { head } = await a.get<{ head: SignedTreeHead }>('/api/v1/audit/sth');
    const aView = await a.get<FederationAuditView>(`/api/v1/federations/${fed}/audit/entries`);
    expect(aView.entries.every((e) => e.data === null || (!e.data.includes('brand-b') && !e.data.includes(bId)))).toBe(true);
    expect(aView.entries.map((e) => e.seq)).toContain(clean.seq);
    for (const e of [leakNow, leakConv]) {
      await expect(a.get(`/api/v1/audit/entries/${e.seq}/proof`)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    }
    const cleanProof = await a.get<Proof>(`/api/v1/audit/entries/${clean.seq}/proof?size=${head.size}`);
    expect(checkEntryIncluded(clean, cleanProof, head)).toBeNull();

    // brand-b, whom they name: lists them and verifies their inclusion proofs.
    const bView = await b.get<FederationAuditView>(`/api/v1/federations/${fed}/audit/entries`);
    expect(bView.entries.map((e) => e.seq)).toEqual(expect.arrayContaining([leakNow.seq, leakConv.seq, clean.seq]));
    for (const e of [leakNow, leakConv]) {
      const p = await b.get<Proof>(`/api/v1/audit/entries/${e.seq}/proof?size=${head.size}`);
      expect(p.entry).toEqual(e);
      expect(checkEntryIncluded(e, p, head)).toBeNull();
    }

    // Round reasons over REST (not hashed, so redacted): brand-a reads "another partner", brand-b its own name.
    const reasons = async (api: ApiClient) => (await api.get<{ rounds: RoundView[] }>(`/api/v1/federations/${fed}/rounds`)).rounds.map((r) => r.reason ?? '');
    const aReasons = await reasons(a);
    expect(aReasons.length).toBeGreaterThan(0);
    for (const r of aReasons) {
      expect(r).toMatch(/privacy budget exceeded: .*partner another partner/);
      expect(r).not.toMatch(/brand-b/);
    }
    const roundId = fx.coord.store.listRounds(fed)[0]!.id;
    expect((await a.get<{ round: RoundView }>(`/api/v1/rounds/${roundId}`)).round.reason).not.toMatch(/brand-b/);
    for (const r of await reasons(b)) expect(r).toMatch(/partner brand-b/);
    // The operator reads them whole.
    for (const r of await reasons(fx.api)) expect(r).toMatch(/partner brand-b/);

    // The event stream applies the same redaction to a partner viewer.
    const enrolled = fx.coord.store.listEnrollments(fed);
    const ev = { type: 'schedule' as const, federationId: fed, at: '', reason: conv.reason };
    const viewer = (sub: string) => ({ principal: { role: 'partner' as const, sub, fed } as never, federation: null });
    expect(eventFor(viewer(ids.get('brand-a')!), ev, enrolled)!.reason).not.toMatch(/brand-b/);
    expect(eventFor(viewer(bId), ev, enrolled)!.reason).toBe(conv.reason);
  });

  it('matches names as whole tokens only, and hides any entry whose free text names another partner', () => {
    expect(mentionedPartner('no decryption share from p_12, p_3', ['p_1'])).toBeNull();
    expect(mentionedPartner('no decryption share from p_12, p_1', ['p_1'])).toBe('p_1');
    expect(redactPartnerNames('partner-1 and partner-10 (partner-1)', ['partner-1', 'partner-10'])).toBe('another partner and another partner (another partner)');
    const who = { partnerId: 'p_a', federationId: 'f', enrollmentIds: new Set(['e_a']), otherPartners: ['p_b', 'brand-b'] };
    const entry = (action: string, data: object, subject: string | null = 's'): AuditEntry => ({ seq: 1, at: 0, actor: 'coordinator', action, subject, data: JSON.stringify({ federationId: 'f', ...data }) });
    expect(partnerMaySeeAuditEntry(entry('schedule.ended', { status: 'done' }), who)).toBe(true);
    expect(partnerMaySeeAuditEntry(entry('schedule.ended', { status: 'failed', reason: 'last: key party p_b dropped' }), who)).toBe(false);
    expect(partnerMaySeeAuditEntry(entry('model.published', { notes: ['from brand-b'] }), who)).toBe(false);
    expect(partnerMaySeeAuditEntry(entry('schedule.ended', { reason: 'partner p_a over its cap' }), who)).toBe(true);
  });
});
