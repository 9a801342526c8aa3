/**
 * Schedules (issue 13, item 1) against a real coordinator, real SQLite and
 * real partner agents on the UCI bank data. Only the schedules' clock is fake
 * (an injected {@link ScheduleClock}): rounds, sockets and timeouts run on real time.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { privacyReport } from '@fedmart/coordinator/privacy';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { ApiClient } from '../cli/api-client.ts';
import { FedmartError } from '@fedmart/shared/errors';
import type { RoundTraining, TaskRoundArgs } from '@fedmart/shared/task/types';
import { tabularTask, type PartnerTask } from '@fedmart/client-node/task';
import { FakeClock } from './fake-clock.ts';
import { bankPartners, connectBankPartners, modelFor, startFixture, waitFor, type Fixture, type LocalData } from './helpers.ts';

await initBackend();

type Cfg = Partial<FederationConfigInput> & { model: FederationConfigInput['model'] };
const LOCAL = { localEpochs: 1, batchSize: 64, learningRate: 0.05, proximalMu: 0 };
const HOUR = 3_600_000;

async function schedule(fx: Fixture, id: string): Promise<ScheduleView> {
  return (await fx.api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${id}`)).schedule;
}
async function create(fx: Fixture, fed: string, spec: unknown): Promise<ScheduleView> {
  return (await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/federations/${fed}/schedules`, spec)).schedule;
}
async function waitSchedule(fx: Fixture, id: string, pred: (s: ScheduleView) => boolean, what: string): Promise<ScheduleView> {
  let s = await schedule(fx, id);
  const end = Date.now() + 600_000; // hang guard only
  while (!pred(s)) {
    if (Date.now() > end) throw new Error(`timed out waiting for schedule ${id}: ${what}; last ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
    s = await schedule(fx, id);
  }
  return s;
}
const roundCount = (fx: Fixture, fed: string) => fx.coord.store.listRounds(fed).length;

/** The tabular task, except that round `round` waits (after calling `onHold`) until the agent stops. */
function holdRound(data: LocalData, round: number, onHold: () => void): PartnerTask {
  const base = tabularTask(data);
  return Object.assign(Object.create(base) as PartnerTask, {
    round(args: TaskRoundArgs): RoundTraining {
      const inner = base.round(args);
      if (args.round !== round) return inner;
      return {
        async plain() {
          onHold();
          await new Promise<void>((resolve) => args.signal?.addEventListener('abort', () => resolve(), { once: true }));
          throw new FedmartError('UNAVAILABLE', 'the partner stopped');
        },
      };
    },
  });
}

