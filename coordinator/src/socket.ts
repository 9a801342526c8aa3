/**
 * Socket.IO transport for namespace `/federation`: authenticates the
 * handshake (`auth: { token }`, an enrollment JWT), parses every inbound
 * envelope with its zod schema, decodes binary attachments, and hands
 * validated data to the orchestrator. Invalid input gets an error (ack and
 * `protocol-error` event) and changes no state.
 */
import type { Namespace, Server as IoServer, Socket } from 'socket.io';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import {
  ClientEnvelopeSchema, type ClientEnvelope, FEDERATION_NAMESPACE, MAX_ATTACHMENT_BYTES, PROTOCOL_VERSION, federationTerms, formatIssues,
  type Ack, type ClientToServerEvents, type ServerToClientEvents,
} from '@fedmart/shared/protocol';
import { decodeFloat32, toUint8Array } from '@fedmart/shared/codec';
import { boundExampleCount } from '@fedmart/shared/strategy/partner-bounds';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { federationTermsHash, type FederationTerms as ConsentTerms } from '@fedmart/shared/federation-terms';
import { SECURE_MESSAGE_TYPES, SecureClientEnvelopeSchema, type SecureServerToClientEvents } from '@fedmart/shared/protocol-secure';
import type { TokenAuthority } from './auth.ts';
import { authenticateEnrollment, handshakeError } from './socket-auth.ts';
import type { AsyncStore } from './db/store-api.ts';
import { recordConsent } from './consent.ts';
import type { ClientLink, Orchestrator } from './orchestrator.ts';
import type { ClusterNode } from './cluster/node.ts';

/** Per-socket data set by the handshake middleware. */
export interface SocketData {
  partnerId: string;
  partnerName: string;
  federationId: string;
  enrollmentId: string;
  /** The enrollment's cap on the partner's example count (null: the federation's limit only). */
  maxExamples: number | null;
  link?: ClientLink;
}

type FedSocket = Socket<ClientToServerEvents, ServerToClientEvents & SecureServerToClientEvents, Record<string, never>, SocketData>;

/**
 * Attach the federation namespace to a Socket.IO server.
 * @returns the namespace
 */
