/**
 * Two coordinators' Socket.IO servers sharing rooms through @socket.io/postgres-adapter on a real
 * throwaway PostgreSQL 15 (cluster/relay.ts): a partner connected to the non-leader has its message
 * (with a binary attachment) forwarded to the leader, which answers the ack; the leader's
 * per-socket send and its room broadcast reach the partner on the other node; with no leader the
 * partner gets UNAVAILABLE; when leadership moves the new leader handles the next message. Skips
 * with a printed reason only when no PostgreSQL binaries exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { Server as IoServer, type Namespace } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { findPgBin, startPgCluster, type PgCluster } from '../db/pg-cluster.ts';
import { migratePg } from '../db/migrations-pg.ts';
import { attachClusterAdapter, ClusterRelay, type ForwardedMessage, type RelayAck } from './relay.ts';

const HANG_GUARD = 180_000;
const pgBin = findPgBin();
if (!pgBin) console.warn('cluster relay: skipping: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql');

interface Node { name: string; pool: pg.Pool; http: HttpServer; io: IoServer; nsp: Namespace; relay: ClusterRelay; port: number; handled: ForwardedMessage[] }
let cluster: PgCluster | null = null;
const nodes: Node[] = [];
let leader: string | null = 'a';

async function startNode(name: string): Promise<Node> {
  const pool = new pg.Pool({ connectionString: cluster!.url, max: 4 });
  const http = createServer();
  const io = new IoServer(http, { serveClient: false });
  attachClusterAdapter(io, pool);
  const nsp = io.of('/federation');
  const handled: ForwardedMessage[] = [];
  const handle = (msg: ForwardedMessage, socket: { emit(e: string, ...a: unknown[]): void }): RelayAck => {
    handled.push(msg);
    socket.emit('train', { roundId: 'r1', by: name }, new Uint8Array([9, 8, 7]));
    nsp.to(`fed:${msg.federationId}`).emit('round-status', { by: name });
    return { ok: true };
  };
  const relay = new ClusterRelay(nsp, (fed) => fed === 'F' && leader === name, handle);
  nsp.on('connection', (socket) => {
    void socket.join('fed:F');
    socket.on('msg', (envelope: unknown, attachment: Uint8Array, ack: (a: RelayAck) => void) => {
      const msg: ForwardedMessage = { federationId: 'F', socketId: socket.id, data: { partnerId: 'p1' }, envelope, attachment: new Uint8Array(attachment) };
      if (relay.leads('F')) ack(handle(msg, relay.remote(socket.id)));
      else void relay.forward(msg).then(ack);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return { name, pool, http, io, nsp, relay, port: (http.address() as AddressInfo).port, handled };
}

beforeAll(async () => {
  if (!pgBin) return;
  cluster = await startPgCluster({ bin: pgBin });
  const c = new pg.Client(cluster.url);
  await c.connect();
  await migratePg(c);
  await c.end();
  nodes.push(await startNode('a'), await startNode('b'));
  // The adapters learn of each other by heartbeat; wait until each counts two servers.
  for (const n of nodes) while ((await n.nsp.adapter.serverCount()) < 2) await new Promise((r) => setTimeout(r, 100));
}, HANG_GUARD);
afterAll(async () => {
  for (const n of nodes) {
    await new Promise<void>((r) => n.io.close(() => r()));
    await n.pool.end();
  }
  await cluster?.stop();
}, HANG_GUARD);

function partnerOn(node: Node): Promise<ClientSocket> {
  const s = connect(`http://127.0.0.1:${node.port}/federation`, { transports: ['websocket'], reconnection: false });
  return new Promise((resolve, reject) => { s.once('connect', () => resolve(s)); s.once('connect_error', reject); });
}
const next = <T extends unknown[]>(s: ClientSocket, ev: string) => new Promise<T>((r) => s.once(ev, (...a: unknown[]) => r(a as T)));

describe.skipIf(pgBin === null)('coordinators sharing rooms through @socket.io/postgres-adapter', () => {
  it('a message to the non-leader is handled by the leader; its per-socket send and room broadcast reach the partner on the other node', async () => {
    leader = 'a';
    const p = await partnerOn(nodes[1]!);
    const train = next<[unknown, ArrayBuffer]>(p, 'train');
    const status = next<[unknown]>(p, 'round-status');
    const ack = await p.emitWithAck('msg', { type: 'train-result', roundId: 'r1' }, new Uint8Array([1, 2, 3, 4]));
    expect(ack).toEqual({ ok: true });
    expect(nodes[0]!.handled.map((m) => [m.envelope, [...m.attachment!]])).toEqual([[{ type: 'train-result', roundId: 'r1' }, [1, 2, 3, 4]]]);
    expect(nodes[1]!.handled).toEqual([]);
    const [t, w] = await train;
    expect(t).toEqual({ roundId: 'r1', by: 'a' });
    expect([...new Uint8Array(w)]).toEqual([9, 8, 7]);
    expect(await status).toEqual([{ by: 'a' }]);
    p.disconnect();
  }, HANG_GUARD);

  it('with no leader the partner gets UNAVAILABLE; once node b leads, it handles the next message itself', async () => {
    leader = null;
    const p = await partnerOn(nodes[1]!);
    const refused = await p.emitWithAck('msg', { type: 'train-result', roundId: 'r2' }, new Uint8Array([5]));
    expect(refused).toMatchObject({ ok: false, error: { code: 'UNAVAILABLE' } });
    leader = 'b';
    const before = nodes[0]!.handled.length;
    expect(await p.emitWithAck('msg', { type: 'train-result', roundId: 'r3' }, new Uint8Array([6]))).toEqual({ ok: true });
    expect(nodes[1]!.handled.map((m) => (m.envelope as { roundId: string }).roundId)).toEqual(['r3']);
    expect(nodes[0]!.handled.length).toBe(before);
    p.disconnect();
  }, HANG_GUARD);
});
