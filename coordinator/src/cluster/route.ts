/**
 * Partners go to their federation's leader (issue 15, several coordinators). Relaying every partner
 * message through @socket.io/postgres-adapter costs a database row and a NOTIFY read by every
 * coordinator per message over 8000 bytes (each model send, each update), which `fedmart bench scale`
 * measured at 6–9× one server's round at 200 partners × 100k parameters. So a partner talks to the
 * coordinator that leads its federation, and the adapter carries only control and portal events:
 *
 * - every coordinator advertises its public URL (`fedmart_coordinators`, cluster/migrations.ts);
 * - a coordinator that receives a partner's hello for a federation it does not lead answers with a
 *   `redirect` ({@link LeaderRedirectSchema}): the lease holder's URL, or none and a retry-after while
 *   no coordinator leads it (a takeover under way); the partner agent follows it (client-node
 *   leader-redirect.ts) and says hello again there, and goes back to the coordinator it was configured
 *   with whenever that connection drops (the leader died: the survivor takes the lease and welcomes it);
 * - a coordinator that loses a lease sends that federation's partners connected to it a redirect with
 *   a retry-after (they come back through any coordinator to the new leader).
 *
 * A load balancer routing partners by federation (e.g. a header or path per federation) makes the
 * redirect rare; without one it costs a partner one extra connection.
 */
import type { Namespace } from 'socket.io';
import { FedmartError } from '@fedmart/shared/errors';
import type { LeaderRedirect } from '@fedmart/shared/protocol';
import type { Queryable } from './lease.ts';

/** How long a partner waits before asking again while no coordinator leads its federation. */
export const REDIRECT_RETRY_MS = 1000;
/** A redirected partner leaves by itself; one still connected after this long is disconnected. */
export const REDIRECT_GRACE_MS = 10_000;

/**
 * Check an advertised URL: an http(s) origin without a path (Socket.IO's path is the default one).
 * @returns the origin without a trailing slash
 * @throws FedmartError CONFIG_ERROR naming the URL and what to give instead
 */
export function checkAdvertiseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FedmartError('CONFIG_ERROR', `cluster: advertised URL "${url.slice(0, 80)}" is not a URL; give the address partners reach this coordinator at, e.g. https://coord-1.example.com:8080`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new FedmartError('CONFIG_ERROR', `cluster: advertised URL "${url.slice(0, 80)}" must be an http(s) origin without a path or query (partners connect to its /federation namespace), e.g. https://coord-1.example.com:8080`);
  }
  return u.origin;
}

/**
 * Record (or update) this coordinator's public URL.
 * @param db - the coordinators' PostgreSQL (cluster tables migrated)
 */
export async function advertiseCoordinator(db: Queryable, coordinatorId: string, url: string): Promise<void> {
  await db.query(
    `INSERT INTO fedmart_coordinators (coordinator_id, url, advertised_at) VALUES ($1, $2, clock_timestamp())
     ON CONFLICT (coordinator_id) DO UPDATE SET url = excluded.url, advertised_at = excluded.advertised_at`, [coordinatorId, checkAdvertiseUrl(url)]);
}

/** The federation's lease holder by the database's clock, with its advertised URL (null: never leased). */
export async function readLeader(db: Queryable, federationId: string): Promise<{ holder: string; live: boolean; url: string | null } | null> {
  const r = await db.query<{ holder: string; live: boolean; url: string | null }>(
    `SELECT l.holder, l.expires_at > clock_timestamp() AS live, c.url
     FROM fedmart_leases l LEFT JOIN fedmart_coordinators c ON c.coordinator_id = l.holder
     WHERE l.federation_id = $1`, [federationId]);
  return r.rows[0] ?? null;
}

/** A partner socket as route.ts needs it (a Socket.IO server socket fits). */
export interface RoutableSocket {
  emit(event: 'redirect', r: LeaderRedirect): unknown;
  disconnect(close?: boolean): unknown;
}

export class LeaderRouter {
  /**
   * @param db - the coordinators' PostgreSQL
   * @param coordinatorId - this coordinator
   * @param leads - whether this coordinator leads a federation now (LeaseManager.leads: lease held and taken over)
   */
  constructor(
    readonly db: Queryable,
    readonly coordinatorId: string,
    readonly leads: (federationId: string) => boolean,
    readonly opts: { retryAfterMs?: number; graceMs?: number } = {},
  ) {}

  /**
   * Where a partner of `federationId` should go, seen from this coordinator (which does not lead it).
   * @returns the redirect: the live leader's URL, or none and a retry-after
   */
  async redirectFor(federationId: string): Promise<LeaderRedirect> {
    const retryAfterMs = this.opts.retryAfterMs ?? REDIRECT_RETRY_MS;
    const l = await readLeader(this.db, federationId);
    if (l && l.live && l.holder !== this.coordinatorId && l.url !== null) {
      return { federationId, leader: l.holder, url: l.url, retryAfterMs: 0, reason: `coordinator ${l.holder} leads federation ${federationId}` };
    }
    const why = !l || !l.live ? 'no coordinator leads it right now (a takeover is under way)'
      : l.holder === this.coordinatorId ? 'this coordinator is still taking it over'
      : `its leader ${l.holder} advertised no URL`;
    return { federationId, leader: null, url: null, retryAfterMs, reason: `federation ${federationId}: ${why}; retry in ${retryAfterMs} ms` };
  }

  /**
   * The hook of a partner's hello: when this coordinator does not lead the federation, send the
   * partner a `redirect` and return true (the caller stops handling the hello: no welcome, no
   * attach); the socket is dropped if the partner has not left after the grace period.
   * @returns false when this coordinator leads the federation (handle the hello as usual)
   */
  async redirectUnlessLeader(socket: RoutableSocket, federationId: string): Promise<boolean> {
    if (this.leads(federationId)) return false;
    socket.emit('redirect', await this.redirectFor(federationId));
    setTimeout(() => socket.disconnect(true), this.opts.graceMs ?? REDIRECT_GRACE_MS).unref();
    return true;
  }

  /**
   * After losing a federation's lease: send its partners connected HERE a redirect with a retry-after
   * (not through the adapter: the new leader's partners are not to be touched).
   * @returns how many sockets were told
   */
  redirectFederation(nsp: Namespace, federationId: string, reason: string): number {
    const retryAfterMs = this.opts.retryAfterMs ?? REDIRECT_RETRY_MS;
    const room = `fed:${federationId}`;
    const here = [...nsp.sockets.values()].filter((s) => s.rooms.has(room));
    const r: LeaderRedirect = { federationId, leader: null, url: null, retryAfterMs, reason: `coordinator ${this.coordinatorId} no longer leads federation ${federationId} (${reason}); reconnect in ${retryAfterMs} ms` };
    for (const s of here) {
      s.emit('redirect', r);
      setTimeout(() => s.disconnect(true), this.opts.graceMs ?? REDIRECT_GRACE_MS).unref();
    }
    return here.length;
  }
}
