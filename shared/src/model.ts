/**
 * Model specifications shared by the coordinator (which initialises and
 * aggregates flat weight vectors) and the client trainer (which turns the
 * flat vector back into layer tensors).
 *
 * Weights always travel as ONE flat Float32Array: the layer tensors
 * concatenated in {@link parameterShapes} order, each tensor row-major. The
 * spec is the only thing that knows the shapes, so both sides must agree on
 * it; {@link splitWeights} refuses a vector of the wrong length.
 *
 * Pure: no I/O, deterministic given the seed.
 */
import { z } from 'zod';
import { FedmartError } from './errors.ts';

/** Largest input width a spec may declare (guards against absurd allocations). */
export const MAX_INPUT_DIM = 1_000_000;
/** Largest width of one hidden layer. */
export const MAX_HIDDEN_UNITS = 4096;
/** Largest number of hidden layers. */
export const MAX_HIDDEN_LAYERS = 8;

/**
 * A binary classifier: a multi-layer perceptron with ReLU hidden layers and
 * one sigmoid output unit. `hidden: []` is plain logistic regression.
 */
export const ModelSpecSchema = z
  .object({
    kind: z.literal('mlp'),
    inputDim: z.number().int().min(1).max(MAX_INPUT_DIM),
    hidden: z.array(z.number().int().min(1).max(MAX_HIDDEN_UNITS)).max(MAX_HIDDEN_LAYERS),
  })
  .strict();

/** A parsed model spec (see {@link ModelSpecSchema}). */
export type ModelSpec = z.infer<typeof ModelSpecSchema>;

function assertSpec(spec: ModelSpec): void {
  const parsed = ModelSpecSchema.safeParse(spec);
  if (!parsed.success) {
    throw new FedmartError(
      'CONFIG_ERROR',
      `invalid model spec: expected { kind: 'mlp', inputDim: 1..${MAX_INPUT_DIM}, hidden: up to ${MAX_HIDDEN_LAYERS} widths in 1..${MAX_HIDDEN_UNITS} }, ` +
        `got ${JSON.stringify(spec)} (${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); fix the federation's model spec`,
    );
  }
}

/**
 * Shapes of the model's parameter tensors, in wire order.
 *
 * @param spec - the model spec
 * @returns `[[in, h1], [h1], [h1, h2], [h2], …, [hLast, 1], [1]]`
 *   (weights then bias for each dense layer, output layer last)
 * @throws FedmartError `CONFIG_ERROR` if the spec is invalid
 * @example
 * parameterShapes({ kind: 'mlp', inputDim: 3, hidden: [4] }); // [[3,4],[4],[4,1],[1]]
 */
export function parameterShapes(spec: ModelSpec): number[][] {
  assertSpec(spec);
  const widths = [spec.inputDim, ...spec.hidden, 1];
  const shapes: number[][] = [];
  for (let i = 0; i + 1 < widths.length; i++) {
    shapes.push([widths[i], widths[i + 1]], [widths[i + 1]]);
  }
  return shapes;
}

/**
 * Total number of scalar parameters (the length of the flat weight vector).
 *
 * @param spec - the model spec
 * @returns sum over {@link parameterShapes} of the product of each shape
 * @throws FedmartError `CONFIG_ERROR` if the spec is invalid
 * @example
 * parameterCount({ kind: 'mlp', inputDim: 3, hidden: [4] }); // 3·4 + 4 + 4·1 + 1 = 21
 */
export function parameterCount(spec: ModelSpec): number {
  return parameterShapes(spec).reduce((sum, shape) => sum + shape.reduce((p, d) => p * d, 1), 0);
}

