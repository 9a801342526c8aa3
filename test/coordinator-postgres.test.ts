/**
 * The same coordinator on PostgreSQL (issue 15): a real `fedmart coordinator --database postgres://…`
 * process on a throwaway PostgreSQL 15 cluster (pg-cluster.ts), real partner agents on the UCI bank
 * data over Socket.IO, rounds scheduled through the REST API. The model lineage, the rounds and the
 * privacy-ledger rows are then read back from PostgreSQL itself, and a restart of the process on the
 * same database serves them again (the audit check at start passes). Skips, with the printed
 * reason, only when no PostgreSQL server binaries exist.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';
import type { PgCluster } from '../coordinator/src/db/pg-cluster.ts';
import { usePgClusterAndTmpDir } from './pg-tmp.ts';
import { ApiClient } from '../cli/api-client.ts';
import { bankPartners, modelFor, waitForLine } from './helpers.ts';

await initBackend();

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const HANG_GUARD = 600_000;

let dir: string;
let cluster: PgCluster | null = null;
const pgBin = usePgClusterAndTmpDir('coordinator-postgres', 'fedmart-coord-pg-', (c, d) => { cluster = c; dir = d; }, HANG_GUARD);

/** Start `fedmart coordinator` on the database; resolves with the process and its URL once it listens. */
async function startProcess(url: string, dataDir: string): Promise<{ child: ChildProcess; base: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'coordinator', '--database', url, '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], { env: { ...process.env, FEDMART_DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await Promise.race([waitForLine(child, /listening on (http:\/\/\S+)/), exited.then((code) => { throw new Error(`fedmart coordinator exited with ${code} before listening`); })]);
  return { child, base: /http:\/\/\S+/.exec(line)![0], exited };
}

async function waitScheduleDone(api: ApiClient, id: string): Promise<ScheduleView> {
  const end = Date.now() + HANG_GUARD; // hang guard only
  for (;;) {
    const { schedule } = await api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${id}`);
    if (schedule.status !== 'pending' && schedule.status !== 'running') return schedule;
    if (Date.now() > end) throw new Error(`schedule ${id} did not finish: ${JSON.stringify(schedule)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('fedmart coordinator --database postgres://', () => {
  it.skipIf(pgBin === null)('serves rounds from PostgreSQL: partners over Socket.IO, versions, lineage and ledger rows in PostgreSQL, served again after a restart', async () => {
    // Arrange: an empty database, a coordinator process on it, a DP federation with three bank partners
    const admin = new pg.Client(cluster!.url);
    await admin.connect();
    await admin.query('CREATE DATABASE serve_e2e');
    await admin.end();
    const url = cluster!.url.replace(/\/postgres$/, '/serve_e2e');
    const dataDir = path.join(dir, 'data');
    let proc = await startProcess(url, dataDir);
    const token = (await readFile(path.join(dataDir, 'operator.token'), 'utf8')).trim();
    let api = new ApiClient(proc.base, token);
    const exp = await bankPartners();
    const config = {
      model: modelFor(exp), minClients: 3, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.05, proximalMu: 0 },
      timeouts: { selectingMs: 120_000, trainingMs: 120_000, evaluatingMs: 60_000 },
      dp: { level: 'record', noiseMultiplier: 1.5, clip: 1, delta: 1e-5 },
    };
    const fed = (await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'bank on pg', config })).federation.id;
    const agents: PartnerAgent[] = [];
    try {
      for (const p of exp.partners) {
        const { token: t } = await api.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: p.id });
        agents.push(startPartnerAgent({ coordinatorUrl: proc.base, token: t, data: p.data, reconnect: false }));
      }
      await Promise.all(agents.map((a) => a.ready));

      // Act: two rounds through the REST API
      const { scheduleId } = await api.post<{ scheduleId: string }>(`/api/v1/federations/${fed}/rounds`, { count: 2 });
      const done = await waitScheduleDone(api, scheduleId);

      // Assert: both committed
      expect(done).toMatchObject({ status: 'done', completed: 2, failed: 0 });
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }

    // Assert: read back from PostgreSQL itself
    const c = new pg.Client(url);
    await c.connect();
    const versions = (await c.query<{ id: string; version: number; parent_id: string | null; round_id: string | null }>('SELECT id, version::int AS version, parent_id, round_id FROM model_versions WHERE federation_id = $1 ORDER BY version', [fed])).rows;
    const rounds = (await c.query<{ id: string; number: number; phase: string }>('SELECT id, number::int AS number, phase FROM rounds WHERE federation_id = $1 ORDER BY number', [fed])).rows;
    const ledger = (await c.query<{ model_version_id: string | null; kind: string; level: string; partner_id: string | null }>('SELECT model_version_id, kind, level, partner_id FROM privacy_ledger WHERE federation_id = $1 ORDER BY id', [fed])).rows;
    const current = (await c.query<{ current_model_version_id: string }>('SELECT current_model_version_id FROM federations WHERE id = $1', [fed])).rows[0]!;
    const audited = (await c.query<{ action: string }>("SELECT action FROM audit_log WHERE action IN ('round.committed', 'coordinator.started') ORDER BY seq")).rows.map((r) => r.action);
    await c.end();
    expect(versions.map((v) => v.version)).toEqual([0, 1, 2]);
    expect(versions.map((v) => v.parent_id)).toEqual([null, versions[0]!.id, versions[1]!.id]);
    expect(rounds.map((r) => [r.number, r.phase])).toEqual([[1, 'committed'], [2, 'committed']]);
    expect(versions.slice(1).map((v) => v.round_id)).toEqual(rounds.map((r) => r.id));
    expect(current.current_model_version_id).toBe(versions[2]!.id);
    // Each committed version carries its spend: one federation row and one per partner, record level, written in the commit's transaction
    for (const v of versions.slice(1)) {
      const rows = ledger.filter((l) => l.model_version_id === v.id);
      expect(rows.map((l) => [l.kind, l.level])).toEqual(Array(4).fill(['spent', 'record']));
      expect(rows.filter((l) => l.partner_id === null)).toHaveLength(1);
    }
    expect(audited).toEqual(['coordinator.started', 'round.committed', 'round.committed']);

    // Act: stop the process and start it again on the same database
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    proc = await startProcess(url, dataDir);
    api = new ApiClient(proc.base, token);
    try {
      // Assert: the lineage is served from PostgreSQL by the new process
      const models = await api.get<{ currentModelVersionId: string; models: { version: number }[] }>(`/api/v1/federations/${fed}/models`);
      expect(models.models.map((v) => v.version)).toEqual([0, 1, 2]);
      expect(models.currentModelVersionId).toBe(versions[2]!.id);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  }, HANG_GUARD);
});
