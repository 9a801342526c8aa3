/**
 * The coordinator's own operator token, kept in `<dataDir>/operator.token`
 * (0600). A start reuses it while it is valid and far from expiry, so
 * restarts do not scatter live long-lived operator tokens; a new one is
 * minted on first start, when the old one is expired, revoked or close to
 * expiry, or on an explicit rotation — and the one it replaces is revoked
 * (by jti), so at most one coordinator-minted operator token is live.
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
 * Reuse or mint the operator token for this start.
 * @param deps.authority - signs and verifies tokens
 * @param deps.store - where a replaced token's jti is revoked (SQLite or PostgreSQL)
 * @param dataDir - the data dir; `null` (tests) mints a token that lives in memory only
 * @param rotate - mint a new one even when the stored one is still good
 * @returns the token, how it came about, and the replaced token's jti (if one was revoked)
 */
export async function operatorTokenAtStart(deps: { authority: TokenAuthority; store: Pick<AsyncStore, 'revokeToken'> }, dataDir: string | null, rotate: boolean): Promise<{ token: string; origin: OperatorTokenOrigin; revokedJti?: string }> {
  if (dataDir === null) return { token: (await deps.authority.issue({ sub: 'operator', role: 'operator' }, OPERATOR_TOKEN_SECONDS)).token, origin: 'issued' };
  const file = path.join(dataDir, OPERATOR_TOKEN_FILE);
  const stored = await readStored(deps.authority, file);
  if (stored && !rotate && stored.principal.exp !== undefined && stored.principal.exp - Date.now() / 1000 > OPERATOR_TOKEN_RENEW_SECONDS) {
    await restrictFiles(dataDir, [OPERATOR_TOKEN_FILE]);
    return { token: stored.token, origin: 'reused' };
  }
  const { token } = await deps.authority.issue({ sub: 'operator', role: 'operator' }, OPERATOR_TOKEN_SECONDS);
  await writeFile(file, token + '\n', { mode: SECRET_FILE_MODE });
  await restrictFiles(dataDir, [OPERATOR_TOKEN_FILE]);
  if (!stored) return { token, origin: 'issued' };
  // Revoke the replaced token only once the new one is safely on disk.
  await deps.store.revokeToken(stored.principal.jti!, 'coordinator', rotate ? 'operator token rotated' : 'operator token renewed before expiry');
  return { token, origin: 'rotated', revokedJti: stored.principal.jti! };
}

/** The stored token if it is one of ours, an operator token, unexpired and not revoked; otherwise null. */
async function readStored(authority: TokenAuthority, file: string): Promise<{ token: string; principal: Principal } | null> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
  try {
    const principal = await authority.verify(token);
    return principal.role === 'operator' ? { token, principal } : null;
  } catch {
    return null;
  }
}
