/**
 * The client half of fedmart's differential privacy.
 *
 * Record level — DP-SGD (Abadi et al. 2016, "Deep Learning with Differential
 * Privacy", CCS; Algorithm 1):
 * - Sampling: every step includes each local example independently with
 *   probability q (Poisson sampling), drawn from the platform CSPRNG — the
 *   sampling is part of the mechanism, so it must be unpredictable. That is
 *   the sampling the RDP accountant (`shared/src/dp/rdp.ts`, Mironov et al.
 *   2019) analyses; we do not substitute shuffled fixed-size batches.
 * - Per-example gradients of the MLP, computed by hand (backpropagation
 *   vectorised over nothing: one example at a time in float64, which for
 *   these small tabular models is faster than per-op tfjs dispatch). The
 *   L2 norm of a dense layer's per-example gradient a ⊗ δ is ‖a‖·‖δ‖
 *   (Goodfellow 2015, "Efficient per-example gradient computations"), so the
 *   norm costs one pass and each gradient is clipped to C before it is ever
 *   summed; the clipped per-example vectors are never materialised.
 * - Noise: N(0, σ²C²) per coordinate on the sum, from `gaussianNoise`
 *   (CSPRNG Box–Muller; never tf.randomNormal, whose generator is seeded and
 *   predictable), then divided by the EXPECTED batch size q·n — dividing by the
 *   realised batch size would leak it.
 * - Update: the noisy gradient (plus the data-independent FedProx term, which
 *   is post-processing) goes through the same tfjs optimizer `trainLocal`
 *   uses, so Adam/momentum/SGD behave exactly as in non-private training.
 * The number of steps per round comes from `shared/src/dp/plan.ts`
 * (⌈localEpochs / q⌉), the same function the coordinator's ledger uses.
 *
 * Partner level — DP-FedAvg (McMahan et al. 2018, ICLR), client side: the
 * whole update is clipped to C ({@link privatizeUpdate}); in distributed mode
 * the partner adds its Gaussian share N(0, σ²C²/minClients) so the sum of at
 * least minClients shares carries the full noise even when the coordinator
 * only ever sees that sum. σ, C and minClients come from the terms the
 * partner pinned when it joined (`../protection/dp-terms.ts`), never from
 * the round instruction alone. The coordinator half is `DpStrategy` in
 * `coordinator/src/privacy.ts`.
 *
 * Not covered by the guarantee: evaluation metrics the partner reports on its
 * validation split, and the example count n (treated as public). The
 * training loss is not reported at record level, because it is computed on
 * the private data without noise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { parameterCount, parameterShapes, splitWeights, type ModelSpec } from '@fedmart/shared/model';
import { centredClipBit, clipToNormInPlace, l2Norm } from '@fedmart/shared/dp/clip';
import { cryptoRandomSource, gaussianNoise, type RandomSource } from '@fedmart/shared/dp/gaussian';
import { RdpAccountant } from '@fedmart/shared/dp/rdp';
import { PARTNER_LEVEL_CHARGE, recordLevelCharge } from '@fedmart/shared/dp/plan';
import type { PartnerDpPlan } from '../protection/dp-terms.ts';
import type { RoundTraining } from '@fedmart/shared/task/types';
import { perExampleClipFactor, poissonSample } from '@fedmart/shared/dp/sampling';

export { perExampleClipFactor, poissonSample };
import { initBackend } from './backend.ts';
import { DEFAULT_OPTIMIZER } from './defaults.ts';
import { disposeOptimizer, makeOptimizer, trainLocal, trainingCheckpoint, type TrainLocalArgs, type TrainLocalResult } from './trainer.ts';


/** Offsets of each layer's weight matrix and bias in the flat parameter vector. */
interface Layer {
  inDim: number;
  outDim: number;
  w: number;
  b: number;
}

function layersOf(spec: ModelSpec): Layer[] {
  const shapes = parameterShapes(spec);
  const layers: Layer[] = [];
  let off = 0;
  for (let i = 0; i < shapes.length; i += 2) {
    const [inDim, outDim] = shapes[i] as [number, number];
    layers.push({ inDim, outDim, w: off, b: off + inDim * outDim });
    off += inDim * outDim + outDim;
  }
  return layers;
}

/** Scratch buffers for one example's forward and backward pass. */
class Workspace {
  /** a[0] = input, a[l] = post-activation of layer l (pre-activation for the output). */
  readonly a: Float64Array[];
  /** δ[l] = ∂loss/∂z of layer l+1's outputs. */
  readonly d: Float64Array[];
  constructor(readonly layers: Layer[]) {
    this.a = [new Float64Array(layers[0]!.inDim), ...layers.map((l) => new Float64Array(l.outDim))];
    this.d = layers.map((l) => new Float64Array(l.outDim));
  }

