/**
 * The federated text classifier: a fastText-style model (Joulin, Grave,
 * Bojanowski, Mikolov 2017, "Bag of Tricks for Efficient Text
 * Classification", EACL): hashed features → rows of one embedding table,
 * pooled into a document vector h = Σ rows / √n (the "sqrtn" combiner of
 * TensorFlow's embedding_lookup_sparse), then a linear softmax head. With a
 * plain mean, h moves by lr·∂h/n per example, so long texts (mails, movie
 * reviews: 500–1,500 features) barely moved the embeddings and a class-weighted
 * bias took over (SpamAssassin, 3 classes: validation accuracy 0.04 after 4
 * epochs at lr 0.1 with the mean; 0.96 with √n at the same rate).
 *
 * Features (no vocabulary, so partners never exchange one; the hashing
 * trick of Weinberger et al. 2009):
 * - word unigrams and bigrams of lower-cased, NFKC-normalised tokens
 *   (letters/digits runs; each CJK character is its own token, so Chinese
 *   needs no segmenter);
 * - character 2- and 3-grams of each CJK run (Chinese words without a
 *   segmenter). Latin words get no character n-grams: on English reviews
 *   they quadrupled the features for no gain in validation loss.
 * Each feature is hashed (FNV-1a 32-bit, with a per-kind prefix) into
 * `buckets` rows.
 *
 * Training is plain SGD on the class-weighted softmax cross-entropy, with
 * sparse updates (only the rows an example touches), computed by hand in
 * Float32Arrays: per-example cost is O(features × dim + dim × classes).
 * The joint parameters (one flat vector, the federation's tensor layout) are
 * `emb` [buckets, dim], `head` [dim, classes], `bias` [classes]; the class
 * names ride in the layout as one-element tensors `class:<name>` so a
 * published model is self-describing through the ModelRegistry.
 *
 * Record-level DP: DP-SGD (Abadi et al. 2016, Algorithm 1) with the
 * per-example gradient norm in closed form (see {@link exampleGradient}).
 *
 * Pure computation; no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { seededRandom } from '@fedmart/shared/model';
import { CONTROL_VARIATE_PREFIX, tensorOffsets, type TensorLayoutSpec } from '@fedmart/shared/task/layout';

/** The model's shape. */
export interface TextModelShape {
  buckets: number;
  dim: number;
  classes: string[];
}

/**
 * Default: 2^17 buckets × 16 dims ≈ 2.1 M joint parameters (8.4 MB per dense
 * update). With feature dropout, 2^17 rows beat 2^16 on the pooled validation
 * loss of Austen (0.532 vs 0.577, in-process FedAvg, 4 partners at
 * Dirichlet 0.5, 10 × 3 epochs at lr 0.05); 2^18 gave no further gain (0.527).
 */
export const DEFAULT_BUCKETS = 1 << 17;
/**
 * Default feature dropout (see {@link SgdOptions.featureDropout}): on the
 * same Austen setup the pooled validation loss went 0.651 (none) → 0.577
 * (0.5) at 2^16 rows; 0.7 gave 0.567 but slower fits on short texts.
 */
export const DEFAULT_FEATURE_DROPOUT = 0.5;
export const DEFAULT_DIM = 16;

const CLASS_PREFIX = 'class:';

/**
 * The joint tensor layout of a text model.
 * @param s - buckets, dim and class names (each ≤ 94 characters, distinct)
 * @returns the layout (emb uniform ±1/dim as fastText; head and bias zero)
 */
