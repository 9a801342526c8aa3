/**
 * The text classifier as a task of the seam (`client-node/src/task.ts`):
 * a partner's own labelled texts, featurized locally (hashing: no
 * vocabulary leaves), trained by plain SGD or DP-SGD, evaluated on the
 * partner's validation texts. Only the joint vector (emb, head, bias) is
 * aggregated; the texts and labels never leave.
 *
 * Validation metrics are chosen so that the coordinator's example-weighted
 * mean reconstructs pooled figures exactly: `loss` (NLL at T = 1),
 * `nll_t<k>` (NLL at temperature TEMPERATURES[k], for federated temperature
 * scaling), `accuracy`, and per-class `tp_c`, `fp_c`, `fn_c` as fractions of
 * the partner's validation rows (so the weighted mean is the pooled count /
 * pooled rows, and macro-F1 follows) when there are ≤ 16 classes.
 */
import type { PartnerTask } from '@fedmart/shared/task/types';
import { FedmartError } from '@fedmart/shared/errors';
import { recordLevelCharge } from '@fedmart/shared/dp/plan';
import { cryptoRandomSource, gaussianNoise } from '@fedmart/shared/dp/gaussian';
import { perExampleClipFactor, poissonSample } from '@fedmart/shared/dp/sampling';
import { controlOffset, sgdRateSum, trainableLength, weightingOptions, evaluateDocs, exampleGradient, shapeOfLayout, trainSgd, viewParams, Scratch, type Docs, type EvalStats, type TextModelShape, type TextParams, type ClassWeighting } from './fasttext.ts';

/** Task id of the text classifier. */
export const TEXT_TASK_ID = 'text';

/** The federation's `taskSpec` for text. */
export interface TextTaskSpec {
  buckets: number;
  dim: number;
  classes: string[];
  /**
   * How each partner corrects for its own label mix: 'logit-adjust' (default;
   * trains on softmax(z + log π_local), see `logitAdjustment`), 'balanced'
   * (loss weights n/(C·n_c), capped at 10) or 'none'.
   */
  classWeighting: ClassWeighting;
  /** Feature dropout of local SGD (absent: 0, the behaviour before it existed). Not applied under DP-SGD. */
  featureDropout?: number;
}

/** Most classes for which per-class counts are reported (3 metrics per class, 64 metrics at most). */
export const MAX_CLASS_METRICS = 16;

const yieldNow = () => new Promise<void>((r) => setImmediate(r));

/** A tick that yields to the event loop once 20 ms have passed since the last yield. */
function yieldEvery20ms(): () => Promise<void> | undefined {
  let last = Date.now();
  return () => {
    if (Date.now() - last < 20) return undefined;
    return yieldNow().then(() => {
      last = Date.now();
    });
  };
}

/** The metrics of {@link evaluateDocs} as a task reports them. */
export function evalMetrics(st: EvalStats, C: number): Record<string, number> {
  const n = Math.max(1, st.n);
  const m: Record<string, number> = { loss: st.nll[0]!, accuracy: st.accuracy };
  for (const [k, v] of st.nll.entries()) m[`nll_t${k}`] = v;
  if (C <= MAX_CLASS_METRICS) {
    for (let c = 0; c < C; c++) {
      let fp = 0;
      let fn = 0;
      for (let o = 0; o < C; o++) if (o !== c) (fp += st.confusion[o * C + c]!), (fn += st.confusion[c * C + o]!);
      m[`tp_${c}`] = st.confusion[c * C + c]! / n;
      m[`fp_${c}`] = fp / n;
      m[`fn_${c}`] = fn / n;
    }
  }
  return m;
}

/**
 * Macro-F1 from aggregated metrics (`eval_tp_c`… or `tp_c`…), or NaN when they are absent.
 * @param m - metrics
 * @param C - classes
 * @param prefix - '' or 'eval_'
 */
export function macroF1FromMetrics(m: Record<string, number>, C: number, prefix = ''): number {
  for (let c = 0; c < C; c++) if (m[`${prefix}tp_${c}`] === undefined || m[`${prefix}fp_${c}`] === undefined || m[`${prefix}fn_${c}`] === undefined) return Number.NaN;
  let sum = 0;
  let k = 0;
  for (let c = 0; c < C; c++) {
    const tp = m[`${prefix}tp_${c}`]!;
    const den = 2 * tp + m[`${prefix}fp_${c}`]! + m[`${prefix}fn_${c}`]!;
    if (den === 0) continue;
    sum += (2 * tp) / den;
    k++;
  }
  return k ? sum / k : 0;
}

