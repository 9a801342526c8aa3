/**
 * The model file format (`fedmart-model/1`): one JSON document that carries
 * everything needed to score and explain rows without a coordinator — the
 * model spec, the agreed data schema (with its standardisation statistics),
 * the weights, and their SHA-256 so a damaged or edited file is refused.
 *
 * ```json
 * { "format": "fedmart-model/1",
 *   "spec": { "kind": "mlp", "inputDim": 50, "hidden": [32] },
 *   "dataSchema": { "label": "y", "positive": ["yes"], "features": [ … ] },
 *   "weights": "<base64 of the little-endian float32 weights, parameterShapes order>",
 *   "sha256": "<hex SHA-256 of those bytes, as the coordinator's model_versions row>",
 *   "baseline": [ … ],          // optional: encoded explanation baseline (training means)
 *   "metadata": { "federation": "f_…", "version": 20, "metrics": { "auc": 0.78 }, "createdAt": "…", "source": "simulate" } }
 * ```
 *
 * Pure: the schema only; reading and writing live in `cli/model-file.ts`.
 */
import { z } from 'zod';
import { ModelSpecSchema } from './model.ts';
import { DatasetSchemaSchema } from './data/schema.ts';

/** The format tag of the current model file version. */
export const MODEL_FILE_FORMAT = 'fedmart-model/1';

/** Lineage and scores of a saved model (all optional). */
export const ModelFileMetadataSchema = z
  .object({
    federation: z.string().min(1).optional(),
    version: z.number().int().min(0).optional(),
    metrics: z.record(z.string(), z.number()).optional(),
    createdAt: z.string().optional(),
    source: z.string().optional(),
  })
  .strict();

/** A model file as stored (see the module doc). */
export const ModelFileSchema = z
  .object({
    format: z.literal(MODEL_FILE_FORMAT),
    spec: ModelSpecSchema,
    dataSchema: DatasetSchemaSchema,
    weights: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'weights must be base64'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'),
    baseline: z.array(z.number()).optional(),
    metadata: ModelFileMetadataSchema.default({}),
  })
  .strict();

/** A parsed model file. */
export type ModelFile = z.infer<typeof ModelFileSchema>;
/** Model file metadata. */
export type ModelFileMetadata = z.infer<typeof ModelFileMetadataSchema>;
