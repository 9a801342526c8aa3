/**
 * The coordinator's vertical FL relay, Socket.IO namespace `/vertical`
 * (`shared/protocol-vertical-relay`): the parties of one vertical job (a
 * federation created with `mode: 'vertical'`; the federation id is the job
 * id) connect with their enrollment tokens, announce X25519 public keys, and
 * send `shared/protocol-vertical` messages that the relay routes to the
 * addressed party of the same job.
 *
 * What the relay checks and sees: the header (zod: routing fields and the
 * type's body schema, which carries only sizes, steps and hyper-parameters),
 * that `header.from` is the sender's authenticated party name and
 * `header.session` the job id, that the recipient is a connected party of the
 * job, and the size of the parts. The parts themselves (blinded IDs, partial
 * logits, CKKS ciphertexts, masked gradients, embeddings) are sealed end to
 * end by the parties with ChaCha20-Poly1305 under an X25519 + HKDF key; the
 * relay forwards them as opaque attachments.
 *
 * Trust: the coordinator is honest-but-curious. It is trusted to relay the
 * public keys faithfully — a malicious relay could substitute its own keys
 * and read the parts (there is no out-of-band key authentication yet) — and
 * it learns the traffic pattern (who talks to whom, message types, sizes).
 *
 * Invalid input gets an error ack and changes nothing. The job start (first
 * party connected) and end (last party left) are written to the audit log.
 */
import type { Namespace, Server as IoServer, Socket } from 'socket.io';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { formatIssues, type Ack } from '@fedmart/shared/protocol';
import { VerticalBodySchemas, VerticalHeaderSchema } from '@fedmart/shared/protocol-vertical';
import {
  MAX_VERTICAL_RELAY_BYTES, RelayOutboundFrameSchema, VERTICAL_SESSION, VERTICAL_NAMESPACE, VERTICAL_PUBLIC_KEY_BYTES,
  type RelayPeerKey, type VerticalRelayClientEvents, type VerticalRelayServerEvents,
} from '@fedmart/shared/protocol-vertical-relay';
import type { TokenAuthority } from './auth.ts';
import { authenticateEnrollment, handshakeError } from './socket-auth.ts';
import { answerAck } from './ack.ts';
import type { AsyncStore } from './db/store-api.ts';
import type { VerticalRounds } from './vertical-rounds.ts';

/** Bytes ChaCha20-Poly1305 adds to each sealed part (nonce + tag); a shorter part cannot be a sealed box. */
const SEALED_OVERHEAD_BYTES = 28;
const PARTY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** What a size-only federation's sessions may carry: PSI cardinality (every value blinded by a key its receiver lacks) and the end of a session. */
const SIZE_ONLY_TYPES: ReadonlySet<string> = new Set(['psica.blinded', 'done', 'error']);

/** Per-socket data set by the handshake middleware. */
export interface VerticalSocketData {
  job: string;
  party: string;
  partnerId: string;
  /** A control connection of a vertical federation between real partners (`vertical-rounds.ts`). */
  control?: { federationId: string };
  /** The federation's spec says psi "size": only PSI-cardinality traffic may pass (no ID-revealing PSI, no alignment, no training). */
  sizeOnly?: boolean;
}

type RelaySocket = Socket<VerticalRelayClientEvents, VerticalRelayServerEvents, Record<string, never>, VerticalSocketData>;

interface Job {
  readonly parties: Map<string, { socket: RelaySocket; publicKey?: Uint8Array }>;
  messages: number;
  bytes: number;
  readonly startedAt: number;
}

/** Dependencies of {@link attachVerticalRelay}. */
export interface VerticalRelayDeps {
  store: AsyncStore;
  authority: TokenAuthority;
  log?: (msg: string) => void;
  /** Largest total byte size of one message's parts (default {@link MAX_VERTICAL_RELAY_BYTES}). */
  maxMessageBytes?: number;
  /** Rounds and scoring of vertical federations with a spec (control connections). */
  rounds?: VerticalRounds;
}

/**
 * Attach the vertical relay namespace to a Socket.IO server.
 * @param io - the coordinator's Socket.IO server
 * @param deps - store (enrollments, audit), token authority, optional log and size limit
 * @returns the namespace
 */