  /**
   * Forward and backward pass for row `row`; leaves activations in `a` and
   * deltas in `d`.
   * @returns the example's loss and its gradient's squared L2 norm
   */
  run(params: ArrayLike<number>, x: Float32Array, y: Float32Array, row: number): { loss: number; sqNorm: number } {
    const { layers, a, d } = this;
    const in0 = layers[0]!.inDim;
    const a0 = a[0]!;
    for (let i = 0; i < in0; i++) a0[i] = x[row * in0 + i]!;
    const last = layers.length - 1;
    for (let l = 0; l <= last; l++) {
      const L = layers[l]!;
      const ain = a[l]!;
      const out = a[l + 1]!;
      for (let j = 0; j < L.outDim; j++) out[j] = params[L.b + j]!;
      for (let i = 0; i < L.inDim; i++) {
        const ai = ain[i]!;
        if (ai === 0) continue;
        const base = L.w + i * L.outDim;
        for (let j = 0; j < L.outDim; j++) out[j] = out[j]! + ai * params[base + j]!;
      }
      if (l < last) for (let j = 0; j < L.outDim; j++) if (!(out[j]! > 0)) out[j] = 0; // ReLU (0 where z ≤ 0, as tf's gradient)
    }
    const z = a[last + 1]![0]!;
    const label = y[row]!;
    const loss = Math.max(z, 0) - z * label + Math.log1p(Math.exp(-Math.abs(z)));
    d[last]![0] = 1 / (1 + Math.exp(-z)) - label;
    for (let l = last; l > 0; l--) {
      const L = layers[l]!;
      const dl = d[l]!;
      const prev = d[l - 1]!;
      const aprev = a[l]!; // post-ReLU of layer l-1: > 0 exactly where the ReLU passed
      for (let i = 0; i < L.inDim; i++) {
        if (!(aprev[i]! > 0)) {
          prev[i] = 0;
          continue;
        }
        let s = 0;
        const base = L.w + i * L.outDim;
        for (let j = 0; j < L.outDim; j++) s += params[base + j]! * dl[j]!;
        prev[i] = s;
      }
    }
    // ‖∂W‖² = ‖a‖²·‖δ‖² (outer product), ‖∂b‖² = ‖δ‖².
    let sqNorm = 0;
    for (let l = 0; l <= last; l++) {
      let aa = 0;
      for (const v of a[l]!) aa += v * v;
      let dd = 0;
      for (const v of d[l]!) dd += v * v;
      sqNorm += dd * (aa + 1);
    }
    return { loss, sqNorm };
  }

  /** out += factor · (this example's gradient), in flat parameter order. */
  accumulate(out: Float64Array, factor: number): void {
    const { layers, a, d } = this;
    for (let l = 0; l < layers.length; l++) {
      const L = layers[l]!;
      const ain = a[l]!;
      const dl = d[l]!;
      for (let i = 0; i < L.inDim; i++) {
        const ai = ain[i]! * factor;
        if (ai === 0) continue;
        const base = L.w + i * L.outDim;
        for (let j = 0; j < L.outDim; j++) out[base + j] = out[base + j]! + ai * dl[j]!;
      }
      for (let j = 0; j < L.outDim; j++) out[L.b + j] = out[L.b + j]! + factor * dl[j]!;
    }
  }
}

function checkModel(spec: ModelSpec, params: Float32Array | Float64Array): void {
  const p = parameterCount(spec);
  if (params.length !== p) throw new FedmartError('INVALID_UPDATE', `weights have ${params.length} values, the model has ${p}; train on the weights of this federation's model`);
}

/**
 * Per-example gradients of the binary cross-entropy (unclipped), one vector
 * per row — for tests and audits; training never materialises them.
 * @param spec - model architecture (MLP)
 * @param params - flat weights in wire order
 * @param x - features, row-major n × inputDim
 * @param y - 0/1 labels
 * @param rows - rows to differentiate
 * @returns one Float64Array of parameterCount(spec) values per row
 * @throws FedmartError INVALID_UPDATE when params do not fit the spec
 */
export function perExampleGradients(spec: ModelSpec, params: Float32Array | Float64Array, x: Float32Array, y: Float32Array, rows: ArrayLike<number>): Float64Array[] {
  checkModel(spec, params);
  const ws = new Workspace(layersOf(spec));
  const out: Float64Array[] = [];
  for (let k = 0; k < rows.length; k++) {
    ws.run(params, x, y, rows[k]!);
    const g = new Float64Array(params.length);
    ws.accumulate(g, 1);
    out.push(g);
  }
  return out;
}

