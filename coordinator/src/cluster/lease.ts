/**
 * Per-federation leader lease in PostgreSQL (issue 15 part 2): each federation's rounds are led by
 * exactly one coordinator at a time. One row per federation in `fedmart_leases` (PG migration 2):
 * holder (coordinator id), fencing epoch, expires_at. Every change is ONE atomic statement and every
 * time is the database's clock (`clock_timestamp()`), so coordinators' clocks never need to agree:
 *
 * - acquire: `INSERT … ON CONFLICT (federation_id) DO UPDATE … WHERE expires_at < clock_timestamp()
 *   RETURNING epoch`: a fresh row (epoch 1), or a takeover of an expired one (epoch + 1); a live
 *   lease of another holder returns no row.
 * - renew: `UPDATE … SET expires_at = now + TTL WHERE holder = me AND epoch = mine AND expires_at >
 *   clock_timestamp()`: no row (expired, taken over) or an error means the lease is lost, and
 *   {@link LeaseManager} calls `onLost` at once. A watchdog also fires `onLost` when the local
 *   deadline (send time of the last successful renewal + TTL) passes without a renewal answering
 *   (the database unreachable), so a partitioned leader stops before anyone can take over.
 * - fencing: {@link assertFence} runs inside a commit transaction (`SELECT … FOR SHARE` of the lease
 *   row with holder, epoch and expiry): a stale leader's commit fails with CONFLICT. The share lock
 *   makes a takeover's UPDATE wait for an in-flight commit, so a commit is either before the
 *   takeover (the new leader sees it committed) or refused.
 *
 * Bounds (defaults): TTL {@link LEASE_TTL_MS} = 6 s, renewal every {@link LEASE_RENEW_MS} = 2 s, so
 * a leader killed by `kill -9` is replaced after at most TTL + one renew period = 8 s (< 10 s).
 */
import type pg from 'pg';
import { sql, type SQL } from 'drizzle-orm';
import { FedmartError } from '@fedmart/shared/errors';

export const LEASE_TTL_MS = 6000;
export const LEASE_RENEW_MS = 2000;

/** Proof of leadership a commit carries: checked inside the commit transaction. */
export interface Fence { federationId: string; holder: string; epoch: number }

/** Anything that can run a query: a pool, a pool client, or drizzle's node-postgres session. */
export interface Queryable { query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> }

/**
 * Take the federation's lease when it is free or expired.
 * @returns the fence (new epoch), or null when another coordinator (or this one) holds a live lease
 */
export async function acquireLease(db: Queryable, federationId: string, holder: string, ttlMs = LEASE_TTL_MS): Promise<Fence | null> {
  const r = await db.query<{ epoch: string }>(
    `INSERT INTO fedmart_leases (federation_id, holder, epoch, acquired_at, expires_at)
     VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp() + $3 * interval '1 millisecond')
     ON CONFLICT (federation_id) DO UPDATE SET holder = excluded.holder, epoch = fedmart_leases.epoch + 1, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
     WHERE fedmart_leases.expires_at < clock_timestamp()
     RETURNING epoch`, [federationId, holder, ttlMs]);
  return r.rows[0] ? { federationId, holder, epoch: Number(r.rows[0].epoch) } : null;
}

/** Extend a live lease. @returns false when it expired or changed hands (the caller must stop leading) */
export async function renewLease(db: Queryable, fence: Fence, ttlMs = LEASE_TTL_MS): Promise<boolean> {
  const r = await db.query(
    `UPDATE fedmart_leases SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
     WHERE federation_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`, [fence.federationId, fence.holder, fence.epoch, ttlMs]);
  return (r.rowCount ?? 0) > 0;
}

/** Give a lease up (clean shutdown): expire it now, so the next coordinator takes over without waiting the TTL. */
export async function releaseLease(db: Queryable, fence: Fence): Promise<void> {
  await db.query('UPDATE fedmart_leases SET expires_at = clock_timestamp() - interval \'1 millisecond\' WHERE federation_id = $1 AND holder = $2 AND epoch = $3', [fence.federationId, fence.holder, fence.epoch]);
}

/** The lease row as stored (null: never leased). */
export async function readLease(db: Queryable, federationId: string): Promise<{ holder: string; epoch: number; expiresInMs: number } | null> {
  const r = await db.query<{ holder: string; epoch: string; ms: string }>('SELECT holder, epoch, (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint AS ms FROM fedmart_leases WHERE federation_id = $1', [federationId]);
  const row = r.rows[0];
  return row ? { holder: row.holder, epoch: Number(row.epoch), expiresInMs: Number(row.ms) } : null;
}

