/**
 * The cluster transport's share of a round (issue 15, `fedmart bench scale`): what the two-coordinator
 * layout adds to a round's traffic, measured on real Socket.IO servers and a real PostgreSQL, beside
 * the same traffic on one server without the adapter, in the same run.
 *
 * One probe round = the leader sends every partner the model (`train`, a `params`-float attachment),
 * every partner answers with an update of the same size (`msg` + attachment + ack), then the leader
 * sends every partner the new model (`evaluate`) and every partner answers a small message. Partners are
 * spread over the nodes; a partner on the non-leader reaches the leader through
 * {@link ClusterRelay.forward} and the leader reaches it through {@link ClusterRelay.remote} (the
 * postgres adapter: payloads over 8000 bytes go through the socket_io_attachments table); a partner
 * on the leader is reached through its local socket. No aggregation, no store: only the transport.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { Server as IoServer, type Namespace } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { MAX_ATTACHMENT_BYTES } from '@fedmart/shared/protocol';
import { attachClusterAdapter, ClusterRelay, type ForwardedMessage, type RelayAck } from './relay.ts';

interface ProbeNode { http: HttpServer; io: IoServer; nsp: Namespace; relay: ClusterRelay | null; port: number; pool: pg.Pool | null }

export interface RelayProbeResult {
  nodes: number;
  partners: number;
  params: number;
  /** Median probe-round time over `reps` rounds (after one warm-up), ms. */
  clusterRoundMs: number;
  /** The same traffic, every partner on one server without the adapter. */
  singleServerRoundMs: number;
  ratio: number;
  /** Medians of each phase, both layouts. */
  cluster: PhaseTimes;
  singleServer: PhaseTimes;
  /** The cluster layout with the model sent once per phase as a room broadcast instead of once per partner. */
  clusterRoomBroadcast: PhaseTimes;
}

/**
 * @param url - a migrated PostgreSQL (socket_io_attachments exists); null: the single-server baseline only
 */
