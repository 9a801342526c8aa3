/**
 * Turn a string table into the dense float matrix a model trains on, exactly
 * as the shared schema says, so every partner produces the same columns in
 * the same order.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { validateTableAgainstSchema, type DatasetSchema } from './schema.ts';
import type { Table } from './table.ts';

/** An encoded dataset: `x` is n×d row-major, `y` is 0/1. */
export interface EncodedData {
  /** Features, row-major: row i is `x.subarray(i * d, (i + 1) * d)`. */
  x: Float32Array;
  /** Labels, 1 for a positive row and 0 otherwise (all 0 when encoded without labels). */
  y: Float32Array;
  /** Number of rows. */
  n: number;
  /** Number of feature columns, {@link featureDim}(schema). */
  d: number;
  /** Name of each of the d columns: `age`, `job=admin.`, … */
  featureNames: string[];
}

/**
 * Width of the encoded feature vector: 1 per numeric feature plus one per
 * category of each categorical feature.
 *
 * @param schema - the schema
 * @returns d
 */
export function featureDim(schema: DatasetSchema): number {
  let d = 0;
  for (const f of schema.features) d += f.type === 'numeric' ? 1 : f.categories.length;
  return d;
}

/**
 * Names of the encoded columns, in order: a numeric feature keeps its name,
 * a category becomes `name=value`.
 *
 * @param schema - the schema
 * @returns d names
 */
export function encodedFeatureNames(schema: DatasetSchema): string[] {
  const names: string[] = [];
  for (const f of schema.features) {
    if (f.type === 'numeric') names.push(f.name);
    else for (const c of f.categories) names.push(`${f.name}=${c}`);
  }
  return names;
}

/** Options for {@link encodeTable}. */
export interface EncodeOptions {
  /** Set false to encode unlabeled data for scoring (`y` is then all zeros). Default true. */
  requireLabel?: boolean;
  /** Name used in error messages, usually the file path. */
  source?: string;
}

/**
 * Encode a table with the schema.
 *
 * - numeric: (v − mean) / std, with mean 0 / std 1 when the schema has none
 *   (run `applyNumericStats` first); an empty cell is 0, i.e. imputed with
 *   the mean;
 * - categorical: one-hot over `categories`; an empty or unseen value (one
 *   this partner has but the schema does not list) encodes as all zeros —
 *   the model then treats it as "none of the known categories" instead of
 *   failing the partner's whole round;
 * - label: 1 if the value is in `positive`, else 0.
 *
 * @param table - the partner's table (extra columns are ignored)
 * @param schema - the federation's schema
 * @param opts - whether the label is required; `source` for messages
 * @returns the encoded matrix, labels and column names
 * @throws FedmartError DATA_ERROR on missing columns, a non-number in a numeric column, or an empty label
 * @example
 * const { x, y, n, d } = encodeTable(table, applyNumericStats(schema, merged));
 */
export function encodeTable(table: Table, schema: DatasetSchema, opts: EncodeOptions = {}): EncodedData {
  const requireLabel = opts.requireLabel !== false;
  const where = opts.source === undefined ? '' : `${opts.source}: `;
  validateTableAgainstSchema(table, schema, { requireLabel, ...(opts.source === undefined ? {} : { source: opts.source }) });
  const n = table.rows.length;
  const d = featureDim(schema);
  const x = new Float32Array(n * d);
  const y = new Float32Array(n);

  // Plans: column index, output offset, and the per-kind constants.
  const numCols: number[] = [];
  const numOffsets: number[] = [];
  const numMeans: number[] = [];
  const numInvStds: number[] = [];
  const catCols: number[] = [];
  const catMaps: Map<string, number>[] = [];
  let offset = 0;
  for (const f of schema.features) {
    const c = table.columns.indexOf(f.name);
    if (f.type === 'numeric') {
      numCols.push(c);
      numOffsets.push(offset);
      numMeans.push(f.mean ?? 0);
      numInvStds.push(1 / (f.std ?? 1));
      offset += 1;
    } else {
      catCols.push(c);
      catMaps.push(new Map(f.categories.map((v, k) => [v, offset + k])));
      offset += f.categories.length;
    }
  }
  const labelCol = table.columns.indexOf(schema.label);
  const positive = new Set(schema.positive);

  for (let r = 0; r < n; r++) {
    const row = table.rows[r]!;
    const base = r * d;
    for (let k = 0; k < numCols.length; k++) {
      const cell = row[numCols[k]!]!;
      if (cell === '') continue; // missing: mean imputation, which is 0 after standardising
      const v = Number(cell);
      if (!Number.isFinite(v)) {
        throw new FedmartError('DATA_ERROR', `${where}column ${JSON.stringify(table.columns[numCols[k]!])} data row ${r + 1}: ${JSON.stringify(cell)} is not a number, but the schema says numeric; fix the value or the schema`);
      }
      if (v === 0 && cell.trim() === '') continue; // whitespace-only is missing too
      x[base + numOffsets[k]!] = (v - numMeans[k]!) * numInvStds[k]!;
    }
    for (let k = 0; k < catCols.length; k++) {
      const pos = catMaps[k]!.get(row[catCols[k]!]!);
      if (pos !== undefined) x[base + pos] = 1;
    }
    if (labelCol !== -1) {
      const lv = row[labelCol]!;
      if (lv === '' && requireLabel) {
        throw new FedmartError('DATA_ERROR', `${where}label column ${JSON.stringify(schema.label)} is empty in data row ${r + 1}; remove or label that row before training`);
      }
      if (positive.has(lv)) y[r] = 1;
    }
  }
  return { x, y, n, d, featureNames: encodedFeatureNames(schema) };
}