export function attachFederationNamespace(io: IoServer, deps: { store: AsyncStore; authority: TokenAuthority; orchestrator: Orchestrator; log?: (msg: string) => void; cluster?: ClusterNode }): Namespace<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData> {
  const nsp = io.of(FEDERATION_NAMESPACE) as unknown as Namespace<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
  const log = deps.log ?? (() => {});

  nsp.use((socket, next) => {
    void (async () => {
      try {
        const enrollment = await authenticateEnrollment(deps, socket.handshake.auth, 'a federation');
        const partner = await deps.store.getPartner(enrollment.partnerId);
        socket.data = { partnerId: enrollment.partnerId, partnerName: partner?.name ?? enrollment.partnerId, federationId: enrollment.federationId, enrollmentId: enrollment.id, maxExamples: enrollment.maxExamples };
        next();
      } catch (err) {
        next(handshakeError(err));
      }
    })();
  });

  nsp.on('connection', (socket: FedSocket) => {
    const { federationId, partnerId } = socket.data;
    void socket.join(`fed:${federationId}`);
    log(`partner ${socket.data.partnerName} connected to ${federationId}`);

    let pending: Promise<void> | null = null;
    socket.on('msg', (envelope: unknown, attachmentOrAck?: unknown, maybeAck?: unknown) => {
      const ack: (a: Ack) => void =
        typeof maybeAck === 'function' ? (maybeAck as (a: Ack) => void)
        : typeof attachmentOrAck === 'function' ? (attachmentOrAck as (a: Ack) => void)
        : () => {};
      const attachment = typeof attachmentOrAck === 'function' ? undefined : attachmentOrAck;
      const fail = (err: unknown) => {
        const e = toFedmartError(err);
        if (e.code === 'INTERNAL') log(`internal error handling a message from ${socket.data.partnerName}: ${(e.cause as Error)?.stack ?? e.message}`);
        const body = { code: e.code, message: e.message };
        ack({ ok: false, error: body });
        const roundId = typeof (envelope as { roundId?: unknown })?.roundId === 'string' ? (envelope as { roundId: string }).roundId : undefined;
        if (e.code === 'INVALID_UPDATE' || e.code === 'CONFLICT') socket.emit('rejected', { ...(roundId ? { roundId } : {}), ...body });
        else socket.emit('protocol-error', body);
      };
      // A hello reads and writes the store (async); messages behind it wait for it, in order. A failed
      // store call answers this socket with the one-line error (ack + protocol-error) and nothing else.
      const run = () => {
        try {
          const done = handle(socket, envelope, attachment);
          if (!done) return ack({ ok: true });
          const p = done.then(() => ack({ ok: true }), fail).finally(() => { if (pending === p) pending = null; });
          pending = p;
        } catch (err) {
          fail(err);
        }
      };
      if (pending) pending = pending.then(run);
      else run();
    });

    socket.on('disconnect', () => {
      if (socket.data.link) deps.orchestrator.detachClient(federationId, socket.data.link);
      log(`partner ${socket.data.partnerName} disconnected from ${federationId}`);
    });
  });

  function handle(socket: FedSocket, raw: unknown, attachment: unknown): void | Promise<void> {
    const type = (raw as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && SECURE_MESSAGE_TYPES.has(type)) {
      handleSecure(socket, raw);
      return;
    }
    const parsed = ClientEnvelopeSchema.safeParse(raw);
    if (!parsed.success) {
      const v = (raw as { v?: unknown } | null)?.v;
      if (v !== undefined && v !== PROTOCOL_VERSION) {
        throw new FedmartError('PROTOCOL_MISMATCH', `client speaks protocol v${String(v)}, this coordinator speaks v${PROTOCOL_VERSION}; upgrade fedmart on one side`);
      }
      throw new FedmartError('INVALID_MESSAGE', `invalid message: ${formatIssues(parsed.error.issues)}`);
    }
    const msg = parsed.data;
    if (msg.type === 'hello') return hello(socket, msg);
    return handleRest(socket, msg, attachment);
  }

  async function hello(socket: FedSocket, msg: Extract<ClientEnvelope, { type: 'hello' }>): Promise<void> {
    const { federationId, partnerId } = socket.data;
    // Cluster mode: a federation another coordinator leads is served there (the partner follows the redirect).
    if (deps.cluster && (await deps.cluster.router.redirectUnlessLeader(socket, federationId))) return;
    {
      await deps.orchestrator.prepare(federationId);
      const fed = await deps.store.getFederation(federationId);
      const config = deps.store.federationConfig(fed);
      // The weight a partner gets is capped by its enrollment and the federation's limits (issue 8), whatever it declares.
      const declared = msg.payload.numExamples;
      const numExamples = boundExampleCount(declared, [socket.data.maxExamples, config.limits.maxExamplesPerPartner]);
      if (numExamples < declared) await deps.store.audit('coordinator', 'partner.examples-capped', partnerId, { federationId, declared, weightedBy: numExamples });
      const terms = federationTerms(config);
      const { identityKey } = msg.payload;
      if (identityKey === undefined && (config.secureAggregation || config.encryption === 'ckks')) {
        throw new FedmartError('UNPROCESSABLE', `federation ${federationId} uses ${config.secureAggregation ? 'secure aggregation' : 'CKKS encryption'}, which needs each partner's identity key; the hello carried none — run a fedmart partner node (fedmart partner), which creates one in its data dir`);
      }
      // Trust on first use: the first key a partner presents is bound to its enrollment.
      if (identityKey !== undefined) await deps.store.bindIdentity(socket.data.enrollmentId, identityKey, federationTermsHash(terms as unknown as ConsentTerms));
      await deps.store.markEnrollmentSeen(socket.data.enrollmentId, declared);
      await recordConsent(deps.store, { enrollmentId: socket.data.enrollmentId, partnerId, federationId, purposes: msg.payload.purposes, purpose: config.purpose, termsHash: federationTermsHash(terms as unknown as ConsentTerms) });
      const identities = (await deps.store.listEnrollments(federationId)).filter((e) => e.identityKey !== null && e.status !== 'revoked').map((e) => ({ partnerId: e.partnerId, partnerName: e.partnerName, identityKey: e.identityKey! }));
      const link: ClientLink = {
        partnerId, partnerName: socket.data.partnerName, numExamples, declaredExamples: declared,
        ...(identityKey !== undefined ? { identityKey: hexToBytes(identityKey) } : {}),
        sendTrain: (t, w) => socket.emit('train', t, w),
        emitSecure: (event, payload) => (socket.emit as (e: string, p: unknown) => boolean)(event, payload),
        sendEvaluate: (e, w) => socket.emit('evaluate', e, w),
        sendStatus: (s) => socket.emit('round-status', s),
        sendRejected: (r) => socket.emit('rejected', r),
        disconnect: (reason) => { socket.emit('protocol-error', { code: 'CONFLICT', message: reason }); socket.disconnect(true); },
      };
      socket.emit('welcome', { federationId, partnerId, partnerName: socket.data.partnerName, protocolVersion: PROTOCOL_VERSION, task: config.task, model: config.model, ...(config.taskSpec !== undefined ? { taskSpec: config.taskSpec } : {}), terms, ...(config.dataSchema !== undefined ? { dataSchema: config.dataSchema } : {}), identities, ...(config.purpose ? { purpose: config.purpose } : {}) });
      socket.data.link = link;
      deps.orchestrator.attachClient(federationId, link);
      return;
    }
  }

  function handleRest(socket: FedSocket, msg: Exclude<ClientEnvelope, { type: 'hello' }>, attachment: unknown): void {
    const { federationId, partnerId } = socket.data;
    if (!socket.data.link) throw new FedmartError('INVALID_MESSAGE', `send "hello" before "${msg.type}"`);
    switch (msg.type) {
      case 'train-result': {
        const bytes = toUint8Array(attachment);
        if (bytes && bytes.byteLength > MAX_ATTACHMENT_BYTES) throw new FedmartError('PAYLOAD_TOO_LARGE', `update of ${bytes.byteLength} bytes exceeds the ${MAX_ATTACHMENT_BYTES}-byte limit`);
        const delta = decodeFloat32(attachment, msg.payload.length);
        deps.orchestrator.acceptTrainResult(federationId, partnerId, msg.roundId, msg.payload.numExamples, msg.payload.metrics, delta);
        return;
      }
      case 'train-error':
        deps.orchestrator.acceptTrainError(federationId, partnerId, msg.roundId, msg.payload.code, msg.payload.message);
        return;
      case 'evaluate-result':
        deps.orchestrator.acceptEvaluation(federationId, partnerId, msg.roundId, msg.payload.numExamples, msg.payload.metrics);
        return;
      case 'train-progress':
        deps.orchestrator.acceptTrainProgress(federationId, partnerId, msg.roundId, msg.payload);
        return;
    }
  }

  /**
   * Protection-layer messages (secure aggregation stages, CKKS key custody and
   * encrypted updates): binary parts arrive as Socket.IO attachments inside
   * the envelope; the whole envelope is parsed with its zod schema first.
   */
  function handleSecure(socket: FedSocket, raw: unknown): void {
    const parsed = SecureClientEnvelopeSchema.safeParse(raw);
    if (!parsed.success) {
      const v = (raw as { v?: unknown } | null)?.v;
      if (v !== undefined && v !== PROTOCOL_VERSION) throw new FedmartError('PROTOCOL_MISMATCH', `client speaks protocol v${String(v)}, this coordinator speaks v${PROTOCOL_VERSION}; upgrade fedmart on one side`);
      throw new FedmartError('INVALID_MESSAGE', `invalid message: ${formatIssues(parsed.error.issues)}`);
    }
    const msg = parsed.data;
    if (!socket.data.link) throw new FedmartError('INVALID_MESSAGE', `send "hello" before "${msg.type}"`);
    const { federationId, partnerId } = socket.data;
    switch (msg.type) {
      case 'secagg-reply':
        deps.orchestrator.acceptSecAggReply(federationId, partnerId, msg.roundId, msg.payload);
        return;
      case 'he-partner-key':
        deps.orchestrator.acceptHePartnerKey(federationId, partnerId, msg.payload.publicKey, msg.payload.signature);
        return;
      case 'he-ready':
        deps.orchestrator.acceptHeReady(federationId, partnerId, msg.payload.keyId);
        return;
      case 'he-wrapped':
        deps.orchestrator.acceptHeWrapped(federationId, partnerId, msg.payload.to, msg.payload.keyId, msg.payload.wrapped, msg.payload.signature);
        return;
      case 'he-mp-key-share':
        deps.orchestrator.acceptHeMpKeyShare(federationId, partnerId, msg.roundId, msg.payload);
        return;
      case 'he-mp-commit':
        deps.orchestrator.acceptHeMpCommit(federationId, partnerId, msg.roundId, msg.payload);
        return;
      case 'he-mp-decryption-share':
        deps.orchestrator.acceptHeMpDecryptionShare(federationId, partnerId, msg.roundId, msg.payload.boxes);
        return;
      case 'he-train-result': {
        const bytes = msg.payload.chunks.reduce((n, c) => n + c.byteLength, 0);
        if (bytes > MAX_ATTACHMENT_BYTES) throw new FedmartError('PAYLOAD_TOO_LARGE', `encrypted update of ${bytes} bytes exceeds the ${MAX_ATTACHMENT_BYTES}-byte limit`);
        deps.orchestrator.acceptHeTrainResult(federationId, partnerId, msg.roundId, msg.payload.length, msg.payload.chunks, msg.payload.metrics, msg.payload.signature);
        return;
      }
    }
  }

  return nsp;
}
