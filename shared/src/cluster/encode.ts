/**
 * Encoding for customer segments, the way `simulate` prepares partners:
 * one agreed schema (numeric vs one-hot categorical), standardisation
 * statistics combined federatedly from each partner's (count, Σx, Σx²)
 * (`data/stats.ts`), then each partner encodes its own table.
 *
 * Two differences from supervised training. The label is optional and is
 * never a clustering feature (it only yields positive rates). Standardised
 * numeric values are clipped to ±Z (default 5): k-means minimises squared
 * distances, so a handful of extreme customers (the bank data has a `previous`
 * of 275, 119 standard deviations out) would otherwise get segments of their
 * own; and the clip gives every encoded column a public bound, which is what
 * secure aggregation's fixed-point range is built from (`secure-sum.ts`).
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { inferFeatures, inferSchema, type DatasetSchema, type FeatureSpec } from '../data/schema.ts';
import { applyNumericStats, computeNumericStats, mergeNumericStats } from '../data/stats.ts';
import { encodeTable } from '../data/encode.ts';
import type { Table } from '../data/table.ts';
import type { Points } from './lloyd.ts';

/** Default clip of standardised numeric values, in standard deviations. */
export const DEFAULT_CLUSTER_CLIP = 5;

/** Options of {@link encodeForClustering}. */
export interface ClusterEncodingOptions {
  /** label column, only for positive rates */
  label?: string;
  /** label value that counts as positive (with `label`) */
  positive?: string;
  /** columns that are not features */
  drop?: string[];
  /** clip of standardised numeric values, > 0; default {@link DEFAULT_CLUSTER_CLIP} */
  clip?: number;
  /** name for messages */
  source?: string;
}

/** One partner's encoded rows. */
export interface EncodedPartner {
  points: Points;
  /** 0/1 labels, when a label column was given */
  labels?: Float32Array;
}

/** The result of {@link encodeForClustering}. */
export interface ClusterEncoding {
  /** features with federated means and stds, in encoding order */
  features: FeatureSpec[];
  partners: EncodedPartner[];
  /** per encoded column, the public bound on |value|: the clip for numeric, 1 for one-hot */
  columnBounds: Float64Array;
  d: number;
}

/**
 * Agree on the features, combine standardisation statistics from the
 * partners' sums, and encode each partner's table.
 *
 * @param agreed - the table the schema is inferred from (the agreed sample; in a simulation, the whole file)
 * @param partnerTables - each partner's own rows
 * @param opts - label, drop, clip
 * @returns per-partner encoded rows and the public column bounds
 * @throws FedmartError DATA_ERROR on unknown columns, a non-binary label, or bad values; CONFIG_ERROR on a bad clip
 */
export function encodeForClustering(agreed: Table, partnerTables: readonly Table[], opts: ClusterEncodingOptions = {}): ClusterEncoding {
  const clip = opts.clip ?? DEFAULT_CLUSTER_CLIP;
  if (!(typeof clip === 'number' && clip > 0 && Number.isFinite(clip))) throw new FedmartError('CONFIG_ERROR', `--clip must be a finite number of standard deviations > 0, got ${String(clip)}`);
  const source = opts.source ?? 'data';
  const drop = opts.drop ?? [];
  let schema0: DatasetSchema;
  if (opts.label !== undefined) {
    schema0 = inferSchema(agreed, { label: opts.label, ...(opts.positive === undefined ? {} : { positive: opts.positive }), drop, source, highCardinality: 'top' });
  } else {
    if (opts.positive !== undefined) throw new FedmartError('CONFIG_ERROR', '--positive needs --label: name the label column whose value it is');
    // DatasetSchema requires a label column; segments without --label name one that no column has,
    // so the encoder finds no label values (clustering never reads y; positiveRate is then omitted).
    let label = '(no label)';
    while (agreed.columns.includes(label)) label += '_';
    schema0 = { label, positive: ['1'], features: inferFeatures(agreed, { drop, source, highCardinality: 'top' }) };
  }
  const schema = applyNumericStats(schema0, mergeNumericStats(partnerTables.map((t) => computeNumericStats(t, schema0))));
  const columnBounds: number[] = [];
  const numericColumns: number[] = [];
  for (const f of schema.features) {
    if (f.type === 'numeric') {
      numericColumns.push(columnBounds.length);
      columnBounds.push(clip);
    } else for (let c = 0; c < f.categories.length; c++) columnBounds.push(1);
  }
  const partners = partnerTables.map((t, p): EncodedPartner => {
    const enc = encodeTable(t, schema, { requireLabel: opts.label !== undefined, source: `partner ${p + 1}` });
    for (let i = 0; i < enc.n; i++) {
      for (const c of numericColumns) {
        const at = i * enc.d + c;
        const v = enc.x[at]!;
        if (v > clip) enc.x[at] = clip;
        else if (v < -clip) enc.x[at] = -clip;
      }
    }
    const points = { x: enc.x, n: enc.n, d: enc.d };
    return opts.label === undefined ? { points } : { points, labels: enc.y };
  });
  return { features: schema.features, partners, columnBounds: Float64Array.from(columnBounds), d: columnBounds.length };
}
