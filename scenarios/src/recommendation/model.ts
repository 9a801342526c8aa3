/**
 * Wide & Deep for implicit feedback (Cheng et al. 2016, "Wide & Deep
 * Learning for Recommender Systems", DLRS), in plain Float32 arrays.
 *
 *   s(u, i) = b_i + Σ_{g ∈ G(i)} (w_g + c_{u,g}) / |G(i)|            wide: item id, item feature, user × item-feature cross
 *           + p_u · q_i + v · relu(W1ᵀ [p_u ; q_i] + b1)              deep: embeddings, a dot path and a one-hidden-layer MLP
 *
 * Joint (federated, the tensor layout): item embeddings q (items × dim),
 * item bias b, feature weights w, W1, b1, v. Local (never uploaded, the
 * FCF/FedRec pattern — Ammad-ud-din et al. 2019, Chai et al. 2020): user
 * embeddings p and the user × feature cross weights c, held by the partner
 * that owns the user.
 *
 * Training: BPR (Rendle et al. 2009) of each observed interaction against
 * `negatives` sampled unseen items; plain SGD, one example = one positive
 * interaction with its negatives. The hand-written backward pass is what
 * `fedmart bench recommendation` compares with a TensorFlow.js loop.
 *
 * The matrix-factorisation arm is the same model with `hidden: 0` and no
 * features (s = b_i + p_u · q_i).
 */
import { FedmartError } from '@fedmart/shared/errors';
import { initJointWeights, tensorOffsets, type TensorLayoutSpec } from '@fedmart/shared/task/layout';
import { createSeededRng, type Rng } from '@fedmart/shared/data/rng';

/** Architecture of the scenario's model (part of the federation's taskSpec). */
export interface RecModelSpec {
  items: number;
  /** Item feature vocabulary size (0: no item features). */
  features: number;
  dim: number;
  /** Deep MLP hidden units (0: no MLP, the MF arm). */
  hidden: number;
  /** The DP model's item tower (absent: a free embedding row and bias per item). */
  tower?: ItemTower | undefined;
}

/**
 * Item tower over public or already-released data (the model `--dp record`
 * trains): only items with `rowOf[i] >= 0` have a free embedding row and
 * bias; every item's embedding adds the mean of its item-feature embeddings
 * (public catalogue features), and its bias adds (1 + w_pop)·prior[i]
 * (a released popularity prior, dp-prior.ts). DP-SGD's noise then lands on
 * rows × dim + features × dim coordinates instead of items × dim.
 *
 *   q_i = E_{rowOf(i)} + Σ_{g∈G(i)} F_g / |G(i)|,   b_i = β_{rowOf(i)} + (1 + w_pop) · prior_i
 */
export interface ItemTower {
  /** Number of free rows. */
  rows: number;
  /** Per item: its free row, or −1. */
  rowOf: number[];
  /** Per item: the public prior added to its bias. */
  prior: number[];
}

/** The joint tensor layout of a spec (what the coordinator aggregates). */
export function recLayout(s: RecModelSpec): TensorLayoutSpec {
  const rows = s.tower ? s.tower.rows : s.items;
  const tensors: TensorLayoutSpec['tensors'] = [
    { name: 'item_emb', shape: [rows, s.dim], init: { type: 'normal', std: 0.1 } },
    { name: 'item_bias', shape: [rows], init: { type: 'zeros' } },
  ];
  if (s.tower) {
    if (s.features > 0) tensors.push({ name: 'feature_emb', shape: [s.features, s.dim], init: { type: 'normal', std: 0.05 } });
    tensors.push({ name: 'prior_w', shape: [1], init: { type: 'zeros' } });
  }
  if (s.features > 0) tensors.push({ name: 'feature_w', shape: [s.features], init: { type: 'zeros' } });
  if (s.hidden > 0) {
    tensors.push({ name: 'deep_w1', shape: [2 * s.dim, s.hidden], init: { type: 'glorot' } });
    tensors.push({ name: 'deep_b1', shape: [s.hidden], init: { type: 'zeros' } });
    tensors.push({ name: 'deep_v', shape: [s.hidden], init: { type: 'normal', std: 0.05 } });
  }
  return { kind: 'tensors', tensors };
}

