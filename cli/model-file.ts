/**
 * Read and write `fedmart-model/1` files (schema: `shared/src/model-file.ts`).
 * `simulate --save-model FILE` writes one; `fedmart predict --model FILE`
 * reads it. Reading refuses anything that does not add up: unknown format,
 * weights whose SHA-256 differs from the recorded one, a weight count that
 * does not fit the spec, or a data schema of another width.
 */
import { createHash } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { MODEL_FILE_FORMAT, ModelFileSchema, type ModelFileMetadata } from '@fedmart/shared/model-file';
import { parameterCount, type ModelSpec } from '@fedmart/shared/model';
import { encodeFloat32, decodeFloat32 } from '@fedmart/shared/codec';
import { featureDim, type DatasetSchema } from '@fedmart/shared/data/index';
import { readText, writeAtomically } from '@fedmart/client-node/data/connectors';

/** A model with what it needs to score rows: spec, weights, schema, optional baseline and lineage. */
export interface SavedModel {
  spec: ModelSpec;
  weights: Float32Array;
  dataSchema: DatasetSchema;
  /** Encoded explanation baseline (e.g. `explainFederatedModel(...).baseline`); absent = numerics at the mean, categories at 0. */
  baseline?: number[];
  metadata?: ModelFileMetadata;
}

/**
 * Hex SHA-256 of the weights' wire bytes (little-endian float32), the same
 * digest the coordinator records for a model version.
 *
 * @param weights - flat weights
 * @returns 64 hex digits
 */
export function weightsSha256(weights: Float32Array): string {
  return createHash('sha256').update(encodeFloat32(weights)).digest('hex');
}

function checkConsistent(m: SavedModel, where: string): void {
  const need = parameterCount(m.spec);
  if (m.weights.length !== need) throw new FedmartError('DATA_ERROR', `${where}: the spec ${JSON.stringify(m.spec)} needs ${need} weights, the file has ${m.weights.length}; the file is damaged — export it again`);
  const d = featureDim(m.dataSchema);
  if (d !== m.spec.inputDim) throw new FedmartError('DATA_ERROR', `${where}: the data schema encodes ${d} columns but the model takes ${m.spec.inputDim}; the schema is not the one the model was trained with`);
  if (m.baseline !== undefined && m.baseline.length !== d) throw new FedmartError('DATA_ERROR', `${where}: the baseline has ${m.baseline.length} values, the model takes ${d}`);
}

/**
 * Write a model file atomically (a reader never sees half a file).
 *
 * @param path - destination; parent directories are created
 * @param model - spec, weights, schema, optional baseline and metadata
 * @returns the SHA-256 recorded for the weights
 * @throws FedmartError DATA_ERROR if the parts disagree (weight count, schema width) or the file cannot be written
 * @example
 * await writeModelFile('bank-model.json', { spec, weights: fed.weights, dataSchema: exp.schema, baseline: explanations.baseline, metadata: { source: 'simulate' } });
 */
export async function writeModelFile(path: string, model: SavedModel): Promise<string> {
  checkConsistent(model, `refusing to write ${path}`);
  const sha256 = weightsSha256(model.weights);
  const doc = ModelFileSchema.parse({
    format: MODEL_FILE_FORMAT,
    spec: model.spec,
    dataSchema: model.dataSchema,
    weights: Buffer.from(encodeFloat32(model.weights)).toString('base64'),
    sha256,
    ...(model.baseline !== undefined ? { baseline: model.baseline } : {}),
    metadata: { createdAt: new Date().toISOString(), ...model.metadata },
  });
  await writeAtomically(path, JSON.stringify(doc) + '\n');
  return sha256;
}

/**
 * Read and verify a model file.
 *
 * @param path - the file (`--model`)
 * @returns the model, its weights verified against the recorded SHA-256
 * @throws FedmartError DATA_ERROR on a missing file, invalid JSON, a schema
 *   violation (each field named), a hash mismatch or inconsistent parts
 */
export async function readModelFile(path: string): Promise<SavedModel & { sha256: string }> {
  const text = await readText(path, '--model');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FedmartError('DATA_ERROR', `cannot read model file ${path}: not valid JSON (${(err as Error).message}); pass a file written by "fedmart simulate --save-model"`, { cause: err });
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (format !== MODEL_FILE_FORMAT) {
    throw new FedmartError('DATA_ERROR', `model file ${path} has format ${JSON.stringify(format ?? null)}, expected "${MODEL_FILE_FORMAT}"; pass a file written by "fedmart simulate --save-model" (or upgrade fedmart)`);
  }
  const parsed = ModelFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new FedmartError('DATA_ERROR', `model file ${path} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}; export the model again`);
  }
  const f = parsed.data;
  const bytes = new Uint8Array(Buffer.from(f.weights, 'base64'));
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== f.sha256) {
    throw new FedmartError('DATA_ERROR', `model file ${path}: the weights hash to ${actual} but the file records ${f.sha256}; the file is damaged or was edited — refusing to use it, export the model again`);
  }
  const need = parameterCount(f.spec);
  if (bytes.length !== need * 4) throw new FedmartError('DATA_ERROR', `model file ${path}: the spec needs ${need} weights (${need * 4} bytes), the file holds ${bytes.length} bytes; export the model again`);
  const model: SavedModel & { sha256: string } = { spec: f.spec, weights: decodeFloat32(bytes, need), dataSchema: f.dataSchema, metadata: f.metadata, sha256: f.sha256, ...(f.baseline !== undefined ? { baseline: f.baseline } : {}) };
  checkConsistent(model, `model file ${path}`);
  return model;
}
