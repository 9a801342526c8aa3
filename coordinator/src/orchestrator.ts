/**
 * Drives rounds for every federation. The round's moves are made by the pure
 * `transition()` in `@fedmart/shared/round`; this class only turns socket
 * messages and timers into events, performs the effects (send, aggregate,
 * commit), and persists every transition.
 */
import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import { FedmartError, isFedmartError, toFedmartError } from '@fedmart/shared/errors';
import { createRound, transition, type RoundEvent, type RoundState, type TimedPhase, type RoundEffect, type SecAggPhase } from '@fedmart/shared/round';
import type { FederationConfig, Metrics, EvaluateInstruction, RoundStatus } from '@fedmart/shared/protocol';
import { CKKS_UPDATE_CLIP, multipartyCommitStatement, multipartyKeyId, multipartyKeyShareStatement, type MpCommitKind, updateStatement, type HeAggregate, type SecAggReplyEnvelope, type SecureServerToClientEvents, type SecureTrainInstruction } from '@fedmart/shared/protocol-secure';
import { DEFAULT_CKKS_PARAMS, ckksChunkCount, resolveCkksParams } from '@fedmart/shared/he/ckks-params';
import { MULTIPARTY_MAX_PARTNERS } from '@fedmart/shared/protocol';
import { weightedMetricMeans } from '@fedmart/shared/strategy/base';
import { boundExampleCount, boundUpdates, checkMetricRanges, type BoundedUpdates } from '@fedmart/shared/strategy/partner-bounds';
import { SecAggRound, PHASE_OF_STAGE } from './protection/secagg-round.ts';
import { CkksCustody, packChunks } from './protection/ckks-custody.ts';
import { verifyEd25519 } from '@fedmart/shared/crypto/ed25519';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { verifiedWeightBytes, weightsOf } from './db/store.ts';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import type { ClientEvaluation, ClientFailure, ClientUpdate, Strategy } from '@fedmart/shared/strategy/types';
import { encodeFloat32 } from '@fedmart/shared/codec';
import { seededRandom } from '@fedmart/shared/model';
import type { AsyncStore } from './db/store-api.ts';
import type { Fence } from './cluster/lease.ts';
import { WriteQueue } from './db/write-queue.ts';
import { projectRoundOverBudget, recordReleasedSpend, roundSpendPlan, refuseRoundOverBudget, securedExtraCoordinates, withDifferentialPrivacy } from './privacy.ts';
import { Scheduler, type ScheduleClock } from './scheduler.ts';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';

/** How the orchestrator reaches one connected client (implemented by the Socket.IO transport). */
export interface ClientLink {
  partnerId: string;
  partnerName: string;
  /** The example count the partner is weighted by: what it declared at hello, capped by its enrollment and the federation's limits. */
  numExamples: number;
  /** What it declared at hello (uncapped; an honest SecAgg client folds min(this, maxWeight) into the secure sum). */
  declaredExamples: number;
  /** The partner's Ed25519 identity key bound to its enrollment (absent for a partner that presented none). */
  identityKey?: Uint8Array;
  sendTrain(t: SecureTrainInstruction, weights: Uint8Array): void;
  /** Send a protection-layer event (secure-aggregation request, CKKS key custody, encrypted aggregate). */
  emitSecure<E extends keyof SecureServerToClientEvents>(event: E, payload: Parameters<SecureServerToClientEvents[E]>[0]): void;
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
  /** A selected partner reported training progress; `deadline` is when the phase now times out. */
  'client-progress': [{ federationId: string; roundId: string; round: number; partnerId: string; step: number; steps: number; epoch: number; deadline: number }];
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
  /** Cluster mode: the lease the round started under; its commit carries it and is refused once it changed. */
  fence?: Fence;
  updates: Map<string, ClientUpdate>;
  evaluations: Map<string, ClientEvaluation>;
  timer: NodeJS.Timeout | null;
  /** The timed phase, when it began and when it times out (progress reports move the deadline). */
  timed: { phase: TimedPhase; startedAt: number; deadline: number } | null;
  trainMetrics: Record<string, number>;
  newWeights: Float32Array | null;
  done: (o: RoundOutcome) => void;
  /** Secure aggregation of this round (null when off). */
  secagg: SecAggRound | null;
  /** CKKS: encrypted updates, then the encrypted aggregate (null when off). */
  ckks: {
    uploads: Map<string, { chunks: Uint8Array[]; numExamples: number; metrics: Metrics; signature: Uint8Array }>;
    aggregate: Uint8Array[] | null;
    /** Key id and signed contributors (identity key, signature, mask parts) that travel with the aggregate. */
    keyId: string | null;
    contributors: HeAggregate['contributors'];
    /** Multiparty keys: this round's collective-key generation and decryption-share relay (null: the federation key). */
    mp: MultipartyRoundState | null;
  } | null;
  /** Version number of the base model (CKKS partners check they hold it). */
  baseVersion: number;
  /** True when the base model is an encrypted aggregate (CKKS, version ≥ 1): no plaintext weights go out. */
  baseEncrypted: boolean;
  /** Partners whose update was clipped or rejected by the federation's limits: their participant status and reason (kept when they evaluate). */
  boundNotes: Map<string, { status: string; reason: string }>;
  /** Partners whose update (plain, masked or encrypted) reached us: their DP spend is charged even if the round fails. */
  released: Set<string>;
}

/**
 * One round of multiparty CKKS at the coordinator (`he: { keys: 'multiparty' }`): it relays signed commitments
 * (key shares, then updates: each set goes out complete before anyone reveals), signed key shares and sealed
 * decryption shares it cannot open, and sums ciphertexts; it never holds a secret share.
 */
interface MultipartyRoundState {
  /** Public seed of the round's common reference polynomial (fresh per round). */
  crpSeed: Uint8Array;
  /** Partners asked to make the key (the selected set). */
  asked: string[];
  shares: Map<string, { identityKey: Uint8Array; publicShare: Uint8Array; wrapKey: Uint8Array; signature: Uint8Array }>;
  /** Set when the collective key went out: the key parties (sorted) and the key id. Everyone of them must decrypt. */
  keyParties: string[] | null;
  keyId: string | null;
  /** Key parties whose sealed decryption shares were relayed. */
  decryptionFrom: Set<string>;
  /** Signed commitments per kind (key shares, then updates), and the partners they went out for (null: not yet sent). */
  commits: Record<MpCommitKind, Map<string, { identityKey: Uint8Array; commitment: Uint8Array; signature: Uint8Array }>>;
  committed: Record<MpCommitKind, string[] | null>;
}

class FederationRunner {
  readonly clients = new Map<string, ClientLink>();
  strategy: Strategy;
  active: ActiveRound | null = null;
  /** CKKS key-custody relay (encryption 'ckks' only; created when the key holder is known). */
  custody: CkksCustody | null = null;
  /** Set while {@link Orchestrator.runRound} reads the store before the round is active (two calls cannot both start one). */
  starting = false;
  /** The federation's enrollments as of the newest {@link Orchestrator.prepare} (CKKS key holder lookup). */
  enrollments: { partnerId: string; partnerName: string; identityKey: string | null }[] = [];
  private rand: () => number;

  constructor(readonly federationId: string, readonly config: FederationConfig) {
    this.strategy = createStrategy(config.strategy, config.strategyOptions);
    this.rand = seededRandom(config.seed);
  }

