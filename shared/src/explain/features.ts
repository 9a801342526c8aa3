/**
 * From encoded columns back to the features a marketer knows: a numeric
 * feature is one standardised column, a categorical one is a one-hot group
 * of columns. Explanations are computed per encoded column and then summed
 * per group, so `contact` gets one number, reported with the row's category
 * (`cellular`) rather than three `contact=…` columns.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { featureDim, type DatasetSchema } from '../data/index.ts';

/** The encoded columns `[start, start + width)` that carry one original feature. */
export interface FeatureGroup {
  /** The original column name (`age`, `contact`). */
  readonly feature: string;
  readonly type: 'numeric' | 'categorical';
  /** First encoded column. */
  readonly start: number;
  /** Number of encoded columns: 1 for numeric, the category count for categorical. */
  readonly width: number;
  /** Categorical only: the category of each encoded column, in order. */
  readonly categories?: readonly string[];
  /** Numeric only: the schema's standardisation (mean 0 / std 1 when it has none). */
  readonly mean?: number;
  readonly std?: number;
}

/** Value shown beside a contribution: the de-standardised number, the category, or null (missing / a category the schema does not list). */
export type FeatureValue = number | string | null;

/**
 * The feature groups of a schema, in encoded-column order.
 *
 * @param schema - the federation's data schema (with its numeric statistics)
 * @returns one group per schema feature, covering columns 0 … featureDim(schema) − 1
 */
export function featureGroups(schema: DatasetSchema): FeatureGroup[] {
  const groups: FeatureGroup[] = [];
  let start = 0;
  for (const f of schema.features) {
    if (f.type === 'numeric') {
      groups.push({ feature: f.name, type: 'numeric', start, width: 1, mean: f.mean ?? 0, std: f.std ?? 1 });
      start += 1;
    } else {
      groups.push({ feature: f.name, type: 'categorical', start, width: f.categories.length, categories: f.categories });
      start += f.categories.length;
    }
  }
  return groups;
}

/**
 * Refuse a model whose input width does not match the schema: its weights
 * would be attributed to the wrong features.
 *
 * @param inputDim - the model spec's input width
 * @param schema - the data schema shipped with the model
 * @throws FedmartError `CONFIG_ERROR` naming both widths
 */
export function assertSchemaFitsModel(inputDim: number, schema: DatasetSchema): void {
  const d = featureDim(schema);
  if (d !== inputDim) {
    throw new FedmartError('CONFIG_ERROR', `the model takes ${inputDim} encoded columns but its data schema encodes to ${d}; the schema is not the one the model was trained with — use the federation's schema or the model file's own`);
  }
}

/**
 * The original value of a feature in an encoded row: a numeric column is
 * de-standardised (v·std + mean, rounded to the decimals the
 * float32 encoding keeps, so 58 reads 58 and not 57.99999); a one-hot group gives its hot category,
 * or null when no column is hot (the cell was empty or held a value the
 * schema does not list).
 *
 * @param group - from {@link featureGroups}
 * @param x - encoded values (a row or a matrix)
 * @param offset - index of the row's first value in `x`
 * @returns the value to show a reader
 */
export function featureValue(group: FeatureGroup, x: ArrayLike<number>, offset = 0): FeatureValue {
  if (group.type === 'numeric') {
    const z = x[offset + group.start]!;
    const v = z * group.std! + group.mean!;
    // Float32 keeps ~2^-23 of |z| relative; two roundings (subtract, scale) → 2^-22. Round to that resolution.
    const resolution = group.std! * Math.max(Math.abs(z), 1) * 2 ** -22;
    const decimals = Math.min(15, Math.max(0, Math.floor(-Math.log10(resolution))));
    return Number(v.toFixed(decimals));
  }
  let best = -1;
  let bestV = 0;
  for (let k = 0; k < group.width; k++) {
    const v = x[offset + group.start + k]!;
    if (v > bestV) {
      bestV = v;
      best = k;
    }
  }
  return best === -1 ? null : group.categories![best]!;
}

/**
 * Sum per-column attributions into one number per feature group (linear
 * attributions and Integrated Gradients are both additive over columns, so
 * a group's sum is its exact share of the total).
 *
 * @param groups - from {@link featureGroups}
 * @param perColumn - one attribution per encoded column
 * @returns one sum per group, in group order
 */
export function sumByGroup(groups: readonly FeatureGroup[], perColumn: ArrayLike<number>): Float64Array {
  const out = new Float64Array(groups.length);
  groups.forEach((g, i) => {
    let s = 0;
    for (let k = 0; k < g.width; k++) s += perColumn[g.start + k]!;
    out[i] = s;
  });
  return out;
}