/** Arguments of {@link noisyGradient}. */
export interface NoisyGradientArgs {
  spec: ModelSpec;
  /** Current weights (flat, wire order). */
  params: Float32Array | Float64Array;
  x: Float32Array;
  y: Float32Array;
  /** Sampled rows: the first `count` entries of `rows`. */
  rows: Int32Array;
  count: number;
  /** C: per-example L2 clipping norm. */
  clip: number;
  /** σ: noise multiplier (std of the noise on the sum is σ·C). */
  noiseMultiplier: number;
  /** q·n: the divisor (expected, not realised, batch size). */
  expectedBatch: number;
  /** Byte source of the noise (default: platform CSPRNG). */
  rng?: RandomSource;
}

/**
 * One DP-SGD gradient (Abadi et al. 2016, Algorithm 1, lines 5–8):
 * (Σ_i clip_C(∇ℓ(x_i)) + N(0, σ²C²·I)) / (q·n).
 * @param a - see {@link NoisyGradientArgs}
 * @returns the noisy mean gradient (float64), the batch's summed loss and how many examples were clipped
 * @throws FedmartError INVALID_UPDATE when the weights do not fit or a gradient is not finite
 */
export function noisyGradient(a: NoisyGradientArgs): { grad: Float64Array; lossSum: number; clipped: number } {
  checkModel(a.spec, a.params);
  const ws = new Workspace(layersOf(a.spec));
  const sum = new Float64Array(a.params.length);
  let lossSum = 0;
  let clipped = 0;
  for (let k = 0; k < a.count; k++) {
    const { loss, sqNorm } = ws.run(a.params, a.x, a.y, a.rows[k]!);
    const f = perExampleClipFactor(sqNorm, a.clip);
    if (f < 1) clipped++;
    ws.accumulate(sum, f);
    lossSum += loss;
  }
  const noise = gaussianNoise(sum.length, a.noiseMultiplier * a.clip, a.rng ?? cryptoRandomSource);
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i]! + noise[i]!) / a.expectedBatch;
  return { grad: sum, lossSum, clipped };
}

/** DP-SGD settings of one {@link trainDpSgd} call. */
export interface DpSgdOptions {
  /** C: per-example clipping norm. */
  clip: number;
  /** σ: noise multiplier. */
  noiseMultiplier: number;
  /** q (default batchSize / n, see `recordLevelCharge`). */
  sampleRate?: number | undefined;
  /** Byte source for sampling and noise (default: platform CSPRNG; tests pass a seeded one). */
  rng?: RandomSource;
}

/** Result of {@link trainDpSgd}: the mechanism's parameters for the accountant, too. */
export interface DpSgdResult extends TrainLocalResult {
  /** Sampling rate used. */
  q: number;
  /** Examples sampled over all steps. */
  sampled: number;
  /** Per-example gradients that were clipped (norm > C), over all steps. */
  clipped: number;
}

/**
 * Local training with DP-SGD: ⌈localEpochs/q⌉ steps of Poisson sampling,
 * per-example clipping, Gaussian noise and the same optimizer as
 * {@link trainLocal}. `seed` is unused: every random choice here is private
 * and comes from `dp.rng`.
 *
 * @param args - as for trainLocal, plus `dp`
 * @returns new weights, mean loss over sampled examples (local use only: not private), steps, q and counts
 * @throws FedmartError CONFIG_ERROR for a non-MLP model or bad DP settings; DATA_ERROR / INVALID_UPDATE as trainLocal
 * @example
 * const r = await trainDpSgd({ spec, weights, x, y, n, config, seed: 0, dp: { clip: 1, noiseMultiplier: 1.1 } });
 * accountant.step(r.q, 1.1, r.steps);
 */
