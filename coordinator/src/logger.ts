/**
 * Structured logs (issue 13, item 6): pino, one JSON object per line on
 * stderr, with `federationId`, `roundId`, `round`, `phase` and `partnerId`
 * fields on every round event, so a log pipeline can follow one round or one
 * partner. Level from `fedmart coordinator --log-level` (default info):
 *
 *   info   round phases, round outcomes, schedules, partners joining/leaving
 *   debug  partner reports and progress, skipped ticks
 *   warn   refusals and dropouts
 */
import pino, { type Logger } from 'pino';
import type { Orchestrator } from './orchestrator.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A coordinator logger writing JSON lines to `destination` (default stderr).
 * @param level - the least severe level written
 */
export function createLogger(level: LogLevel = 'info', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino({ level, base: { service: 'fedmart-coordinator' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** Log the orchestrator's and scheduler's events with their ids. */
export function logOrchestrator(log: Logger, orchestrator: Orchestrator): void {
  orchestrator.on('phase', (e) => log.info({ federationId: e.federationId, roundId: e.roundId, round: e.round, phase: e.phase, selected: e.selected, reported: e.reported, evaluated: e.evaluated, elapsedMs: e.elapsedMs, ...(e.reason ? { reason: e.reason } : {}) }, `round ${e.round} ${e.phase}`));
  orchestrator.on('client-report', (e) => {
    const fields = { federationId: e.federationId, roundId: e.roundId, round: e.round, partnerId: e.partnerId, kind: e.kind, ...(e.reason ? { reason: e.reason } : {}) };
    if (e.kind === 'failed') log.warn(fields, `partner ${e.partnerId} refused or failed round ${e.round}`);
    else log.debug(fields, `partner ${e.partnerId} reported ${e.kind} in round ${e.round}`);
  });
  orchestrator.on('client-progress', (e) => log.debug({ federationId: e.federationId, roundId: e.roundId, round: e.round, phase: 'training', partnerId: e.partnerId, step: e.step, steps: e.steps, deadline: new Date(e.deadline).toISOString() }, `partner ${e.partnerId} training: step ${e.step}/${e.steps}`));
  orchestrator.on('round-end', (e) => {
    const fields = { federationId: e.federationId, roundId: e.roundId, round: e.round, phase: e.phase, participants: e.participants.length, seconds: e.seconds, ...(e.modelVersion !== undefined ? { modelVersion: e.modelVersion } : {}), ...(e.reason ? { reason: e.reason } : {}) };
    for (const [partnerId, reason] of Object.entries(e.failures)) log.warn({ federationId: e.federationId, roundId: e.roundId, round: e.round, partnerId, reason }, `partner ${partnerId} dropped out of round ${e.round}`);
    if (e.phase === 'failed') log.warn(fields, `round ${e.round} failed: ${e.reason}`);
    else log.info(fields, `round ${e.round} committed`);
  });
  orchestrator.on('client-connected', (e) => log.info({ federationId: e.federationId, partnerId: e.partnerId, connected: e.connected }, `partner ${e.partnerName} connected`));
  orchestrator.on('client-disconnected', (e) => log.info({ federationId: e.federationId, partnerId: e.partnerId, connected: e.connected }, `partner ${e.partnerName} disconnected`));
  orchestrator.scheduler.on('schedule', (s) => log.info({ federationId: s.federationId, scheduleId: s.id, status: s.status, completed: s.completed, failed: s.failed, skipped: s.skipped, ...(s.reason ? { reason: s.reason } : {}) }, `schedule ${s.id} ${s.status}`));
  orchestrator.scheduler.on('tick-skipped', (e) => log.debug({ federationId: e.federationId, scheduleId: e.scheduleId, scheduledFor: e.scheduledFor }, e.reason));
}
