/**
 * The per-federation leader lease (cluster/lease.ts) on a real throwaway PostgreSQL 15: takeover only
 * after expiry with a new fencing epoch, a stale leader's commit refused inside the commit
 * transaction, the heartbeat manager losing a lease at once, and a new leader failing the rounds its
 * predecessor left running. Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { HANG_GUARD, usePgStore } from './pg-fixture.ts';
import { acquireLease, failInterruptedRoundsUnderLease, LeaseManager, readLease, renewLease, type Fence } from './lease.ts';

const fx = usePgStore('cluster lease');


const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
const weights = () => new Float32Array([0.1, 0.2, 0.3, 0.4]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Wait (hang-guarded by the test timeout) until the federation's lease has run out by the database's clock. */
async function untilExpired(federationId: string): Promise<void> {
  while (((await readLease(fx.store.pool, federationId))?.expiresInMs ?? -1) >= 0) await sleep(50);
}
async function federationWithRound(number = 1) {
  const { federation, model } = await fx.store.createFederation(`fed-${Math.random().toString(36).slice(2)}`, config, weights());
  const round = await fx.store.createRound({ id: `r_${federation.id}_${number}`, federationId: federation.id, number, phase: 'training', strategy: 'fedavg', config: '{}', baseModelVersionId: model.id, startedAt: Date.now() });
  return { federation, model, round };
}
const commitArgs = (federationId: string, roundId: string, parentId: string, fence?: Fence) => ({ federationId, roundId, parentId, strategy: 'fedavg', participants: ['p1'], metrics: {}, spec: {}, weights: weights(), ...(fence ? { fence } : {}) });

