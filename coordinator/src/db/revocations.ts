/**
 * Revoked token ids. Every fedmart token carries a `jti`; once revoked it is
 * refused at every REST call and every Socket.IO handshake, whatever its
 * role and expiry. The table is append-only (a revocation cannot be undone:
 * issue a new token instead).
 */
import { eq } from 'drizzle-orm';
import type { Db } from './client.ts';
import * as t from './schema.ts';

/** Reads and appends revocations. */
export class TokenRevocations {
  constructor(private readonly db: Db) {}

  /**
   * Revoke a token id (idempotent: revoking it again keeps the first record).
   * @param jti - the token's id
   * @param by - who revoked it (operator subject, or "coordinator" on rotation)
   * @param reason - why, for the audit trail
   * @returns true when this call revoked it, false when it already was
   */
  revoke(jti: string, by: string, reason: string | null): boolean {
    const r = this.db.insert(t.revokedTokens).values({ jti, revokedBy: by, reason, revokedAt: Date.now() }).onConflictDoNothing().run();
    return r.changes > 0;
  }

  /**
   * @param jti - a verified token's id
   * @returns whether it was revoked
   */
  isRevoked(jti: string): boolean {
    return this.db.select({ jti: t.revokedTokens.jti }).from(t.revokedTokens).where(eq(t.revokedTokens.jti, jti)).get() !== undefined;
  }
}
