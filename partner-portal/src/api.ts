/**
 * The only way the portal talks to the coordinator: its public REST API under
 * `/api/v1` with the signed-in token. Errors come back as the API's own
 * one-line messages.
 */
import type { ApiErrorBody } from '@fedmart/shared/api-views';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface Api {
  get<T>(path: string): Promise<T>;
  send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
  /** Raw text (CSV downloads). */
  text(path: string): Promise<string>;
}

export function createApi(token: string, onUnauthenticated: (message: string) => void): Api {
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch {
      throw new ApiError(0, 'UNAVAILABLE', 'the coordinator cannot be reached; check that it is running and try again');
    }
    if (!res.ok) {
      let code = 'HTTP_' + res.status;
      let message = `the coordinator answered ${res.status} ${res.statusText}`;
      try {
        const e = (await res.json()) as ApiErrorBody;
        if (e?.error?.message) ({ code, message } = e.error);
      } catch { /* not JSON: keep the status line */ }
      if (res.status === 401) onUnauthenticated(message);
      throw new ApiError(res.status, code, message);
    }
    return res;
  };
  return {
    async get<T>(path: string) { return (await (await call('GET', path)).json()) as T; },
    async send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) { return (await (await call(method, path, body)).json()) as T; },
    async text(path: string) { return (await call('GET', path)).text(); },
  };
}
