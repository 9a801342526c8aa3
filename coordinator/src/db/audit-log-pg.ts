/**
 * The audit log (audit-log.ts) on PostgreSQL: the same RFC 6962 leaves (`auditLeafHash`), the same
 * signed tree heads (`treeHeadMessage`, Ed25519 with the log key) and the same verification
 * (`verifyAuditLog`), from `@fedmart/shared/audit-log`. Several coordinators may append to one
 * database, so an append takes `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE` (conflicts with
 * itself, not with readers), assigns `seq = size + 1` explicitly (a sequence would leave gaps on
 * rollback, and the tree needs 1..n), catches its cached Merkle frontier up with rows other
 * coordinators appended, then inserts the entry and its signed head in the same transaction.
 */
import { asc, desc, eq, gt, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { bytesToHex } from '@fedmart/shared/crypto/bytes';
import { signEd25519, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { MerkleFrontier } from '@fedmart/shared/crypto/merkle';
import { auditLeafHash, treeHeadMessage, verifyAuditLog, type AuditEntry, type AuditVerification, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { FedmartError } from '@fedmart/shared/errors';
import * as t from './schema-pg.ts';
import { auditConsistencyOf, auditInclusionOf, auditStartRefusal, type AuditConsistency, type AuditInclusion } from './audit-log.ts';

export type PgDb = NodePgDatabase<typeof t>;
/** A transaction of {@link PgDb}. */
export type PgTx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

export class PgAuditLog {
  #frontier: MerkleFrontier | null = null;

  constructor(private readonly db: PgDb, private readonly key: Ed25519KeyPair | null) {}

  async entries(): Promise<AuditEntry[]> {
    return this.db.select().from(t.auditLog).orderBy(asc(t.auditLog.seq));
  }

  /**
   * Append an entry and its signed head in one transaction.
   * @returns the entry's sequence number and the new head
   */
  async append(actor: string, action: string, subject: string | null, data: unknown): Promise<{ seq: number; head: SignedTreeHead }> {
    try {
      return await this.db.transaction((tx) => this.appendIn(tx, actor, action, subject, data));
    } catch (err) {
      this.forgetFrontier();
      throw err;
    }
  }

  /**
   * Append an entry and its signed head inside the caller's transaction `tx` (it holds the log's
   * table lock until it ends). A caller whose transaction rolls back calls {@link forgetFrontier}.
   * @returns the entry's sequence number and the new head
   */
  async appendIn(tx: PgTx, actor: string, action: string, subject: string | null, data: unknown): Promise<{ seq: number; head: SignedTreeHead }> {
    const key = this.key;
    if (!key) throw new FedmartError('INTERNAL', 'the audit log was opened without the log key and cannot sign tree heads');
    await tx.execute(sql`LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE`);
    let frontier = this.#frontier ?? new MerkleFrontier();
    // The cached frontier must be a tree that was committed: one whose head is stored (a frontier
    // holding the leaves of a transaction that rolled back is rebuilt from the rows).
    if (frontier.size > 0) {
      const [stored] = await tx.select({ root: t.auditTreeHeads.root }).from(t.auditTreeHeads).where(eq(t.auditTreeHeads.size, frontier.size));
      if (stored?.root !== bytesToHex(frontier.root())) frontier = new MerkleFrontier();
    }
    this.#frontier = frontier;
    for (const e of await tx.select().from(t.auditLog).where(gt(t.auditLog.seq, frontier.size)).orderBy(asc(t.auditLog.seq))) frontier.append(auditLeafHash(e));
    const row = { seq: frontier.size + 1, at: Date.now(), actor, action, subject, data: data === null || data === undefined ? null : JSON.stringify(data) };
    await tx.insert(t.auditLog).values(row);
    frontier.append(auditLeafHash(row));
    const size = frontier.size;
    const root = bytesToHex(frontier.root());
    const timestamp = Date.now();
    const head = { size, root, timestamp, publicKey: bytesToHex(key.publicKey), signature: bytesToHex(signEd25519(key.secretKey, treeHeadMessage({ size, root, timestamp }))) };
    await tx.insert(t.auditTreeHeads).values(head);
    return { seq: row.seq, head };
  }

  /** Drop the cached Merkle frontier (rebuilt from the rows on the next append). */
  forgetFrontier(): void {
    this.#frontier = null;
  }

  async newestHead(): Promise<SignedTreeHead | null> {
    const [r] = await this.db.select().from(t.auditTreeHeads).orderBy(desc(t.auditTreeHeads.size)).limit(1);
    return r ?? null;
  }

  /** Verify every stored entry against every stored head. */
  async verify(trusted: SignedTreeHead | null = null): Promise<AuditVerification> {
    const heads = await this.db.select().from(t.auditTreeHeads).orderBy(asc(t.auditTreeHeads.size));
    return verifyAuditLog({ entries: await this.entries(), heads, trusted });
  }

  /** Stored heads with size > after, oldest first. */
  async listHeads(after = 0, limit = 1000): Promise<SignedTreeHead[]> {
    return this.db.select().from(t.auditTreeHeads).where(gt(t.auditTreeHeads.size, after)).orderBy(asc(t.auditTreeHeads.size)).limit(limit);
  }

  /** Consistency proof (RFC 6962 §2.1.2) from the stored rows, as SQLite's log computes it. */
  async consistency(from: number, to?: number): Promise<AuditConsistency> {
    return auditConsistencyOf(await this.entries(), await this.newestHead(), from, to);
  }

  /** Inclusion proof (RFC 6962 §2.1.1) from the stored rows, as SQLite's log computes it. */
  async inclusion(seq: number, size?: number): Promise<AuditInclusion> {
    return auditInclusionOf(await this.entries(), await this.newestHead(), seq, size);
  }

  /**
   * At start-up: rows that no longer reproduce the newest signed head are refused (signing new heads over
   * them would bless the rewrite). PostgreSQL databases are created with signed heads from the first entry.
   * @throws FedmartError CONFIG_ERROR naming the first bad entry
   */
  async checkAtStart(): Promise<void> {
    const newest = await this.newestHead();
    if (newest === null) return;
    const v = await this.verify(newest);
    if (!v.ok) throw auditStartRefusal(v, v.entries, newest.size, 'database', 'fedmart audit verify');
    this.#frontier = null; // rebuilt from the verified rows on the next append
  }
}
