/**
 * Issue 8, item 11: the network edge. Nothing answers an unauthenticated
 * Socket.IO client; operator and compliance tokens carry a jti and can be
 * revoked (REST and handshakes refuse them at once); a restart reuses the
 * operator token instead of minting another long-lived one, and rotation
 * revokes the old one; the data dir is 0700 and its secrets 0600 after every
 * start; an unresolvable --host is a one-line error.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '@fedmart/coordinator';
import { rawClient, startFixture } from '../helpers.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'fedmart.js');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-edge-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Connect to a namespace; resolve with the refusal's `data`, or null when the connection was accepted. */
function handshake(url: string, auth?: { token: string }): Promise<{ code: string; message: string } | null> {
  return new Promise((resolve) => {
    const s = io(url, { ...(auth ? { auth } : {}), transports: ['websocket'], reconnection: false, timeout: 5_000 });
    s.once('connect', () => {
      s.disconnect();
      resolve(null);
    });
    s.once('connect_error', (e: Error & { data?: { code: string; message: string } }) => {
      s.disconnect();
      resolve(e.data ?? { code: 'NONE', message: e.message });
    });
  });
}

async function call(url: string, method: string, p: string, token: string, body?: unknown) {
  const res = await fetch(url + p, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
}

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('issue 8 item 11: the network edge', () => {
  it('the default Socket.IO namespace refuses unauthenticated connections', async () => {
    await using fx = await startFixture();
    expect(await handshake(fx.url)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/missing token/) });
    expect(await handshake(fx.url, { token: 'not-a-jwt' })).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await handshake(fx.url, { token: fx.coord.operatorToken })).toBeNull();
  });

  it('operator and compliance tokens carry a jti and an operator can revoke them (REST and Socket.IO)', async () => {
    // Arrange: a compliance token, a second operator token and a partner token
    await using fx = await startFixture();
    const op = fx.coord.operatorToken;
    const fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: 3, hidden: [] } });
    const compliance = await call(fx.url, 'POST', '/api/v1/tokens', op, { role: 'compliance', subject: 'officer' });
    const deputy = await call(fx.url, 'POST', '/api/v1/tokens', op, { role: 'operator', subject: 'deputy' });
    expect(compliance.json.jti).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    const complianceToken = compliance.json.token as string;
    const deputyToken = deputy.json.token as string;
    const partnerToken = await fx.enroll(fed, 'brand-a');
    const partnerJti = (await fx.coord.authority.verify(partnerToken)).jti!;
    expect((await call(fx.url, 'GET', `/api/v1/federations/${fed}/enrollments`, complianceToken)).status).toBe(200);
    expect((await call(fx.url, 'GET', '/api/v1/federations', deputyToken)).status).toBe(200);
    expect(await handshake(fx.url, { token: deputyToken })).toBeNull();

    // Act: the operator revokes all three; only an operator may
    expect((await call(fx.url, 'DELETE', `/api/v1/tokens/${compliance.json.jti as string}`, complianceToken)).status).toBe(403);
    for (const jti of [compliance.json.jti as string, deputy.json.jti as string, partnerJti]) {
      const r = await call(fx.url, 'DELETE', `/api/v1/tokens/${jti}`, op);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ revoked: jti });
    }

    // Assert: refused at REST and at both Socket.IO namespaces; the operator's own token still works
    const refused = await call(fx.url, 'GET', `/api/v1/federations/${fed}/enrollments`, complianceToken);
    expect(refused.status).toBe(401);
    expect(refused.json.error!.message).toMatch(/revoked/);
    expect((await call(fx.url, 'GET', '/api/v1/federations', deputyToken)).status).toBe(401);
    expect((await call(fx.url, 'GET', `/api/v1/federations/${fed}`, partnerToken)).status).toBe(401);
    expect(await handshake(fx.url, { token: deputyToken })).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/revoked/) });
    await expect(rawClient(fx.url, partnerToken)).rejects.toMatchObject({ data: { code: 'UNAUTHENTICATED', message: expect.stringMatching(/revoked/) } });
    expect((await call(fx.url, 'GET', '/api/v1/federations', op)).status).toBe(200);
    // Unknown jti and bad input are clear errors; the revocations are audited.
    expect((await call(fx.url, 'DELETE', '/api/v1/tokens/not-a-jti', op)).status).toBe(400);
    expect(fx.coord.store.listAudit(100, 0).filter((e) => e.action === 'token.revoked')).toHaveLength(3);
  });

  it('a restart reuses the operator token; --rotate-operator-token mints a new one and revokes the old', async () => {
    const dataDir = path.join(dir, 'reuse');
    const first = await startCoordinator({ port: 0, dataDir });
    const token1 = first.operatorToken;
    await first.close();
    const second = await startCoordinator({ port: 0, dataDir });
    expect(second.operatorToken).toBe(token1);
    await second.close();

    const third = await startCoordinator({ port: 0, dataDir, rotateOperatorToken: true });
    try {
      expect(third.operatorToken).not.toBe(token1);
      expect((await readFile(path.join(dataDir, 'operator.token'), 'utf8')).trim()).toBe(third.operatorToken);
      expect((await call(third.url, 'GET', '/api/v1/federations', token1)).status).toBe(401);
      expect((await call(third.url, 'GET', '/api/v1/federations', third.operatorToken)).status).toBe(200);
    } finally {
      await third.close();
    }
  });

  it('creates the data dir 0700 and makes the database, key and token files 0600 at every start', async () => {
    // Arrange: a pre-existing, too-open data dir with too-open files from an earlier start
    const dataDir = path.join(dir, 'modes');
    const fresh = await startCoordinator({ port: 0, dataDir });
    await fresh.close();
    const files = ['fedmart.db', 'signing-key.jwk', 'operator.token'];
    for (const f of files) expect(await mode(path.join(dataDir, f)), f).toBe(0o600);
    expect(await mode(dataDir)).toBe(0o700);
    await chmod(dataDir, 0o755);
    for (const f of files) await chmod(path.join(dataDir, f), 0o644);

    // Act
    const again = await startCoordinator({ port: 0, dataDir });
    try {
      // Assert
      expect(await mode(dataDir)).toBe(0o700);
      for (const f of [...files, 'fedmart.db-wal', 'fedmart.db-shm']) expect(await mode(path.join(dataDir, f)), f).toBe(0o600);
    } finally {
      await again.close();
    }
    // A brand-new nested data dir is created 0700 too.
    const nested = path.join(dir, 'a', 'b');
    await mkdir(path.join(dir, 'a'));
    const n = await startCoordinator({ port: 0, dataDir: nested });
    await n.close();
    expect(await mode(nested)).toBe(0o700);
  });

  it('fedmart coordinator --host with an unresolvable host is a one-line error', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'coordinator', '--host', 'no-such-host.invalid', '--port', '0', '--data-dir', path.join(dir, 'host')], { timeout: 60_000 }, (err, _stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--host "no-such-host\.invalid".*(resolve|address)/);
  });
});