describe.skipIf(fx.skip)('per-federation leader lease (PostgreSQL)', () => {
  it('a live lease is exclusive; after expiry another coordinator takes it with the next epoch, and the old holder can no longer renew', async () => {
    const { federation } = await federationWithRound();
    const a = await acquireLease(fx.store.pool, federation.id, 'coord-a', 1500);
    expect(a).toEqual({ federationId: federation.id, holder: 'coord-a', epoch: 1 });
    expect(await acquireLease(fx.store.pool, federation.id, 'coord-b', 1500)).toBeNull();
    expect(await renewLease(fx.store.pool, a!, 1500)).toBe(true);
    await untilExpired(federation.id);
    const b = await acquireLease(fx.store.pool, federation.id, 'coord-b', 60_000);
    expect(b).toEqual({ federationId: federation.id, holder: 'coord-b', epoch: 2 });
    expect(await renewLease(fx.store.pool, a!, 1500)).toBe(false);
    expect(await acquireLease(fx.store.pool, federation.id, 'coord-a', 1500)).toBeNull();
  }, HANG_GUARD);

  it('fencing: a stale leader\'s commitRound fails inside the commit transaction and writes nothing; the new leader commits', async () => {
    const { federation, model, round } = await federationWithRound();
    const a = (await acquireLease(fx.store.pool, federation.id, 'coord-a', 1000))!;
    await untilExpired(federation.id);
    const b = (await acquireLease(fx.store.pool, federation.id, 'coord-b', 60_000))!;
    await expect(fx.store.commitRound(commitArgs(federation.id, round.id, model.id, a))).rejects.toThrow(/coord-a no longer leads .* epoch 1/);
    expect((await fx.store.listModelVersions(federation.id)).map((v) => v.version)).toEqual([0]);
    expect((await fx.store.getRound(round.id)).phase).toBe('training');
    const v = await fx.store.commitRound(commitArgs(federation.id, round.id, model.id, b));
    expect(v.version).toBe(1);
    // An expired lease that nobody took over yet fences too: a leader that stopped renewing must not commit.
    const r2 = await fx.store.createRound({ id: `r_${federation.id}_2`, federationId: federation.id, number: 2, phase: 'training', strategy: 'fedavg', config: '{}', baseModelVersionId: v.id, startedAt: Date.now() });
    await fx.store.pool.query("UPDATE fedmart_leases SET expires_at = clock_timestamp() - interval '1 second' WHERE federation_id = $1", [federation.id]);
    await expect(fx.store.commitRound(commitArgs(federation.id, r2.id, v.id, b))).rejects.toThrow(/no longer leads/);
    expect((await fx.store.listModelVersions(federation.id)).length).toBe(2);
  }, HANG_GUARD);

  it('a takeover waits for the commit that holds the fence: the commit is either before it or refused', async () => {
    const { federation, model, round } = await federationWithRound();
    const a = (await acquireLease(fx.store.pool, federation.id, 'coord-a', 60_000))!;
    // Hold A's commit transaction open (fence share-locked) while B tries to take over the (forcibly expired) lease.
    const c = new pg.Client(fx.cluster!.url);
    await c.connect();
    await c.query('BEGIN');
    await c.query('SELECT 1 FROM fedmart_leases WHERE federation_id = $1 AND epoch = $2 FOR SHARE', [federation.id, a.epoch]);
    const other = new pg.Client(fx.cluster!.url);
    await other.connect();
    let takenOver = false;
    const takeover = (async () => {
      await other.query("SET lock_timeout = '60s'");
      await other.query("UPDATE fedmart_leases SET expires_at = clock_timestamp() - interval '1 ms' WHERE federation_id = $1", [federation.id]);
      const f = await acquireLease(other, federation.id, 'coord-b', 60_000);
      takenOver = true;
      return f;
    })();
    await sleep(500);
    expect(takenOver).toBe(false);
    await c.query('COMMIT');
    expect((await takeover)?.epoch).toBe(2);
    await expect(fx.store.commitRound(commitArgs(federation.id, round.id, model.id, a))).rejects.toThrow(/no longer leads/);
    await c.end();
    await other.end();
  }, HANG_GUARD);

  it('LeaseManager: one of two coordinators leads; killing its heartbeat hands the lease over after the TTL; a holder whose lease was taken loses it at once', async () => {
    const { federation, round } = await federationWithRound();
    const feds = async () => [federation.id];
    const lost: string[] = [];
    const acquired: Fence[] = [];
    const a = new LeaseManager(fx.store.pool, 'coord-a', feds, { onAcquired: (f) => void acquired.push(f), onLost: (f, why) => void lost.push(`${f.holder}:${why}`) }, { ttlMs: 1500, renewMs: 300 });
    const b = new LeaseManager(fx.store.pool, 'coord-b', feds, { onAcquired: async (f) => { acquired.push(f); await failInterruptedRoundsUnderLease(fx.store.pool, f); }, onLost: (f, why) => void lost.push(`${f.holder}:${why}`) }, { ttlMs: 1500, renewMs: 300 });
    await a.start();
    await b.start();
    expect(a.leads(federation.id)).toBe(true);
    expect(b.leads(federation.id)).toBe(false);
    await sleep(1000); // several renewals: A keeps it, B does not get it
    await b.heartbeat();
    expect(b.leads(federation.id)).toBe(false);
    // A "crashes": its heartbeat stops without releasing.
    const crashedAt = Date.now();
    await a.stop(false);
    while (!b.leads(federation.id)) {
      await sleep(50);
    }
    const tookMs = Date.now() - crashedAt;
    console.log(`lease takeover after the holder stopped renewing: ${tookMs} ms (TTL 1500 ms, renew 300 ms)`);
    expect(b.fence(federation.id)?.epoch).toBe(2);
    expect(acquired.map((f) => `${f.holder}@${f.epoch}`)).toEqual(['coord-a@1', 'coord-b@2']);
    // The interrupted round of the dead leader failed under B's lease.
    expect((await fx.store.getRound(round.id)).phase).toBe('failed');
    expect((await fx.store.getRound(round.id)).reason).toMatch(/coord-b took over/);
    // Someone takes B's lease behind its back (forced expiry): B's next heartbeat drops it and reports the loss.
    await fx.store.pool.query("UPDATE fedmart_leases SET expires_at = clock_timestamp() - interval '1 ms' WHERE federation_id = $1", [federation.id]);
    expect(await acquireLease(fx.store.pool, federation.id, 'coord-c', 60_000)).toMatchObject({ epoch: 3 });
    await b.heartbeat();
    expect(b.leads(federation.id)).toBe(false);
    expect(lost).toEqual(['coord-b:the lease expired or another coordinator took it over']);
    await b.stop();
  }, HANG_GUARD);

  it('a stale fence fails no rounds', async () => {
    const { federation, round } = await federationWithRound();
    const a = (await acquireLease(fx.store.pool, federation.id, 'coord-a', 1000))!;
    await untilExpired(federation.id);
    expect(await failInterruptedRoundsUnderLease(fx.store.pool, a)).toEqual([]);
    expect((await fx.store.getRound(round.id)).phase).toBe('training');
  }, HANG_GUARD);
  it('a leader cut off from the database stops leading on its local deadline, before another coordinator can take over', async () => {
    const { federation } = await federationWithRound();
    let partitioned = false;
    // The real pool until "partitioned"; then every statement hangs (a network partition), as a dead link does.
    const flaky = { query: ((text: string, values?: unknown[]) => (partitioned ? new Promise(() => undefined) : fx.store.pool.query(text, values))) as typeof fx.store.pool.query };
    const order: string[] = [];
    const a = new LeaseManager(flaky, 'coord-a', async () => [federation.id], { onLost: (_f, why) => void order.push(`a lost: ${why}`) }, { ttlMs: 1500, renewMs: 300 });
    const b = new LeaseManager(fx.store.pool, 'coord-b', async () => [federation.id], { onAcquired: () => void order.push('b acquired') }, { ttlMs: 1500, renewMs: 300 });
    await a.start();
    expect(a.leads(federation.id)).toBe(true);
    partitioned = true;
    await b.start();
    while (!b.leads(federation.id)) await sleep(50);
    expect(order).toEqual(['a lost: no renewal answered before the lease ran out', 'b acquired']);
    expect(a.leads(federation.id)).toBe(false);
    await a.stop(false);
    await b.stop();
  }, HANG_GUARD);

  it('a won lease leads only once onAcquired resolved; an onAcquired that throws gives the lease back and a later heartbeat retries', async () => {
    const { federation, round } = await federationWithRound();
    // Arrange: the first takeover waits on a gate, the second one throws, the third succeeds.
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    let calls = 0, entered = false;
    const lost: string[] = [];
    const m = new LeaseManager(fx.store.pool, 'coord-a', async () => [federation.id], {
      onAcquired: async (f) => {
        calls++;
        if (calls === 1) { entered = true; await gate; await failInterruptedRoundsUnderLease(fx.store.pool, f); }
        if (calls === 2) throw new Error('schedules did not load');
      },
      onLost: (f, why) => void lost.push(`${f.epoch}:${why}`),
    }, { ttlMs: 60_000, renewMs: 20_000 });
    // Act 1: the lease is won, onAcquired has not finished (the interrupted round is still running).
    const started = m.start();
    while (!entered) await sleep(20);
    expect((await readLease(fx.store.pool, federation.id))?.holder).toBe('coord-a');
    expect((await fx.store.getRound(round.id)).phase).toBe('training');
    expect(m.leads(federation.id)).toBe(false);
    expect(m.fence(federation.id)).toBeUndefined();
    expect(m.held()).toEqual([]);
    // Act 2: onAcquired resolves: now it leads, and the round is failed.
    open();
    await started;
    expect(m.leads(federation.id)).toBe(true);
    expect((await fx.store.getRound(round.id)).phase).toBe('failed');
    // Act 3: another coordinator's takeover whose onAcquired throws: the lease is released at once, not led.
    await m.stop();
    const errors: string[] = [];
    const b = new LeaseManager(fx.store.pool, 'coord-b', async () => [federation.id], {
      onAcquired: async () => { calls++; if (calls === 2) throw new Error('schedules did not load'); },
      onLost: (f, why) => void lost.push(`${f.holder}@${f.epoch}:${why}`),
    }, { ttlMs: 60_000, renewMs: 20_000, onError: (e) => void errors.push((e as Error).message) });
    await b.start();
    expect(b.leads(federation.id)).toBe(false);
    expect((await readLease(fx.store.pool, federation.id))!.expiresInMs).toBeLessThan(0);
    expect(errors).toEqual([expect.stringMatching(/taking over federation .* \(lease epoch 2\) failed: schedules did not load; lease released/)]);
    expect(lost).toEqual(['coord-b@2:taking over failed: schedules did not load']);
    // Assert: the next heartbeat takes it again (epoch 3) and this time leads.
    await b.heartbeat();
    expect(b.fence(federation.id)).toEqual({ federationId: federation.id, holder: 'coord-b', epoch: 3 });
    await b.stop();
  }, HANG_GUARD);
});
