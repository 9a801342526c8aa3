/**
 * The label holder of vertical federated learning (for example the platform,
 * which knows conversions): aligns customers with each feature holder by
 * PSI, drives training step by step, holds the CKKS secret key (vertical LR)
 * or the top model (split NN), and scores aligned rows.
 *
 * What each party learns — vertical logistic regression (Hardy et al. 2017,
 * arXiv:1711.10677, with the label holder as key holder as in FATE's
 * hetero-LR), per training step over a batch of m aligned rows:
 * - label holder: each feature holder's partial logits u_k = X_k·w_k for the
 *   batch rows (m numbers per holder; not X_k, not w_k), and X_kᵀd + r_k for
 *   a uniform mask r_k it never sees — i.e. nothing about the feature
 *   holder's gradient beyond a statistical distance ≤ |g|/maskBound;
 * - feature holder k: the encrypted residuals [[d]] (IND-CPA under RLWE:
 *   nothing) and its own plain gradient X_kᵀd/m (plus flooding noise) — a
 *   d_k-dimensional linear summary of the batch's residuals (with `labelDp`,
 *   of noised residuals); never the labels, the other parties' features or
 *   weights, or the logits;
 * - both: the aligned IDs (mode "ids") or only their number (mode "size"),
 *   the batch row indices in the aligned order, the number of steps.
 * With several feature holders, the label holder tells each which of its
 * PSI-shared customers are shared by all parties, so a feature holder also
 * learns which of its shared customers are customers of every other party.
 *
 * A malicious feature holder (issue 8, item 7) may send any ciphertext as
 * its "gradient" and claim any features. What the label holder enforces:
 * 1. Declared width. Right after `vlr.setup` each feature holder declares its
 *    gradient width d_k (`vlr.declare`); every step the label holder
 *    decrypts and returns exactly d_k slots, whatever the request says.
 * 2. Shape. It decrypts only ciphertexts shaped like an honest
 *    `maskedColumnSums` output: 2 parts, NTT form, one level below the top
 *    (parms id), scale exactly Δ²/q_last (`decryptMasked`). The fresh
 *    residual ciphertext echoed back is refused by its level; a forged scale
 *    is refused because decoding divides by it and a smaller one would show
 *    the decryption error (key hints, Li & Micciancio 2021) through the flood.
 * 3. Why d_k slots is the right bound, although a CKKS ciphertext cannot say
 *    how many of its N/2 slots are "used": without relinearisation keys (so
 *    no ciphertext product survives the 2-part check), without a public key
 *    and with rotation keys only, everything the feature holder can build is
 *    an affine map A·d + b of the residual ciphertexts it was sent (complex
 *    plaintexts included: decoding keeps real parts, which stay real-linear
 *    in d). Its first d_k slots are X_kᵀd + b for X_k = Aᵀ — precisely what an
 *    honest holder with those columns learns. So a forged computation buys
 *    nothing over lying about one's features, and the width caps both. We
 *    chose this over making the label holder do the rotations (it would see
 *    per-row products d_i·x_ij, i.e. the features) or per-feature
 *    ciphertexts (d_k× the traffic, same functionality).
 * 4. Minimum batch (`shared/src/vertical-leakage.ts`): m ≥ max(64, 4·E·d_max)
 *    for E epochs, so no batch's residuals can be solved from its gradient
 *    and, even if residuals never changed between epochs, a whole run gives
 *    a feature holder at most n/4 equations on n unknowns; the last short
 *    chunk of an epoch joins the previous batch. Checked before any residual
 *    is sent; a smaller batch size or training set is refused.
 * What remains, by design of hetero-LR: the functionality X_kᵀd itself. A
 * column that is nonzero for few rows of a batch (a rare one-hot value, or
 * indicator columns a malicious holder makes up) gives those rows'
 * residuals, hence labels — up to d_k per step, S·d_k ≤ n/4 over the run;
 * and a least-squares guess carries each row's own residual with weight
 * h_ii ≈ d_k/m, a statistical edge that shrinks with the batch but never
 * vanishes. Only noise bounds that: with `labelDp` the label holder adds
 * N(0, σ²) to every residual and trains its own weights on the same noised
 * residuals, so every other party's view, and the model, is (ε, δ)-label-DP
 * (sensitivity 1, E compositions; see `vertical-leakage.ts`). Key hints: a
 * feature holder that knew some residuals exactly (with zero initial
 * weights, the first step's d = ½ − y for labels learnt as above) could
 * submit amplified products of that step's ciphertext — gradient-shaped —
 * and read linear functions of its encryption error, i.e. of the secret
 * key (Li & Micciancio 2021). So the label holder's own weights start at a
 * secret N(0, 2^-32): every residual then carries an unknown part of
 * ≈ 2^-18 per row, ~2^14 above what the encryption error contributes after
 * decoding, whatever the amplification. This is a margin, not a proof; a
 * fresh key per epoch (not done) would also cap the hints per key.
 *
 * Split NN: the label holder sees each feature holder's embeddings of the
 * batch (optionally with Gaussian noise of std σ added by the feature
 * holder with the CSPRNG), and each feature holder sees ∂loss/∂embedding of
 * its rows. Embeddings reveal a learned, lossy function of the features;
 * gradients reveal information about labels (e.g. their sign in a binary
 * task when the top model is simple; Li et al., "Label leakage and protection
 * in two-party split learning", ICLR 2022). Plain `noiseStd` on embeddings
 * blunts feature reconstruction but is not accounted; a feature holder given
 * `embeddingDp` (feature-holder.ts, shared/src/vertical-embedding-dp.ts) clips
 * and noises its releases and trains with DP-SGD, which the ledger charges.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { createSeededRng, shuffleInPlace } from '@fedmart/shared/data/rng';
import { createVerticalCkksKeyHolder, DEFAULT_DECRYPT_FLOOD_STD } from '@fedmart/shared/he/ckks-ops';
import { DEFAULT_CKKS_PARAMS, type CkksParams } from '@fedmart/shared/he/ckks-params';
import { readVector, vectorBytes } from '@fedmart/shared/protocol-vertical';
import { checkVerticalBatching, cutVerticalBatches, planLabelDp, type LabelDpPlan } from '@fedmart/shared/vertical-leakage';
import { gaussianNoise } from '@fedmart/shared/dp/gaussian';
import type { PsiMode, PsiPartyOptions } from '@fedmart/shared/psi/ecdh-psi';
import { initBackend } from '../ml/backend.ts';
import { compareIds, psiWithPeer, rowsOf, type Alignment } from './align.ts';
import type { VerticalChannel } from './channel.ts';
import { Adam, DenseStack, bceWithLogits, gatherRows, matTVec, matVec, sigmoid } from './models.ts';

/** One party's rows of a set: IDs (row order) and its encoded columns. */
export interface PartyRows {
  readonly ids: readonly string[];
  /** `ids.length × d`, row-major. */
  readonly x: Float32Array;
  readonly d: number;
}

