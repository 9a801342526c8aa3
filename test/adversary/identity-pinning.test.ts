/**
 * Issue 8, "Identity first": partner identity keys are bound to the
 * enrollment at first connect and pinned by the other partners on first
 * use; a changed key is refused until the operator re-enrolls that partner
 * and the other partners re-confirm its fingerprint. The federation terms
 * are pinned at consent; changed terms, and an instruction that contradicts
 * them, are refused with the reason. Real coordinator, real sockets, real
 * SQLite; identities in temporary data dirs.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { checkAgainstTerms, federationTerms } from '@fedmart/shared/federation-terms';
import { isFedmartError } from '@fedmart/shared/errors';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';

describe('issue 8: identity keys and federation terms are pinned', () => {
  it('binds a key at first connect, refuses a changed key until re-enrollment, and peers refuse it until they re-confirm', async () => {
    // Arrange
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-identity-'));
    try {
      const exp = await bankPartners();
      await using fx = await startFixture();
      const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
      const tokenA = await fx.enroll(fed, 'brand-a');
      let tokenB = await fx.enroll(fed, 'brand-b');
      const idA = PartnerIdentity.open(path.join(dir, 'a'));
      const idB = PartnerIdentity.open(path.join(dir, 'b'));
      expect((await stat(path.join(dir, 'a', 'identity-key.json'))).mode & 0o777).toBe(0o600);
      expect(PartnerIdentity.open(path.join(dir, 'a')).fingerprint).toBe(idA.fingerprint); // same key after a restart
      const start = (token: string, identity: PartnerIdentity, i: number) => startPartnerAgent({ coordinatorUrl: fx.url, token, data: exp.partners[i]!.data, reconnect: false, identity });
      const b1 = start(tokenB, idB, 1);
      await b1.ready;
      await b1.close();
      const a1 = start(tokenA, idA, 0);
      await a1.ready; // A pins B's key from the welcome
      await a1.close();
      // The operator sees both fingerprints.
      const shown = await fx.api.get<{ identities: { partnerName: string; identityFingerprint: string }[] }>(`/api/v1/federations/${fed}`);
      expect(Object.fromEntries(shown.identities.map((x) => [x.partnerName, x.identityFingerprint]))).toEqual({ 'brand-a': idA.fingerprint, 'brand-b': idB.fingerprint });

      // Act 1: B comes back with another key (a stolen token on another machine, say)
      const idB2 = PartnerIdentity.ephemeral();
      const refused = await start(tokenB, idB2, 1).ready.catch((e: unknown) => e);
      // Assert 1: the coordinator refuses it
      expect(isFedmartError(refused, 'CONFLICT')).toBe(true);
      expect(String((refused as Error).message)).toMatch(/enrollment is bound to .*re-enroll/);

      // Act 2: the operator re-enrolls B, which now binds its new key; A reconnects
      tokenB = await fx.enroll(fed, 'brand-b');
      const b2 = start(tokenB, idB2, 1);
      await b2.ready;
      const a2 = await start(tokenA, idA, 0).ready.catch((e: unknown) => e);
      // Assert 2: A refuses the changed key of B until it re-confirms the fingerprint
      expect(isFedmartError(a2, 'CRYPTO_ERROR')).toBe(true);
      expect(String((a2 as Error).message)).toMatch(new RegExp(`identity key of partner .* changed .*--accept-identity .*=${idB2.fingerprint}`));
      const idAconfirmed = PartnerIdentity.open(path.join(dir, 'a'), { [(a2 as { details: { partnerId: string } }).details.partnerId]: idB2.fingerprint });
      const a3 = start(tokenA, idAconfirmed, 0);
      await a3.ready;
      await Promise.all([a3.close(), b2.close()]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a welcome whose terms differ from those consented to, and instructions that contradict the terms', async () => {
    // Arrange
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
    const token = await fx.enroll(fed, 'brand-a');
    const identity = PartnerIdentity.ephemeral();
    const a1 = startPartnerAgent({ coordinatorUrl: fx.url, token, data: exp.partners[0]!.data, reconnect: false, identity });
    await a1.ready;
    await a1.close();
    // Act: the coordinator's operator quietly lowers minClients (written straight to the database)
    const row = fx.coord.store.getFederation(fed);
    fx.coord.db.$client.prepare('update federations set config = ? where id = ?').run(JSON.stringify({ ...JSON.parse(row.config), minClients: 1 }), fed);
    const again = await startPartnerAgent({ coordinatorUrl: fx.url, token, data: exp.partners[0]!.data, reconnect: false, identity }).ready.catch((e: unknown) => e);
    // Assert
    expect(isFedmartError(again, 'CONFLICT')).toBe(true);
    expect(String((again as Error).message)).toMatch(/different terms .* from those this partner consented to/);
    // Instructions checked against pinned terms (the hook the agent calls on every train instruction)
    const terms = federationTerms({ strategy: 'fedavg', strategyOptions: {}, encryption: 'none', minClients: 3, secureAggregation: { clip: 1, bits: 32 }, dp: { level: 'partner', noiseMultiplier: 1, clip: 1, delta: 1e-5, mode: 'distributed' } as never });
    expect(() => checkAgainstTerms(terms, { protection: undefined, dp: { level: 'partner', delta: 1e-5 } })).toThrow(/protection 'none' but the terms say 'secagg'/);
    expect(() => checkAgainstTerms(terms, { protection: 'secagg', dp: { level: 'record', delta: 1e-5 } })).toThrow(/dp.level = record but the terms say partner/);
    expect(() => checkAgainstTerms(terms, { protection: 'secagg', dp: { level: 'partner', delta: 1e-5 }, participants: 2 })).toThrow(/2 participants but the terms require at least 3/);
    expect(() => checkAgainstTerms(terms, { protection: 'secagg', dp: { level: 'partner', delta: 1e-5 }, participants: 3 })).not.toThrow();
  });
});