export function textLayout(s: TextModelShape, o: { control?: boolean } = {}): TensorLayoutSpec {
  if (s.classes.length < 2) throw new FedmartError('DATA_ERROR', `a text classifier needs at least 2 classes, got ${s.classes.length}; check the --label column`);
  for (const c of s.classes) if (c.length === 0 || c.length > 100 - CLASS_PREFIX.length) throw new FedmartError('DATA_ERROR', `class name "${c.slice(0, 40)}" must have 1 to ${100 - CLASS_PREFIX.length} characters`);
  return {
    kind: 'tensors',
    tensors: [
      { name: 'emb', shape: [s.buckets, s.dim], init: { type: 'uniform', limit: 1 / s.dim } },
      { name: 'head', shape: [s.dim, s.classes.length], init: { type: 'zeros' } },
      { name: 'bias', shape: [s.classes.length], init: { type: 'zeros' } },
      ...s.classes.map((c) => ({ name: CLASS_PREFIX + c, shape: [1], init: { type: 'zeros' as const } })),
      ...(o.control
        ? [
            { name: CONTROL_VARIATE_PREFIX + 'emb', shape: [s.buckets, s.dim], init: { type: 'zeros' as const } },
            { name: CONTROL_VARIATE_PREFIX + 'head', shape: [s.dim, s.classes.length], init: { type: 'zeros' as const } },
            { name: CONTROL_VARIATE_PREFIX + 'bias', shape: [s.classes.length], init: { type: 'zeros' as const } },
          ]
        : []),
    ],
  };
}

// The SCAFFOLD control-variate tensors (Karimireddy et al., ICML 2020, "SCAFFOLD: Stochastic Controlled Averaging
// for Federated Learning"), named with the shared CONTROL_VARIATE_PREFIX: `ctrl:emb`, `ctrl:head`, `ctrl:bias`
// mirror the trainable tensors and hold the server control variate c. They ride in the joint vector, so FedAvg
// (and the secure sum) aggregates the partners' control updates exactly as it aggregates their model updates:
// no protocol change. Prediction ignores them.

/** Floats of the trainable tensors emb, head, bias (contiguous at the start of the vector, in that order). */
export function trainableLength(s: TextModelShape): number {
  return s.buckets * s.dim + s.dim * s.classes.length + s.classes.length;
}

/**
 * Where the control variate c sits in a joint vector, or null when the layout has none.
 * @returns the offset of `ctrl:emb` (the control block is trainableLength floats long, mirroring emb, head, bias)
 */
export function controlOffset(spec: { kind: string; tensors?: { name: string; shape: number[] }[] }, s: TextModelShape): number | null {
  const t = spec.kind === 'tensors' ? spec.tensors ?? [] : [];
  const names = t.map((x) => x.name);
  if (!names.includes(CONTROL_VARIATE_PREFIX + 'emb')) return null;
  const want = [CONTROL_VARIATE_PREFIX + 'emb', CONTROL_VARIATE_PREFIX + 'head', CONTROL_VARIATE_PREFIX + 'bias'];
  const tail = names.slice(names.length - 3);
  if (tail.join() !== want.join()) throw new FedmartError('UNPROCESSABLE', `a text model's control tensors must be the last three, ${want.join(', ')}; got ${tail.join(', ')}`);
  return trainableLength(s) + s.classes.length;
}

/**
 * Read a text model's shape back from its layout (a published model).
 * @throws FedmartError UNPROCESSABLE if the layout is not a text model's
 */
export function shapeOfLayout(spec: { kind: string; tensors?: { name: string; shape: number[] }[] }): TextModelShape {
  const t = spec.kind === 'tensors' ? spec.tensors ?? [] : [];
  const emb = t.find((x) => x.name === 'emb');
  const head = t.find((x) => x.name === 'head');
  const classes = t.filter((x) => x.name.startsWith(CLASS_PREFIX)).map((x) => x.name.slice(CLASS_PREFIX.length));
  const ctrl = t.find((x) => x.name === CONTROL_VARIATE_PREFIX + 'emb');
  if (ctrl && (ctrl.shape[0] !== emb?.shape[0] || ctrl.shape[1] !== emb?.shape[1])) throw new FedmartError('UNPROCESSABLE', `this text model's control tensor ${CONTROL_VARIATE_PREFIX}emb is ${ctrl.shape.join('×')} but emb is ${emb?.shape.join('×')}; it was not written by fedmart`);
  if (!emb || !head || emb.shape.length !== 2 || head.shape[1] !== classes.length || t[0] !== emb) throw new FedmartError('UNPROCESSABLE', 'this model is not a fedmart text model (no emb/head/bias/class: tensors); pass a model trained by "fedmart scenario text"');
  return { buckets: emb.shape[0]!, dim: emb.shape[1]!, classes };
}

