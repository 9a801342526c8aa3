/**
 * A feature holder of vertical federated learning (for example a brand with
 * CRM columns for customers it shares with the platform). It aligns with the
 * label holder by PSI, then serves training steps: in vertical LR it sends
 * partial logits and turns encrypted residuals into a masked encrypted
 * gradient on its own columns, then unmasks the decrypted result and
 * updates its own weights; in a split NN it sends (optionally noised)
 * embeddings and back-propagates the gradients it gets back. Its features
 * and weights never leave it. Who learns what: see `label-holder.ts`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { gaussianNoise } from '@fedmart/shared/dp/gaussian';
import { embeddingNoiseStd, gradientNoiseStd, type EmbeddingDpTerms } from '@fedmart/shared/vertical-embedding-dp';
import { createVerticalCkksEvaluator, uniformMask, DEFAULT_GRADIENT_MASK_BOUND, type VerticalCkksEvaluator } from '@fedmart/shared/he/ckks-ops';
import { readVector, vectorBytes, type VerticalBody, type VerticalMessage } from '@fedmart/shared/protocol-vertical';
import type { PsiMode, PsiPartyOptions } from '@fedmart/shared/psi/ecdh-psi';
import { initBackend } from '../ml/backend.ts';
import { psiWithPeer, rowsOf, type Alignment } from './align.ts';
import type { VerticalChannel } from './channel.ts';
import type { PartyRows } from './label-holder.ts';
import { Adam, DenseStack, gatherRows, matVec } from './models.ts';

/** Options of {@link FeatureHolder}. */
export interface FeatureHolderOptions {
  /** The label holder's party id. */
  readonly labelHolder: string;
  /** This party's rows per set name. */
  readonly sets: Record<string, PartyRows>;
  /** Session id (PSI hash domain); the same as the label holder's. */
  readonly session?: string;
  /** Bound of the uniform mask on encrypted gradients (default 2^30). */
  readonly maskBound?: number;
  /** How PSI runs a batch of X25519 multiplications (default this thread; the CLI passes its worker pool). */
  readonly multiplyBatch?: PsiPartyOptions['multiplyBatch'];
  /**
   * Split NN: this party's own embedding-DP terms (from the federation spec it joined, never from the label
   * holder): clip + noise every released embedding row, DP-SGD on the bottom model, and refuse a batch that
   * would release any row more than `maxTrainReleases` times in training (once in any other set)
   * (`shared/src/vertical-embedding-dp.ts`). The label holder's `snn.setup` noise is then ignored.
   */
  readonly embeddingDp?: EmbeddingDpTerms & { readonly maxTrainReleases: number };
  /** Observer of each unmasked LR gradient (e.g. for tests); gets a copy. */
  readonly onGradient?: (step: number, gradient: Float64Array) => void;
}

/** A feature holder's part of a trained vertical model (what it keeps on its disk). */
export type FeatureHolderPart =
  | { kind: 'lr'; w: number[] }
  | { kind: 'splitnn'; embeddingDim: number; bottomWidths: number[]; bottom: number[][]; embeddingDp?: EmbeddingDpTerms };

/** What {@link FeatureHolder.serve} reports when the label holder ends the session. */
export interface ServeReport {
  readonly steps: number;
  readonly reason: string;
}

type State =
  | { kind: 'idle' }
  | { kind: 'lr'; evaluator: VerticalCkksEvaluator; w: Float64Array; adam: Adam; l2: number }
  | { kind: 'snn'; bottom: DenseStack; optimizer: tf.Optimizer; noiseStd: number; dim: number };

/** A feature holder (see the module doc). */
export class FeatureHolder {
  readonly #ch: VerticalChannel;
  readonly #o: FeatureHolderOptions;
  readonly #aligned = new Map<string, Int32Array>();
  /** Embedding releases per (set, own row) in the current session (embedding DP). */
  readonly #releases = new Map<string, Uint16Array>();
  #state: State = { kind: 'idle' };
  #lastPart: FeatureHolderPart | undefined;

  /**
   * @param channel - this party's channel
   * @param opts - label holder id, own rows per set, session id
   */
  constructor(channel: VerticalChannel, opts: FeatureHolderOptions) {
    for (const [name, s] of Object.entries(opts.sets)) {
      if (s.x.length !== s.ids.length * s.d) throw new FedmartError('DATA_ERROR', `FeatureHolder set "${name}": expected x of ${s.ids.length}×${s.d} values, got ${s.x.length}`);
    }
    this.#ch = channel;
    this.#o = opts;
  }

