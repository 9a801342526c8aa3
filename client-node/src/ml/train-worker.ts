/**
 * Body of the training worker thread (see worker-trainer.ts): holds the
 * partner's encoded training rows, trains one round per request with the same
 * code as the main thread (trainLocal, or DP-SGD), posts progress, and
 * returns the new weights. It writes nothing anywhere: terminating it at any
 * point leaves nothing half-written.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toFedmartError } from '@fedmart/shared/errors';
import { trainLocal } from './trainer.ts';
import { trainDpSgd } from './dp-sgd.ts';
import type { TrainRequest, TrainWorkerData, WorkerReply } from './worker-trainer.ts';
import { initBackend } from './backend.ts';

// Load the backend at once, so the first round does not wait for it.
void initBackend().catch(() => {});

const data = workerData as TrainWorkerData;
const port = parentPort!;
port.on('message', (m: TrainRequest) => {
  void (async () => {
    try {
      const args = { spec: m.spec, weights: m.weights, x: data.x, y: data.y, n: data.n, config: m.config, seed: m.seed, onProgress: (p: { step: number; steps: number; epoch: number }) => port.postMessage({ type: 'progress', progress: p } satisfies WorkerReply) };
      if (m.dp) {
        const r = await trainDpSgd({ ...args, dp: m.dp });
        port.postMessage({ type: 'done', weights: r.weights, q: r.q, steps: r.steps } satisfies WorkerReply, [r.weights.buffer as ArrayBuffer]);
      } else {
        const r = await trainLocal(args);
        port.postMessage({ type: 'done', weights: r.weights, loss: r.loss } satisfies WorkerReply, [r.weights.buffer as ArrayBuffer]);
      }
    } catch (err) {
      const e = toFedmartError(err);
      port.postMessage({ type: 'error', code: e.code, message: e.message } satisfies WorkerReply);
    }
  })();
});