  nextRand(): number {
    return this.rand();
  }
}

export class Orchestrator extends EventEmitter<OrchestratorEvents> {
  private readonly runners = new Map<string, FederationRunner>();
  private readonly loading = new Map<string, Promise<FederationRunner>>();
  /** Schedules of rounds (scheduler.ts); every schedule's rounds run through {@link runRound}. */
  readonly scheduler: Scheduler;
  /** Round rows (phases, participants) in the order the rounds moved (db/write-queue.ts). */
  private readonly writes: WriteQueue;

  /**
   * @param store - the coordinator's store (SQLite or PostgreSQL)
   * @param opts.onWriteError - a round row that could not be written (default: printed to stderr)
   */
  constructor(private readonly store: AsyncStore, opts: { clock?: ScheduleClock; onWriteError?: (err: unknown) => void } = {}) {
    super();
    this.writes = new WriteQueue(opts.onWriteError ?? ((err) => console.error(`fedmart coordinator: a round write failed: ${toFedmartError(err).message}`)));
    this.scheduler = new Scheduler(store, {
      runRound: (federationId, o) => this.runRound(federationId, o),
      hasActiveRound: (federationId) => this.isRoundActive(federationId),
      projectNextRound: (federationId) => this.projectNextRound(federationId),
    }, opts.clock, opts.onWriteError);
  }

  /** Whether a round of the federation is in progress. */
  isRoundActive(federationId: string): boolean {
    return this.runners.get(federationId)?.active != null;
  }

  /**
   * Would the federation's next round exceed a privacy cap? The same projection
   * {@link runRound} refuses by, with the local config the round would get; writes nothing.
   * @returns the reason, or null when the round fits every cap
   */
  async projectNextRound(federationId: string): Promise<string | null> {
    const r = await this.prepare(federationId);
    const config = this.store.federationConfig(await this.store.getFederation(federationId));
    const round = await this.store.nextRoundNumber(federationId);
    const localConfig = r.strategy.configureTrain({ round, global: new Float32Array(0), clients: [] }, config.localTrain);
    return (await projectRoundOverBudget(this.store, { federationId, round, config: { ...config, localTrain: localConfig } }))?.reason ?? null;
  }

  /**
   * Load the federation's runner (config, strategy) and refresh its view of the enrollments. Call it
   * before {@link attachClient} (the socket transport does, after the hello).
   * @throws FedmartError NOT_FOUND for an unknown federation
   */
  async prepare(federationId: string): Promise<FederationRunner> {
    let r = this.runners.get(federationId);
    if (!r) {
      let loading = this.loading.get(federationId);
      if (!loading) {
        loading = (async () => {
          const row = await this.store.getFederation(federationId);
          const runner = new FederationRunner(federationId, this.store.federationConfig(row));
          runner.strategy = await withDifferentialPrivacy(runner.strategy, this.store, federationId);
          return runner;
        })().finally(() => this.loading.delete(federationId));
        this.loading.set(federationId, loading);
      }
      const loaded = await loading;
      r = this.runners.get(federationId) ?? loaded;
      this.runners.set(federationId, r);
    }
    r.enrollments = (await this.store.listEnrollments(federationId)).map((e) => ({ partnerId: e.partnerId, partnerName: e.partnerName, identityKey: e.identityKey }));
    return r;
  }

  private runner(federationId: string): FederationRunner {
    const r = this.runners.get(federationId);
    if (!r) throw new FedmartError('INTERNAL', `federation ${federationId} is not loaded: await orchestrator.prepare(federationId) first`);
    return r;
  }

  /** Every round row written so far has reached the store. */
  flushWrites(): Promise<void> {
    return this.writes.drain();
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
    if (r.config.encryption === 'ckks') this.sendHeSetup(r, link);
    // A round waiting for clients may now start.
    if (r.active?.state.phase === 'selecting') this.apply(r, this.selectEvent(r));
  }

  /** Forget a client (socket closed). Its round work counts as a failure. */
  detachClient(federationId: string, link: ClientLink): void {
    const r = this.runners.get(federationId);
    if (!r || r.clients.get(link.partnerId) !== link) return;
    r.clients.delete(link.partnerId);
    r.custody?.forget(link.partnerId);
    this.emit('client-disconnected', { federationId, partnerId: link.partnerId, partnerName: link.partnerName, connected: r.clients.size });
    if (r.active) {
      this.persistParticipantFailure(r.active, link.partnerId, 'disconnected');
      this.apply(r, { type: 'client-left', nodeId: link.partnerId });
      this.multipartyPartnerGone(r, link.partnerId, 'disconnected');
    }
  }

  /**
   * Queue `count` rounds for a federation (a schedule of kind `now`); they run one after another.
   * @returns `created`: the stored schedule (rejects, e.g. CONFLICT for an archived federation, when it
   *   could not be created); `done`: every outcome (rejects likewise). Neither needs a handler: a
   *   caller that ignores one does not leave an unhandled rejection.
   */
  scheduleRounds(federationId: string, count: number, actor = 'coordinator'): { created: Promise<ScheduleView>; done: Promise<RoundOutcome[]> } {
    const started = this.scheduler.create(federationId, { kind: 'now', rounds: count }, actor);
    const created = started.then((s) => s.schedule);
    const done = started.then((s) => s.done);
    created.catch(() => undefined);
    done.catch(() => undefined);
    return { created, done };
  }

  /**
   * Record a round that cannot start as failed, with the reason, before any
   * client is asked to train; the federation's current model stays.
   * @returns the failed outcome (also emitted as `round-end`)
   */
  private async refuseRound(federationId: string, r: { roundId: string; number: number; strategy: string; baseModelVersionId: string }, reason: string): Promise<RoundOutcome> {
    const startedAt = Date.now();
    await this.store.createRefusedRound({ id: r.roundId, federationId, number: r.number, phase: 'scheduled', strategy: r.strategy, config: '{}', baseModelVersionId: r.baseModelVersionId, startedAt }, reason);
    await this.writes.run(() => this.store.audit('coordinator', 'round.refused', r.roundId, { federationId, round: r.number, reason }));
    const outcome: RoundOutcome = { roundId: r.roundId, round: r.number, phase: 'failed', reason, metrics: {}, participants: [], failures: {}, seconds: 0 };
    this.emit('round-end', { federationId, ...outcome });
    return outcome;
  }

  /**
   * Cluster mode (server.ts, issue 15): throws CONFLICT naming the leader unless this coordinator leads
   * the federation; every round (REST, schedules) starts through {@link runRound}, which calls it.
   */
  assertLeader: ((federationId: string) => Promise<void>) | null = null;
  /**
   * Cluster mode: this coordinator's lease on the federation (undefined when it does not lead it). A round
   * records the fence it started under; its commit passes the fence into `commitRound`, which checks it in
   * the commit transaction, and a round whose lease changed meanwhile is failed without a commit.
   */
  fenceOf: ((federationId: string) => Fence | undefined) | null = null;

