/**
 * The portable export of a model version (issue 13, item 3), written by
 * `fedmart model export --out DIR`:
 *
 * - `model.json`  — TensorFlow.js layers format (`format: 'layers-model'`):
 *   a Keras-style `Sequential` topology of `Dense` layers (ReLU hidden, one
 *   sigmoid output) and a `weightsManifest` naming `weights.bin`; it loads in
 *   plain TensorFlow.js with `tf.loadLayersModel`. Scenario tasks whose joint
 *   parameters are a tensor layout (not a layers model) get
 *   `modelTopology: null` and the same manifest: decode them with
 *   `tf.io.decodeWeights`.
 * - `weights.bin` — every parameter as little-endian float32, in manifest order
 *   (each Dense kernel [in, out] row-major, then its bias) — the same bytes,
 *   and SHA-256, the coordinator stores for the version.
 * - `manifest.json` — `fedmart-model-export/1`: federation, version, SHA-256
 *   of weights.bin, the model spec and data schema, lineage (round, parent,
 *   strategy, participants, release state and who released it) and the
 *   privacy spent by the federation when it was exported.
 *
 * Pure: builds and checks the JSON documents; the CLI writes the files.
 */
import { z } from 'zod';
import { parameterShapes, type ModelSpec } from './model.ts';
import { JointModelSpecSchema, type JointModelSpec } from './task/layout.ts';

/** Format tag of `manifest.json`. */
export const MODEL_EXPORT_FORMAT = 'fedmart-model-export/1';
/** File names inside an export directory. */
export const EXPORT_FILES = { model: 'model.json', weights: 'weights.bin', manifest: 'manifest.json' } as const;

export const ModelExportManifestSchema = z.object({
  format: z.literal(MODEL_EXPORT_FORMAT),
  federationId: z.string(),
  version: z.number().int().min(0),
  task: z.string(),
  spec: JointModelSpecSchema,
  paramCount: z.number().int().min(1),
  /** SHA-256 of weights.bin, hex. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  dataSchema: z.unknown().optional(),
  metrics: z.record(z.string(), z.number()),
  lineage: z.object({
    modelVersionId: z.string(),
    roundId: z.string().nullable(),
    parentId: z.string().nullable(),
    strategy: z.string(),
    participants: z.array(z.string()),
    createdAt: z.string(),
    releaseStatus: z.string().optional(),
    publishRequestedBy: z.string().nullable().optional(),
    approvedBy: z.string().nullable().optional(),
  }),
  /** The federation's privacy ledger totals at export (null: not readable with the exporting token, or no DP). */
  privacy: z.unknown().nullable(),
  exportedAt: z.string(),
  files: z.object({ model: z.literal(EXPORT_FILES.model), weights: z.literal(EXPORT_FILES.weights) }),
});
export type ModelExportManifest = z.infer<typeof ModelExportManifestSchema>;

/** One entry of a TF.js weights manifest. */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
}

function denseLayer(units: number, activation: 'relu' | 'sigmoid', name: string, inputDim: number | null) {
  return {
    class_name: 'Dense',
    config: {
      units, activation, use_bias: true, name, trainable: true, dtype: 'float32',
      kernel_initializer: { class_name: 'Zeros', config: {} }, bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
      ...(inputDim !== null ? { batch_input_shape: [null, inputDim] } : {}),
    },
  };
}

/**
 * The TF.js `model.json` of a model spec (layers format for the MLP, weights-only for a tensor layout).
 * @param spec - the joint model spec
 * @param generatedBy - e.g. 'fedmart 0.1.0'
 * @returns the JSON document; its weightsManifest matches the flat weight order
 */
export function tfjsModelJson(spec: JointModelSpec, generatedBy: string): { format: string; generatedBy: string; convertedBy: null; modelTopology: unknown; weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[] } {
  let topology: unknown = null;
  let weights: TfjsWeightSpec[];
  if (spec.kind === 'mlp') {
    const m = spec as ModelSpec;
    const widths = [...m.hidden, 1];
    const layers = widths.map((units, i) => denseLayer(units, i + 1 < widths.length ? 'relu' : 'sigmoid', `dense_${i + 1}`, i === 0 ? m.inputDim : null));
    topology = { class_name: 'Sequential', config: { name: 'fedmart_mlp', layers }, keras_version: 'tfjs-layers 4.22.0', backend: 'tensor_flow.js' };
    const shapes = parameterShapes(m);
    weights = shapes.map((shape, i) => ({ name: `dense_${Math.floor(i / 2) + 1}/${i % 2 === 0 ? 'kernel' : 'bias'}`, shape, dtype: 'float32' as const }));
  } else {
    weights = spec.tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: 'float32' as const }));
  }
  return { format: spec.kind === 'mlp' ? 'layers-model' : 'weights-only', generatedBy, convertedBy: null, modelTopology: topology, weightsManifest: [{ paths: [EXPORT_FILES.weights], weights }] };
}
