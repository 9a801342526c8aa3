/**
 * The partner agent: connects to the coordinator's `/federation` namespace
 * with its enrollment token, says hello (consent + example count), and
 * answers train / evaluate instructions with local TensorFlow.js training.
 *
 * Only model deltas (binary Float32) and aggregate metrics ever leave this
 * process — never rows, feature values or labels.
 */
import { io, type Socket } from 'socket.io-client';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import {
  FEDERATION_NAMESPACE, PROTOCOL_VERSION, TrainConfigSchema,
  type Ack, type ClientToServerEvents, type EvaluateInstruction, type FederationTerms, type RoundStatus, type ServerToClientEvents, type TrainInstruction, type Welcome,
} from '@fedmart/shared/protocol';
import { decodeFloat32, encodeFloat32 } from '@fedmart/shared/codec';
import { jointParameterCount, type JointModelSpec } from '@fedmart/shared/task/layout';
import { runRoundWithDp, type DpReleaseCharge } from './ml/dp-sgd.ts';
import { tabularTask, type LocalData, type PartnerTask } from './task.ts';
import type { TrainProgress } from '@fedmart/shared/task/types';
import { RdpAccountant } from '@fedmart/shared/dp/rdp';
import { initBackend } from './ml/backend.ts';
import { SecAggClient } from '@fedmart/shared/secagg/client';
import type { AdvertiseKeysRequest, ConsistencyCheckRequest, MaskedInputRequest, SecAggStage, ShareKeysRequest, UnmaskRequest } from '@fedmart/shared/secagg/messages';
import {
  HeAggregateSchema, HeKeySchema, HeMpCommitsSchema, HeMpKeysSchema, HeMpRoundSchema, HeMpShareSchema, HeSetupSchema, HeWrapRequestSchema, SecAggRequestSchema,
  type SecureServerToClientEvents, type SecureTrainInstruction,
} from '@fedmart/shared/protocol-secure';
import { CkksPartner, type MultipartyObserver } from './protection/ckks-partner.ts';
import { checkRoundParticipants, pinFederationTerms, planRoundDp, termsChange } from './protection/dp-terms.ts';
import { PartnerIdentity } from './identity.ts';
import { AuditHeadStore, checkCoordinatorAuditLog } from './audit-head.ts';
import { purposeRefusal, type Purpose } from '@fedmart/shared/consent';
import type { SignedTreeHead } from '@fedmart/shared/audit-log';
import { wireParser } from '@fedmart/shared/wire-parser';
import { bytesToHex, hexToBytes } from '@fedmart/shared/crypto/bytes';
import { federationTermsHash, type FederationTerms as ConsentTerms } from '@fedmart/shared/federation-terms';
import { followLeaderRedirects } from './leader-redirect.ts';

export type { LocalData, PartnerTask } from './task.ts';

export interface PartnerAgentOptions {
  coordinatorUrl: string;
  /** Several coordinators without a load balancer: the other coordinators' base URLs, tried in turn when a reconnection attempt is due (leader-redirect.ts). */
  fallbackCoordinatorUrls?: ReadonlyArray<string>;
  token: string;
  /** Encoded local data for the tabular task (encode it with the federation's data schema first); or give `task`. */
  data?: LocalData;
  /** The task this partner runs (`task.ts`); default: the tabular task over `data`. */
  task?: PartnerTask;
  /** Seed for local shuffling (non-secret). */
  seed?: number;
  /** Progress sink. */
  log?: (msg: string) => void;
  /** Called on every round status the coordinator pushes. */
  onStatus?: (s: RoundStatus) => void;
  /** Reconnect after a dropped connection (default true). */
  reconnect?: boolean;
  /** Extra Socket.IO client options (tests use this to capture frames). */
  socketOptions?: Record<string, unknown>;
  /**
   * Test/simulation hook: the secure-aggregation stage at which this partner
   * drops out in a given round (null: it does not). With `dropMode`
   * 'disconnect' (default) it closes its connection on that stage's request
   * and reconnects shortly after; with 'silent' it just never answers.
   */
  dropAtStage?: (round: number) => SecAggStage | null;
  dropMode?: 'disconnect' | 'silent';
  /** Test hook: sees each local update (plaintext, in this process only) before it is protected and sent. */
  onLocalUpdate?: (u: { round: number; delta: Float32Array; numExamples: number }) => void;
  /** Test hook (CKKS): sees the federation secret key this partner generated or unwrapped; it never leaves the process. */
  onCkksSecretKey?: (sk: Uint8Array) => void;
  /** Test hooks (multiparty CKKS): see this partner's round secret share and the decryption shares it holds; they never leave the process. */
  onMultiparty?: MultipartyObserver;
  /**
   * Federation terms accepted earlier in this enrollment (e.g. kept on disk by
   * the caller from `onTermsPinned`). Absent: the first welcome's terms are pinned.
   */
  terms?: FederationTerms;
  /** Called once when this agent pins the federation terms from its first welcome. */
  onTermsPinned?: (terms: FederationTerms) => void;
  /** Long-term identity and pins (`identity.ts`); default: a fresh in-memory identity (no pins survive a restart). */
  identity?: PartnerIdentity;
  /** Train the tabular task in a worker thread (worker-trainer.ts): the event loop stays free during any batch, and close() stops training at once. */
  trainInWorker?: boolean;
  /** Least time between two `train-progress` reports while training (default 5 s): the coordinator extends its wait on each. */
  progressEveryMs?: number;
  /** The purposes this partner's data may serve (`@fedmart/shared/consent`); a federation with another purpose is refused. Absent: not stated. */
  purposes?: Purpose[];
  /** Newest audit tree head seen (`audit-head.ts`), checked at every connection; default: in memory. */
  auditHeads?: AuditHeadStore;
}

