/**
 * The partner node's local recommendation endpoint (`fedmart partner
 * --serve PORT` in a recommendation federation): `GET /recommend?user=ID&k=10`
 * answers for the brand's own users from the federation's published model
 * (read through the ModelRegistry), with the JSON of `fedmart recommend
 * --json`; errors are `{ "error": { "code", "message" } }` with the code's
 * HTTP status. Listens on 127.0.0.1 only: the brand's own systems call it.
 */
import { createServer, type Server } from 'node:http';
import { FedmartError, HTTP_STATUS, toFedmartError } from '@fedmart/shared/errors';
import type { RecommendationService } from '@fedmart/scenarios/recommendation/recommend';

/**
 * Start the endpoint.
 * @param port - TCP port on 127.0.0.1 (0: any free port)
 * @returns the listening server and its URL
 * @throws FedmartError CONFIG_ERROR when the port cannot be bound
 */
export async function serveRecommendations(service: RecommendationService, port: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body) + '\n');
    };
    void (async () => {
      try {
        const u = new URL(req.url ?? '/', 'http://localhost');
        if (u.pathname !== '/recommend') throw new FedmartError('NOT_FOUND', `no endpoint ${u.pathname}; use GET /recommend?user=ID&k=10`);
        if (req.method !== 'GET') throw new FedmartError('BAD_REQUEST', `${req.method} /recommend is not supported; use GET /recommend?user=ID&k=10`);
        const user = u.searchParams.get('user');
        if (!user) throw new FedmartError('BAD_REQUEST', 'missing the user: GET /recommend?user=ID&k=10');
        const kRaw = u.searchParams.get('k') ?? '10';
        const k = Number(kRaw);
        if (!/^\d+$/.test(kRaw) || k < 1 || k > 1000) throw new FedmartError('BAD_REQUEST', `k must be an integer from 1 to 1000, got "${kRaw}"`);
        reply(200, await service.answer(user, k));
      } catch (err) {
        const e = toFedmartError(err);
        reply(HTTP_STATUS[e.code], { error: { code: e.code, message: e.message } });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new FedmartError('CONFIG_ERROR', `--serve ${port}: cannot listen on 127.0.0.1:${port} (${e.code ?? e.message}); choose a free port`)));
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  return { server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}/recommend` };
}
