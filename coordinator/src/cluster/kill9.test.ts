/**
 * kill -9 of a real cluster member process (cluster/failover-probe.ts): two node-process.ts members on a
 * throwaway PostgreSQL 15, the leader SIGKILLed mid-round (no lease release): the other process takes the
 * lease with the next epoch and marks the interrupted round failed, at the default lease (TTL 6 s, renew 2 s).
 * Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { describe, expect, it } from 'vitest';
import { HANG_GUARD, usePgStore } from './pg-fixture.ts';
import { probeFailover } from './failover-probe.ts';

const fx = usePgStore('cluster kill -9');

describe.skipIf(fx.skip)('cluster member killed with SIGKILL', () => {
  it('the surviving process takes the lease (epoch + 1) and fails the round the killed leader was running', async () => {
    const r = await probeFailover(fx.cluster!.url);
    console.log(`kill -9 → takeover by ${r.survivor}: ${r.failoverSeconds} s (lease TTL 6 s, renew 2 s)`);
    expect(r.survivor).not.toBe(r.killed);
    expect(r.epochs[1]).toBe(r.epochs[0] + 1);
    expect(r.failedRounds).toHaveLength(1);
    expect(r.interruptedRoundPhase).toBe('failed');
  }, HANG_GUARD);
});
