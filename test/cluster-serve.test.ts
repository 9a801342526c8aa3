/**
 * Issue 15, several coordinators serving: two real coordinators (startCoordinator with `cluster`, the
 * code path of `fedmart coordinator --cluster --database … --advertise-url …`: Express + Socket.IO on
 * real ports, leases and the Socket.IO adapter on one throwaway PostgreSQL 15) and three real partner
 * agents on the UCI bank data, configured with the NON-leader's URL. The non-leader's hello hook sends
 * them to the leader; a REST round start at the non-leader is a 409 naming the leader's URL; a round
 * started at the leader gathers the three partners and commits (read back from PostgreSQL).
 * The coordinators share one data dir (signing key, log key, operator token), as coordinators of
 * one deployment share their secrets. Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import { HANG_GUARD, usePgStore } from '@fedmart/coordinator/cluster/pg-fixture';
import { startCoordinator, type Coordinator } from '@fedmart/coordinator';
import { ApiClient } from '../cli/api-client.ts';
import { bankPartners, modelFor } from './helpers.ts';
import { createDatabase, freePort, killAndAwaitTakeover, sleep, spawnClusterCoordinator, waitLeaseHolder, waitMidRound, waitScheduleDone } from './cluster-helpers.ts';

await initBackend();
const fx = usePgStore('cluster serve');

async function startMember(id: string, dataDir: string, url = fx.cluster!.url): Promise<Coordinator> {
  const port = await freePort();
  const c = await startCoordinator({ dataDir, port, portalDir: null, databaseUrl: url, cluster: { coordinatorId: id, advertiseUrl: `http://127.0.0.1:${port}`, lease: { ttlMs: 1500, renewMs: 300 }, redirectRetryMs: 200 } });
  fx.onCleanup(() => c.close());
  return c;
}

describe.skipIf(fx.skip)('issue 15: fedmart coordinator --cluster serves', () => {
  it('partners configured with the non-leader are redirected to the leader, a round there commits; a round start at the non-leader is a 409 naming the leader', async () => {
    // Arrange: two cluster members on one PostgreSQL, a federation of three bank partners
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-cluster-serve-'));
    fx.onCleanup(() => rm(dir, { recursive: true, force: true }));
    const a = await startMember('coord-a', dir);
    const b = await startMember('coord-b', dir);
    expect(b.operatorToken).toBe(a.operatorToken);
    const exp = await bankPartners();
    const config = {
      model: modelFor(exp), minClients: 3, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.05, proximalMu: 0 },
      timeouts: { selectingMs: 60_000, trainingMs: 120_000, evaluatingMs: 60_000 },
    };
    const fed = (await new ApiClient(a.url, a.operatorToken).post<{ federation: { id: string } }>('/api/v1/federations', { name: 'bank on a cluster', config })).federation.id;
    while (!a.cluster!.leases.leads(fed) && !b.cluster!.leases.leads(fed)) await sleep(50);
    const [leader, other] = a.cluster!.leases.leads(fed) ? [a, b] : [b, a];
    const leaderApi = new ApiClient(leader.url, leader.operatorToken), otherApi = new ApiClient(other.url, other.operatorToken);
    const agents: PartnerAgent[] = [];
    const logs: string[] = [];
    try {
      for (const p of exp.partners) {
        const { token } = await otherApi.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: p.id });
        agents.push(startPartnerAgent({ coordinatorUrl: other.url, token, data: p.data, log: (m) => void logs.push(m) }));
      }
      await Promise.all(agents.map((x) => x.ready));

      // Act 1: start a round at the non-leader
      const refused = await otherApi.post(`/api/v1/federations/${fed}/rounds`, { count: 1 }).then(() => null, (err: Error) => err.message);

      // Assert 1: refused with the leader's URL
      expect(refused).toContain(`does not lead federation ${fed}: start its rounds at the leader ${leader.cluster!.router.coordinatorId}, ${leader.url}`);

      // Act 2: a round at the leader
      const { scheduleId } = await leaderApi.post<{ scheduleId: string }>(`/api/v1/federations/${fed}/rounds`, { count: 1 });
      const done = await waitScheduleDone(leaderApi, scheduleId);

      // Assert 2: the partners were sent to the leader, the round committed with all three
      expect(logs.filter((m) => m.includes(`moving to ${leader.url}`))).toHaveLength(3);
      expect(done).toMatchObject({ status: 'done', completed: 1, failed: 0 });
    } finally {
      await Promise.all(agents.map((x) => x.close()));
    }
    const c = new pg.Client(fx.cluster!.url);
    await c.connect();
    const rounds = (await c.query<{ number: number; phase: string; n: number }>('SELECT r.number::int AS number, r.phase, (SELECT count(*)::int FROM model_versions v WHERE v.round_id = r.id) AS n FROM rounds r WHERE r.federation_id = $1 ORDER BY r.number', [fed])).rows;
    await c.end();
    expect(rounds).toEqual([{ number: 1, phase: 'committed', n: 1 }]);
    await a.close();
    await b.close();
  }, HANG_GUARD);

  it('kill -9 of a `fedmart coordinator --cluster` leader mid-round: the other takes the lease, marks the round failed, the partners reconnect, the schedule carries on there and its next round commits', async () => {
    // Arrange: a database of its own (the audit log of the test above is signed by another log key);
    // the leader is a real process; the other member starts once it leads the new federation
    const url = await createDatabase(fx.cluster!.url, 'failover');
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-cluster-kill-'));
    fx.onCleanup(() => rm(dir, { recursive: true, force: true }));
    const proc = await spawnClusterCoordinator(url, dir, 'coord-proc', (fn) => fx.onCleanup(fn));
    const procApi = proc.api;
    const exp = await bankPartners();
    const config = {
      model: modelFor(exp), minClients: 3, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.05, proximalMu: 0 },
      timeouts: { selectingMs: 60_000, trainingMs: 120_000, evaluatingMs: 60_000 },
    };
    const fed = (await procApi.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'bank failover', config })).federation.id;
    const c = new pg.Client(url);
    await c.connect();
    fx.onCleanup(() => c.end());
    await waitLeaseHolder(c, fed, 'coord-proc');
    const b = await startMember('coord-b', dir, url);
    const bApi = new ApiClient(b.url, b.operatorToken);
    const agents: PartnerAgent[] = [];
    try {
      for (const p of exp.partners) {
        const { token } = await bApi.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: p.id });
        agents.push(startPartnerAgent({ coordinatorUrl: b.url, token, data: p.data }));
      }
      await Promise.all(agents.map((x) => x.ready));
      // One schedule of 2 rounds, created at the leader; nobody starts a round after the kill.
      const { scheduleId } = await procApi.post<{ scheduleId: string }>(`/api/v1/federations/${fed}/rounds`, { count: 2 });
      // Mid-round: the leader gathered the three partners (redirected to it by the member they were configured with) and trains.
      expect(await waitMidRound(c, fed)).not.toBe('failed');

      // Act: kill -9 the leader mid-round; wait for the survivor to lead, then run the next round there
      const { killedAt, failoverSeconds } = await killAndAwaitTakeover(proc, b, fed);
      console.log(`cluster-serve: failoverSeconds=${failoverSeconds.toFixed(2)} (default lease TTL of the killed process)`);
      // The schedule carries on at the survivor (it resumed it on taking the lease): no operator action at all;
      // the partners come back by themselves and its second round commits there.
      const done = await waitScheduleDone(bApi, scheduleId);
      console.log(`cluster-serve: kill -9 → the schedule's next round committed at the survivor after ${((Date.now() - killedAt) / 1000).toFixed(2)} s`);

      // Assert: the interrupted round failed and counts as the schedule's failed round, the next one committed once
      expect(done).toMatchObject({ status: 'done', completed: 1, failed: 1 });
    } finally {
      await Promise.all(agents.map((x) => x.close()));
    }
    const rounds = (await c.query<{ number: number; phase: string; n: number }>('SELECT r.number::int AS number, r.phase, (SELECT count(*)::int FROM model_versions v WHERE v.round_id = r.id) AS n FROM rounds r WHERE r.federation_id = $1 ORDER BY r.number', [fed])).rows;
    expect(rounds).toEqual([{ number: 1, phase: 'failed', n: 0 }, { number: 2, phase: 'committed', n: 1 }]);
  }, HANG_GUARD);
});