// ---------------------------------------------------------------- features

const CJK = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]/u;
const TOKEN = /[\p{L}\p{N}]+/gu;

function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Hashed feature ids of a text (with repeats: a repeated feature counts twice in the average).
 * @param text - any text
 * @param buckets - table rows
 * @returns bucket ids; at least one (an empty text maps to the "empty" feature)
 */
export function featurize(text: string, buckets: number): Int32Array {
  const out: number[] = [];
  const add = (s: string, kind: number) => out.push(fnv1a(s, kind) % buckets);
  const tokens: string[] = [];
  for (const m of text.normalize('NFKC').toLowerCase().matchAll(TOKEN)) {
    const run = m[0];
    if (CJK.test(run)) {
      // Split mixed runs: each CJK character is a token; Latin parts stay words.
      let latin = '';
      const chars = [...run];
      let cjk = '';
      const flushCjk = () => {
        if (!cjk) return;
        const cs = [...cjk];
        for (let i = 0; i < cs.length; i++) {
          tokens.push(cs[i]!);
          if (i + 1 < cs.length) add(cs[i]! + cs[i + 1]!, 3);
          if (i + 2 < cs.length) add(cs[i]! + cs[i + 1]! + cs[i + 2]!, 3);
        }
        cjk = '';
      };
      for (const ch of chars) {
        if (CJK.test(ch)) {
          if (latin) tokens.push(latin), (latin = '');
          cjk += ch;
        } else {
          flushCjk();
          latin += ch;
        }
      }
      flushCjk();
      if (latin) tokens.push(latin);
    } else tokens.push(run);
  }
  for (let i = 0; i < tokens.length; i++) {
    const w = tokens[i]!;
    add(w, 1);
    if (i + 1 < tokens.length) add(w + ' ' + tokens[i + 1]!, 2);
  }
  if (out.length === 0) add('', 5);
  return Int32Array.from(out);
}

/** Featurized documents: ids of doc i are ids[offsets[i] .. offsets[i+1]). */
export interface Docs {
  ids: Int32Array;
  offsets: Int32Array;
  labels: Int32Array;
  n: number;
}

/**
 * Featurize a labelled corpus.
 * @param texts - documents
 * @param labels - class index of each (−1 allowed for unlabelled)
 * @param buckets - table rows
 */
export function featurizeAll(texts: readonly string[], labels: ArrayLike<number>, buckets: number): Docs {
  const parts = texts.map((t) => featurize(t, buckets));
  const offsets = new Int32Array(parts.length + 1);
  for (let i = 0; i < parts.length; i++) offsets[i + 1] = offsets[i]! + parts[i]!.length;
  const ids = new Int32Array(offsets[parts.length]!);
  for (let i = 0; i < parts.length; i++) ids.set(parts[i]!, offsets[i]!);
  return { ids, offsets, labels: Int32Array.from(labels), n: parts.length };
}

// ---------------------------------------------------------------- model math

/** Views of the flat joint vector. */
export interface TextParams {
  emb: Float32Array;
  head: Float32Array;
  bias: Float32Array;
  dim: number;
  classes: number;
}

/** Split a flat joint vector into the model's tensors (views, no copy). */
export function viewParams(weights: Float32Array, shape: TextModelShape): TextParams {
  const off = tensorOffsets(textLayout(shape));
  const v = (name: string) => weights.subarray(off[name]!.offset, off[name]!.offset + off[name]!.length);
  return { emb: v('emb'), head: v('head'), bias: v('bias'), dim: shape.dim, classes: shape.classes.length };
}

/** Scratch for one example. */
export class Scratch {
  readonly h: Float32Array;
  readonly z: Float64Array;
  readonly g: Float64Array;
  readonly gh: Float64Array;
  constructor(dim: number, classes: number) {
    this.h = new Float32Array(dim);
    this.z = new Float64Array(classes);
    this.g = new Float64Array(classes);
    this.gh = new Float64Array(dim);
  }
}

/**
 * Forward pass: h = Σ rows / √n, z = h·W + b, then softmax(z / T) into `s.z`.
 * @returns nothing; probabilities in s.z
 */
