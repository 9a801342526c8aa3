/**
 * Local training in a worker thread (issue 13, item 7). The partner's main
 * thread keeps answering heartbeats, status and signals however long one
 * mini-batch takes (a 1024×1024 MLP batch can take seconds on a loaded CPU),
 * and stopping is immediate: abort terminates the worker, which holds only a
 * copy of the training rows and writes nothing.
 *
 * One worker per agent, started at the first round and reused; unref'd, so an
 * idle worker never keeps the process alive.
 */
import { Worker } from 'node:worker_threads';
import { FedmartError, type ErrorCode } from '@fedmart/shared/errors';
import type { ModelSpec } from '@fedmart/shared/model';
import type { LocalTrainConfig } from '@fedmart/shared/strategy/types';
import type { TrainProgress } from '@fedmart/shared/task/types';
import type { DpSgdOptions } from './dp-sgd.ts';

export interface TrainWorkerData { x: Float32Array; y: Float32Array; n: number }
export interface TrainRequest { spec: ModelSpec; weights: Float32Array; config: LocalTrainConfig; seed: number; dp?: Omit<DpSgdOptions, 'rng'> }
export type WorkerReply =
  | { type: 'progress'; progress: TrainProgress }
  | { type: 'done'; weights: Float32Array; loss?: number; q?: number; steps?: number }
  | { type: 'error'; code: string; message: string };

/** While a round trains, the main thread reports the worker alive this often (the agent throttles what it sends). */
const ALIVE_EVERY_MS = 1000;
const BOOT = new URL('./train-worker-boot.mjs', import.meta.url);
const ENTRY = new URL('./train-worker.ts', import.meta.url).href;

export class WorkerTrainer {
  private worker: Worker | null = null;
  constructor(private readonly data: TrainWorkerData) {}

  /**
   * Train one round in the worker.
   * @throws FedmartError UNAVAILABLE when `signal` aborts (the worker is terminated), or the worker's own error
   */
  train(req: TrainRequest, signal: AbortSignal | undefined, onProgress: ((p: TrainProgress) => void) | undefined): Promise<Extract<WorkerReply, { type: 'done' }>> {
    if (signal?.aborted) return Promise.reject(new FedmartError('UNAVAILABLE', 'local training stopped before it began: the partner is shutting down; nothing was sent'));
    const w = (this.worker ??= this.start());
    return new Promise((resolve, reject) => {
      // The worker is alive (starting its backend, or inside a long batch): say so between its own reports.
      let last: TrainProgress = { step: 0, steps: 0, epoch: 0 };
      const alive = setInterval(() => onProgress?.(last), ALIVE_EVERY_MS);
      alive.unref();
      const cleanup = () => {
        clearInterval(alive);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        signal?.removeEventListener('abort', onAbort);
      };
      const onMessage = (m: WorkerReply) => {
        if (m.type === 'progress') {
          last = m.progress;
          return onProgress?.(m.progress);
        }
        cleanup();
        if (m.type === 'done') resolve(m);
        else reject(new FedmartError(m.code as ErrorCode, m.message));
      };
      const onError = (err: Error) => {
        cleanup();
        this.worker = null;
        reject(new FedmartError('INTERNAL', `the training worker failed: ${err.message}`, { cause: err }));
      };
      const onExit = (code: number) => {
        cleanup();
        this.worker = null;
        reject(new FedmartError('UNAVAILABLE', `the training worker exited (code ${code}) before finishing`));
      };
      const onAbort = () => {
        cleanup();
        this.worker = null;
        void w.terminate();
        reject(new FedmartError('UNAVAILABLE', 'local training stopped: the partner is shutting down (training worker terminated); nothing was sent'));
      };
      w.on('message', onMessage);
      w.once('error', onError);
      w.once('exit', onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
      w.postMessage(req);
    });
  }

  /** Start the worker now (its backend loads while the partner waits for a round). */
  warm(): void {
    this.worker ??= this.start();
  }

  /** Stop the worker (idle or not). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private start(): Worker {
    const w = new Worker(BOOT, { workerData: { entry: ENTRY, x: this.data.x, y: this.data.y, n: this.data.n } });
    w.unref();
    return w;
  }
}
