/**
 * The pieces of the vertical models each party keeps to itself: per-party
 * Adam for logistic-regression weights (Adam is coordinate-wise, so every
 * party running Adam on its own slice equals Adam on the joint weights), row
 * gathering, and the tfjs dense stacks of a split neural network (bottom
 * models per party, top model at the label holder; Vepakomma et al., "Split
 * learning for health", arXiv:1812.00564, 2018).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';
import { seededRandom } from '@fedmart/shared/model';

/** Adam (Kingma & Ba, ICLR 2015) on a Float64Array of parameters, β1 0.9, β2 0.999, ε 1e-8. */
export class Adam {
  readonly #m: Float64Array;
  readonly #v: Float64Array;
  #t = 0;
  constructor(
    size: number,
    readonly learningRate: number,
  ) {
    this.#m = new Float64Array(size);
    this.#v = new Float64Array(size);
  }
  /**
   * One step: `params -= lr · m̂ / (√v̂ + ε)`.
   * @param params - updated in place
   * @param grad - gradient of the same length
   */
  step(params: Float64Array, grad: ArrayLike<number>): void {
    this.#t++;
    const b1 = 0.9;
    const b2 = 0.999;
    const c1 = 1 - b1 ** this.#t;
    const c2 = 1 - b2 ** this.#t;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i]!;
      this.#m[i] = b1 * this.#m[i]! + (1 - b1) * g;
      this.#v[i] = b2 * this.#v[i]! + (1 - b2) * g * g;
      params[i]! -= (this.learningRate * (this.#m[i]! / c1)) / (Math.sqrt(this.#v[i]! / c2) + 1e-8);
    }
  }
}

/** Logistic function, stable for large |z|. */
export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/**
 * Gather rows of a row-major matrix.
 * @param x - `n × d` values
 * @param d - columns
 * @param rows - own row indices to take, in order
 * @returns `rows.length × d` values
 */
export function gatherRows(x: Float32Array, d: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * d);
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    out.set(x.subarray(r * d, (r + 1) * d), k * d);
  }
  return out;
}

/**
 * x·w for each row (partial logits of one party).
 * @param x - `m × d`, row-major
 * @param w - d weights
 * @returns m values
 */
export function matVec(x: Float32Array, w: Float64Array): Float64Array {
  const d = w.length;
  const m = d === 0 ? 0 : x.length / d;
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = 0;
    const o = i * d;
    for (let j = 0; j < d; j++) s += x[o + j]! * w[j]!;
    out[i] = s;
  }
  return out;
}

/**
 * xᵀ·v (plain gradient of one party's LR weights, before dividing by m).
 * @param x - `m × d`, row-major
 * @param v - m values
 * @param d - columns
 * @returns d values
 */
export function matTVec(x: Float32Array, v: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let i = 0; i < v.length; i++) {
    const vi = v[i]!;
    if (vi === 0) continue;
    const o = i * d;
    for (let j = 0; j < d; j++) out[j]! += x[o + j]! * vi;
  }
  return out;
}

/**
 * A stack of dense layers with ReLU between them (and, if `reluOut`, after
 * the last). He-uniform initial weights from a seeded (non-secret) PRNG.
 */
export class DenseStack {
  readonly vars: tf.Variable[] = [];
  constructor(
    readonly widths: readonly number[],
    seed: number,
    readonly reluOut: boolean,
  ) {
    const rand = seededRandom(seed);
    for (let l = 0; l + 1 < widths.length; l++) {
      const fanIn = widths[l]!;
      const fanOut = widths[l + 1]!;
      const limit = Math.sqrt(6 / Math.max(1, fanIn));
      const w = new Float32Array(fanIn * fanOut);
      for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * limit;
      this.vars.push(tf.variable(tf.tensor2d(w, [fanIn, fanOut]), true));
      this.vars.push(tf.variable(tf.zeros([fanOut]), true));
    }
  }
  /** Forward pass (call inside tf.tidy or variableGrads). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    let h = x;
    const layers = this.vars.length / 2;
    for (let l = 0; l < layers; l++) {
      const z = tf.add(tf.matMul(h, this.vars[2 * l] as tf.Tensor2D), this.vars[2 * l + 1]!) as tf.Tensor2D;
      h = l + 1 < layers || this.reluOut ? tf.relu(z) : z;
    }
    return h;
  }
  /** The weights, layer by layer (kernel, bias, …), as plain arrays. */
  exportWeights(): number[][] {
    return this.vars.map((v) => Array.from(v.dataSync() as Float32Array));
  }
  /** Overwrite the weights with {@link exportWeights} output of a stack of the same widths. */
  importWeights(w: readonly (readonly number[])[]): void {
    if (w.length !== this.vars.length) throw new FedmartError('DATA_ERROR', `model part: expected ${this.vars.length} weight arrays, got ${w.length}`);
    this.vars.forEach((v, i) => {
      if (w[i]!.length !== v.size) throw new FedmartError('DATA_ERROR', `model part: weight array ${i} has ${w[i]!.length} values, expected ${v.size}`);
      v.assign(tf.tensor(Float32Array.from(w[i]!), v.shape));
    });
  }
  /** Free the variables. */
  dispose(): void {
    tf.dispose(this.vars);
  }
}

/** Mean binary cross-entropy on logits, stable: max(z,0) − z·y + log(1 + e^−|z|). */
export function bceWithLogits(z: tf.Tensor1D, y: tf.Tensor1D): tf.Scalar {
  return tf.mean(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))))) as tf.Scalar;
}
