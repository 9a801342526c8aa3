/**
 * Rounds and scoring of vertical federations between real partners (issue
 * 16), driven by the coordinator over control connections of the `/vertical`
 * namespace (a party connects with `auth: { token, control: true }`).
 *
 * A round: the operator starts it (REST); the coordinator checks every party
 * of the federation's vertical spec is connected, records the round (phase
 * `align`), and tells each party to open a data session `r<N>` on the relay.
 * The parties align by PSI and train there, sealed end to end; the label
 * holder reports the PSI size and time (phase `train`), then every party
 * reports the SHA-256 of the model part it saved on its own disk and the
 * label holder the metrics. When all have, the coordinator commits a model
 * version whose lineage is the parties, their parts' SHA-256 and the metrics
 * (it never holds a part: the version's weights are empty). A party whose
 * control connection drops, a party that reports a failure, or the round
 * timeout fails the round with the reason, and the others are told to abort.
 *
 * Scoring: `predict(ids)` asks every party to open a data session `p<K>`;
 * each feature holder sends its part for those IDs to the label holder,
 * which combines them and returns the probabilities (and per-party logit
 * contributions with `explain`) to the coordinator. A party offline fails the
 * request at once with its name.
 *
 * What the coordinator learns: the parties' names, the PSI size, timings,
 * metrics, part hashes, and the IDs the operator asks to score (the operator
 * typed them) with their scores; never features, labels or model parts.
 *
 * Storage is the {@link AsyncStore} (SQLite or PostgreSQL, issue 15). A party's status moves the
 * round in memory at once (so two reports racing cannot both complete it); the rows follow through
 * one {@link WriteQueue}, in the order the moves happened. The commit (model version, phase
 * `committed`, the feature holders' ledger rows) is one `commitRound` transaction on both dialects.
 */
import type { Socket } from 'socket.io';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { verticalParties, type VerticalSpec } from '@fedmart/shared/vertical-spec';
import { VerticalPredictResultSchema, VerticalStatusSchema, type VerticalPredictResult } from '@fedmart/shared/protocol-vertical-relay';
import type { AsyncStore } from './db/store-api.ts';
import { WriteQueue } from './db/write-queue.ts';
import { answerAck } from './ack.ts';
import { recordVerticalSpend, refuseVerticalRoundOverBudget, verticalSpendPlan } from './privacy.ts';

interface OpenRound {
  readonly id: string;
  readonly number: number;
  readonly spec: VerticalSpec;
  readonly parties: readonly string[];
  /** Party name → partner id (the enrollments when the round started). */
  readonly partners: ReadonlyMap<string, string>;
  readonly done: Map<string, { sha256: string; metrics?: Record<string, number> }>;
  psi?: { intersection: number; seconds: number };
  readonly timer: NodeJS.Timeout;
  readonly startedAt: number;
}

interface PendingPredict {
  readonly resolve: (r: VerticalPredictResult) => void;
  readonly reject: (e: Error) => void;
  readonly parties: readonly string[];
  readonly timer: NodeJS.Timeout;
}

/** Vertical rounds and scoring of every vertical federation of a coordinator. */
export class VerticalRounds {
  readonly #store: AsyncStore;
  readonly #log: (m: string) => void;
  readonly #writes: WriteQueue;
  readonly #control = new Map<string, Map<string, Socket>>();
  readonly #open = new Map<string, OpenRound>();
  /** Federations whose round is being checked against the caps (async) before it opens. */
  readonly #starting = new Set<string>();
  readonly #predicts = new Map<string, PendingPredict>();
  #requests = 0;

  /**
   * @param store - the coordinator's store
   * @param log - progress lines; a round row that could not be written is reported here too
   */
  constructor(store: AsyncStore, log: (m: string) => void = () => undefined) {
    this.#store = store;
    this.#log = log;
    this.#writes = new WriteQueue((err) => log(`vertical: a round write failed: ${toFedmartError(err).message}`));
  }