/** Offsets of the joint tensors in the flat vector. */
export interface JointViews {
  q: Float32Array;
  b: Float32Array;
  w: Float32Array;
  w1: Float32Array;
  b1: Float32Array;
  v: Float32Array;
}

/**
 * Views of a flat joint vector (no copies), except with an item tower:
 * then q and b are every item's effective embedding and bias, computed
 * from the tower (read-only copies; training writes the tower's own
 * tensors, see {@link WideDeep.dpStep}).
 * @param feats - item features (needed with a tower)
 * @throws FedmartError INVALID_UPDATE when the vector does not fit the spec
 */
export function jointViews(s: RecModelSpec, flat: Float32Array, feats?: ItemFeatures): JointViews {
  const off = tensorOffsets(recLayout(s));
  const total = Object.values(off).reduce((a, t) => a + t.length, 0);
  if (flat.length !== total) throw new FedmartError('INVALID_UPDATE', `the joint vector has ${flat.length} values but the recommendation model (${s.items} items × ${s.dim}, ${s.features} features, ${s.hidden} hidden${s.tower ? `, ${s.tower.rows} free item rows` : ''}) needs ${total}`);
  const view = (name: string) => (off[name] ? flat.subarray(off[name].offset, off[name].offset + off[name].length) : new Float32Array(0));
  const rest = { w: view('feature_w'), w1: view('deep_w1'), b1: view('deep_b1'), v: view('deep_v') };
  if (!s.tower) return { q: view('item_emb'), b: view('item_bias'), ...rest };
  if (!feats) throw new FedmartError('CONFIG_ERROR', 'a recommendation model with an item tower needs the item features to compute item embeddings');
  const { rowOf, prior } = s.tower;
  const E = view('item_emb');
  const beta = view('item_bias');
  const F = view('feature_emb');
  const scale = 1 + view('prior_w')[0]!;
  const { dim, items } = s;
  const q = new Float32Array(items * dim);
  const b = new Float32Array(items);
  for (let i = 0; i < items; i++) {
    const r = rowOf[i]!;
    const qo = i * dim;
    if (r >= 0) {
      for (let k = 0; k < dim; k++) q[qo + k] = E[r * dim + k]!;
      b[i] = beta[r]!;
    }
    b[i]! += scale * prior[i]!;
    const f0 = feats.offsets[i]!;
    const f1 = feats.offsets[i + 1]!;
    if (F.length && f1 > f0) {
      const share = 1 / (f1 - f0);
      for (let t = f0; t < f1; t++) {
        const fo = feats.ids[t]! * dim;
        for (let k = 0; k < dim; k++) q[qo + k]! += share * F[fo + k]!;
      }
    }
  }
  return { q, b, ...rest };
}

/** Round-0 joint weights. */
export const initRecWeights = (s: RecModelSpec, seed: number): Float32Array => initJointWeights(recLayout(s), seed);

/** A partner's local user parameters (never uploaded). */
export interface UserParams {
  /** users × dim */
  p: Float32Array;
  /** users × features */
  c: Float32Array;
}

/** Fresh local user parameters (seeded normal(0, 0.1²) embeddings, zero crosses). */
export function initUserParams(s: RecModelSpec, users: number, seed: number): UserParams {
  const rng = createSeededRng(seed);
  const p = new Float32Array(users * s.dim);
  for (let i = 0; i < p.length; i++) p[i] = gauss(rng) * 0.1;
  return { p, c: new Float32Array(users * s.features) };
}

function gauss(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
}

/** Per-item feature lists, flattened. */
export interface ItemFeatures {
  /** offsets[i]..offsets[i+1] index `ids` */
  offsets: Int32Array;
  ids: Int32Array;
}

/** Flatten per-item feature id lists. */
export function flattenFeatures(lists: readonly Int32Array[]): ItemFeatures {
  const offsets = new Int32Array(lists.length + 1);
  for (let i = 0; i < lists.length; i++) offsets[i + 1] = offsets[i]! + lists[i]!.length;
  const ids = new Int32Array(offsets[lists.length]!);
  lists.forEach((l, i) => ids.set(l, offsets[i]!));
  return { offsets, ids };
}

