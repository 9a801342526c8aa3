/**
 * Schedules fire once across coordinators (issue 15): two Schedulers, each on its own handle on one
 * SQLite file (as two coordinators on one database), both holding the same `every` schedule; at each
 * due tick both timers fire and exactly one runs the round (the other lost the compare-and-set on
 * next_run_at, store.claimScheduleTick). One process runs both, so their reads would never interleave;
 * the second coordinator's store returns, once per tick, the row as it read it BEFORE the other
 * coordinator moved the tick on (what two processes reading at the same moment see). Fake clock, a
 * counting runner: no wall-clock assertion.
 */
import { afterAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { openDatabase } from '@fedmart/coordinator/db/client';
import { Store } from '@fedmart/coordinator/db/store';
import { SqliteAsyncStore } from '@fedmart/coordinator/db/store-sqlite-async';
import { Scheduler, type RoundRunner } from '@fedmart/coordinator/scheduler';
import type { RoundOutcome } from '@fedmart/coordinator/orchestrator';
import { PgStore } from '@fedmart/coordinator/db/store-pg';
import { HANG_GUARD, usePgStore } from '@fedmart/coordinator/cluster/pg-fixture';
import { FakeClock } from './fake-clock.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'fedmart-sched-claim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A coordinator whose next schedule read is the snapshot it took earlier (read at the same moment as the other). */
class ConcurrentReader extends Store {
  stale: ReturnType<Store['getSchedule']> | null = null;
  override getSchedule(id: string) {
    const s = this.stale;
    this.stale = null;
    return s && s.id === id ? s : super.getSchedule(id);
  }
}

function countingRunner(ran: string[], name: string): RoundRunner {
  return {
    async runRound(_fed, { roundId }): Promise<RoundOutcome> {
      ran.push(name);
      return { roundId, round: ran.length, phase: 'committed', reason: null, metrics: {}, participants: [], failures: {}, seconds: 0 } as unknown as RoundOutcome;
    },
    hasActiveRound: () => false,
    projectNextRound: () => null,
  };
}

it('an every-60 s schedule held by two coordinators on one database runs each due tick once (10 ticks)', async () => {
  const file = path.join(dir, 'fedmart.db');
  const key = generateEd25519KeyPair();
  const a = new Store(openDatabase(file), key); // each handle's audit appends catch up with the other's rows (audit-log.ts)
  const b = new ConcurrentReader(openDatabase(file), key);
  const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
  const { federation } = a.createFederation('fed', config, new Float32Array(4));
  const t0 = Date.parse('2026-01-15T00:00:00Z');
  const clock = new FakeClock(t0);
  const ran: string[] = [];
  const sa = new Scheduler(new SqliteAsyncStore(a), countingRunner(ran, 'a'), clock);
  const sb = new Scheduler(new SqliteAsyncStore(b), countingRunner(ran, 'b'), clock);
  const { schedule } = await sa.create(federation.id, { kind: 'every', everySeconds: 60, maxRounds: 10 }, 'operator');
  await sb.resumeOpen(); // the second coordinator carries the same open schedule
  for (let i = 1; i <= 10; i++) {
    b.stale = a.getSchedule(schedule.id); // both read the due tick before either claims it
    clock.advanceTo(t0 + i * 60_000);
    await new Promise((r) => setTimeout(r, 20)); // let the round jobs settle
    expect(ran, `after tick ${i}`).toHaveLength(i);
  }
  const row = a.getSchedule(schedule.id);
  expect([row.completed, row.skipped]).toEqual([10, 0]);
  sa.close();
  sb.close();
  a.db.$client.close();
  b.db.$client.close();
}, 120_000);

// --- PostgreSQL: two coordinators' schedulers on two pools of one database (real concurrent reads) ---
const pg = usePgStore('scheduler-claim (PostgreSQL)');

it.skipIf(pg.skip)('on PostgreSQL, an every-60 s schedule held by two coordinators runs each due tick once (10 ticks)', async () => {
  // Arrange: a second coordinator's store on the same database; both schedulers hold the schedule
  const a = pg.store;
  const b = await PgStore.open(pg.cluster!.url, generateEd25519KeyPair());
  pg.onCleanup(() => b.close());
  const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
  const { federation } = await a.createFederation('fed', config, new Float32Array(4));
  const t0 = Date.parse('2026-01-15T00:00:00Z');
  const clock = new FakeClock(t0);
  const ran: string[] = [];
  const sa = new Scheduler(a, countingRunner(ran, 'a'), clock);
  const sb = new Scheduler(b, countingRunner(ran, 'b'), clock);
  const { schedule } = await sa.create(federation.id, { kind: 'every', everySeconds: 60, maxRounds: 10 }, 'operator');
  await sb.resumeOpen();
  const settled = async (i: number) => {
    const end = Date.now() + 60_000; // hang guard only
    // Both schedulers handled the tick: the round is recorded and each planned its next timer (after the last: the schedule ended).
    const handled = async () => {
      const row = await a.getSchedule(schedule.id);
      return i < 10 ? row.completed >= i && clock.timers.size === 2 : row.status === 'done';
    };
    while (!(await handled())) {
      if (Date.now() > end) throw new Error(`tick ${i} did not settle: ${JSON.stringify(await a.getSchedule(schedule.id))}, ${clock.timers.size} timers`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  // Act + Assert: each tick fires both timers; exactly one coordinator runs it
  for (let i = 1; i <= 10; i++) {
    clock.advanceTo(t0 + i * 60_000);
    await settled(i);
    expect(ran, `after tick ${i}`).toHaveLength(i);
  }
  const row = await a.getSchedule(schedule.id);
  expect([row.status, row.completed, row.skipped]).toEqual(['done', 10, 0]);
  sa.close();
  sb.close();
}, HANG_GUARD);
