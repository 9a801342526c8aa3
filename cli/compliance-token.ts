/**
 * The compliance officer's portal token that `fedmart demo` prints, kept in
 * `<dataDir>/compliance.token` (0600) so a link the user saved keeps working
 * across starts. Like the coordinator's operator token
 * (coordinator/src/operator-token.ts), a start reuses the stored token while the
 * coordinator still accepts it and it is far from expiry; otherwise it mints a
 * new one and revokes the one it replaces (by jti), so at most one
 * demo-minted compliance token is live. Only the public REST API is used.
 */
import { readFile, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { ApiClient, peekClaims } from './api-client.ts';

/** File name of the compliance token inside the data dir. */
export const COMPLIANCE_TOKEN_FILE = 'compliance.token';
/** Lifetime of a demo-minted compliance token. */
export const COMPLIANCE_TOKEN_SECONDS = 7 * 86_400;
/** A stored token with less than this left is replaced at start. */
export const COMPLIANCE_TOKEN_RENEW_SECONDS = 86_400;

/**
 * Reuse or mint the compliance token for this start.
 * @param operator - an operator client of the running coordinator (mints and revokes)
 * @param dataDir - where the token file lives
 * @returns the token, its file, and whether it was reused, issued (no usable file) or rotated (old one revoked)
 */
export async function complianceTokenAtStart(operator: ApiClient, dataDir: string): Promise<{ token: string; file: string; origin: 'reused' | 'issued' | 'rotated'; revokedJti?: string }> {
  const file = path.join(dataDir, COMPLIANCE_TOKEN_FILE);
  const stored = await readStored(operator.baseUrl, file);
  if (stored && stored.secondsLeft > COMPLIANCE_TOKEN_RENEW_SECONDS) return { token: stored.token, file, origin: 'reused' };
  const { token } = await operator.post<{ token: string }>('/api/v1/tokens', { subject: 'compliance-officer', role: 'compliance', expiresInSeconds: COMPLIANCE_TOKEN_SECONDS });
  try {
    await writeFile(file, token + '\n', { mode: 0o600 });
    await chmod(file, 0o600);
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `cannot write the compliance token to ${file}: ${(err as Error).message}; pass --data-dir with a writable directory`, { cause: err });
  }
  if (!stored) return { token, file, origin: 'issued' };
  // Revoke the replaced token only once the new one is on disk.
  await operator.delete(`/api/v1/tokens/${stored.jti}`);
  return { token, file, origin: 'rotated', revokedJti: stored.jti };
}

/** The stored token if the coordinator accepts it as a compliance token; otherwise null. */
async function readStored(baseUrl: string, file: string): Promise<{ token: string; jti: string; secondsLeft: number } | null> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
  let claims: Record<string, unknown>;
  try {
    claims = peekClaims(token);
  } catch {
    return null;
  }
  if (claims.role !== 'compliance' || typeof claims.jti !== 'string' || typeof claims.exp !== 'number') return null;
  try {
    // The coordinator verifies signature, expiry and revocation; only then are the claims above trusted.
    await new ApiClient(baseUrl, token).get('/api/v1/federations');
  } catch (err) {
    if (err instanceof FedmartError && (err.code === 'UNAUTHENTICATED' || err.code === 'FORBIDDEN')) return null;
    throw err;
  }
  return { token, jti: claims.jti, secondsLeft: claims.exp - Date.now() / 1000 };
}