/** The contributions of one score, for explanations. */
export interface ScoreParts {
  wide: number;
  deep: number;
}

/**
 * Scores every item for users quickly: the deep layer splits as
 * W1ᵀ[p; q] = W1pᵀ p + W1qᵀ q, so W1qᵀ q_i + b1 is computed once per item.
 */
export class Scorer {
  /** W1qᵀ q_i + b1 per item (items × hidden). */
  readonly itemPre: Float32Array;
  constructor(readonly spec: RecModelSpec, readonly joint: JointViews, readonly feats: ItemFeatures) {
    const { items, dim, hidden } = spec;
    this.itemPre = new Float32Array(items * hidden);
    for (let i = 0; i < items; i++) {
      for (let h = 0; h < hidden; h++) {
        let z = joint.b1[h]!;
        for (let k = 0; k < dim; k++) z += joint.w1[(dim + k) * hidden + h]! * joint.q[i * dim + k]!;
        this.itemPre[i * hidden + h] = z;
      }
    }
  }

  /** Wide and deep parts of s(u, i) for a user with embedding `p` (length dim) and crosses `c` (length features). */
  parts(p: Float32Array, c: Float32Array, userPre: Float32Array, i: number): ScoreParts {
    const wide = this.wide(c, i);
    return { wide, deep: this.deep(p, userPre, i) };
  }

  /** s(u, i) without allocating (the catalogue scan). */
  score(p: Float32Array, c: Float32Array, userPre: Float32Array, i: number): number {
    return this.wide(c, i) + this.deep(p, userPre, i);
  }

  private wide(c: Float32Array, i: number): number {
    const { b, w } = this.joint;
    let wide = b[i]!;
    const f0 = this.feats.offsets[i]!;
    const f1 = this.feats.offsets[i + 1]!;
    if (f1 > f0 && this.spec.features > 0) {
      let s = 0;
      for (let k = f0; k < f1; k++) s += w[this.feats.ids[k]!]! + c[this.feats.ids[k]!]!;
      wide += s / (f1 - f0);
    }
    return wide;
  }

  private deep(p: Float32Array, userPre: Float32Array, i: number): number {
    const { dim, hidden } = this.spec;
    const { q, v } = this.joint;
    let deep = 0;
    for (let k = 0; k < dim; k++) deep += p[k]! * q[i * dim + k]!;
    for (let h = 0; h < hidden; h++) {
      const z = this.itemPre[i * hidden + h]! + userPre[h]!;
      if (z > 0) deep += v[h]! * z;
    }
    return deep;
  }

  /** W1pᵀ p for one user. */
  userPre(p: Float32Array): Float32Array {
    const { dim, hidden } = this.spec;
    const out = new Float32Array(hidden);
    for (let h = 0; h < hidden; h++) {
      let z = 0;
      for (let k = 0; k < dim; k++) z += this.joint.w1[k * hidden + h]! * p[k]!;
      out[h] = z;
    }
    return out;
  }

  /** Scores of `candidates` (or every item when null) for user parameters (p, c). */
  scores(p: Float32Array, c: Float32Array, candidates: ArrayLike<number> | null): Float32Array {
    const pre = this.userPre(p);
    const n = candidates ? candidates.length : this.spec.items;
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) out[k] = this.score(p, c, pre, candidates ? candidates[k]! : k);
    return out;
  }
}