export function forward(p: TextParams, ids: Int32Array, start: number, end: number, s: Scratch, temperature = 1, logitOffsets?: Float64Array): void {
  const { dim, classes, emb, head, bias } = p;
  const h = s.h;
  h.fill(0);
  const n = end - start;
  for (let k = start; k < end; k++) {
    const base = ids[k]! * dim;
    for (let j = 0; j < dim; j++) h[j] = h[j]! + emb[base + j]!;
  }
  const inv = 1 / Math.sqrt(Math.max(1, n));
  for (let j = 0; j < dim; j++) h[j] = h[j]! * inv;
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    let z = bias[c]! + (logitOffsets ? logitOffsets[c]! : 0);
    for (let j = 0; j < dim; j++) z += h[j]! * head[j * classes + c]!;
    z /= temperature;
    s.z[c] = z;
    if (z > max) max = z;
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += s.z[c] = Math.exp(s.z[c]! - max);
  for (let c = 0; c < classes; c++) s.z[c] = s.z[c]! / sum;
}

/**
 * Class probabilities of one text.
 * @param p - model tensors
 * @param ids - the text's features ({@link featurize})
 * @param temperature - calibration temperature (1 = raw)
 */
export function predictProba(p: TextParams, ids: Int32Array, temperature = 1): Float64Array {
  const s = new Scratch(p.dim, p.classes);
  forward(p, ids, 0, ids.length, s, temperature);
  return s.z.slice();
}

/**
 * Gradient pieces of one example's weighted cross-entropy, after {@link forward}:
 * g = w·(p − onehot) (∂/∂z), gh = W·g (∂/∂h). The full gradient is
 * ∂W = h ⊗ g, ∂b = g, ∂emb[r] = (count_r / √n)·gh, so its squared L2 norm is
 * ‖g‖²(‖h‖² + 1) + ‖gh‖²·Σ_r count_r² / n — exact, without materialising it.
 * @returns the example's loss and its gradient's squared norm
 */
export function exampleGradient(p: TextParams, docs: Docs, i: number, s: Scratch, weight: number, wantNorm: boolean, logitOffsets?: Float64Array): { loss: number; sqNorm: number } {
  const start = docs.offsets[i]!;
  const end = docs.offsets[i + 1]!;
  forward(p, docs.ids, start, end, s, 1, logitOffsets);
  const y = docs.labels[i]!;
  const { dim, classes, head } = p;
  const loss = -Math.log(Math.max(s.z[y]!, 1e-12)) * weight;
  let gg = 0;
  for (let c = 0; c < classes; c++) {
    const g = (s.z[c]! - (c === y ? 1 : 0)) * weight;
    s.g[c] = g;
    gg += g * g;
  }
  let hh = 0;
  let ghh = 0;
  for (let j = 0; j < dim; j++) {
    let v = 0;
    for (let c = 0; c < classes; c++) v += head[j * classes + c]! * s.g[c]!;
    s.gh[j] = v;
    ghh += v * v;
    hh += s.h[j]! * s.h[j]!;
  }
  if (!wantNorm) return { loss, sqNorm: Number.NaN };
  // Σ_r count_r² / n, with a small map (documents are short).
  const counts = new Map<number, number>();
  for (let k = start; k < end; k++) counts.set(docs.ids[k]!, (counts.get(docs.ids[k]!) ?? 0) + 1);
  const n = end - start;
  let rr = 0;
  for (const c of counts.values()) rr += (c * c) / n;
  return { loss, sqNorm: gg * (hh + 1) + ghh * rr };
}

/**
 * Apply −lr·factor·(this example's gradient) to the parameters in place (sparse in emb).
 * Uses h, g, gh left by {@link exampleGradient}; W is updated after gh was computed.
 */
