/**
 * The partner agent: connects to the coordinator's `/federation` namespace
 * with its enrollment token, says hello (consent + example count), and
 * answers train / evaluate instructions with local TensorFlow.js training.
 *
 * Only model deltas (binary Float32) and aggregate metrics ever leave this
 * process — never rows, feature values or labels.
 */
import { io, type Socket } from 'socket.io-client';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import {
  FEDERATION_NAMESPACE, PROTOCOL_VERSION, TrainConfigSchema,
  type Ack, type ClientToServerEvents, type EvaluateInstruction, type RoundStatus, type ServerToClientEvents, type TrainInstruction, type Welcome,
} from '@fedmart/shared/protocol';
import { decodeFloat32, encodeFloat32 } from '@fedmart/shared/codec';
import { parameterCount, type ModelSpec } from '@fedmart/shared/model';
import { evaluate } from './ml/trainer.ts';
import { trainRoundWithDp } from './ml/dp-sgd.ts';
import { RdpAccountant } from '@fedmart/shared/dp/rdp';
import { initBackend } from './ml/backend.ts';

/** A partner's encoded local data, already split. */
export interface LocalData {
  /** Feature matrix, row-major n×d. */
  trainX: Float32Array;
  trainY: Float32Array;
  trainN: number;
  valX: Float32Array;
  valY: Float32Array;
  valN: number;
  d: number;
}

export interface PartnerAgentOptions {
  coordinatorUrl: string;
  token: string;
  /** Encoded local data (encode it with the federation's data schema first). */
  data: LocalData;
  /** Seed for local shuffling (non-secret). */
  seed?: number;
  /** Progress sink. */
  log?: (msg: string) => void;
  /** Called on every round status the coordinator pushes. */
  onStatus?: (s: RoundStatus) => void;
  /** Reconnect after a dropped connection (default true). */
  reconnect?: boolean;
  /** Extra Socket.IO client options (tests use this to capture frames). */
  socketOptions?: Record<string, unknown>;
}

export interface PartnerAgent {
  socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  /** Resolves with the welcome once connected and accepted. */
  ready: Promise<Welcome>;
  /** Rounds this partner trained in. */
  roundsTrained(): number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Start a partner agent.
 * @returns the agent; `ready` rejects with a FedmartError if the token is refused
 */
export function startPartnerAgent(opts: PartnerAgentOptions): PartnerAgent {
  const log = opts.log ?? (() => {});
  const url = opts.coordinatorUrl.replace(/\/+$/, '') + FEDERATION_NAMESPACE;
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, {
    auth: { token: opts.token },
    transports: ['websocket'],
    reconnection: opts.reconnect ?? true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    ...opts.socketOptions,
  });
  let seq = 0;
  const data: LocalData = opts.data;
  let spec: ModelSpec | null = null;
  let trained = 0;
  let work: Promise<void> = Promise.resolve();
  // This partner's record-level privacy spend (RDP composes across rounds); reported as epsilon_record.
  const recordAccountant = new RdpAccountant();

  // Acks still outstanding; a disconnect settles them all, so nothing waits forever.
  const pending = new Set<(a: Ack) => void>();
  const send = (envelope: Record<string, unknown>, attachment?: Uint8Array): Promise<Ack> =>
    new Promise((resolve) => {
      if (!socket.connected) {
        resolve({ ok: false, error: { code: 'UNAVAILABLE', message: 'not connected to the coordinator' } });
        return;
      }
      const env = { v: PROTOCOL_VERSION, seq: seq++, ...envelope };
      const cb = (a: Ack) => {
        pending.delete(cb);
        resolve(a);
      };
      pending.add(cb);
      if (attachment) socket.emit('msg', env, attachment, cb);
      else socket.emit('msg', env, cb);
    });
  socket.on('disconnect', (reason) => {
    for (const cb of [...pending]) cb({ ok: false, error: { code: 'UNAVAILABLE', message: `connection lost (${reason}) before the coordinator answered` } });
  });

  let resolveReady!: (w: Welcome) => void;
  let rejectReady!: (e: Error) => void;
  let settled = false;
  const ready = new Promise<Welcome>((res, rej) => {
    resolveReady = (w) => { settled = true; res(w); };
    rejectReady = (e) => { settled = true; rej(e); };
  });
  ready.catch(() => {});

  socket.on('connect', () => {
    void (async () => {
      try {
        await initBackend();
        const numExamples = data.trainN;
        const ack = await send({ type: 'hello', payload: { numExamples, consent: true, agent: 'fedmart-client-node/0.1.0' } });
        if (!ack.ok) throw new FedmartError(ack.error.code as never, ack.error.message);
      } catch (err) {
        if (!settled) rejectReady(toFedmartError(err));
        log(`hello failed: ${(err as Error).message}`);
      }
    })();
  });

  socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
    // Auth failures are final: the coordinator said no.
    if (err.data?.code) {
      const e = new FedmartError((err.data.code as never) ?? 'UNAUTHENTICATED', err.data.message ?? err.message);
      log(`coordinator refused the connection: ${e.message}`);
      socket.disconnect();
      if (!settled) rejectReady(e);
    } else if (!settled && !(opts.reconnect ?? true)) {
      rejectReady(new FedmartError('UNAVAILABLE', `cannot reach the coordinator at ${opts.coordinatorUrl}: ${err.message}; check --coordinator and that it is running`));
    } else {
      log(`cannot reach ${opts.coordinatorUrl} (${err.message}); retrying…`);
    }
  });

  socket.on('welcome', (w) => {
    void (async () => {
      try {
        spec = w.model as ModelSpec;
        if (data.d !== spec.inputDim) {
          throw new FedmartError('DATA_ERROR', `local data has ${data.d} encoded features but the federation's model expects ${spec.inputDim}; use the federation's data schema (--schema) so both sides encode the same columns`);
        }
        if (!settled) resolveReady(w);
      } catch (err) {
        log(`cannot join: ${(err as Error).message}`);
        if (!settled) rejectReady(toFedmartError(err));
        socket.disconnect();
      }
    })();
  });

  socket.on('round-status', (s) => opts.onStatus?.(s));
  socket.on('rejected', (r) => log(`coordinator rejected our message${r.roundId ? ` in ${r.roundId}` : ''}: ${r.message}`));
  socket.on('protocol-error', (e) => log(`coordinator reports ${e.code}: ${e.message}`));

  socket.on('train', (t: TrainInstruction, weightsBytes: Uint8Array) => {
    work = work.then(() => onTrain(t, weightsBytes));
  });
  socket.on('evaluate', (e: EvaluateInstruction, weightsBytes: Uint8Array) => {
    work = work.then(() => onEvaluate(e, weightsBytes));
  });

  async function onTrain(t: TrainInstruction, weightsBytes: Uint8Array): Promise<void> {
    try {
      if (!spec) throw new FedmartError('UNAVAILABLE', 'received a train instruction before the welcome');
      const { dp, ...config } = TrainConfigSchema.parse(t.config);
      const expected = parameterCount(spec);
      if (t.length !== expected) throw new FedmartError('INVALID_MESSAGE', `train instruction carries ${t.length} parameters, the model has ${expected}`);
      const global = decodeFloat32(weightsBytes, expected);
      const started = Date.now();
      // DP-SGD at record level, clip (+ noise share) at partner level, plain training otherwise.
      const result = await trainRoundWithDp({ spec, weights: global, x: data.trainX, y: data.trainY, n: data.trainN, config, seed: (opts.seed ?? 0) * 7919 + t.round }, dp, recordAccountant);
      const delta = result.delta;
      const metrics: Record<string, number> = { ...result.metrics, seconds: (Date.now() - started) / 1000 };
      const ack = await send({ type: 'train-result', roundId: t.roundId, payload: { numExamples: data.trainN, metrics, length: delta.length } }, encodeFloat32(delta));
      if (ack.ok) trained++;
      else log(`round ${t.round}: update refused: ${ack.error.message}`);
    } catch (err) {
      const e = toFedmartError(err);
      log(`round ${t.round}: training failed: ${e.message}`);
      await send({ type: 'train-error', roundId: t.roundId, payload: { code: e.code, message: e.message.slice(0, 2000) } });
    }
  }

  async function onEvaluate(e: EvaluateInstruction, weightsBytes: Uint8Array): Promise<void> {
    try {
      if (!spec) return;
      const weights = decodeFloat32(weightsBytes, parameterCount(spec));
      const r = await evaluate(spec, weights, data.valX, data.valY, data.valN);
      const metrics: Record<string, number> = { loss: r.loss, accuracy: r.accuracy };
      if (Number.isFinite(r.auc)) metrics.auc = r.auc;
      await send({ type: 'evaluate-result', roundId: e.roundId, payload: { numExamples: r.numExamples, metrics } });
    } catch (err) {
      log(`round ${e.round}: evaluation failed: ${(err as Error).message}`);
    }
  }

  const close = async () => {
    socket.disconnect();
    await work.catch(() => {});
  };
  return { socket, ready, roundsTrained: () => trained, close, [Symbol.asyncDispose]: close };
}