/** Gradient buffers of one example (joint part sparse in items). */
class Grad {
  readonly gp: Float32Array;
  readonly gc: Float32Array;
  /** Item rows touched: ids and their dim-long gradient rows, plus item-bias gradients. */
  readonly itemIds: Int32Array;
  readonly gq: Float32Array;
  readonly gb: Float32Array;
  itemCount = 0;
  readonly gw: Float32Array;
  readonly gw1: Float32Array;
  readonly gb1: Float32Array;
  readonly gv: Float32Array;
  constructor(readonly s: RecModelSpec, maxItems: number) {
    this.gp = new Float32Array(s.dim);
    this.gc = new Float32Array(s.features);
    this.itemIds = new Int32Array(maxItems);
    this.gq = new Float32Array(maxItems * s.dim);
    this.gb = new Float32Array(maxItems);
    this.gw = new Float32Array(s.features);
    this.gw1 = new Float32Array(2 * s.dim * s.hidden);
    this.gb1 = new Float32Array(s.hidden);
    this.gv = new Float32Array(s.hidden);
  }
  reset(): void {
    this.gp.fill(0);
    this.gc.fill(0);
    this.gq.fill(0, 0, this.itemCount * this.s.dim);
    this.gb.fill(0, 0, this.itemCount);
    this.itemCount = 0;
    this.gw.fill(0);
    this.gw1.fill(0);
    this.gb1.fill(0);
    this.gv.fill(0);
  }
  /** Squared L2 norm of the joint part, and of the local (user) part. */
  sqNorms(): { joint: number; local: number } {
    let joint = 0;
    for (let k = 0; k < this.itemCount * this.s.dim; k++) joint += this.gq[k]! ** 2;
    for (let k = 0; k < this.itemCount; k++) joint += this.gb[k]! ** 2;
    for (const a of [this.gw, this.gw1, this.gb1, this.gv]) for (let k = 0; k < a.length; k++) joint += a[k]! ** 2;
    let local = 0;
    for (const a of [this.gp, this.gc]) for (let k = 0; k < a.length; k++) local += a[k]! ** 2;
    return { joint, local };
  }
}

/** Settings of one DP-SGD step. */
export interface DpStepOptions {
  clip: number;
  sigma: number;
  expectedBatch: number;
  learningRate: number;
  negatives: number;
  negRng: Rng;
  noise: (n: number, std: number) => Float64Array;
  clipFactor: (sq: number, clip: number) => number;
}

/** Settings of local training. */
export interface TrainSettings {
  learningRate: number;
  /** L2 on touched embedding rows and user parameters. */
  l2: number;
  negatives: number;
}

/**
 * The model's training machinery over one set of users (a partner's, or
 * everybody's for the centralized arm).
 */
export class WideDeep {
  private readonly grad: Grad;
  private readonly zPos: Float32Array;
  private readonly hPos: Float32Array;
  private readonly dz: Float32Array;
  private readonly negs: Int32Array;
  private readonly negZ: Float32Array;
  private readonly negH: Float32Array;
  private readonly negS: Float32Array;
  constructor(readonly spec: RecModelSpec, readonly feats: ItemFeatures, readonly maxNegatives: number) {
    this.grad = new Grad(spec, 1 + maxNegatives);
    this.zPos = new Float32Array(spec.hidden);
    this.hPos = new Float32Array(spec.hidden);
    this.dz = new Float32Array(spec.hidden);
    this.negs = new Int32Array(maxNegatives);
    this.negZ = new Float32Array(maxNegatives * spec.hidden);
    this.negH = new Float32Array(maxNegatives * spec.hidden);
    this.negS = new Float32Array(maxNegatives);
  }

  /** Forward pass of s(u, i) with the hidden activations written to z, h. */
  private forward(j: JointViews, p: Float32Array, pOff: number, c: Float32Array, cOff: number, i: number, z: Float32Array, zOff: number, h: Float32Array): number {
    const { dim, hidden, features } = this.spec;
    let s = j.b[i]!;
    const f0 = this.feats.offsets[i]!;
    const f1 = this.feats.offsets[i + 1]!;
    if (features > 0 && f1 > f0) {
      let t = 0;
      for (let k = f0; k < f1; k++) t += j.w[this.feats.ids[k]!]! + c[cOff + this.feats.ids[k]!]!;
      s += t / (f1 - f0);
    }
    const qo = i * dim;
    for (let k = 0; k < dim; k++) s += p[pOff + k]! * j.q[qo + k]!;
    if (hidden > 0) {
      for (let u = 0; u < hidden; u++) z[zOff + u] = j.b1[u]!;
      for (let k = 0; k < dim; k++) {
        const a = p[pOff + k]!;
        const bq = j.q[qo + k]!;
        const r1 = k * hidden;
        const r2 = (dim + k) * hidden;
        for (let u = 0; u < hidden; u++) z[zOff + u]! += a * j.w1[r1 + u]! + bq * j.w1[r2 + u]!;
      }
      for (let u = 0; u < hidden; u++) {
        const zz = z[zOff + u]!;
        const hh = zz > 0 ? zz : 0;
        h[zOff + u] = hh;
        s += j.v[u]! * hh;
      }
    }
    return s;
  }

