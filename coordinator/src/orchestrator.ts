/**
 * Drives rounds for every federation. The round's moves are made by the pure
 * `transition()` in `@fedmart/shared/round`; this class only turns socket
 * messages and timers into events, performs the effects (send, aggregate,
 * commit), and persists every transition.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { createRound, transition, type RoundEvent, type RoundState, type TimedPhase, type RoundEffect } from '@fedmart/shared/round';
import type { FederationConfig, Metrics, TrainInstruction, EvaluateInstruction, RoundStatus } from '@fedmart/shared/protocol';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import type { ClientEvaluation, ClientFailure, ClientUpdate, Strategy } from '@fedmart/shared/strategy/types';
import { encodeFloat32 } from '@fedmart/shared/codec';
import { seededRandom } from '@fedmart/shared/model';
import type { Store } from './db/store.ts';

/** How the orchestrator reaches one connected client (implemented by the Socket.IO transport). */
export interface ClientLink {
  partnerId: string;
  partnerName: string;
  numExamples: number;
  sendTrain(t: TrainInstruction, weights: Uint8Array): void;
  sendEvaluate(e: EvaluateInstruction, weights: Uint8Array): void;
  sendStatus(s: RoundStatus): void;
  sendRejected(r: { roundId?: string; code: string; message: string }): void;
  disconnect(reason: string): void;
}

/** Final outcome of a round. */
export interface RoundOutcome {
  roundId: string;
  round: number;
  phase: 'committed' | 'failed';
  reason?: string;
  modelVersion?: number;
  metrics: Record<string, number>;
  participants: string[];
  failures: Record<string, string>;
  seconds: number;
}

/** Progress events (for the CLI's live view and the portal). */
export interface OrchestratorEvents {
  phase: [{ federationId: string; roundId: string; round: number; phase: string; reason?: string; selected: number; reported: number; evaluated: number; elapsedMs: number }];
  'client-report': [{ federationId: string; roundId: string; round: number; partnerId: string; kind: 'train' | 'evaluate' | 'failed'; reason?: string }];
  'round-end': [{ federationId: string } & RoundOutcome];
  'client-connected': [{ federationId: string; partnerId: string; partnerName: string; connected: number }];
  'client-disconnected': [{ federationId: string; partnerId: string; partnerName: string; connected: number }];
}

interface ActiveRound {
  state: RoundState;
  config: FederationConfig;
  global: Float32Array;
  baseModelId: string;
  startedAt: number;
  updates: Map<string, ClientUpdate>;
  evaluations: Map<string, ClientEvaluation>;
  timer: NodeJS.Timeout | null;
  trainMetrics: Record<string, number>;
  newWeights: Float32Array | null;
  done: (o: RoundOutcome) => void;
}

class FederationRunner {
  readonly clients = new Map<string, ClientLink>();
  strategy: Strategy;
  active: ActiveRound | null = null;
  queue: Promise<unknown> = Promise.resolve();
  private rand: () => number;

  constructor(readonly federationId: string, config: FederationConfig) {
    this.strategy = createStrategy(config.strategy, config.strategyOptions);
    this.rand = seededRandom(config.seed);
  }

  nextRand(): number {
    return this.rand();
  }
}

export class Orchestrator extends EventEmitter<OrchestratorEvents> {
  private readonly runners = new Map<string, FederationRunner>();
  private closed = false;

  constructor(private readonly store: Store) {
    super();
  }

  private runner(federationId: string): FederationRunner {
    let r = this.runners.get(federationId);
    if (!r) {
      const row = this.store.getFederation(federationId);
      r = new FederationRunner(federationId, this.store.federationConfig(row));
      this.runners.set(federationId, r);
    }
    return r;
  }

  /** Connected client count per federation. */
  connectedClients(federationId: string): ClientLink[] {
    return [...(this.runners.get(federationId)?.clients.values() ?? [])];
  }

  /** Register a client after its hello. A second connection of the same partner replaces the first. */
  attachClient(federationId: string, link: ClientLink): void {
    const r = this.runner(federationId);
    const old = r.clients.get(link.partnerId);
    if (old && old !== link) old.disconnect('replaced by a newer connection of the same partner');
    r.clients.set(link.partnerId, link);
    this.emit('client-connected', { federationId, partnerId: link.partnerId, partnerName: link.partnerName, connected: r.clients.size });
    // A round waiting for clients may now start.
    if (r.active?.state.phase === 'selecting') this.apply(r, this.selectEvent(r));
  }