export function applyExample(p: TextParams, docs: Docs, i: number, s: Scratch, step: number): void {
  const { dim, classes, head, bias, emb } = p;
  for (let c = 0; c < classes; c++) bias[c] = bias[c]! - step * s.g[c]!;
  for (let j = 0; j < dim; j++) {
    const hj = s.h[j]! * step;
    if (hj === 0) continue;
    for (let c = 0; c < classes; c++) head[j * classes + c] = head[j * classes + c]! - hj * s.g[c]!;
  }
  const start = docs.offsets[i]!;
  const end = docs.offsets[i + 1]!;
  const f = step / Math.sqrt(Math.max(1, end - start));
  for (let k = start; k < end; k++) {
    const base = docs.ids[k]! * dim;
    for (let j = 0; j < dim; j++) emb[base + j] = emb[base + j]! - f * s.gh[j]!;
  }
}

/**
 * Class weights n / (C_present · n_c), capped at `cap`, 0 for absent classes
 * (the usual "balanced" weighting; computed from a partner's own labels).
 */
export function balancedClassWeights(labels: Int32Array, classes: number, cap = 10): Float64Array {
  const counts = new Float64Array(classes);
  for (const y of labels) counts[y] = counts[y]! + 1;
  const present = counts.filter((c) => c > 0).length;
  const w = new Float64Array(classes);
  for (let c = 0; c < classes; c++) w[c] = counts[c]! > 0 ? Math.min(cap, labels.length / (present * counts[c]!)) : 0;
  return w;
}

/** Settings of {@link trainSgd}. */
export interface SgdOptions {
  learningRate: number;
  epochs: number;
  seed: number;
  /** Per-class loss weights (default: all 1). */
  classWeights?: Float64Array;
  /** Added to the logits while training (logit adjustment, {@link logitAdjustment}); not at prediction. */
  logitOffsets?: Float64Array;
  /**
   * Feature dropout: each occurrence of a feature is left out of an example's
   * forward and backward pass with this probability, drawn anew every epoch
   * (word dropout, Iyyer et al. 2015, "Deep Unordered Composition Rivals
   * Syntactic Methods for Text Classification", ACL). Default 0.
   */
  featureDropout?: number;
  /**
   * SCAFFOLD drift correction c − c_i (length {@link trainableLength}, laid out as emb, head, bias):
   * every step also subtracts lr·correction from every trainable coordinate (Karimireddy et al. 2020,
   * Algorithm 1, line 10). Dense, so it is applied in batches of {@link CONTROL_BATCH} steps (the
   * summed rates of the batch at once); the total rate applied is {@link sgdRateSum}.
   */
  control?: Float32Array;
  /** Called between epochs (yield to the event loop in an agent). */
  onEpoch?: (epoch: number) => Promise<void> | void;
  /**
   * Called every 32 examples; an agent returns a promise when it is time to
   * yield to the event loop (so Socket.IO keeps answering pings while a long
   * epoch runs on a loaded machine), else nothing.
   */
  onTick?: () => Promise<void> | void;
}

/**
 * Plain SGD, one example at a time in a seeded shuffled order, lr decaying
 * linearly to 0.1·lr over the call (fastText's schedule, floored), in place.
 * @returns the mean training loss of the last epoch
 */