  /** Run one round now (waits for any round in progress). */
  async runRound(federationId: string, opts: { roundId?: string } = {}): Promise<RoundOutcome> {
    const r = await this.prepare(federationId);
    await this.assertLeader?.(federationId);
    if (r.active || r.starting) throw new FedmartError('CONFLICT', `federation ${federationId} already has round ${r.active?.state.round ?? ''} in progress; queue rounds with scheduleRounds`.replace('round  in', 'a round in'));
    r.starting = true;
    try {
      return await this.startRound(r, opts.roundId);
    } finally {
      r.starting = false;
    }
  }

  private async startRound(r: FederationRunner, givenRoundId: string | undefined): Promise<RoundOutcome> {
    const federationId = r.federationId;
    const fed = await this.store.getFederation(federationId);
    const config = this.store.federationConfig(fed);
    const base = await this.store.currentModelRow(federationId);
    const number = await this.store.nextRoundNumber(federationId);
    const roundId = givenRoundId ?? `r_${randomUUID().slice(0, 12)}`;
    let weights: Float32Array;
    try {
      // A CKKS federation's versions ≥ 1 are encrypted aggregates: the coordinator has no plaintext weights to send, but their blob is still checked.
      weights = base.encrypted ? (verifiedWeightBytes(base), new Float32Array(base.paramCount)) : weightsOf(base);
    } catch (err) {
      if (!isFedmartError(err)) throw err;
      return this.refuseRound(federationId, { roundId, number, strategy: config.strategy, baseModelVersionId: base.id }, `round ${number} refused before any training: ${err.message}`);
    }
    const ctx = { round: number, global: weights, clients: [] as string[] };
    const localConfig = r.strategy.configureTrain(ctx, config.localTrain);
    await this.store.createRound({ id: roundId, federationId, number, phase: 'scheduled', strategy: config.strategy, config: JSON.stringify(localConfig), baseModelVersionId: base.id, startedAt: Date.now() });
    // Privacy caps: a round that would overspend is refused before any training (privacy.ts).
    const refused = await refuseRoundOverBudget(this.store, { federationId, roundId, round: number, config: { ...config, localTrain: localConfig } });
    if (refused) return (this.emit('round-end', { federationId, ...refused }), refused);
    return new Promise<RoundOutcome>((resolve) => {
      r.active = {
        state: createRound(roundId, number, Math.max(1, config.minClients), { secureAggregation: config.secureAggregation !== undefined }),
        config: { ...config, localTrain: localConfig },
        global: weights,
        baseModelId: base.id,
        startedAt: Date.now(),
        ...(this.fenceOf ? { fence: this.fenceOf(federationId) } : {}),
        updates: new Map(),
        evaluations: new Map(),
        timer: null,
        timed: null,
        trainMetrics: {},
        newWeights: null,
        done: resolve,
        secagg: null,
        ckks: config.encryption === 'ckks' ? { uploads: new Map(), aggregate: null, keyId: null, contributors: [], mp: config.he?.keys === 'multiparty' ? { crpSeed: randomBytes(32), asked: [], shares: new Map(), keyParties: null, keyId: null, decryptionFrom: new Set(), commits: { key: new Map(), update: new Map() }, committed: { key: null, update: null } } : null } : null,
        baseVersion: base.version,
        baseEncrypted: base.encrypted,
        boundNotes: new Map(),
        released: new Set(),
      };
      this.apply(r, this.selectEvent(r));
    });
  }

  private selectEvent(r: FederationRunner): RoundEvent {
    const a = r.active!;
    // Under CKKS only partners holding the federation key can take part.
    const available = [...r.clients.keys()].filter((id) => a.config.encryption !== 'ckks' || r.custody?.isReady(id) === true);
    return { type: 'select', available, sampleFraction: a.config.sampleFraction, rand: () => r.nextRand() };
  }

  // ------------------------------------------------------------ inbound