  /** Forget a client (socket closed). Its round work counts as a failure. */
  detachClient(federationId: string, link: ClientLink): void {
    const r = this.runners.get(federationId);
    if (!r || r.clients.get(link.partnerId) !== link) return;
    r.clients.delete(link.partnerId);
    this.emit('client-disconnected', { federationId, partnerId: link.partnerId, partnerName: link.partnerName, connected: r.clients.size });
    if (r.active) {
      this.persistParticipantFailure(r.active, link.partnerId, 'disconnected');
      this.apply(r, { type: 'client-left', nodeId: link.partnerId });
    }
  }

  /**
   * Queue `count` rounds for a federation; they run one after another.
   * @returns the schedule id and a promise of all outcomes
   */
  scheduleRounds(federationId: string, count: number): { scheduleId: string; done: Promise<RoundOutcome[]> } {
    const r = this.runner(federationId);
    const schedule = this.store.createSchedule(federationId, count);
    this.store.audit('coordinator', 'schedule.created', federationId, { scheduleId: schedule.id, rounds: count });
    const done: Promise<RoundOutcome[]> = r.queue.then(async () => {
      const outcomes: RoundOutcome[] = [];
      this.store.updateSchedule(schedule.id, { status: 'running' });
      let consecutiveFailures = 0;
      for (let i = 0; i < count; i++) {
        if (this.closed) break;
        const outcome = await this.runRound(federationId);
        outcomes.push(outcome);
        this.store.updateSchedule(schedule.id, { remaining: count - i - 1 });
        consecutiveFailures = outcome.phase === 'failed' ? consecutiveFailures + 1 : 0;
        if (consecutiveFailures >= 3) {
          this.store.updateSchedule(schedule.id, { status: 'failed', reason: `3 rounds in a row failed; last: ${outcome.reason}` });
          return outcomes;
        }
      }
      this.store.updateSchedule(schedule.id, { status: this.closed ? 'cancelled' : 'done' });
      return outcomes;
    });
    r.queue = done.catch(() => undefined);
    return { scheduleId: schedule.id, done };
  }

  /** Run one round now (waits for any round in progress). */
  runRound(federationId: string): Promise<RoundOutcome> {
    const r = this.runner(federationId);
    if (r.active) throw new FedmartError('CONFLICT', `federation ${federationId} already has round ${r.active.state.round} in progress; queue rounds with scheduleRounds`);
    const fed = this.store.getFederation(federationId);
    const config = this.store.federationConfig(fed);
    const { row: base, weights } = this.store.currentModel(federationId);
    const number = this.store.nextRoundNumber(federationId);
    const roundId = `r_${randomUUID().slice(0, 12)}`;
    const ctx = { round: number, global: weights, clients: [] as string[] };
    const localConfig = r.strategy.configureTrain(ctx, config.localTrain);
    this.store.createRound({ id: roundId, federationId, number, phase: 'scheduled', strategy: config.strategy, config: JSON.stringify(localConfig), baseModelVersionId: base.id, startedAt: Date.now() });
    return new Promise<RoundOutcome>((resolve) => {
      r.active = {
        state: createRound(roundId, number, Math.max(1, config.minClients)),
        config: { ...config, localTrain: localConfig },
        global: weights,
        baseModelId: base.id,
        startedAt: Date.now(),
        updates: new Map(),
        evaluations: new Map(),
        timer: null,
        trainMetrics: {},
        newWeights: null,
        done: resolve,
      };
      this.apply(r, this.selectEvent(r));
    });
  }

  private selectEvent(r: FederationRunner): RoundEvent {
    const a = r.active!;
    return { type: 'select', available: [...r.clients.keys()], sampleFraction: a.config.sampleFraction, rand: () => r.nextRand() };
  }

  // ------------------------------------------------------------ inbound

