/**
 * The Socket.IO handshake check shared by `/federation` and `/vertical`:
 * an EdDSA partner token whose `jti` names a live (not replaced, not
 * revoked) enrollment in the federation the token claims.
 */
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import type { TokenAuthority } from './auth.ts';
import type { Store } from './db/store.ts';
import type { EnrollmentRow } from './db/schema.ts';

/**
 * Verify a handshake's `auth: { token }` and return its enrollment.
 * @param what - what the token is for, for the error message ("a federation", "a vertical job")
 * @throws FedmartError UNAUTHENTICATED / FORBIDDEN naming the problem and the fix
 */
export async function authenticateEnrollment(deps: { authority: TokenAuthority; store: Store }, auth: unknown, what: string): Promise<EnrollmentRow> {
  const token = (auth as { token?: unknown } | undefined)?.token;
  const p = await deps.authority.verify(token);
  if (p.role !== 'partner' || !p.fed || !p.jti) throw new FedmartError('FORBIDDEN', `a ${p.role} token cannot join ${what}; use the partner's enrollment token`);
  const enrollment = deps.store.findEnrollmentByToken(p.jti);
  if (!enrollment || enrollment.federationId !== p.fed) throw new FedmartError('UNAUTHENTICATED', `enrollment token is no longer valid (it was replaced or ${what} was removed); ask the operator for a new one`);
  if (enrollment.status === 'revoked') throw new FedmartError('FORBIDDEN', 'this enrollment was revoked by the operator');
  return enrollment;
}

/** The Error a Socket.IO middleware passes to `next()`: clients read `err.data.{code,message}`. */
export function handshakeError(err: unknown): Error {
  const e = toFedmartError(err);
  const error = new Error(e.message) as Error & { data?: unknown };
  error.data = { code: e.code, message: e.message };
  return error;
}
