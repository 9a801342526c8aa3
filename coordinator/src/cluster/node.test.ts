/**
 * startClusterNode (cluster/node.ts) on a real throwaway PostgreSQL 15: two coordinators' nodes
 * compete for an active federation, exactly one leads; when the leader stops renewing (a crash,
 * its leases not released) the other takes over within the TTL + one renew period, marks the round
 * the dead leader was running failed and is told so; a clean close releases the lease at once.
 * Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import pg from 'pg';
import { Server as IoServer } from 'socket.io';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { findPgBin, startPgCluster, type PgCluster } from '../db/pg-cluster.ts';
import { PgStore } from '../db/store-pg.ts';
import { readLease } from './lease.ts';
import { startClusterNode, type ClusterNode } from './node.ts';

const HANG_GUARD = 180_000;
const pgBin = findPgBin();
if (!pgBin) console.warn('cluster node: skipping: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql');

let cluster: PgCluster | null = null;
let store: PgStore;
const cleanup: (() => Promise<void>)[] = [];
beforeAll(async () => {
  if (!pgBin) return;
  cluster = await startPgCluster({ bin: pgBin });
  store = await PgStore.open(cluster.url, generateEd25519KeyPair());
}, HANG_GUARD);
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await store?.close();
  await cluster?.stop();
}, HANG_GUARD);

async function node(coordinatorId: string, acquired: string[]): Promise<ClusterNode> {
  const pool = new pg.Pool({ connectionString: cluster!.url, max: 4 });
  const io = new IoServer(createServer(), { serveClient: false });
  const n = await startClusterNode({ pool, io, nsp: io.of('/federation'), coordinatorId, handle: () => ({ ok: true }), onAcquired: (f, failed) => void acquired.push(`${coordinatorId}@${f.epoch}:${failed.join(',')}`), lease: { ttlMs: 1500, renewMs: 300 } });
  cleanup.push(async () => { await n.close(); await new Promise<void>((r) => io.close(() => r())); await pool.end(); });
  return n;
}

describe.skipIf(pgBin === null)('startClusterNode', () => {
  it('one of two nodes leads; after the leader crashes the other takes over and fails the interrupted round; a clean close hands over at once', async () => {
    const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
    const { federation, model } = await store.createFederation('fed', config, new Float32Array(4));
    const acquired: string[] = [];
    const a = await node('coord-a', acquired);
    const b = await node('coord-b', acquired);
    expect([a.leases.leads(federation.id), b.leases.leads(federation.id)]).toEqual([true, false]);
    // The leader is mid-round when it dies.
    const round = await store.createRound({ id: 'r_1', federationId: federation.id, number: 1, phase: 'training', strategy: 'fedavg', config: '{}', baseModelVersionId: model.id, startedAt: Date.now() });
    await new Promise((r) => setTimeout(r, 700));
    expect(acquired).toEqual(['coord-a@1:']);
    expect((await store.getRound(round.id)).phase).toBe('training');
    await a.leases.stop(false); // crash: no release
    const t0 = Date.now();
    while (!b.leases.leads(federation.id)) await new Promise((r) => setTimeout(r, 50));
    console.log(`takeover after the leader stopped: ${Date.now() - t0} ms (TTL 1500 ms, renew 300 ms)`);
    expect(acquired).toEqual(['coord-a@1:', 'coord-b@2:r_1']);
    expect((await store.getRound(round.id)).phase).toBe('failed');
    await b.close();
    expect((await readLease(store.pool, federation.id))!.expiresInMs).toBeLessThan(0);
  }, HANG_GUARD);
});
