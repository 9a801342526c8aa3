/**
 * Issue 8, item 3 (CKKS key custody), step 1: the man-in-the-middle
 * re-wrapping from the review. The real coordinator is turned into an
 * attacker (hooks on its links and message handlers): it substitutes its own
 * X25519 key for the victim partner's in the key holder's wrap request,
 * unwraps what the holder wrapped "for the victim", and re-wraps it to the
 * victim under its own key; it then also tries to hand the victim a
 * federation key of its own making (so the victim would encrypt its update to
 * a key the coordinator holds). The partner agents are the real ones over
 * Socket.IO. With signed partner keys and holder-signed wraps both fail: the
 * coordinator never holds a usable federation key, the victim never takes a
 * key the pinned holder did not sign, and an honest third partner still
 * receives the real key.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import type { ClientLink } from '@fedmart/coordinator/orchestrator';
import { generateX25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { createCkksContext } from '@fedmart/shared/he/ckks';
import { unwrapSecretKey, wrapSecretKey } from '@fedmart/shared/he/key-custody';
import { keyWrapAssociatedData } from '@fedmart/shared/protocol-secure';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';

async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('CKKS key custody against a lying coordinator', () => {
  it('the man-in-the-middle re-wrapping fails: the coordinator gets no federation key and the victim takes none the pinned holder did not sign', async () => {
    // Arrange
    const exp = await bankPartners(3);
    await using fx = await startFixture();
    const holderName = exp.partners[0]!.id;
    const fedId = await fx.createFederation({ model: modelFor(exp), minClients: 3, encryption: 'ckks', keyHolder: holderName });
    const orch = fx.coord.orchestrator;
    const attacker = generateX25519KeyPair();
    const links = new Map<string, ClientLink>();
    const partnerKeys = new Map<string, Uint8Array>();
    const readies: { partnerId: string; keyId: string }[] = [];
    let victim: string | null = null;
    let holderId: string | null = null;
    let stolen: Uint8Array | null = null;
    let fakeKeyId: string | null = null;
    let wrapsForVictim = 0;

    const attach = orch.attachClient.bind(orch);
    orch.attachClient = (federationId: string, link: ClientLink) => {
      links.set(link.partnerId, link);
      const emit = link.emitSecure.bind(link) as (e: string, p: unknown) => void;
      link.emitSecure = ((event: string, payload: unknown) => {
        if (event === 'he-setup') holderId = (payload as { keyHolderId: string }).keyHolderId;
        // Step 1 of the attack: ask the holder to wrap the victim's copy to the coordinator's own key.
        if (event === 'he-wrap' && (payload as { to: string }).to === victim) payload = { ...(payload as object), publicKey: attacker.publicKey };
        emit(event, payload);
      }) as ClientLink['emitSecure'];
      attach(federationId, link);
    };
    const acceptKey = orch.acceptHePartnerKey.bind(orch);
    orch.acceptHePartnerKey = (federationId, partnerId, publicKey, ...rest: unknown[]) => {
      partnerKeys.set(partnerId, publicKey.slice());
      if (victim === null && holderId !== null && partnerId !== holderId) victim = partnerId;
      (acceptKey as (...a: unknown[]) => void)(federationId, partnerId, publicKey, ...rest);
      if (partnerId === victim && fakeKeyId === null) {
        // Step 3: hand the victim a federation key the coordinator made itself.
        fakeKeyId = 'f'.repeat(32);
        void (async () => {
          const ctx = await createCkksContext();
          const own = ctx.keygen().secretKey;
          const wrapped = wrapSecretKey(own, publicKey, attacker, keyWrapAssociatedData(fedId, fakeKeyId!, partnerId));
          links.get(partnerId)!.emitSecure('he-key', { keyId: fakeKeyId!, holderPublicKey: attacker.publicKey, holderIdentityKey: links.get(holderId!)!.identityKey!, recipientPublicKey: publicKey, wrapped, signature: new Uint8Array(64).fill(7) } as never);
        })();
      }
    };
    const acceptWrapped = orch.acceptHeWrapped.bind(orch);
    orch.acceptHeWrapped = (federationId, from, to, keyId, wrapped, ...rest: unknown[]) => {
      if (to !== victim) return (acceptWrapped as (...a: unknown[]) => void)(federationId, from, to, keyId, wrapped, ...rest);
      wrapsForVictim++;
      // Step 2: open the copy the holder wrapped to the coordinator's key, re-wrap it to the victim.
      try {
        stolen = unwrapSecretKey(wrapped, attacker, partnerKeys.get(from)!, keyWrapAssociatedData(fedId, keyId, to));
      } catch {
        return;
      }
      const rewrapped = wrapSecretKey(stolen, partnerKeys.get(to)!, attacker, keyWrapAssociatedData(fedId, keyId, to));
      const sig = (rest[0] as Uint8Array | undefined) ?? new Uint8Array(64);
      links.get(to)!.emitSecure('he-key', { keyId, holderPublicKey: attacker.publicKey, holderIdentityKey: links.get(from)!.identityKey!, recipientPublicKey: partnerKeys.get(to)!, wrapped: rewrapped, signature: sig } as never);
    };
    const acceptReady = orch.acceptHeReady.bind(orch);
    orch.acceptHeReady = (federationId, partnerId, keyId) => {
      readies.push({ partnerId, keyId });
      acceptReady(federationId, partnerId, keyId);
    };

    const logs = new Map<string, string[]>();
    const agents: PartnerAgent[] = [];
    for (const [i, p] of exp.partners.entries()) {
      logs.set(p.id, []);
      agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fedId, p.id), data: p.data, seed: i, reconnect: false, log: (m) => logs.get(p.id)!.push(m) }));
      // Connect one at a time so the victim (the first non-holder) is known before the wrap requests go out.
      await agents[i]!.ready;
      await until(() => partnerKeys.size === i + 1, `partner ${i}'s key`);
    }

    // Act: let the custody run; the honest third partner must end up with the real key.
    const realKeyId = () => readies.find((r) => r.partnerId === holderId)?.keyId;
    const third = () => [...partnerKeys.keys()].find((p) => p !== holderId && p !== victim)!;
    await until(() => realKeyId() !== undefined && readies.some((r) => r.partnerId === third() && r.keyId === realKeyId()), 'the honest partner to hold the real key');
    // The victim answers (or ignores) both forged keys; give its refusals time to show.
    await until(() => readies.some((r) => r.partnerId === victim && r.keyId === fakeKeyId) || [...logs.values()].some((l) => l.some((m) => /key custody \(key\) failed/.test(m))), 'the victim to answer the forged key');
    await new Promise((r) => setTimeout(r, 2000));

    // Assert
    expect(stolen, 'the coordinator unwrapped the federation key').toBeNull();
    expect(readies.filter((r) => r.partnerId === victim), 'the victim took a key the pinned holder did not sign').toEqual([]);
    const all = [...logs.values()].flat().join('\n');
    expect(all).toMatch(/key custody \(wrap\) failed: .*signature/i);
    expect(all).toMatch(/key custody \(key\) failed: .*signature/i);
    expect(wrapsForVictim).toBe(0);
    await Promise.all(agents.map((a) => a.close()));
  }, 300_000);
});
