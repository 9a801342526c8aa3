/**
 * Issue 8, item 11 (weights integrity): model weights are checked against
 * their stored SHA-256 before they are served or used as a base model, and a
 * mismatch is an error, not silent corruption.
 *
 * The attacker has write access to the coordinator's SQLite file (a stolen
 * backup restored, a shared disk, a compromised host account) and rewrites
 * the current model's weight blob in place, with its own better-sqlite3
 * connection, keeping the length so that nothing "looks" wrong: one weight
 * becomes 1e30, a poisoned model every partner would train from.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { bankPartners, modelFor, startFixture } from '../helpers.ts';

await initBackend();

describe('adversary: a weight blob rewritten in the database file (issue 8, item 11)', () => {
  it('is refused by GET …/weights and as the next round\'s base model, and the round runs again once the blob is restored', async () => {
    // Arrange: a coordinator on a real SQLite file, a federation (version 0 is its current model) and two connected partners.
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-integrity-'));
    try {
      const exp = await bankPartners();
      await using fx = await startFixture(dir);
      const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
      const agents = await Promise.all(exp.partners.slice(0, 2).map(async (p) => startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false })));
      await Promise.all(agents.map((a) => a.ready));
      const get = (p: string) => fetch(`${fx.url}/api/v1/federations/${fed}/models/0${p}`, { headers: { authorization: `Bearer ${fx.coord.operatorToken}` } });
      const original = Buffer.from(await (await get('/weights')).arrayBuffer());

      // Act 1: the attacker rewrites the blob through its own connection to the file.
      const attacker = new Database(path.join(dir, 'fedmart.db'));
      const poisoned = Buffer.from(original);
      poisoned.writeFloatLE(1e30, 0);
      attacker.prepare('UPDATE model_versions SET weights = ? WHERE federation_id = ? AND version = 0').run(poisoned, fed);
      const served = await get('/weights');
      const body = (await served.json()) as { error: { code: string; message: string } };
      const [refused] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

      // Assert 1: an error naming the problem and the fix, never the poisoned bytes; the round is refused before any training.
      expect(served.status).toBe(503);
      expect(served.headers.get('content-type')).toMatch(/json/);
      expect(body.error.code).toBe('UNAVAILABLE');
      expect(body.error.message).toMatch(/model version 0 .* is corrupted: its stored weights do not match their SHA-256.*restore the data dir from a backup/);
      expect(refused).toMatchObject({ phase: 'failed', participants: [] });
      expect(refused!.modelVersion).toBeUndefined();
      expect(refused!.reason).toMatch(/refused before any training: model version 0 .* do not match their SHA-256/);
      const rounds = (await (await fetch(`${fx.url}/api/v1/federations/${fed}/rounds`, { headers: { authorization: `Bearer ${fx.coord.operatorToken}` } })).json()) as { rounds: { phase: string; reason: string | null }[] };
      expect(rounds.rounds.at(-1)).toMatchObject({ phase: 'failed', reason: refused!.reason });
      expect(fx.coord.store.getFederation(fed).currentModelVersionId).toBe(fx.coord.store.getModelByNumber(fed, 0).id); // nothing was committed over it
      expect((await get('')).status).toBe(200); // metadata stays readable: the operator can see which version is damaged

      // Act 2: the operator restores the blob (as from a backup).
      attacker.prepare('UPDATE model_versions SET weights = ? WHERE federation_id = ? AND version = 0').run(original, fed);
      attacker.close();
      const [again] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
      // Assert 2: nothing was lost — the same federation trains on.
      expect(again).toMatchObject({ phase: 'committed', modelVersion: 1 });
      expect(Buffer.from(await (await get('/weights')).arrayBuffer()).equals(original)).toBe(true);
      await Promise.all(agents.map((a) => a.close()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
