/**
 * The task seam's pure part (`../shared/DESIGN.md`, "Scenarios as tasks").
 *
 * The coordinator never knows what a scenario's model computes: it
 * initialises, aggregates, stores and serves ONE flat Float32 vector. What
 * it needs to know is the vector's layout, so a federation's `model` is
 * either the tabular {@link ModelSpec} (`kind: 'mlp'`, the first task,
 * `binary`) or a {@link TensorLayoutSpec} (`kind: 'tensors'`): a named list
 * of joint tensors with their shapes and initialisers, which any scenario
 * task (recommendation, pricing, text…) describes its joint parameters
 * with. Parameters a task keeps local (user embeddings, say) are not in the
 * layout: they never leave the partner.
 *
 * Protection layers (SecAgg, DP, CKKS) see only the flat vector, so they
 * wrap any task's joint parameters unchanged.
 *
 * Pure: no I/O, deterministic given the seed.
 */
import { z } from 'zod';
import { FedmartError } from '../errors.ts';
import { initWeights, ModelSpecSchema, parameterCount, seededRandom, type ModelSpec } from '../model.ts';

/** Largest joint parameter vector a federation may declare (64 M float32 = 256 MiB). */
export const MAX_JOINT_PARAMETERS = 64 * 1024 * 1024;

/** A task id: lower-case, digits and dashes (`binary`, `recommendation`, `pricing`, `text`…). */
export const TaskIdSchema = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, { message: 'a task id is lower-case letters, digits and dashes, starting with a letter (for example "binary" or "recommendation")' });

/** How one joint tensor starts (seeded, identical on every side). */
export const TensorInitSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('zeros') }).strict(),
  z.object({ type: z.literal('constant'), value: z.number().refine(Number.isFinite, { message: 'must be finite' }) }).strict(),
  /** Uniform on [−limit, limit]. */
  z.object({ type: z.literal('uniform'), limit: z.number().min(0).max(1e3) }).strict(),
  /** Normal(0, std²) by Box–Muller. */
  z.object({ type: z.literal('normal'), std: z.number().min(0).max(1e3) }).strict(),
  /** Glorot/Xavier uniform over the last two dimensions (fanIn = shape[-2], fanOut = shape[-1]; a vector has fanIn = fanOut = its length). */
  z.object({ type: z.literal('glorot') }).strict(),
]);
export type TensorInit = z.infer<typeof TensorInitSchema>;

/** One named joint tensor. */
export const TensorDeclSchema = z
  .object({
    name: z.string().min(1).max(100),
    shape: z.array(z.number().int().min(1).max(MAX_JOINT_PARAMETERS)).min(1).max(4),
    init: TensorInitSchema.default({ type: 'zeros' }),
  })
  .strict();
export type TensorDecl = z.infer<typeof TensorDeclSchema>;

/** The joint parameters of a scenario task: named tensors concatenated in order, each row-major. */
export const TensorLayoutSpecSchema = z
  .object({
    kind: z.literal('tensors'),
    tensors: z.array(TensorDeclSchema).min(1).max(256),
  })
  .strict()
  .superRefine((s, ctx) => {
    const names = new Set<string>();
    let total = 0;
    for (const [i, t] of s.tensors.entries()) {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: ['tensors', i, 'name'], message: `tensor name "${t.name}" appears twice; names must be unique` });
      names.add(t.name);
      total += t.shape.reduce((p, d) => p * d, 1);
    }
    if (total > MAX_JOINT_PARAMETERS) ctx.addIssue({ code: 'custom', path: ['tensors'], message: `the layout declares ${total} parameters, more than the ${MAX_JOINT_PARAMETERS} a federation may carry; shrink the embedding tables or hash into fewer buckets` });
  });
export type TensorLayoutSpec = z.infer<typeof TensorLayoutSpecSchema>;

/** A federation's joint model: the tabular MLP (task `binary`) or a task's tensor layout. */
export const JointModelSpecSchema = z.union([ModelSpecSchema, TensorLayoutSpecSchema]);
export type JointModelSpec = ModelSpec | TensorLayoutSpec;

