/**
 * The `/federation` socket reads and writes through the async store (issue 15): a store call that
 * fails (a lost PostgreSQL connection, say) in one partner's handshake or hello answers that socket
 * with the one-line error and leaves every other socket served. Real coordinator on port 0, real
 * Socket.IO clients; the failure is injected into the coordinator's own async store.
 */
import { describe, expect, it } from 'vitest';
import { emitMsg, hello, rawClient, startFixture } from './helpers.ts';

describe('a failed store call on the federation socket', () => {
  it('answers the failing hello and handshake with one line and keeps serving the other partners', async () => {
    // Arrange
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: 3, hidden: [] } });
    const acme = await fx.enroll(fed, 'acme');
    const beta = await fx.enroll(fed, 'beta');
    const store = fx.coord.asyncStore;
    const acmeEnrollment = (await store.listEnrollments(fed)).find((e) => e.partnerName === 'acme')!.id;
    const seen = store.markEnrollmentSeen.bind(store);
    store.markEnrollmentSeen = async (id, n) => {
      if (id === acmeEnrollment) throw new Error('connection terminated unexpectedly');
      return seen(id, n);
    };

    // Act: acme's hello hits the failing write; beta's does not
    const a = await rawClient(fx.url, acme);
    const protocolErrors: { code: string; message: string }[] = [];
    a.on('protocol-error', (e: { code: string; message: string }) => protocolErrors.push(e));
    const failed = await emitMsg(a, hello(50));
    const b = await rawClient(fx.url, beta);
    const welcomed = new Promise((resolve) => b.once('welcome', resolve));
    const ok = await emitMsg(b, hello(60));

    // Assert: one line for acme, beta served and attached, acme not
    expect(failed.ok).toBe(false);
    expect(failed.error!.message).toMatch(/connection terminated unexpectedly/);
    expect(failed.error!.message).not.toMatch(/\n/);
    await expect.poll(() => protocolErrors.length).toBe(1);
    expect(protocolErrors[0]).toEqual(failed.error);
    expect(ok).toEqual({ ok: true });
    await welcomed;
    expect(fx.coord.orchestrator.connectedClients(fed).map((c) => c.partnerName)).toEqual(['beta']);

    // Act: the store recovers; acme's next hello on the same socket is served
    store.markEnrollmentSeen = seen;
    const again = await emitMsg(a, hello(50, 1));

    // Assert
    expect(again).toEqual({ ok: true });
    expect(fx.coord.orchestrator.connectedClients(fed).map((c) => c.partnerName).sort()).toEqual(['acme', 'beta']);

    // Act: a handshake whose enrollment lookup fails
    const find = store.findEnrollmentByToken.bind(store);
    store.findEnrollmentByToken = async () => { throw new Error('the database system is shutting down'); };
    const refused = await rawClient(fx.url, acme).then(() => null, (e: Error & { data?: { code: string; message: string } }) => e.data);
    store.findEnrollmentByToken = find;

    // Assert: refused with the reason (not as a bad token); the connected partners stay
    expect(refused).toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/shutting down/) });
    expect(fx.coord.orchestrator.connectedClients(fed)).toHaveLength(2);
    a.disconnect();
    b.disconnect();
  });
});