export async function trainSgd(p: TextParams, docs: Docs, o: SgdOptions): Promise<number> {
  const s = new Scratch(p.dim, p.classes);
  const ctl = o.control;
  const nEmb = p.emb.length;
  const nHead = p.head.length;
  if (ctl && ctl.length !== nEmb + nHead + p.bias.length) throw new FedmartError('CONFIG_ERROR', `SCAFFOLD correction has ${ctl.length} values; the model has ${nEmb + nHead + p.bias.length} trainable ones`);
  let pendingRate = 0;
  const applyControl = () => {
    if (!ctl || pendingRate === 0) return;
    const a = pendingRate;
    pendingRate = 0;
    for (let j = 0; j < nEmb; j++) p.emb[j] = p.emb[j]! - a * ctl[j]!;
    for (let j = 0; j < nHead; j++) p.head[j] = p.head[j]! - a * ctl[nEmb + j]!;
    for (let j = 0; j < p.bias.length; j++) p.bias[j] = p.bias[j]! - a * ctl[nEmb + nHead + j]!;
  };
  const rand = seededRandom(o.seed);
  const order = Int32Array.from({ length: docs.n }, (_, i) => i);
  const total = Math.max(1, o.epochs * docs.n);
  let seen = 0;
  let last = Number.NaN;
  const drop = o.featureDropout ?? 0;
  if (!(drop >= 0 && drop < 1)) throw new FedmartError('CONFIG_ERROR', `feature dropout must be in [0, 1), got ${drop}`);
  const kept = { ids: new Int32Array(0), offsets: new Int32Array(2), labels: new Int32Array(1), n: 1 };
  for (let e = 0; e < o.epochs; e++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    let lossSum = 0;
    for (const i of order) {
      const w = o.classWeights ? o.classWeights[docs.labels[i]!]! : 1;
      const lr = o.learningRate * (1 - 0.9 * (seen++ / total));
      if (ctl) {
        pendingRate += lr;
        if (seen % CONTROL_BATCH === 0) applyControl();
      }
      if (o.onTick && (seen & 31) === 0) {
        const t = o.onTick();
        if (t) await t;
      }
      if (w === 0) continue;
      if (drop > 0) {
        const one = droppedExample(docs, i, drop, rand, kept);
        lossSum += exampleGradient(p, one, 0, s, w, false, o.logitOffsets).loss;
        applyExample(p, one, 0, s, lr);
        continue;
      }
      lossSum += exampleGradient(p, docs, i, s, w, false, o.logitOffsets).loss;
      applyExample(p, docs, i, s, lr);
    }
    last = lossSum / Math.max(1, docs.n);
    applyControl();
    await o.onEpoch?.(e);
  }
  return last;
}

/**
 * Steps between two applications of the dense SCAFFOLD correction in {@link trainSgd}
 * (one pass over the 2.1 M trainable floats per 64 examples; the correction does not
 * depend on the weights, so batching it only delays it by at most 63 steps).
 */
export const CONTROL_BATCH = 64;

/**
 * The sum of the learning rates {@link trainSgd} applies over `steps` examples
 * (linear decay from lr to 0.1·lr): Σ_{t<T} lr·(1 − 0.9·t/T) = lr·(T − 0.45·(T − 1)).
 * SCAFFOLD's option II control update divides the model change by it (Karimireddy et al. 2020, eq. (4) with K·η_l replaced by the summed rate).
 */
export function sgdRateSum(learningRate: number, steps: number): number {
  return steps <= 0 ? 0 : learningRate * (steps - 0.45 * (steps - 1));
}

/**
 * Example i with each feature occurrence kept with probability 1 − drop (at least one kept), as a one-document Docs in `out`.
 * The kept features are rescaled by nothing: the √n pooling already normalises for the smaller count.
 */
function droppedExample(docs: Docs, i: number, drop: number, rand: () => number, out: Docs): Docs {
  const start = docs.offsets[i]!;
  const end = docs.offsets[i + 1]!;
  if (out.ids.length < end - start) out.ids = new Int32Array(Math.max(end - start, 2 * out.ids.length));
  let k = 0;
  for (let j = start; j < end; j++) if (rand() >= drop) out.ids[k++] = docs.ids[j]!;
  if (k === 0) out.ids[k++] = docs.ids[start + Math.floor(rand() * (end - start))]!;
  out.offsets[1] = k;
  out.labels[0] = docs.labels[i]!;
  return out;
}

/** Validation statistics of a model on labelled docs. */
export interface EvalStats {
  n: number;
  /** Mean negative log-likelihood at each temperature of {@link TEMPERATURES} (index 0 is T = 1). */
  nll: number[];
  accuracy: number;
  /** confusion[y * C + predicted]. */
  confusion: Float64Array;
}

/** Temperatures tried for calibration (Guo et al. 2017, "On Calibration of Modern Neural Networks"); 1 first. */
export const TEMPERATURES: readonly number[] = Object.freeze([1, 0.5, 0.7, 0.85, 1.2, 1.5, 2, 3]);

