/**
 * Store conformance (issue 15): the same cases against the SQLite adapter (today's Store) and against
 * PgStore on a throwaway PostgreSQL cluster (pg-cluster.ts). The PostgreSQL half skips, with the
 * printed reason, only when no PostgreSQL server binaries are installed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { FedmartError } from '@fedmart/shared/errors';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { checkEntryIncluded, checkHeadExtends, verifyTreeHead } from '@fedmart/shared/audit-log';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { openDatabase } from './client.ts';
import { migrate } from './migrations.ts';
import { APPEND_ONLY_TABLES, PG_MIGRATIONS, migratePg } from './migrations-pg.ts';
import { findPgBin, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { compareBuilt, compareDeclarations, declared, introspectPg, introspectSqlite } from './schema-conformance.ts';
import { Store } from './store.ts';
import { PgStore } from './store-pg.ts';
import { SqliteAsyncStore } from './store-sqlite-async.ts';
import { ERASED_WEIGHTS_SHA256, type AsyncStore, type LedgerPlan, type ReleasePlan } from './store-api.ts';

const HANG_GUARD = 300_000;
const pgBin = findPgBin();
if (!pgBin) console.warn('store-conformance: skipping the PostgreSQL cases: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql');

let cluster: PgCluster | null = null;
let dbCounter = 0;
beforeAll(async () => {
  if (pgBin) cluster = await startPgCluster({ bin: pgBin });
}, HANG_GUARD);
afterAll(async () => {
  await cluster?.stop();
}, HANG_GUARD);

/** A fresh empty PostgreSQL database on the cluster. */
async function freshPgDatabase(): Promise<string> {
  const name = `conformance_${process.pid}_${++dbCounter}`;
  const admin = new pg.Client(cluster!.url);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return cluster!.url.replace(/\/postgres$/, `/${name}`);
}

interface Backend {
  store: AsyncStore;
  /** Run raw SQL (to attempt what the store never does). */
  raw(sql: string): Promise<void>;
  /** Disable the trigger that refuses UPDATE on audit_log (to simulate an attacker with DDL rights). */
  dropAuditUpdateGuard(): Promise<void>;
  /** A second store on the same database (another coordinator), or null where there is only one process. */
  second(): Promise<AsyncStore | null>;
  /** Another handle on the same database even where {@link second} is null (SQLite: a second better-sqlite3 handle on the same file). */
  otherHandle(): Promise<AsyncStore>;
  close(): Promise<void>;
}

const key = generateEd25519KeyPair();

