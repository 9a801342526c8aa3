/**
 * The compliance API over real HTTP: role checks (partner → 403, operator
 * reads but cannot set caps), caps with history, per-partner budgets,
 * refused rounds, JSON and CSV export, clear 400s for bad input.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

await initBackend();

async function call(url: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* CSV */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
}

describe('compliance API', () => {
  it('enforces roles, sets caps with history and exports the ledger as JSON and CSV', async () => {
    // Arrange: a record-level DP federation with one committed round
    const exp = await bankPartners();
    await using fx = await startFixture();
    const config = { model: modelFor(exp), minClients: 3, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 }, dp: { level: 'record', noiseMultiplier: 1.2, clip: 1, delta: 1e-5 } };
    const fed = await fx.createFederation(config as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
    const tokens: string[] = [];
    const agents = [];
    for (const p of exp.partners) {
      tokens.push(await fx.enroll(fed, p.id));
      agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: tokens.at(-1)!, data: p.data, reconnect: false }));
    }
    await Promise.all(agents.map((a) => a.ready));
    await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    const { token: compliance } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer@example' });
    const operator = fx.coord.operatorToken;
    const base = `/api/v1/federations/${fed}/privacy`;

    // Act + Assert: roles
    const asPartner = await call(fx.url, 'GET', base, tokens[0]!);
    expect(asPartner.status).toBe(403);
    expect(asPartner.json.error.message).toMatch(/needs role compliance or operator; your token has role partner/);
    expect((await call(fx.url, 'PUT', `${base}/caps`, tokens[0]!, { level: 'record', epsilon: 5 })).status).toBe(403);
    const opPut = await call(fx.url, 'PUT', `${base}/caps`, operator, { level: 'record', epsilon: 5 });
    expect(opPut.status).toBe(403);
    expect((await call(fx.url, 'GET', base, operator)).status).toBe(200);
    expect((await call(fx.url, 'GET', base, 'not-a-token')).status).toBe(401);

    // caps: set federation and partner caps, then change one; history keeps all
    const partnerId = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'partner-2')!.partnerId;
    expect((await call(fx.url, 'PUT', `${base}/caps`, compliance, { level: 'record', epsilon: 8 })).status).toBe(200);
    expect((await call(fx.url, 'PUT', `${base}/caps`, compliance, { level: 'record', epsilon: 3, partnerId })).status).toBe(200);
    const put = await call(fx.url, 'PUT', `${base}/caps`, compliance, { level: 'record', epsilon: 6 });
    expect(put.json.caps).toHaveLength(2);
    const caps = await call(fx.url, 'GET', `${base}/caps`, operator);
    expect(caps.json.caps.find((c: any) => c.partnerId === null).epsilon).toBe(6);
    expect(caps.json.history.map((h: any) => h.epsilon)).toEqual([8, 3, 6]);
    expect(caps.json.history[0].setBy).toBe('officer@example');

    // bad input: clear 400s / 404s, nothing changes
    const bad = await call(fx.url, 'PUT', `${base}/caps`, compliance, { level: 'device', epsilon: -1 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/level/);
    expect((await call(fx.url, 'PUT', `${base}/caps`, compliance, { level: 'record', epsilon: 2, partnerId: 'p_nobody' })).status).toBe(404);
    expect((await call(fx.url, 'GET', `${base}?format=xml`, compliance)).status).toBe(400);
    expect((await call(fx.url, 'GET', '/api/v1/federations/f_missing/privacy', compliance)).status).toBe(404);
    expect((await call(fx.url, 'GET', `${base}/caps`, compliance)).json.history).toHaveLength(3);

    // report JSON
    const report = await call(fx.url, 'GET', base, compliance);
    expect(report.json.accountant).toBe('rdp');
    expect(report.json.verification.ok).toBe(true);
    expect(report.json.totals.filter((t: any) => t.scope === 'partner')).toHaveLength(3);
    expect(report.json.totals.find((t: any) => t.partnerId === partnerId).cap).toBe(3);
    const one = await call(fx.url, 'GET', `${base}/partners/${partnerId}`, compliance);
    expect(one.status).toBe(200);
    expect(one.json.history).toHaveLength(1);
    expect(one.json.totals[0].epsilon).toBeGreaterThan(0);
    expect((await call(fx.url, 'GET', `${base}/refused`, compliance)).json.rounds).toEqual([]);

    // CSV export
    const csv = await call(fx.url, 'GET', `${base}?format=csv`, compliance);
    expect(csv.status).toBe(200);
    expect(csv.type).toMatch(/^text\/csv/);
    const lines = csv.text.trim().split('\r\n');
    expect(lines[0]).toBe('id,createdAt,round,roundId,modelVersion,level,kind,committed,scope,partnerId,partnerName,epsilon,delta,sigma,updateSigma,countStd,q,steps,clip,reason');
    expect(lines).toHaveLength(1 + 4); // 3 partners + the federation row
    const cols = lines[1]!.split(',');
    expect(cols[5]).toBe('record');
    expect(cols[6]).toBe('spent');
    expect(cols[7]).toBe('true');
    expect(Number(cols[11])).toBeGreaterThan(0);
    expect(Number(cols[13])).toBe(1.2);
    await Promise.all(agents.map((a) => a.close()));
  });
});
