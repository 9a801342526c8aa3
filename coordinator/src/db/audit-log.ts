/**
 * The coordinator's side of the verifiable audit log (issue 13, item 4):
 * append-only rows in `audit_log`, one RFC 6962 leaf each, and after every
 * append a tree head signed with the log key, persisted in
 * `audit_tree_heads` in the same transaction. Proofs are computed from the
 * stored rows (not a cache), so what a verifier is shown is what the
 * database holds; the newest signed head is what it must match.
 */
import { asc, desc, eq, gt, sql } from 'drizzle-orm';
import { bytesToHex } from '@fedmart/shared/crypto/bytes';
import { signEd25519, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { MerkleFrontier, consistencyProof, inclusionProof } from '@fedmart/shared/crypto/merkle';
import { auditLeafHash, treeHeadMessage, verifyAuditLog, type AuditEntry, type AuditVerification, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { FedmartError } from '@fedmart/shared/errors';
import type { Db } from './client.ts';
import * as t from './schema.ts';

function headOf(r: t.AuditTreeHeadRow): SignedTreeHead {
  return { size: r.size, root: r.root, timestamp: r.timestamp, publicKey: r.publicKey, signature: r.signature };
}

/** Append, sign, prove and verify the audit log. */
export class AuditLog {
  #frontier: MerkleFrontier | null = null;
  /** The seq of the newest row in #frontier. */
  #lastSeq = 0;

  /**
   * @param db - the coordinator database
   * @param key - the log key; null opens the log read-only (appending throws)
   */
  constructor(private readonly db: Db, private readonly key: Ed25519KeyPair | null) {}

  /** Every stored entry in sequence order. */
  entries(): AuditEntry[] {
    return this.db.select().from(t.auditLog).orderBy(asc(t.auditLog.seq)).all();
  }

  /**
   * The Merkle frontier of the rows as stored now (call it inside the append's write transaction): the cached one
   * while its tree is one that was committed (its root is the stored head of its size), caught up with rows another
   * handle on the same file appended since (a second process, or a second Store in this one); else rebuilt from
   * every row. The PostgreSQL log does the same under its table lock (audit-log-pg.ts).
   */
  #frontierNow(): MerkleFrontier {
    const cached = this.#frontier;
    if (cached && cached.size > 0) {
      const stored = this.db.select({ root: t.auditTreeHeads.root }).from(t.auditTreeHeads).where(eq(t.auditTreeHeads.size, cached.size)).get();
      if (stored?.root !== bytesToHex(cached.root())) this.#frontier = null;
    }
    if (!this.#frontier) [this.#frontier, this.#lastSeq] = [new MerkleFrontier(), 0];
    const f = this.#frontier;
    for (const e of this.db.select().from(t.auditLog).where(gt(t.auditLog.seq, this.#lastSeq)).orderBy(asc(t.auditLog.seq)).all()) {
      f.append(auditLeafHash(e));
      this.#lastSeq = e.seq;
    }
    return f;
  }

  #sign(size: number, root: string): SignedTreeHead {
    if (!this.key) throw new FedmartError('INTERNAL', 'the audit log was opened without the log key and cannot sign tree heads');
    const timestamp = Date.now();
    const signature = bytesToHex(signEd25519(this.key.secretKey, treeHeadMessage({ size, root, timestamp })));
    const head = { size, root, timestamp, publicKey: bytesToHex(this.key.publicKey), signature };
    this.db.insert(t.auditTreeHeads).values(head).run();
    return head;
  }

  /**
   * Append an entry and sign the new tree head, in one transaction.
   * @returns the entry's sequence number and the new head
   */
  append(actor: string, action: string, subject: string | null, data: unknown): { seq: number; head: SignedTreeHead } {
    try {
      return this.db.$client.transaction(() => {
        const frontier = this.#frontierNow();
        const row = { at: Date.now(), actor, action, subject, data: data === null || data === undefined ? null : JSON.stringify(data) };
        const seq = Number(this.db.insert(t.auditLog).values(row).run().lastInsertRowid);
        frontier.append(auditLeafHash({ seq, ...row }));
        this.#lastSeq = seq;
        return { seq, head: this.#sign(frontier.size, bytesToHex(frontier.root())) };
      }).immediate();
    } catch (err) {
      this.#frontier = null; // rebuilt from the rows on the next append
      throw err;
    }
  }

  /**
   * Drop the cached Merkle frontier (rebuilt from the rows on the next append): call it when a
   * transaction that appended entries rolled back, since the frontier already holds their leaves.
   */
  forgetFrontier(): void {
    this.#frontier = null;
  }

  /** The newest signed tree head (null before the first entry). */
  newestHead(): SignedTreeHead | null {
    const r = this.db.select().from(t.auditTreeHeads).orderBy(desc(t.auditTreeHeads.size)).limit(1).get();
    return r ? headOf(r) : null;
  }

  /** Stored heads with size > after, oldest first. */
  listHeads(after = 0, limit = 1000): SignedTreeHead[] {
    return this.db.select().from(t.auditTreeHeads).where(gt(t.auditTreeHeads.size, after)).orderBy(asc(t.auditTreeHeads.size)).limit(limit).all().map(headOf);
  }

  /**
   * Consistency proof between two tree sizes (RFC 6962 §2.1.2), from the stored rows.
   * @param from - the older size
   * @param to - the newer size (default: the newest signed head)
   * @throws FedmartError BAD_REQUEST on sizes out of range, UNAVAILABLE when rows were deleted
   */
  consistency(from: number, to?: number): AuditConsistency {
    return auditConsistencyOf(this.entries(), this.newestHead(), from, to);
  }

  /**
   * Inclusion proof of entry `seq` in the tree of `size` entries (RFC 6962 §2.1.1).
   * @throws FedmartError NOT_FOUND for an unknown entry, BAD_REQUEST for a size that does not cover it
   */
  inclusion(seq: number, size?: number): AuditInclusion {
    return auditInclusionOf(this.entries(), this.newestHead(), seq, size);
  }

  /** Verify every stored entry against every stored head (`fedmart audit verify --data-dir`). */
  verify(trusted: SignedTreeHead | null = null): AuditVerification {
    const heads = this.db.select().from(t.auditTreeHeads).orderBy(asc(t.auditTreeHeads.size)).all().map(headOf);
    return verifyAuditLog({ entries: this.entries(), heads, trusted });
  }

  /**
   * At start-up: a database whose rows no longer reproduce its newest signed head is refused (signing new
   * heads over it would bless the rewrite). A log from before signed heads (migrated) gets its first head now.
   * @throws FedmartError CONFIG_ERROR naming the first bad entry
   */
  checkAtStart(): void {
    this.#frontier = null; // from the stored rows, not a frontier cached by earlier appends
    const newest = this.newestHead();
    const count = this.db.select({ n: sql<number>`count(*)` }).from(t.auditLog).get()?.n ?? 0;
    if (newest === null) {
      if (count > 0) {
        const f = this.#frontierNow();
        this.#sign(f.size, bytesToHex(f.root()));
      }
      return;
    }
    const f = this.#frontierNow();
    if (f.size === newest.size && bytesToHex(f.root()) === newest.root) return;
    this.#frontier = null;
    const v = this.verify();
    throw auditStartRefusal(v, count, newest.size, 'data dir', 'fedmart audit verify --data-dir <dir>');
  }
}

/** An inclusion proof's JSON (GET /api/v1/audit/entries/:seq/proof). */
export interface AuditInclusion { entry: AuditEntry; leafIndex: number; treeSize: number; proof: string[] }
/** A consistency proof's JSON (GET /api/v1/audit/consistency). */
export interface AuditConsistency { from: number; to: number; proof: string[] }

function sizeCheck(newest: SignedTreeHead | null, size: number, leaves: number): void {
  if (newest === null || size > newest.size) throw new FedmartError('BAD_REQUEST', `tree size ${size} is beyond the newest signed head (${newest?.size ?? 0}); ask GET /api/v1/audit/sth for the current size`);
  if (size > leaves) throw new FedmartError('UNAVAILABLE', `the audit log holds ${leaves} entries but its signed head covers ${newest.size}: entries were deleted; run fedmart audit verify --data-dir on the coordinator and restore it from a backup`);
}

/**
 * Consistency proof between two tree sizes (RFC 6962 §2.1.2) from stored entries and the newest head; pure, so
 * the SQLite and PostgreSQL logs answer alike.
 * @throws FedmartError BAD_REQUEST on sizes out of range, UNAVAILABLE when rows were deleted
 */
export function auditConsistencyOf(entries: readonly AuditEntry[], newest: SignedTreeHead | null, from: number, to?: number): AuditConsistency {
  const size = to ?? newest?.size ?? 0;
  if (from > size) throw new FedmartError('BAD_REQUEST', `"from" (${from}) must not exceed "to" (${size})`);
  const leaves = entries.map(auditLeafHash);
  sizeCheck(newest, size, leaves.length);
  return { from, to: size, proof: consistencyProof(leaves, from, size).map(bytesToHex) };
}

/**
 * Inclusion proof of entry `seq` in the tree of `size` entries (RFC 6962 §2.1.1); pure (see {@link auditConsistencyOf}).
 * @throws FedmartError NOT_FOUND for an unknown entry, BAD_REQUEST for a size that does not cover it
 */
export function auditInclusionOf(entries: readonly AuditEntry[], newest: SignedTreeHead | null, seq: number, size?: number): AuditInclusion {
  const index = entries.findIndex((e) => e.seq === seq);
  if (index < 0) throw new FedmartError('NOT_FOUND', `audit entry ${seq} not found`);
  const treeSize = size ?? newest?.size ?? 0;
  if (index >= treeSize) throw new FedmartError('BAD_REQUEST', `a tree of ${treeSize} entries does not contain entry ${seq}`);
  sizeCheck(newest, treeSize, entries.length);
  return { entry: entries[index]!, leafIndex: index, treeSize, proof: inclusionProof(entries.map(auditLeafHash), index, treeSize).map(bytesToHex) };
}

/** The start-up refusal of a log that does not reproduce its newest signed head (both dialects). */
export function auditStartRefusal(v: AuditVerification, count: number, newestSize: number, where: string, verifyCommand: string): FedmartError {
  const why = v.firstBad ? `entry ${v.firstBad.seq}: ${v.firstBad.reason}` : `${count} entries do not reproduce the newest signed head (size ${newestSize})`;
  return new FedmartError('CONFIG_ERROR', `the audit log in this ${where} does not verify against its signed tree heads (${why}); the coordinator will not sign new heads over it. Restore the ${where} from a backup; ${verifyCommand} shows the details`);
}