/** Evaluate on labelled docs: NLL at each temperature, accuracy and the confusion matrix. */
export function evaluateDocs(p: TextParams, docs: Docs): EvalStats {
  const s = new Scratch(p.dim, p.classes);
  const C = p.classes;
  const nll = TEMPERATURES.map(() => 0);
  const confusion = new Float64Array(C * C);
  let correct = 0;
  const logits = new Float64Array(C);
  for (let i = 0; i < docs.n; i++) {
    forward(p, docs.ids, docs.offsets[i]!, docs.offsets[i + 1]!, s);
    // Recover logits up to a constant from the T = 1 probabilities: log p.
    let arg = 0;
    for (let c = 0; c < C; c++) {
      logits[c] = Math.log(Math.max(s.z[c]!, 1e-300));
      if (s.z[c]! > s.z[arg]!) arg = c;
    }
    const y = docs.labels[i]!;
    if (arg === y) correct++;
    confusion[y * C + arg] = confusion[y * C + arg]! + 1;
    for (const [t, T] of TEMPERATURES.entries()) {
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, logits[c]! / T);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp(logits[c]! / T - max);
      nll[t] = nll[t]! + (Math.log(sum) + max - logits[y]! / T);
    }
  }
  const n = Math.max(1, docs.n);
  return { n: docs.n, nll: nll.map((x) => x / n), accuracy: correct / n, confusion };
}

/**
 * Macro-F1 from a confusion matrix (classes with no true and no predicted example are left out).
 * @param confusion - confusion[y * C + predicted]
 * @param C - number of classes
 */
export function macroF1(confusion: ArrayLike<number>, C: number): number {
  let sum = 0;
  let k = 0;
  for (let c = 0; c < C; c++) {
    let tp = confusion[c * C + c]!;
    let fp = 0;
    let fn = 0;
    for (let o = 0; o < C; o++) {
      if (o === c) continue;
      fp += confusion[o * C + c]!;
      fn += confusion[c * C + o]!;
    }
    if (tp + fp + fn === 0) continue;
    sum += (2 * tp) / (2 * tp + fp + fn);
    k++;
    tp = 0;
  }
  return k ? sum / k : 0;
}

/** The temperature with the lowest NLL in `nll` (aligned with {@link TEMPERATURES}). */
export function bestTemperature(nll: ArrayLike<number>): number {
  let best = 0;
  for (let t = 1; t < TEMPERATURES.length; t++) if (nll[t]! < nll[best]!) best = t;
  return TEMPERATURES[best]!;
}

/**
 * Logit adjustment for label skew (Menon et al. 2021, "Long-tail learning via
 * logit adjustment", ICLR; in federated learning FedLC, Zhang et al. 2022,
 * ICML): train on softmax(z + τ·log π) with π a party's own smoothed class
 * prior, predict with softmax(z). Each party then fits the same
 * prior-free scorer whatever its label mix, so updates of a party holding
 * mostly one class do not drag the joint model towards that class.
 * @param labels - the party's training labels
 * @param classes - number of classes
 * @param tau - scale τ (1 = the Bayes-consistent adjustment)
 * @returns τ·log((n_c + 1)/(n + C)) per class
 */
export function logitAdjustment(labels: Int32Array, classes: number, tau = 1): Float64Array {
  const counts = new Float64Array(classes);
  for (const y of labels) counts[y] = counts[y]! + 1;
  return counts.map((c) => tau * Math.log((c + 1) / (labels.length + classes)));
}

/** How a party corrects for its own label mix: logit adjustment, balanced loss weights, or nothing. */
export type ClassWeighting = 'logit-adjust' | 'balanced' | 'none';
export const CLASS_WEIGHTINGS: readonly ClassWeighting[] = Object.freeze(['logit-adjust', 'balanced', 'none']);

/**
 * The SGD options of a weighting mode, from a party's own training labels only.
 * @returns `classWeights` ('balanced'), `logitOffsets` ('logit-adjust') or nothing ('none')
 */
export function weightingOptions(mode: ClassWeighting, labels: Int32Array, classes: number): Pick<SgdOptions, 'classWeights' | 'logitOffsets'> {
  if (mode === 'balanced') return { classWeights: balancedClassWeights(labels, classes) };
  if (mode === 'logit-adjust') return { logitOffsets: logitAdjustment(labels, classes) };
  return {};
}
