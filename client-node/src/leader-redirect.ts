/**
 * A partner's side of leader routing (issue 15, several coordinators; the coordinator's side is
 * coordinator/src/cluster/route.ts): a coordinator that does not lead this partner's federation
 * answers its hello with a `redirect` ({@link LeaderRedirectSchema}); the agent connects to the
 * leader's URL and says hello again there (its `connect` handler does that on every connection), or,
 * when no coordinator leads yet, waits the retry-after and asks the coordinator it was configured with.
 *
 * Whenever a connection drops (the leader died or restarted), Socket.IO's own reconnection goes back
 * to a configured coordinator (`homeUrl`: any coordinator, or the load balancer in front of them),
 * which sends the partner on to whoever leads now. So leader loss needs no operator action. Without a
 * load balancer, give every coordinator (`fallbackUrls`): reconnection attempt k goes to home URL
 * k mod n (the configured one first), so a partner whose configured coordinator was the one killed
 * reaches a survivor on its second attempt, and the survivor's redirect or welcome keeps it there.
 *
 * More than `maxRedirects` redirects in a row, with no welcome and no failed connection between them,
 * is a loop (coordinators advertising wrong URLs): before the first welcome the agent gives up with a
 * clear error; after it, it pauses and starts again from the configured coordinator.
 */
import type { Socket } from 'socket.io-client';
import { FedmartError } from '@fedmart/shared/errors';
import { FEDERATION_NAMESPACE, LeaderRedirectSchema, MAX_LEADER_REDIRECTS, formatIssues, type LeaderRedirect } from '@fedmart/shared/protocol';

/** The pause after a redirect loop, before starting again from the configured coordinator. */
export const REDIRECT_LOOP_PAUSE_MS = 10_000;

export interface LeaderRedirects {
  /** True from a redirect until the next connection: a hello that failed meanwhile failed because this partner left. */
  redirecting(): boolean;
  /** The coordinator origin this partner is connected (or connecting) to. */
  currentUrl(): string;
  /** Stop following (the agent closes). */
  stop(): void;
}

/**
 * Make `socket` follow leader redirects.
 * @param socket - the agent's socket on `<homeUrl>/federation` (before its first connection)
 * @param o.homeUrl - the configured coordinator origin (no trailing slash)
 * @param o.fallbackUrls - further coordinator origins (or load balancers), tried in turn on reconnection attempts
 * @param o.giveUp - called on a redirect loop with the error; return true to stop for good (the agent was never welcomed)
 * @returns the routing state the agent consults
 */
export function followLeaderRedirects(socket: Socket, o: { homeUrl: string; fallbackUrls?: ReadonlyArray<string>; maxRedirects?: number; log?: (msg: string) => void; giveUp?: (err: FedmartError) => boolean; loopPauseMs?: number }): LeaderRedirects {
  const log = o.log ?? (() => undefined);
  const homes = [o.homeUrl, ...(o.fallbackUrls ?? []).map((u) => u.replace(/\/+$/, ''))].filter((u, i, all) => all.indexOf(u) === i);
  let home = homes[0]!;
  const max = o.maxRedirects ?? MAX_LEADER_REDIRECTS;
  // Socket.IO's Manager (re)opens its engine on `uri` (socket.io-client 4: Manager.open → new Engine(this.uri, …));
  // pointing it elsewhere is how one socket, with all the agent's handlers on it, moves to another coordinator.
  const manager = socket.io as unknown as { uri: string };
  let current = o.homeUrl;
  let inARow = 0;
  let redirecting = false;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const moveTo = (origin: string, afterMs: number) => {
    redirecting = true;
    socket.disconnect();
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (stopped) return;
      current = origin;
      manager.uri = origin + FEDERATION_NAMESPACE;
      socket.connect();
    }, afterMs);
  };

  socket.on('connect', () => { redirecting = false; });
  socket.on('connect_error', () => { inARow = 0; });
  socket.on('welcome', () => { inARow = 0; });
  // A dropped connection reconnects through a configured coordinator, never to a leader that may be gone;
  // with fallbacks, attempt k tries home k mod n, so a dead configured coordinator costs one attempt.
  socket.io.on('reconnect_attempt', (attempt: number) => {
    const next = homes[(Math.max(1, attempt) - 1) % homes.length]!;
    if (next !== home) log(`reconnecting through ${next}`);
    home = next;
    current = home;
    manager.uri = home + FEDERATION_NAMESPACE;
  });
  (socket as unknown as { on(ev: 'redirect', fn: (raw: unknown) => void): void }).on('redirect', (raw) => {
    const parsed = LeaderRedirectSchema.safeParse(raw);
    if (!parsed.success) {
      log(`ignored a malformed redirect from ${current}: ${formatIssues(parsed.error.issues)}`);
      return;
    }
    const r: LeaderRedirect = parsed.data;
    if (++inARow > max) {
      inARow = 0;
      const err = new FedmartError('UNAVAILABLE', `redirected ${max + 1} times in a row without being welcomed (last: ${current} → ${r.url ?? 'no leader'}): the coordinators disagree on who leads federation ${r.federationId}; check each coordinator's advertised URL (--advertise-url) and that they share one PostgreSQL`);
      log(err.message);
      if (o.giveUp?.(err)) {
        stopped = true;
        socket.disconnect();
        return;
      }
      moveTo(home, o.loopPauseMs ?? REDIRECT_LOOP_PAUSE_MS);
      return;
    }
    const to = r.url === null ? home : r.url.replace(/\/+$/, '');
    log(r.url === null ? `${r.reason}; asking ${to} again in ${r.retryAfterMs} ms` : `${r.reason}: moving to ${to}`);
    moveTo(to, r.url === null ? r.retryAfterMs : 0);
  });
  return {
    redirecting: () => redirecting,
    currentUrl: () => current,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
