/**
 * `fedmart federation watch --federation F`: print a federation's live events
 * (coordinator namespace /events, coordinator/src/events.ts) as they happen —
 * round phases, partner reports and progress, refusals, dropouts, outcomes,
 * privacy-ledger entries, schedules. Any token works (operator, compliance, or
 * a partner's own enrollment token, which sees only its own partner's events).
 * `--rounds N` exits after N rounds ended (1 if any failed); otherwise it runs until Ctrl-C.
 */
import { io } from 'socket.io-client';
import { FedmartError } from '@fedmart/shared/errors';
import { wireParser } from '@fedmart/shared/wire-parser';
import { EVENTS_NAMESPACE, type StreamEvent } from '@fedmart/coordinator/events';
import type { ApiClient } from './api-client.ts';

const num = (v: unknown) => (typeof v === 'number' ? (Math.abs(v) >= 100 || Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));

/** One human line for an event. */
export function formatEvent(e: StreamEvent): string {
  const time = e.at.slice(11, 19);
  const r = `round ${String(e.round ?? '?')}`;
  switch (e.type) {
    case 'phase':
      return `${time} ${r} ${String(e.phase)} (selected ${num(e.selected)}, reported ${num(e.reported)}, evaluated ${num(e.evaluated)})${e.reason ? `: ${String(e.reason)}` : ''}`;
    case 'report':
      return `${time} ${r}: partner ${e.partnerId} reported ${String(e.kind)}`;
    case 'progress':
      return `${time} ${r}: partner ${e.partnerId} still training, step ${num(e.step)}/${num(e.steps)}`;
    case 'refusal':
      return `${time} ${r}: partner ${e.partnerId} refused: ${String(e.reason)}`;
    case 'dropout':
      return `${time} ${r}: partner ${e.partnerId} dropped out: ${String(e.reason)}`;
    case 'round-end': {
      const metrics = Object.entries((e.metrics ?? {}) as Record<string, number>).filter(([k]) => k.startsWith('eval_')).map(([k, v]) => `${k} ${num(v)}`).join(', ');
      return e.phase === 'committed'
        ? `${time} ${r} committed → model v${num(e.modelVersion)}${metrics ? ` (${metrics})` : ''}, ${(e.participants as string[]).length} participant(s), ${num(e.seconds)} s`
        : `${time} ${r} failed: ${String(e.reason)}`;
    }
    case 'ledger':
      return `${time} ledger: ${r} ${e.partnerId ? `partner ${e.partnerId}` : 'federation'} ${String(e.level)}-level ε ${num(e.epsilon)} (${String(e.kind)})`;
    case 'schedule':
      return `${time} schedule ${String(e.id)} ${String(e.status)}: ${num(e.completed)} committed, ${num(e.failed)} failed, ${num(e.skipped)} skipped${e.reason ? ` — ${String(e.reason)}` : ''}`;
    case 'tick-skipped':
      return `${time} schedule ${String(e.scheduleId)}: tick of ${String(e.scheduledFor)} skipped (${String(e.reason)})`;
    case 'connected':
    case 'disconnected':
      return `${time} partner ${String(e.partnerName ?? e.partnerId)} ${e.type}`;
  }
}

/**
 * Follow a federation's events until Ctrl-C or `rounds` rounds ended.
 * @returns 0, or 1 when `rounds` was given and one of them failed
 */
export async function watchFederation(api: ApiClient, federationId: string, opts: { json: boolean; rounds?: number }): Promise<number> {
  const socket = io(api.baseUrl + EVENTS_NAMESPACE, { auth: { token: api.token, federation: federationId }, transports: ['websocket'], parser: wireParser });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err: Error & { data?: { message?: string } }) => reject(new FedmartError('UNAVAILABLE', `cannot watch ${federationId} at ${api.baseUrl}: ${err.data?.message ?? err.message}`)));
    });
    process.stderr.write(`watching federation ${federationId} (Ctrl-C to stop)\n`);
    return await new Promise<number>((resolve) => {
      let ended = 0;
      let failed = 0;
      socket.on('event', (e: StreamEvent) => {
        process.stdout.write((opts.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
        if (e.type === 'round-end') {
          ended++;
          if (e.phase !== 'committed') failed++;
          if (opts.rounds !== undefined && ended >= opts.rounds) resolve(failed > 0 ? 1 : 0);
        }
      });
      socket.on('disconnect', (reason) => {
        if (reason === 'io server disconnect') {
          process.stderr.write('the coordinator closed the event stream\n');
          resolve(1);
        }
      });
      process.once('SIGINT', () => resolve(0));
      process.once('SIGTERM', () => resolve(0));
    });
  } finally {
    socket.close();
  }
}