/** This partner's own privacy accounting: what its released updates cost it, per DP level. */
export interface PartnerPrivacySpent {
  /** Record level (DP-SGD): ε at the federation's δ over every update released so far (null: no record-level DP). */
  record: { epsilon: number; delta: number; releases: number } | null;
  /** Partner level (DP-FedAvg): ε of this partner's whole contribution (null: no partner-level DP). */
  partner: { epsilon: number; delta: number; releases: number } | null;
}

export interface PartnerAgent {
  socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  /** Resolves with the welcome once connected and accepted. */
  ready: Promise<Welcome>;
  /** Rounds this partner trained in. */
  roundsTrained(): number;
  /** CKKS federations: the newest plaintext joint model this partner holds (the coordinator has only ciphertexts). */
  currentModel(): { version: number; weights: Float32Array } | null;
  /** The federation terms this partner pinned (null before the first welcome). */
  terms(): FederationTerms | null;
  /** What this partner's released updates cost it, by its own accountants. */
  privacySpent(): PartnerPrivacySpent;
  /** The newest signed audit tree head this partner checked (null before the first welcome). */
  auditHead(): SignedTreeHead | null;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Start a partner agent.
 * @returns the agent; `ready` rejects with a FedmartError if the token is refused
 */
export function startPartnerAgent(opts: PartnerAgentOptions): PartnerAgent {
  const log = opts.log ?? (() => {});
  const home = opts.coordinatorUrl.replace(/\/+$/, '');
  const url = home + FEDERATION_NAMESPACE;
  const socket: Socket<ServerToClientEvents & SecureServerToClientEvents, ClientToServerEvents> = io(url, {
    auth: { token: opts.token },
    transports: ['websocket'],
    reconnection: opts.reconnect ?? true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    parser: wireParser,
    ...opts.socketOptions,
  });
  // Several coordinators: follow a non-leader's redirect to the federation's leader; back to `home` on a dropped connection.
  const routes = followLeaderRedirects(socket as unknown as Socket, { homeUrl: home, ...(opts.fallbackCoordinatorUrls ? { fallbackUrls: opts.fallbackCoordinatorUrls } : {}), log, giveUp: (err) => { if (settled) return false; rejectReady(err); return true; } });
  let seq = 0;
  if (!opts.task && !opts.data) throw new FedmartError('CONFIG_ERROR', 'startPartnerAgent needs either data (the tabular task) or a task');
  const task: PartnerTask = opts.task ?? tabularTask(opts.data!, { worker: opts.trainInWorker === true });
  let spec: JointModelSpec | null = null;
  let trained = 0;
  let work: Promise<void> = Promise.resolve();
  // This partner's own privacy spend per level (RDP composes across rounds), charged when an update leaves the
  // partner (not when it is trained), so it agrees with the coordinator's ledger even for rounds that later fail.
  const accountants = { record: new RdpAccountant(), partner: new RdpAccountant() };
  const releases = { record: 0, partner: 0 };
  const charge = (c: DpReleaseCharge | null) => {
    if (!c) return;
    accountants[c.level].step(c.q, c.sigma, c.steps);
    releases[c.level]++;
  };
  // The federation terms accepted at the first welcome; every round instruction is checked against them.
  let terms: FederationTerms | null = opts.terms ?? null;
  // Weight of this partner's update in a secure/encrypted sum: its example count, or 1 under partner-level DP.
  let updateWeight = task.numExamples;
  const identity = opts.identity ?? PartnerIdentity.ephemeral();
  let federationId = '';
  let welcomedAs = '';
  const auditHeads = opts.auditHeads ?? AuditHeadStore.ephemeral();
  // Set when the coordinator's audit log does not extend the head this partner holds: no training until resolved.
  let auditRefusal: FedmartError | null = null;


  // Acks still outstanding; a disconnect settles them all, so nothing waits forever.
  const pending = new Set<(a: Ack) => void>();
  const send = (envelope: Record<string, unknown>, attachment?: Uint8Array): Promise<Ack> =>
    new Promise((resolve) => {
      if (!socket.connected) {
        resolve({ ok: false, error: { code: 'UNAVAILABLE', message: 'not connected to the coordinator' } });
        return;
      }
      const env = { v: PROTOCOL_VERSION, seq: seq++, ...envelope };
      const cb = (a: Ack) => {
        pending.delete(cb);
        resolve(a);
      };
      pending.add(cb);
      if (attachment) socket.emit('msg', env, attachment, cb);
      else socket.emit('msg', env, cb);
    });
  socket.on('disconnect', (reason) => {
    secRound = null;
    for (const cb of [...pending]) cb({ ok: false, error: { code: 'UNAVAILABLE', message: `connection lost (${reason}) before the coordinator answered` } });
  });

  let resolveReady!: (w: Welcome) => void;
  let rejectReady!: (e: Error) => void;
  let settled = false;
  const ready = new Promise<Welcome>((res, rej) => {
    resolveReady = (w) => { settled = true; res(w); };
    rejectReady = (e) => { settled = true; rej(e); };
  });
  ready.catch(() => {});

  socket.on('connect', () => {
    void (async () => {
      try {
        await initBackend();
        const numExamples = task.numExamples;
        const ack = await send({ type: 'hello', payload: { numExamples, consent: true, agent: 'fedmart-client-node/0.1.0', identityKey: bytesToHex(identity.keyPair.publicKey), ...(opts.purposes ? { purposes: opts.purposes } : {}) } });
        if (!ack.ok && routes.redirecting()) return; // this partner left for the leader before the ack came
        if (!ack.ok) throw new FedmartError(ack.error.code as never, ack.error.message);
      } catch (err) {
        if (!settled) rejectReady(toFedmartError(err));
        log(`hello failed: ${(err as Error).message}`);
      }
    })();
  });

  socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
    // Auth failures are final: the coordinator said no.
    if (err.data?.code) {
      const e = new FedmartError((err.data.code as never) ?? 'UNAUTHENTICATED', err.data.message ?? err.message);
      log(`coordinator refused the connection: ${e.message}`);
      socket.disconnect();
      if (!settled) rejectReady(e);
    } else if (!settled && !(opts.reconnect ?? true)) {
      rejectReady(new FedmartError('UNAVAILABLE', `cannot reach the coordinator at ${opts.coordinatorUrl}: ${err.message}; check --coordinator and that it is running`));
    } else {
      log(`cannot reach ${routes.currentUrl()} (${err.message}); retrying…`);
    }
  });

  socket.on('welcome', (w) => {
    void (async () => {
      try {
        // Consent by purpose: this partner decides, whatever the coordinator checked.
        const notCovered = purposeRefusal(opts.purposes ?? null, w.purpose ?? null);
        if (notCovered) throw new FedmartError('FORBIDDEN', `refusing to take part in ${w.federationId}: ${notCovered}`);
        const fresh = pinFederationTerms(w.terms);
        if (terms === null) {
          terms = fresh;
          opts.onTermsPinned?.(fresh);
        } else {
          const change = termsChange(terms, fresh);
          if (change) throw new FedmartError('FORBIDDEN', change);
        }
        const taskId = w.task ?? 'binary';
        if (taskId !== task.id) throw new FedmartError('CONFIG_ERROR', `the federation runs task "${taskId}" but this partner runs "${task.id}"; start the partner with that task (or join the federation meant for it)`);
        task.accept(w.model, w.taskSpec, terms);
        spec = w.model;
        federationId = w.federationId;
        welcomedAs = w.partnerId;
        // The terms' hash is also pinned in the partner's data dir, so the pin survives restarts.
        if (w.terms) identity.checkTerms(w.federationId, federationTermsHash(w.terms as unknown as ConsentTerms));
        for (const peer of w.identities ?? []) {
          if (peer.partnerId === w.partnerId) {
            if (peer.identityKey !== bytesToHex(identity.keyPair.publicKey)) throw new FedmartError('CRYPTO_ERROR', 'the coordinator lists another identity key for this partner than its own; refusing to join');
          } else identity.checkPeer(w.federationId, peer.partnerId, hexToBytes(peer.identityKey));
        }
        // Every connection: the coordinator's audit log must extend the newest tree head this partner saw.
        try {
          await checkCoordinatorAuditLog({ coordinatorUrl: routes.currentUrl(), token: opts.token, store: auditHeads });
          auditRefusal = null;
        } catch (err) {
          auditRefusal = toFedmartError(err);
          throw auditRefusal;
        }
        if (!settled) resolveReady(w);
      } catch (err) {
        log(`cannot join: ${(err as Error).message}`);
        if (!settled) rejectReady(toFedmartError(err));
        socket.disconnect();
      }
    })();
  });

  socket.on('round-status', (s) => {
    if (s.phase === 'failed' || s.phase === 'committed') ckks?.endMultipartyRound(s.roundId, s.phase);
    opts.onStatus?.(s);
  });
  socket.on('rejected', (r) => log(`coordinator rejected our message${r.roundId ? ` in ${r.roundId}` : ''}: ${r.message}`));
  socket.on('protocol-error', (e) => log(`coordinator reports ${e.code}: ${e.message}`));

  socket.on('train', (t: SecureTrainInstruction, weightsBytes: Uint8Array) => {
    if (t.protection === 'secagg') secRound = newSecRound(t);
    work = work.then(() => onTrain(t, weightsBytes));
  });
  socket.on('secagg', (request) => {
    void onSecAgg(request);
  });
  socket.on('he-setup', (raw) => {
    void heStep('setup', async () => {
      const setup = HeSetupSchema.parse(raw);
      if (setup.federationId !== federationId || setup.partnerId !== welcomedAs) throw new FedmartError('INVALID_MESSAGE', 'the CKKS setup names another federation or partner than the welcome; refusing it');
      // The pinned terms say whether a federation key may exist at all: a coordinator cannot switch multiparty off.
      const pinnedKeys = terms?.he?.keys ?? 'federation';
      if ((setup.keys ?? 'federation') !== pinnedKeys) throw new FedmartError('CONFLICT', `the CKKS setup uses '${setup.keys ?? 'federation'}' keys but the federation terms this partner consented to say '${pinnedKeys}'; refusing it`);
      ckks ??= new CkksPartner(identity, opts.onCkksSecretKey, opts.onMultiparty);
      const keyId = await ckks.configure(setup);
      await sendChecked({ type: 'he-partner-key', payload: ckks.signedPartnerKey() });
      if (keyId) await sendChecked({ type: 'he-ready', payload: { keyId } });
    });
  });
  socket.on('he-wrap', (raw) => {
    void heStep('wrap', async () => {
      const req = HeWrapRequestSchema.parse(raw);
      if (!ckks) throw new FedmartError('UNAVAILABLE', 'asked to wrap the federation key before the CKKS setup');
      await sendChecked({ type: 'he-wrapped', payload: ckks.wrapFor(req.to, req.identityKey, req.publicKey, req.signature) });
    });
  });
  socket.on('he-key', (raw) => {
    void heStep('key', async () => {
      const key = HeKeySchema.parse(raw);
      if (!ckks) throw new FedmartError('UNAVAILABLE', 'received the federation key before the CKKS setup');
      const keyId = await ckks.acceptKey(key);
      await sendChecked({ type: 'he-ready', payload: { keyId } });
    });
  });
  socket.on('he-aggregate', (raw) => {
    work = work.then(() => onHeAggregate(raw));
  });
  // Multiparty key and share relays are handled at once (not queued behind the training they unblock).
  socket.on('he-mp-keys', (raw) => {
    void (async () => {
      let roundId = '';
      try {
        const keys = HeMpKeysSchema.parse(raw);
        roundId = keys.roundId;
        if (!ckks) throw new FedmartError('UNAVAILABLE', 'received a collective key before the CKKS setup');
        await ckks.acceptMultipartyKeys(keys, Math.max(2, terms?.minClients ?? 2));
      } catch (err) {
        const e = toFedmartError(err);
        log(`multiparty collective key${roundId ? ` of ${roundId}` : ''} refused: ${e.message}`);
        if (roundId) {
          ckks?.endMultipartyRound(roundId, 'collective key refused');
          await send({ type: 'train-error', roundId, payload: { code: e.code, message: e.message.slice(0, 2000) } });
        }
      }
    })();
  });
  // Commit-then-reveal: once every round partner's signed commitment is in, reveal the key share (the update waits in training).
  socket.on('he-mp-commits', (raw) => {
    void (async () => {
      let roundId = '';
      let kind = '';
      try {
        const commits = HeMpCommitsSchema.parse(raw);
        ({ roundId, kind } = commits);
        if (!ckks) throw new FedmartError('UNAVAILABLE', 'received multiparty commitments before the CKKS setup');
        const reveal = ckks.acceptMultipartyCommits(commits, Math.max(2, terms?.minClients ?? 2));
        if (reveal) await sendChecked({ type: 'he-mp-key-share', roundId, payload: reveal });
      } catch (err) {
        const e = toFedmartError(err);
        log(`multiparty ${kind || 'round'} commitments${roundId ? ` of ${roundId}` : ''} refused: ${e.message}`);
        if (roundId) {
          ckks?.endMultipartyRound(roundId, `${kind} commitments refused`);
          await send({ type: 'train-error', roundId, payload: { code: e.code, message: e.message.slice(0, 2000) } });
        }
      }
    })();
  });
  socket.on('he-mp-share', (raw) => {
    try {
      if (!ckks) throw new FedmartError('UNAVAILABLE', 'received a decryption share before the CKKS setup');
      ckks.acceptMultipartyShare(HeMpShareSchema.parse(raw));
    } catch (err) {
      log(`multiparty decryption share ignored: ${toFedmartError(err).message}`);
    }
  });

  // ---------------------------------------------------------------- protection layers

  /** One round of secure aggregation on this side (Bonawitz et al. 2017 client, Fig. 4). */
  interface SecRound {
    roundId: string;
    round: number;
    client: SecAggClient | null;
    maxWeight: number;
    /** From advertise-keys: selected participants and the graph degree (complete graph: survivors are countable). */
    participants: number;
    neighbourDegree: number;
    update: Promise<SecUpdate>;
    resolve(u: SecUpdate): void;
    reject(e: Error): void;
    dropped: boolean;
  }
  /** The update secure aggregation masks, with what releasing it costs. */
  interface SecUpdate {
    delta: Float32Array;
    metrics: Record<string, number>;
    charge: DpReleaseCharge | null;
  }
  let secRound: SecRound | null = null;
  let ckks: CkksPartner | null = null;
  let closed = false;
  /** Aborted by close(): training stops at its next yield. */
  const stopping = new AbortController();
  let reconnectTimer: NodeJS.Timeout | null = null;

  function newSecRound(t: SecureTrainInstruction): SecRound {
    let resolve!: SecRound['resolve'];
    let reject!: SecRound['reject'];
    const update = new Promise<SecUpdate>((res, rej) => { resolve = res; reject = rej; });
    update.catch(() => {});
    return { roundId: t.roundId, round: t.round, client: null, maxWeight: 1, participants: 0, neighbourDegree: 0, update, resolve, reject, dropped: false };
  }

  async function sendChecked(envelope: Record<string, unknown>): Promise<void> {
    const ack = await send(envelope);
    if (!ack.ok) throw new FedmartError(ack.error.code as never, ack.error.message);
  }

  async function heStep(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      log(`CKKS key custody (${what}) failed: ${toFedmartError(err).message}`);
    }
  }

  function simulateDrop(stage: SecAggStage): void {
    log(`simulated dropout at secure-aggregation stage ${stage}`);
    if ((opts.dropMode ?? 'disconnect') !== 'disconnect') return;
    socket.disconnect();
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      if (!closed) socket.connect();
    }, 50);
  }

  async function onSecAgg(raw: unknown): Promise<void> {
    const parsed = SecAggRequestSchema.safeParse(raw);
    if (!parsed.success) {
      log(`ignored an invalid secure-aggregation request: ${parsed.error.issues[0]?.message ?? 'malformed'}`);
      return;
    }
    const req = parsed.data;
    const sr = secRound;
    if (!sr || sr.roundId !== req.roundId || sr.dropped) return;
    if (opts.dropAtStage?.(sr.round) === req.stage) {
      sr.dropped = true;
      simulateDrop(req.stage);
      return;
    }
    try {
      let payload: Record<string, unknown>;
      switch (req.stage) {
        case 'advertise-keys': {
          if (terms) checkRoundParticipants(terms, req.participants.length, 'advertise-keys', task.noiseShares ?? 0);
          sr.participants = req.participants.length;
          sr.neighbourDegree = req.neighbourDegree;
          // Every participant's identity key must match this partner's pins (first use pins it).
          for (const entry of req.identities) {
            if (entry.id !== req.clientId) identity.checkPeer(federationId, entry.partnerId, entry.publicKey);
          }
          sr.client = new SecAggClient(req.clientId, identity.keyPair);
          sr.maxWeight = req.quantization.maxWeight ?? 1;
          const reply = sr.client.advertiseKeys(req as AdvertiseKeysRequest);
          payload = { stage: reply.stage, clientId: reply.clientId, encryptionPublicKey: reply.encryptionPublicKey, maskingPublicKey: reply.maskingPublicKey, signature: reply.signature };
          break;
        }
        case 'share-keys': {
          const reply = requireClient(sr).shareKeys(req as ShareKeysRequest);
          payload = { stage: reply.stage, clientId: reply.clientId, sealed: reply.sealed };
          break;
        }
        case 'masked-input': {
          const client = requireClient(sr);
          const u = await sr.update;
          if (secRound !== sr || sr.dropped) return;
          const reply = client.maskInput(req as MaskedInputRequest, u.delta, Math.min(updateWeight, sr.maxWeight));
          payload = { stage: reply.stage, clientId: reply.clientId, masked: new Uint8Array(reply.masked.buffer, reply.masked.byteOffset, reply.masked.byteLength), metrics: u.metrics };
          // The masked update leaves now: charge it (a colluding coordinator and peers could unmask it).
          if (socket.connected) charge(u.charge);
          break;
        }
        case 'consistency-check': {
          const reply = requireClient(sr).consistencyCheck(req as ConsistencyCheckRequest);
          payload = { stage: reply.stage, clientId: reply.clientId, signature: reply.signature };
          break;
        }
        case 'unmask': {
          // With a complete graph every survivor is our neighbour: no sum of fewer partners than the noise was split over.
          if (terms && sr.neighbourDegree >= sr.participants - 1) checkRoundParticipants(terms, (req as UnmaskRequest).survivors.length, 'unmask', task.noiseShares ?? 0);
          // The core reveals shares only for the survivor set it signed, certified by T signatures.
          const reply = requireClient(sr).unmask(req as UnmaskRequest);
          payload = { stage: reply.stage, clientId: reply.clientId, shares: reply.shares };
          break;
        }
      }
      const ack = await send({ type: 'secagg-reply', roundId: sr.roundId, payload });
      if (ack.ok) {
        if (req.stage === 'masked-input') trained++;
      } else log(`round ${sr.round}: secure-aggregation ${req.stage} reply refused: ${ack.error.message}`);
    } catch (err) {
      const e = toFedmartError(err);
      log(`round ${sr.round}: secure aggregation stopped at ${req.stage}: ${e.message}`);
      sr.dropped = true;
      await send({ type: 'train-error', roundId: sr.roundId, payload: { code: e.code, message: e.message.slice(0, 2000) } });
    }
  }

  function requireClient(sr: SecRound): SecAggClient {
    if (!sr.client) throw new FedmartError('PROTOCOL_MISMATCH', 'secure aggregation: a stage request arrived before advertise-keys; stages must run in order');
    return sr.client;
  }

  async function onHeAggregate(raw: unknown): Promise<void> {
    let roundId = '';
    try {
      if (!spec || !ckks) return;
      const agg = HeAggregateSchema.parse(raw);
      roundId = agg.roundId;
      // The pinned terms' minimum participants: an "aggregate" of fewer is refused before decryption.
      let weights: Float32Array;
      if (ckks.multiparty) {
        // A decryption share only for an aggregate of exactly this round's key parties, once; then all n shares decrypt.
        const boxes = await ckks.multipartyDecryptionShares(agg, Math.max(2, terms?.minClients ?? 2));
        await sendChecked({ type: 'he-mp-decryption-share', roundId: agg.roundId, payload: { boxes } });
        ({ weights } = await ckks.multipartyApply(agg.roundId));
      } else ({ weights } = await ckks.applyAggregate(agg, Math.max(2, terms?.minClients ?? 2)));
      const r = await task.evaluate(weights);
      await send({ type: 'evaluate-result', roundId: agg.roundId, payload: { numExamples: r.numExamples, metrics: r.metrics } });
    } catch (err) {
      log(`encrypted aggregate${roundId ? ` of ${roundId}` : ''} could not be applied: ${toFedmartError(err).message}`);
    }
  }
  socket.on('evaluate', (e: EvaluateInstruction, weightsBytes: Uint8Array) => {
    work = work.then(() => onEvaluate(e, weightsBytes));
  });

  async function onTrain(t: SecureTrainInstruction, weightsBytes: Uint8Array): Promise<void> {
    const sr = t.protection === 'secagg' ? secRound : null;
    try {
      if (!spec) throw new FedmartError('UNAVAILABLE', 'received a train instruction before the welcome');
      if (!terms) throw new FedmartError('UNAVAILABLE', 'received a train instruction before the federation terms were pinned');
      if (auditRefusal) throw auditRefusal;
      const { dp, ...config } = TrainConfigSchema.parse(t.config);
      // Refuse, before touching the data, an instruction that contradicts the pinned terms (dp-terms.ts).
      const plan = planRoundDp(terms, { protection: t.protection, dp });
      const expected = jointParameterCount(spec);
      if (t.length !== expected) throw new FedmartError('INVALID_MESSAGE', `train instruction carries ${t.length} parameters, the model has ${expected}`);
      let global: Float32Array;
      if (t.protection === 'ckks') {
        // Under CKKS the coordinator has no plaintext model past version 0: train on the version this partner holds.
        if (!ckks?.ready) throw new FedmartError('UNAVAILABLE', 'asked to train under CKKS before holding the federation key');
        const version = t.modelVersion ?? 0;
        if (weightsBytes.byteLength > 0) ckks.remember(version, decodeFloat32(weightsBytes, expected).slice());
        const held = ckks.model(version);
        if (!held) throw new FedmartError('CONFLICT', `the round trains model version ${version}, which this partner does not hold (it missed an encrypted aggregate); it sits this round out`);
        global = held;
        if ((terms.he?.keys ?? 'federation') === 'multiparty') {
          // Multiparty: the key-share commitment goes out before training (the share itself once every partner committed),
          // so the collective key is ready when the update is.
          if (t.multiparty === undefined) throw new FedmartError('CONFLICT', 'round refused: the instruction carries no multiparty key setup, but the federation terms this partner consented to use multiparty CKKS keys');
          const mp = HeMpRoundSchema.parse(t.multiparty);
          checkRoundParticipants(terms, mp.parties.length, 'multiparty key generation');
          const commit = await ckks.multipartyKeyShare(t.roundId, mp, Math.max(2, terms.minClients));
          await sendChecked({ type: 'he-mp-commit', roundId: t.roundId, payload: commit });
        } else if (t.multiparty !== undefined) throw new FedmartError('CONFLICT', 'round refused: the instruction carries a multiparty key setup, but the federation terms this partner consented to use the federation key');
      } else global = decodeFloat32(weightsBytes, expected);
      const started = Date.now();
      // DP-SGD at record level, clip (+ noise share) at partner level, plain training otherwise.
      // Training yields every ~100 ms (heartbeats, status, signals), stops when the agent closes, and reports progress.
      let lastProgress = Date.now();
      const onProgress = (p: TrainProgress) => {
        if (Date.now() - lastProgress < (opts.progressEveryMs ?? 5000) || !socket.connected) return;
        lastProgress = Date.now();
        void send({ type: 'train-progress', roundId: t.roundId, payload: p }).then((ack) => { if (!ack.ok) log(`round ${t.round}: progress report refused: ${ack.error.message}`); });
      };
      const result = await runRoundWithDp(task.round({ weights: global, config, round: t.round, seed: (opts.seed ?? 0) * 7919 + t.round, signal: stopping.signal, onProgress }), plan, accountants[plan?.level ?? 'record']);
      if (stopping.signal.aborted) return; // stopping: nothing is sent or charged
      const delta = result.delta;
      // Partner-level DP bounds each partner's influence by C only if every update weighs 1 in the sum.
      updateWeight = plan?.level === 'partner' ? 1 : task.numExamples;
      const metrics: Record<string, number> = { ...result.metrics, seconds: (Date.now() - started) / 1000 };
      opts.onLocalUpdate?.({ round: t.round, delta, numExamples: task.numExamples });
      if (t.protection === 'secagg') {
        // The masked-input stage picks the update up; it never leaves in the clear. A noised clip bit rides in the same secure sum.
        const masked = result.clipBit === undefined ? delta : Float32Array.from([...delta, result.clipBit]);
        sr?.resolve({ delta: masked, metrics, charge: result.charge });
        return;
      }
      if (t.protection === 'ckks') {
        const { chunks, length, signature } = await ckks!.encryptUpdate(delta, updateWeight, t.roundId);
        if (ckks!.multiparty) {
          // Commit to the ciphertext, and upload it only once every key party has committed to its own.
          await sendChecked({ type: 'he-mp-commit', roundId: t.roundId, payload: await ckks!.multipartyUpdateCommit(t.roundId, { chunks, length }) });
          await ckks!.multipartyUpdateCommitsReady(t.roundId);
        }
        if (socket.connected) charge(result.charge);
        const ack = await send({ type: 'he-train-result', roundId: t.roundId, payload: { length, chunks, metrics, signature } });
        if (ack.ok) trained++;
        else log(`round ${t.round}: encrypted update refused: ${ack.error.message}`);
        return;
      }
      if (socket.connected) charge(result.charge);
      const ack = await send({ type: 'train-result', roundId: t.roundId, payload: { numExamples: task.numExamples, metrics, length: delta.length } }, encodeFloat32(delta));
      if (ack.ok) trained++;
      else log(`round ${t.round}: update refused: ${ack.error.message}`);
    } catch (err) {
      const e = toFedmartError(err);
      if (stopping.signal.aborted) {
        log(`round ${t.round}: ${e.message}`);
        sr?.reject(e);
        return;
      }
      log(`round ${t.round}: training failed: ${e.message}`);
      sr?.reject(e);
      await send({ type: 'train-error', roundId: t.roundId, payload: { code: e.code, message: e.message.slice(0, 2000) } });
    }
  }

  async function onEvaluate(e: EvaluateInstruction, weightsBytes: Uint8Array): Promise<void> {
    try {
      if (!spec) return;
      const weights = decodeFloat32(weightsBytes, jointParameterCount(spec));
      const r = await task.evaluate(weights);
      await send({ type: 'evaluate-result', roundId: e.roundId, payload: { numExamples: r.numExamples, metrics: r.metrics } });
    } catch (err) {
      log(`round ${e.round}: evaluation failed: ${(err as Error).message}`);
    }
  }

  const close = async () => {
    closed = true;
    stopping.abort(); // training in progress ends at its next yield (within ~100 ms of work)
    if (reconnectTimer) clearTimeout(reconnectTimer);
    routes.stop();
    socket.disconnect();
    ckks?.endMultipartyRound(null, 'the partner closed'); // a decryption still waiting for shares will not get them
    await work.catch(() => {});
  };
  const privacySpent = (): PartnerPrivacySpent => {
    const dp = terms?.dp;
    const of = (level: 'record' | 'partner') => (dp?.level === level ? { epsilon: releases[level] ? accountants[level].epsilon(dp.delta).epsilon : 0, delta: dp.delta, releases: releases[level] } : null);
    return { record: of('record'), partner: of('partner') };
  };
  return { socket: socket as unknown as Socket<ServerToClientEvents, ClientToServerEvents>, ready, roundsTrained: () => trained, currentModel: () => ckks?.latest() ?? null, terms: () => terms, privacySpent, auditHead: () => auditHeads.head, close, [Symbol.asyncDispose]: close };
}