  /** Accumulate coef · ∂s(u, i)/∂θ into the gradient buffers (slot = the item's row in the sparse buffer). */
  private backward(j: JointViews, p: Float32Array, pOff: number, i: number, slot: number, coef: number, z: Float32Array, zOff: number, h: Float32Array): void {
    const { dim, hidden, features } = this.spec;
    const g = this.grad;
    g.gb[slot]! += coef;
    const f0 = this.feats.offsets[i]!;
    const f1 = this.feats.offsets[i + 1]!;
    if (features > 0 && f1 > f0) {
      const share = coef / (f1 - f0);
      for (let k = f0; k < f1; k++) {
        g.gw[this.feats.ids[k]!]! += share;
        g.gc[this.feats.ids[k]!]! += share;
      }
    }
    const qo = i * dim;
    const go = slot * dim;
    for (let k = 0; k < dim; k++) {
      g.gp[k]! += coef * j.q[qo + k]!;
      g.gq[go + k]! += coef * p[pOff + k]!;
    }
    if (hidden > 0) {
      for (let u = 0; u < hidden; u++) {
        g.gv[u]! += coef * h[zOff + u]!;
        const dz = z[zOff + u]! > 0 ? coef * j.v[u]! : 0;
        this.dz[u] = dz;
        g.gb1[u]! += dz;
      }
      for (let k = 0; k < dim; k++) {
        const a = p[pOff + k]!;
        const bq = j.q[qo + k]!;
        const r1 = k * hidden;
        const r2 = (dim + k) * hidden;
        let sp = 0;
        let sq = 0;
        for (let u = 0; u < hidden; u++) {
          const dz = this.dz[u]!;
          if (dz === 0) continue;
          g.gw1[r1 + u]! += a * dz;
          g.gw1[r2 + u]! += bq * dz;
          sp += j.w1[r1 + u]! * dz;
          sq += j.w1[r2 + u]! * dz;
        }
        g.gp[k]! += sp;
        g.gq[go + k]! += sq;
      }
    }
  }

