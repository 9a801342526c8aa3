/**
 * Issue 15: the secrets several coordinators must share live in their PostgreSQL (coordinator/src/shared-secrets.ts),
 * exercised as an operator runs them: real `fedmart coordinator` processes (bin/fedmart.js) on a throwaway PostgreSQL 15.
 *
 * - Two `--cluster` coordinators started at once with DIFFERENT empty data dirs agree on one set: the operator token
 *   is the same and works at both, a partner token issued through one is accepted by the other, every audit head is
 *   signed by one log key.
 * - Upgrade: a database whose coordinator kept its secrets in its data dir imports that data dir's files (the log key
 *   partners pinned, the signing key of the tokens out there, the operator token) instead of generating new ones; a
 *   coordinator without that log key starting first is refused, writing nothing.
 * - Envelope encryption: --migrate-only without a KEK stores rows unwrapped; a coordinator with FEDMART_KEY_ENCRYPTION_KEY
 *   refuses them (one line naming --migrate-only); --migrate-only with the KEK wraps them; the coordinator then serves
 *   with the same secrets; a wrong KEK, no KEK, a malformed KEK are one-line errors.
 * Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { bytesToHex } from '@fedmart/shared/crypto/bytes';
import { TokenAuthority } from '../coordinator/src/auth.ts';
import { openLogKey } from '../coordinator/src/log-key.ts';
import { operatorTokenAtStart } from '../coordinator/src/operator-token.ts';
import { PgStore } from '../coordinator/src/db/store-pg.ts';
import { unwrapSecret, wrapSecret } from '../coordinator/src/shared-secrets.ts';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { RdpAccountant } from '@fedmart/shared/dp/rdp';
import { refuseRoundOverBudget, roundSpendPlan } from '../coordinator/src/privacy.ts';
import { freePort, type PgCluster } from '../coordinator/src/db/pg-cluster.ts';
import { ApiClient } from '../cli/api-client.ts';
import { waitForLine } from './helpers.ts';
import { usePgClusterAndTmpDir } from './pg-tmp.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const HANG_GUARD = 300_000;
const KEK = 'FEDMART_KEY_ENCRYPTION_KEY';
const CONFIG = { model: { kind: 'mlp' as const, inputDim: 4, hidden: [8] }, minClients: 1, localTrain: { localEpochs: 1, batchSize: 16, learningRate: 0.05, proximalMu: 0 } };

let cluster: PgCluster | null = null;
let tmp = '';
const pgBin = usePgClusterAndTmpDir('issue-15 shared secrets', 'fedmart-secrets-', (c, d) => { cluster = c; tmp = d; }, HANG_GUARD);

const baseEnv = (env: Record<string, string>) => ({ ...process.env, FEDMART_DATABASE_URL: '', [KEK]: '', ...env });

/** A database of its own for one case. */
async function database(name: string): Promise<string> {
  const admin = new pg.Client(cluster!.url);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return cluster!.url.replace(/\/postgres$/, `/${name}`);
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client(url);
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** `fedmart …` to its exit. */
function fedmart(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: baseEnv(env), timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout, stderr });
    });
  });
}

interface Proc { child: ChildProcess; url: string; output: () => string; stop(): Promise<void> }