/**
 * Inside a transaction (drizzle's node-postgres `tx`): refuse unless `fence` is still the live lease
 * (holder, epoch, not expired), and hold a share lock on the row until the transaction ends (a
 * takeover waits for this commit). PgStore.commitRound calls it when the commit carries a fence.
 * @throws FedmartError CONFLICT naming the stale epoch
 */
export async function assertFence(tx: { execute(q: SQL): Promise<{ rowCount: number | null }> }, fence: Fence): Promise<void> {
  const r = await tx.execute(sql`SELECT 1 FROM fedmart_leases WHERE federation_id = ${fence.federationId} AND holder = ${fence.holder} AND epoch = ${fence.epoch} AND expires_at > clock_timestamp() FOR SHARE`);
  if (!r.rowCount) throw new FedmartError('CONFLICT', `coordinator ${fence.holder} no longer leads federation ${fence.federationId} (lease epoch ${fence.epoch} expired or taken over); the round is not committed, the current leader runs the next one`);
}

/**
 * Mark the federation's unfinished rounds failed, under the caller's lease (a new leader after a
 * takeover): the rounds the previous leader was running when it died. One statement; nothing when
 * the fence is stale.
 * @returns the failed round ids
 */
export async function failInterruptedRoundsUnderLease(db: Queryable, fence: Fence): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `UPDATE rounds SET phase = 'failed', reason = $4, updated_at = $5, ended_at = $5
     WHERE federation_id = $1 AND phase NOT IN ('committed', 'failed')
       AND EXISTS (SELECT 1 FROM fedmart_leases l WHERE l.federation_id = $1 AND l.holder = $2 AND l.epoch = $3 AND l.expires_at > clock_timestamp())
     RETURNING id`,
    [fence.federationId, fence.holder, fence.epoch, `interrupted: its coordinator lost the federation's lease (epoch ${fence.epoch - 1}); ${fence.holder} took over`, Date.now()]);
  return r.rows.map((x) => x.id);
}

export interface LeaseEvents {
  /**
   * This coordinator won the federation's lease (after a takeover: fail its interrupted rounds, continue
   * its schedules). {@link LeaseManager.leads} turns true only once this resolves; if it throws, the
   * lease is released again (onLost is called, so partial work is undone) and a later heartbeat retries.
   */
  onAcquired?: (fence: Fence) => void | Promise<void>;
  /** This coordinator must stop leading now (renewal refused, failed, its local deadline passed, or onAcquired threw). */
  onLost?: (fence: Fence, reason: string) => void;
}

/** A lease this coordinator holds; `ready` once its onAcquired resolved (only then does it lead). */
interface Held { fence: Fence; deadline: NodeJS.Timeout; ready: boolean }

/**
 * Holds and renews this coordinator's leases and competes for the others' on a heartbeat.
 * `federations()` says which federations to compete for (e.g. every active one).
 *
 * A won lease is held (renewed, fenced) from the moment the database grants it, but the federation
 * counts as led ({@link leads}, {@link fence}, {@link held}) only after `onAcquired` resolved: until the
 * interrupted round is failed, nothing may run or accept that federation's messages. onAcquired runs
 * beside the heartbeat, so a slow takeover never delays the renewal of other leases (or its own).
 */
export class LeaseManager {
  readonly #held = new Map<string, Held>();
  readonly #takeovers = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #beat: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(
    readonly db: Queryable,
    readonly coordinatorId: string,
    readonly federations: () => Promise<string[]>,
    readonly events: LeaseEvents = {},
    readonly opts: { ttlMs?: number; renewMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    const ttl = opts.ttlMs ?? LEASE_TTL_MS, renew = opts.renewMs ?? LEASE_RENEW_MS;
    if (!(renew > 0 && ttl > 2 * renew)) throw new FedmartError('CONFIG_ERROR', `lease TTL ${ttl} ms must exceed two renew periods (${renew} ms): a renewal may be late by one period`);
  }

  get ttlMs() { return this.opts.ttlMs ?? LEASE_TTL_MS; }
  get renewMs() { return this.opts.renewMs ?? LEASE_RENEW_MS; }

