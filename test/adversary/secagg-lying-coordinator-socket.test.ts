/**
 * Issue 8, item 1 over real sockets: the library-level test
 * (secagg-lying-coordinator.test.ts) drives SecAggClient objects directly;
 * this one runs the real coordinator, turned liar by the scripted hook of
 * lying-coordinator.ts, against four real partner agents over Socket.IO.
 * The lie is the review's: the victim is told that survivor u dropped (at
 * the consistency check and at unmasking, consistently), so that it would
 * reveal u's pairwise mask key while the others reveal u's self-mask seed.
 * Only the victim signed that view; the coordinator still sends it an unmask
 * request for it with the signatures it collected (on the others' view), so
 * the victim finds fewer than the required signatures and reveals no share.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';
import { lyingCoordinator } from './lying-coordinator.ts';

describe('secure aggregation against a lying coordinator, over Socket.IO', () => {
  it('a victim told "u dropped" while the others are told "u survived" reveals no share', async () => {
    // Arrange
    const exp = await bankPartners(4);
    await using fx = await startFixture();
    const tamper = lyingCoordinator(fx);
    const orch0 = () => fx.coord.orchestrator;
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 4, secureAggregation: { clip: 4 } } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    let victim = -1;
    let u = -1;
    tamper.secagg = (r) => {
      if (r.stage !== 'consistency-check' && r.stage !== 'unmask') return r;
      const survivors = r.survivors as number[];
      if (victim === -1) {
        victim = Math.min(...survivors);
        u = Math.max(...survivors);
      }
      return r.clientId === victim ? { ...r, survivors: survivors.filter((id) => id !== u) } : r;
    };
    // The honest server code drops the victim once its signature is on another set; a lying coordinator
    // would not: it sends the victim an unmask request for its view, with the signatures it collected.
    const sendTo = new Map<number, (request: Record<string, unknown>) => void>();
    let victimAsked = false;
    const attachLying = orch0().attachClient.bind(orch0());
    orch0().attachClient = (federationId, link) => {
      attachLying(federationId, link);
      const emit = link.emitSecure.bind(link) as (e: string, p: unknown) => void;
      link.emitSecure = ((event: string, payload: unknown) => {
        const r = payload as Record<string, unknown>;
        if (event === 'secagg' && r.stage === 'advertise-keys') sendTo.set(r.clientId as number, (req) => (emit as (e: string, p: unknown) => void)('secagg', req));
        (emit as (e: string, p: unknown) => void)(event, payload);
        if (event === 'secagg' && r.stage === 'unmask' && r.clientId !== victim && !victimAsked) {
          victimAsked = true;
          sendTo.get(victim)?.({ ...r, clientId: victim, survivors: (r.survivors as number[]).filter((id) => id !== u) });
        }
      }) as typeof link.emitSecure;
    };
    const replies: { clientId: number; stage: string; shares?: number }[] = [];
    const orch = fx.coord.orchestrator;
    const accept = orch.acceptSecAggReply.bind(orch);
    orch.acceptSecAggReply = (federationId, partnerId, roundId, payload) => {
      replies.push({ clientId: payload.clientId, stage: payload.stage, ...(payload.stage === 'unmask' ? { shares: payload.shares.length } : {}) });
      accept(federationId, partnerId, roundId, payload);
    };
    const logs: string[] = [];
    const agents: PartnerAgent[] = [];
    for (const p of exp.partners) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false, log: (m) => logs.push(m) }));
    try {
      await Promise.all(agents.map((a) => a.ready));

      // Act
      await orch.runRound(fed);

      // Assert: the lie reached the victim (not vacuous), and it revealed nothing.
      expect(victim).toBeGreaterThan(0);
      expect(replies.some((r) => r.clientId === victim && r.stage === 'masked-input')).toBe(true);
      expect(replies.filter((r) => r.clientId === victim && r.stage === 'unmask')).toEqual([]);
      expect(victimAsked).toBe(true);
      expect(logs.join('\n')).toMatch(/secure aggregation stopped at unmask: .*valid signature\(s\).*refusing to reveal any share/);
      // The honest clients did reach the unmask stage with the view they signed.
      expect(replies.filter((r) => r.stage === 'unmask' && r.clientId !== victim).length).toBeGreaterThan(0);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
  }, 300_000); // hang guard only
});