  /** A client's training result (delta already decoded and shape/finiteness-checked by the transport). */
  acceptTrainResult(federationId: string, partnerId: string, roundId: string, numExamples: number, metrics: Metrics, delta: Float32Array): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    if (a.config.secureAggregation || a.config.encryption === 'ckks') {
      throw new FedmartError('FORBIDDEN', `federation ${federationId} protects updates with ${a.config.secureAggregation ? 'secure aggregation' : 'CKKS encryption'}: a plaintext update is refused and was not used; update fedmart on this partner`);
    }
    if (delta.length !== a.global.length) {
      throw new FedmartError('INVALID_UPDATE', `wrong shape: the update has ${delta.length} values, the model has ${a.global.length}; train on the weights sent for round ${a.state.round}`);
    }
    // A partner is weighted by at most what it declared at hello (already capped by enrollment and federation limits).
    numExamples = boundExampleCount(numExamples, [r.clients.get(partnerId)?.numExamples ?? 0]);
    const res = this.apply(r, { type: 'train-result', nodeId: partnerId }, () => {
      a.updates.set(partnerId, { nodeId: partnerId, numExamples, delta, metrics });
      a.released.add(partnerId);
      this.writes.fire(() => this.store.setParticipant(roundId, partnerId, { status: 'trained', numExamples, trainMetrics: metrics }));
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
    this.multipartyPartnerGone(r, partnerId, `${code}: ${message}`);
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'failed', reason: message });
  }

  /** A client's evaluation of the new global model. */
  acceptEvaluation(federationId: string, partnerId: string, roundId: string, numExamples: number, metrics: Metrics): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    // One partner's evaluation moves a [0, 1] metric by at most its weight share (strategy/partner-bounds.ts).
    checkMetricRanges(metrics);
    numExamples = boundExampleCount(numExamples, [r.clients.get(partnerId)?.numExamples ?? 0]);
    const res = this.apply(r, { type: 'evaluate-result', nodeId: partnerId }, () => {
      a.evaluations.set(partnerId, { nodeId: partnerId, numExamples, metrics });
      this.writes.fire(() => this.store.setParticipant(roundId, partnerId, { status: a.state.trained.includes(partnerId) ? 'trained' : 'evaluated', ...a.boundNotes.get(partnerId), evalMetrics: metrics }));
    });
    if (res.rejected) throw new FedmartError('CONFLICT', res.rejected);
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'evaluate' });
  }

  // ------------------------------------------------------------ protection layers

  /**
   * A client's reply to a secure-aggregation stage (parsed by the transport).
   * @throws FedmartError CONFLICT when no such stage is open for it (late, out of order); INVALID_MESSAGE when the SecAgg core refuses it — both change nothing
   */
  acceptSecAggReply(federationId: string, partnerId: string, roundId: string, payload: SecAggReplyEnvelope['payload']): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    if (!a.secagg) throw new FedmartError('CONFLICT', `round ${a.state.round} does not use secure aggregation; send a train-result`);
    const stage = PHASE_OF_STAGE[payload.stage];
    const res = this.apply(r, { type: 'stage-reply', stage, nodeId: partnerId }, () => a.secagg!.receive(partnerId, payload, roundId));
    if (res.rejected) throw new FedmartError('CONFLICT', res.rejected);
    if (payload.stage === 'masked-input') {
      a.released.add(partnerId);
      this.writes.fire(() => this.store.setParticipant(roundId, partnerId, { status: 'trained', numExamples: r.clients.get(partnerId)?.numExamples ?? 0, trainMetrics: payload.metrics }));
      this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'train' });
    }
  }

  /** CKKS: a partner's X25519 public key (for the wrapped federation key). */
  acceptHePartnerKey(federationId: string, partnerId: string, publicKey: Uint8Array, signature: Uint8Array): void {
    const r = this.requireCustody(federationId);
    r.custody!.partnerKey(partnerId, publicKey, signature, r.clients);
  }

  /** CKKS: a partner holds the federation key (the key holder: it made a new one). */
  acceptHeReady(federationId: string, partnerId: string, keyId: string): void {
    const r = this.requireCustody(federationId);
    r.custody!.partnerReady(partnerId, keyId, r.clients);
    this.writes.fire(() => this.store.audit('coordinator', 'he.partner-ready', partnerId, { federationId, keyId }));
    if (r.active?.state.phase === 'selecting') this.apply(r, this.selectEvent(r));
  }

  /** CKKS: the key holder wrapped the federation key for another partner; relay it. */
  acceptHeWrapped(federationId: string, partnerId: string, to: string, keyId: string, wrapped: Uint8Array, signature: Uint8Array): void {
    const r = this.requireCustody(federationId);
    r.custody!.relayWrapped(partnerId, to, keyId, wrapped, signature, r.clients);
  }

  /**
   * CKKS: a partner's encrypted update, [n·clip(Δ), n] in ciphertext chunks.
   * @throws FedmartError INVALID_UPDATE on a wrong length or chunk count; CONFLICT when not expected
   */
  acceptHeTrainResult(federationId: string, partnerId: string, roundId: string, length: number, chunks: Uint8Array[], metrics: Metrics, signature: Uint8Array): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    if (!a.ckks || !r.custody) throw new FedmartError('CONFLICT', `round ${a.state.round} does not use CKKS; send a train-result`);
    if (a.ckks.mp && !a.ckks.mp.committed.update?.includes(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: an encrypted update from ${partnerId} before every key party's update commitment went out; commit first (he-mp-commit), upload after`);
    if (length !== a.global.length + 1) throw new FedmartError('INVALID_UPDATE', `wrong shape: the encrypted update holds ${length} values, expected ${a.global.length + 1} (the model's parameters and the weight)`);
    const expected = ckksChunkCount(length, r.custody.params);
    if (chunks.length !== expected) throw new FedmartError('INVALID_UPDATE', `the encrypted update has ${chunks.length} ciphertext chunks, expected ${expected} for ${length} values`);
    const numExamples = r.clients.get(partnerId)?.numExamples ?? 0;
    const res = this.apply(r, { type: 'train-result', nodeId: partnerId }, () => {
      a.ckks!.uploads.set(partnerId, { chunks: chunks.map((c) => new Uint8Array(c)), numExamples, metrics, signature: new Uint8Array(signature) });
      a.released.add(partnerId);
      this.writes.fire(() => this.store.setParticipant(roundId, partnerId, { status: 'trained', numExamples, trainMetrics: metrics }));
    });
    if (res.rejected) throw new FedmartError('CONFLICT', res.rejected);
    this.emit('client-report', { federationId, roundId, round: a.state.round, partnerId, kind: 'train' });
  }

  /**
   * Multiparty: a selected partner's signed key share for this round. The coordinator checks the signature (so
   * honest partners are not sent a set they would refuse) and, once every selected partner has sent one or
   * failed, sends all of them to the key parties, who check them again and combine the key themselves.
   * @throws FedmartError CONFLICT when not expected; FORBIDDEN for a share without its valid identity signature
   */
  acceptHeMpKeyShare(federationId: string, partnerId: string, roundId: string, share: { publicShare: Uint8Array; wrapKey: Uint8Array; signature: Uint8Array }): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    const mp = a.ckks?.mp;
    if (!mp) throw new FedmartError('CONFLICT', `round ${a.state.round} does not use multiparty CKKS keys; a key share is not expected`);
    if (a.state.phase !== 'training' || !mp.asked.includes(partnerId) || partnerId in a.state.failures) throw new FedmartError('CONFLICT', `round ${a.state.round}: partner ${partnerId} is not a selected partner in training; its key share is refused`);
    if (!mp.committed.key?.includes(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: a key share from ${partnerId} before every partner's key commitment went out; commit first (he-mp-commit), reveal after`);
    if (mp.keyParties !== null || mp.shares.has(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: ${mp.keyParties !== null ? 'the collective key was already sent' : 'a key share from this partner already arrived'}`);
    const identityKey = r.clients.get(partnerId)?.identityKey;
    if (!identityKey || !verifyEd25519(identityKey, multipartyKeyShareStatement({ federationId, roundId, crpSeed: mp.crpSeed, partnerId, ...share }), share.signature)) {
      throw new FedmartError('FORBIDDEN', `round ${a.state.round}: the key share lacks a valid signature by partner ${partnerId}'s bound identity key; refused`);
    }
    mp.shares.set(partnerId, { identityKey, publicShare: new Uint8Array(share.publicShare), wrapKey: new Uint8Array(share.wrapKey), signature: new Uint8Array(share.signature) });
    this.maybeSendCollectiveKey(r, a);
  }

  /** Send every key share to the key parties once no selected partner is still expected to send one. */
  private maybeSendCollectiveKey(r: FederationRunner, a: ActiveRound): void {
    const mp = a.ckks?.mp;
    if (!mp || mp.keyParties !== null || mp.committed.key === null || a.state.phase !== 'training') return;
    const committed = mp.committed.key;
    const gone = committed.filter((id) => id in a.state.failures);
    if (gone.length > 0) {
      this.apply(r, { type: 'abort', reason: `multiparty CKKS: ${gone.join(', ')} committed to a key share and dropped before revealing it; the collective key needs every committed share; the previous model stays` });
      return;
    }
    if (committed.some((id) => !mp.shares.has(id))) return;
    const parties = [...committed].sort();
    if (parties.length < Math.max(2, a.config.minClients)) {
      this.apply(r, { type: 'abort', reason: `multiparty CKKS: ${parties.length} key share(s), the federation needs at least ${Math.max(2, a.config.minClients)} key parties; the previous model stays` });
      return;
    }
    const sorted = parties.map((partnerId) => ({ partnerId, ...mp.shares.get(partnerId)! }));
    mp.keyParties = parties;
    mp.keyId = multipartyKeyId(a.state.roundId, mp.crpSeed, sorted);
    this.writes.fire(() => this.store.audit('coordinator', 'he.mp-collective-key', a.state.roundId, { federationId: r.federationId, keyId: mp.keyId, parties }));
    for (const id of parties) r.clients.get(id)?.emitSecure('he-mp-keys', { roundId: a.state.roundId, crpSeed: mp.crpSeed, shares: sorted });
  }

  /**
   * Multiparty: a round partner's signed commitment (to its key share, or to its encrypted update). Once every
   * partner still expected has committed, the full signed set goes to each of them; only then do they reveal.
   * @throws FedmartError CONFLICT when not expected; FORBIDDEN without a valid identity signature
   */
  acceptHeMpCommit(federationId: string, partnerId: string, roundId: string, c: { kind: MpCommitKind; commitment: Uint8Array; signature: Uint8Array }): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    const mp = a.ckks?.mp;
    if (!mp) throw new FedmartError('CONFLICT', `round ${a.state.round} does not use multiparty CKKS keys; a commitment is not expected`);
    const expected = c.kind === 'key' ? mp.asked : mp.keyParties ?? [];
    if (a.state.phase !== 'training' || !expected.includes(partnerId) || partnerId in a.state.failures) throw new FedmartError('CONFLICT', `round ${a.state.round}: partner ${partnerId} is not expected to commit to ${c.kind === 'key' ? 'a key share' : 'an update'} now`);
    if (mp.committed[c.kind] !== null || mp.commits[c.kind].has(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: ${mp.committed[c.kind] !== null ? `the ${c.kind} commitments were already sent` : `a ${c.kind} commitment from this partner already arrived`}`);
    const identityKey = r.clients.get(partnerId)?.identityKey;
    if (!identityKey || !verifyEd25519(identityKey, multipartyCommitStatement({ kind: c.kind, federationId, roundId, partnerId, commitment: c.commitment }), c.signature)) {
      throw new FedmartError('FORBIDDEN', `round ${a.state.round}: the ${c.kind} commitment lacks a valid signature by partner ${partnerId}'s bound identity key; refused`);
    }
    mp.commits[c.kind].set(partnerId, { identityKey, commitment: new Uint8Array(c.commitment), signature: new Uint8Array(c.signature) });
    this.maybeSendCommits(r, a, c.kind);
  }

  /** Send every commitment of `kind` to the partners that made them once no expected partner is still missing. */
  private maybeSendCommits(r: FederationRunner, a: ActiveRound, kind: MpCommitKind): void {
    const mp = a.ckks?.mp;
    if (!mp || mp.committed[kind] !== null || a.state.phase !== 'training') return;
    const expected = kind === 'key' ? mp.asked : mp.keyParties;
    if (!expected) return;
    const commits = mp.commits[kind];
    if (kind === 'update' && expected.some((id) => id in a.state.failures)) return; // the round aborts (n-out-of-n)
    if (expected.some((id) => !commits.has(id) && !(id in a.state.failures))) return;
    const parties = [...commits.keys()].sort();
    if (parties.length < Math.max(2, a.config.minClients)) {
      this.apply(r, { type: 'abort', reason: `multiparty CKKS: ${parties.length} ${kind} commitment(s), the federation needs at least ${Math.max(2, a.config.minClients)} key parties; the previous model stays` });
      return;
    }
    mp.committed[kind] = parties;
    const list = parties.map((partnerId) => ({ partnerId, ...commits.get(partnerId)! }));
    this.writes.fire(() => this.store.audit('coordinator', `he.mp-${kind}-commitments`, a.state.roundId, { federationId: r.federationId, parties }));
    for (const id of parties) r.clients.get(id)?.emitSecure('he-mp-commits', { roundId: a.state.roundId, kind, commits: list });
  }

  /** Multiparty: a partner failed or left. Before the key commitments went out it is just not a key party; after, the round cannot decrypt. */
  private multipartyPartnerGone(r: FederationRunner, partnerId: string, why: string): void {
    const a = r.active;
    const mp = a?.ckks?.mp;
    if (!a || !mp) return;
    if (mp.committed.key === null) return this.maybeSendCommits(r, a, 'key');
    if (mp.keyParties === null) return this.maybeSendCollectiveKey(r, a);
    if (mp.keyParties.includes(partnerId) && !mp.decryptionFrom.has(partnerId) && (a.state.phase === 'training' || a.state.phase === 'aggregating' || a.state.phase === 'evaluating')) {
      this.apply(r, { type: 'abort', reason: `multiparty CKKS is n-out-of-n: key party ${partnerId} dropped (${why}) before its decryption share, so the aggregate cannot be decrypted; the previous model stays` });
    }
  }

  /**
   * Multiparty: a key party's decryption shares, sealed to each other key party; relayed unopened.
   * @throws FedmartError CONFLICT when not expected; INVALID_MESSAGE when the boxes do not address exactly the other key parties
   */
  acceptHeMpDecryptionShare(federationId: string, partnerId: string, roundId: string, boxes: { to: string; sealed: Uint8Array }[]): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    const mp = a.ckks?.mp;
    if (!mp || !mp.keyParties) throw new FedmartError('CONFLICT', `round ${a.state.round} has no multiparty collective key; a decryption share is not expected`);
    if (a.state.phase !== 'evaluating' || !mp.keyParties.includes(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: partner ${partnerId} is not a key party asked to decrypt now`);
    if (mp.decryptionFrom.has(partnerId)) throw new FedmartError('CONFLICT', `round ${a.state.round}: partner ${partnerId} already sent its decryption share`);
    const others = mp.keyParties.filter((id) => id !== partnerId);
    const to = boxes.map((b) => b.to).sort();
    if (to.join('\u0000') !== others.join('\u0000')) throw new FedmartError('INVALID_MESSAGE', `round ${a.state.round}: decryption shares must be sealed to each other key party (${others.join(', ')}), got ${to.join(', ')}`);
    mp.decryptionFrom.add(partnerId);
    for (const b of boxes) r.clients.get(b.to)?.emitSecure('he-mp-share', { roundId, from: partnerId, sealed: b.sealed });
  }

  private requireCustody(federationId: string): FederationRunner {
    const r = this.runner(federationId);
    if (r.config.encryption !== 'ckks') throw new FedmartError('CONFLICT', `federation ${federationId} does not use CKKS encryption; key-custody messages are not expected`);
    if (!r.custody) throw new FedmartError('CONFLICT', `federation ${federationId} has no key holder yet (configured: ${r.config.keyHolder ?? 'first partner to connect'}); wait for the key holder to connect`);
    return r;
  }

  /** Send a partner the CKKS setup: public parameters, who holds the key, the strategy partners apply. */
  private sendHeSetup(r: FederationRunner, link: ClientLink): void {
    if (!r.custody) {
      let holderId: string | null | undefined;
      if (r.config.he?.keys === 'multiparty') holderId = null; // no key holder: each round's partners make the key
      else if (r.config.keyHolder !== undefined) holderId = r.enrollments.find((e) => e.partnerName === r.config.keyHolder)?.partnerId;
      else holderId = link.partnerId; // the first partner to connect holds the key
      if (holderId === undefined) {
        link.sendRejected({ code: 'CONFIG_ERROR', message: `the federation's key holder "${r.config.keyHolder}" is not enrolled yet; CKKS setup follows once it is and connects` });
        return;
      }
      r.custody = new CkksCustody(r.federationId, resolveCkksParams(DEFAULT_CKKS_PARAMS), holderId);
      if (holderId !== null) this.writes.fire(() => this.store.audit('coordinator', 'he.key-holder', holderId, { federationId: r.federationId }));
      // Partners that connected before the key holder was known get their setup now.
      for (const other of r.clients.values()) if (other !== link) this.sendHeSetupTo(r, other);
    }
    this.sendHeSetupTo(r, link);
  }

  private sendHeSetupTo(r: FederationRunner, link: ClientLink): void {
    if (!r.custody) return;
    const strategy = r.config.strategy;
    if (strategy !== 'fedavg' && strategy !== 'fedprox' && strategy !== 'fedadam' && strategy !== 'fedyogi') return; // refused at creation
    const strategyOptions = Object.fromEntries(Object.entries(r.config.strategyOptions).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
    const keys = r.custody.holderId === null ? { keys: 'multiparty' as const } : { keyHolderId: r.custody.holderId };
    link.emitSecure('he-setup', { federationId: r.federationId, partnerId: link.partnerId, ...keys, params: r.custody.params, strategy, strategyOptions, clip: CKKS_UPDATE_CLIP });
  }

  /** Close a secure-aggregation stage with the SecAgg core, then move the machine. */
  private closeStage(r: FederationRunner, a: ActiveRound, stage: SecAggPhase): void {
    if (r.active !== a || a.state.phase !== stage || !a.secagg) return;
    let next: string[];
    try {
      next = a.secagg.close(stage);
    } catch (err) {
      const e = toFedmartError(err);
      this.apply(r, { type: 'abort', reason: e.code === 'ROUND_FAILED' ? e.message : `secure aggregation failed at stage ${stage}: ${e.message}` });
      return;
    }
    this.apply(r, { type: 'stage-closed', stage, next });
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
      // A partner whose update reached us stays 'trained': its release is charged to the ledger.
      if (!a.updates.has(partnerId) && !a.released.has(partnerId)) this.writes.fire(() => this.store.setParticipant(a.state.roundId, partnerId, { status: 'failed', reason }));
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
      if (a.state.phase !== 'committed') { const { roundId, phase, reason } = a.state; this.writes.fire(() => this.store.setRoundPhase(roundId, phase, reason)); }
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
        if (a.state.secureAggregation && !a.secagg) {
          try {
            // Partner-level DP: every update weighs 1, so one partner moves the sum by at most C (privacy.ts).
            const unit = a.config.dp?.level === 'partner';
            const weights = new Map(effect.nodeIds.map((id) => [id, unit ? 1 : (r.clients.get(id)?.numExamples ?? 1)]));
            const declared = new Map(effect.nodeIds.map((id) => [id, unit ? 1 : (r.clients.get(id)?.declaredExamples ?? 1)]));
            const identities = new Map(effect.nodeIds.map((id) => [id, r.clients.get(id)?.identityKey]));
            a.secagg = new SecAggRound(a.state.roundId, effect.nodeIds, a.global.length + securedExtraCoordinates(r.strategy), weights, a.config.secureAggregation!, identities, declared);
          } catch (err) {
            const reason = `secure aggregation cannot run this round: ${toFedmartError(err).message}`;
            setImmediate(() => { if (r.active === a) this.apply(r, { type: 'abort', reason }); });
            return;
          }
        }
        const bytes = a.baseEncrypted ? new Uint8Array(0) : encodeFloat32(a.global);
        const protection = a.secagg ? 'secagg' as const : a.ckks ? 'ckks' as const : undefined;
        const mp = a.ckks?.mp;
        if (mp) {
          mp.asked = [...effect.nodeIds];
          if (mp.asked.length > MULTIPARTY_MAX_PARTNERS) {
            const reason = `multiparty CKKS is analysed for at most ${MULTIPARTY_MAX_PARTNERS} key parties, ${mp.asked.length} were selected; lower sampleFraction is not allowed (n-out-of-n), split the federation`;
            setImmediate(() => { if (r.active === a) this.apply(r, { type: 'abort', reason }); });
            return;
          }
        }
        for (const id of effect.nodeIds) {
          this.writes.fire(() => this.store.setParticipant(a.state.roundId, id, { status: 'selected' }));
          const link = r.clients.get(id);
          link?.sendTrain({ roundId: a.state.roundId, round: a.state.round, config: a.config.localTrain, length: a.global.length, ...(protection ? { protection } : {}), ...(a.ckks ? { modelVersion: a.baseVersion } : {}), ...(mp ? { multiparty: { crpSeed: mp.crpSeed, parties: mp.asked } } : {}) }, bytes);
          const request = a.secagg?.requestFor(id);
          if (link && request) link.emitSecure('secagg', request as never);
        }
        return;
      }
      case 'send-stage':
        for (const id of effect.nodeIds) {
          const request = a.secagg?.requestFor(id);
          if (request) r.clients.get(id)?.emitSecure('secagg', request as never);
        }
        return;
      case 'close-stage':
        this.clearTimer(a);
        // On the next tick, so the triggering message's ack goes out first.
        setImmediate(() => this.closeStage(r, a, effect.stage));
        return;
      case 'aggregate':
        this.clearTimer(a);
        // Aggregate on the next tick so the triggering message's ack goes out first.
        setImmediate(() => this.aggregate(r, a));
        return;
      case 'send-evaluate': {
        if (a.ckks) {
          // Partners decrypt the aggregate, apply it to the model they hold, and evaluate in plaintext.
          const aggregate: HeAggregate = { roundId: a.state.roundId, round: a.state.round, modelVersion: a.baseVersion + 1, length: a.global.length + 1, chunks: a.ckks.aggregate!, keyId: a.ckks.keyId!, contributors: a.ckks.contributors };
          for (const id of effect.nodeIds) r.clients.get(id)?.emitSecure('he-aggregate', aggregate);
          return;
        }
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
    const t = a.config.timeouts;
    const ms = { selecting: t.selectingMs, training: t.trainingMs, evaluating: t.evaluatingMs, 'advertise-keys': t.advertiseKeysMs, 'share-keys': t.shareKeysMs, 'masked-input': t.maskedInputMs, 'consistency-check': t.consistencyCheckMs, unmasking: t.unmaskingMs }[phase];
    a.timed = { phase, startedAt: Date.now(), deadline: Date.now() + ms };
    this.armTimer(r, a, phase, ms);
  }

  private armTimer(r: FederationRunner, a: ActiveRound, phase: TimedPhase, ms: number): void {
    if (a.timer) clearTimeout(a.timer);
    a.timer = setTimeout(() => {
      a.timer = null;
      if (r.active === a) this.apply(r, { type: 'timeout', phase });
    }, ms);
    a.timer.unref?.();
  }

  /**
   * A selected partner that is still training reports progress: the training
   * phase (masked-input under SecAgg) waits trainingMs (maskedInputMs) more from now, but never longer than
   * timeouts.trainingMaxMs (default 10 × trainingMs) after the phase began.
   * @throws FedmartError CONFLICT when the round is not in progress
   */
  acceptTrainProgress(federationId: string, partnerId: string, roundId: string, p: { step: number; steps: number; epoch: number }): void {
    const r = this.requireRound(federationId, roundId);
    const a = r.active!;
    if (!a.state.selected.includes(partnerId)) throw new FedmartError('CONFLICT', `partner ${partnerId} is not training in round ${a.state.round}; progress reports are for selected partners`);
    const timed = a.timed;
    if (timed && (timed.phase === 'training' || timed.phase === 'masked-input') && a.state.phase === timed.phase && !a.state.trained.includes(partnerId)) {
      const t = a.config.timeouts;
      const step = timed.phase === 'training' ? t.trainingMs : t.maskedInputMs;
      const cap = timed.startedAt + (t.trainingMaxMs ?? 10 * t.trainingMs);
      const deadline = Math.min(cap, Date.now() + step);
      if (deadline > timed.deadline) {
        timed.deadline = deadline;
        this.armTimer(r, a, timed.phase, deadline - Date.now());
      }
    }
    this.emit('client-progress', { federationId, roundId, round: a.state.round, partnerId, ...p, deadline: timed?.deadline ?? 0 });
  }

  private clearTimer(a: ActiveRound): void {
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
    a.timed = null;
  }

  private aggregate(r: FederationRunner, a: ActiveRound): void {
    if (r.active !== a || a.state.phase !== 'aggregating') return;
    if (a.secagg) return this.aggregateSecure(r, a);
    if (a.ckks) {
      void this.aggregateEncrypted(r, a);
      return;
    }
    try {
      const bounded = this.boundRoundUpdates(r, a);
      const results = bounded.kept;
      const failures: ClientFailure[] = Object.entries(a.state.failures).map(([nodeId, reason]) => ({ nodeId, code: 'FAILED', reason }));
      for (const x of bounded.rejected) failures.push({ nodeId: x.nodeId, code: 'INVALID_UPDATE', reason: x.reason });
      const out = r.strategy.aggregateTrain(a.state.round, a.global, results, failures);
      if (!out.weights) {
        this.apply(r, { type: 'aggregated', ok: false, reason: 'the strategy kept the previous model (no usable updates)' });
        return;
      }
      a.newWeights = out.weights;
      a.trainMetrics = { ...out.metrics, ...boundMetrics(bounded) };
      a.updates.clear(); // individual updates are not kept past aggregation
      const evaluators = r.strategy.configureEvaluate({ round: a.state.round, global: out.weights, clients: [...r.clients.keys()] }).evaluate ? [...r.clients.keys()] : [];
      this.apply(r, { type: 'aggregated', ok: true, evaluators });
    } catch (err) {
      const e = toFedmartError(err);
      this.apply(r, { type: 'aggregated', ok: false, reason: `aggregation failed: ${e.message}` });
    }
  }

  /**
   * Plaintext rounds: bound every update's norm before the strategy sees it (issue 8). Rejected partners are told why
   * and recorded; clipped ones are recorded (the round goes on with them).
   */
  private boundRoundUpdates(r: FederationRunner, a: ActiveRound): BoundedUpdates {
    const bounded = boundUpdates(a.state.trained.map((id) => a.updates.get(id)!).filter(Boolean), a.config.limits, a.config.dp, a.config.minClients);
    for (const x of bounded.rejected) {
      a.boundNotes.set(x.nodeId, { status: 'rejected', reason: x.reason });
      r.clients.get(x.nodeId)?.sendRejected({ roundId: a.state.roundId, code: 'INVALID_UPDATE', message: x.reason });
    }
    for (const x of bounded.clipped) a.boundNotes.set(x.nodeId, { status: 'trained', reason: `update norm ${x.norm.toPrecision(4)} clipped to ${bounded.bound!.bound.toPrecision(4)}` });
    for (const [nodeId, note] of a.boundNotes) this.writes.fire(() => this.store.setParticipant(a.state.roundId, nodeId, note));
    if (bounded.rejected.length + bounded.clipped.length > 0) this.writes.fire(() => this.store.audit('coordinator', 'round.updates-bounded', a.state.roundId, { federationId: r.federationId, bound: bounded.bound, clipped: bounded.clipped, rejected: bounded.rejected.map((x) => x.nodeId) }));
    return bounded;
  }

  /** Secure aggregation: the strategy gets only the unmasked, dequantized weighted mean of the survivors. */
  private aggregateSecure(r: FederationRunner, a: ActiveRound): void {
    try {
      const result = a.secagg!.result;
      if (!result || !(result.totalWeight > 0)) {
        this.apply(r, { type: 'aggregated', ok: false, reason: 'secure aggregation produced no weight (every surviving partner declared zero examples); the previous model stays' });
        return;
      }
      const outOfRange = a.secagg!.checkSumRange(result);
      if (outOfRange) {
        this.apply(r, { type: 'aggregated', ok: false, reason: `secure aggregation: ${outOfRange}; a partner folded in more than it declared, the sum was not used and the previous model stays` });
        return;
      }
      // Coordinates past the model's (distributed adaptive clipping's noised clip count) are not part of the mean.
      const mean = new Float64Array(a.global.length);
      for (let i = 0; i < mean.length; i++) mean[i] = result.weightedSum[i]! / result.totalWeight;
      const noisedClipCount = result.weightedSum.length > a.global.length ? result.weightedSum[a.global.length]! : undefined;
      const metrics = weightedMetricMeans(a.state.trained.map((id) => ({ numExamples: r.clients.get(id)?.numExamples ?? 0, metrics: a.secagg!.metrics.get(id) ?? {} })));
      if (!r.strategy.aggregateMean) throw new FedmartError('CONFIG_ERROR', `strategy ${r.strategy.id} cannot aggregate from a sum; use fedavg, fedprox, fedadam or fedyogi with secure aggregation`);
      const out = r.strategy.aggregateMean(a.state.round, a.global, mean, { totalWeight: result.totalWeight, clients: result.survivors.length, metrics, ...(noisedClipCount !== undefined ? { noisedClipCount } : {}) });
      if (!out.weights) {
        this.apply(r, { type: 'aggregated', ok: false, reason: 'the strategy kept the previous model (no usable sum)' });
        return;
      }
      a.newWeights = out.weights;
      a.trainMetrics = { ...out.metrics, secagg_survivors: result.survivors.length, secagg_dropped: result.dropped.length };
      const evaluators = r.strategy.configureEvaluate({ round: a.state.round, global: out.weights, clients: [...r.clients.keys()] }).evaluate ? [...r.clients.keys()] : [];
      this.apply(r, { type: 'aggregated', ok: true, evaluators });
    } catch (err) {
      this.apply(r, { type: 'aggregated', ok: false, reason: `aggregation failed: ${toFedmartError(err).message}` });
    }
  }

  /** CKKS: sum the ciphertexts; the coordinator never sees the plaintext sum nor the new model. */
  private async aggregateEncrypted(r: FederationRunner, a: ActiveRound): Promise<void> {
    try {
      const aggregator = await r.custody!.getAggregator();
      if (r.active !== a || a.state.phase !== 'aggregating') return;
      const mp = a.ckks!.mp;
      const keyId = mp ? mp.keyId : r.custody!.currentKeyId;
      if (keyId === null) throw new FedmartError('CONFLICT', mp ? 'the round\'s collective key was never made (key shares missing)' : 'no federation key');
      // Each contributor's signed mask hash travels with the aggregate so partners can check it is the sum
      // of at least the minimum number of partners' ciphertexts (ckks-partner.ts checkAggregate).
      const contributors: HeAggregate['contributors'] = [];
      const uploads: { chunks: Uint8Array[]; numExamples: number; metrics: Metrics }[] = [];
      for (const id of a.state.trained) {
        const u = a.ckks!.uploads.get(id);
        const bound = r.clients.get(id)?.identityKey ?? (await this.store.listEnrollments(r.federationId)).find((e) => e.partnerId === id)?.identityKey;
        const identityKey = typeof bound === 'string' ? hexToBytes(bound) : bound;
        if (!u || !identityKey) continue;
        const masks = aggregator.maskParts(u.chunks);
        if (!verifyEd25519(identityKey, updateStatement({ federationId: r.federationId, roundId: a.state.roundId, keyId, length: a.global.length + 1, masks }), u.signature)) {
          this.writes.fire(() => this.store.audit('coordinator', 'he.update-signature-invalid', id, { federationId: r.federationId, roundId: a.state.roundId }));
          continue; // partners would refuse the whole aggregate; leave the unsigned update out
        }
        contributors.push({ partnerId: id, identityKey, signature: u.signature, masks });
        uploads.push(u);
      }
      if (uploads.length === 0) throw new FedmartError('INVALID_UPDATE', 'no encrypted update carried a valid identity signature');
      if (mp) {
        // n-out-of-n: every key party's update must be in (partners answer only for an aggregate listing exactly them).
        const missing = mp.keyParties!.filter((id) => !contributors.some((c) => c.partnerId === id));
        if (missing.length > 0) throw new FedmartError('ROUND_FAILED', `multiparty CKKS is n-out-of-n: key part${missing.length === 1 ? 'y' : 'ies'} ${missing.join(', ')} sent no validly signed update, and every key party must contribute and decrypt; the previous model stays`);
      }
      a.ckks!.aggregate = aggregator.addCiphertexts(uploads.map((u) => u.chunks));
      a.ckks!.keyId = keyId;
      a.ckks!.contributors = contributors;
      a.ckks!.uploads.clear(); // individual ciphertexts are not kept past aggregation
      a.trainMetrics = weightedMetricMeans(uploads);
      // Multiparty: only the round's key parties can decrypt (each needs all their shares); they evaluate.
      const evaluators = mp ? mp.keyParties!.filter((id) => r.clients.has(id)) : [...r.clients.keys()].filter((id) => r.custody!.isReady(id));
      this.apply(r, { type: 'aggregated', ok: true, evaluators });
    } catch (err) {
      if (r.active === a) this.apply(r, { type: 'aggregated', ok: false, reason: `encrypted aggregation failed: ${toFedmartError(err).message}` });
    }
  }

  /**
   * Commit the round (after every row queued before it): the model version, the round's final
   * phase and its ledger rows in one store transaction. The round stays active until it settles, so
   * no other round of the federation starts meanwhile.
   */
  private commit(r: FederationRunner, a: ActiveRound): void {
    void this.commitAsync(r, a).catch((err) => {
      // Never expected (commitAsync handles store errors); keep the round from hanging.
      if (r.active === a) this.finish(r, a, { phase: 'failed', reason: `commit failed: ${toFedmartError(err).message}` });
    });
  }

  private async commitAsync(r: FederationRunner, a: ActiveRound): Promise<void> {
    const mp = a.ckks?.mp;
    if (mp && mp.keyParties && !mp.keyParties.every((id) => mp.decryptionFrom.has(id))) {
      const missing = mp.keyParties.filter((id) => !mp.decryptionFrom.has(id));
      // The machine already said 'committed' (evaluation timed out): correct it in the store and to the partners.
      a.state = { ...a.state, phase: 'failed', reason: `multiparty CKKS is n-out-of-n: no decryption share from ${missing.join(', ')}, so no partner could decrypt the aggregate; the previous model stays` };
      const { roundId, reason } = a.state;
      this.writes.fire(() => this.store.setRoundPhase(roundId, 'failed', reason));
      this.broadcastPhase(r, a);
      this.finish(r, a, { phase: 'failed', reason: a.state.reason! });
      return;
    }
    const evalResults = a.state.evaluated.map((id) => a.evaluations.get(id)!).filter(Boolean);
    const evalMetrics = evalResults.length ? r.strategy.aggregateEvaluate(a.state.round, evalResults, []) : {};
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(a.trainMetrics)) metrics[`train_${k}`] = v;
    for (const [k, v] of Object.entries(evalMetrics)) metrics[`eval_${k}`] = v;
    metrics.clients = a.state.trained.length;
    try {
      let fence: Fence | undefined;
      if (this.fenceOf) {
        fence = this.fenceOf(r.federationId);
        if (!fence || !a.fence || fence.epoch !== a.fence.epoch || fence.holder !== a.fence.holder) {
          throw new FedmartError('CONFLICT', `this coordinator no longer holds the lease the round started under (epoch ${a.fence?.epoch ?? 'none'}); the coordinator that leads the federation now runs its next round`);
        }
      }
      const args = {
        ...(fence ? { fence } : {}),
        federationId: r.federationId, roundId: a.state.roundId, parentId: a.baseModelId, strategy: r.strategy.id,
        participants: [...a.state.trained], metrics, spec: a.config.model,
        ...(a.ckks ? { weights: new Float32Array(0), encrypted: { blob: packChunks(a.ckks.aggregate!), paramCount: a.global.length } } : { weights: a.newWeights! }),
      };
      const model = await this.writes.run(async () => this.store.commitRound(args, await roundSpendPlan(this.store, { federationId: r.federationId, roundId: a.state.roundId, participants: [...a.state.trained] })));
      this.writes.fire(() => this.store.audit('coordinator', 'round.committed', a.state.roundId, { federationId: r.federationId, round: a.state.round, modelVersion: model.version, participants: a.state.trained }));
      this.finish(r, a, { phase: 'committed', modelVersion: model.version, metrics });
    } catch (err) {
      const e = toFedmartError(err);
      a.state = { ...a.state, phase: 'failed', reason: `commit failed: ${e.message}` };
      const { roundId, reason } = a.state;
      this.writes.fire(() => this.store.setRoundPhase(roundId, 'failed', reason));
      this.broadcastPhase(r, a);
      this.finish(r, a, { phase: 'failed', reason: a.state.reason! });
    }
  }

  private finish(r: FederationRunner, a: ActiveRound, o: { phase: 'committed' | 'failed'; reason?: string; modelVersion?: number; metrics?: Record<string, number> }): void {
    if (r.active !== a) return;
    r.active = null;
    a.secagg?.abort();
    if (o.phase === 'failed') {
      this.writes.fire(() => this.store.audit('coordinator', 'round.failed', a.state.roundId, { federationId: r.federationId, round: a.state.round, reason: o.reason }));
      // Updates that already left their partners cost privacy even though no model came of them (privacy.ts).
      const released = { federationId: r.federationId, roundId: a.state.roundId, participants: [...a.released] };
      this.writes.fire(() => recordReleasedSpend(this.store, released));
    }
    const outcome: RoundOutcome = {
      roundId: a.state.roundId, round: a.state.round, phase: o.phase, ...(o.reason ? { reason: o.reason } : {}),
      ...(o.modelVersion !== undefined ? { modelVersion: o.modelVersion } : {}), metrics: o.metrics ?? {},
      participants: [...a.state.trained], failures: { ...a.state.failures }, seconds: (Date.now() - a.startedAt) / 1000,
    };
    this.emit('round-end', { federationId: r.federationId, ...outcome });
    // The outcome is returned once the round's rows (participants, audit, released spend) are stored.
    void this.writes.drain().then(() => a.done(outcome));
  }

  /** Stop all timers and fail rounds in progress (used on shutdown). */
  close(): void {
    this.scheduler.close();
    for (const r of this.runners.values()) {
      if (r.active) this.apply(r, { type: 'abort', reason: 'interrupted: the coordinator is shutting down' });
    }
  }
}

/** Train metrics that record how a round's updates were bounded (aggregate figures only: no partner is named). */
function boundMetrics(b: BoundedUpdates): Record<string, number> {
  return { ...(b.bound ? { limits_norm_bound: b.bound.bound } : {}), limits_clipped: b.clipped.length, limits_rejected: b.rejected.length };
}
