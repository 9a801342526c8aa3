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
 *
 * The routed layout (cluster/route.ts, what the product does): partners first connect to the nodes in
 * turn; a non-leader sends each of its partners a `redirect` to the leader, which they follow, so every
 * model send and update is a local socket message on the leader; only control events cross the adapter
 * (here one `round-status` room broadcast per phase, as the leader sends to the federation's room).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { Server as IoServer, type Namespace } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { MAX_ATTACHMENT_BYTES, type LeaderRedirect } from '@fedmart/shared/protocol';
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
  /** Partners redirected to the leader (route.ts): partner traffic local, control events over the adapter. */
  clusterRouted: PhaseTimes & { redirected: number };
  routedRoundMs: number;
  /** routedRoundMs / singleServerAfterRoutedRoundMs: with routedRatio, the range the run's drift leaves. */
  routedRatioAfter: number;
  /** The single server measured again right after the routed layout (drift of the shared machine). */
  singleServerAfterRoutedRoundMs: number;
  /** routedRoundMs / singleServerRoundMs (the bar: 1.5). */
  routedRatio: number;
}

type Layout = 'spread' | 'broadcast' | 'routed';

/**
 * @param url - a migrated PostgreSQL (socket_io_attachments exists); null: the single-server baseline only
 */
async function startProbeNode(url: string | null, leads: boolean, onUpdate: (socketId: string, kind: string) => void, leaderUrl: string | null = null): Promise<ProbeNode> {
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
    // Routed layout: a non-leader sends the partner to the leader (route.ts's redirect), the leader takes it.
    if (leaderUrl !== null) {
      const r: LeaderRedirect = { federationId: 'F', leader: 'node-0', url: leaderUrl, retryAfterMs: 0, reason: 'node-0 leads federation F' };
      socket.emit('redirect', r);
      return;
    }
    socket.emit('ready');
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
async function probeRounds(nodes: ProbeNode[], clients: { socket: ClientSocket; node: number; serverId: string }[], weights: Uint8Array, reps: number, arrived: { count: number; resolve: (() => void) | null }, layout: Layout): Promise<PhaseTimes> {
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
    if (layout === 'broadcast') leader.nsp.to('fed:F').emit(event, { kind: event }, weights);
    else for (const c of clients) sendTo(c, event, { kind: event });
    // Routed: the round's control event reaches the room on every node (portal watchers, other coordinators).
    if (layout === 'routed') leader.nsp.to('fed:F').emit('round-status', { phase: event });
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

async function runLayout(url: string | null, nodeCount: number, partners: number, params: number, reps: number, layout: Layout = 'spread'): Promise<PhaseTimes & { redirected: number }> {
  const update = new Uint8Array(params * 4).fill(1);
  const arrived = { count: 0, resolve: null as (() => void) | null };
  const onUpdate = () => {
    if (++arrived.count === partners) arrived.resolve?.();
  };
  const nodes: ProbeNode[] = [];
  const clients: { socket: ClientSocket; node: number; serverId: string }[] = [];
  try {
    for (let i = 0; i < nodeCount; i++) nodes.push(await startProbeNode(url, i === 0, onUpdate, layout === 'routed' && i > 0 ? `http://127.0.0.1:${nodes[0]!.port}` : null));
    let redirected = 0;
    for (let i = 0; i < partners; i++) {
      let node = i % nodeCount;
      let socket = await joinNode(nodes[node]!.port);
      if (socket.redirect) {
        // The real agent follows it the same way (client-node/leader-redirect.ts): leave, connect to the leader.
        socket.socket.close();
        redirected++;
        node = nodes.findIndex((n) => `http://127.0.0.1:${n.port}` === socket.redirect!.url);
        socket = await joinNode(nodes[node]!.port);
      }
      const s = socket.socket;
      s.on('train', () => s.emit('msg', { type: 'train-result' }, update, () => undefined));
      s.on('evaluate', () => s.emit('msg', { type: 'evaluate-result' }, () => undefined));
      // The client's id is the server-side socket id (Socket.IO v4).
      clients.push({ socket: s, node, serverId: s.id! });
    }
    const weights = new Uint8Array(params * 4).fill(2);
    return { ...(await probeRounds(nodes, clients, weights, reps, arrived, layout)), redirected };
  } finally {
    for (const c of clients) c.socket.close();
    for (const n of nodes) await closeProbeNode(n);
  }
}

/** Connect a probe partner to a node; the node either takes it (`ready`) or redirects it. */
async function joinNode(port: number): Promise<{ socket: ClientSocket; redirect: LeaderRedirect | null }> {
  const socket = connect(`http://127.0.0.1:${port}/federation`, { transports: ['websocket'], reconnection: false });
  return new Promise((resolve, reject) => {
    socket.once('ready', () => resolve({ socket, redirect: null }));
    socket.once('redirect', (r: LeaderRedirect) => resolve({ socket, redirect: r }));
    socket.once('connect_error', reject);
  });
}

/**
 * The transport probe: `nodes` servers on the PostgreSQL adapter vs one server, same partners and sizes.
 * @param url - a migrated PostgreSQL
 */
export async function probeRelay(url: string, o: { nodes: number; partners: number; params: number; reps?: number }): Promise<RelayProbeResult> {
  const reps = o.reps ?? 3;
  const ratio = (x: number, y: number) => Math.round((x / y) * 1000) / 1000;
  const singleServer = await runLayout(null, 1, o.partners, o.params, reps);
  // Routed right after the single server it is compared with (the shared machine's load drifts).
  const clusterRouted = await runLayout(url, o.nodes, o.partners, o.params, reps, 'routed');
  // And once more after it: the spread of the two single-server figures is the run's own drift.
  const singleServerAgain = await runLayout(null, 1, o.partners, o.params, reps);
  const cluster = await runLayout(url, o.nodes, o.partners, o.params, reps);
  const clusterRoomBroadcast = await runLayout(url, o.nodes, o.partners, o.params, reps, 'broadcast');
  return {
    nodes: o.nodes, partners: o.partners, params: o.params, singleServerRoundMs: singleServer.roundMs, singleServerAfterRoutedRoundMs: singleServerAgain.roundMs,
    routedRoundMs: clusterRouted.roundMs, routedRatio: ratio(clusterRouted.roundMs, singleServer.roundMs),
    routedRatioAfter: ratio(clusterRouted.roundMs, singleServerAgain.roundMs), clusterRouted,
    clusterRoundMs: cluster.roundMs, ratio: ratio(cluster.roundMs, singleServer.roundMs), cluster, singleServer, clusterRoomBroadcast,
  };
}
