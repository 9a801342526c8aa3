/**
 * The coordinator's own operator token, kept in `<dataDir>/operator.token`
 * (0600). A start reuses it while it is valid and far from expiry, so
 * restarts do not scatter live long-lived operator tokens; a new one is
 * minted on first start, when the old one is expired, revoked or close to
 * expiry, or on an explicit rotation — and the one it replaces is revoked
 * (by jti), so at most one coordinator-minted operator token is live.
 * Coordinators on PostgreSQL keep it in the database instead (shared-secrets.ts, one token for all of
 * them; the data dir gets a copy for the CLI).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Principal, TokenAuthority } from './auth.ts';
import type { AsyncStore } from './db/store-api.ts';
import { SECRET_FILE_MODE, restrictFiles } from './data-dir.ts';

/** File name of the operator token inside the data dir. */
export const OPERATOR_TOKEN_FILE = 'operator.token';
/** Lifetime of a coordinator-minted operator token. */
export const OPERATOR_TOKEN_SECONDS = 30 * 86_400;
/** A stored token with less than this left is replaced at start (so it never expires under a running coordinator). */
export const OPERATOR_TOKEN_RENEW_SECONDS = 7 * 86_400;

/** How the start-up operator token came about. */
export type OperatorTokenOrigin = 'issued' | 'reused' | 'rotated';

/**
 * Where the operator token is kept: the data dir's file, or (several coordinators on one PostgreSQL)
 * the shared secret row of shared-secrets.ts, which every coordinator of the database reads.
 */
export interface OperatorTokenSlot {
  /** The stored token, or null when there is none yet. */
  read(): Promise<string | null>;
  /**
   * Store `next` in place of `previous` (null: nothing was stored), compare-and-set where several
   * coordinators share the slot.
   * @returns the token now stored: `next`, or the one another coordinator stored first
   */
  replace(previous: string | null, next: string): Promise<string>;
}

/** The data dir's `operator.token` (0600) as the slot of a single coordinator. */
export function fileTokenSlot(dataDir: string): OperatorTokenSlot {
  const file = path.join(dataDir, OPERATOR_TOKEN_FILE);
  return {
    read: async () => {
      try {
        return (await readFile(file, 'utf8')).trim();
      } catch {
        return null;
      }
    },
    replace: async (_previous, next) => {
      await writeOperatorTokenFile(dataDir, next);
      return next;
    },
  };
}

/**
 * Write `<dataDir>/operator.token` (0600): the token file of a single coordinator, and the copy the CLI
 * reads where the token lives in PostgreSQL.
 */
export async function writeOperatorTokenFile(dataDir: string, token: string): Promise<void> {
  await writeFile(path.join(dataDir, OPERATOR_TOKEN_FILE), token + '\n', { mode: SECRET_FILE_MODE });
  await restrictFiles(dataDir, [OPERATOR_TOKEN_FILE]);
}

/**
 * Reuse or mint the operator token for this start.
 * @param deps.authority - signs and verifies tokens
 * @param deps.store - where a replaced token's jti is revoked (SQLite or PostgreSQL)
 * @param slot - where the token is kept: a data dir (its file), a {@link OperatorTokenSlot}, or `null` (tests): a token that lives in memory only
 * @param rotate - mint a new one even when the stored one is still good
 * @returns the token, how it came about, and the replaced token's jti (if one was revoked)
 */
export async function operatorTokenAtStart(deps: { authority: TokenAuthority; store: Pick<AsyncStore, 'revokeToken'> }, slot: string | OperatorTokenSlot | null, rotate: boolean): Promise<{ token: string; origin: OperatorTokenOrigin; revokedJti?: string }> {
  if (slot === null) return { token: (await deps.authority.issue({ sub: 'operator', role: 'operator' }, OPERATOR_TOKEN_SECONDS)).token, origin: 'issued' };
  if (typeof slot === 'string') {
    await restrictFiles(slot, [OPERATOR_TOKEN_FILE]);
    slot = fileTokenSlot(slot);
  }
  const storedToken = await slot.read();
  const stored = storedToken === null ? null : await verifiedOperatorToken(deps.authority, storedToken);
  if (stored && !rotate && stored.principal.exp !== undefined && stored.principal.exp - Date.now() / 1000 > OPERATOR_TOKEN_RENEW_SECONDS) {
    return { token: stored.token, origin: 'reused' };
  }
  const minted = await deps.authority.issue({ sub: 'operator', role: 'operator' }, OPERATOR_TOKEN_SECONDS);
  const token = await slot.replace(storedToken, minted.token);
  if (token !== minted.token) {
    // Another coordinator of the database replaced the same token first: use its token, drop ours.
    await deps.store.revokeToken(minted.jti, 'coordinator', 'operator token minted in a concurrent renewal, unused');
    return { token, origin: 'reused' };
  }
  if (!stored) return { token, origin: 'issued' };
  // Revoke the replaced token only once the new one is safely stored.
  await deps.store.revokeToken(stored.principal.jti!, 'coordinator', rotate ? 'operator token rotated' : 'operator token renewed before expiry');
  return { token, origin: 'rotated', revokedJti: stored.principal.jti! };
}

/** The stored token if it is one of ours, an operator token, unexpired and not revoked; otherwise null. */
async function verifiedOperatorToken(authority: TokenAuthority, token: string): Promise<{ token: string; principal: Principal } | null> {
  try {
    const principal = await authority.verify(token);
    return principal.role === 'operator' ? { token, principal } : null;
  } catch {
    return null;
  }
}