/** A serving `fedmart coordinator` process (stopped with SIGTERM, a clean shutdown). */
async function serve(dataDir: string, dbUrl: string, o: { cluster?: string; env?: Record<string, string> } = {}): Promise<Proc> {
  const port = await freePort();
  const args = ['coordinator', '--database', dbUrl, '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn', ...(o.cluster ? ['--cluster', '--coordinator-id', o.cluster, '--advertise-url', `http://127.0.0.1:${port}`] : [])];
  const child = spawn(process.execPath, [BIN, ...args], { env: baseEnv(o.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForLine(child, /listening on http:\/\/\S+/, 120_000).catch((err: Error) => { child.kill('SIGKILL'); throw new Error(`${err.message}\n${out}`); });
  return { child, url: `http://127.0.0.1:${port}`, output: () => out, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

const operatorToken = async (dataDir: string) => (await readFile(path.join(dataDir, 'operator.token'), 'utf8')).trim();
const oneLine = (s: string) => s.trim().split('\n').length === 1;

describe.skipIf(pgBin === null)('issue 15: the coordinators of one PostgreSQL share one set of secrets, kept in it', () => {
  it('two --cluster coordinators with different empty data dirs, started at once: one operator token, partner tokens verify at either, every audit head signed by one key', async () => {
    // Arrange: one database, two empty data dirs
    const url = await database('shared_two');
    const dirA = path.join(tmp, 'two-a'), dirB = path.join(tmp, 'two-b');

    // Act: start both at once
    const [a, b] = await Promise.all([serve(dirA, url, { cluster: 'coord-a' }), serve(dirB, url, { cluster: 'coord-b' })]);
    try {
      const tokenA = await operatorToken(dirA), tokenB = await operatorToken(dirB);
      const apiA = new ApiClient(a.url, tokenA), apiB = new ApiClient(b.url, tokenB);
      const fed = (await apiA.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'shared secrets', config: CONFIG })).federation.id;
      const { token: partnerToken } = await apiA.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: 'brand-1' });
      const seenByB = await new ApiClient(b.url, partnerToken).get<{ federation: { id: string } }>(`/api/v1/federations/${fed}`);
      const sthA = (await apiA.get<{ head: { publicKey: string } }>('/api/v1/audit/sth')).head, sthB = (await apiB.get<{ head: { publicKey: string } }>('/api/v1/audit/sth')).head;

      // Assert: one operator token (valid at both), the partner token issued via A accepted by B, one log key
      expect(tokenB).toBe(tokenA);
      expect((await new ApiClient(b.url, tokenA).get<{ federations: unknown[] }>('/api/v1/federations')).federations).toHaveLength(1);
      expect(seenByB.federation.id).toBe(fed);
      const keys = await query<{ public_key: string; n: number }>(url, 'SELECT public_key, count(*)::int AS n FROM audit_tree_heads GROUP BY public_key');
      expect(keys).toHaveLength(1);
      expect(keys[0]!.n).toBeGreaterThanOrEqual(4); // both coordinators appended (token issued, two starts, the federation…)
      expect([sthA.publicKey, sthB.publicKey]).toEqual([keys[0]!.public_key, keys[0]!.public_key]);
      // The keys live in PostgreSQL, not in the data dirs (which only hold a copy of the operator token)
      for (const dir of [dirA, dirB]) expect([existsSync(path.join(dir, 'signing-key.jwk')), existsSync(path.join(dir, 'log-key.json'))]).toEqual([false, false]);
      expect((await query<{ name: string }>(url, 'SELECT name FROM fedmart_secrets ORDER BY name')).map((r) => r.name)).toEqual(['log-key', 'operator-token', 'signing-key']);
      // The key rows are kept as they are
      await expect(query(url, "UPDATE fedmart_secrets SET value = '\\x00' WHERE name = 'log-key'")).rejects.toThrow(/kept as it is/);
      await expect(query(url, "DELETE FROM fedmart_secrets WHERE name = 'signing-key'")).rejects.toThrow(/kept as it is/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, HANG_GUARD);

  it('upgrade: a database whose coordinator kept its secrets in the data dir imports them (log key unchanged, old tokens still valid); without that log key a coordinator is refused', async () => {
    // Arrange: what a coordinator of the previous release left: secrets in its data dir, heads signed by its log key in PostgreSQL
    const url = await database('upgrade');
    const oldDir = path.join(tmp, 'upgrade-old');
    await mkdir(oldDir, { recursive: true, mode: 0o700 });
    const oldLogKey = openLogKey(oldDir);
    const authority = await TokenAuthority.open(oldDir);
    const old = await PgStore.open(url, oldLogKey);
    const { token: oldOperatorToken } = await operatorTokenAtStart({ authority, store: old }, oldDir, false);
    const { federation } = await old.createFederation('before the upgrade', FederationConfigSchema.parse(CONFIG), new Float32Array(4 * 8 + 8 + 8 + 1));
    const partner = await old.ensurePartner('brand-1');
    const issued = await authority.issue({ sub: partner.id, role: 'partner', fed: federation.id }, 3600);
    await old.createEnrollment(federation.id, partner.id, issued.jti, issued.expiresAt);
    await old.audit('coordinator', 'coordinator.started', null, { release: 'previous' });
    await old.audit('operator', 'federation.created', federation.id, {});
    await old.close();

    // Act 1: a coordinator with an empty data dir starts first
    const refused = await fedmart(['coordinator', '--database', url, '--port', '0', '--data-dir', path.join(tmp, 'upgrade-empty')]);

    // Assert 1: refused in one line naming the log key; nothing stored
    expect(refused.code).not.toBe(0);
    expect(oneLine(refused.stderr)).toBe(true);
    expect(refused.stderr).toMatch(/signed by log key .*which this coordinator does not have: put the log-key\.json/);
    expect(await query(url, 'SELECT name FROM fedmart_secrets')).toEqual([]);

    // Act 2: the coordinator with the old data dir, then another one with an empty data dir
    const first = await serve(oldDir, url);
    const firstLog = first.output();
    await first.stop();
    const otherDir = path.join(tmp, 'upgrade-other');
    const second = await serve(otherDir, url);
    try {
      // Assert 2: imported, not regenerated; the old operator and partner tokens work at the second coordinator
      expect(firstLog).toContain('imported signing-key, log-key, operator-token from the data dir');
      expect(await operatorToken(oldDir)).toBe(oldOperatorToken);
      expect(await operatorToken(otherDir)).toBe(oldOperatorToken);
      expect((await new ApiClient(second.url, issued.token).get<{ federation: { id: string } }>(`/api/v1/federations/${federation.id}`)).federation.id).toBe(federation.id);
      const keys = await query<{ public_key: string }>(url, 'SELECT DISTINCT public_key FROM audit_tree_heads');
      expect(keys).toEqual([{ public_key: bytesToHex(oldLogKey.publicKey) }]);
      expect((await new ApiClient(second.url, oldOperatorToken).get<{ head: { publicKey: string } }>('/api/v1/audit/sth')).head.publicKey).toBe(bytesToHex(oldLogKey.publicKey));
    } finally {
      await second.stop();
    }
  }, HANG_GUARD);

  it('FEDMART_KEY_ENCRYPTION_KEY: unwrapped rows refused, --migrate-only wraps them, the coordinator serves with the same secrets; wrong, missing and malformed keys are one-line errors', async () => {
    // Arrange: secrets created by --migrate-only without a KEK
    const url = await database('kek');
    const dir = path.join(tmp, 'kek');
    const created = await fedmart(['coordinator', '--migrate-only', '--database', url, '--data-dir', dir]);
    expect([created.code, created.stderr]).toEqual([0, '']);
    expect(created.stdout).toContain('created signing-key, log-key');
    const plain = await query<{ name: string; value: Buffer; wrapped: boolean }>(url, 'SELECT name, value, wrapped FROM fedmart_secrets ORDER BY name');
    expect(plain.map((r) => r.wrapped)).toEqual([false, false, false]);
    const kek = randomBytes(32);

    // Act 1: a coordinator with the KEK set
    const unwrapped = await fedmart(['coordinator', '--database', url, '--port', '0', '--data-dir', dir], { [KEK]: kek.toString('hex') });
    // Assert 1: refused, naming what to run
    expect(unwrapped.code).not.toBe(0);
    expect(oneLine(unwrapped.stderr)).toBe(true);
    expect(unwrapped.stderr).toMatch(/stored unwrapped in PostgreSQL although FEDMART_KEY_ENCRYPTION_KEY is set: run fedmart coordinator --migrate-only/);

    // Act 2: --migrate-only with the KEK
    const wrap = await fedmart(['coordinator', '--migrate-only', '--database', url, '--data-dir', dir], { [KEK]: kek.toString('hex') });
    // Assert 2: every row wrapped; no plaintext left in the table
    expect([wrap.code, wrap.stderr]).toEqual([0, '']);
    expect(wrap.stdout).toContain('wrapped log-key, operator-token, signing-key with FEDMART_KEY_ENCRYPTION_KEY');
    const wrapped = await query<{ name: string; value: Buffer; wrapped: boolean }>(url, 'SELECT name, value, wrapped FROM fedmart_secrets ORDER BY name');
    expect(wrapped.map((r) => r.wrapped)).toEqual([true, true, true]);
    for (const [i, row] of wrapped.entries()) {
      expect(row.value.includes(plain[i]!.value)).toBe(false);
      expect(unwrapSecret(kek, row.name, row.value).equals(plain[i]!.value)).toBe(true);
    }

    // Act 3: serve with the KEK (base64 this time)
    const served = await serve(dir, url, { env: { [KEK]: kek.toString('base64') } });
    try {
      // Assert 3: the stored operator token, unchanged, works
      const token = await operatorToken(dir);
      expect(token).toBe(plain.find((r) => r.name === 'operator-token')!.value.toString('utf8'));
      expect((await new ApiClient(served.url, token).get<{ federations: unknown[] }>('/api/v1/federations')).federations).toEqual([]);
    } finally {
      await served.stop();
    }

    // Act 4: a wrong KEK, no KEK, a malformed KEK
    const wrongKey = randomBytes(32).toString('base64');
    const wrong = await fedmart(['coordinator', '--database', url, '--port', '0', '--data-dir', dir], { [KEK]: wrongKey });
    const none = await fedmart(['coordinator', '--database', url, '--port', '0', '--data-dir', dir]);
    const malformed = await fedmart(['coordinator', '--database', url, '--port', '0', '--data-dir', dir], { [KEK]: 'tooShortKeyValue' });

    // Assert 4: one line each, naming the problem, never the key
    for (const r of [wrong, none, malformed]) {
      expect(r.code).not.toBe(0);
      expect(oneLine(r.stderr)).toBe(true);
    }
    expect(wrong.stderr).toMatch(/authentication failed \(AES-256-GCM\): FEDMART_KEY_ENCRYPTION_KEY is not the key it was wrapped with/);
    expect(wrong.stderr).not.toContain(wrongKey);
    expect(none.stderr).toMatch(/is wrapped with a key-encryption key: set FEDMART_KEY_ENCRYPTION_KEY/);
    expect(malformed.stderr).toMatch(/FEDMART_KEY_ENCRYPTION_KEY must be 32 random bytes written as 64 hex digits or base64.*got 12 bytes/);
    expect(malformed.stderr).not.toContain('tooShortKeyValue');
    // The name is authenticated: a wrapped row moved under another name does not unwrap
    expect(() => unwrapSecret(kek, 'signing-key', wrapSecret(kek, 'log-key', Buffer.from('x')))).toThrow(/authentication failed/);
  }, HANG_GUARD);

  it('caps at round start: two coordinators racing a capped federation\'s next rounds never overspend (in-flight rounds count as spending, checked under the federation lock)', async () => {
    // Arrange: two coordinators' stores (two pools) on one database; partner-level DP, a federation cap that fits exactly 3 rounds
    const url = await database('caps_race');
    const logKey = generateEd25519KeyPair();
    const [a, b] = [await PgStore.open(url, logKey), await PgStore.open(url, logKey)];
    try {
      const dp = { level: 'partner' as const, noiseMultiplier: 1.2, clip: 1, delta: 1e-5 };
      const config = FederationConfigSchema.parse({ ...CONFIG, dp });
      const { federation } = await a.createFederation('capped', config, new Float32Array(49));
      const partner = await a.ensurePartner('brand-1');
      await a.createEnrollment(federation.id, partner.id, 'jti-1', Date.now() + 3_600_000);
      const eps = (k: number) => new RdpAccountant().step(1, dp.noiseMultiplier, k).epsilon(dp.delta).epsilon;
      const cap = (eps(3) + eps(4)) / 2;
      await a.appendPrivacyCap({ federationId: federation.id, partnerId: null, level: 'partner', epsilon: cap, setBy: 'compliance' });
      const localTrain = { ...config.localTrain, dp: { level: 'partner', clip: 1, noiseMultiplier: dp.noiseMultiplier, delta: dp.delta } };
      let number = 0;
      const races: string[][] = [];
      for (let race = 0; race < 6; race++) {
        // Act: each coordinator creates its next round, then both run the start check at once
        const rounds = [a, b].map((store) => ({ store, id: `r_${race}_${store === a ? 'a' : 'b'}`, number: ++number }));
        for (const r of rounds) await r.store.createRound({ id: r.id, federationId: federation.id, number: r.number, phase: 'scheduled', strategy: config.strategy, config: JSON.stringify(localTrain), baseModelVersionId: federation.currentModelVersionId!, startedAt: Date.now() + r.number });
        const outcomes = await Promise.all(rounds.map((r) => refuseRoundOverBudget(r.store, { federationId: federation.id, roundId: r.id, round: r.number, config: { ...config, localTrain: localTrain as typeof config.localTrain } })));
        // The admitted ones train and commit with their spend
        for (const [i, r] of rounds.entries()) {
          if (outcomes[i] !== null) continue;
          const base = await r.store.currentModelRow(federation.id);
          await r.store.commitRound({ federationId: federation.id, roundId: r.id, parentId: base.id, strategy: config.strategy, participants: [partner.id], metrics: {}, spec: config.model, weights: new Float32Array(49) }, await roundSpendPlan(r.store, { federationId: federation.id, roundId: r.id, participants: [partner.id] }));
        }
        races.push(outcomes.map((o) => (o === null ? 'committed' : (o.reason ?? ''))));
      }

      // Assert: exactly the 3 rounds the cap allows committed (2 fit in race 1; in race 2 only one: the first checker counts the
      // other's round in flight and is refused, the second sees it failed); the ledger stays under the cap
      expect(races.map((r) => r.filter((x) => x === 'committed').length)).toEqual([2, 1, 0, 0, 0, 0]);
      expect(races[1]!.find((x) => x !== 'committed')).toMatch(/privacy budget exceeded: round \d+ would bring the federation to partner-level epsilon .*, counting the planned spend of round \d+ \(r_\d_[ab]\) still in flight, above the partner-level cap of the federation/);
      const fedRows = (await a.ledgerRows(federation.id)).filter((r) => r.kind === 'spent' && r.partnerId === null);
      expect(fedRows).toHaveLength(3);
      expect(Math.max(...fedRows.map((r) => r.epsilon!))).toBeLessThanOrEqual(cap);
      expect((await a.listModelVersions(federation.id)).length).toBe(4);
    } finally {
      await a.close();
      await b.close();
    }
  }, HANG_GUARD);
});