export function attachVerticalRelay(io: IoServer, deps: VerticalRelayDeps): Namespace<VerticalRelayClientEvents, VerticalRelayServerEvents, Record<string, never>, VerticalSocketData> {
  const nsp = io.of(VERTICAL_NAMESPACE) as unknown as Namespace<VerticalRelayClientEvents, VerticalRelayServerEvents, Record<string, never>, VerticalSocketData>;
  const log = deps.log ?? (() => {});
  const maxBytes = deps.maxMessageBytes ?? MAX_VERTICAL_RELAY_BYTES;
  const jobs = new Map<string, Job>();

  nsp.use((socket, next) => {
    void (async () => {
      try {
        const enrollment = await authenticateEnrollment(deps, socket.handshake.auth, 'a vertical job');
        const fed = await deps.store.getFederation(enrollment.federationId);
        const config = deps.store.federationConfig(fed);
        if (config.mode !== 'vertical') throw new FedmartError('FORBIDDEN', `federation ${fed.id} is not a vertical job (its config has mode "${config.mode ?? 'horizontal'}"); create the job with config.mode = "vertical"`);
        const party = (await deps.store.getPartner(enrollment.partnerId))?.name ?? enrollment.partnerId;
        if (!PARTY_ID.test(party)) throw new FedmartError('FORBIDDEN', `partner name "${party}" cannot be a vertical party id (expected letters, digits and . _ : - only); enroll the party under such a name`);
        const auth = socket.handshake.auth as { control?: unknown; session?: unknown };
        if (auth.control === true) {
          if (deps.rounds === undefined) throw new FedmartError('UNAVAILABLE', 'this coordinator does not run vertical rounds');
          await deps.rounds.check(fed.id, party);
          socket.data = { job: fed.id, party, partnerId: enrollment.partnerId, control: { federationId: fed.id } };
          next();
          return;
        }
        if (auth.session !== undefined && (typeof auth.session !== 'string' || !VERTICAL_SESSION.test(auth.session))) throw new FedmartError('INVALID_MESSAGE', `vertical relay: auth.session must be lowercase letters, digits and - (1-32), got ${JSON.stringify(auth.session)}`);
        const jobKey = typeof auth.session === 'string' ? `${fed.id}/${auth.session}` : fed.id;
        if (jobs.get(jobKey)?.parties.has(party)) throw new FedmartError('CONFLICT', `party ${party} is already connected to job ${jobKey}; close the other connection first`);
        socket.data = { job: jobKey, party, partnerId: enrollment.partnerId, ...(config.vertical?.psi === 'size' ? { sizeOnly: true } : {}) };
        next();
      } catch (err) {
        next(handshakeError(err));
      }
    })();
  });

  nsp.on('connection', (socket: RelaySocket) => {
    const { job: jobId, party } = socket.data;
    if (socket.data.control !== undefined) {
      try {
        deps.rounds!.attach(socket as unknown as Socket, socket.data.control.federationId, party);
        socket.emit('welcome', { job: jobId, party, peers: [] });
      } catch (err) {
        // Lost a race with another control connection of the same party between handshake and connection.
        log(`vertical relay: control connection of ${party} refused: ${toFedmartError(err).message}`);
        socket.disconnect(true);
      }
      return;
    }
    let job = jobs.get(jobId);
    if (job === undefined) {
      job = { parties: new Map(), messages: 0, bytes: 0, startedAt: Date.now() };
      jobs.set(jobId, job);
      deps.store.audit(party, 'vertical.job.started', jobId, { party }).catch((err: unknown) => log(`vertical relay: could not audit the start of job ${jobId}: ${toFedmartError(err).message}`));
    }
    if (job.parties.has(party)) {
      // Lost a race with another connection of the same party between handshake and connection.
      socket.disconnect(true);
      return;
    }
    const j = job;
    j.parties.set(party, { socket });
    log(`vertical party ${party} joined job ${jobId}`);
    const peers: RelayPeerKey[] = [];
    for (const [name, p] of j.parties) if (name !== party && p.publicKey) peers.push({ party: name, publicKey: p.publicKey });
    socket.emit('welcome', { job: jobId, party, peers });

    // A message is relayed synchronously (in order); only an error path reads the store (async).
    const respond = (ack: unknown, fn: () => void | Promise<void>) => answerAck(ack, fn, (e) => {
      if (e.code === 'INTERNAL') log(`vertical relay: internal error on a message from ${party}: ${(e.cause as Error)?.stack ?? e.message}`);
    });

    socket.on('key', (publicKey: unknown, ack: unknown) =>
      respond(ack, () => {
        if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== VERTICAL_PUBLIC_KEY_BYTES) {
          throw new FedmartError('INVALID_MESSAGE', `vertical key: expected a ${VERTICAL_PUBLIC_KEY_BYTES}-byte X25519 public key, got ${publicKey instanceof Uint8Array ? `${publicKey.byteLength} bytes` : typeof publicKey}`);
        }
        const me = j.parties.get(party)!;
        if (me.publicKey) throw new FedmartError('CONFLICT', 'vertical key: this connection already announced its public key; reconnect to use a new one');
        me.publicKey = new Uint8Array(publicKey);
        for (const [name, p] of j.parties) if (name !== party) p.socket.emit('peer-key', { party, publicKey: me.publicKey });
      }),
    );

    socket.on('vmsg', (raw: unknown, ack: unknown) =>
      respond(ack, () => {
        const f = RelayOutboundFrameSchema.safeParse(raw);
        if (!f.success) throw new FedmartError('INVALID_MESSAGE', `vertical relay: expected { header: string, parts: binary[] }: ${formatIssues(f.error.issues)}`);
        let json: unknown;
        try {
          json = JSON.parse(f.data.header);
        } catch {
          throw new FedmartError('INVALID_MESSAGE', 'vertical relay: the header is not valid JSON; send encodeVerticalMessage output');
        }
        const h = VerticalHeaderSchema.safeParse(json);
        if (!h.success) throw new FedmartError('INVALID_MESSAGE', `vertical relay: invalid header: ${formatIssues(h.error.issues)}`);
        const b = VerticalBodySchemas[h.data.type].safeParse(h.data.body);
        if (!b.success) throw new FedmartError('INVALID_MESSAGE', `vertical relay: invalid ${h.data.type} body: ${formatIssues(b.error.issues)}`);
        if (h.data.from !== party) throw new FedmartError('FORBIDDEN', `vertical relay: header.from is "${h.data.from}" but you are authenticated as "${party}"; send messages as yourself`);
        if (h.data.session !== jobId) throw new FedmartError('INVALID_MESSAGE', `vertical relay: header.session is "${h.data.session}", expected the job id "${jobId}"`);
        if (h.data.to === party) throw new FedmartError('INVALID_MESSAGE', 'vertical relay: a party cannot send a message to itself');
        if (socket.data.sizeOnly && !SIZE_ONLY_TYPES.has(h.data.type)) throw new FedmartError('FORBIDDEN', `vertical relay: federation ${jobId.split('/')[0]} reveals only the PSI size (psi "size"); a ${h.data.type} message would reveal or use aligned customers, so it is not relayed`);
        let total = 0;
        for (const [i, p] of f.data.parts.entries()) {
          if (p.byteLength < SEALED_OVERHEAD_BYTES) throw new FedmartError('INVALID_MESSAGE', `vertical relay: part ${i} has ${p.byteLength} bytes, fewer than a sealed box (${SEALED_OVERHEAD_BYTES}); seal every part end to end`);
          total += p.byteLength;
        }
        if (total > maxBytes) throw new FedmartError('PAYLOAD_TOO_LARGE', `vertical relay: ${total} bytes of parts exceed the ${maxBytes}-byte limit; send smaller batches`);
        const target = j.parties.get(h.data.to);
        if (target === undefined) {
          const to = h.data.to;
          return (async () => {
            const enrolled = (await deps.store.listEnrollments(jobId.split('/')[0]!)).some((e) => e.partnerName === to && e.status !== 'revoked');
            if (enrolled) throw new FedmartError('UNAVAILABLE', `vertical relay: party "${to}" of job ${jobId} is not connected; retry when it is`);
            throw new FedmartError('NOT_FOUND', `vertical relay: no party "${to}" in job ${jobId}; parties connected: ${[...j.parties.keys()].join(', ')}`);
          })();
        }
        j.messages++;
        j.bytes += total;
        target.socket.emit('vmsg', { from: party, header: f.data.header, parts: f.data.parts });
      }),
    );

    socket.on('disconnect', () => {
      if (j.parties.get(party)?.socket !== socket) return;
      j.parties.delete(party);
      log(`vertical party ${party} left job ${jobId}`);
      for (const p of j.parties.values()) p.socket.emit('peer-left', { party });
      if (j.parties.size === 0) {
        jobs.delete(jobId);
        // The database may already be closed when the coordinator shuts down with parties connected.
        const ended = { messages: j.messages, bytes: j.bytes, seconds: Math.round((Date.now() - j.startedAt) / 100) / 10 };
        Promise.resolve().then(() => deps.store.audit(party, 'vertical.job.ended', jobId, ended)).catch((err: unknown) => log(`vertical relay: could not audit the end of job ${jobId}: ${toFedmartError(err).message}`));
      }
    });
  });

  return nsp;
}
