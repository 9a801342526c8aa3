/**
 * Helpers for the tests with several real coordinators on one PostgreSQL (cluster-serve, issue-15-six-agents):
 * free ports, a `fedmart coordinator --cluster` process, the mid-round kill -9 and the wait for the takeover.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';
import type { Coordinator } from '@fedmart/coordinator';
import { ApiClient } from '../cli/api-client.ts';
import { waitForLine } from './helpers.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port (the advertised URL must be known before the coordinator listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Poll a schedule until it is neither pending nor running. */
export async function waitScheduleDone(api: ApiClient, id: string, withinMs = 150_000): Promise<ScheduleView> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const { schedule } = await api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${id}`);
    if (schedule.status !== 'pending' && schedule.status !== 'running') return schedule;
    if (Date.now() > deadline) throw new Error(`schedule ${id} still ${schedule.status} after ${withinMs / 1000} s: ${JSON.stringify(schedule)}`);
    await sleep(100);
  }
}

/** Create a database in the throwaway cluster at `clusterUrl` (…/postgres); returns its URL. */
export async function createDatabase(clusterUrl: string, name: string): Promise<string> {
  const admin = new pg.Client(clusterUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return clusterUrl.replace(/\/postgres$/, `/${name}`);
}

export interface ClusterProcess { child: ChildProcess; exited: Promise<void>; url: string; api: ApiClient }

/** Start `fedmart coordinator --cluster` as a real process on `databaseUrl`; resolves once it listens. */
export async function spawnClusterCoordinator(databaseUrl: string, dataDir: string, coordinatorId: string, onCleanup: (fn: () => Promise<void>) => void): Promise<ClusterProcess> {
  const port = await freePort();
  const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
  const child = spawn(process.execPath, [BIN, 'coordinator', '--cluster', '--database', databaseUrl, '--advertise-url', `http://127.0.0.1:${port}`, '--coordinator-id', coordinatorId, '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn'], { env: { ...process.env, FEDMART_DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  onCleanup(async () => { child.kill('SIGKILL'); await exited; });
  const url = /http:\/\/\S+/.exec(await waitForLine(child, /listening on http:\/\/\S+/))![0];
  if (url !== `http://127.0.0.1:${port}`) throw new Error(`the coordinator process listens on ${url}, expected http://127.0.0.1:${port}`);
  return { child, exited, url, api: new ApiClient(url, (await readFile(path.join(dataDir, 'operator.token'), 'utf8')).trim()) };
}

/** Wait until `holder` holds the federation's lease in PostgreSQL. */
export async function waitLeaseHolder(c: pg.Client, fed: string, holder: string): Promise<void> {
  const current = async () => (await c.query<{ holder: string }>('SELECT holder FROM fedmart_leases WHERE federation_id = $1 AND expires_at > clock_timestamp()', [fed])).rows[0]?.holder;
  while ((await current()) !== holder) await sleep(50);
}

/** Wait until the federation's first round is past selection (the partners train); returns its phase. */
export async function waitMidRound(c: pg.Client, fed: string): Promise<string> {
  let phase: string | undefined;
  while ((phase = (await c.query<{ phase: string }>('SELECT phase FROM rounds WHERE federation_id = $1', [fed])).rows[0]?.phase) === undefined || phase === 'scheduled' || phase === 'selecting') await sleep(20);
  return phase;
}

/** kill -9 the process, then wait until `survivor` leads the federation; returns the kill time and the seconds it took. */
export async function killAndAwaitTakeover(proc: ClusterProcess, survivor: Coordinator, fed: string): Promise<{ killedAt: number; failoverSeconds: number }> {
  proc.child.kill('SIGKILL');
  await proc.exited;
  const killedAt = Date.now();
  while (!survivor.cluster!.leases.leads(fed)) await sleep(50);
  return { killedAt, failoverSeconds: (Date.now() - killedAt) / 1000 };
}
