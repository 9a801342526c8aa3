/**
 * One cluster member as its own OS process (for `fedmart bench scale`'s failover figure and the kill -9
 * test): an HTTP server with Socket.IO's /federation namespace on a free port, {@link startClusterNode}
 * on the given PostgreSQL with the default lease TTL and renew period. It reports on stdout, one line
 * each: `listening <port>`, `acquired <federationId> <epoch> <failed round ids, comma-separated>`,
 * `lost <federationId> <epoch>`. It stops cleanly (releasing its leases) on SIGTERM; `kill -9` is the
 * crash under test.
 *
 * Usage: node --import tsx coordinator/src/cluster/node-process.ts <postgres url> <coordinator id>
 */
import { createServer } from 'node:http';
import pg from 'pg';
import { Server as IoServer } from 'socket.io';
import { FEDERATION_NAMESPACE } from '@fedmart/shared/protocol';
import { startClusterNode } from './node.ts';

const [url, coordinatorId] = process.argv.slice(2);
if (!url || !coordinatorId) {
  process.stderr.write('usage: node-process.ts <postgres url> <coordinator id>\n');
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: url, max: 4 });
pool.on('error', () => undefined);
const http = createServer();
const io = new IoServer(http, { serveClient: false });
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
const addr = http.address();
const port = typeof addr === 'object' && addr ? addr.port : 0;
const node = await startClusterNode({
  pool, io, nsp: io.of(FEDERATION_NAMESPACE), coordinatorId, advertiseUrl: `http://127.0.0.1:${port}`,
  handle: () => ({ ok: true }),
  onAcquired: (f, failed) => void process.stdout.write(`acquired ${f.federationId} ${f.epoch} ${failed.join(',')}\n`),
  onLost: (f) => void process.stdout.write(`lost ${f.federationId} ${f.epoch}\n`),
  log: (m) => void process.stderr.write(m + '\n'),
});
process.stdout.write(`listening ${port}\n`);
process.once('SIGTERM', () => {
  void (async () => {
    await node.close();
    io.close();
    await pool.end();
    process.exit(0);
  })();
});
