/**
 * Prometheus metrics at `GET /metrics` (issue 13, item 6), prom-client, one
 * registry per coordinator (tests run several in one process). Names are
 * prefixed `fedmart_`:
 *
 * - `fedmart_rounds_total{federation,outcome}`         rounds by outcome (committed | failed)
 * - `fedmart_round_phase_duration_seconds{federation,phase}`  histogram of time spent in each round phase
 * - `fedmart_round_participants{federation}`           histogram of partners whose update a round used
 * - `fedmart_round_dropouts_total{federation}`         selected partners that failed to report (disconnect, timeout, error)
 * - `fedmart_partner_progress_reports_total{federation}`  progress reports of partners still training
 * - `fedmart_socket_bytes_received_total` / `fedmart_socket_bytes_sent_total`  Socket.IO payload bytes (every namespace)
 * - `fedmart_schedule_ticks_skipped_total{federation}` cron/every ticks skipped because a round was running
 * - `fedmart_privacy_epsilon_spent{federation,scope,level}`  ε charged so far (federation scope and the largest partner), read from the ledger at scrape time
 * - `fedmart_connected_partners{federation}`           partners connected now
 * - default process metrics (`fedmart_process_*`, `fedmart_nodejs_*`)
 *
 * Who may scrape: a Bearer token of role operator or compliance (Prometheus
 * `authorization: { credentials_file: ... }`); partner tokens get 403. Labels
 * carry federation ids only — never a partner id, so a metric never tells one
 * partner about another.
 */
import type { Server as IoServer } from 'socket.io';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Orchestrator } from './orchestrator.ts';
import type { AsyncStore } from './db/store-api.ts';
import { privacyReport } from './privacy.ts';

export interface CoordinatorMetrics {
  registry: Registry;
  /** Count Socket.IO bytes of this server (call once the io server exists). */
  attachIo(io: IoServer): void;
  /** The text exposition format. */
  render(): Promise<string>;
}

const PHASE_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 1800, 7200];

/**
 * Create the metrics of one coordinator and subscribe them to its orchestrator.
 * @returns the registry and its helpers
 */
export function createMetrics(deps: { orchestrator: Orchestrator; store: AsyncStore }): CoordinatorMetrics {
  const { orchestrator, store } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fedmart_' });
  const registers = [registry];
  const rounds = new Counter({ name: 'fedmart_rounds_total', help: 'Rounds that ended, by outcome', labelNames: ['federation', 'outcome'] as const, registers });
  const phase = new Histogram({ name: 'fedmart_round_phase_duration_seconds', help: 'Time rounds spent in each phase', labelNames: ['federation', 'phase'] as const, buckets: PHASE_BUCKETS, registers });
  const participants = new Histogram({ name: 'fedmart_round_participants', help: 'Partners whose update a round used', labelNames: ['federation'] as const, buckets: [0, 1, 2, 3, 5, 10, 20, 50, 100, 1000], registers });
  const dropouts = new Counter({ name: 'fedmart_round_dropouts_total', help: 'Selected partners that failed to report in a round', labelNames: ['federation'] as const, registers });
  const progress = new Counter({ name: 'fedmart_partner_progress_reports_total', help: 'Progress reports of partners still training', labelNames: ['federation'] as const, registers });
  const bytesIn = new Counter({ name: 'fedmart_socket_bytes_received_total', help: 'Socket.IO payload bytes received', registers });
  const bytesOut = new Counter({ name: 'fedmart_socket_bytes_sent_total', help: 'Socket.IO payload bytes sent', registers });
  const skipped = new Counter({ name: 'fedmart_schedule_ticks_skipped_total', help: 'Schedule ticks skipped because a round was running', labelNames: ['federation'] as const, registers });
  new Gauge({
    name: 'fedmart_connected_partners', help: 'Partners connected now', labelNames: ['federation'] as const, registers,
    async collect() {
      this.reset();
      for (const f of await store.listFederations()) this.set({ federation: f.id }, orchestrator.connectedClients(f.id).length);
    },
  });
  new Gauge({
    name: 'fedmart_privacy_epsilon_spent', help: 'Epsilon charged so far by the privacy ledger (scope federation, or partner_max: the most any one partner spent)', labelNames: ['federation', 'scope', 'level'] as const, registers,
    async collect() {
      this.reset();
      for (const f of await store.listFederations()) {
        const totals = (await privacyReport(store, f.id)).totals;
        for (const level of ['record', 'partner'] as const) {
          const fed = totals.find((x) => x.scope === 'federation' && x.level === level);
          const partners = totals.filter((x) => x.scope === 'partner' && x.level === level);
          if (fed) this.set({ federation: f.id, scope: 'federation', level }, fed.epsilon);
          if (partners.length) this.set({ federation: f.id, scope: 'partner_max', level }, Math.max(...partners.map((x) => x.epsilon)));
        }
      }
    },
  });

  // Phase durations: each phase event closes the previous phase of its round.
  const open = new Map<string, { phase: string; at: number; federationId: string }>();
  orchestrator.on('phase', (e) => {
    const prev = open.get(e.roundId);
    if (prev) phase.observe({ federation: e.federationId, phase: prev.phase }, Math.max(0, e.elapsedMs - prev.at) / 1000);
    if (e.phase === 'committed' || e.phase === 'failed') open.delete(e.roundId);
    else open.set(e.roundId, { phase: e.phase, at: e.elapsedMs, federationId: e.federationId });
  });
  orchestrator.on('round-end', (e) => {
    const prev = open.get(e.roundId);
    if (prev) phase.observe({ federation: e.federationId, phase: prev.phase }, Math.max(0, e.seconds - prev.at / 1000));
    open.delete(e.roundId);
    rounds.inc({ federation: e.federationId, outcome: e.phase });
    participants.observe({ federation: e.federationId }, e.participants.length);
    const failed = Object.keys(e.failures).length;
    if (failed) dropouts.inc({ federation: e.federationId }, failed);
  });
  orchestrator.on('client-progress', (e) => progress.inc({ federation: e.federationId }));
  orchestrator.scheduler.on('tick-skipped', (e) => skipped.inc({ federation: e.federationId }));

  const size = (data: unknown): number => (typeof data === 'string' ? Buffer.byteLength(data) : data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? data.byteLength : 0);
  return {
    registry,
    attachIo(io) {
      io.engine.on('connection', (raw: { on(e: string, f: (p: { data?: unknown }) => void): void }) => {
        raw.on('packet', (p) => bytesIn.inc(size(p.data)));
        raw.on('packetCreate', (p) => bytesOut.inc(size(p.data)));
      });
    },
    render: () => registry.metrics(),
  };
}