  /** The vertical spec of a federation, or a clear error. */
  async spec(fedId: string): Promise<VerticalSpec> {
    const config = this.#store.federationConfig(await this.#store.getFederation(fedId));
    if (config.mode !== 'vertical' || config.vertical === undefined) throw new FedmartError('CONFLICT', `federation ${fedId} is not a vertical federation with parties (create it with fedmart federation create --mode vertical --label-holder ... --parties ...)`);
    return config.vertical;
  }

  /** Parties of a federation with a live control connection. */
  connected(fedId: string): string[] {
    return [...(this.#control.get(fedId)?.keys() ?? [])];
  }

  /** Check a control handshake (the relay's middleware calls it). */
  async check(fedId: string, party: string): Promise<void> {
    const spec = await this.spec(fedId);
    if (!verticalParties(spec).includes(party)) throw new FedmartError('FORBIDDEN', `partner ${party} is not a party of vertical federation ${fedId} (parties: ${verticalParties(spec).join(', ')}); enroll it under one of those names`);
    this.#checkControlFree(fedId, party);
  }

  #checkControlFree(fedId: string, party: string): void {
    if (this.#control.get(fedId)?.has(party)) throw new FedmartError('CONFLICT', `party ${party} already has a control connection to ${fedId}; stop the other fedmart partner first`);
  }

  /** Register a party's control connection (called by the relay after the handshake passed {@link check}). */
  attach(socket: Socket, fedId: string, party: string): void {
    this.#checkControlFree(fedId, party);
    let m = this.#control.get(fedId);
    if (m === undefined) this.#control.set(fedId, (m = new Map()));
    m.set(party, socket);
    this.#writes.fire(() => this.#store.audit(party, 'vertical.party.joined', fedId, {}));
    this.#log(`vertical ${fedId}: party ${party} joined`);
    socket.on('vstatus', (raw: unknown, ack: unknown) => answerAck(ack, () => this.#onStatus(fedId, party, raw)));
    socket.on('vpredict-result', (raw: unknown, ack: unknown) => answerAck(ack, () => this.#onPredictResult(party, raw)));
    socket.on('disconnect', () => {
      if (m.get(party) !== socket) return;
      m.delete(party);
      this.#log(`vertical ${fedId}: party ${party} left`);
      const open = this.#open.get(fedId);
      if (open) this.#fail(fedId, open, `party ${party} disconnected during the round (phase ${open.psi ? 'train' : 'align'})`);
      for (const [id, p] of this.#predicts) if (p.parties.includes(party)) this.#settlePredict(id, new FedmartError('UNAVAILABLE', `party ${party} disconnected while scoring; restart its fedmart partner and retry`));
    });
  }

  /**
   * Start a round: every party must be connected.
   * @returns the round id and number
   */
  async startRound(fedId: string): Promise<{ roundId: string; number: number }> {
    if (this.#open.has(fedId) || this.#starting.has(fedId)) throw new FedmartError('CONFLICT', `federation ${fedId} already has round ${this.#open.get(fedId)?.number ?? '(starting)'} running; wait for it to commit or fail`);
    // Held from the first read: two starts racing cannot both open a round.
    this.#starting.add(fedId);
    let spec: VerticalSpec, parties: string[], partners: Map<string, string>, id: string, number: number, startedAt: number;
    try {
      spec = await this.spec(fedId);
      parties = verticalParties(spec);
      const missing = parties.filter((p) => !this.#control.get(fedId)?.has(p));
      if (missing.length) throw new FedmartError('UNAVAILABLE', `vertical round needs every party connected; not connected: ${missing.join(', ')} (start fedmart partner with their tokens)`);
      await this.#writes.drain(); // the previous round's rows first (its number is taken)
      number = await this.#store.nextRoundNumber(fedId);
      id = `r_${fedId.slice(2)}_${number}`;
      startedAt = Date.now();
      await this.#store.createRound({ id, federationId: fedId, number, phase: 'align', strategy: `vertical-${spec.model}`, config: JSON.stringify({ model: spec.model, psi: spec.psi, epochs: spec.epochs, batchSize: spec.batchSize ?? null, learningRate: spec.learningRate ?? null }), baseModelVersionId: null, startedAt });
      const refused = await refuseVerticalRoundOverBudget(this.#store, { federationId: fedId, roundId: id, round: number, spec });
      if (refused !== null) {
        this.#log(`vertical ${fedId}: round ${number} refused: ${refused}`);
        return { roundId: id, number };
      }
      partners = new Map((await this.#store.listEnrollments(fedId)).map((e) => [e.partnerName, e.partnerId]));
      for (const p of parties) await this.#store.setParticipant(id, partners.get(p)!, { status: 'selected' });
    } finally {
      this.#starting.delete(fedId);
    }
    const gone = parties.filter((p) => !this.#control.get(fedId)?.has(p));
    if (gone.length) {
      const reason = `party ${gone.join(', ')} disconnected before the round started`;
      await this.#store.setRoundPhase(id, 'failed', reason);
      throw new FedmartError('UNAVAILABLE', `vertical round ${number}: ${reason}; restart its fedmart partner and retry`);
    }
    const timer = setTimeout(() => {
      const o = this.#open.get(fedId);
      if (o?.id === id) this.#fail(fedId, o, `timed out after ${spec.roundTimeoutSeconds} s (raise roundTimeoutSeconds for larger data)`);
    }, spec.roundTimeoutSeconds * 1000);
    timer.unref();
    this.#open.set(fedId, { id, number, spec, parties, partners, done: new Map(), timer, startedAt });
    await this.#writes.run(() => this.#store.audit('coordinator', 'vertical.round.started', id, { federationId: fedId, number }));
    for (const p of parties) this.#control.get(fedId)!.get(p)!.emit('vround', { round: number, session: `r${number}` });
    this.#log(`vertical ${fedId}: round ${number} started`);
    return { roundId: id, number };
  }

  #participant(open: OpenRound, fedId: string, party: string): string {
    const id = open.partners.get(party);
    if (id === undefined) throw new FedmartError('NOT_FOUND', `no enrollment of ${party} in ${fedId}`);
    return id;
  }

  /**
   * A party's status: the round moves in memory now; its rows are queued (and awaited, so the ack
   * reports a failed write).
   */
  #onStatus(fedId: string, party: string, raw: unknown): Promise<void> | void {
    const p = VerticalStatusSchema.safeParse(raw);
    if (!p.success) throw new FedmartError('INVALID_MESSAGE', `vstatus: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const s = p.data;
    const open = this.#open.get(fedId);
    if (open === undefined || open.number !== s.round) throw new FedmartError('CONFLICT', `vstatus: round ${s.round} of ${fedId} is not running`);
    const spec = open.spec;
    const participant = this.#participant(open, fedId, party);
    if (s.phase === 'failed') {
      this.#fail(fedId, open, `${party}: ${s.reason ?? 'failed'}`);
      return;
    }
    if (s.phase === 'checked') {
      if (spec.psi !== 'size' || party !== spec.labelHolder.party || s.psi === undefined) throw new FedmartError('INVALID_MESSAGE', 'vstatus checked: only the label holder of a size-only (psi "size") federation reports an overlap check, with its size');
      clearTimeout(open.timer);
      this.#open.delete(fedId);
      const metrics = { ...s.metrics, psi_intersection: s.psi.intersection, psi_seconds: s.psi.seconds, seconds: Math.round((Date.now() - open.startedAt) / 100) / 10 };
      const psi = s.psi;
      this.#log(`vertical ${fedId}: round ${open.number} overlap check: ${psi.intersection} customers shared by every party`);
      return this.#writes.run(async () => {
        await this.#store.endRoundChecked(open.id, metrics);
        await this.#store.setParticipant(open.id, participant, { status: 'checked', trainMetrics: metrics });
        await this.#store.audit(party, 'vertical.round.checked', open.id, psi);
      });
    }
    if (spec.psi === 'size') throw new FedmartError('INVALID_MESSAGE', `vstatus ${s.phase}: federation ${fedId} reveals only the PSI size (psi "size"); its rounds are overlap checks that end with "checked"`);
    if (s.phase === 'aligned') {
      if (party !== spec.labelHolder.party || s.psi === undefined) throw new FedmartError('INVALID_MESSAGE', 'vstatus aligned: only the label holder reports the PSI size');
      const psi = (open.psi = s.psi);
      return this.#writes.run(async () => {
        await this.#store.setRoundPhase(open.id, 'train');
        await this.#store.setParticipant(open.id, participant, { status: 'aligned', trainMetrics: { psi_intersection: psi.intersection, psi_seconds: psi.seconds } });
        await this.#store.audit(party, 'vertical.round.aligned', open.id, psi);
      });
    }
    // done
    if (s.sha256 === undefined) throw new FedmartError('INVALID_MESSAGE', 'vstatus done: the SHA-256 of the saved model part is required');
    if (party === spec.labelHolder.party && s.metrics === undefined) throw new FedmartError('INVALID_MESSAGE', 'vstatus done: the label holder reports the metrics');
    open.done.set(party, { sha256: s.sha256, ...(s.metrics ? { metrics: s.metrics } : {}) });
    const trained = this.#writes.run(() => this.#store.setParticipant(open.id, participant, { status: 'trained', ...(s.metrics ? { evalMetrics: s.metrics } : {}) }));
    if (open.done.size < open.parties.length) return trained;
    clearTimeout(open.timer);
    this.#open.delete(fedId);
    const lh = open.done.get(spec.labelHolder.party)!;
    const metrics = { ...lh.metrics, psi_intersection: open.psi?.intersection ?? Number.NaN, psi_seconds: open.psi?.seconds ?? Number.NaN, seconds: Math.round((Date.now() - open.startedAt) / 100) / 10 };
    const lineage = {
      kind: 'vertical', model: spec.model, round: open.number,
      parts: open.parties.map((q) => ({ party: q, role: q === spec.labelHolder.party ? 'label-holder' : 'feature-holder', sha256: open.done.get(q)!.sha256 })),
      protections: spec.model === 'lr' ? { ckks: true } : spec.protections.embeddingDp ? { embeddingDp: spec.protections.embeddingDp } : { embeddingNoise: spec.protections.embeddingNoise ?? 0 },
    };
    const featureHolders = spec.featureHolders.map((f) => this.#participant(open, fedId, f.party));
    const participants = open.parties.map((q) => this.#participant(open, fedId, q));
    // One transaction on both dialects: the version, the round → committed, the current-model pointer and the feature holders' ledger rows.
    return this.#writes.run(async () => {
      try {
        const parent = await this.#store.currentModelRow(fedId);
        const v = await this.#store.commitRound({ federationId: fedId, roundId: open.id, parentId: parent.id, strategy: `vertical-${spec.model}`, participants, metrics, spec: lineage, weights: new Float32Array(0) },
          verticalSpendPlan({ federationId: fedId, roundId: open.id, committed: true, featureHolders, spec }));
        await this.#store.audit('coordinator', 'vertical.round.committed', open.id, { version: v.version });
        this.#log(`vertical ${fedId}: round ${open.number} committed as model v${v.version}`);
      } catch (err) {
        // Nothing of the commit was written: the round fails with the reason, the parties are told.
        const reason = `commit failed: ${toFedmartError(err).message}`;
        await this.#store.setRoundPhase(open.id, 'failed', reason).catch(() => undefined);
        this.#log(`vertical ${fedId}: round ${open.number} failed: ${reason}`);
        for (const c of this.#control.get(fedId)?.values() ?? []) c.emit('vabort', { round: open.number, reason });
        throw err;
      }
    });
  }

  #fail(fedId: string, open: OpenRound, reason: string): void {
    if (this.#open.get(fedId) !== open) return;
    clearTimeout(open.timer);
    this.#open.delete(fedId);
    this.#writes.fire(() => this.#store.setRoundPhase(open.id, 'failed', reason));
    // Spend is charged on release: once aligned, the feature holders may have sent embeddings.
    if (open.psi !== undefined) {
      const spec = open.spec;
      const featureHolders = spec.featureHolders.map((f) => this.#participant(open, fedId, f.party));
      this.#writes.fire(() => recordVerticalSpend(this.#store, { federationId: fedId, roundId: open.id, featureHolders, spec }).catch((err) => this.#log(`vertical ${fedId}: charging round ${open.number}'s release failed: ${(err as Error).message}`)));
    }
    this.#writes.fire(() => this.#store.audit('coordinator', 'vertical.round.failed', open.id, { reason }));
    this.#log(`vertical ${fedId}: round ${open.number} failed: ${reason}`);
    for (const s of this.#control.get(fedId)?.values() ?? []) s.emit('vabort', { round: open.number, reason });
  }

  /**
   * Score customers by ID with the federation's current vertical model.
   * @param ids - customer IDs (as the parties hold them)
   * @param explain - also return each party's logit contribution (LR)
   * @param timeoutMs - hang guard
   */
  async predict(fedId: string, ids: readonly string[], explain: boolean, timeoutMs = 300_000): Promise<VerticalPredictResult> {
    const spec = await this.spec(fedId);
    if (spec.psi === 'size') return Promise.reject(new FedmartError('CONFLICT', `federation ${fedId} reveals only the PSI size (psi "size"): no party knows which rows are aligned, so it trains no model and cannot score; create a federation with psi "ids" to train`));
    const model = await this.#store.currentModelRow(fedId);
    const lineage = JSON.parse(model.spec) as { kind?: string; round?: number };
    if (lineage.kind !== 'vertical' || lineage.round === undefined) return Promise.reject(new FedmartError('NOT_FOUND', `federation ${fedId} has no trained vertical model yet; run a round first (fedmart federation rounds --federation ${fedId} --count 1 --wait)`));
    if (explain && spec.model !== 'lr') return Promise.reject(new FedmartError('CONFIG_ERROR', '--explain gives each party\'s logit contribution, which a split NN has no additive form for; score without --explain'));
    const parties = verticalParties(spec);
    const missing = parties.filter((p) => !this.#control.get(fedId)?.has(p));
    if (missing.length) return Promise.reject(new FedmartError('UNAVAILABLE', `cannot score: party ${missing.join(', ')} is offline; every party computes its part of the model, so start its fedmart partner and retry`));
    const request = `p${++this.#requests}`;
    return new Promise<VerticalPredictResult>((resolve, reject) => {
      const timer = setTimeout(() => this.#settlePredict(request, new FedmartError('UNAVAILABLE', `scoring timed out after ${timeoutMs / 1000} s`)), timeoutMs);
      timer.unref();
      this.#predicts.set(request, { resolve, reject, parties, timer });
      for (const p of parties) this.#control.get(fedId)!.get(p)!.emit('vpredict', { request, session: request, round: lineage.round!, ids: [...ids], explain });
    });
  }

  #settlePredict(request: string, r: VerticalPredictResult | Error): void {
    const p = this.#predicts.get(request);
    if (!p) return;
    this.#predicts.delete(request);
    clearTimeout(p.timer);
    if (r instanceof Error) p.reject(r);
    else p.resolve(r);
  }

  #onPredictResult(party: string, raw: unknown): void {
    const p = VerticalPredictResultSchema.safeParse(raw);
    if (!p.success) throw new FedmartError('INVALID_MESSAGE', `vpredict-result: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const pending = this.#predicts.get(p.data.request);
    if (!pending || !pending.parties.includes(party)) throw new FedmartError('NOT_FOUND', `no scoring request ${p.data.request} for ${party}`);
    if (p.data.error !== undefined) this.#settlePredict(p.data.request, new FedmartError('UNAVAILABLE', `${party} could not score: ${p.data.error}`));
    else if (party === pending.parties[0]) this.#settlePredict(p.data.request, p.data);
  }

  /** Fail open rounds (shutdown). @returns once their rows are written */
  close(): Promise<void> {
    for (const [fed, o] of this.#open) this.#fail(fed, o, 'the coordinator is shutting down');
    for (const id of [...this.#predicts.keys()]) this.#settlePredict(id, new FedmartError('UNAVAILABLE', 'the coordinator is shutting down'));
    return this.#writes.drain();
  }
}