const backends: { name: 'sqlite' | 'postgres'; skip: boolean; open(): Promise<Backend> }[] = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const dir = mkdtempSync(path.join(tmpdir(), 'fedmart-conformance-'));
      const file = path.join(dir, 'fedmart.db');
      const store = new SqliteAsyncStore(new Store(openDatabase(file), key));
      const client = store.store.db.$client;
      const others: SqliteAsyncStore[] = [];
      return {
        store,
        raw: async (sql) => void client.exec(sql),
        dropAuditUpdateGuard: async () => void client.exec('DROP TRIGGER audit_log_no_update'),
        second: async () => null,
        otherHandle: async () => {
          const o = new SqliteAsyncStore(new Store(openDatabase(file), key));
          others.push(o);
          return o;
        },
        close: async () => {
          for (const o of others) await o.close();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: pgBin === null,
    async open() {
      const url = await freshPgDatabase();
      const store = await PgStore.open(url, key);
      const others: PgStore[] = [];
      return {
        store,
        raw: async (sql) => void (await store.pool.query(sql)),
        dropAuditUpdateGuard: async () => void (await store.pool.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update')),
        second: async () => {
          const s = await PgStore.open(url, key);
          others.push(s);
          return s;
        },
        otherHandle: async () => {
          const s = await PgStore.open(url, key);
          others.push(s);
          return s;
        },
        close: async () => {
          await Promise.all(others.map((s) => s.close()));
          await store.close();
        },
      };
    },
  },
];

const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
const weights = (n: number, v: number) => new Float32Array(n).fill(v);

async function newRound(store: AsyncStore, federationId: string, baseModelVersionId: string | null) {
  const number = await store.nextRoundNumber(federationId);
  return store.createRound({ id: `r_${federationId}_${number}`, federationId, number, phase: 'scheduled', strategy: 'fedavg', config: '{}', baseModelVersionId, startedAt: Date.now() });
}

function commitArgs(federationId: string, roundId: string, parentId: string, v: number) {
  return { federationId, roundId, parentId, strategy: 'fedavg', participants: ['p1'], metrics: { eval_loss: v }, spec: config.model, weights: weights(4, v) };
}

/** A plan charging ε = 0.3 per call to the federation's partner-level row, refusing above the cap in force. */
const EPS = 0.3;
const capPlan: LedgerPlan = (snap, modelVersionId) => {
  const cap = [...snap.caps].reverse().find((c) => c.partnerId === null && c.level === 'partner');
  const spent = snap.latestSpent(null, 'partner')?.epsilon ?? 0;
  const next = spent + EPS;
  if (cap?.epsilon != null && next > cap.epsilon + 1e-9) throw new FedmartError('CONFLICT', `privacy budget exceeded: epsilon ${next.toFixed(2)} above the cap ${cap.epsilon}`);
  return [{ federationId: snap.federationId, partnerId: null, roundId: null, modelVersionId, level: 'partner', kind: 'spent', epsilon: next, delta: 1e-5, createdAt: Date.now() }];
};

describe('schema conformance', () => {
  it('the PostgreSQL declarations match the SQLite ones table for table, column for column, index for index', () => {
    expect(declared('sqlite').length).toBeGreaterThanOrEqual(12);
    expect(compareDeclarations()).toEqual([]);
  });

  it('the SQLite migrations build exactly the declared schema, with the append-only triggers', () => {
    const sqlite = new Database(':memory:');
    migrate(sqlite);
    expect(compareBuilt(introspectSqlite(sqlite), declared('sqlite'), APPEND_ONLY_TABLES)).toEqual([]);
    sqlite.close();
  });

  it.skipIf(pgBin === null)('the PostgreSQL migrations build exactly the declared schema, once, even with two coordinators migrating at the same time', async () => {
    const url = await freshPgDatabase();
    const a = new pg.Client(url);
    const b = new pg.Client(url);
    await Promise.all([a.connect(), b.connect()]);
    try {
      expect(await Promise.all([migratePg(a), migratePg(b)])).toEqual([PG_MIGRATIONS.length, PG_MIGRATIONS.length]);
      expect(await migratePg(a)).toBe(PG_MIGRATIONS.length);
      expect(compareBuilt(await introspectPg(a), declared('postgres'), APPEND_ONLY_TABLES)).toEqual([]);
      await a.query('UPDATE fedmart_schema SET version = version + 1');
      await expect(migratePg(a)).rejects.toThrow(/newer than this fedmart/);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  }, HANG_GUARD);
});

for (const backend of backends) {
  describe.skipIf(backend.skip)(`store conformance: ${backend.name}`, () => {
    let b: Backend;
    let s: AsyncStore;
    const fresh = async () => {
      if (b) await b.close();
      b = await backend.open();
      s = b.store;
    };
    afterAll(async () => b && (await b.close()), HANG_GUARD);

    it('partners, federations and enrollments', async () => {
      await fresh();
      const p = await s.ensurePartner('acme');
      const again = await Promise.all([s.ensurePartner('acme'), s.ensurePartner('acme')]);
      expect(again.map((x) => x.id)).toEqual([p.id, p.id]);
      expect((await s.listPartners()).map((x) => x.name)).toEqual(['acme']);
      expect(await s.getPartner(p.id)).toEqual(p);

      const { federation, model } = await s.createFederation('fed', config, weights(4, 0.5));
      expect(model.version).toBe(0);
      expect(model.releaseStatus).toBe('published');
      expect(s.federationConfig(await s.getFederation(federation.id)).minClients).toBe(config.minClients);
      expect((await s.listFederations()).map((f) => f.id)).toEqual([federation.id]);
      await expect(s.getFederation('f_nope')).rejects.toThrow(/not found/);
      expect(Array.from((await s.currentModel(federation.id)).weights)).toEqual([0.5, 0.5, 0.5, 0.5]);

      const e = await s.createEnrollment(federation.id, p.id, 'jti-1', Date.now() + 1e6, 100);
      expect((await s.findEnrollmentByToken('jti-1'))?.id).toBe(e.id);
      await s.markEnrollmentSeen(e.id, 42);
      const seen = (await s.listEnrollments(federation.id))[0]!;
      expect([seen.partnerName, seen.status, seen.numExamples, seen.consentedAt !== null]).toEqual(['acme', 'active', 42, true]);
      await s.bindIdentity(e.id, 'aa'.repeat(32), 'bb'.repeat(32));
      await s.bindIdentity(e.id, 'aa'.repeat(32), 'bb'.repeat(32));
      await expect(s.bindIdentity(e.id, 'cc'.repeat(32), null)).rejects.toThrow(/re-enroll/);
      expect(await s.recordConsent(e.id, { purposes: ['a'] }, () => [])).toEqual({ purposes: null, termsHash: 'bb'.repeat(32) });
      expect(await s.recordConsent(e.id, { purposes: ['b'] }, () => [])).toEqual({ purposes: ['a'], termsHash: 'bb'.repeat(32) });
      // A consent, its terms and its audit entries are one transaction: a plan that throws writes none of them.
      const consentEntry = (n: number) => [{ actor: p.id, action: 'partner.consent', subject: e.id, data: { n } }];
      expect(await s.recordConsent(e.id, { purposes: ['c'], termsHash: 'dd'.repeat(32) }, () => consentEntry(1))).toEqual({ purposes: ['b'], termsHash: 'bb'.repeat(32) });
      await expect(s.recordConsent(e.id, { purposes: ['x'], termsHash: 'ff'.repeat(32) }, () => { throw new FedmartError('INTERNAL', 'audit refused'); })).rejects.toThrow(/audit refused/);
      await expect(s.recordConsent(e.id, { purposes: ['x'] }, () => [{ actor: p.id, action: 'partner.consent', subject: e.id, data: 10n }])).rejects.toThrow();
      expect(await s.recordConsent(e.id, { purposes: ['d'] }, (prev) => consentEntry(prev.purposes!.length))).toEqual({ purposes: ['c'], termsHash: 'dd'.repeat(32) });
      expect(await s.recordConsent(e.id, { purposes: ['d'], termsHash: 'ee'.repeat(32) }, () => [])).toEqual({ purposes: ['d'], termsHash: 'dd'.repeat(32) });
      expect((await s.listEnrollments(federation.id))[0]!.termsHash).toBe('ee'.repeat(32));
      expect((await s.listAudit(100)).filter((a) => a.action === 'partner.consent').map((a) => JSON.parse(a.data!))).toEqual([{ n: 1 }, { n: 1 }]);
      expect((await s.verifyAudit()).ok).toBe(true);
      await expect(s.recordConsent('e_nope', { purposes: ['a'] }, () => [])).rejects.toThrow(/not found/);
      // An enrollment's issue, its purposes and its audit entry are one transaction: when the entry cannot be written,
      // neither the new enrollment nor a re-issue (which would revoke the old token unaudited) is stored.
      const unwritable = { actor: 'operator', action: 'enrollment.issued', subject: null, data: 10n };
      const q = await s.ensurePartner('globex');
      await expect(s.createEnrollment(federation.id, q.id, 'jti-q', Date.now() + 1e6, null, { purposes: ['x'], audit: unwritable })).rejects.toThrow();
      expect(await s.findEnrollmentByToken('jti-q')).toBeUndefined();
      await expect(s.createEnrollment(federation.id, p.id, 'jti-9', Date.now() + 1e6, null, { audit: unwritable })).rejects.toThrow();
      expect((await s.findEnrollmentByToken('jti-1'))?.id).toBe(e.id);
      const issued = await s.createEnrollment(federation.id, q.id, 'jti-q', Date.now() + 1e6, null, { purposes: ['x'], audit: { ...unwritable, data: { ok: true } } });
      expect([issued.purposes, (await s.findEnrollmentByToken('jti-q'))?.purposes]).toEqual(['["x"]', '["x"]']);
      expect((await s.listAudit(100)).filter((a) => a.action === 'enrollment.issued').map((a) => a.subject)).toEqual([issued.id]);
      await s.revokeEnrollment(e.id);
      await s.markEnrollmentSeen(e.id, 43);
      expect((await s.findEnrollmentByToken('jti-1'))?.status).toBe('revoked');
      // Re-enrolling replaces the token, re-invites and releases the identity key.
      const re = await s.createEnrollment(federation.id, p.id, 'jti-2', Date.now() + 1e6);
      expect([re.id, re.status, re.identityKey, re.tokenId]).toEqual([e.id, 'invited', null, 'jti-2']);
      expect(await s.findEnrollmentByToken('jti-1')).toBeUndefined();
      await s.bindIdentity(e.id, 'cc'.repeat(32), null);
    }, HANG_GUARD);

    it('a federation, an enrollment revocation and a privacy cap are stored with their audit entry or not at all', async () => {
      await fresh();
      const unwritable = (action: string) => ({ actor: 'operator', action, subject: null, data: 10n });
      await expect(s.createFederation('lost', config, weights(4, 0.5), unwritable('federation.created'))).rejects.toThrow();
      expect(await s.listFederations()).toEqual([]);
      const { federation } = await s.createFederation('fed', config, weights(4, 0.5), { ...unwritable('federation.created'), data: { n: 1 } });
      const p = await s.ensurePartner('acme');
      const e = await s.createEnrollment(federation.id, p.id, 'jti-1', Date.now() + 1e6);
      await expect(s.revokeEnrollment(e.id, unwritable('enrollment.revoked'))).rejects.toThrow();
      expect((await s.findEnrollmentByToken('jti-1'))?.status).toBe('invited');
      await expect(s.appendPrivacyCap({ federationId: federation.id, partnerId: p.id, level: 'record', epsilon: 1, setBy: 'compliance' }, unwritable('privacy.cap.set'))).rejects.toThrow();
      expect(await s.privacyCapHistory(federation.id)).toEqual([]);
      await s.appendPrivacyCap({ federationId: federation.id, partnerId: p.id, level: 'record', epsilon: 2, setBy: 'compliance' }, { ...unwritable('privacy.cap.set'), subject: p.id, data: { epsilon: 2 } });
      await s.revokeEnrollment(e.id, { ...unwritable('enrollment.revoked'), data: {} });
      expect((await s.privacyCapHistory(federation.id)).map((c) => c.epsilon)).toEqual([2]);
      expect((await s.findEnrollmentByToken('jti-1'))?.status).toBe('revoked');
      expect((await s.listAudit(100)).map((a) => [a.action, a.subject])).toEqual([['federation.created', federation.id], ['privacy.cap.set', p.id], ['enrollment.revoked', e.id]]);
      expect((await s.verifyAudit()).ok).toBe(true);
    }, HANG_GUARD);

    it('rounds and participants; interrupted rounds fail; a round number is taken once', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      const p = await s.ensurePartner('acme');
      const r1 = await newRound(s, federation.id, model.id);
      expect(r1.number).toBe(1);
      await expect(s.createRound({ ...r1, id: 'r_other' })).rejects.toThrow();
      await s.setRoundPhase(r1.id, 'training');
      await s.setParticipant(r1.id, p.id, { status: 'selected' });
      await s.setParticipant(r1.id, p.id, { status: 'trained', numExamples: 7, trainMetrics: { loss: 1 } });
      const [part] = await s.listParticipants(r1.id);
      expect([part!.status, part!.numExamples, part!.trainMetrics]).toEqual(['trained', 7, '{"loss":1}']);
      expect((await s.getRound(r1.id)).phase).toBe('training');
      const r2 = await newRound(s, federation.id, model.id);
      await s.setRoundPhase(r2.id, 'failed', 'no clients');
      expect((await s.getRound(r2.id)).endedAt).not.toBeNull();
      expect(await s.failInterruptedRounds()).toEqual([r1.id]);
      expect((await s.listRounds(federation.id)).map((r) => [r.number, r.phase])).toEqual([[1, 'failed'], [2, 'failed']]);
      await expect(s.getRound('r_nope')).rejects.toThrow(/not found/);
    }, HANG_GUARD);

    it('a refused round is written failed with its reason in one step, and takes its number', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      const row = { id: 'r_refused', federationId: federation.id, number: 1, phase: 'scheduled', strategy: 'fedavg', config: '{}', baseModelVersionId: model.id, startedAt: Date.now() };
      const refused = await s.createRefusedRound(row, 'model blob corrupted');
      expect([refused.phase, refused.reason]).toEqual(['failed', 'model blob corrupted']);
      const stored = await s.getRound('r_refused');
      expect([stored.phase, stored.reason, stored.endedAt !== null]).toEqual(['failed', 'model blob corrupted', true]);
      expect(await s.failInterruptedRounds()).toEqual([]);
      await expect(s.createRefusedRound({ ...row, id: 'r_again' }, 'x')).rejects.toThrow();
      expect(await s.nextRoundNumber(federation.id)).toBe(2);
    }, HANG_GUARD);

    // --- scheduler/socket/vertical (s8-15serve) ---
    it('a vertical overlap check ends checked with its metrics, and a restart leaves it checked', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      const r = await newRound(s, federation.id, model.id);
      await s.endRoundChecked(r.id, { psi_intersection: 812, seconds: 1.5 });
      const stored = await s.getRound(r.id);
      expect([stored.phase, JSON.parse(stored.metrics!), stored.endedAt !== null]).toEqual(['checked', { psi_intersection: 812, seconds: 1.5 }, true]);
      expect(await s.failInterruptedRounds()).toEqual([]);
      expect((await s.getRound(r.id)).phase).toBe('checked');
      expect(await s.listModelVersions(federation.id)).toHaveLength(1);
    }, HANG_GUARD);
    // --- end scheduler/socket/vertical (s8-15serve) ---

    it('a model version, its round\'s final phase, the current-model pointer and the ledger rows commit together or not at all', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      const r1 = await newRound(s, federation.id, model.id);
      const failing: LedgerPlan = () => { throw new FedmartError('INTERNAL', 'ledger state is corrupt'); };
      await expect(s.commitRound(commitArgs(federation.id, r1.id, model.id, 1), failing)).rejects.toThrow(/corrupt/);
      expect((await s.listModelVersions(federation.id)).map((m) => m.version)).toEqual([0]);
      expect((await s.getRound(r1.id)).phase).toBe('scheduled');
      expect((await s.getFederation(federation.id)).currentModelVersionId).toBe(model.id);
      expect(await s.ledgerRows(federation.id)).toEqual([]);

      const v1 = await s.commitRound(commitArgs(federation.id, r1.id, model.id, 1), capPlan);
      expect(v1.version).toBe(1);
      expect((await s.getRound(r1.id)).phase).toBe('committed');
      expect((await s.currentModelRow(federation.id)).id).toBe(v1.id);
      expect(Array.from((await s.currentModel(federation.id)).weights)).toEqual([1, 1, 1, 1]);
      expect((await s.getModelVersion(model.id)).releaseStatus).toBe('retired');
      expect((await s.getModelByNumber(federation.id, 1)).sha256).toBe(v1.sha256);
      const ledger = await s.ledgerRows(federation.id);
      expect(ledger.map((l) => [l.modelVersionId, l.epsilon, l.committed])).toEqual([[v1.id, EPS, true]]);
      expect('weights' in (await s.listModelVersions(federation.id))[0]!).toBe(false);
    }, HANG_GUARD);

    it('a round commits once: a second commit of the same round is refused by the database, also when both race', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      const r1 = await newRound(s, federation.id, model.id);
      await s.commitRound(commitArgs(federation.id, r1.id, model.id, 1));
      await expect(s.commitRound(commitArgs(federation.id, r1.id, model.id, 2))).rejects.toThrow();
      const r2 = await newRound(s, federation.id, model.id);
      const other = (await b.second()) ?? s;
      const race = await Promise.allSettled([s.commitRound(commitArgs(federation.id, r2.id, model.id, 3)), other.commitRound(commitArgs(federation.id, r2.id, model.id, 4))]);
      expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const versions = await s.listModelVersions(federation.id);
      expect(versions.map((v) => [v.version, v.roundId])).toEqual([[0, null], [1, r1.id], [2, r2.id]]);
    }, HANG_GUARD);

    it('caps hold under concurrency: of 8 simultaneous cap checks + ledger appends, exactly the affordable 3 pass', async () => {
      await fresh();
      const { federation } = await s.createFederation('fed', config, weights(4, 0));
      await s.appendPrivacyCap({ federationId: federation.id, partnerId: null, level: 'partner', epsilon: 1.0, setBy: 'compliance' });
      const other = (await b.second()) ?? s;
      const attempts = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => (i % 2 ? other : s).chargeLedger(federation.id, capPlan)));
      expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(3);
      for (const a of attempts) if (a.status === 'rejected') expect(String(a.reason)).toMatch(/budget exceeded/);
      const spent = (await s.ledgerRows(federation.id)).map((l) => Number(l.epsilon!.toFixed(6)));
      expect(spent).toEqual([0.3, 0.6, 0.9]);
      expect((await s.privacyCapHistory(federation.id)).map((c) => c.epsilon)).toEqual([1]);
    }, HANG_GUARD);

    it('two rounds of one federation racing to commit cannot both pass a cap check (6 rounds, room for 3)', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0));
      await s.appendPrivacyCap({ federationId: federation.id, partnerId: null, level: 'partner', epsilon: 1.0, setBy: 'compliance' });
      const rounds = [];
      for (let i = 0; i < 6; i++) rounds.push(await newRound(s, federation.id, model.id));
      const other = (await b.second()) ?? s;
      const commits = await Promise.allSettled(rounds.map((r, i) => (i % 2 ? other : s).commitRound(commitArgs(federation.id, r.id, model.id, i + 1), capPlan)));
      expect(commits.filter((c) => c.status === 'fulfilled')).toHaveLength(3);
      const versions = (await s.listModelVersions(federation.id)).map((v) => v.version);
      expect(versions).toEqual([0, 1, 2, 3]);
      const ledger = await s.ledgerRows(federation.id);
      expect(ledger.map((l) => Number(l.epsilon!.toFixed(6)))).toEqual([0.3, 0.6, 0.9]);
      const committedRounds = (await s.listRounds(federation.id)).filter((r) => r.phase === 'committed').map((r) => r.id).sort();
      expect(ledger.map((l) => l.modelVersionId).length).toBe(committedRounds.length);
    }, HANG_GUARD);

    it('schedules', async () => {
      await fresh();
      const { federation } = await s.createFederation('fed', config, weights(4, 0));
      const sc = await s.createSchedule(federation.id, { kind: 'every', requested: 3, spec: '{"everyMs":1000}', nextRunAt: 5, at: 1 });
      await s.updateSchedule(sc.id, { status: 'running', remaining: 2, completed: 1, currentRoundId: 'r1' });
      const got = await s.getSchedule(sc.id);
      expect([got.status, got.remaining, got.completed, got.currentRoundId, got.nextRunAt]).toEqual(['running', 2, 1, 'r1', 5]);
      const done = await s.createSchedule(federation.id, { kind: 'now', requested: 1, spec: '{}', nextRunAt: null, at: 2 });
      await s.updateSchedule(done.id, { status: 'done', remaining: 0 });
      expect((await s.listOpenSchedules()).map((x) => x.id)).toEqual([sc.id]);
      expect((await s.listSchedules(federation.id)).map((x) => x.id)).toEqual([sc.id, done.id]);
      await expect(s.getSchedule('s_nope')).rejects.toThrow(/not found/);
    }, HANG_GUARD);

    it('a schedule tick is claimed once: two coordinators (two handles on one database) racing for each of 20 due ticks, exactly one wins each', async () => {
      await fresh();
      const { federation } = await s.createFederation('fed', config, weights(4, 0));
      const other = await b.otherHandle();
      const sc = await s.createSchedule(federation.id, { kind: 'every', requested: 0, spec: '{"kind":"every","everySeconds":1}', nextRunAt: 1000, at: 0 });
      const winners: string[] = [];
      for (let tick = 1; tick <= 20; tick++) {
        // Both read the same due tick, then both try to move it on.
        const [a, c] = await Promise.all([s.getSchedule(sc.id), other.getSchedule(sc.id)]);
        expect(a.nextRunAt).toBe(tick * 1000);
        expect(c.nextRunAt).toBe(tick * 1000);
        const [wonA, wonC] = await Promise.all([s.claimScheduleTick(sc.id, a.nextRunAt!, (tick + 1) * 1000), other.claimScheduleTick(sc.id, c.nextRunAt!, (tick + 1) * 1000)]);
        expect([wonA, wonC].filter(Boolean), `tick ${tick}`).toHaveLength(1);
        winners.push(wonA ? 'a' : 'c');
      }
      expect((await s.getSchedule(sc.id)).nextRunAt).toBe(21_000);
      // A stale read (a tick already claimed) never wins, nor does a paused or finished schedule.
      expect(await other.claimScheduleTick(sc.id, 20_000, 99_000)).toBe(false);
      await s.updateSchedule(sc.id, { status: 'paused' });
      expect(await other.claimScheduleTick(sc.id, 21_000, 22_000)).toBe(false);
      expect((await s.getSchedule(sc.id)).nextRunAt).toBe(21_000);
      expect(winners).toHaveLength(20);
    }, HANG_GUARD);

    it('two coordinators racing to run a capped federation\'s next round never overspend (50 races, room for exactly one round each)', async () => {
      await fresh();
      const other = (await b.second()) ?? s;
      let overspent = 0;
      for (let race = 0; race < 50; race++) {
        const { federation, model } = await s.createFederation(`fed${race}`, config, weights(4, 0));
        // The cap allows exactly one more round: 0.3 already spent, 0.3 per round, cap 0.6.
        await s.appendPrivacyCap({ federationId: federation.id, partnerId: null, level: 'partner', epsilon: 0.6, setBy: 'compliance' });
        await s.chargeLedger(federation.id, capPlan);
        const [r1, r2] = [await newRound(s, federation.id, model.id), await newRound(other, federation.id, model.id)];
        const attempts = race % 2
          ? [s.commitRound(commitArgs(federation.id, r1.id, model.id, 1), capPlan), other.commitRound(commitArgs(federation.id, r2.id, model.id, 2), capPlan)]
          : [s.chargeLedger(federation.id, capPlan), other.chargeLedger(federation.id, capPlan)];
        const settled = await Promise.allSettled(attempts);
        const passed = settled.filter((x) => x.status === 'fulfilled').length;
        if (passed !== 1) overspent++;
        const spent = (await s.ledgerRows(federation.id)).map((l) => Number(l.epsilon!.toFixed(6)));
        expect(spent, `race ${race}: the ledger`).toEqual([0.3, 0.6]);
        for (const x of settled) if (x.status === 'rejected') expect(String(x.reason), `race ${race}`).toMatch(/budget exceeded/);
      }
      expect(overspent).toBe(0);
    }, HANG_GUARD);

    // --- REST routes (s8-15routes) ---
    it('archive and delete end a federation in one transaction with their audit entry, once (two racing deletes: one wins)', async () => {
      await fresh();
      const { federation, model } = await s.createFederation('fed', config, weights(4, 0.5));
      const fed = federation.id;
      const p = await s.ensurePartner('acme');
      const e = await s.createEnrollment(fed, p.id, 'jti-1', Date.now() + 1e6);
      await s.bindIdentity(e.id, 'aa'.repeat(32), 'bb'.repeat(32));
      await s.recordConsent(e.id, { purposes: ['analytics'] }, () => []);
      await s.markEnrollmentSeen(e.id, 42);
      const r1 = await newRound(s, fed, model.id);
      await s.setParticipant(r1.id, p.id, { status: 'trained', numExamples: 7, trainMetrics: { loss: 1 }, reason: 'slow' });
      await s.commitRound(commitArgs(fed, r1.id, model.id, 1), capPlan);
      const archived = { actor: 'operator', action: 'federation.archived', subject: fed, data: { kept: 'everything' } };
      await s.endFederation(fed, 'archived', archived);
      const a = await s.getFederation(fed);
      expect([a.status, a.endedAt !== null]).toEqual(['archived', true]);
      const [ea] = await s.listEnrollments(fed);
      expect([ea!.status, ea!.identityKey, ea!.numExamples]).toEqual(['revoked', 'aa'.repeat(32), 42]);
      await expect(s.endFederation(fed, 'archived', archived)).rejects.toThrow(/already archived/);
      await expect(s.endFederation('f_nope', 'archived', archived)).rejects.toThrow(/not found/);

      const other = (await b.second()) ?? s;
      const deleted = { actor: 'operator', action: 'federation.deleted', subject: fed, data: null };
      const race = await Promise.allSettled([s.endFederation(fed, 'deleted', deleted), other.endFederation(fed, 'deleted', deleted)]);
      expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of race) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/already deleted/);
      expect((await s.getFederation(fed)).status).toBe('deleted');
      for (const v of [await s.getModelVersion(model.id), await s.getModelByNumber(fed, 1)]) {
        expect([v.weights.length, v.sha256, v.paramCount, v.releaseStatus]).toEqual([0, ERASED_WEIGHTS_SHA256, 0, 'retired']);
      }
      const [part] = await s.listParticipants(r1.id);
      expect([part!.status, part!.numExamples, part!.trainMetrics, part!.reason]).toEqual(['trained', null, null, null]);
      const [ed] = await s.listEnrollments(fed);
      expect([ed!.status, ed!.identityKey, ed!.termsHash, ed!.purposes, ed!.numExamples]).toEqual(['revoked', null, null, null, null]);
      expect(await s.ledgerRows(fed)).toHaveLength(1);
      expect((await s.listRounds(fed)).map((r) => r.phase)).toEqual(['committed']);
      expect((await s.listAudit(100)).map((x) => [x.action, x.subject])).toEqual([['federation.archived', fed], ['federation.deleted', fed]]);
      expect((await s.verifyAudit()).ok).toBe(true);
    }, HANG_GUARD);

    it('a model release step writes its fields, its publication and its audit entries together or not at all; of two racing approvals one wins', async () => {
      await fresh();
      const gated = FederationConfigSchema.parse({ ...config, release: { requiresApproval: true, autoPublish: false } });
      const { federation, model } = await s.createFederation('fed', gated, weights(4, 0));
      const fed = federation.id;
      expect(model.releaseStatus).toBe('candidate');
      const r1 = await newRound(s, fed, model.id);
      const v1 = await s.commitRound(commitArgs(fed, r1.id, model.id, 1));
      const publish = (versionId: string): ReleasePlan<number | null> => (snap) => {
        const before = snap.versions.find((v) => v.releaseStatus === 'published')?.version ?? null;
        return { versionId, publish: true, set: { approvedBy: 'compliance' }, audit: [{ actor: 'operator', action: 'model.published', subject: versionId, data: { retired: before } }], result: before };
      };
      expect(await s.releaseModel(fed, publish(model.id))).toBeNull();
      expect(await s.releaseModel(fed, publish(v1.id))).toBe(0);
      const states = async () => (await s.listModelVersions(fed)).map((v) => [v.version, v.releaseStatus]);
      expect(await states()).toEqual([[0, 'retired'], [1, 'published']]);
      const p1 = await s.getModelVersion(v1.id);
      expect([p1.approvedBy, p1.publishedAt !== null]).toEqual(['compliance', true]);
      // A refusing plan, and a step on a version the federation does not have, write nothing (the retirement of v1 rolls back).
      await expect(s.releaseModel(fed, () => { throw new FedmartError('CONFLICT', 'refused by the plan'); })).rejects.toThrow(/refused by the plan/);
      await expect(s.releaseModel(fed, publish('m_nope'))).rejects.toThrow(/no model version m_nope/);
      // Audit entries then a failure: the entries roll back with it, and the log's next append still verifies.
      await expect(s.releaseModel(fed, () => ({ versionId: null, audit: [{ actor: 'a', action: 'ok', subject: null, data: null }, { actor: 'a', action: 'bad', subject: null, data: { n: 1n } }], result: undefined }))).rejects.toThrow(/BigInt/);
      expect(await states()).toEqual([[0, 'retired'], [1, 'published']]);
      expect((await s.listAudit(100)).map((x) => x.action)).toEqual(['model.published', 'model.published']);
      await s.audit('operator', 'after.rollback', null, null);
      expect(await s.verifyAudit()).toEqual({ ok: true, entries: 3, brokenAt: null, reason: null });

      const r2 = await newRound(s, fed, v1.id);
      const v2 = await s.commitRound(commitArgs(fed, r2.id, v1.id, 2));
      const approve = (who: string): ReleasePlan<string> => (snap) => {
        const v = snap.versions.find((x) => x.version === 2)!;
        if (v.releaseStatus !== 'candidate') throw new FedmartError('CONFLICT', `version 2 is ${v.releaseStatus}; only a candidate can be approved`);
        return { versionId: v.id, set: { releaseStatus: 'approved', approvedBy: who }, audit: [{ actor: who, action: 'model.approved', subject: v.id, data: null }], result: who };
      };
      const other = (await b.second()) ?? s;
      const race = await Promise.allSettled([s.releaseModel(fed, approve('c1')), other.releaseModel(fed, approve('c2'))]);
      expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of race) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/version 2 is approved/);
      const winner = race.find((r) => r.status === 'fulfilled')!.value;
      expect((await s.getModelVersion(v2.id)).approvedBy).toBe(winner);
      expect((await s.listAudit(100)).filter((x) => x.action === 'model.approved').map((x) => x.actor)).toEqual([winner]);
      expect((await s.verifyAudit()).ok).toBe(true);
    }, HANG_GUARD);
    // --- end REST routes (s8-15routes) ---

    it('revocations are idempotent', async () => {
      await fresh();
      expect(await s.revokeToken('jti-x', 'operator', 'lost laptop')).toBe(true);
      expect(await s.revokeToken('jti-x', 'operator', 'again')).toBe(false);
      expect(await s.isTokenRevoked('jti-x')).toBe(true);
      expect(await s.isTokenRevoked('jti-y')).toBe(false);
    }, HANG_GUARD);

    it('the append-only tables refuse UPDATE and DELETE in the database itself', async () => {
      const TEXT_COLUMN: Record<(typeof APPEND_ONLY_TABLES)[number], string> = { audit_log: 'actor', audit_tree_heads: 'root', privacy_ledger: 'reason', privacy_caps: 'set_by', revoked_tokens: 'reason' };
      await fresh();
      const { federation } = await s.createFederation('fed', config, weights(4, 0));
      await s.audit('operator', 'federation.created', federation.id, { n: 1 });
      await s.appendPrivacyCap({ federationId: federation.id, partnerId: null, level: 'partner', epsilon: 1.0, setBy: 'compliance' });
      await s.chargeLedger(federation.id, capPlan);
      await s.revokeToken('jti-x', 'operator', null);
      for (const table of APPEND_ONLY_TABLES) {
        await expect(b.raw(`UPDATE ${table} SET ${TEXT_COLUMN[table]} = 'x'`), `${table} update`).rejects.toThrow(/append-only/);
        await expect(b.raw(`DELETE FROM ${table}`), `${table} delete`).rejects.toThrow(/append-only/);
      }
      expect((await s.verifyAudit()).ok).toBe(true);
    }, HANG_GUARD);

    it('the audit log: signed Merkle heads, appends from two coordinators interleaved, a rewritten entry is found', async () => {
      await fresh();
      const other = (await b.second()) ?? s;
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? other : s).audit('operator', `action.${i}`, null, { i })));
      const v = await s.verifyAudit();
      expect(v).toEqual({ ok: true, entries: 10, brokenAt: null, reason: null });
      expect((await s.listAudit(100)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect((await s.listAudit(100, 8)).map((e) => e.seq)).toEqual([9, 10]);
      const head = (await other.newestAuditHead())!;
      expect(head.size).toBe(10);
      expect(head.publicKey).toBe(Buffer.from(key.publicKey).toString('hex'));
      expect(verifyTreeHead(head)).toBe(true);
      // Proofs from the stored rows (RFC 6962), checked the way a partner checks them.
      const heads = await s.listAuditHeads();
      expect(heads.map((h) => h.size)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const entry4 = (await s.listAudit(1, 3))[0]!;
      expect(checkEntryIncluded(entry4, await other.auditInclusion(4), head)).toBeNull();
      expect(checkEntryIncluded({ ...entry4, action: 'forged' }, await s.auditInclusion(4), head)).not.toBeNull();
      expect(checkHeadExtends(heads[5]!, head, (await s.auditConsistency(6)).proof)).toBeNull();
      await expect(s.auditInclusion(99)).rejects.toThrow(/not found/);
      await expect(s.auditConsistency(3, 11)).rejects.toThrow(/beyond the newest signed head/);
      await s.checkAuditAtStart();
      await b.dropAuditUpdateGuard();
      await b.raw("UPDATE audit_log SET action = 'action.rewritten' WHERE seq = 4");
      const broken = await s.verifyAudit();
      expect([broken.ok, broken.brokenAt]).toEqual([false, 4]);
      await expect(s.checkAuditAtStart()).rejects.toThrow(/does not verify against its signed tree heads \(entry 4/);
    }, HANG_GUARD);
  });
}
