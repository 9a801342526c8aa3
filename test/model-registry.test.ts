import { describe, expect, it } from 'vitest';
import { HttpModelRegistry, type Fetch } from '@fedmart/scenarios';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

await initBackend();

/** A real `fetch` behind a proxy that flips one bit of every weight blob it relays: what a tampering cache or MITM would do. */
const tamperingFetch: Fetch = async (url, init) => {
  const res = await fetch(url, init);
  if (!url.endsWith('/weights')) return res;
  const body = new Uint8Array(await res.arrayBuffer());
  body[body.length >> 1]! ^= 0x01;
  return { ok: res.ok, status: res.status, json: async () => null, arrayBuffer: async () => body.buffer };
};

describe('scenarios read published models through the HTTP model registry', () => {
  it('loads the latest and a numbered version with verified weights', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const p of exp.partners.slice(0, 2)) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false }));
    await Promise.all(agents.map((a) => a.ready));
    await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    const registry = new HttpModelRegistry(fx.url, fx.coord.operatorToken, fetch); // SHA-256 checked by default
    const latest = await registry.load(fed, 'latest');
    const v0 = await registry.load(fed, 0);

    expect(latest.version).toBe(1);
    expect(latest.participants).toHaveLength(2);
    expect(latest.weights.length).toBe(v0.weights.length);
    expect(Array.from(latest.weights)).not.toEqual(Array.from(v0.weights));
    expect(Array.from(latest.weights)).toEqual(Array.from(fx.coord.store.currentModel(fed).weights));
    await expect(registry.load(fed, 9)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(new HttpModelRegistry(fx.url, 'bad', fetch).load(fed, 0)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await Promise.all(agents.map((a) => a.close()));
  });

  it('refuses weights whose SHA-256 does not match the version metadata, with no opt-in needed', async () => {
    // Arrange: a federation's version 0, served through a proxy that flips one bit of the blob.
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
    // Act
    const honest = await new HttpModelRegistry(fx.url, fx.coord.operatorToken, fetch).load(fed, 0);
    const tampered = new HttpModelRegistry(fx.url, fx.coord.operatorToken, tamperingFetch).load(fed, 0);
    // Assert
    expect(honest.weights.length).toBeGreaterThan(0);
    await expect(tampered).rejects.toMatchObject({ code: 'UNPROCESSABLE', message: expect.stringMatching(/do not match their SHA-256.*refusing/) });
  });
});
