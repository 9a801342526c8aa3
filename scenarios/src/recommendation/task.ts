/**
 * The recommendation scenario's PartnerTask (the seam of
 * `client-node/src/task.ts`): a brand trains the joint Wide & Deep
 * parameters on its own customers' interactions; its user parameters live
 * only in this object and are never part of an update.
 */
import type { PartnerTask } from '@fedmart/shared/task/types';
import { perExampleClipFactor, poissonSample } from '@fedmart/shared/dp/sampling';
import { FedmartError } from '@fedmart/shared/errors';
import { cryptoRandomSource, gaussianNoise } from '@fedmart/shared/dp/gaussian';
import { recordLevelCharge } from '@fedmart/shared/dp/plan';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import type { Rng } from '@fedmart/shared/data/rng';
import { recLayout, type RecModelSpec, type UserParams } from './model.ts';
import type { LocalRecommender, RecTrainSpec } from './local.ts';
import type { FoldInSettings } from './foldin.ts';

/** The task id federations of this scenario carry. */
export const RECOMMENDATION_TASK = 'recommendation';

/** Examples per slice of a DP-SGD step between event-loop yields. */
const DP_SLICE = 128;

/** CSPRNG-backed Rng for the mechanism's negative sampling under DP. */
const cryptoRng: Rng = {
  nextUint32() {
    const b = new Uint32Array(1);
    cryptoRandomSource.fill(new Uint8Array(b.buffer));
    return b[0]!;
  },
  nextFloat() {
    return this.nextUint32() / 4294967296;
  },
};

/** FNV-1a over the float bits: identifies a joint vector to find the user parameters evaluated with it. */
export function fingerprint(w: Float32Array): string {
  const u = new Uint32Array(w.buffer, w.byteOffset, w.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i]!, 0x01000193);
  return `${w.length}:${(h >>> 0).toString(16)}`;
}

/** A recommendation task plus what the simulation reads back locally (never sent). */
export interface RecommendationTask extends PartnerTask {
  /** Item rows touched in the last plain round (for the sparse-bytes figure). */
  lastTouchedRows(): number;
  /** The user parameters this partner held when it evaluated `weights` (the model of that round), or the current ones. */
  usersAt(weights: Float32Array): UserParams;
  readonly local: LocalRecommender;
}

/**
 * Build the task over a partner's local recommender state.
 * @param local - the partner's users, examples and local user parameters
 * @param spec - the scenario settings (model architecture, negatives, l2); the federation's taskSpec must equal it
 * @returns the task
 */
export function recommendationTask(local: LocalRecommender, spec: RecTrainSpec, o: { foldInEval?: FoldInSettings } = {}): RecommendationTask {
  const snapshots = new Map<string, UserParams>();
  let touched = 0;
  const diff = (w: Float32Array, global: Float32Array) => {
    const d = new Float32Array(w.length);
    for (let i = 0; i < d.length; i++) d[i] = w[i]! - global[i]!;
    return d;
  };
  return {
    id: RECOMMENDATION_TASK,
    local,
    numExamples: local.numExamples,
    accept(model, taskSpec) {
      if (model.kind !== 'tensors') throw new FedmartError('CONFIG_ERROR', "this partner runs the recommendation task, but the federation's model is the tabular MLP; join a recommendation federation");
      const ts = taskSpec as Partial<RecTrainSpec> | undefined;
      const m = ts?.model as RecModelSpec | undefined;
      if (!m || m.items !== local.spec.items || m.features !== local.spec.features || m.dim !== local.spec.dim || m.hidden !== local.spec.hidden) {
        throw new FedmartError('DATA_ERROR', `the federation's recommendation model (${JSON.stringify(m ?? null)}) does not match this partner's catalogue and settings (${JSON.stringify(local.spec)}); use the federation's shared item catalogue and model settings`);
      }
      if (jointParameterCount(model) !== jointParameterCount(recLayout(local.spec))) throw new FedmartError('DATA_ERROR', "the federation's tensor layout does not have the recommendation model's joint parameter count; create the federation from the scenario's layout");
    },
    round({ weights, config, seed }) {
      const t = { learningRate: config.learningRate, l2: spec.l2, negatives: spec.negatives };
      return {
        plain: async () => {
          const w = Float32Array.from(weights);
          const mask = new Uint8Array(local.spec.items);
          const loss = await local.trainYielding(w, t, config.localEpochs, seed, mask);
          touched = mask.reduce((s, x) => s + x, 0);
          return { delta: diff(w, weights), metrics: { loss, touched_rows: touched } };
        },
        recordDp: async (dp) => {
          // Interaction-level DP-SGD: one example = one observed interaction with its sampled negatives.
          const n = local.numExamples;
          const { q, steps } = recordLevelCharge({ sampleRate: dp.sampleRate, batchSize: config.batchSize, localEpochs: config.localEpochs, numExamples: n });
          const w = Float32Array.from(weights);
          const rows = new Int32Array(n);
          const rng = dp.rng ?? cryptoRandomSource;
          const negRng: Rng = dp.rng ? { nextUint32: () => { const b = new Uint32Array(1); rng.fill(new Uint8Array(b.buffer)); return b[0]!; }, nextFloat() { return this.nextUint32() / 4294967296; } } : cryptoRng;
          for (let s = 0; s < steps; s++) {
            const count = poissonSample(n, q, rows, rng);
            const run = local.model.dpStepRunner(w, local.users, local.examples, rows, count, { clip: dp.clip, sigma: dp.noiseMultiplier, expectedBatch: q * n, learningRate: config.learningRate * (spec.dpStepScale ?? 1), negatives: spec.negatives, negRng, noise: (len, std) => gaussianNoise(len, std, rng), clipFactor: perExampleClipFactor });
            // Yield inside the batch too (a large batch would otherwise hold the event loop and the agent's socket).
            while (run.step(DP_SLICE)) await new Promise((r) => setImmediate(r));
            run.finish();
            await new Promise((r) => setImmediate(r));
          }
          if (!w.every(Number.isFinite)) throw new FedmartError('INVALID_UPDATE', `DP-SGD diverged after ${steps} steps (learning rate ${config.learningRate}); lower the learning rate`);
          return { delta: diff(w, weights), q, steps };
        },
      };
    },
    async evaluate(weights) {
      // foldInEval: users are scored as the brand serves them (refitted to the frozen joint model), not with the trained state.
      const users = o.foldInEval ? local.foldInUsers(weights, o.foldInEval, 1) : local.snapshot();
      const r = local.evaluate(weights, 'val', false, users).result();
      snapshots.set(fingerprint(weights), users);
      return { numExamples: r.users, metrics: { loss: 1 - r.hr10, hr10: r.hr10, ndcg10: r.ndcg10, auc: r.auc } };
    },
    lastTouchedRows: () => touched,
    usersAt: (weights) => snapshots.get(fingerprint(weights)) ?? local.users,
  };
}
