/**
 * A tiny typed client for the coordinator's REST API (fetch + Bearer token).
 * Errors come back as FedmartError with the server's code and message.
 */
import { FedmartError, ERROR_CODES, type ErrorCode } from '@fedmart/shared/errors';

export class ApiClient {
  constructor(readonly baseUrl: string, readonly token: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.baseUrl.replace(/\/+$/, '') + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new FedmartError('UNAVAILABLE', `cannot reach the coordinator at ${this.baseUrl}: ${(err as Error).message}; check the URL and that it is running`, { cause: err });
    }
    if (!res.ok) {
      let code: ErrorCode = 'INTERNAL';
      let message = `${method} ${path} answered HTTP ${res.status}`;
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string } };
        if (j.error?.code && (ERROR_CODES as readonly string[]).includes(j.error.code)) code = j.error.code as ErrorCode;
        if (j.error?.message) message = j.error.message;
      } catch {
        /* non-JSON error body */
      }
      throw new FedmartError(code, message);
    }
    const type = res.headers.get('content-type') ?? '';
    if (type.includes('application/json')) return (await res.json()) as T;
    return new Uint8Array(await res.arrayBuffer()) as T;
  }

  get<T>(path: string) {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body: unknown = {}) {
    return this.request<T>('POST', path, body);
  }
  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }
}

/** Read the (unverified) claims of a JWT — for routing only, never for trust. */
export function peekClaims(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new FedmartError('UNAUTHENTICATED', 'the token is not a JWT (expected three dot-separated parts); pass the enrollment token exactly as issued');
  try {
    return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new FedmartError('UNAUTHENTICATED', 'the token payload is not readable; pass the enrollment token exactly as issued', { cause: err });
  }
}