  #set(name: string): PartyRows {
    const s = this.#o.sets[name];
    if (s === undefined) throw new FedmartError('INVALID_MESSAGE', `FeatureHolder: the label holder asked for set "${name}", which this party does not hold`);
    return s;
  }

  /**
   * Align a set with the label holder (which calls its `align` at the same time).
   * @param set - set name
   * @param mode - "ids" or "size" (the label holder's choice)
   * @returns the size and, in mode ids, the own rows in the common order
   */
  async align(set: string, mode: PsiMode = 'ids'): Promise<Alignment> {
    const started = performance.now();
    const own = this.#set(set);
    const lh = this.#o.labelHolder;
    const r = await psiWithPeer(this.#ch, lh, own.ids, { set, mode, session: this.#o.session ?? 'vertical', ...(this.#o.multiplyBatch ? { multiplyBatch: this.#o.multiplyBatch } : {}) });
    if (mode === 'size') return { size: r.size, seconds: (performance.now() - started) / 1000 };
    const sel = await this.#ch.receive(lh, 'align.select');
    if (sel.body.set !== set) throw new FedmartError('INVALID_MESSAGE', `alignment: expected the selection for set "${set}", got one for "${sel.body.set}"`);
    const idx = readVector(sel.parts[0]!, 'u32');
    const ids = Array.from(idx, (i) => {
      const id = r.ids![i];
      if (id === undefined) throw new FedmartError('INVALID_MESSAGE', `alignment: the label holder selected position ${i}, but only ${r.size} customers are shared`);
      return id;
    });
    for (let k = 1; k < ids.length; k++) if (!(ids[k - 1]! < ids[k]!)) throw new FedmartError('INVALID_MESSAGE', 'alignment: the selected positions must be strictly increasing');
    const rows = rowsOf(own.ids, ids);
    this.#aligned.set(set, rows);
    return { size: rows.length, rows, ids, seconds: (performance.now() - started) / 1000 };
  }

  /**
   * Serve the label holder's requests until it sends `done`.
   * @returns the number of steps served and the label holder's reason
   * @throws FedmartError if the label holder sends `error` or a malformed / out-of-order message
   */
  async serve(): Promise<ServeReport> {
    const lh = this.#o.labelHolder;
    let steps = 0;
    // Release counts live for the whole session: a second setup does not reset them.
    this.#releases.clear();
    try {
      for (;;) {
        const msg = await this.#ch.receiveAny(lh);
        switch (msg.type) {
          case 'vlr.setup':
            await this.#setupLr(msg as VerticalMessage<'vlr.setup'>);
            break;
          case 'snn.setup':
            await this.#setupSnn(msg.body as VerticalBody<'snn.setup'>);
            break;
          case 'batch':
            await this.#batch(msg as VerticalMessage<'batch'>);
            steps++;
            break;
          case 'done':
            return { steps, reason: (msg.body as VerticalBody<'done'>).reason };
          default:
            throw new FedmartError('INVALID_MESSAGE', `FeatureHolder: unexpected ${msg.type} from ${lh} while idle; expected a setup, batch or done message`);
        }
      }
    } finally {
      this.#reset();
    }
  }

  /** This party's part of the model trained in the last {@link serve} (its LR weights or bottom model), or undefined. */
  lastPart(): FeatureHolderPart | undefined {
    return this.#lastPart;
  }

  #reset(): void {
    const s = this.#state;
    if (s.kind === 'lr') this.#lastPart = { kind: 'lr', w: Array.from(s.w) };
    if (s.kind === 'snn') this.#lastPart = { kind: 'splitnn', embeddingDim: s.dim, bottomWidths: [...s.bottom.widths], bottom: s.bottom.exportWeights(), ...(this.#o.embeddingDp ? { embeddingDp: termsOf(this.#o.embeddingDp) } : {}) };
    if (s.kind === 'lr') s.evaluator.dispose();
    if (s.kind === 'snn') {
      s.bottom.dispose();
      s.optimizer.dispose();
    }
    this.#state = { kind: 'idle' };
  }

  async #setupLr(msg: VerticalMessage<'vlr.setup'>): Promise<void> {
    this.#reset();
    const d = this.#set('train').d;
    const evaluator = await createVerticalCkksEvaluator(msg.body.params, msg.parts[0]!);
    this.#state = { kind: 'lr', evaluator, w: new Float64Array(d), adam: new Adam(d, msg.body.learningRate), l2: msg.body.l2 };
    // The label holder decrypts exactly this many slots per step and sizes its minimum batch from it.
    await this.#ch.send(this.#o.labelHolder, 'vlr.declare', { dims: d });
  }

  async #setupSnn(body: VerticalBody<'snn.setup'>): Promise<void> {
    this.#reset();
    await initBackend();
    const d = this.#set('train').d;
    this.#state = { kind: 'snn', bottom: new DenseStack([d, body.embeddingDim], body.seed, true), optimizer: tf.train.adam(body.learningRate), noiseStd: body.noiseStd, dim: body.embeddingDim };
  }

  async #batch(msg: VerticalMessage<'batch'>): Promise<void> {
    const { set, step, rows: m, train } = msg.body;
    const s = this.#set(set);
    const aligned = this.#aligned.get(set);
    if (aligned === undefined) throw new FedmartError('INVALID_MESSAGE', `FeatureHolder: batch for set "${set}", which is not aligned; align it first`);
    const idx = readVector(msg.parts[0]!, 'u32');
    const own = Int32Array.from(idx, (i) => {
      if (i >= aligned.length) throw new FedmartError('INVALID_MESSAGE', `FeatureHolder: batch row ${i} is outside the ${aligned.length} aligned rows of "${set}"`);
      return aligned[i]!;
    });
    const xb = gatherRows(s.x, s.d, own);
    const lh = this.#o.labelHolder;
    const st = this.#state;
    if (st.kind === 'lr') {
      await this.#ch.send(lh, 'vlr.partial', { step, rows: m }, [vectorBytes(matVec(xb, st.w))]);
      if (!train) return;
      const res = await this.#ch.receive(lh, 'vlr.residual');
      if (res.body.step !== step || res.body.rows !== m) throw new FedmartError('INVALID_MESSAGE', `vertical LR: expected residuals of step ${step} for ${m} rows, got step ${res.body.step} with ${res.body.rows} rows`);
      const mask = uniformMask(st.evaluator.slotCount, this.#o.maskBound ?? DEFAULT_GRADIENT_MASK_BOUND);
      const ct = st.evaluator.maskedColumnSums(res.parts, xb, m, s.d, mask);
      await this.#ch.send(lh, 'vlr.maskedGradient', { step, dims: s.d }, [ct]);
      const dec = await this.#ch.receive(lh, 'vlr.decrypted');
      if (dec.body.step !== step || dec.body.dims !== s.d) throw new FedmartError('INVALID_MESSAGE', `vertical LR: expected the decrypted gradient of step ${step} with ${s.d} values, got step ${dec.body.step} with ${dec.body.dims}`);
      const masked = readVector(dec.parts[0]!, 'f64');
      const g = new Float64Array(s.d);
      for (let j = 0; j < s.d; j++) g[j] = (masked[j]! - mask[j]!) / m;
      mask.fill(0);
      this.#o.onGradient?.(step, g.slice());
      for (let j = 0; j < s.d; j++) g[j]! += st.l2 * st.w[j]!;
      st.adam.step(st.w, g);
      return;
    }
    if (st.kind === 'snn' && this.#o.embeddingDp) {
      this.#countReleases(set, own, train);
      await this.#dpSnnBatch(st, this.#o.embeddingDp, xb, m, s.d, step, train);
      return;
    }
    if (st.kind === 'snn') {
      const x = tf.tensor2d(xb, [m, s.d]);
      try {
        const emb = tf.tidy(() => st.bottom.apply(x));
        const e = Float32Array.from(emb.dataSync() as Float32Array);
        emb.dispose();
        if (st.noiseStd > 0) {
          const noise = gaussianNoise(e.length, st.noiseStd);
          for (let i = 0; i < e.length; i++) e[i]! += noise[i]!;
        }
        await this.#ch.send(lh, 'snn.embedding', { step, rows: m, dim: st.dim }, [vectorBytes(e)]);
        if (!train) return;
        const gm = await this.#ch.receive(lh, 'snn.gradient');
        if (gm.body.step !== step || gm.body.rows !== m || gm.body.dim !== st.dim) throw new FedmartError('INVALID_MESSAGE', `split NN: expected embedding gradients of step ${step} (${m}×${st.dim}), got step ${gm.body.step} (${gm.body.rows}×${gm.body.dim})`);
        const G = tf.tensor2d(readVector(gm.parts[0]!, 'f32'), [m, st.dim]);
        try {
          // ∂loss/∂θ = Σ ∂loss/∂h · ∂h/∂θ: the noise is additive, so the upstream gradient passes through it unchanged.
          const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(st.bottom.apply(x), G)) as tf.Scalar, st.bottom.vars);
          st.optimizer.applyGradients(grads);
          tf.dispose([value, ...Object.values(grads)]);
        } finally {
          G.dispose();
        }
      } finally {
        x.dispose();
      }
      return;
    }
    throw new FedmartError('INVALID_MESSAGE', 'FeatureHolder: got a batch before any setup; the label holder must send vlr.setup or snn.setup first');
  }

  /** Refuse a batch that would release some row more often than the pinned DP terms account for. */
  #countReleases(set: string, own: Int32Array, train: boolean): void {
    const dp = this.#o.embeddingDp!;
    const limit = train ? dp.maxTrainReleases : 1;
    let c = this.#releases.get(`${set}|${train}`);
    if (c === undefined) this.#releases.set(`${set}|${train}`, (c = new Uint16Array(this.#set(set).ids.length)));
    const seen = new Set<number>();
    for (const r of own) {
      if (seen.has(r)) throw new FedmartError('INVALID_MESSAGE', `split NN with embedding DP: a batch names one row twice; each row is released once per batch`);
      seen.add(r);
      if (c[r]! + 1 > limit) throw new FedmartError('INVALID_MESSAGE', `split NN with embedding DP: this batch would be release ${c[r]! + 1} of a row of set "${set}", more than the ${limit} release(s) the federation's DP terms account for; refused`);
    }
    for (const r of own) c[r]!++;
  }

  /**
   * One split-NN batch under embedding DP: clipped + noised embeddings out; DP-SGD on the bottom model
   * (one dense layer: per-row gradients in closed form, x_iᵀδ_i and δ_i, clipped, summed, noised).
   */
  async #dpSnnBatch(st: Extract<State, { kind: 'snn' }>, dp: EmbeddingDpTerms, xb: Float32Array, m: number, d: number, step: number, train: boolean): Promise<void> {
    if (st.bottom.vars.length !== 2) throw new FedmartError('CONFIG_ERROR', 'split NN with embedding DP: the bottom model must be one dense layer');
    const [W, b] = st.bottom.vars as [tf.Variable, tf.Variable];
    const clipRows = (e: tf.Tensor2D) => tf.mul(e, tf.minimum(1, tf.div(dp.clip, tf.maximum(tf.norm(e, 'euclidean', 1, true), 1e-12)))) as tf.Tensor2D;
    const x = tf.tensor2d(xb, [m, d]);
    try {
      const z = tf.tidy(() => tf.add(tf.matMul(x, W), b) as tf.Tensor2D);
      try {
        const e = tf.tidy(() => Float32Array.from(clipRows(tf.relu(z)).dataSync() as Float32Array));
        const noise = gaussianNoise(e.length, embeddingNoiseStd(dp));
        for (let i = 0; i < e.length; i++) e[i]! += noise[i]!;
        await this.#ch.send(this.#o.labelHolder, 'snn.embedding', { step, rows: m, dim: st.dim }, [vectorBytes(e)]);
        if (!train) return;
        const gm = await this.#ch.receive(this.#o.labelHolder, 'snn.gradient');
        if (gm.body.step !== step || gm.body.rows !== m || gm.body.dim !== st.dim) throw new FedmartError('INVALID_MESSAGE', `split NN: expected embedding gradients of step ${step} (${m}×${st.dim}), got step ${gm.body.step} (${gm.body.rows}×${gm.body.dim})`);
        const G = readVector(gm.parts[0]!, 'f32');
        const [gW, gb] = tf.tidy(() => {
          const Gt = tf.tensor2d(G, [m, st.dim]);
          // δ_i = ∂⟨clip(relu(z_i)), G_i⟩/∂z_i, row by row (rows are independent); ×m: G is of the batch-mean loss.
          const delta = tf.mul(tf.grad((zz: tf.Tensor) => tf.sum(tf.mul(clipRows(tf.relu(zz as tf.Tensor2D)), Gt)))(z), m) as tf.Tensor2D;
          // ‖(x_iᵀδ_i, δ_i)‖ = ‖δ_i‖·√(‖x_i‖² + 1); scale each row's gradient to at most C_g.
          const norms = tf.mul(tf.norm(delta, 'euclidean', 1, true), tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1)));
          const scaled = tf.mul(delta, tf.minimum(1, tf.div(dp.gradientClip, tf.maximum(norms, 1e-12))));
          return [tf.matMul(x, scaled, true, false), tf.sum(scaled, 0)];
        });
        const std = gradientNoiseStd(dp);
        const noisy = (t: tf.Tensor) => {
          const v = Float32Array.from(t.dataSync() as Float32Array);
          const n = gaussianNoise(v.length, std);
          for (let i = 0; i < v.length; i++) v[i] = (v[i]! + n[i]!) / m;
          return tf.tensor(v, t.shape);
        };
        const grads = { [W.name]: noisy(gW), [b.name]: noisy(gb) };
        tf.dispose([gW, gb]);
        st.optimizer.applyGradients(grads);
        tf.dispose(Object.values(grads));
      } finally {
        z.dispose();
      }
    } finally {
      x.dispose();
    }
  }
}

/** The terms without the release limit (kept with the part, so scoring noises the same way). */
function termsOf(t: EmbeddingDpTerms): EmbeddingDpTerms {
  return { noiseMultiplier: t.noiseMultiplier, clip: t.clip, gradientClip: t.gradientClip, delta: t.delta };
}