async function startProbeNode(url: string | null, leads: boolean, onUpdate: (socketId: string, kind: string) => void): Promise<ProbeNode> {
  const pool = url === null ? null : new pg.Pool({ connectionString: url, max: 4 });
  pool?.on('error', () => undefined);
  const http = createServer();
  const io = new IoServer(http, { serveClient: false, maxHttpBufferSize: MAX_ATTACHMENT_BYTES + 1024 * 1024 });
  if (pool) attachClusterAdapter(io, pool);
  const nsp = io.of('/federation');
  const handle = (msg: ForwardedMessage): RelayAck => {
    onUpdate(msg.socketId, (msg.envelope as { type: string }).type);
    return { ok: true };
  };
  const relay = pool ? new ClusterRelay(nsp, () => leads, handle) : null;
  nsp.on('connection', (socket) => {
    void socket.join('fed:F');
    socket.on('msg', (envelope: unknown, attachment: unknown, maybeAck?: unknown) => {
      const ack = (typeof maybeAck === 'function' ? maybeAck : attachment) as (a: RelayAck) => void;
      const bytes = typeof maybeAck === 'function' ? new Uint8Array(attachment as ArrayBuffer) : undefined;
      const msg: ForwardedMessage = { federationId: 'F', socketId: socket.id, data: {}, envelope, ...(bytes ? { attachment: bytes } : {}) };
      if (leads || relay === null) ack(handle(msg));
      else void relay.forward(msg).then(ack);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return { http, io, nsp, relay, port: (http.address() as AddressInfo).port, pool };
}

async function closeProbeNode(n: ProbeNode): Promise<void> {
  await new Promise<void>((r) => n.io.close(() => r()));
  await n.pool?.end();
}

/** Run probe rounds over `nodes` (the first leads) and return the median round time. */
async function probeRounds(nodes: ProbeNode[], clients: { socket: ClientSocket; node: number; serverId: string }[], weights: Uint8Array, reps: number, arrived: { count: number; resolve: (() => void) | null }, broadcast: boolean): Promise<PhaseTimes> {
  const leader = nodes[0]!;
  const sendTo = (c: { node: number; serverId: string }, event: string, meta: unknown) => {
    const local = leader.nsp.sockets.get(c.serverId);
    if (local) local.emit(event, meta, weights);
    else leader.relay!.remote(c.serverId).emit(event, meta, weights);
  };
  const phase = (event: string) => new Promise<void>((resolve) => {
    arrived.count = 0;
    arrived.resolve = resolve;
    // The model is the same for every partner: one room broadcast is one adapter message.
    if (broadcast) leader.nsp.to('fed:F').emit(event, { kind: event }, weights);
    else for (const c of clients) sendTo(c, event, { kind: event });
  });
  const rounds: PhaseTimes[] = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    await phase('train');
    const t1 = performance.now();
    await phase('evaluate');
    if (r > 0) rounds.push({ roundMs: performance.now() - t0, trainPhaseMs: t1 - t0, evaluatePhaseMs: performance.now() - t1 });
  }
  const median = (k: keyof PhaseTimes) => Math.round(rounds.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(rounds.length / 2)]!);
  return { roundMs: median('roundMs'), trainPhaseMs: median('trainPhaseMs'), evaluatePhaseMs: median('evaluatePhaseMs') };
}

/** One probe round, and its two phases: model out + update back (train), model out + small answer back (evaluate). */
export interface PhaseTimes { roundMs: number; trainPhaseMs: number; evaluatePhaseMs: number }

async function runLayout(url: string | null, nodeCount: number, partners: number, params: number, reps: number, broadcast = false): Promise<PhaseTimes> {
  const update = new Uint8Array(params * 4).fill(1);
  const arrived = { count: 0, resolve: null as (() => void) | null };
  const onUpdate = () => {
    if (++arrived.count === partners) arrived.resolve?.();
  };
  const nodes: ProbeNode[] = [];
  const clients: { socket: ClientSocket; node: number; serverId: string }[] = [];
  try {
    for (let i = 0; i < nodeCount; i++) nodes.push(await startProbeNode(url, i === 0, onUpdate));
    for (let i = 0; i < partners; i++) {
      const node = i % nodeCount;
      const socket = connect(`http://127.0.0.1:${nodes[node]!.port}/federation`, { transports: ['websocket'], reconnection: false });
      await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
      socket.on('train', () => socket.emit('msg', { type: 'train-result' }, update, () => undefined));
      socket.on('evaluate', () => socket.emit('msg', { type: 'evaluate-result' }, () => undefined));
      // The client's id is the server-side socket id (Socket.IO v4).
      clients.push({ socket, node, serverId: socket.id! });
    }
    const weights = new Uint8Array(params * 4).fill(2);
    return await probeRounds(nodes, clients, weights, reps, arrived, broadcast);
  } finally {
    for (const c of clients) c.socket.close();
    for (const n of nodes) await closeProbeNode(n);
  }
}

/**
 * The transport probe: `nodes` servers on the PostgreSQL adapter vs one server, same partners and sizes.
 * @param url - a migrated PostgreSQL
 */
export async function probeRelay(url: string, o: { nodes: number; partners: number; params: number; reps?: number }): Promise<RelayProbeResult> {
  const reps = o.reps ?? 3;
  const singleServer = await runLayout(null, 1, o.partners, o.params, reps);
  const cluster = await runLayout(url, o.nodes, o.partners, o.params, reps);
  const clusterRoomBroadcast = await runLayout(url, o.nodes, o.partners, o.params, reps, true);
  return { clusterRoomBroadcast, nodes: o.nodes, partners: o.partners, params: o.params, clusterRoundMs: cluster.roundMs, singleServerRoundMs: singleServer.roundMs, ratio: Math.round((cluster.roundMs / singleServer.roundMs) * 1000) / 1000, cluster, singleServer };
}
