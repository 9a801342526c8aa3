/**
 * The live event stream (issue 13, item 6): Socket.IO namespace `/events`.
 * Connect with `auth: { token }` (operator, compliance or partner token) and
 * optionally `auth: { federation }` to follow one federation; every event
 * arrives as `socket.on('event', e)` with `e.type` one of:
 *
 *   phase        a round changed phase (counts of selected / reported / evaluated)
 *   report       a partner's training or evaluation reached the coordinator
 *   progress     a selected partner is still training (step / steps)
 *   refusal      a partner refused or failed to train (train-error), with its reason
 *   dropout      a selected partner that did not report by the end of the round
 *   round-end    committed or failed, with the reason and aggregate metrics
 *   ledger       privacy-ledger entries the round charged (or refused)
 *   schedule     a schedule changed (status, counts, next tick)
 *   tick-skipped a schedule tick arrived while a round ran
 *   connected / disconnected   a partner joined or left
 *
 * Filtering by role: operators and compliance officers see every federation.
 * A partner token sees only its own federation, and of per-partner events
 * (report, progress, refusal, dropout, ledger rows, connected/disconnected) only
 * its own; round-end carries aggregate metrics only, with its participants
 * reduced to itself — never another partner's metrics or example counts.
 */
import type { Namespace, Server as IoServer } from 'socket.io';
import { redactPartnerNames } from '@fedmart/shared/audit-log';
import { FedmartError } from '@fedmart/shared/errors';
import type { Principal, TokenAuthority } from './auth.ts';
import type { AsyncStore } from './db/store-api.ts';
import { WriteQueue } from './db/write-queue.ts';
import type { Orchestrator } from './orchestrator.ts';
import { privacyReport } from './privacy.ts';
import { handshakeError } from './socket-auth.ts';

export const EVENTS_NAMESPACE = '/events';

/** One event of the stream. `partnerId` set: it concerns that partner only. */
export interface StreamEvent {
  type: 'phase' | 'report' | 'progress' | 'refusal' | 'dropout' | 'round-end' | 'ledger' | 'schedule' | 'tick-skipped' | 'connected' | 'disconnected';
  federationId: string;
  at: string;
  partnerId?: string;
  [k: string]: unknown;
}

interface Viewer { principal: Principal; federation: string | null }

/**
 * What `viewer` may see of `e` (null: nothing). A partner reads a reason (a round's, a schedule's) with
 * every other partner's id and name replaced by "another partner" (a budget refusal names whose cap).
 * @param enrolled - the federation's enrollments (ids and names), for partner viewers
 */
export function eventFor(viewer: Viewer, e: StreamEvent, enrolled: readonly { partnerId: string; partnerName: string }[] = []): StreamEvent | null {
  if (viewer.federation !== null && e.federationId !== viewer.federation) return null;
  const p = viewer.principal;
  if (p.role !== 'partner') return e;
  if (e.federationId !== p.fed) return null;
  if (e.partnerId !== undefined && e.partnerId !== p.sub) return null;
  if (typeof e.reason === 'string') e = { ...e, reason: redactPartnerNames(e.reason, enrolled.filter((x) => x.partnerId !== p.sub).flatMap((x) => [x.partnerId, x.partnerName])) };
  if (e.type === 'round-end') {
    const participants = (e.participants as string[]).filter((id) => id === p.sub);
    return { ...e, participants, failures: Object.fromEntries(Object.entries(e.failures as Record<string, string>).filter(([id]) => id === p.sub)) };
  }
  return e;
}

/**
 * Mount `/events` and forward the orchestrator's and scheduler's events to it.
 * @returns the namespace and `publish` (also used for events of other modules)
 */
