/**
 * A partner that speaks the real wire protocol over a real Socket.IO client
 * but whose answers are scripted by the test: what it declares at hello, the
 * update and example count it sends back for each train instruction, and the
 * metrics it reports for each evaluation. Adversary tests use it to play a
 * malicious (or a perfectly predictable honest) partner; every event the
 * coordinator pushes to it is recorded so a test can check what it saw.
 */
import type { Socket } from 'socket.io-client';
import { PROTOCOL_VERSION } from '@fedmart/shared/protocol';
import { decodeFloat32, encodeFloat32 } from '@fedmart/shared/codec';
import { emitMsg, rawClient } from '../helpers.ts';

export interface Script {
  /** Example count declared at hello. */
  helloExamples: number;
  /** The update for a round, given the global weights it was sent. */
  update(global: Float32Array, round: number): Float32Array;
  /** Example count claimed with each update (default: helloExamples). */
  trainExamples?: number;
  /** Metrics reported with each update. */
  trainMetrics?: Record<string, number>;
  /** Evaluation of the weights it was sent: example count and metrics. */
  evaluate(weights: Float32Array): { numExamples: number; metrics: Record<string, number> };
}

export interface ScriptedPartner {
  socket: Socket;
  /** Every server → client event received: name and JSON-safe arguments (binary parts as byte counts). */
  received: { event: string; args: unknown[] }[];
  /** Acks of every train-result / evaluate-result it sent. */
  acks: { type: string; ok: boolean; error?: { code: string; message: string } }[];
  close(): void;
}

/**
 * Connect and say hello; from then on answer every train/evaluate by the script.
 * @param url - the coordinator URL
 * @param token - the partner's enrollment token
 * @param script - what to declare and send
 * @returns the running partner (resolves once the hello is acknowledged)
 * @throws Error when the hello is refused
 */
export async function startScriptedPartner(url: string, token: string, script: Script): Promise<ScriptedPartner> {
  const socket = await rawClient(url, token);
  const received: ScriptedPartner['received'] = [];
  const acks: ScriptedPartner['acks'] = [];
  let seq = 0;
  socket.onAny((event: string, ...args: unknown[]) => {
    received.push({ event, args: args.map((a) => (a instanceof ArrayBuffer || ArrayBuffer.isView(a) ? { bytes: (a as ArrayBufferLike).byteLength } : a)) });
  });
  socket.on('train', (t: { roundId: string; round: number; length: number }, weights: Uint8Array) => {
    void (async () => {
      const global = decodeFloat32(weights, t.length);
      const delta = script.update(global, t.round);
      const ack = await emitMsg(socket, { v: PROTOCOL_VERSION, seq: ++seq, type: 'train-result', roundId: t.roundId, payload: { numExamples: script.trainExamples ?? script.helloExamples, metrics: script.trainMetrics ?? {}, length: delta.length } }, encodeFloat32(delta));
      acks.push({ type: 'train-result', ...ack });
    })();
  });
  socket.on('evaluate', (e: { roundId: string; length: number }, weights: Uint8Array) => {
    void (async () => {
      const r = script.evaluate(decodeFloat32(weights, e.length));
      const ack = await emitMsg(socket, { v: PROTOCOL_VERSION, seq: ++seq, type: 'evaluate-result', roundId: e.roundId, payload: r });
      acks.push({ type: 'evaluate-result', ...ack });
    })();
  });
  const ack = await emitMsg(socket, { v: PROTOCOL_VERSION, seq, type: 'hello', payload: { numExamples: script.helloExamples, consent: true } });
  if (!ack.ok) {
    socket.disconnect();
    throw new Error(`hello refused: ${ack.error?.code}: ${ack.error?.message}`);
  }
  return { socket, received, acks, close: () => socket.disconnect() };
}
