/**
 * The REST API: auth on every call, roles, JSON errors with the right
 * status, persistence across a restart (file-backed SQLite).
 */
import { mkdtemp, rm, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from '@fedmart/coordinator';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { bankPartners, modelFor, startFixture, waitFor } from './helpers.ts';

await initBackend();

async function call(url: string, method: string, p: string, token?: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(url + p, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json: json as { error?: { code: string; message: string } } & Record<string, unknown> };
}

describe('REST API', () => {
  it('answers /healthz without a token and checks the token on every /api/v1 call', async () => {
    await using fx = await startFixture();
    expect((await call(fx.url, 'GET', '/healthz')).json).toMatchObject({ status: 'ok', protocolVersion: 1 });
    const none = await call(fx.url, 'GET', '/api/v1/federations');
    expect(none.status).toBe(401);
    expect(none.json.error).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/Authorization: Bearer/) });
    const garbage = await call(fx.url, 'GET', '/api/v1/federations', 'not-a-jwt');
    expect(garbage.status).toBe(401);
    expect((await call(fx.url, 'GET', '/api/v1/federations', fx.coord.operatorToken)).status).toBe(200);
  });

  it('enforces roles: partner and compliance tokens cannot create federations; partners see only their own', async () => {
    await using fx = await startFixture();
    const fedA = await fx.createFederation({ model: { kind: 'mlp', inputDim: 4, hidden: [2] } }, 'A');
    const fedB = await fx.createFederation({ model: { kind: 'mlp', inputDim: 4, hidden: [2] } }, 'B');
    const partner = await fx.enroll(fedA, 'brand-a');
    const { token: compliance } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
    const body = JSON.stringify({ name: 'x', config: { model: { kind: 'mlp', inputDim: 4, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } } });
    expect((await call(fx.url, 'POST', '/api/v1/federations', partner, body)).status).toBe(403);
    const asCompliance = await call(fx.url, 'POST', '/api/v1/federations', compliance, body);
    expect(asCompliance.status).toBe(403);
    expect(asCompliance.json.error!.message).toMatch(/needs role operator; your token has role compliance/);
    expect((await call(fx.url, 'GET', `/api/v1/federations/${fedA}`, partner)).status).toBe(200);
    expect((await call(fx.url, 'GET', `/api/v1/federations/${fedB}`, partner)).status).toBe(403);
    const list = await call(fx.url, 'GET', '/api/v1/federations', partner);
    expect((list.json.federations as { id: string }[]).map((f) => f.id)).toEqual([fedA]);
    expect((await call(fx.url, 'GET', `/api/v1/federations/${fedA}/enrollments`, compliance)).status).toBe(200);
  });

  it('returns 400/404/413 JSON errors that name the problem', async () => {
    await using fx = await startFixture();
    const op = fx.coord.operatorToken;
    const badJson = await call(fx.url, 'POST', '/api/v1/federations', op, '{"name": ');
    expect(badJson.status).toBe(400);
    expect(badJson.json.error!.message).toMatch(/not valid JSON/);
    const badBody = await call(fx.url, 'POST', '/api/v1/federations', op, JSON.stringify({ name: 'x', config: { model: { kind: 'mlp', inputDim: 0, hidden: [] }, strategy: 'sgd-magic' } }));
    expect(badBody.status).toBe(400);
    expect(badBody.json.error!.code).toBe('BAD_REQUEST');
    expect(badBody.json.error!.message).toMatch(/config\.model\.inputDim/);
    expect(badBody.json.error!.message).toMatch(/config\.strategy/);
    const missing = await call(fx.url, 'GET', '/api/v1/federations/f_nope', op);
    expect(missing.status).toBe(404);
    expect(missing.json.error!.message).toMatch(/federation "f_nope" not found/);
    const huge = await call(fx.url, 'POST', '/api/v1/federations', op, JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    const noRoute = await call(fx.url, 'GET', '/api/v1/nope', op);
    expect(noRoute.status).toBe(404);
    const badVersion = await call(fx.url, 'GET', '/api/v1/federations/f_x/models/-1', op);
    expect(badVersion.status).toBe(400);
    // Nothing was created by any of the refused calls.
    expect(fx.coord.store.listFederations()).toHaveLength(0);
  });

  it('keeps the signing key and data across restarts and marks an interrupted round failed', async () => {
    // Arrange: a file-backed coordinator with a round in progress
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-restart-'));
    try {
      const exp = await bankPartners();
      const brandA = PartnerIdentity.ephemeral();
      let fed: string;
      let partnerToken: string;
      {
        // Not `await using`: this coordinator "crashes" (no graceful shutdown).
        const fx = await startFixture(dir);
        fed = await fx.createFederation({ model: modelFor(exp), minClients: 2, timeouts: { selectingMs: 60_000, trainingMs: 60_000, evaluatingMs: 60_000 } });
        partnerToken = await fx.enroll(fed, 'brand-a');
        const agent = startPartnerAgent({ coordinatorUrl: fx.url, token: partnerToken, data: exp.partners[0]!.data, reconnect: false, identity: brandA });
        await agent.ready;
        // minClients 2 with one client: the round waits in 'selecting' — then the coordinator goes down.
        void fx.coord.orchestrator.scheduleRounds(fed, 1).done;
        await waitFor(() => fx.coord.store.listRounds(fed).some((r) => r.phase === 'selecting'), 120_000, 'round selecting');
        await agent.close();
        expect((await stat(path.join(dir, 'signing-key.jwk'))).mode & 0o777).toBe(0o600);
        // Crash: the sockets and the database go away mid-round; nothing else is written.
        fx.coord.io.close();
        fx.coord.db.$client.close();
      }
      // Act: restart on the same data dir
      const coord = await startCoordinator({ port: 0, dataDir: dir });
      try {
        // Assert: the round is failed(interrupted), version 0 is still current, old tokens still verify
        expect(coord.interruptedRounds).toHaveLength(1);
        const [round] = coord.store.listRounds(fed);
        expect(round!.phase).toBe('failed');
        expect(round!.reason).toMatch(/interrupted/);
        expect(coord.store.currentModel(fed).row.version).toBe(0);
        expect((await coord.authority.verify(partnerToken)).fed).toBe(fed);
        expect((await readFile(path.join(dir, 'operator.token'), 'utf8')).trim()).toBe(coord.operatorToken);
        // and the next round can run
        // brand-a comes back with the identity key it was bound to at first connect.
        const agents = exp.partners.slice(0, 2).map((p, i) => startPartnerAgent({ coordinatorUrl: coord.url, token: i === 0 ? partnerToken : '', data: p.data, reconnect: false, ...(i === 0 ? { identity: brandA } : {}) }));
        await agents[0]!.ready;
        await agents[1]!.close();
        const res = await fetch(`${coord.url}/api/v1/federations/${fed}/enrollments`, { method: 'POST', headers: { authorization: `Bearer ${coord.operatorToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ partner: 'brand-b' }) });
        const { token } = (await res.json()) as { token: string };
        const b = startPartnerAgent({ coordinatorUrl: coord.url, token, data: exp.partners[1]!.data, reconnect: false });
        await b.ready;
        const [next] = await coord.orchestrator.scheduleRounds(fed, 1).done;
        expect(next!.phase).toBe('committed');
        expect(next!.round).toBe(2);
        expect(coord.store.currentModel(fed).row.version).toBe(1);
        expect(coord.store.verifyAudit().ok).toBe(true);
        await Promise.all([agents[0]!.close(), b.close()]);
      } finally {
        await coord.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on a port that is in use, with a message naming the fix', async () => {
    await using fx = await startFixture();
    await expect(startCoordinator({ port: fx.coord.port, dataDir: null })).rejects.toMatchObject({ code: 'CONFIG_ERROR', message: expect.stringMatching(/already in use; pass --port/) });
  });

  it('keeps the audit log append-only and hash-chained', async () => {
    await using fx = await startFixture();
    await fx.createFederation({ model: { kind: 'mlp', inputDim: 4, hidden: [] } });
    expect(fx.coord.store.verifyAudit()).toMatchObject({ ok: true });
    const sqlite = fx.coord.db.$client;
    expect(() => sqlite.prepare("UPDATE audit_log SET actor = 'mallory'").run()).toThrow(/append-only/);
    expect(() => sqlite.prepare('DELETE FROM audit_log').run()).toThrow(/append-only/);
    const { entries, chain } = await fx.api.get<{ entries: { action: string }[]; chain: { ok: boolean } }>('/api/v1/audit');
    expect(chain.ok).toBe(true);
    expect(entries.map((e) => e.action)).toContain('federation.created');
  });
});