/**
 * DP-SGD over one partner's texts (Abadi et al. 2016, Algorithm 1): each
 * step Poisson-samples examples at rate q (CSPRNG), clips each example's
 * joint gradient to C using the closed-form norm of `exampleGradient`, adds
 * N(0, σ²C²) to every coordinate of the sum, divides by the expected batch
 * q·n and takes a plain SGD step. Modifies `p` in place.
 * @returns q and the number of steps (for the exact charge)
 */
export async function dpSgdText(p: TextParams, docs: Docs, o: { clip: number; noiseMultiplier: number; sampleRate?: number | undefined; batchSize: number; localEpochs: number; learningRate: number; classWeights?: Float64Array | undefined; logitOffsets?: Float64Array | undefined }): Promise<{ q: number; steps: number }> {
  if (!(o.clip > 0) || !(o.noiseMultiplier > 0)) throw new FedmartError('CONFIG_ERROR', `DP-SGD needs clip > 0 and noise multiplier > 0, got ${o.clip} and ${o.noiseMultiplier}`);
  const { q, steps } = recordLevelCharge({ sampleRate: o.sampleRate, batchSize: o.batchSize, localEpochs: o.localEpochs, numExamples: docs.n });
  const s = new Scratch(p.dim, p.classes);
  const rows = new Int32Array(docs.n);
  const sum = { emb: new Float64Array(p.emb.length), head: new Float64Array(p.head.length), bias: new Float64Array(p.bias.length) };
  const expected = q * docs.n;
  for (let step = 0; step < steps; step++) {
    const count = poissonSample(docs.n, q, rows, cryptoRandomSource);
    for (let k = 0; k < count; k++) {
      const i = rows[k]!;
      const w = o.classWeights ? o.classWeights[docs.labels[i]!]! : 1;
      const { sqNorm } = exampleGradient(p, docs, i, s, w, true, o.logitOffsets);
      const f = perExampleClipFactor(sqNorm, o.clip);
      for (let c = 0; c < p.classes; c++) sum.bias[c] = sum.bias[c]! + f * s.g[c]!;
      for (let j = 0; j < p.dim; j++) {
        const hj = s.h[j]! * f;
        for (let c = 0; c < p.classes; c++) sum.head[j * p.classes + c] = sum.head[j * p.classes + c]! + hj * s.g[c]!;
      }
      const start = docs.offsets[i]!;
      const end = docs.offsets[i + 1]!;
      const fr = f / Math.sqrt(Math.max(1, end - start));
      for (let kk = start; kk < end; kk++) {
        const r = docs.ids[kk]!;
        const base = r * p.dim;
        for (let j = 0; j < p.dim; j++) sum.emb[base + j] = sum.emb[base + j]! + fr * s.gh[j]!;
      }
    }
    const std = o.noiseMultiplier * o.clip;
    const lr = o.learningRate / expected;
    for (const [name, arr] of [['bias', p.bias], ['head', p.head], ['emb', p.emb]] as const) {
      const acc2 = sum[name];
      const noise = gaussianNoise(acc2.length, std, cryptoRandomSource);
      for (let x = 0; x < acc2.length; x++) {
        arr[x] = arr[x]! - lr * (acc2[x]! + noise[x]!);
        acc2[x] = 0;
      }
    }
    if (step % 4 === 3) await yieldNow();
  }
  return { q, steps };
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A partner's local texts, featurized and split. */
export interface TextPartnerData {
  train: Docs;
  val: Docs;
}

/**
 * The text task for one partner.
 * @param data - the partner's featurized train and validation texts (labels index the federation's classes)
 * @returns a PartnerTask for `startPartnerAgent({ task })` / `runFederation`
 */
export function textTask(data: TextPartnerData): PartnerTask {
  let shape: TextModelShape | null = null;
  // SCAFFOLD (when the layout has ctrl: tensors): this partner's control variate c_i, and the one
  // computed in the last round it trained, adopted once the global control variate has moved (the
  // round committed); a round that never committed leaves c_i as it was.
  let ctrlAt: number | null = null;
  let ci: Float32Array | null = null;
  let pending: { ci: Float32Array; against: Float32Array } | null = null;
  let weighting: ClassWeighting = 'logit-adjust';
  let featureDropout = 0;
  const need = (): TextModelShape => {
    if (!shape) throw new FedmartError('UNAVAILABLE', 'the text task has no model yet (no welcome received)');
    return shape;
  };
  const weights = () => weightingOptions(weighting, data.train.labels, need().classes.length);
  return {
    id: TEXT_TASK_ID,
    numExamples: data.train.n,
    accept(model, taskSpec) {
      const s = shapeOfLayout(model as never);
      const spec = taskSpec as Partial<TextTaskSpec> | undefined;
      if (spec?.buckets !== undefined && (spec.buckets !== s.buckets || spec.dim !== s.dim)) throw new FedmartError('CONFIG_ERROR', `the federation's text taskSpec (${spec.buckets}×${spec.dim}) disagrees with its layout (${s.buckets}×${s.dim})`);
      let maxLabel = -1;
      for (const y of data.train.labels) maxLabel = Math.max(maxLabel, y);
      for (const y of data.val.labels) maxLabel = Math.max(maxLabel, y);
      if (maxLabel >= s.classes.length) throw new FedmartError('DATA_ERROR', `this partner has label index ${maxLabel} but the federation's model has ${s.classes.length} classes (${s.classes.join(', ')}); map local labels onto the federation's classes`);
      if (spec?.classWeighting !== undefined && !['logit-adjust', 'balanced', 'none'].includes(spec.classWeighting)) throw new FedmartError('CONFIG_ERROR', `the federation's text taskSpec has classWeighting "${String(spec.classWeighting)}"; use logit-adjust, balanced or none`);
      weighting = spec?.classWeighting ?? 'logit-adjust';
      const fd = spec?.featureDropout ?? 0;
      if (typeof fd !== 'number' || !(fd >= 0 && fd < 1)) throw new FedmartError('CONFIG_ERROR', `the federation's text taskSpec has featureDropout ${String(fd)}; use a number in [0, 1)`);
      featureDropout = fd;
      const at = controlOffset(model as never, s);
      if (at !== ctrlAt || (shape && trainableLength(shape) !== trainableLength(s))) (ci = null), (pending = null);
      ctrlAt = at;
      shape = s;
    },
    round({ weights: global, config, seed }) {
      const s = need();
      const fresh = () => {
        const w = Float32Array.from(global);
        return { w, p: viewParams(w, s) };
      };
      const diff = (w: Float32Array) => {
        for (let i = 0; i < w.length; i++) w[i] = w[i]! - global[i]!;
        return w;
      };
      return {
        plain: async () => {
          const { w, p } = fresh();
          const cw = weights();
          const train = (control?: Float32Array) => trainSgd(p, data.train, { learningRate: config.learningRate, epochs: config.localEpochs, seed, ...cw, featureDropout, ...(control ? { control } : {}), onEpoch: yieldNow, onTick: yieldEvery20ms() });
          if (ctrlAt === null) {
            const loss = await train(); // before diff(w): an object literal evaluates its fields in order
            return { delta: diff(w), metrics: { loss } };
          }
          // SCAFFOLD option II (Karimireddy et al. 2020, Algorithm 1): y ← y − η(g(y) + c − c_i) each step;
          // c_i⁺ = c_i − c + (x − y)/(Σ η); upload (y − x, c_i⁺ − c_i). The weighted FedAvg of the second
          // part moves the global c by Σ_i p_i (c_i⁺ − c_i), so c stays the example-weighted mean of the c_i.
          const T = trainableLength(s);
          const c = global.subarray(ctrlAt, ctrlAt + T);
          if (pending && !sameValues(pending.against, c)) ci = pending.ci;
          pending = null;
          ci ??= Float32Array.from(c); // a new partner starts with c_i = c (no correction in its first round); accept() resets it when the layout changes
          const correction = new Float32Array(T);
          for (let i = 0; i < T; i++) correction[i] = c[i]! - ci[i]!;
          const loss = await train(correction);
          const rate = sgdRateSum(config.learningRate, config.localEpochs * data.train.n);
          const next = new Float32Array(T);
          for (let i = 0; i < T; i++) next[i] = ci[i]! - c[i]! + (global[i]! - w[i]!) / rate;
          const delta = diff(w);
          for (let i = 0; i < T; i++) delta[ctrlAt + i] = next[i]! - ci[i]!;
          pending = { ci: next, against: Float32Array.from(c) };
          return { delta, metrics: { loss } };
        },
        recordDp: async (dp) => {
          if (ctrlAt !== null) throw new FedmartError('CONFIG_ERROR', 'this text federation carries SCAFFOLD control tensors (ctrl:), which record-level DP does not support (the control update would need its own clipping and noise); create it without them (fedmart scenario text simulate --drift-correction none, the default under --dp)');
          const { w, p } = fresh();
          const cw = weights();
          const r = await dpSgdText(p, data.train, { ...dp, batchSize: config.batchSize, localEpochs: config.localEpochs, learningRate: config.learningRate, ...cw });
          return { delta: diff(w), q: r.q, steps: r.steps };
        },
      };
    },
    async evaluate(w) {
      const s = need();
      const st = evaluateDocs(viewParams(w, s), data.val);
      return { numExamples: data.val.n, metrics: evalMetrics(st, s.classes.length) };
    },
  };
}