/** The label holder's rows: its columns plus the 0/1 label. */
export interface LabelledRows extends PartyRows {
  readonly y: Float32Array;
}

/** Options of vertical LR training. */
export interface VerticalLrOptions {
  readonly epochs: number;
  /** Rows per step (default 4096 = one ciphertext at N = 8192). */
  readonly batchSize?: number;
  /** Adam learning rate (default 0.05). */
  readonly learningRate?: number;
  /** L2 penalty λ/2·‖w‖² on every party's weights, bias excluded (default 0). */
  readonly l2?: number;
  /** Seed of the batch order (non-secret). */
  readonly seed: number;
  /** Public CKKS parameters (default N 8192, [60,40,40,60], Δ 2^40). */
  readonly ckks?: Partial<CkksParams>;
  /** Flooding noise std on decrypted masked sums (default 2^-10). */
  readonly floodStd?: number;
  /**
   * Label DP against every other party (and for the trained model): Gaussian
   * noise on the residuals, calibrated to (ε, δ) over the run's epochs
   * (`shared/src/vertical-leakage.ts`). Off by default.
   */
  readonly labelDp?: { readonly epsilon: number; readonly delta: number };
  /** Called after each epoch with its mean training loss. */
  readonly onEpoch?: (epoch: number, loss: number) => void;
}

