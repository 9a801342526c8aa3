/**
 * Fan-out and forwarding between coordinator processes (issue 15 part 2), over Socket.IO's own
 * `@socket.io/postgres-adapter` (LISTEN/NOTIFY on the shared PostgreSQL; payloads over 8000 bytes or
 * with binary data go through the `socket_io_attachments` table, PG migration 2).
 *
 * - Rooms are shared: `nsp.to('fed:<id>')` / `nsp.to(<socket id>)` reach sockets on every node,
 *   so the leader's broadcasts and its per-partner sends (train, evaluate, secure messages) reach
 *   partners connected to any coordinator; {@link ClusterRelay.remote} is such a per-socket handle.
 * - A partner message arriving at a coordinator that does not lead its federation is forwarded to
 *   the leader with `serverSideEmitWithAck` ({@link ClusterRelay.forward}): every other node
 *   answers, only the one holding the federation's lease (cluster/lease.ts) handles it and answers
 *   with the ack the partner gets; the others answer null. No leader (a takeover in progress): the
 *   partner gets UNAVAILABLE and retries after its reconnect.
 *
 * Sticky sessions: Socket.IO's HTTP long-polling needs every request of one session on one node;
 * partner agents use the websocket transport only, portal users behind a load balancer need
 * sticky sessions (README "PostgreSQL: several coordinators").
 */
import type pg from 'pg';
import type { Namespace, Server as IoServer } from 'socket.io';
import { createAdapter } from '@socket.io/postgres-adapter';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';

/** Adapter heartbeat: a node unheard for {@link ADAPTER_HEARTBEAT_TIMEOUT_MS} is dropped from ack counts. */
export const ADAPTER_HEARTBEAT_MS = 2000;
export const ADAPTER_HEARTBEAT_TIMEOUT_MS = 6000;
export const FORWARD_EVENT = 'fedmart:forward';

/**
 * Share this server's rooms with every coordinator on the database.
 * @param pool - a pool on the coordinators' PostgreSQL (migrated: it holds socket_io_attachments)
 */
export function attachClusterAdapter(io: IoServer, pool: pg.Pool, onError: (err: Error) => void = () => undefined): void {
  io.adapter(createAdapter(pool, { heartbeatInterval: ADAPTER_HEARTBEAT_MS, heartbeatTimeout: ADAPTER_HEARTBEAT_TIMEOUT_MS, errorHandler: onError }));
}

/** A partner message as the receiving coordinator authenticated it, sent on to the federation's leader. */
export interface ForwardedMessage {
  federationId: string;
  /** The partner's socket on the receiving node (reachable from every node through the adapter). */
  socketId: string;
  /** The receiving node's handshake result (partner, enrollment): the leader trusts its peer's authentication. */
  data: Record<string, unknown>;
  envelope: unknown;
  attachment?: Uint8Array;
}

export type RelayAck = { ok: true } | { ok: false; error: { code: string; message: string } };

/** A partner socket on any node. */
export interface RemoteSocket {
  readonly id: string;
  emit(event: string, ...args: unknown[]): void;
  disconnect(): void;
}

export class ClusterRelay {
  /**
   * @param nsp - the namespace partners connect to (with the cluster adapter attached to its server)
   * @param leads - whether this coordinator leads a federation now (LeaseManager.leads)
   * @param handle - the leader's handling of a partner message (the same path a local socket takes)
   */
  constructor(
    readonly nsp: Namespace,
    readonly leads: (federationId: string) => boolean,
    handle: (msg: ForwardedMessage, socket: RemoteSocket) => Promise<RelayAck> | RelayAck,
  ) {
    (nsp as unknown as { on(ev: string, fn: (msg: ForwardedMessage, ack: (a: RelayAck | null) => void) => void): void }).on(FORWARD_EVENT, (msg, ack) => {
      if (!this.leads(msg.federationId)) return ack(null);
      const attachment = msg.attachment === undefined ? undefined : new Uint8Array(msg.attachment);
      Promise.resolve()
        .then(() => handle({ ...msg, ...(attachment ? { attachment } : {}) }, this.remote(msg.socketId)))
        .then(ack, (err) => {
          const e = toFedmartError(err);
          ack({ ok: false, error: { code: e.code, message: e.message } });
        });
    });
  }

  /** A socket by id, wherever it is connected. */
  remote(socketId: string): RemoteSocket {
    return {
      id: socketId,
      emit: (event, ...args) => void (this.nsp.to(socketId).emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
      disconnect: () => this.nsp.in(socketId).disconnectSockets(true),
    };
  }

  /**
   * Send a partner message to the federation's leader and return its ack.
   * @returns the leader's ack, or UNAVAILABLE when no coordinator leads the federation right now
   */
  async forward(msg: ForwardedMessage): Promise<RelayAck> {
    // The callback form keeps the answers that did arrive when a node stays silent (a killed coordinator
    // counts until its adapter heartbeat times out): the leader's answer is among them.
    const answers = await new Promise<(RelayAck | null)[]>((resolve) => {
      (this.nsp as unknown as { serverSideEmit(ev: string, m: ForwardedMessage, cb: (err: Error | null, r: (RelayAck | null)[]) => void): void })
        .serverSideEmit(FORWARD_EVENT, msg, (_err, responses) => resolve(responses ?? []));
    });
    const leader = answers.find((a) => a !== null);
    return leader ?? unavailable(msg.federationId, 'no coordinator leads it right now (a takeover is under way)');
  }
}

function unavailable(federationId: string, why: string): RelayAck {
  const e = new FedmartError('UNAVAILABLE', `federation ${federationId} cannot take the message: ${why}; the partner agent retries after reconnecting`);
  return { ok: false, error: { code: e.code, message: e.message } };
}