/**
 * A small seeded PRNG (mulberry32 with a splitmix32-scrambled seed), for
 * reproducible NON-SECRET randomness only: weight initialisation and data
 * shuffling. Never use it for keys, masks or DP noise.
 *
 * @param seed - any finite number; its low 32 bits select the stream
 * @returns a function returning uniform floats in [0, 1)
 * @throws RangeError if `seed` is not a finite number
 * @example
 * const rand = seededRandom(42); rand(); // same value on every run
 */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new RangeError(`seededRandom: seed must be a finite number, got ${String(seed)}`);
  // splitmix32 scramble so that nearby seeds (0, 1, 2, …) give unrelated streams.
  let z = (Math.trunc(seed) + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  let state = (z ^ (z >>> 16)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Initial weights: Glorot/Xavier-uniform for weight matrices, zeros for
 * biases (Glorot & Bengio 2010, "Understanding the difficulty of training
 * deep feedforward neural networks"): each W[fanIn, fanOut] entry is drawn
 * from U(−√(6/(fanIn+fanOut)), +√(6/(fanIn+fanOut))), which keeps activation
 * variance roughly constant across layers.
 *
 * Every partner and the coordinator get bit-identical weights from the same
 * (spec, seed), so a federation's round-0 model is reproducible.
 *
 * The output unit's bias may be set to the log-odds of the agreed base rate
 * (`outputBias`): with rare positives (5 %) a zero bias starts every arm at
 * log loss ≈ 0.69 instead of ≈ 0.2, and the first rounds are spent only
 * moving the intercept ("init well", e.g. TensorFlow's imbalanced-data
 * guide; Karpathy 2019). It is a function of the aggregate label rate only.
 *
 * @param spec - the model spec
 * @param seed - PRNG seed (non-secret)
 * @param outputBias - initial bias of the output unit (default 0)
 * @returns flat weights of length {@link parameterCount}(spec)
 * @throws FedmartError `CONFIG_ERROR` if the spec is invalid
 * @throws RangeError if `seed` or `outputBias` is not a finite number
 * @example
 * const w0 = initWeights({ kind: 'mlp', inputDim: 50, hidden: [32] }, 1);
 * const w1 = initWeights(spec, 1, logOdds(0.06)); // starts at the base rate
 */
export function initWeights(spec: ModelSpec, seed: number, outputBias = 0): Float32Array {
  if (typeof outputBias !== 'number' || !Number.isFinite(outputBias)) throw new RangeError(`initWeights: outputBias must be a finite number, got ${String(outputBias)}`);
  const shapes = parameterShapes(spec);
  const rand = seededRandom(seed);
  const out = new Float32Array(parameterCount(spec));
  let offset = 0;
  for (const shape of shapes) {
    const size = shape.reduce((p, d) => p * d, 1);
    if (shape.length === 2) {
      const limit = Math.sqrt(6 / (shape[0] + shape[1]));
      for (let i = 0; i < size; i++) out[offset + i] = (2 * rand() - 1) * limit;
    }
    offset += size; // biases stay 0
  }
  out[out.length - 1] = outputBias; // the output bias is the last parameter
  return out;
}

/**
 * Log-odds of a rate, clamped to [1e-6, 1 − 1e-6] so a single-class sample stays finite.
 * @param rate - a proportion in [0, 1]
 * @returns log(rate / (1 − rate))
 * @throws RangeError if `rate` is not in [0, 1]
 * @example logOdds(0.5); // 0
 */
export function logOdds(rate: number): number {
  if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) throw new RangeError(`logOdds: rate must be in [0, 1], got ${String(rate)}`);
  const r = Math.min(Math.max(rate, 1e-6), 1 - 1e-6);
  return Math.log(r / (1 - r));
}

/**
 * Split a flat weight vector into per-tensor views (no copy: writing to a
 * view writes to `flat`).
 *
 * @param flat - weights in {@link parameterShapes} order
 * @param spec - the model spec
 * @returns one Float32Array view per entry of {@link parameterShapes}
 * @throws TypeError if `flat` is not a Float32Array
 * @throws FedmartError `INVALID_UPDATE` if `flat.length` ≠ {@link parameterCount}(spec)
 * @throws FedmartError `CONFIG_ERROR` if the spec is invalid
 * @example
 * const [w1, b1, wOut, bOut] = splitWeights(w0, { kind: 'mlp', inputDim: 50, hidden: [32] });
 */
export function splitWeights(flat: Float32Array, spec: ModelSpec): Float32Array[] {
  if (!(flat instanceof Float32Array)) throw new TypeError(`splitWeights: flat must be a Float32Array, got ${Object.prototype.toString.call(flat)}`);
  const shapes = parameterShapes(spec);
  const expected = parameterCount(spec);
  if (flat.length !== expected) {
    throw new FedmartError(
      'INVALID_UPDATE',
      `weight vector has ${flat.length} values but model spec ${JSON.stringify(spec)} needs ${expected}; ` +
        'the sender and receiver disagree on the model: re-fetch the federation spec or re-initialise the weights',
    );
  }
  const views: Float32Array[] = [];
  let offset = 0;
  for (const shape of shapes) {
    const size = shape.reduce((p, d) => p * d, 1);
    views.push(flat.subarray(offset, offset + size));
    offset += size;
  }
  return views;
}
