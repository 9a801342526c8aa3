/**
 * One coordinator's cluster membership (issue 15 part 2), the single entry point server.ts calls in
 * cluster mode: the Socket.IO adapter on the shared PostgreSQL (relay.ts), the lease manager
 * competing for every active federation (lease.ts), and the relay forwarding partner messages to
 * each federation's leader. On acquiring a federation it first fails the rounds the previous leader
 * left running (under its own lease), then calls `onAcquired` (resume the schedules); on losing
 * one it calls `onLost` (stop that federation's round at once: its commit would be fenced anyway)
 * and redirects that federation's partners connected here (route.ts). It advertises this
 * coordinator's public URL, so non-leaders can send partners here (route.ts {@link LeaderRouter}).
 */
import type pg from 'pg';
import type { Namespace, Server as IoServer } from 'socket.io';
import { failInterruptedRoundsUnderLease, LeaseManager, type Fence } from './lease.ts';
import { migrateCluster } from './migrations.ts';
import { advertiseCoordinator, checkAdvertiseUrl, LeaderRouter } from './route.ts';
import { attachClusterAdapter, ClusterRelay, type ForwardedMessage, type RelayAck, type RemoteSocket } from './relay.ts';

export interface ClusterNodeOptions {
  pool: pg.Pool;
  io: IoServer;
  /** The partner namespace (/federation). */
  nsp: Namespace;
  coordinatorId: string;
  /** This coordinator's public origin as partners reach it (e.g. https://coord-1.example.com:8080): where non-leaders redirect them. */
  advertiseUrl: string;
  /** The leader's handling of a forwarded partner message. */
  handle: (msg: ForwardedMessage, socket: RemoteSocket) => Promise<RelayAck> | RelayAck;
  onAcquired?: (fence: Fence, failedRounds: string[]) => void | Promise<void>;
  onLost?: (fence: Fence, reason: string) => void;
  log?: (msg: string) => void;
  lease?: { ttlMs?: number; renewMs?: number };
  /** Retry-after of a redirect while no coordinator leads (route.ts REDIRECT_RETRY_MS). */
  redirectRetryMs?: number;
}

export interface ClusterNode {
  readonly leases: LeaseManager;
  readonly relay: ClusterRelay;
  /** Sends partners to their federation's leader: socket.ts's hello calls `router.redirectUnlessLeader(socket, federationId)`. */
  readonly router: LeaderRouter;
  /** Redirect the partners of the federations led here, stop competing and release the leases (a clean shutdown hands over without waiting the TTL). */
  close(): Promise<void>;
}

export async function startClusterNode(o: ClusterNodeOptions): Promise<ClusterNode> {
  const log = o.log ?? (() => undefined);
  const advertiseUrl = checkAdvertiseUrl(o.advertiseUrl);
  await migrateCluster(o.pool);
  await advertiseCoordinator(o.pool, o.coordinatorId, advertiseUrl);
  let router: LeaderRouter | null = null;
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
      router?.redirectFederation(o.nsp, fence.federationId, reason);
    },
  }, { ...o.lease, onError: (err) => log(`lease heartbeat: ${(err as Error).message}`) });
  const relay = new ClusterRelay(o.nsp, (id) => leases.leads(id), o.handle);
  router = new LeaderRouter(o.pool, o.coordinatorId, (id) => leases.leads(id), o.redirectRetryMs === undefined ? {} : { retryAfterMs: o.redirectRetryMs });
  await leases.start();
  const close = async () => {
    // A clean shutdown: this coordinator's partners go elsewhere first (a plain disconnect would not bring them back).
    for (const f of leases.held()) router!.redirectFederation(o.nsp, f.federationId, 'it is shutting down');
    await leases.stop(true);
  };
  return { leases, relay, router, close };
}