/**
 * Tensors whose names start with this hold server control variates (SCAFFOLD, Karimireddy et al. 2020; the text
 * task's `ctrl:emb|head|bias`). Their FedAvg update keeps c the example-weighted mean of the partners' c_i only
 * when every partner's update is in the mean, so the federation config refuses them with client sampling or a
 * server optimizer (`FederationConfigSchema`).
 */
export const CONTROL_VARIATE_PREFIX = 'ctrl:';

/** Names of a layout's control-variate tensors (none for the MLP). */
export function controlVariateTensors(spec: JointModelSpec): string[] {
  return spec.kind === 'tensors' ? spec.tensors.map((t) => t.name).filter((n) => n.startsWith(CONTROL_VARIATE_PREFIX)) : [];
}

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/**
 * Offsets of each tensor of a layout in the flat vector.
 * @param spec - a tensor layout
 * @returns `{ name → { offset, length, shape } }` in layout order
 * @example tensorOffsets(layout).item_emb.offset // where the item table starts
 */
export function tensorOffsets(spec: TensorLayoutSpec): Record<string, { offset: number; length: number; shape: number[] }> {
  const out: Record<string, { offset: number; length: number; shape: number[] }> = {};
  let offset = 0;
  for (const t of spec.tensors) {
    const length = size(t.shape);
    out[t.name] = { offset, length, shape: [...t.shape] };
    offset += length;
  }
  return out;
}

/**
 * Length of the flat joint vector of any joint model spec.
 * @param spec - an MLP spec or a tensor layout
 * @returns the number of float32 parameters
 * @throws FedmartError CONFIG_ERROR if the spec is invalid
 */
export function jointParameterCount(spec: JointModelSpec): number {
  if (spec.kind === 'mlp') return parameterCount(spec);
  const parsed = TensorLayoutSpecSchema.safeParse(spec);
  if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `invalid tensor layout: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}; fix the federation's model`);
  return parsed.data.tensors.reduce((s, t) => s + size(t.shape), 0);
}

/**
 * Round-0 joint weights, bit-identical on every side for the same (spec, seed).
 * An MLP starts as {@link initWeights}; a layout's tensors start from their
 * declared initialisers, each tensor with its own seeded stream (so adding a
 * tensor at the end does not change the others).
 * @param spec - an MLP spec or a tensor layout
 * @param seed - PRNG seed (non-secret)
 * @param outputBias - MLP only: the output unit's initial bias
 * @returns flat weights of length {@link jointParameterCount}(spec)
 * @throws FedmartError CONFIG_ERROR if the spec is invalid
 */
export function initJointWeights(spec: JointModelSpec, seed: number, outputBias = 0): Float32Array {
  if (spec.kind === 'mlp') return initWeights(spec, seed, outputBias);
  const out = new Float32Array(jointParameterCount(spec));
  let offset = 0;
  for (const [k, t] of spec.tensors.entries()) {
    const n = size(t.shape);
    const view = out.subarray(offset, offset + n);
    const rand = seededRandom(seed * 1009 + k + 1);
    const init = t.init ?? { type: 'zeros' };
    switch (init.type) {
      case 'zeros':
        break;
      case 'constant':
        view.fill(init.value);
        break;
      case 'uniform':
        for (let i = 0; i < n; i++) view[i] = (2 * rand() - 1) * init.limit;
        break;
      case 'glorot': {
        const fanOut = t.shape[t.shape.length - 1]!;
        const fanIn = t.shape.length >= 2 ? t.shape[t.shape.length - 2]! : fanOut;
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        for (let i = 0; i < n; i++) view[i] = (2 * rand() - 1) * limit;
        break;
      }
      case 'normal':
        for (let i = 0; i < n; i += 2) {
          // Box–Muller: two independent N(0,1) from two uniforms (1 − u keeps log away from 0).
          const r = Math.sqrt(-2 * Math.log(1 - rand()));
          const a = 2 * Math.PI * rand();
          view[i] = r * Math.cos(a) * init.std;
          if (i + 1 < n) view[i + 1] = r * Math.sin(a) * init.std;
        }
        break;
    }
    offset += n;
  }
  return out;
}
