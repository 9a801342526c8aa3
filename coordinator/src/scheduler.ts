/**
 * Schedules of training rounds (issue 13, item 1). Kinds `now`, `cron`
 * (croner, in an IANA time zone), `every` and `until-converged`; see
 * `@fedmart/shared/protocol-schedule` for what each means.
 *
 * - Every round a schedule starts goes through one queue per federation, so
 *   rounds never overlap. A cron/every tick that arrives while a round of the
 *   federation runs (or is queued) is skipped: counted, audited
 *   (`schedule.tick-skipped`) and emitted, never queued (no pile-up).
 * - Until-converged asks the privacy projection before each round
 *   (`projectNextRound`, the same projection that refuses an over-budget
 *   round) and stops with the reason instead of starting a round that a cap
 *   would refuse — so it never overspends and never ends `failed` for budget.
 * - Everything is persisted in `schedules`: status, counts, the next tick, the
 *   round in flight. At start-up {@link Scheduler.resumeOpen} counts a round
 *   that the restart interrupted (failed as today) and carries on; a cron/every
 *   tick missed while the coordinator was down runs once at start-up.
 * - A finished schedule is `failed` when none of its rounds committed and at
 *   least one failed, `done` otherwise (its reason says how many failed);
 *   `now`/`until-converged` stop `failed` after 3 failed rounds in a row.
 * - Pause stops future rounds (a round in progress finishes); resume plans
 *   the next tick from now; cancel ends the schedule (the round in progress finishes).
 *
 * The clock is injected ({@link ScheduleClock}) so tests drive ticks with a fake clock.
 *
 * Storage is the {@link AsyncStore} (SQLite or PostgreSQL, issue 15): every public method returns a
 * Promise. A timer's tick and a loop's step read and write the store asynchronously; a failed store
 * call in one of them goes to `onError` (it never stops the other schedules), and a tick whose claim
 * failed is simply not run (the compare-and-set keeps it from running twice).
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { ScheduleSpecSchema, isScheduleFinished, type ScheduleSpec, type ScheduleStatus, type ScheduleView } from '@fedmart/shared/protocol-schedule';
import { formatIssues } from '@fedmart/shared/protocol';
import type { AsyncStore } from './db/store-api.ts';
import type { ScheduleRow } from './db/schema.ts';
import type { RoundOutcome } from './orchestrator.ts';

/** Time source and timers of schedules (real by default; a fake one in tests). */
export interface ScheduleClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers (unref'd, so a pending tick never keeps the process alive). */
export const systemClock: ScheduleClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** What the scheduler needs from the orchestrator. */
export interface RoundRunner {
  runRound(federationId: string, opts: { roundId: string }): Promise<RoundOutcome>;
  /** Whether a round of the federation is in progress (started outside the scheduler too). */
  hasActiveRound(federationId: string): boolean;
  /** Why the federation's next round would exceed a privacy cap, or null when it fits. */
  projectNextRound(federationId: string): Promise<string | null> | string | null;
}

export interface SchedulerEvents {
  schedule: [ScheduleView];
  'tick-skipped': [{ federationId: string; scheduleId: string; scheduledFor: string; reason: string }];
}

/** setTimeout's longest delay; a later tick is re-planned when this fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;
const MAX_CONSECUTIVE_FAILURES = 3;

interface Progress { best?: number; stale?: number; consecutiveFailures?: number }

/**
 * Parse and check a schedule's settings (cron syntax, time zone).
 * @throws FedmartError BAD_REQUEST naming the problem
 */
export function parseScheduleSpec(input: unknown): ScheduleSpec {
  const r = ScheduleSpecSchema.safeParse(input ?? {});
  if (!r.success) throw new FedmartError('BAD_REQUEST', `invalid schedule: ${formatIssues(r.error.issues)}; kinds are now (rounds), cron (cron, timezone, maxRounds), every (everySeconds, maxRounds), until-converged (maxRounds, metric, goal, tolerance, patience)`);
  const spec = r.data;
  if (spec.kind === 'cron') {
    try {
      new Intl.DateTimeFormat('en', { timeZone: spec.timezone });
    } catch {
      throw new FedmartError('BAD_REQUEST', `invalid schedule: time zone "${spec.timezone}" is not an IANA time zone; pass one such as UTC or Europe/Paris`);
    }
    try {
      if (cronOf(spec).nextRun() === null) throw new Error('it never fires');
    } catch (err) {
      throw new FedmartError('BAD_REQUEST', `invalid schedule: cron "${spec.cron}": ${(err as Error).message.replace(/^CronPattern: /, '')}; use 5 fields (minute hour day month weekday) or 6 with seconds first`);
    }
  }
  return spec;
}

function cronOf(spec: Extract<ScheduleSpec, { kind: 'cron' }>): Cron {
  return new Cron(spec.cron, { timezone: spec.timezone, paused: true });
}

function maxRoundsOf(spec: ScheduleSpec): number {
  return spec.kind === 'now' ? spec.rounds : (spec.maxRounds ?? 0);
}

/** The REST view of a schedule row. */
export function scheduleView(row: ScheduleRow): ScheduleView {
  const spec: ScheduleSpec = row.spec ? (JSON.parse(row.spec) as ScheduleSpec) : { kind: 'now', rounds: row.requested };
  return {
    id: row.id, federationId: row.federationId, kind: spec.kind, spec, status: row.status, reason: row.reason,
    maxRounds: row.requested === 0 ? null : row.requested, completed: row.completed, failed: row.failed, skipped: row.skipped,
    nextRunAt: row.nextRunAt === null ? null : new Date(row.nextRunAt).toISOString(),
    progress: row.progress ? (JSON.parse(row.progress) as Progress) : null,
    createdAt: new Date(row.createdAt).toISOString(), updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly timers = new Map<string, unknown>();
  /** In-process waiters of a schedule's outcomes (`Orchestrator.scheduleRounds`). */
  private readonly waiters = new Map<string, { outcomes: RoundOutcome[]; resolve: (o: RoundOutcome[]) => void }>();
  /** Per federation: the tail of its round queue and how many jobs hold or wait for it. */
  private readonly queues = new Map<string, { tail: Promise<void>; holders: number }>();
  /** now/until-converged schedules whose loop is running. */
  private readonly loops = new Set<string>();
  /** Schedules being ended (two ends racing, e.g. cancel and the last round, end it once). */
  private readonly finishing = new Set<string>();
  private closed = false;
  /**
   * Cluster mode (several coordinators on one PostgreSQL): whether this coordinator leads the federation
   * (holds its lease). A coordinator runs, claims and plans only the schedules of federations it leads;
   * the one that takes a lease resumes that federation's schedules ({@link resumeOpen} with its id) and the
   * one that loses it stops them ({@link releaseFederation}). Null: one coordinator, it runs every schedule.
   */
  leads: ((federationId: string) => boolean) | null = null;

  /**
   * @param store - the coordinator's store
   * @param runner - runs the rounds (the orchestrator)
   * @param clock - ticks' time source (default Node's timers)
   * @param onError - a store call of a tick or loop failed (default: printed to stderr)
   */
  constructor(private readonly store: AsyncStore, private readonly runner: RoundRunner, private readonly clock: ScheduleClock = systemClock, private readonly onError: (err: unknown) => void = (err) => console.error(`fedmart coordinator: a schedule step failed: ${toFedmartError(err).message}`)) {
    super();
  }

  /** Run a background step (timer, loop); its failure goes to onError. */
  private background(p: Promise<unknown>): void {
    p.catch((err: unknown) => this.onError(err));
  }

  /**
   * Create a schedule and start it.
   * @param actor - who asked (audited)
   * @returns the stored row and a promise of the outcomes of the rounds it runs in this process
   */
  async create(federationId: string, input: unknown, actor: string): Promise<{ schedule: ScheduleView; done: Promise<RoundOutcome[]> }> {
    const fed = await this.store.getFederation(federationId);
    if (fed.status !== 'active') throw new FedmartError('CONFLICT', `federation ${federationId} is ${fed.status}; schedules need an active federation`);
    const spec = parseScheduleSpec(input);
    const at = this.clock.now();
    const row = await this.store.createSchedule(federationId, { kind: spec.kind, requested: maxRoundsOf(spec), spec: JSON.stringify(spec), nextRunAt: this.nextTick(spec, at, at), at });
    await this.store.audit(actor, 'schedule.created', row.id, { federationId, ...spec });
    const done = new Promise<RoundOutcome[]>((resolve) => this.waiters.set(row.id, { outcomes: [], resolve }));
    await this.emitView(row.id);
    await this.activate(row.id);
    return { schedule: scheduleView(await this.store.getSchedule(row.id)), done };
  }

  async get(id: string): Promise<ScheduleView> {
    return scheduleView(await this.store.getSchedule(id));
  }

  async list(federationId: string): Promise<ScheduleView[]> {
    return (await this.store.listSchedules(federationId)).map(scheduleView);
  }

  async pause(id: string, actor: string): Promise<ScheduleView> {
    const row = await this.store.getSchedule(id);
    if (row.status === 'paused') return scheduleView(row);
    if (isScheduleFinished(row.status)) throw new FedmartError('CONFLICT', `schedule ${id} is ${row.status}; only a pending or running schedule can be paused`);
    this.clearTimer(id);
    await this.store.updateSchedule(id, { status: 'paused', nextRunAt: null });
    this.clearTimer(id); // a tick planned while the update ran
    await this.store.audit(actor, 'schedule.paused', id, { federationId: row.federationId });
    return this.emitView(id);
  }

  async resume(id: string, actor: string): Promise<ScheduleView> {
    const row = await this.store.getSchedule(id);
    if (row.status !== 'paused') throw new FedmartError('CONFLICT', `schedule ${id} is ${row.status}, not paused; only a paused schedule can be resumed`);
    const spec = scheduleView(row).spec;
    const at = this.clock.now();
    await this.store.updateSchedule(id, { status: row.completed + row.failed > 0 ? 'running' : 'pending', nextRunAt: this.nextTick(spec, at, at) });
    await this.store.audit(actor, 'schedule.resumed', id, { federationId: row.federationId });
    await this.activate(id);
    return this.emitView(id);
  }

  async cancel(id: string, actor: string): Promise<ScheduleView> {
    const row = await this.store.getSchedule(id);
    if (isScheduleFinished(row.status)) throw new FedmartError('CONFLICT', `schedule ${id} is already ${row.status}`);
    await this.finish(id, 'cancelled', `cancelled by ${actor}`);
    await this.store.audit(actor, 'schedule.cancelled', id, { federationId: row.federationId });
    return scheduleView(await this.store.getSchedule(id));
  }

  /**
   * At start-up: carry on every schedule that was pending, running or paused.
   * A round it was running when the coordinator stopped was failed as interrupted and counts as failed.
   */
  async resumeOpen(federationId?: string): Promise<void> {
    for (const row of await this.store.listOpenSchedules()) {
      if (federationId !== undefined && row.federationId !== federationId) continue;
      if (row.currentRoundId !== null) {
        const phase = await this.roundPhase(row.currentRoundId);
        const committed = phase === 'committed';
        await this.store.updateSchedule(row.id, { currentRoundId: null, ...(committed ? { completed: row.completed + 1 } : { failed: row.failed + 1 }), ...(row.requested > 0 ? { remaining: Math.max(0, row.remaining - 1) } : {}) });
      }
      await this.store.audit('coordinator', federationId === undefined ? 'schedule.resumed-after-restart' : 'schedule.resumed-after-takeover', row.id, { federationId: row.federationId, status: row.status });
      await this.activate(row.id);
    }
  }

  /**
   * Cluster mode: this coordinator no longer leads the federation. Its schedules' timers stop here (their
   * loops end at their next check, {@link leads} being false); they stay open in the database for the
   * coordinator that takes the lease, which resumes them.
   */
  async releaseFederation(federationId: string): Promise<void> {
    for (const id of [...this.timers.keys()]) {
      const row = await this.store.getSchedule(id).catch(() => null);
      if (row === null || row.federationId === federationId) this.clearTimer(id);
    }
  }

  /** Whether this coordinator may run the federation's schedules now (always, outside cluster mode). */
  private mayRun(federationId: string): boolean {
    return this.leads === null || this.leads(federationId);
  }

  /** Stop timers; open schedules stay open in the database (a restart resumes them). */
  close(): void {
    this.closed = true;
    for (const id of [...this.timers.keys()]) this.clearTimer(id);
    for (const [id, w] of this.waiters) {
      w.resolve(w.outcomes);
      this.waiters.delete(id);
    }
  }

  // ------------------------------------------------------------ internals

  private async roundPhase(roundId: string): Promise<string | null> {
    try {
      return (await this.store.getRound(roundId)).phase;
    } catch (err) {
      if (toFedmartError(err).code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  /** First tick at or after `from` (cron/every), null for the other kinds. */
  private nextTick(spec: ScheduleSpec, from: number, createdAt: number): number | null {
    if (spec.kind === 'cron') return cronOf(spec).nextRun(new Date(from))?.getTime() ?? null;
    if (spec.kind === 'every') {
      const period = spec.everySeconds * 1000;
      return createdAt + (Math.floor((from - createdAt) / period) + 1) * period;
    }
    return null;
  }

  /** Plan the schedule's next tick (cron/every) or start its loop (now/until-converged; not awaited). */
  private async activate(id: string): Promise<void> {
    if (this.closed) return;
    const row = await this.store.getSchedule(id);
    if (row.status === 'paused' || isScheduleFinished(row.status)) return;
    if (row.requested > 0 && row.remaining === 0) return this.finish(id);
    if (row.kind === 'cron' || row.kind === 'every') await this.planTimer(id);
    else this.background(this.runLoop(id));
  }

  private async planTimer(id: string): Promise<void> {
    this.clearTimer(id);
    const row = await this.store.getSchedule(id);
    if (this.closed || row.status === 'paused' || isScheduleFinished(row.status)) return;
    if (row.nextRunAt === null) return this.finish(id, undefined, 'the cron expression has no further ticks');
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, row.nextRunAt - this.clock.now()));
    this.clearTimer(id); // planned twice while the read ran: keep the newest
    this.timers.set(id, this.clock.setTimeout(() => {
      this.timers.delete(id);
      this.background(this.onTick(id));
    }, delay));
  }

  private clearTimer(id: string): void {
    const h = this.timers.get(id);
    if (h !== undefined) this.clock.clearTimeout(h);
    this.timers.delete(id);
  }

  private async onTick(id: string): Promise<void> {
    if (this.closed) return;
    const row = await this.store.getSchedule(id);
    if (row.status === 'paused' || isScheduleFinished(row.status) || row.nextRunAt === null) return;
    // Cluster mode: a federation led elsewhere is not ticked here (no claim, no plan); its leader ticks it.
    if (!this.mayRun(row.federationId)) return;
    const now = this.clock.now();
    if (now < row.nextRunAt) return this.planTimer(id); // a long delay was split
    const spec = scheduleView(row).spec;
    const due = row.nextRunAt;
    // Claim the tick (once across coordinators sharing the database: a compare-and-set on next_run_at)
    // and plan the following one first, so a tick can arrive while this round runs. Lost: another
    // coordinator runs this tick; plan the next one it set.
    const claimed = await this.store.claimScheduleTick(id, due, this.nextTick(spec, now, row.createdAt));
    await this.planTimer(id);
    if (!claimed || this.closed) return;
    const q = this.queues.get(row.federationId);
    if ((q && q.holders > 0) || this.runner.hasActiveRound(row.federationId)) {
      const reason = 'a round of this federation was still running; the tick was skipped';
      await this.store.updateSchedule(id, { skipped: row.skipped + 1 });
      await this.store.audit('coordinator', 'schedule.tick-skipped', id, { federationId: row.federationId, scheduledFor: new Date(due).toISOString(), reason });
      this.emit('tick-skipped', { federationId: row.federationId, scheduleId: id, scheduledFor: new Date(due).toISOString(), reason });
      await this.emitView(id);
      return;
    }
    this.background(this.exclusive(row.federationId, async () => {
      if (!(await this.isLive(id))) return;
      await this.runOne(id);
      const after = await this.store.getSchedule(id);
      if (after.requested > 0 && after.remaining === 0) await this.finish(id);
    }));
  }

  /** now / until-converged: rounds back to back while the schedule is live. */
  private async runLoop(id: string): Promise<void> {
    if (this.loops.has(id)) return;
    this.loops.add(id);
    try {
      const fed = (await this.store.getSchedule(id)).federationId;
      await this.exclusive(fed, async () => {
        for (;;) {
          if (!(await this.isLive(id))) return;
          const row = await this.store.getSchedule(id);
          const spec = scheduleView(row).spec;
          if (row.requested > 0 && row.remaining === 0) return this.finish(id, undefined, spec.kind === 'until-converged' ? `reached the maximum of ${row.requested} round(s) before converging` : undefined);
          const progress: Progress = row.progress ? JSON.parse(row.progress) : {};
          if ((progress.consecutiveFailures ?? 0) >= MAX_CONSECUTIVE_FAILURES) return this.finish(id, 'failed', `${MAX_CONSECUTIVE_FAILURES} rounds in a row failed; last: ${this.lastFailure(id)}`);
          if (spec.kind === 'until-converged') {
            if ((progress.stale ?? 0) >= spec.patience) return this.finish(id, 'done', `converged: ${spec.metric} improved by less than ${spec.tolerance} for ${spec.patience} round(s) in a row (best ${progress.best})`);
            const overBudget = await this.runner.projectNextRound(fed);
            if (overBudget !== null) return this.finish(id, 'done', `stopped before the next round: ${overBudget.replace(/; the round was refused before any training.*$/, '')}`);
          }
          await this.runOne(id);
        }
      });
    } finally {
      this.loops.delete(id);
    }
  }

  private lastOutcome = new Map<string, RoundOutcome>();
  private lastFailure(id: string): string {
    return this.lastOutcome.get(id)?.reason ?? 'see the rounds';
  }

  private async isLive(id: string): Promise<boolean> {
    if (this.closed) return false;
    const row = await this.store.getSchedule(id);
    if (!this.mayRun(row.federationId)) return false; // cluster mode: the lease went elsewhere, its new leader carries on
    const s = row.status;
    return s === 'pending' || s === 'running';
  }

  /** Run one round for the schedule and record its outcome. */
  private async runOne(id: string): Promise<void> {
    const row = await this.store.getSchedule(id);
    const roundId = `r_${randomUUID().slice(0, 12)}`;
    await this.store.updateSchedule(id, { status: row.status === 'pending' ? 'running' : row.status, currentRoundId: roundId });
    await this.emitView(id);
    let outcome: RoundOutcome;
    try {
      outcome = await this.runner.runRound(row.federationId, { roundId });
    } catch (err) {
      outcome = { roundId, round: 0, phase: 'failed', reason: `the round could not start: ${toFedmartError(err).message}`, metrics: {}, participants: [], failures: {}, seconds: 0 };
    }
    if (this.closed) return; // the coordinator is stopping: the round was interrupted, resumeOpen counts it
    this.lastOutcome.set(id, outcome);
    this.waiters.get(id)?.outcomes.push(outcome);
    const now = await this.store.getSchedule(id);
    // Cluster mode: the lease went elsewhere during the round; the coordinator that took it counted the
    // interrupted round when it resumed the schedule (resumeOpen), so it is not counted twice here.
    if (!this.mayRun(row.federationId) || now.currentRoundId !== roundId) return;
    const spec = scheduleView(now).spec;
    const progress: Progress = now.progress ? JSON.parse(now.progress) : {};
    const ok = outcome.phase === 'committed';
    progress.consecutiveFailures = ok ? 0 : (progress.consecutiveFailures ?? 0) + 1;
    if (ok && spec.kind === 'until-converged') {
      const v = outcome.metrics[spec.metric];
      if (v === undefined || !Number.isFinite(v)) {
        progress.stale = (progress.stale ?? 0) + 1; // no value: no progress
      } else if (progress.best === undefined) {
        progress.best = v;
        progress.stale = 0;
      } else {
        const gain = spec.goal === 'min' ? progress.best - v : v - progress.best;
        if (gain >= spec.tolerance) progress.stale = 0;
        else progress.stale = (progress.stale ?? 0) + 1;
        if (gain > 0) progress.best = v;
      }
    }
    await this.store.updateSchedule(id, {
      currentRoundId: null, progress: JSON.stringify(progress),
      ...(ok ? { completed: now.completed + 1 } : { failed: now.failed + 1 }),
      ...(now.requested > 0 ? { remaining: Math.max(0, now.remaining - 1) } : {}),
    });
    await this.emitView(id);
  }

  /**
   * End a schedule. Without an explicit status: `failed` when no round committed and one failed, else `done`.
   */
  private async finish(id: string, status?: ScheduleStatus, reason?: string): Promise<void> {
    if (this.finishing.has(id)) return;
    this.finishing.add(id);
    try {
      await this.finishOnce(id, status, reason);
    } finally {
      this.finishing.delete(id);
    }
  }

  private async finishOnce(id: string, status?: ScheduleStatus, reason?: string): Promise<void> {
    const row = await this.store.getSchedule(id);
    if (isScheduleFinished(row.status)) return;
    this.clearTimer(id);
    const final: ScheduleStatus = status === 'cancelled' || status === 'failed' ? status : row.completed === 0 && row.failed > 0 ? 'failed' : 'done';
    const failedNote = row.failed > 0 ? `${row.failed} of ${row.completed + row.failed} round(s) failed${final === 'failed' && status !== 'failed' ? `; last: ${this.lastFailure(id)}` : ''}` : null;
    const why = [reason, failedNote].filter(Boolean).join('; ') || null;
    await this.store.updateSchedule(id, { status: final, reason: why, nextRunAt: null, ...(final === 'cancelled' ? {} : { remaining: 0 }) });
    this.clearTimer(id); // a tick planned while the update ran
    await this.store.audit('coordinator', 'schedule.ended', id, { federationId: row.federationId, status: final, completed: row.completed, failed: row.failed, skipped: row.skipped, ...(why ? { reason: why } : {}) });
    const w = this.waiters.get(id);
    if (w) {
      this.waiters.delete(id);
      w.resolve(w.outcomes);
    }
    await this.emitView(id);
  }

  private async emitView(id: string): Promise<ScheduleView> {
    const v = scheduleView(await this.store.getSchedule(id));
    this.emit('schedule', v);
    return v;
  }

  /** Run `fn` after every earlier job of the federation (one round at a time). */
  private exclusive(federationId: string, fn: () => Promise<void>): Promise<void> {
    let q = this.queues.get(federationId);
    if (!q) this.queues.set(federationId, (q = { tail: Promise.resolve(), holders: 0 }));
    const queue = q;
    queue.holders++;
    const run = queue.tail.then(fn).finally(() => {
      queue.holders--;
    });
    queue.tail = run.catch(() => undefined);
    return run;
  }
}
