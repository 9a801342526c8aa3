/**
 * The task seam, partner side (`../shared/DESIGN.md`, "Scenarios as tasks").
 *
 * The partner agent runs whatever task it is handed: how its local rows are
 * encoded, how one round of local training and evaluation runs, which
 * parameters are joint (the flat vector the coordinator aggregates, laid
 * out by the federation's `model`) and which stay local (a task may keep
 * user embeddings or per-store effects in its own state: they never leave
 * the partner), and how its metrics are named. The agent keeps everything
 * else — consent, terms pinning, identities, SecAgg, CKKS, DP accounting —
 * so protection wraps any task's joint parameters unchanged.
 *
 * The tabular binary classifier ({@link tabularTask}) is the first task;
 * scenario modules (`scenarios/<name>/`) implement others.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { PartnerTask } from '@fedmart/shared/task/types';
import type { ModelSpec } from '@fedmart/shared/model';
import { evaluate } from './ml/trainer.ts';
import { tabularRoundTraining } from './ml/dp-sgd.ts';
import { WorkerTrainer } from './ml/worker-trainer.ts';

export type { PartnerTask, RoundTraining, RecordDpOptions, TaskEvaluation, TaskRoundArgs } from '@fedmart/shared/task/types';

/** A partner's encoded local data, already split (the tabular task's input). */
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

/**
 * The first task: the binary tabular classifier (an MLP; `hidden: []` is
 * logistic regression) over encoded rows, trained with TensorFlow.js.
 * @param data - encoded local rows with the federation's data schema
 * @returns the task
 */
export function tabularTask(data: LocalData, opts: { worker?: boolean } = {}): PartnerTask {
  let spec: ModelSpec | null = null;
  const worker = opts.worker ? new WorkerTrainer({ x: data.trainX, y: data.trainY, n: data.trainN }) : null;
  const need = (): ModelSpec => {
    if (!spec) throw new FedmartError('UNAVAILABLE', 'the tabular task has no model yet (no welcome received)');
    return spec;
  };
  return {
    id: 'binary',
    numExamples: data.trainN,
    accept(model) {
      if (model.kind !== 'mlp') throw new FedmartError('CONFIG_ERROR', "this partner runs the tabular task (binary), but the federation's model is a tensor layout of another task; start the partner with that scenario's task");
      if (data.d !== model.inputDim) {
        throw new FedmartError('DATA_ERROR', `local data has ${data.d} encoded features but the federation's model expects ${model.inputDim}; use the federation's data schema (--schema) so both sides encode the same columns`);
      }
      spec = model;
      worker?.warm();
    },
    round({ weights, config, seed, signal, onProgress }) {
      if (!worker) return tabularRoundTraining({ spec: need(), weights, x: data.trainX, y: data.trainY, n: data.trainN, config, seed, signal, onProgress });
      // In the worker thread: the same training code, and stopping terminates it at once.
      const diff = (w: Float32Array) => w.map((v, i) => v - weights[i]!);
      const req = { spec: need(), weights, config, seed };
      return {
        plain: async () => {
          const r = await worker.train(req, signal, onProgress);
          return { delta: diff(r.weights), metrics: { loss: r.loss ?? Number.NaN } };
        },
        recordDp: async (dp) => {
          const r = await worker.train({ ...req, dp: { clip: dp.clip, noiseMultiplier: dp.noiseMultiplier, sampleRate: dp.sampleRate } }, signal, onProgress);
          return { delta: diff(r.weights), q: r.q!, steps: r.steps! };
        },
      };
    },
    async evaluate(weights) {
      const r = await evaluate(need(), weights, data.valX, data.valY, data.valN);
      const metrics: Record<string, number> = { loss: r.loss, accuracy: r.accuracy };
      if (Number.isFinite(r.auc)) metrics.auc = r.auc;
      return { numExamples: r.numExamples, metrics };
    },
  };
}