  /**
   * Gradient of one example's BPR loss Σ_k −log σ(s(u,i) − s(u,j_k)) into the
   * buffers. Negatives are in `negs[0..count)`.
   * @returns the example's loss
   */
  private exampleGrad(j: JointViews, users: UserParams, u: number, i: number, count: number): number {
    const { dim, hidden, features } = this.spec;
    const g = this.grad;
    g.reset();
    const pOff = u * dim;
    const cOff = u * features;
    const zPos = this.zPos;
    const hPos = this.hPos;
    const sPos = this.forward(j, users.p, pOff, users.c, cOff, i, zPos, 0, hPos);
    g.itemIds[0] = i;
    g.itemCount = 1 + count;
    let loss = 0;
    let posCoef = 0;
    for (let k = 0; k < count; k++) {
      const n = this.negs[k]!;
      g.itemIds[1 + k] = n;
      const sNeg = this.forward(j, users.p, pOff, users.c, cOff, n, this.negZ, k * hidden, this.negH);
      this.negS[k] = sNeg;
      const x = sPos - sNeg;
      // −log σ(x) and its derivative σ(x) − 1, computed stably.
      loss += x > 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x));
      const d = -1 / (1 + Math.exp(x));
      posCoef += d;
      this.backward(j, users.p, pOff, n, 1 + k, -d, this.negZ, k * hidden, this.negH);
    }
    this.backward(j, users.p, pOff, i, 0, posCoef, zPos, 0, hPos);
    return loss;
  }

  /** Apply −lr·(grad scaled by `scale`) (+ L2 on touched rows) to joint and local parameters. */
  private apply(j: JointViews, users: UserParams, u: number, lr: number, l2: number, scale: number, touched?: Uint8Array): void {
    const { dim, features } = this.spec;
    const g = this.grad;
    const pOff = u * dim;
    const cOff = u * features;
    const step = lr * scale;
    for (let k = 0; k < dim; k++) users.p[pOff + k]! -= step * g.gp[k]! + lr * l2 * users.p[pOff + k]!;
    for (let k = 0; k < features; k++) users.c[cOff + k]! -= step * g.gc[k]! + lr * l2 * users.c[cOff + k]!;
    for (let s = 0; s < g.itemCount; s++) {
      const it = g.itemIds[s]!;
      if (touched) touched[it] = 1;
      const qo = it * dim;
      for (let k = 0; k < dim; k++) j.q[qo + k]! -= step * g.gq[s * dim + k]! + lr * l2 * j.q[qo + k]!;
      j.b[it]! -= step * g.gb[s]!;
    }
    for (let k = 0; k < features; k++) j.w[k]! -= step * g.gw[k]!;
    for (let k = 0; k < g.gw1.length; k++) j.w1[k]! -= step * g.gw1[k]!;
    for (let k = 0; k < g.gb1.length; k++) j.b1[k]! -= step * g.gb1[k]!;
    for (let k = 0; k < g.gv.length; k++) j.v[k]! -= step * g.gv[k]!;
  }

  /** Sample `count` distinct negatives for user u, none in `seen` (a catalogue-sized mask, or null for uniform over the catalogue). */
  private sampleNegatives(rng: Rng, pos: number, seen: Set<number> | null, count: number): void {
    const items = this.spec.items;
    for (let k = 0; k < count; k++) {
      for (let tries = 0; ; tries++) {
        const n = Math.floor(rng.nextFloat() * items);
        if (n === pos || (seen && seen.has(n) && tries < 50)) continue;
        let dup = false;
        for (let m = 0; m < k; m++) if (this.negs[m] === n) dup = true;
        if (dup && tries < 50) continue;
        this.negs[k] = n;
        break;
      }
    }
  }

  /**
   * One epoch of plain SGD over the (user, item) examples, in a seeded
   * random order. Joint parameters in `flat` and user parameters are
   * updated in place.
   * @param touched - if given, marks the item rows this epoch changed
   * @returns mean loss per example
   */
  epoch(flat: Float32Array, users: UserParams, examples: { user: Int32Array; item: Int32Array }, seen: readonly Set<number>[], t: TrainSettings, seed: number, touched?: Uint8Array): number {
    const run = this.epochRunner(flat, users, examples, seen, t, seed, touched);
    run.step(examples.user.length);
    return run.meanLoss();
  }

  /**
   * The same epoch, run in slices (`step(count)`), so a caller can yield to
   * the event loop between slices (a partner node keeps its socket alive).
   */
  epochRunner(flat: Float32Array, users: UserParams, examples: { user: Int32Array; item: Int32Array }, seen: readonly Set<number>[], t: TrainSettings, seed: number, touched?: Uint8Array): { step(count: number): boolean; meanLoss(): number } {
    if (this.spec.tower) throw new FedmartError('CONFIG_ERROR', 'the item-tower recommendation model is trained by DP-SGD only (--dp record); plain rounds train the model with a free row per item');
    const j = jointViews(this.spec, flat);
    const rng = createSeededRng(seed);
    const n = examples.user.length;
    const order = new Int32Array(n);
    for (let k = 0; k < n; k++) order[k] = k;
    for (let k = n - 1; k > 0; k--) {
      const r = Math.floor(rng.nextFloat() * (k + 1));
      const tmp = order[k]!;
      order[k] = order[r]!;
      order[r] = tmp;
    }
    const neg = Math.min(t.negatives, this.maxNegatives, this.spec.items - 1);
    let loss = 0;
    let k = 0;
    return {
      step: (count) => {
        const end = Math.min(n, k + count);
        for (; k < end; k++) {
          const e = order[k]!;
          const u = examples.user[e]!;
          const i = examples.item[e]!;
          this.sampleNegatives(rng, i, seen[u]!, neg);
          loss += this.exampleGrad(j, users, u, i, neg);
          this.apply(j, users, u, t.learningRate, t.l2, 1, touched);
        }
        return k < n;
      },
      meanLoss: () => (n ? loss / n : 0),
    };
  }

  /**
   * One DP-SGD step (Abadi et al. 2016, Algorithm 1) over the sampled
   * examples `rows[0..count)`: each example's gradient over ALL parameters
   * it touches (joint and the user's local ones; with an item tower, the
   * tower's own tensors: free rows, feature embeddings, prior weight) is
   * clipped to L2 norm `clip`, summed, Gaussian noise N(0, σ²C²) is added
   * to every joint and every local coordinate, the sum is divided by the
   * expected batch q·n, and SGD applies it. Negatives are drawn uniformly
   * from the catalogue by `negRng` (data-independent, so one interaction's
   * presence never changes another example's gradient).
   * @returns summed loss and clip count of the batch
   */
  dpStep(flat: Float32Array, users: UserParams, examples: { user: Int32Array; item: Int32Array }, rows: Int32Array, count: number, o: DpStepOptions): { lossSum: number; clipped: number } {
    const run = this.dpStepRunner(flat, users, examples, rows, count, o);
    run.step(count);
    return run.finish();
  }

  /**
   * {@link dpStep} in slices: `step(k)` adds the next k examples' clipped
   * gradients (true while some are left), so a partner node can yield to
   * the event loop inside a large batch; `finish()` adds the noise and
   * applies the step.
   */
  dpStepRunner(flat: Float32Array, users: UserParams, examples: { user: Int32Array; item: Int32Array }, rows: Int32Array, count: number, o: DpStepOptions): { step(k: number): boolean; finish(): { lossSum: number; clipped: number } } {
    const j = jointViews(this.spec, flat, this.feats);
    const sumJoint = new Float64Array(flat.length);
    const sumP = new Float64Array(users.p.length);
    const sumC = new Float64Array(users.c.length);
    const { dim, features, tower } = this.spec;
    const off = tensorOffsets(recLayout(this.spec));
    const neg = Math.min(o.negatives, this.maxNegatives, this.spec.items - 1);
    const dense: [string, Float32Array][] = [['feature_w', this.grad.gw], ['deep_w1', this.grad.gw1], ['deep_b1', this.grad.gb1], ['deep_v', this.grad.gv]];
    const gF = new Float64Array(tower ? features * dim : 0);
    let lossSum = 0;
    let clipped = 0;
    let k = 0;
    const g = this.grad;
    const one = (): void => {
      const e = rows[k]!;
      const u = examples.user[e]!;
      const i = examples.item[e]!;
      this.sampleNegatives(o.negRng, i, null, neg);
      lossSum += this.exampleGrad(j, users, u, i, neg);
      const { joint, local } = g.sqNorms();
      if (!tower) {
        const f = o.clipFactor(joint + local, o.clip);
        if (f < 1) clipped++;
        for (let s = 0; s < g.itemCount; s++) {
          const it = g.itemIds[s]!;
          for (let d = 0; d < dim; d++) sumJoint[off.item_emb!.offset + it * dim + d]! += f * g.gq[s * dim + d]!;
          sumJoint[off.item_bias!.offset + it]! += f * g.gb[s]!;
        }
        this.addDenseAndLocal(sumJoint, sumP, sumC, off, dense, u, f);
        return;
      }
      // Item tower: pull the per-item gradients back onto the tower's tensors, then clip that gradient.
      gF.fill(0);
      let gwp = 0;
      let sq = joint;
      for (let s = 0; s < g.itemCount; s++) {
        const it = g.itemIds[s]!;
        if (tower.rowOf[it]! < 0) {
          for (let d = 0; d < dim; d++) sq -= g.gq[s * dim + d]! ** 2;
          sq -= g.gb[s]! ** 2;
        }
        gwp += g.gb[s]! * tower.prior[it]!;
        const f0 = this.feats.offsets[it]!;
        const f1 = this.feats.offsets[it + 1]!;
        if (!gF.length || f1 <= f0) continue;
        const share = 1 / (f1 - f0);
        for (let t = f0; t < f1; t++) {
          const fo = this.feats.ids[t]! * dim;
          for (let d = 0; d < dim; d++) gF[fo + d]! += share * g.gq[s * dim + d]!;
        }
      }
      for (let d = 0; d < gF.length; d++) sq += gF[d]! ** 2;
      sq += gwp * gwp;
      const f = o.clipFactor(Math.max(0, sq) + local, o.clip);
      if (f < 1) clipped++;
      for (let s = 0; s < g.itemCount; s++) {
        const r = tower.rowOf[g.itemIds[s]!]!;
        if (r < 0) continue;
        for (let d = 0; d < dim; d++) sumJoint[off.item_emb!.offset + r * dim + d]! += f * g.gq[s * dim + d]!;
        sumJoint[off.item_bias!.offset + r]! += f * g.gb[s]!;
      }
      if (off.feature_emb) for (let d = 0; d < gF.length; d++) sumJoint[off.feature_emb.offset + d]! += f * gF[d]!;
      sumJoint[off.prior_w!.offset]! += f * gwp;
      this.addDenseAndLocal(sumJoint, sumP, sumC, off, dense, u, f);
    };
    return {
      step: (n) => {
        const end = Math.min(count, k + n);
        for (; k < end; k++) one();
        return k < count;
      },
      finish: () => {
        for (; k < count; k++) one();
        const std = o.sigma * o.clip;
        const step = o.learningRate / o.expectedBatch;
        const nj = o.noise(flat.length, std);
        for (let d = 0; d < flat.length; d++) flat[d]! -= step * (sumJoint[d]! + nj[d]!);
        const np = o.noise(sumP.length, std);
        for (let d = 0; d < sumP.length; d++) users.p[d]! -= step * (sumP[d]! + np[d]!);
        if (sumC.length) {
          const nc = o.noise(sumC.length, std);
          for (let d = 0; d < sumC.length; d++) users.c[d]! -= step * (sumC[d]! + nc[d]!);
        }
        return { lossSum, clipped };
      },
    };
  }

  /** f × (the dense joint gradients and the user's local gradient) into the step's sums. */
  private addDenseAndLocal(sumJoint: Float64Array, sumP: Float64Array, sumC: Float64Array, off: Record<string, { offset: number }>, dense: [string, Float32Array][], u: number, f: number): void {
    const { dim, features } = this.spec;
    const g = this.grad;
    for (const [name, a] of dense) {
      const t = off[name];
      if (!t) continue;
      for (let d = 0; d < a.length; d++) sumJoint[t.offset + d]! += f * a[d]!;
    }
    for (let d = 0; d < dim; d++) sumP[u * dim + d]! += f * g.gp[d]!;
    for (let d = 0; d < features; d++) sumC[u * features + d]! += f * g.gc[d]!;
  }

  /**
   * Fold-in: fit one user's local parameters to their history with the
   * joint parameters frozen (seeded SGD on the same BPR loss), e.g. to serve
   * a user whose stored state is not at hand.
   * @returns the user's parameters
   */
  foldIn(flat: Float32Array, history: ArrayLike<number>, t: TrainSettings & { epochs: number }, seed: number): { p: Float32Array; c: Float32Array } {
    const init = initUserParams(this.spec, 1, seed);
    const frozen = Float32Array.from(flat);
    const j = jointViews(this.spec, frozen, this.feats);
    const rng = createSeededRng(seed);
    const seen = new Set<number>(Array.from(history));
    const neg = Math.min(t.negatives, this.maxNegatives, this.spec.items - 1);
    const { dim, features } = this.spec;
    for (let e = 0; e < t.epochs; e++) {
      for (let k = 0; k < history.length; k++) {
        this.sampleNegatives(rng, history[k]!, seen, neg);
        this.exampleGrad(j, init, 0, history[k]!, neg);
        const g = this.grad;
        for (let d = 0; d < dim; d++) init.p[d]! -= t.learningRate * (g.gp[d]! + t.l2 * init.p[d]!);
        for (let d = 0; d < features; d++) init.c[d]! -= t.learningRate * (g.gc[d]! + t.l2 * init.c[d]!);
      }
    }
    return init;
  }
}
