/**
 * Issue 13, item 5: consent by purpose. A real coordinator and real partner agents on the bank data: an
 * enrollment whose stated purposes do not cover the federation's is refused; a partner whose consent does
 * not cover the purpose refuses to take part on its own; the consent and its changes are audited.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

describe('issue 13: consent by purpose', () => {
  it('refuses enrollments and partners whose consent does not cover the federation purpose, and audits the consent', { timeout: 300_000 }, async () => {
    await using fx = await startFixture();
    const exp = await bankPartners();
    const fed = await fx.createFederation({ model: modelFor(exp), purpose: 'purchase-prediction' } as never);
    const enroll = (partner: string, purposes?: string[]) => fx.api.post<{ token: string; enrollment: { id: string } }>(`/api/v1/federations/${fed}/enrollments`, { partner, ...(purposes ? { purposes } : {}) });

    // The operator records what the partner agreed to: an enrollment outside it is refused with the reason.
    await expect(enroll('brand-a', ['recommendation'])).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/purpose is "purchase-prediction", which this partner's consent \(recommendation\) does not cover/) });
    await expect(enroll('brand-a', ['pricing', 'pricing'])).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    const a = await enroll('brand-a', ['purchase-prediction', 'segments']);

    // The partner joins with a consent that covers the purpose …
    const identity = PartnerIdentity.ephemeral();
    const ok = startPartnerAgent({ coordinatorUrl: fx.url, token: a.token, data: exp.partners[0]!.data, reconnect: false, identity, purposes: ['purchase-prediction'] });
    expect((await ok.ready).purpose).toBe('purchase-prediction');
    await ok.close();
    // … then narrows it: its own agent refuses the federation, with the reason.
    const logs: string[] = [];
    const narrowed = startPartnerAgent({ coordinatorUrl: fx.url, token: a.token, data: exp.partners[0]!.data, reconnect: false, identity, purposes: ['recommendation'], log: (m) => logs.push(m) });
    await expect(narrowed.ready).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/refusing to take part in .*"purchase-prediction", which this partner's consent \(recommendation\) does not cover/) });
    await narrowed.close();
    expect(logs.join('\n')).toMatch(/cannot join: refusing to take part/);

    const consent = fx.coord.store.auditLog.entries().filter((e) => e.action.startsWith('partner.consent') || e.action === 'partner.purpose-refused' || e.action === 'enrollment.issued');
    expect(consent.map((e) => [e.action, JSON.parse(e.data!).purposes, JSON.parse(e.data!).previous ?? null])).toEqual([
      ['enrollment.issued', ['purchase-prediction', 'segments'], null],
      ['partner.consent', ['purchase-prediction'], ['purchase-prediction', 'segments']],
      ['partner.consent', ['recommendation'], ['purchase-prediction']],
      ['partner.purpose-refused', ['recommendation'], null],
    ]);
    const p = consent.find((e) => e.action === 'partner.consent')!;
    expect(p.actor).toMatch(/^p_/);
  });
});
