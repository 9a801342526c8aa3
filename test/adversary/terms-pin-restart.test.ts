/**
 * Issue 8, "Identity first" (loose end of item 3's session): the terms a
 * partner consented to are pinned in its data dir (`identity.checkTerms`),
 * so they hold across a partner restart. Real coordinator, real agents over
 * Socket.IO, a partner identity re-opened from disk by a fresh process-like
 * start (new PartnerIdentity object, no terms handed in):
 * - after the restart the coordinator presents changed terms in its welcome
 *   (minClients lowered) → the partner refuses to join, naming the change;
 * - after a restart with unchanged terms, a lying coordinator's train
 *   instruction that contradicts them (asks for secure aggregation the terms
 *   do not have) → the partner refuses the round with the reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { isFedmartError } from '@fedmart/shared/errors';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';
import { lyingCoordinator } from './lying-coordinator.ts';

describe('pinned federation terms across a partner restart', () => {
  it('refuses changed welcome terms and a contradicting train instruction after the partner restarts from its data dir', async () => {
    const exp = await bankPartners();
    const dir = mkdtempSync(join(tmpdir(), 'fedmart-terms-pin-'));
    try {
      await using fx = await startFixture();
      const tamper = lyingCoordinator(fx);
      const fed = await fx.createFederation({ model: modelFor(exp), minClients: 1 });
      const token = await fx.enroll(fed, 'brand-a');
      const start = (log?: (m: string) => void) => startPartnerAgent({ coordinatorUrl: fx.url, token, data: exp.partners[0]!.data, reconnect: false, identity: PartnerIdentity.open(dir), ...(log ? { log } : {}) });
      const first = start();
      await first.ready;
      await first.close();

      // Restart 1: same terms; the coordinator lies in the round instruction instead.
      const logs: string[] = [];
      const second = start((m) => logs.push(m));
      await second.ready;
      tamper.train = (t) => ({ ...t, protection: 'secagg' });
      const outcome = await fx.coord.orchestrator.runRound(fed);
      await second.close();
      expect(outcome.phase).toBe('failed');
      expect(second.roundsTrained()).toBe(0);
      expect(logs.join('\n')).toMatch(/training failed: .*protects updates with secagg where the terms say none/);

      // Restart 2: the coordinator now presents lowered terms (written straight to its database).
      tamper.train = (t) => t;
      const row = fx.coord.store.getFederation(fed);
      fx.coord.db.$client.prepare('update federations set config = ? where id = ?').run(JSON.stringify({ ...JSON.parse(row.config), minClients: 2 }), fed);
      const third = await start().ready.catch((e: unknown) => e);
      expect(isFedmartError(third)).toBe(true);
      expect(String((third as Error).message)).toMatch(/different terms .* from those this partner consented to/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('pins the strategy options too: a coordinator that weakens trimmed-mean after consent is refused at the next welcome', async () => {
    const exp = await bankPartners();
    const dir = mkdtempSync(join(tmpdir(), 'fedmart-terms-pin-'));
    try {
      await using fx = await startFixture();
      const fed = await fx.createFederation({ model: modelFor(exp), minClients: 1, strategy: 'trimmed-mean', strategyOptions: { trimBeta: 0.2 } });
      const token = await fx.enroll(fed, 'brand-a');
      const start = () => startPartnerAgent({ coordinatorUrl: fx.url, token, data: exp.partners[0]!.data, reconnect: false, identity: PartnerIdentity.open(dir) });
      const first = start();
      const welcome = await first.ready;
      expect(first.terms()).toMatchObject({ strategy: 'trimmed-mean', strategyOptions: { trimBeta: 0.2 } });
      expect(welcome.terms).toMatchObject({ strategyOptions: { trimBeta: 0.2 } });
      await first.close();

      // The coordinator quietly stops trimming (trimBeta 0: a plain mean one poisoned update can move).
      const row = fx.coord.store.getFederation(fed);
      fx.coord.db.$client.prepare('update federations set config = ? where id = ?').run(JSON.stringify({ ...JSON.parse(row.config), strategyOptions: { trimBeta: 0 } }), fed);
      const second = await start().ready.catch((e: unknown) => e);
      expect(isFedmartError(second)).toBe(true);
      expect(String((second as Error).message)).toMatch(/different terms .* from those this partner consented to/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
