/**
 * One coordinator's cluster membership (issue 15 part 2), the single entry point server.ts calls in
 * cluster mode: the Socket.IO adapter on the shared PostgreSQL (relay.ts), the lease manager
 * competing for every active federation (lease.ts), and the relay forwarding partner messages to
 * each federation's leader. On acquiring a federation it first fails the rounds the previous leader
 * left running (under its own lease), then calls `onAcquired` (resume the schedules); on losing
 * one it calls `onLost` (stop that federation's round at once: its commit would be fenced anyway).
 */
import type pg from 'pg';
import type { Namespace, Server as IoServer } from 'socket.io';
import { failInterruptedRoundsUnderLease, LeaseManager, type Fence } from './lease.ts';
import { attachClusterAdapter, ClusterRelay, type ForwardedMessage, type RelayAck, type RemoteSocket } from './relay.ts';

export interface ClusterNodeOptions {
  pool: pg.Pool;
  io: IoServer;
  /** The partner namespace (/federation). */
  nsp: Namespace;
  coordinatorId: string;
  /** The leader's handling of a forwarded partner message. */
  handle: (msg: ForwardedMessage, socket: RemoteSocket) => Promise<RelayAck> | RelayAck;
  onAcquired?: (fence: Fence, failedRounds: string[]) => void | Promise<void>;
  onLost?: (fence: Fence, reason: string) => void;
  log?: (msg: string) => void;
  lease?: { ttlMs?: number; renewMs?: number };
}

export interface ClusterNode {
  readonly leases: LeaseManager;
  readonly relay: ClusterRelay;
  /** Stop competing and release held leases (a clean shutdown hands over without waiting the TTL). */
  close(): Promise<void>;
}

export async function startClusterNode(o: ClusterNodeOptions): Promise<ClusterNode> {
  const log = o.log ?? (() => undefined);
  attachClusterAdapter(o.io, o.pool, (err) => log(`cluster adapter: ${err.message}`));
  const federations = async () => (await o.pool.query<{ id: string }>("SELECT id FROM federations WHERE status = 'active' ORDER BY id")).rows.map((r) => r.id);
  const leases = new LeaseManager(o.pool, o.coordinatorId, federations, {
    onAcquired: async (fence) => {
      const failed = await failInterruptedRoundsUnderLease(o.pool, fence);
      log(`${o.coordinatorId} leads federation ${fence.federationId} (lease epoch ${fence.epoch})${failed.length ? `; marked interrupted rounds failed: ${failed.join(', ')}` : ''}`);
      await o.onAcquired?.(fence, failed);
    },
    onLost: (fence, reason) => {
      log(`${o.coordinatorId} no longer leads federation ${fence.federationId} (epoch ${fence.epoch}): ${reason}`);
      o.onLost?.(fence, reason);
    },
  }, { ...o.lease, onError: (err) => log(`lease heartbeat: ${(err as Error).message}`) });
  const relay = new ClusterRelay(o.nsp, (id) => leases.leads(id), o.handle);
  await leases.start();
  return { leases, relay, close: () => leases.stop(true) };
}