describe('schedules with a fake clock', () => {
  it('runs cron ticks in the schedule\'s time zone and skips (and records) a tick that arrives while a round runs', async () => {
    // Arrange: 2026-01-15 00:00 UTC; "09:30 every day in Paris" is 08:30 UTC in winter
    const clock = new FakeClock(Date.parse('2026-01-15T00:00:00Z'));
    const exp = await bankPartners();
    await using fx = await startFixture(null, { scheduleClock: clock });
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL } as Cfg);
    const agents = await connectBankPartners(fx, fed);

    // Act
    const s0 = await create(fx, fed, { kind: 'cron', cron: '30 9 * * *', timezone: 'Europe/Paris', maxRounds: 2 });

    // Assert: the first tick is planned in Paris time; nothing runs before it
    expect(s0).toMatchObject({ kind: 'cron', status: 'pending', nextRunAt: '2026-01-15T08:30:00.000Z', maxRounds: 2 });
    clock.advanceTo(Date.parse('2026-01-15T08:29:59Z'));
    expect(roundCount(fx, fed)).toBe(0);

    // Act: the tick fires; while its round runs, the next day's tick arrives
    clock.advanceTo(Date.parse('2026-01-15T08:30:00Z'));
    await waitFor(() => fx.coord.orchestrator.isRoundActive(fed), 60_000, 'the first cron round to start');
    clock.advanceTo(Date.parse('2026-01-16T08:30:00Z'));
    const afterOverrun = await schedule(fx, s0.id);
    const first = await waitSchedule(fx, s0.id, (s) => s.completed + s.failed === 1, 'the first round to end');

    // Assert: the overrun tick was skipped and recorded, not queued
    expect(afterOverrun.skipped).toBe(1);
    expect(first).toMatchObject({ completed: 1, failed: 0, skipped: 1, status: 'running', nextRunAt: '2026-01-17T08:30:00.000Z' });
    expect(roundCount(fx, fed)).toBe(1);
    const skipped = fx.coord.store.listAudit(1000).filter((e) => e.action === 'schedule.tick-skipped' && e.subject === s0.id);
    expect(skipped).toHaveLength(1);
    expect(JSON.parse(skipped[0]!.data!)).toMatchObject({ scheduledFor: '2026-01-16T08:30:00.000Z' });

    // Act: the third tick runs the second (last) round
    clock.advanceTo(Date.parse('2026-01-17T08:30:00Z'));
    const done = await waitSchedule(fx, s0.id, (s) => s.status === 'done', 'the schedule to finish');

    // Assert
    expect(done).toMatchObject({ completed: 2, failed: 0, skipped: 1, nextRunAt: null, reason: null });
    expect(fx.coord.store.listRounds(fed).map((r) => r.phase)).toEqual(['committed', 'committed']);
    expect(clock.timers.size).toBe(0);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('pauses (no ticks), resumes (next tick planned from now) and cancels an every-interval schedule', async () => {
    // Arrange
    const t0 = Date.parse('2026-03-01T12:00:00Z');
    const clock = new FakeClock(t0);
    const exp = await bankPartners();
    await using fx = await startFixture(null, { scheduleClock: clock });
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL } as Cfg);
    const agents = await connectBankPartners(fx, fed);
    const s = await create(fx, fed, { kind: 'every', everySeconds: 3600 });
    expect(s.nextRunAt).toBe(new Date(t0 + HOUR).toISOString());

    // Act: paused before its first tick, two hours pass
    const paused = (await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/schedules/${s.id}/pause`, {})).schedule;
    clock.advanceTo(t0 + 2 * HOUR);

    // Assert: no tick, no round
    expect(paused).toMatchObject({ status: 'paused', nextRunAt: null });
    expect(clock.timers.size).toBe(0);
    expect(roundCount(fx, fed)).toBe(0);

    // Act: resumed, the next tick on the hour grid runs a round
    const resumed = (await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/schedules/${s.id}/resume`, {})).schedule;
    expect(resumed).toMatchObject({ status: 'pending', nextRunAt: new Date(t0 + 3 * HOUR).toISOString() });
    clock.advanceTo(t0 + 3 * HOUR);
    const ran = await waitSchedule(fx, s.id, (x) => x.completed === 1, 'the resumed schedule to run a round');
    expect(ran).toMatchObject({ status: 'running', failed: 0, nextRunAt: new Date(t0 + 4 * HOUR).toISOString() });

    // Act: cancelled; later ticks run nothing
    const cancelled = (await fx.api.post<{ schedule: ScheduleView }>(`/api/v1/schedules/${s.id}/cancel`, {})).schedule;
    clock.advanceTo(t0 + 10 * HOUR);

    // Assert
    expect(cancelled).toMatchObject({ status: 'cancelled', nextRunAt: null });
    expect(cancelled.reason).toMatch(/cancelled by/);
    expect(clock.timers.size).toBe(0);
    expect(roundCount(fx, fed)).toBe(1);
    const again = await fx.api.request('POST', `/api/v1/schedules/${s.id}/resume`, {}).catch((e: Error) => e);
    expect(String(again)).toMatch(/cancelled, not paused/);
    expect(fx.coord.store.listAudit(1000).map((e) => e.action)).toEqual(expect.arrayContaining(['schedule.created', 'schedule.paused', 'schedule.resumed', 'schedule.cancelled']));
    await Promise.all(agents.map((a) => a.close()));
  });

  it('resumes schedules after a coordinator restart: the interrupted round counts as failed and the schedule goes on', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-sched-'));
    try {
      const t0 = Date.parse('2026-06-01T00:00:00Z');
      const exp = await bankPartners();
      let fed: string, nowId: string, cronId: string;
      {
        // Arrange: a 3-round schedule and a cron schedule; the coordinator stops during the 2nd round
        await using fx = await startFixture(dir, { scheduleClock: new FakeClock(t0) });
        // Generous selection: after the restart the schedule resumes at once, before the partners are back.
        fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL, timeouts: { selectingMs: 120_000, trainingMs: 120_000, evaluatingMs: 60_000 } } as Cfg);
        // Partner 0 holds its round-2 training until it is closed, so the stop lands mid-round
        // whatever the machine's load (not in a gap between rounds).
        let holding = false;
        const agents = await connectBankPartners(fx, fed, { extra: (i) => (i === 0 ? { task: holdRound(exp.partners[0]!.data, 2, () => { holding = true; }) } : {}) });
        cronId = (await create(fx, fed, { kind: 'cron', cron: '0 3 * * *', timezone: 'UTC', maxRounds: 1 })).id;
        nowId = (await create(fx, fed, { kind: 'now', rounds: 3 })).id;
        await waitSchedule(fx, nowId, (s) => s.completed === 1, 'the first round');
        await waitFor(() => holding && fx.coord.orchestrator.isRoundActive(fed), 300_000, 'the second round to reach training');
        await fx.coord.close(); // the round in progress is failed as interrupted
        await Promise.all(agents.map((a) => a.close()));
      }
      // Act: restart on the same data directory, partners reconnect
      const clock = new FakeClock(t0 + 60_000);
      await using fx = await startFixture(dir, { scheduleClock: clock });
      const agents = await connectBankPartners(fx, fed);
      const resumed = await waitSchedule(fx, nowId, (s) => s.status === 'done', 'the resumed schedule to finish');

      // Assert: 1 committed before, 1 interrupted (failed), 1 committed after the restart
      expect(resumed).toMatchObject({ completed: 2, failed: 1, status: 'done' });
      expect(resumed.reason).toMatch(/1 of 3 round\(s\) failed/);
      expect(fx.coord.store.listRounds(fed).map((r) => r.phase)).toEqual(['committed', 'failed', 'committed']);
      expect(fx.coord.store.listRounds(fed)[1]!.reason).toMatch(/interrupted/);
      // The cron schedule kept its tick and fires on the new coordinator's clock.
      expect(await schedule(fx, cronId)).toMatchObject({ status: 'pending', nextRunAt: '2026-06-01T03:00:00.000Z' });
      clock.advanceTo(Date.parse('2026-06-01T03:00:00Z'));
      expect(await waitSchedule(fx, cronId, (s) => s.status === 'done', 'the cron round')).toMatchObject({ completed: 1, failed: 0 });
      expect(fx.coord.store.listAudit(1000).filter((e) => e.action === 'schedule.resumed-after-restart')).toHaveLength(2);
      await Promise.all(agents.map((a) => a.close()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('schedule outcomes', () => {
  it('shows a schedule whose rounds all failed as failed, and --wait exits non-zero', async () => {
    // Arrange: nobody connects, so every round fails at selection
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2, timeouts: { selectingMs: 300, trainingMs: 30_000, evaluatingMs: 10_000 } } as Cfg);
    const common = ['--coordinator', fx.url, '--token', fx.coord.operatorToken];

    // Act
    const rounds = await cli(['federation', 'rounds', ...common, '--federation', fed, '--count', '2', '--wait']);
    const viaSchedule = await cli(['schedule', 'create', ...common, '--federation', fed, '--kind', 'now', '--rounds', '1', '--wait', '--json']);
    const bad = await cli(['schedule', 'create', ...common, '--federation', fed, '--kind', 'cron', '--cron', '61 * * * *']);
    const list = await cli(['schedule', 'list', ...common, '--federation', fed]);

    // Assert
    expect(rounds.code, rounds.stderr).toBe(1);
    expect(rounds.stdout).toMatch(/^schedule failed: 2 of 2 round\(s\) failed; last: .*; 0 of 2 round\(s\) committed/);
    expect(viaSchedule.code, viaSchedule.stderr).toBe(1);
    expect(JSON.parse(viaSchedule.stdout)).toMatchObject({ status: 'failed', schedule: { completed: 0, failed: 1 } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^fedmart schedule create: invalid schedule: cron "61 \* \* \* \*": Invalid value for minute: 61; use 5 fields/);
    expect(list.stdout.trim().split('\n')).toHaveLength(2);
    // Bad REST bodies and roles: one clear line each, nothing created
    const badZone = await fx.api.request('POST', `/api/v1/federations/${fed}/schedules`, { kind: 'cron', cron: '0 2 * * *', timezone: 'Mars/Base' }).catch((e: Error) => e);
    expect(String(badZone)).toMatch(/time zone "Mars\/Base" is not an IANA time zone; pass one such as UTC or Europe\/Paris/);
    const badKind = await fx.api.request('POST', `/api/v1/federations/${fed}/schedules`, { kind: 'hourly' }).catch((e: Error) => e);
    expect(String(badKind)).toMatch(/invalid schedule: .*kinds are now \(rounds\), cron/);
    const asPartner = await new ApiClient(fx.url, await fx.enroll(fed, 'brand-z')).request('POST', `/api/v1/federations/${fed}/schedules`, { kind: 'now', rounds: 1 }).catch((e: Error) => e);
    expect(String(asPartner)).toMatch(/needs role operator/);
    expect(fx.coord.store.listSchedules(fed)).toHaveLength(2);
    expect(list.stdout).toMatch(/failed: 2 round\(s\) now; 0 committed, 2 failed/);
  });

  it('until-converged stops on the bank data when the validation loss stops improving, before its maximum', async () => {
    // Arrange
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: LOCAL } as Cfg);
    const agents = await connectBankPartners(fx, fed);

    // Act
    const s = await create(fx, fed, { kind: 'until-converged', maxRounds: 25, metric: 'eval_loss', goal: 'min', tolerance: 0.002, patience: 2 });
    const done = await waitSchedule(fx, s.id, (x) => x.status !== 'pending' && x.status !== 'running', 'convergence');

    // Assert: it converged (not the maximum), and the rule holds on the recorded losses
    expect(done.status).toBe('done');
    expect(done.reason).toMatch(/^converged: eval_loss improved by less than 0\.002 for 2 round\(s\) in a row/);
    expect(done.completed).toBeLessThan(25);
    const losses = fx.coord.store.listRounds(fed).map((r) => JSON.parse(r.metrics!).eval_loss as number);
    expect(losses).toHaveLength(done.completed);
    const bestBefore = Math.min(...losses.slice(0, -2));
    expect(Math.min(...losses.slice(-2))).toBeGreaterThan(bestBefore - 0.002);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('property: over random caps, σ and sampling rates, an until-converged schedule stops before a round would overspend, never after', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const { token } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
    const officer = new ApiClient(fx.url, token);
    const seen: number[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0.5, max: 4, noNaN: true }), fc.double({ min: 1.2, max: 3, noNaN: true }), fc.integer({ min: 32, max: 256 }), fc.boolean(),
        async (cap, sigma, batchSize, perPartner) => {
          const dp = { level: 'record' as const, noiseMultiplier: sigma, clip: 1, delta: 1e-5 };
          const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: { ...LOCAL, batchSize }, dp } as Cfg, `dp ${cap} ${sigma} ${batchSize}`);
          const agents = await connectBankPartners(fx, fed);
          const partnerId = fx.coord.store.listEnrollments(fed)[0]!.partnerId;
          await officer.request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'record', epsilon: cap, ...(perPartner ? { partnerId } : {}) });
          const s = await create(fx, fed, { kind: 'until-converged', maxRounds: 4, tolerance: 0, patience: 4 });
          const done = await waitSchedule(fx, s.id, (x) => x.status !== 'pending' && x.status !== 'running', 'the schedule to stop');
          await Promise.all(agents.map((a) => a.close()));
          const report = (await privacyReport(fx.coord.store, fed));
          const spent = report.totals.find((x) => (perPartner ? x.scope === 'partner' && x.partnerId === partnerId : x.scope === 'federation'));
          // Never overspent, never a refused or failed round, a clean stop with the reason
          expect(spent?.epsilon ?? 0).toBeLessThanOrEqual(cap);
          expect(report.refused).toHaveLength(0);
          expect(done.failed).toBe(0);
          expect(done.status).toBe('done');
          if (done.completed < 4) expect(done.reason).toMatch(/^stopped before the next round: privacy budget exceeded: round \d+ would bring .* above/);
          else expect(done.reason).toMatch(/reached the maximum of 4/);
          // It stopped no earlier than needed: one more round would have overspent.
          if (done.completed < 4) expect(await fx.coord.orchestrator.projectNextRound(fed)).toMatch(/privacy budget exceeded/);
          seen.push(done.completed);
        },
      ),
      { numRuns: 6 },
    );
    // The generated settings cover stops before the first round, after some rounds, and at the maximum.
    expect(seen.some((n) => n > 0 && n < 4), `committed rounds per run: ${seen}`).toBe(true);
  });
});