/** Options of split-NN training. */
export interface SplitNnOptions {
  readonly epochs: number;
  /** Rows per step (default 256). */
  readonly batchSize?: number;
  /** Adam learning rate of every party (default 0.01). */
  readonly learningRate?: number;
  /** Width of each party's embedding (default 8). */
  readonly embeddingDim?: number;
  /** Hidden widths of the top model (default [16]). */
  readonly topHidden?: readonly number[];
  /** Std of the Gaussian noise feature holders add to embeddings they send (default 0). */
  readonly noiseStd?: number;
  readonly seed: number;
  readonly onEpoch?: (epoch: number, loss: number) => void;
}

/** What a training run reports. */
export interface VerticalTrainReport {
  readonly steps: number;
  /** Mean training loss of the last epoch. */
  readonly loss: number;
  readonly seconds: number;
  /** Vertical LR with feature holders: the minimum batch that applied. */
  readonly minBatch?: number;
  /** Vertical LR with `labelDp`: the residual noise and the ε it reached. */
  readonly labelDp?: LabelDpPlan;
}

/** The label holder's part of a trained vertical model (what it keeps on its disk). */
export type LabelHolderPart =
  | { kind: 'lr'; w: number[]; bias: number }
  | { kind: 'splitnn'; embeddingDim: number; bottomWidths: number[]; bottom: number[][]; topWidths: number[]; top: number[][] };

/** Std of the label holder's secret initial LR weights when feature holders take part (see trainLr). */
const SECRET_INIT_STD = 2 ** -16;

type Model =
  | { kind: 'lr'; w: Float64Array; bias: Float64Array }
  | { kind: 'snn'; bottom: DenseStack; top: DenseStack; embeddingDim: number };

/**
 * The label holder. Works with zero feature holders too (then it is plain
 * local training on its own columns — the "label holder alone" baseline
 * runs the very same code).
 *
 * @example
 * const lh = new LabelHolder(hub.channel('platform'), { featureHolders: ['brand'], sets: { train, test } });
 * await Promise.all([lh.align('train'), fh.align('train')]);
 * const serving = fh.serve();
 * await lh.trainLr({ epochs: 5, seed: 1 });
 */
export class LabelHolder {
  readonly #ch: VerticalChannel | null;
  readonly #fhs: readonly string[];
  readonly #sets: Readonly<Record<string, LabelledRows>>;
  readonly #session: string;
  readonly #multiply: PsiPartyOptions['multiplyBatch'];
  readonly #aligned = new Map<string, Int32Array>();
  #model: Model | undefined;
  #step = 0;

  /**
   * @param channel - this party's channel (null when there are no feature holders)
   * @param opts.featureHolders - ids of the feature holders
   * @param opts.sets - this party's rows per set name ("train", "test", …)
   * @param opts.session - session id (PSI hash domain); both sides the same
   * @param opts.multiplyBatch - how PSI runs a batch of X25519 multiplications (default this thread)
   */
  constructor(channel: VerticalChannel | null, opts: { featureHolders: readonly string[]; sets: Record<string, LabelledRows>; session?: string; multiplyBatch?: PsiPartyOptions['multiplyBatch'] }) {
    if (opts.featureHolders.length > 0 && channel === null) throw new TypeError('LabelHolder: a channel is needed to talk to feature holders');
    for (const [name, s] of Object.entries(opts.sets)) {
      if (s.x.length !== s.ids.length * s.d || s.y.length !== s.ids.length) {
        throw new FedmartError('DATA_ERROR', `LabelHolder set "${name}": expected x of ${s.ids.length}×${s.d} and ${s.ids.length} labels, got ${s.x.length} values and ${s.y.length} labels`);
      }
    }
    this.#ch = channel;
    this.#fhs = [...opts.featureHolders];
    this.#sets = opts.sets;
    this.#session = opts.session ?? 'vertical';
    this.#multiply = opts.multiplyBatch;
  }