export async function trainDpSgd(args: TrainLocalArgs & { dp: DpSgdOptions }): Promise<DpSgdResult> {
  const { spec, weights, x, y, n, config, dp } = args;
  if (spec.kind !== 'mlp') throw new FedmartError('CONFIG_ERROR', `DP-SGD supports model kind "mlp", got "${String(spec.kind)}"; use an MLP or partner-level DP`);
  if (!(dp.clip > 0 && Number.isFinite(dp.clip))) throw new FedmartError('CONFIG_ERROR', `DP-SGD clip must be a finite number > 0, got ${dp.clip}`);
  if (!(dp.noiseMultiplier > 0 && Number.isFinite(dp.noiseMultiplier))) throw new FedmartError('CONFIG_ERROR', `DP-SGD noiseMultiplier must be a finite number > 0, got ${dp.noiseMultiplier}`);
  const views = splitWeights(weights, spec);
  if (x.length !== n * spec.inputDim || y.length !== n) throw new FedmartError('DATA_ERROR', `expected ${n} rows × ${spec.inputDim} features and ${n} labels, got ${x.length} values and ${y.length} labels`);
  const { q, steps } = recordLevelCharge({ sampleRate: dp.sampleRate, batchSize: config.batchSize, localEpochs: config.localEpochs, numExamples: n });
  const rng = dp.rng ?? cryptoRandomSource;
  await initBackend();
  const shapes = parameterShapes(spec);
  const optimizer = makeOptimizer(args.optimizer ?? DEFAULT_OPTIMIZER, config.learningRate);
  const vars = views.map((v, i) => tf.variable(tf.tensor(v, shapes[i]), true));
  const params = weights.slice();
  const rows = new Int32Array(n);
  const expectedBatch = q * n;
  let sampled = 0;
  let clipped = 0;
  let lossSum = 0;
  try {
    for (let step = 0; step < steps; step++) {
      const count = poissonSample(n, q, rows, rng);
      const g = noisyGradient({ spec, params, x, y, rows, count, clip: dp.clip, noiseMultiplier: dp.noiseMultiplier, expectedBatch, rng });
      if (config.proximalMu > 0) for (let i = 0; i < g.grad.length; i++) g.grad[i] = g.grad[i]! + config.proximalMu * (params[i]! - weights[i]!);
      sampled += count;
      clipped += g.clipped;
      lossSum += g.lossSum;
      const grads: Record<string, tf.Tensor> = {};
      let off = 0;
      for (const [i, v] of vars.entries()) {
        const size = v.size;
        grads[v.name] = tf.tensor(Float32Array.from(g.grad.subarray(off, off + size)), shapes[i]);
        off += size;
      }
      optimizer.applyGradients(grads);
      tf.dispose(Object.values(grads));
      off = 0;
      for (const v of vars) {
        const data = v.dataSync() as Float32Array;
        params.set(data, off);
        off += data.length;
      }
      // Long local training must not starve the node's socket heartbeats.
      if (step % 16 === 15) await trainingCheckpoint(args.signal, args.onProgress, { step: step + 1, steps, epoch: 1 + Math.floor((step * config.localEpochs) / steps) });
    }
    if (!params.every(Number.isFinite)) {
      throw new FedmartError('INVALID_UPDATE', `DP-SGD diverged: weights became non-finite after ${steps} steps (learningRate ${config.learningRate}); lower the learning rate`);
    }
    return { weights: params, loss: sampled ? lossSum / sampled : Number.NaN, steps, q, sampled, clipped };
  } finally {
    disposeOptimizer(optimizer);
    tf.dispose(vars);
  }
}

/**
 * Client side of DP-FedAvg: clip the whole update to C (in place, exact for
 * the float32 values sent) and, in distributed mode, add this partner's
 * Gaussian share N(0, noiseStd²). Central mode with adaptive clipping leaves
 * clipping to the trusted coordinator (`plan.clipHere` false), which needs
 * the unclipped norm to count b_i.
 * @param delta - the model update (modified)
 * @param plan - this round's plan from the pinned terms (level 'partner'; `client-node/src/protection/dp-terms.ts`)
 * @param rng - byte source (default: platform CSPRNG)
 * @returns whether the update was inside the ball before clipping (adaptive clipping's b_i)
 */
export function privatizeUpdate(delta: Float32Array, plan: Pick<PartnerDpPlan, 'clip' | 'clipHere' | 'noiseStd'>, rng: RandomSource = cryptoRandomSource): { unclipped: boolean } {
  const unclipped = plan.clipHere ? clipToNormInPlace(delta, plan.clip) === 1 : l2Norm(delta) <= plan.clip;
  if (plan.noiseStd > 0) {
    const noise = gaussianNoise(delta.length, plan.noiseStd, rng);
    for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! + noise[i]!;
  }
  return { unclipped };
}

/** What one release of this partner's update costs it: `steps` steps at (q, σ) (null: no DP). */
export interface DpReleaseCharge {
  level: 'record' | 'partner';
  q: number;
  sigma: number;
  steps: number;
  delta: number;
}

