/**
 * The Socket.IO handshake checks: `/federation` and `/vertical` want an
 * EdDSA partner token whose `jti` names a live (not replaced, not revoked)
 * enrollment in the federation the token claims; the default namespace `/`
 * wants any valid token. Revoked token ids are refused by every check.
 */
import { decodeJwt } from 'jose';
import type { Server as IoServer } from 'socket.io';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import type { TokenAuthority } from './auth.ts';
import type { AsyncStore } from './db/store-api.ts';
import type { EnrollmentRow } from './db/schema.ts';

/**
 * Verify a handshake's `auth: { token }` and return its enrollment.
 * @param what - what the token is for, for the error message ("a federation", "a vertical job")
 * @throws FedmartError UNAUTHENTICATED / FORBIDDEN naming the problem and the fix
 */
export async function authenticateEnrollment(deps: { authority: TokenAuthority; store: Pick<AsyncStore, 'findEnrollmentByToken'> }, auth: unknown, what: string): Promise<EnrollmentRow> {
  const token = (auth as { token?: unknown } | undefined)?.token;
  const p = await deps.authority.verify(token);
  if (p.role !== 'partner' || !p.fed || !p.jti) throw new FedmartError('FORBIDDEN', `a ${p.role} token cannot join ${what}; use the partner's enrollment token`);
  const enrollment = await deps.store.findEnrollmentByToken(p.jti);
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

/**
 * Refuse every connection to the default namespace `/` that does not carry a
 * valid, unrevoked token. Nothing is served there, but Socket.IO accepts a
 * connection to it by default: an anonymous client could hold sockets open
 * and probe the server.
 * @param io - the server
 * @param authority - verifies the handshake's `auth: { token }`
 */
export function guardDefaultNamespace(io: IoServer, authority: TokenAuthority): void {
  io.of('/').use((socket, next) => {
    authority.verify((socket.handshake.auth as { token?: unknown } | undefined)?.token).then(() => next(), (err: unknown) => next(handshakeError(err)));
  });
}

/**
 * Disconnect every live socket (any namespace) whose handshake used the token `jti`: revocation takes effect at once, not at the next reconnect.
 * @param io - the server
 * @param jti - the revoked token id
 * @returns how many sockets were closed
 */
export function disconnectToken(io: IoServer, jti: string): number {
  let closed = 0;
  for (const nsp of io._nsps.values()) {
    for (const socket of nsp.sockets.values()) {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      if (typeof token !== 'string') continue;
      let id: unknown;
      try {
        id = decodeJwt(token).jti;
      } catch {
        continue;
      }
      if (id === jti) {
        socket.emit('protocol-error', { code: 'UNAUTHENTICATED', message: `token ${jti} was revoked; ask the operator for a new one` });
        socket.disconnect(true);
        closed++;
      }
    }
  }
  return closed;
}
