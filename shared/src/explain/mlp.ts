/**
 * A plain-JavaScript float64 forward and backward pass of the {@link ModelSpec}
 * MLP (ReLU hidden layers, one sigmoid output; `hidden: []` is logistic
 * regression), for explanations.
 *
 * Why not the tfjs trainer: explanations need the gradient of the logit with
 * respect to the INPUT (Integrated Gradients) and thousands of small forward
 * passes (permutation importance), in a pure module that the coordinator,
 * partners and scenarios can all run without a tensor backend. Float64 keeps
 * the completeness check of Integrated Gradients (Σ attributions = f(x) − f(b))
 * free of float32 round-off, so the error reported is the integration error.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { splitWeights, type ModelSpec } from '../model.ts';

/** One dense layer in float64: `w` is `inDim × outDim` row-major (the wire layout). */
export interface DenseLayer {
  readonly inDim: number;
  readonly outDim: number;
  readonly w: Float64Array;
  readonly b: Float64Array;
}

/** A model ready for float64 evaluation: hidden ReLU layers, then the 1-unit output layer. */
export interface DenseModel {
  readonly spec: ModelSpec;
  readonly layers: readonly DenseLayer[];
}

/**
 * Copy flat wire weights into float64 layers.
 *
 * @param spec - the model spec
 * @param weights - flat weights in `parameterShapes` order
 * @returns the model for {@link forwardLogit} and {@link logitGradient}
 * @throws FedmartError `INVALID_UPDATE` if the weights do not fit the spec, `CONFIG_ERROR` if the spec is invalid
 * @throws FedmartError `INVALID_UPDATE` if a weight is NaN or infinite (a model like that explains nothing)
 * @example
 * const m = denseModel({ kind: 'mlp', inputDim: 3, hidden: [] }, new Float32Array([1, 2, 3, 0.5]));
 * forwardLogit(m, [1, 0, 0]); // 1.5
 */
export function denseModel(spec: ModelSpec, weights: Float32Array): DenseModel {
  const views = splitWeights(weights, spec);
  for (let i = 0; i < weights.length; i++) {
    if (!Number.isFinite(weights[i]!)) throw new FedmartError('INVALID_UPDATE', `model weight ${i} is ${weights[i]}; a model with non-finite weights cannot be explained — retrain or load another version`);
  }
  const widths = [spec.inputDim, ...spec.hidden, 1];
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    layers.push({ inDim: widths[l]!, outDim: widths[l + 1]!, w: Float64Array.from(views[2 * l]!), b: Float64Array.from(views[2 * l + 1]!) });
  }
  return { spec, layers };
}

function checkRow(model: DenseModel, x: ArrayLike<number>, offset: number): void {
  if (offset < 0 || x.length < offset + model.spec.inputDim) {
    throw new FedmartError('DATA_ERROR', `an input row needs ${model.spec.inputDim} values (the model's inputDim) but only ${Math.max(0, x.length - offset)} are there; encode the rows with the model's data schema`);
  }
}

/** z = a·W + b for one layer (a has length inDim). */
function affine(layer: DenseLayer, a: ArrayLike<number>, offset: number, out: Float64Array): void {
  const { inDim, outDim, w, b } = layer;
  out.set(b);
  for (let i = 0; i < inDim; i++) {
    const ai = a[offset + i]!;
    if (ai === 0) continue; // one-hot inputs are mostly zeros
    const row = i * outDim;
    for (let o = 0; o < outDim; o++) out[o] += ai * w[row + o]!;
  }
}

/**
 * The logit (pre-sigmoid output) of one row.
 *
 * @param model - from {@link denseModel}
 * @param x - the encoded row (or a matrix, with `offset` = row × inputDim)
 * @param offset - index of the row's first value in `x`
 * @returns the logit; the probability is `sigmoid(logit)`
 * @throws FedmartError `DATA_ERROR` if `x` is too short for one row
 */
export function forwardLogit(model: DenseModel, x: ArrayLike<number>, offset = 0): number {
  checkRow(model, x, offset);
  let a: ArrayLike<number> = x;
  let off = offset;
  for (let l = 0; l < model.layers.length; l++) {
    const layer = model.layers[l]!;
    const z = new Float64Array(layer.outDim);
    affine(layer, a, off, z);
    if (l + 1 < model.layers.length) for (let o = 0; o < z.length; o++) if (z[o]! < 0) z[o] = 0;
    a = z;
    off = 0;
  }
  return a[0]!;
}

/**
 * Logits of `n` rows of a row-major matrix.
 *
 * @param model - from {@link denseModel}
 * @param x - `n × inputDim` values, row-major
 * @param n - number of rows
 * @returns n logits
 * @throws FedmartError `DATA_ERROR` if `x.length` is not `n × inputDim`
 */
export function forwardLogits(model: DenseModel, x: ArrayLike<number>, n: number): Float64Array {
  const d = model.spec.inputDim;
  if (!Number.isInteger(n) || n < 0 || x.length !== n * d) {
    throw new FedmartError('DATA_ERROR', `expected ${n} rows × ${d} columns = ${n * d} values, got ${x.length}; encode the rows with the model's data schema`);
  }
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) out[r] = forwardLogit(model, x, r * d);
  return out;
}

/**
 * The logit of one row and its gradient with respect to the input,
 * ∂logit/∂x (backpropagation through the ReLUs; at a ReLU exactly at 0 the
 * derivative is taken as 0, the usual subgradient convention).
 *
 * @param model - from {@link denseModel}
 * @param x - the encoded row (length ≥ offset + inputDim)
 * @param offset - index of the row's first value in `x`
 * @returns `{ logit, gradient }` with `gradient.length === inputDim`
 * @throws FedmartError `DATA_ERROR` if `x` is too short for one row
 */
export function logitGradient(model: DenseModel, x: ArrayLike<number>, offset = 0): { logit: number; gradient: Float64Array } {
  checkRow(model, x, offset);
  const layers = model.layers;
  const pre: Float64Array[] = [];
  let a: ArrayLike<number> = x;
  let off = offset;
  for (let l = 0; l < layers.length; l++) {
    const z = new Float64Array(layers[l]!.outDim);
    affine(layers[l]!, a, off, z);
    pre.push(z);
    if (l + 1 < layers.length) {
      const h = new Float64Array(z.length);
      for (let o = 0; o < z.length; o++) h[o] = z[o]! > 0 ? z[o]! : 0;
      a = h;
    } else a = z;
    off = 0;
  }
  // Backward: g is ∂logit/∂(output of layer l), starting from 1 at the logit.
  let g = new Float64Array([1]);
  for (let l = layers.length - 1; l >= 0; l--) {
    const { inDim, outDim, w } = layers[l]!;
    const gIn = new Float64Array(inDim);
    for (let i = 0; i < inDim; i++) {
      let s = 0;
      const row = i * outDim;
      for (let o = 0; o < outDim; o++) s += w[row + o]! * g[o]!;
      gIn[i] = s;
    }
    if (l > 0) {
      const zPrev = pre[l - 1]!;
      for (let i = 0; i < inDim; i++) if (!(zPrev[i]! > 0)) gIn[i] = 0;
    }
    g = gIn;
  }
  return { logit: pre[pre.length - 1]![0]!, gradient: g };
}

/**
 * The logistic function, computed without overflow for large |z|.
 *
 * @param z - a logit
 * @returns 1 / (1 + e^−z) in [0, 1]
 */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}