  /** The fence of a federation this coordinator leads (its onAcquired resolved), else undefined. */
  fence(federationId: string): Fence | undefined {
    const h = this.#held.get(federationId);
    return h?.ready ? h.fence : undefined;
  }
  /** Whether this coordinator leads the federation now: lease held and its onAcquired resolved. */
  leads(federationId: string): boolean { return this.fence(federationId) !== undefined; }
  held(): Fence[] { return [...this.#held.values()].filter((h) => h.ready).map((h) => h.fence); }

  /** First heartbeat now (resolves once its takeovers' onAcquired settled), then every renew period. */
  start(): Promise<void> {
    this.#timer = setInterval(() => void this.heartbeat(), this.renewMs);
    this.#timer.unref();
    return this.heartbeat();
  }

  /**
   * One heartbeat (serialized): renew what is held, then try to acquire the rest.
   * @returns resolves when the beat and the onAcquired of every lease it won have settled
   */
  heartbeat(): Promise<void> {
    const won: Promise<void>[] = [];
    this.#beat = this.#beat.then(() => this.#once(won)).catch((err) => this.opts.onError?.(err));
    return this.#beat.then(() => Promise.all(won)).then(() => undefined);
  }

  async #once(won: Promise<void>[]): Promise<void> {
    if (this.#stopped) return;
    for (const { fence } of [...this.#held.values()]) {
      const sent = Date.now();
      let ok = false, reason = 'the lease expired or another coordinator took it over';
      try {
        ok = await withTimeout(renewLease(this.db, fence, this.ttlMs), this.ttlMs, 'the renewal');
      } catch (err) {
        reason = `renewing failed: ${(err as Error).message}`;
      }
      if (ok) this.#arm(fence, sent);
      else this.#lose(fence, reason);
    }
    for (const federationId of await this.federations()) {
      if (this.#stopped || this.#held.has(federationId)) continue;
      const sent = Date.now();
      const fence = await withTimeout(acquireLease(this.db, federationId, this.coordinatorId, this.ttlMs), this.ttlMs, 'acquiring');
      // A lease won by a statement that answered after its own TTL is already void: the deadline below fires at once.
      if (!fence) continue;
      this.#arm(fence, sent);
      const t = this.#takeOver(fence);
      this.#takeovers.add(t);
      void t.finally(() => this.#takeovers.delete(t));
      won.push(t);
    }
  }

  /** Run onAcquired for a lease just won; lead only once it resolved, give the lease back if it threw. */
  async #takeOver(fence: Fence): Promise<void> {
    let failure: unknown = null;
    try {
      await this.events.onAcquired?.(fence);
    } catch (err) {
      failure = err;
    }
    const h = this.#held.get(fence.federationId);
    const still = h !== undefined && h.fence.epoch === fence.epoch;
    if (failure === null && still && !this.#stopped) {
      h.ready = true;
      return;
    }
    if (failure !== null) {
      this.opts.onError?.(new FedmartError('INTERNAL', `taking over federation ${fence.federationId} (lease epoch ${fence.epoch}) failed: ${(failure as Error).message ?? String(failure)}; lease released, a later heartbeat retries`, { cause: failure }));
      if (still) {
        clearTimeout(h.deadline);
        this.#held.delete(fence.federationId);
        await releaseLease(this.db, fence).catch((err) => this.opts.onError?.(err));
      }
      this.events.onLost?.(fence, `taking over failed: ${(failure as Error).message ?? String(failure)}`);
    } else if (!still) {
      // Lost while onAcquired ran (#lose said nothing then): undo what onAcquired started.
      this.events.onLost?.(fence, 'the lease ran out or was taken over while taking over');
    }
  }

  /** (Re)arm the local deadline: the lease runs out TTL after the renewal was SENT (its DB time is later). */
  #arm(fence: Fence, sentAt: number): void {
    const prev = this.#held.get(fence.federationId);
    if (prev) clearTimeout(prev.deadline);
    const deadline = setTimeout(() => this.#lose(fence, 'no renewal answered before the lease ran out'), Math.max(0, sentAt + this.ttlMs - Date.now()));
    deadline.unref();
    this.#held.set(fence.federationId, { fence, deadline, ready: prev?.ready ?? false });
  }

  #lose(fence: Fence, reason: string): void {
    const h = this.#held.get(fence.federationId);
    if (!h || h.fence.epoch !== fence.epoch) return;
    clearTimeout(h.deadline);
    this.#held.delete(fence.federationId);
    // A lease lost before its onAcquired resolved is reported by #takeOver, once onAcquired is done.
    if (h.ready) this.events.onLost?.(fence, reason);
  }

  /**
   * Stop competing; `release` expires the held leases so another coordinator takes over at once
   * (a clean shutdown), otherwise they run out after the TTL. Waits for takeovers in progress.
   */
  async stop(release = true): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#beat;
    await Promise.all([...this.#takeovers]);
    for (const { fence, deadline } of [...this.#held.values()]) {
      clearTimeout(deadline);
      this.#held.delete(fence.federationId);
      if (release) await releaseLease(this.db, fence).catch(() => undefined);
    }
  }
}

/** A database call that hangs (partition) must not stall the heartbeat forever: give up after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
