/**
 * Issue 8, item 3 (CKKS key custody), step 2: a partner decrypts an
 * "aggregate" only if it carries valid identity signatures from at least the
 * federation's minimum number of distinct partners AND it really is the
 * homomorphic sum of those partners' ciphertexts (each contributor signs the
 * hash of its ciphertexts' public mask polynomials c1 = a; SEAL's addition
 * is deterministic, so a partner re-adds the listed masks and compares them
 * with the aggregate's). The real coordinator is turned liar for three of
 * four real partners in the same round:
 * - partner 0 gets partner 3's individual ciphertext, listing partner 3 alone;
 * - partner 1 gets partner 3's individual ciphertext, listing all four contributors (their real signatures);
 * - partner 2 gets the true sum of two uploads, listing those two (fewer than minClients = 3);
 * - partner 3 gets the honest aggregate and must accept it.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import type { ClientLink } from '@fedmart/coordinator/orchestrator';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';

describe('CKKS aggregates a partner will decrypt', () => {
  it('refuses a forwarded single ciphertext, a mis-listed one and a sum of fewer than the minimum; accepts the honest aggregate', async () => {
    // Arrange
    const exp = await bankPartners(4);
    await using fx = await startFixture();
    const fedId = await fx.createFederation({ model: modelFor(exp), minClients: 3, encryption: 'ckks', keyHolder: exp.partners[0]!.id });
    const orch = fx.coord.orchestrator;
    const order: string[] = []; // partner ids in connection order = agent index
    const uploads = new Map<string, Uint8Array[]>();
    const attach = orch.attachClient.bind(orch);
    orch.attachClient = (federationId: string, link: ClientLink) => {
      order.push(link.partnerId);
      const emit = link.emitSecure.bind(link) as (e: string, p: unknown) => void;
      link.emitSecure = ((event: string, payload: unknown) => {
        if (event !== 'he-aggregate') return emit(event, payload);
        const honest = payload as { chunks: Uint8Array[]; contributors?: { partnerId: string }[] };
        const me = order.indexOf(link.partnerId);
        const p3 = order[3]!;
        const listed = (ids: string[]) => (honest.contributors ?? []).filter((c) => ids.includes(c.partnerId));
        if (me === 0) return emit(event, { ...honest, chunks: uploads.get(p3), contributors: listed([p3]) });
        if (me === 1) return emit(event, { ...honest, chunks: uploads.get(p3), contributors: honest.contributors });
        if (me === 2) {
          void (async () => {
            const two = [order[2]!, p3];
            const { createCkksAggregator } = await import('@fedmart/shared/he/ckks');
            const a = await createCkksAggregator();
            emit(event, { ...honest, chunks: a.addCiphertexts(two.map((id) => uploads.get(id)!)), contributors: listed(two) });
            a.dispose();
          })();
          return;
        }
        emit(event, payload);
      }) as ClientLink['emitSecure'];
      attach(federationId, link);
    };
    const acceptUpload = orch.acceptHeTrainResult.bind(orch) as (...a: unknown[]) => void;
    (orch as unknown as { acceptHeTrainResult: (...a: unknown[]) => void }).acceptHeTrainResult = (...args: unknown[]) => {
      uploads.set(args[1] as string, (args[4] as Uint8Array[]).map((c) => new Uint8Array(c)));
      acceptUpload(...args);
    };
    const ready = new Set<string>();
    const acceptReady = orch.acceptHeReady.bind(orch);
    orch.acceptHeReady = (federationId, partnerId, keyId) => {
      acceptReady(federationId, partnerId, keyId);
      ready.add(partnerId);
    };
    const logs: string[][] = [];
    const agents: PartnerAgent[] = [];
    for (const [i, p] of exp.partners.entries()) {
      logs.push([]);
      agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fedId, p.id), data: p.data, seed: i, reconnect: false, log: (m) => logs[i]!.push(m) }));
      await agents[i]!.ready; // in order, so agent i is order[i]
    }
    try {
      // Every partner holds the key before the round selects, so all four train.
      for (let t = 0; ready.size < 4; t++) {
        if (t > 1200) throw new Error('timed out waiting for every partner to hold the federation key');
        await new Promise((r) => setTimeout(r, 100));
      }
      // Act
      await orch.scheduleRounds(fedId, 1).done;

      // Assert: the three forged aggregates were refused before decryption, the honest one applied.
      const refusal = (i: number) => logs[i]!.find((m) => /encrypted aggregate .* could not be applied/.test(m)) ?? '';
      expect(agents.map((a) => a.currentModel()?.version ?? 0)).toEqual([0, 0, 0, 1]);
      expect(refusal(0)).toMatch(/1 distinct contributor.*at least 3/);
      expect(refusal(1)).toMatch(/not the sum of the listed contributors/);
      expect(refusal(2)).toMatch(/2 distinct contributors.*at least 3/);
      expect(refusal(3)).toBe('');
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
  }, 600_000); // hang guard only
});