  /** A client's training result (delta already decoded and shape/finiteness-checked by the transport). */
  acceptTrainResult(federationId: string, partnerId: string, roundId: string, numExamples: number, metrics: Metrics, delta: Float32Array): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    if (delta.length !== a.global.length) {
      throw new FedmartError('INVALID_UPDATE', `wrong shape: the update has ${delta.length} values, the model has ${a.global.length}; train on the weights sent for round ${a.state.round}`);
    }
    const res = this.apply(r, { type: 'train-result', nodeId: partnerId }, () => {
      a.updates.set(partnerId, { nodeId: partnerId, numExamples, delta, metrics });
      this.store.setParticipant(roundId, partnerId, { status: 'trained', numExamples, trainMetrics: metrics });
    });
    if (res.rejected) throw new FedmartError('CONFLICT', res.rejected);
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'train' });
  }

  /** A client reports it could not train. */
  acceptTrainError(federationId: string, partnerId: string, roundId: string, code: string, message: string): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    this.persistParticipantFailure(a, partnerId, `${code}: ${message}`);
    this.apply(r, { type: 'train-failed', nodeId: partnerId, reason: `${code}: ${message}` });
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'failed', reason: message });
  }

  /** A client's evaluation of the new global model. */
  acceptEvaluation(federationId: string, partnerId: string, roundId: string, numExamples: number, metrics: Metrics): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    const res = this.apply(r, { type: 'evaluate-result', nodeId: partnerId }, () => {
      a.evaluations.set(partnerId, { nodeId: partnerId, numExamples, metrics });
      this.store.setParticipant(roundId, partnerId, { status: a.state.trained.includes(partnerId) ? 'trained' : 'evaluated', evalMetrics: metrics });
    });
    if (res.rejected) throw new FedmartError('CONFLICT', res.rejected);
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'evaluate' });
  }

  /** Abort the active round of a federation, if any. */
  abort(federationId: string, reason: string): void {
    const r = this.runners.get(federationId);
    if (r?.active) this.apply(r, { type: 'abort', reason });
  }

  private requireRound(federationId: string, roundId: string): FederationRunner {
    const r = this.runners.get(federationId);
    if (!r?.active || r.active.state.roundId !== roundId) {
      throw new FedmartError('CONFLICT', `round ${roundId} is not in progress (it ended or never existed); wait for the next train instruction`);
    }
    return r;
  }

  private persistParticipantFailure(a: ActiveRound, partnerId: string, reason: string): void {
    if (a.state.selected.includes(partnerId) || a.state.evaluators.includes(partnerId)) {
      if (!a.updates.has(partnerId)) this.store.setParticipant(a.state.roundId, partnerId, { status: 'failed', reason });
    }
  }

  // ------------------------------------------------------------ machine

  /**
   * Apply one event: pure transition, then persist, then effects.
   * `accept` runs only when the event is accepted (so a refused event changes no state).
   */
  private apply(r: FederationRunner, event: RoundEvent, accept?: () => void) {
    const a = r.active;
    if (!a) return { rejected: 'no round in progress' };
    const before = a.state.phase;
    const res = transition(a.state, event);
    if (res.rejected) return res;
    accept?.();
    a.state = res.state;
    if (res.state.phase !== before) {
      // 'committed' is written by commitRound, in the same transaction as the model version.
      if (a.state.phase !== 'committed') this.store.setRoundPhase(a.state.roundId, a.state.phase, a.state.reason);
      this.broadcastPhase(r, a);
    }
    for (const effect of res.effects) this.perform(r, a, effect);
    return res;
  }

  private broadcastPhase(r: FederationRunner, a: ActiveRound): void {
    const s = a.state;
    const status: RoundStatus = { roundId: s.roundId, round: s.round, phase: s.phase, ...(s.reason ? { reason: s.reason } : {}) };
    for (const c of r.clients.values()) c.sendStatus(status);
    this.emit('phase', { federationId: r.federationId, roundId: s.roundId, round: s.round, phase: s.phase, ...(s.reason ? { reason: s.reason } : {}), selected: s.selected.length, reported: s.trained.length, evaluated: s.evaluated.length, elapsedMs: Date.now() - a.startedAt });
  }

  private perform(r: FederationRunner, a: ActiveRound, effect: RoundEffect): void {
    switch (effect.type) {
      case 'start-timer':
        this.startTimer(r, a, effect.phase);
        return;
      case 'send-train': {
        const bytes = encodeFloat32(a.global);
        for (const id of effect.nodeIds) {
          this.store.setParticipant(a.state.roundId, id, { status: 'selected' });
          r.clients.get(id)?.sendTrain({ roundId: a.state.roundId, round: a.state.round, config: a.config.localTrain, length: a.global.length }, bytes);
        }
        return;
      }
      case 'aggregate':
        this.clearTimer(a);
        // Aggregate on the next tick so the triggering message's ack goes out first.
        setImmediate(() => this.aggregate(r, a));
        return;
      case 'send-evaluate': {
        const bytes = encodeFloat32(a.newWeights!);
        for (const id of effect.nodeIds) r.clients.get(id)?.sendEvaluate({ roundId: a.state.roundId, round: a.state.round, length: a.newWeights!.length }, bytes);
        return;
      }
      case 'commit':
        this.clearTimer(a);
        this.commit(r, a);
        return;
      case 'fail':
        this.clearTimer(a);
        this.finish(r, a, { phase: 'failed', reason: effect.reason });
        return;
    }
  }

  private startTimer(r: FederationRunner, a: ActiveRound, phase: TimedPhase): void {
    this.clearTimer(a);
    const ms = phase === 'selecting' ? a.config.timeouts.selectingMs : phase === 'training' ? a.config.timeouts.trainingMs : a.config.timeouts.evaluatingMs;
    a.timer = setTimeout(() => {
      a.timer = null;
      if (r.active === a) this.apply(r, { type: 'timeout', phase });
    }, ms);
    a.timer.unref?.();
  }

  private clearTimer(a: ActiveRound): void {
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
  }

  private aggregate(r: FederationRunner, a: ActiveRound): void {
    if (r.active !== a || a.state.phase !== 'aggregating') return;
    try {
      const results = a.state.trained.map((id) => a.updates.get(id)!).filter(Boolean);
      const failures: ClientFailure[] = Object.entries(a.state.failures).map(([nodeId, reason]) => ({ nodeId, code: 'FAILED', reason }));
      const out = r.strategy.aggregateTrain(a.state.round, a.global, results, failures);
      if (!out.weights) {
        this.apply(r, { type: 'aggregated', ok: false, reason: 'the strategy kept the previous model (no usable updates)' });
        return;
      }
      a.newWeights = out.weights;
      a.trainMetrics = out.metrics;
      a.updates.clear(); // individual updates are not kept past aggregation
      const evaluators = r.strategy.configureEvaluate({ round: a.state.round, global: out.weights, clients: [...r.clients.keys()] }).evaluate ? [...r.clients.keys()] : [];
      this.apply(r, { type: 'aggregated', ok: true, evaluators });
    } catch (err) {
      const e = toFedmartError(err);
      this.apply(r, { type: 'aggregated', ok: false, reason: `aggregation failed: ${e.message}` });
    }
  }

  private commit(r: FederationRunner, a: ActiveRound): void {
    const evalResults = a.state.evaluated.map((id) => a.evaluations.get(id)!).filter(Boolean);
    const evalMetrics = evalResults.length ? r.strategy.aggregateEvaluate(a.state.round, evalResults, []) : {};
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(a.trainMetrics)) metrics[`train_${k}`] = v;
    for (const [k, v] of Object.entries(evalMetrics)) metrics[`eval_${k}`] = v;
    metrics.clients = a.state.trained.length;
    try {
      const model = this.store.commitRound({
        federationId: r.federationId, roundId: a.state.roundId, parentId: a.baseModelId, strategy: r.strategy.id,
        participants: [...a.state.trained], metrics, spec: a.config.model, weights: a.newWeights!,
      });
      this.store.audit('coordinator', 'round.committed', a.state.roundId, { federationId: r.federationId, round: a.state.round, modelVersion: model.version, participants: a.state.trained });
      this.finish(r, a, { phase: 'committed', modelVersion: model.version, metrics });
    } catch (err) {
      const e = toFedmartError(err);
      a.state = { ...a.state, phase: 'failed', reason: `commit failed: ${e.message}` };
      this.store.setRoundPhase(a.state.roundId, 'failed', a.state.reason);
      this.broadcastPhase(r, a);
      this.finish(r, a, { phase: 'failed', reason: a.state.reason! });
    }
  }

  private finish(r: FederationRunner, a: ActiveRound, o: { phase: 'committed' | 'failed'; reason?: string; modelVersion?: number; metrics?: Record<string, number> }): void {
    if (r.active !== a) return;
    r.active = null;
    if (o.phase === 'failed') {
      this.store.audit('coordinator', 'round.failed', a.state.roundId, { federationId: r.federationId, round: a.state.round, reason: o.reason });
    }
    const outcome: RoundOutcome = {
      roundId: a.state.roundId, round: a.state.round, phase: o.phase, ...(o.reason ? { reason: o.reason } : {}),
      ...(o.modelVersion !== undefined ? { modelVersion: o.modelVersion } : {}), metrics: o.metrics ?? {},
      participants: [...a.state.trained], failures: { ...a.state.failures }, seconds: (Date.now() - a.startedAt) / 1000,
    };
    this.emit('round-end', { federationId: r.federationId, ...outcome });
    a.done(outcome);
  }

  /** Stop all timers and fail rounds in progress (used on shutdown). */
  close(): void {
    this.closed = true;
    for (const r of this.runners.values()) {
      if (r.active) this.apply(r, { type: 'abort', reason: 'interrupted: the coordinator is shutting down' });
    }
  }
}