  #set(name: string): LabelledRows {
    const s = this.#sets[name];
    if (s === undefined) throw new FedmartError('CONFIG_ERROR', `LabelHolder: no rows for set "${name}"; pass it in opts.sets`);
    return s;
  }

  #rows(name: string): Int32Array {
    const r = this.#aligned.get(name);
    if (r === undefined) throw new FedmartError('CONFIG_ERROR', `LabelHolder: set "${name}" is not aligned yet; call align("${name}") first (on every party)`);
    return r;
  }

  /**
   * Align a set with every feature holder by PSI (each feature holder must
   * call its own `align` with the same set and mode at the same time).
   * Without feature holders every own row is used, in ID order.
   * @param set - set name
   * @param mode - "ids" (rows get aligned, training can follow) or "size" (only the count is learned)
   * @returns the number of customers shared by all parties (and, in mode ids, the aligned rows)
   */
  async align(set: string, mode: PsiMode = 'ids'): Promise<Alignment> {
    const started = performance.now();
    const own = this.#set(set);
    if (this.#fhs.length === 0) {
      const ids = [...new Set(own.ids)].sort(compareIds);
      const rows = rowsOf(own.ids, ids);
      this.#aligned.set(set, rows);
      return { size: rows.length, rows, ids, seconds: (performance.now() - started) / 1000 };
    }
    const ch = this.#ch!;
    const perPeer: string[][] = [];
    let sizeOnly = Number.POSITIVE_INFINITY;
    for (const fh of this.#fhs) {
      const r = await psiWithPeer(ch, fh, own.ids, { set, mode, session: this.#session, ...(this.#multiply ? { multiplyBatch: this.#multiply } : {}) });
      if (mode === 'size') sizeOnly = Math.min(sizeOnly, r.size);
      else perPeer.push(r.ids!);
    }
    if (mode === 'size') return { size: sizeOnly, seconds: (performance.now() - started) / 1000 };
    // Customers shared by every party, in the common (sorted) order.
    let common = perPeer[0]!;
    for (let k = 1; k < perPeer.length; k++) {
      const s = new Set(perPeer[k]);
      common = common.filter((id) => s.has(id));
    }
    const commonSet = new Set(common);
    for (let k = 0; k < this.#fhs.length; k++) {
      const sel: number[] = [];
      perPeer[k]!.forEach((id, i) => {
        if (commonSet.has(id)) sel.push(i);
      });
      await ch.send(this.#fhs[k]!, 'align.select', { set, count: sel.length }, [vectorBytes(Uint32Array.from(sel))]);
    }
    const rows = rowsOf(own.ids, common);
    this.#aligned.set(set, rows);
    return { size: rows.length, rows, ids: common, seconds: (performance.now() - started) / 1000 };
  }

  /** Tell every feature holder which aligned rows form the next training batch; returns the step and our own row indices. */
  async #announceTrainBatch(batch: Uint32Array, rows: ArrayLike<number>): Promise<{ step: number; m: number; own: Int32Array }> {
    const step = this.#step++;
    const m = batch.length;
    for (const fh of this.#fhs) await this.#ch!.send(fh, 'batch', { set: 'train', step, rows: m, train: true }, [vectorBytes(batch)]);
    return { step, m, own: Int32Array.from(batch, (i) => rows[i]!) };
  }

  #batches(n: number, batchSize: number, rng: ReturnType<typeof createSeededRng>): Uint32Array[] {
    return cutVerticalBatches(shuffleInPlace(Uint32Array.from({ length: n }, (_, i) => i), rng), batchSize);
  }

  /** Each feature holder's declared gradient width (`vlr.declare`, right after `vlr.setup`). */
  async #receiveWidths(slotCount: number): Promise<number[]> {
    const widths: number[] = [];
    for (const fh of this.#fhs) {
      const msg = await this.#ch!.receive(fh, 'vlr.declare');
      if (msg.body.dims > slotCount) throw new FedmartError('INVALID_MESSAGE', `vertical LR: ${fh} declared a gradient of ${msg.body.dims} values, more than the ${slotCount} slots of one ciphertext; a feature holder wider than that is not supported`);
      widths.push(msg.body.dims);
    }
    return widths;
  }

  /**
   * Train vertical logistic regression on the aligned "train" set (see the
   * module doc for who learns what). Feature holders must be serving.
   * @param o - epochs, batch size, learning rate, CKKS parameters, seed
   * @returns steps, last-epoch loss, seconds
   */
  async trainLr(o: VerticalLrOptions): Promise<VerticalTrainReport> {
    const started = performance.now();
    const set = this.#set('train');
    const rows = this.#rows('train');
    const n = rows.length;
    if (n === 0) throw new FedmartError('DATA_ERROR', 'vertical LR: the aligned training set is empty; the parties share no customers');
    const lr = o.learningRate ?? 0.05;
    const l2 = o.l2 ?? 0;
    const batchSize = o.batchSize ?? 4096;
    const flood = o.floodStd ?? DEFAULT_DECRYPT_FLOOD_STD;
    const ch = this.#ch;
    const dp = o.labelDp !== undefined ? planLabelDp({ ...o.labelDp, epochs: o.epochs }) : undefined;
    const kh = this.#fhs.length > 0 ? await createVerticalCkksKeyHolder(o.ckks ?? {}) : undefined;
    let sk: ReturnType<NonNullable<typeof kh>['loadSecretKey']> | undefined;
    let minBatch: number | undefined;
    let loss = Number.NaN;
    let steps = 0;
    try {
      const keys = kh?.keygen();
      sk = keys !== undefined ? kh!.loadSecretKey(keys.secretKey) : undefined;
      const params = kh?.params ?? { ...DEFAULT_CKKS_PARAMS, ...o.ckks };
      for (const fh of this.#fhs) await ch!.send(fh, 'vlr.setup', { params: params as CkksParams, learningRate: lr, l2 }, [keys!.galoisKeys]);
      // Nothing about the labels leaves this party before the batching is checked against the declared widths.
      const widths = kh !== undefined ? await this.#receiveWidths(kh.slotCount) : [];
      if (widths.length > 0) minBatch = checkVerticalBatching({ rows: n, batchSize, epochs: o.epochs, widths });
      // With feature holders, our weights start at a secret N(0, 2^-32) (CSPRNG) instead of 0, so no residual is ever
      // exactly ½ − y: a feature holder then never knows a decrypted message exactly, which is what reading key hints
      // through amplified decryptions needs (see the module doc). It moves the first gradient by ~2^-18, far below the flood.
      const w = kh !== undefined ? gaussianNoise(set.d, SECRET_INIT_STD) : new Float64Array(set.d);
      const bias = new Float64Array(1);
      const adamW = new Adam(set.d, lr);
      const adamB = new Adam(1, lr);
      this.#model = { kind: 'lr', w, bias };
      const rng = createSeededRng(o.seed);
      for (let epoch = 1; epoch <= o.epochs; epoch++) {
        let lossSum = 0;
        for (const batch of this.#batches(n, batchSize, rng)) {
          const { step, m, own } = await this.#announceTrainBatch(batch, rows);
          const xb = gatherRows(set.x, set.d, own);
          const z = matVec(xb, w);
          for (const fh of this.#fhs) {
            const msg = await ch!.receive(fh, 'vlr.partial');
            if (msg.body.step !== step || msg.body.rows !== m) throw new FedmartError('INVALID_MESSAGE', `vertical LR: expected partial logits of step ${step} for ${m} rows from ${fh}, got step ${msg.body.step} with ${msg.body.rows} rows`);
            const u = readVector(msg.parts[0]!, 'f64');
            for (let i = 0; i < m; i++) z[i]! += u[i]!;
          }
          const d = new Float64Array(m);
          for (let i = 0; i < m; i++) {
            const zi = z[i]! + bias[0]!;
            const yi = set.y[own[i]!]!;
            d[i] = sigmoid(zi) - yi;
            lossSum += Math.max(zi, 0) - zi * yi + Math.log1p(Math.exp(-Math.abs(zi)));
          }
          if (dp !== undefined) {
            // Label DP: every use of d below — ours included — sees the noised residuals (post-processing).
            const noise = gaussianNoise(m, dp.sigma);
            for (let i = 0; i < m; i++) d[i]! += noise[i]!;
          }
          if (this.#fhs.length > 0) {
            const enc = kh!.encrypt(d, sk!);
            for (const fh of this.#fhs) await ch!.send(fh, 'vlr.residual', { step, rows: m, chunks: enc.length }, enc);
          }
          const g = matTVec(xb, d, set.d);
          let gb = 0;
          for (let i = 0; i < m; i++) gb += d[i]!;
          for (let j = 0; j < set.d; j++) g[j] = g[j]! / m + l2 * w[j]!;
          adamW.step(w, g);
          adamB.step(bias, [gb / m]);
          for (const [k, fh] of this.#fhs.entries()) {
            const msg = await ch!.receive(fh, 'vlr.maskedGradient');
            if (msg.body.step !== step) throw new FedmartError('INVALID_MESSAGE', `vertical LR: expected the masked gradient of step ${step} from ${fh}, got step ${msg.body.step}`);
            const dims = widths[k]!;
            if (msg.body.dims !== dims) throw new FedmartError('INVALID_MESSAGE', `vertical LR: ${fh} asked for ${msg.body.dims} decrypted values at step ${step} but declared a width of ${dims} at setup; refusing to decrypt more (or other) slots than declared`);
            const masked = kh!.decryptMasked(msg.parts[0]!, sk!, dims, flood);
            await ch!.send(fh, 'vlr.decrypted', { step, dims }, [vectorBytes(masked)]);
          }
          steps++;
        }
        loss = lossSum / n;
        o.onEpoch?.(epoch, loss);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      sk?.dispose();
      kh?.dispose();
    }
    return { steps, loss, seconds: (performance.now() - started) / 1000, ...(minBatch !== undefined ? { minBatch } : {}), ...(dp !== undefined ? { labelDp: dp } : {}) };
  }

  /**
   * Train a split neural network on the aligned "train" set: own bottom
   * model, feature holders' bottom models, and the top model here.
   * @param o - epochs, batch size, widths, embedding noise, seed
   * @returns steps, last-epoch loss, seconds
   */
  async trainSplitNn(o: SplitNnOptions): Promise<VerticalTrainReport> {
    const started = performance.now();
    await initBackend();
    const set = this.#set('train');
    const rows = this.#rows('train');
    const n = rows.length;
    if (n === 0) throw new FedmartError('DATA_ERROR', 'split NN: the aligned training set is empty; the parties share no customers');
    const lr = o.learningRate ?? 0.01;
    const E = o.embeddingDim ?? 8;
    const batchSize = o.batchSize ?? 256;
    const ch = this.#ch;
    for (const [k, fh] of this.#fhs.entries()) await ch!.send(fh, 'snn.setup', { embeddingDim: E, learningRate: lr, noiseStd: o.noiseStd ?? 0, seed: o.seed + 1 + k });
    this.#disposeModel();
    const bottom = new DenseStack([set.d, E], o.seed, true);
    const top = new DenseStack([E * (1 + this.#fhs.length), ...(o.topHidden ?? [16]), 1], o.seed + 1000, false);
    this.#model = { kind: 'snn', bottom, top, embeddingDim: E };
    const optimizer = tf.train.adam(lr);
    const modelVars = [...bottom.vars, ...top.vars];
    const rng = createSeededRng(o.seed);
    let loss = Number.NaN;
    let steps = 0;
    try {
      for (let epoch = 1; epoch <= o.epochs; epoch++) {
        let lossSum = 0;
        for (const batch of this.#batches(n, batchSize, rng)) {
          const { step, m, own } = await this.#announceTrainBatch(batch, rows);
          const embs = await this.#receiveEmbeddings(step, m, E);
          const xb = tf.tensor2d(gatherRows(set.x, set.d, own), [m, set.d]);
          const yb = tf.tensor1d(Float32Array.from(own, (r) => set.y[r]!));
          const embVars = embs.map((e) => tf.variable(tf.tensor2d(e, [m, E]), true));
          try {
            const { value, grads } = tf.variableGrads(() => {
              const h = embVars.length > 0 ? tf.concat([bottom.apply(xb), ...embVars], 1) : bottom.apply(xb);
              return bceWithLogits(tf.reshape(top.apply(h as tf.Tensor2D), [-1]) as tf.Tensor1D, yb);
            }, [...modelVars, ...embVars]);
            lossSum += value.dataSync()[0]! * m;
            for (const [k, fh] of this.#fhs.entries()) {
              const g = grads[embVars[k]!.name]!.dataSync() as Float32Array;
              await ch!.send(fh, 'snn.gradient', { step, rows: m, dim: E }, [vectorBytes(g)]);
            }
            optimizer.applyGradients(modelVars.map((v) => ({ name: v.name, tensor: grads[v.name]! })));
            tf.dispose([value, ...Object.values(grads)]);
          } finally {
            tf.dispose([xb, yb, ...embVars]);
          }
          steps++;
        }
        loss = lossSum / n;
        o.onEpoch?.(epoch, loss);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      optimizer.dispose();
    }
    return { steps, loss, seconds: (performance.now() - started) / 1000 };
  }

  async #receiveEmbeddings(step: number, m: number, E: number): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const fh of this.#fhs) {
      const msg = await this.#ch!.receive(fh, 'snn.embedding');
      if (msg.body.step !== step || msg.body.rows !== m || msg.body.dim !== E) {
        throw new FedmartError('INVALID_MESSAGE', `split NN: expected embeddings of step ${step} (${m}×${E}) from ${fh}, got step ${msg.body.step} (${msg.body.rows}×${msg.body.dim})`);
      }
      out.push(readVector(msg.parts[0]!, 'f32'));
    }
    return out;
  }

  /**
   * Score every aligned row of a set with the trained model (feature holders
   * contribute their partial logits or embeddings; they must be serving).
   * @param set - an aligned set name
   * @returns P(y = 1) per aligned row, and the labels in the same order
   */
  async predict(set: string): Promise<{ p: Float32Array; y: Float32Array }> {
    const model = this.#model;
    if (model === undefined) throw new FedmartError('CONFIG_ERROR', 'LabelHolder.predict: no model yet; train first');
    const s = this.#set(set);
    const rows = this.#rows(set);
    const m = rows.length;
    const y = Float32Array.from(rows, (r) => s.y[r]!);
    if (m === 0) return { p: new Float32Array(0), y };
    const step = this.#step++;
    const all = Uint32Array.from({ length: m }, (_, i) => i);
    for (const fh of this.#fhs) await this.#ch!.send(fh, 'batch', { set, step, rows: m, train: false }, [vectorBytes(all)]);
    const xb = gatherRows(s.x, s.d, rows);
    const p = new Float32Array(m);
    if (model.kind === 'lr') {
      const z = matVec(xb, model.w);
      for (const fh of this.#fhs) {
        const msg = await this.#ch!.receive(fh, 'vlr.partial');
        if (msg.body.step !== step || msg.body.rows !== m) throw new FedmartError('INVALID_MESSAGE', `vertical LR scoring: expected partial logits of step ${step} for ${m} rows from ${fh}, got step ${msg.body.step} with ${msg.body.rows} rows`);
        const u = readVector(msg.parts[0]!, 'f64');
        for (let i = 0; i < m; i++) z[i]! += u[i]!;
      }
      for (let i = 0; i < m; i++) p[i] = sigmoid(z[i]! + model.bias[0]!);
      return { p, y };
    }
    const embs = await this.#receiveEmbeddings(step, m, model.embeddingDim);
    const probs = tf.tidy(() => {
      const x = tf.tensor2d(xb, [m, s.d]);
      const parts = [model.bottom.apply(x), ...embs.map((e) => tf.tensor2d(e, [m, model.embeddingDim]))];
      return tf.sigmoid(tf.reshape(model.top.apply((parts.length > 1 ? tf.concat(parts, 1) : parts[0]!) as tf.Tensor2D), [-1]));
    });
    p.set(probs.dataSync() as Float32Array);
    probs.dispose();
    return { p, y };
  }

  /**
   * This party's part of the trained model (call before {@link finish}).
   * LR: own weights and the bias; split NN: own bottom model and the top model.
   */
  exportPart(): LabelHolderPart {
    const m = this.#model;
    if (m === undefined) throw new FedmartError('CONFIG_ERROR', 'LabelHolder.exportPart: no model yet; train first');
    if (m.kind === 'lr') return { kind: 'lr', w: Array.from(m.w), bias: m.bias[0]! };
    return { kind: 'splitnn', embeddingDim: m.embeddingDim, bottomWidths: [...m.bottom.widths], bottom: m.bottom.exportWeights(), topWidths: [...m.top.widths], top: m.top.exportWeights() };
  }

  /** Tell every feature holder the session is over, and free the model. */
  async finish(reason = 'training finished'): Promise<void> {
    for (const fh of this.#fhs) await this.#ch!.send(fh, 'done', { reason });
    this.#disposeModel();
  }

  /**
   * Tell every feature holder that this party failed (their serve() rejects).
   * @param err - what went wrong
   */
  async abort(err: unknown): Promise<void> {
    const e = err instanceof FedmartError ? err : new FedmartError('INTERNAL', String(err));
    for (const fh of this.#fhs) await this.#ch!.send(fh, 'error', { code: e.code, message: e.message.slice(0, 2000) }).catch(() => undefined);
    this.#disposeModel();
  }

  #disposeModel(): void {
    if (this.#model?.kind === 'snn') {
      this.#model.bottom.dispose();
      this.#model.top.dispose();
    }
    this.#model = undefined;
  }
}
