/**
 * Sign-in state. The token comes from the sign-in form or from an enrollment /
 * sign-in link (`/#token=…`; a fragment never reaches the server's logs). It is
 * kept in sessionStorage (gone when the tab closes) and removed from the URL at
 * once. The role shown comes from the token's claims; every call is still
 * checked by the coordinator, which is what decides.
 */
import type { TokenClaims } from '@fedmart/shared/api-views';

const KEY = 'fedmart.token';

export interface Session {
  token: string;
  claims: TokenClaims;
}

/**
 * Decode a JWT's payload without verifying it (the coordinator verifies).
 * @param token - compact JWS
 * @returns the claims, or an error message in words
 */
export function readClaims(token: string): TokenClaims | string {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return 'this is not a fedmart token (expected three dot-separated parts); paste the whole token the operator gave you';
  try {
    const json = atob(parts[1]!.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(parts[1]!.length / 4) * 4, '='));
    const c = JSON.parse(json) as Partial<TokenClaims>;
    if (typeof c.sub !== 'string' || (c.role !== 'operator' && c.role !== 'partner' && c.role !== 'compliance')) return 'the token has no fedmart role; ask the operator for a portal or enrollment token';
    if (typeof c.exp === 'number' && c.exp * 1000 < Date.now()) return `the token expired on ${new Date(c.exp * 1000).toLocaleString()}; ask the operator for a new one`;
    return c as TokenClaims;
  } catch {
    return 'the token could not be read (damaged or truncated); paste it again';
  }
}

/** Take a token from the URL fragment (then remove it from the URL), else from sessionStorage. */
export function loadSession(): Session | string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    const token = decodeURIComponent(m[1]!);
    history.replaceState(null, '', location.pathname + location.search);
    return startSession(token);
  }
  const stored = sessionStorage.getItem(KEY);
  if (stored === null) return null;
  const s = startSession(stored);
  if (typeof s === 'string') sessionStorage.removeItem(KEY);
  return s;
}

/** Check and keep a token. @returns the session, or why it cannot be used */
export function startSession(token: string): Session | string {
  const claims = readClaims(token);
  if (typeof claims === 'string') return claims;
  sessionStorage.setItem(KEY, token.trim());
  return { token: token.trim(), claims };
}

export function endSession(): void {
  sessionStorage.removeItem(KEY);
}