export function attachEventStream(io: IoServer, deps: { authority: TokenAuthority; store: AsyncStore; orchestrator: Orchestrator }): { nsp: Namespace; publish(e: StreamEvent): void } {
  const { authority, store, orchestrator } = deps;
  const nsp = io.of(EVENTS_NAMESPACE);
  nsp.use((socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as { token?: unknown; federation?: unknown };
    authority.verify(auth.token).then(async (principal) => {
      if (principal.role === 'partner') {
        const e = principal.jti ? await store.findEnrollmentByToken(principal.jti) : undefined;
        if (!e || e.status === 'revoked') throw new FedmartError('UNAUTHENTICATED', 'enrollment token is no longer valid; ask the operator for a new one');
      }
      const federation = typeof auth.federation === 'string' && auth.federation.length > 0 ? auth.federation : null;
      if (federation !== null) {
        await store.getFederation(federation);
        if (principal.role === 'partner' && principal.fed !== federation) throw new FedmartError('FORBIDDEN', 'a partner token can only watch its own federation');
      }
      socket.data.viewer = { principal, federation } satisfies Viewer;
      next();
    }).catch((err: unknown) => next(handshakeError(err)));
  });
  // The stream is one-way: nothing a client sends is read.

  // Events go out in the order they were published. An event with a reason that a partner watches
  // waits for the federation's enrollments (its redaction, `eventFor`), and every later event waits
  // for it; with no such wait an event is sent at once (the queue runs an idle task synchronously).
  const order = new WriteQueue(() => undefined);
  const publish = (e: StreamEvent): void => order.fire(async () => {
    const viewers = [...nsp.sockets.values()].map((s) => ({ s, viewer: s.data.viewer as Viewer }));
    const redact = typeof e.reason === 'string' && viewers.some((v) => v.viewer.principal.role === 'partner');
    // Unreadable enrollments: partners get no reason-bearing event rather than an unredacted one.
    const enrolled = redact ? await store.listEnrollments(e.federationId).catch(() => null) : [];
    for (const { s, viewer } of viewers) {
      const partner = viewer.principal.role === 'partner';
      if (partner && redact && enrolled === null) continue;
      const view = eventFor(viewer, e, partner ? (enrolled ?? []) : []);
      if (view) s.emit('event', view);
    }
  });
  const at = () => new Date().toISOString();
  orchestrator.on('phase', (e) => publish({ type: 'phase', at: at(), ...e }));
  orchestrator.on('client-report', (e) => publish({ type: e.kind === 'failed' ? 'refusal' : 'report', at: at(), ...e }));
  orchestrator.on('client-progress', (e) => publish({ type: 'progress', at: at(), ...e }));
  orchestrator.on('client-connected', (e) => publish({ type: 'connected', at: at(), federationId: e.federationId, partnerId: e.partnerId, partnerName: e.partnerName }));
  orchestrator.on('client-disconnected', (e) => publish({ type: 'disconnected', at: at(), federationId: e.federationId, partnerId: e.partnerId, partnerName: e.partnerName }));
  orchestrator.on('round-end', async (e) => {
    for (const [partnerId, reason] of Object.entries(e.failures)) publish({ type: 'dropout', at: at(), federationId: e.federationId, roundId: e.roundId, round: e.round, partnerId, reason });
    publish({ type: 'round-end', at: at(), ...e });
    // Ledger rows the round wrote (spent, or refused for budget).
    try {
      // After the round's queued rows (its ledger rows included) reached the store.
      await orchestrator.flushWrites();
      for (const entry of (await privacyReport(store, e.federationId)).history.filter((h) => h.roundId === e.roundId)) {
        publish({ type: 'ledger', at: at(), federationId: e.federationId, ...entry, partnerId: entry.partnerId ?? undefined });
      }
    } catch {
      // a federation without a readable ledger emits no ledger events
    }
  });
  orchestrator.scheduler.on('schedule', (s) => publish({ type: 'schedule', at: at(), ...s }));
  orchestrator.scheduler.on('tick-skipped', (e) => publish({ type: 'tick-skipped', at: at(), ...e }));
  return { nsp, publish };
}