/**
 * One round of local training with the round's DP plan applied: DP-SGD at
 * record level, clipping/noising of the update at partner level, plain
 * {@link trainLocal} without DP. The partner's accountant is NOT stepped
 * here: the spend is charged when the update leaves the partner (the caller
 * applies `charge` then), so a round refused or abandoned before sending
 * costs nothing. At record level `epsilon_record` reports ε after this charge.
 * @param args - trainLocal arguments (the global weights in `weights`)
 * @param plan - the round's DP plan (from the pinned terms), or null
 * @param accountant - this partner's accountant of the plan's level (read, not modified)
 * @returns the update (new weights − global), the metrics to report, the charge, and, with distributed adaptive clipping, the noised centred clip bit that joins the secure sum
 */
export async function trainRoundWithDp(args: TrainLocalArgs, plan: PartnerDpPlan | null, accountant: RdpAccountant): Promise<RoundRelease> {
  return runRoundWithDp(tabularRoundTraining(args), plan, accountant);
}

/**
 * The tabular MLP's round training (plain Adam epochs, or DP-SGD), for {@link runRoundWithDp}.
 * @param args - trainLocal arguments (the global weights in `weights`, not mutated)
 * @returns plain and record-level-DP training, each giving the update (new weights − global)
 */
export function tabularRoundTraining(args: TrainLocalArgs): RoundTraining {
  const global = args.weights;
  const diff = (w: Float32Array) => {
    const d = new Float32Array(global.length);
    for (let i = 0; i < d.length; i++) d[i] = w[i]! - global[i]!;
    return d;
  };
  return {
    plain: async () => {
      const r = await trainLocal(args);
      return { delta: diff(r.weights), metrics: { loss: r.loss } };
    },
    recordDp: async (dp) => {
      const r = await trainDpSgd({ ...args, dp });
      return { delta: diff(r.weights), q: r.q, steps: r.steps };
    },
  };
}

/** One round's update as it is released, with what releasing it costs (see {@link trainRoundWithDp}). */
export interface RoundRelease {
  delta: Float32Array;
  metrics: Record<string, number>;
  charge: DpReleaseCharge | null;
  /** Distributed adaptive clipping: the noised centred clip bit that joins the secure sum. */
  clipBit?: number;
}

export type { RoundTraining } from '@fedmart/shared/task/types';

/**
 * Apply the round's DP plan to any task's training: DP-SGD at record level
 * (the task's `recordDp`), clipping + the partner's noise share of the
 * update at partner level (here, task-independent), plain training without
 * DP. The accountant is read, not stepped: the caller charges on release.
 * @param t - the task's round training
 * @param plan - the round's DP plan (from the pinned terms), or null
 * @param accountant - this partner's accountant of the plan's level
 * @returns the update to release, its metrics and its charge
 * @throws FedmartError CONFIG_ERROR when record-level DP is asked of a task that cannot do it
 */
export async function runRoundWithDp(t: RoundTraining, plan: PartnerDpPlan | null, accountant: RdpAccountant): Promise<RoundRelease> {
  if (plan?.level === 'record') {
    if (!t.recordDp) throw new FedmartError('CONFIG_ERROR', "this partner's task cannot train with record-level DP (no per-example clipping); the federation must use partner-level DP or none for it");
    const r = await t.recordDp({ clip: plan.clip, noiseMultiplier: plan.noiseMultiplier, sampleRate: plan.sampleRate });
    const charge: DpReleaseCharge = { level: 'record', q: r.q, sigma: plan.noiseMultiplier, steps: r.steps, delta: plan.delta };
    const after = RdpAccountant.fromJSON(accountant.toJSON()).step(r.q, plan.noiseMultiplier, r.steps);
    return { delta: r.delta, metrics: { ...(r.metrics ?? {}), epsilon_record: after.epsilon(plan.delta).epsilon, dp_steps: r.steps, dp_q: r.q }, charge };
  }
  const r = await t.plain();
  const delta = r.delta;
  if (plan?.level !== 'partner') return { delta, metrics: r.metrics, charge: null };
  const { unclipped } = privatizeUpdate(delta, plan);
  const charge: DpReleaseCharge = { level: 'partner', ...PARTNER_LEVEL_CHARGE, sigma: plan.noiseMultiplier, delta: plan.delta };
  // No training loss: it is a noiseless statistic of the partner's data, which partner-level DP protects.
  if (plan.clipBitNoiseStd === null) return { delta, metrics: {}, charge };
  // The bit only ever travels noised and inside the secure sum (Andrew et al. 2021 §3, distributed form).
  const clipBit = centredClipBit(unclipped) + gaussianNoise(1, plan.clipBitNoiseStd, cryptoRandomSource)[0]!;
  return { delta, metrics: {}, charge, clipBit };
}
