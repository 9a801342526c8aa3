/**
 * The dataset schema every partner of a federation shares: which column is
 * the label, which value counts as positive, and how each feature is encoded.
 * Partners must encode identically, or the joint model's weights mean
 * different things on different partners; so the schema is agreed once
 * (inferred on one table or written by hand) and then validated everywhere.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { FedmartError } from '../errors.ts';
import { listColumns, type Table } from './table.ts';

const name = z.string().min(1, 'a feature name must not be empty');

/** A numeric feature, standardised as (v − mean) / std; mean 0 / std 1 when absent. */
export const NumericFeatureSchema = z.object({
  name,
  type: z.literal('numeric'),
  mean: z.number().refine(Number.isFinite, 'mean must be a finite number').optional(),
  std: z.number().refine((v) => Number.isFinite(v) && v > 0, 'std must be a finite number > 0').optional(),
});

/** A categorical feature, one-hot encoded over `categories` (in this order). */
export const CategoricalFeatureSchema = z.object({
  name,
  type: z.literal('categorical'),
  categories: z
    .array(z.string())
    .min(1, 'a categorical feature needs at least one category')
    .refine((c) => new Set(c).size === c.length, 'categories must be unique'),
});

/** One feature: a union on `type`. */
export const FeatureSpecSchema = z.discriminatedUnion('type', [NumericFeatureSchema, CategoricalFeatureSchema]);

/** The shared dataset schema (see the module doc). */
export const DatasetSchemaSchema = z
  .object({
    label: z.string().min(1, 'label must name a column'),
    positive: z.array(z.string()).min(1, 'positive must list at least one label value'),
    features: z.array(FeatureSpecSchema).min(1, 'at least one feature is needed'),
    id: z.string().min(1).optional(),
  })
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.features.forEach((f, i) => {
      if (seen.has(f.name)) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `feature ${JSON.stringify(f.name)} appears twice` });
      seen.add(f.name);
      if (f.name === s.label) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `the label ${JSON.stringify(s.label)} must not also be a feature` });
      if (s.id !== undefined && f.name === s.id) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `the id column ${JSON.stringify(s.id)} must not also be a feature` });
    });
  });

export type NumericFeature = z.infer<typeof NumericFeatureSchema>;
export type CategoricalFeature = z.infer<typeof CategoricalFeatureSchema>;
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;
export type DatasetSchema = z.infer<typeof DatasetSchemaSchema>;

/** Default cap on distinct values of a categorical column. */
export const DEFAULT_MAX_CATEGORIES = 64;

/** Label values taken as positive when `positive` is not given (case-insensitive). */
export const DEFAULT_POSITIVE_VALUES = ['yes', '1', 'true', 'positive'] as const;

/** Options for {@link inferSchema}. */
export interface InferSchemaOptions {
  /** Label column (binary). */
  label: string;
  /** Label value that counts as positive; default: the one of yes/1/true/positive present. */
  positive?: string;
  /** Columns to leave out (leaky ones such as the bank data's `duration`, free text, ids). */
  drop?: string[];
  /** Entity id column (used for alignment, never a feature). */
  id?: string;
  /** Most distinct values a categorical column may have. Default {@link DEFAULT_MAX_CATEGORIES}. */
  maxCategories?: number;
  /**
   * What to do with a categorical column that has more than `maxCategories`
   * values: `'error'` (default) refuses; `'top'` keeps the `maxCategories`
   * most frequent values (the rest encode as all zeros, like unseen values).
   */
  highCardinality?: 'error' | 'top';
  /** Name used in error messages, usually the file path. */
  source?: string;
}

/** Cell values that mean "missing" in common exports (R, pandas, UCI `?`). */
export const MISSING_TOKENS: ReadonlySet<string> = new Set(['NA', 'N/A', 'n/a', 'na', '?', 'null', 'NULL', 'NaN', 'nan', 'None', '-']);

/**
 * Parse a cell as a number. Empty or whitespace-only cells are missing
 * (`null`); anything `Number` cannot read as a finite value is `NaN`.
 */
export function parseNumericCell(v: string): number | null {
  if (v === '' || MISSING_TOKENS.has(v)) return null;
  const x = Number(v);
  if (x === 0 && v.trim() === '') return null; // Number('  ') is 0
  return Number.isFinite(x) ? x : Number.NaN;
}

/**
 * Infer a {@link DatasetSchema} from a table: every column except the label,
 * the id and `drop` becomes a feature. A column is numeric when every
 * non-empty cell parses as a finite number, otherwise categorical with its
 * distinct non-empty values sorted (by UTF-16 code units, so the order is the
 * same on every machine). Empty cells are "missing": encoded as the mean for
 * numeric and as all zeros for categorical features.
 *
 * Means and standard deviations are NOT filled in: in a federation they come
 * from every partner's sums (see `stats.ts`), not from one partner's data.
 *
 * @param table - a parsed table with at least one row
 * @param opts - label, positive value, dropped columns, category cap
 * @returns the schema
 * @throws FedmartError DATA_ERROR when a named column is missing, the label is
 *   not binary, the positive value is ambiguous, a column is empty or has too
 *   many categories — each message names the flag that fixes it
 * @example
 * inferSchema(bank, { label: 'y', drop: ['duration'] }) // positive ['yes'], 16 features
 */
export function inferSchema(table: Table, opts: InferSchemaOptions): DatasetSchema {
  if (opts == null || typeof opts.label !== 'string') throw new TypeError('inferSchema: opts.label must be a string');
  const maxCategories = opts.maxCategories ?? DEFAULT_MAX_CATEGORIES;
  if (!Number.isInteger(maxCategories) || maxCategories < 1) throw new RangeError(`inferSchema: maxCategories must be an integer >= 1, got ${String(maxCategories)}`);
  const where = opts.source === undefined ? '' : ` in ${opts.source}`;
  const drop = opts.drop ?? [];

  const labelIdx = columnIndexWhere(table, opts.label, '--label', where);
  const missingDrop = drop.filter((c) => !table.columns.includes(c));
  if (missingDrop.length > 0) {
    throw new FedmartError('DATA_ERROR', `--drop names ${missingDrop.map((c) => JSON.stringify(c)).join(', ')}, not found${where}; available columns: ${listColumns(table.columns)}`);
  }
  if (drop.includes(opts.label)) {
    throw new FedmartError('DATA_ERROR', `--drop includes the label column ${JSON.stringify(opts.label)}; remove it from --drop or choose another --label`);
  }
  if (opts.id !== undefined) {
    columnIndexWhere(table, opts.id, '--id', where);
    if (opts.id === opts.label) throw new FedmartError('DATA_ERROR', `--id and --label both name ${JSON.stringify(opts.id)}; the id column cannot be the label`);
  }
  if (table.rows.length === 0) {
    throw new FedmartError('DATA_ERROR', `no data rows${where}: the file has a header but no records; a schema can only be inferred from data`);
  }

  const positive = choosePositive(table, labelIdx, opts, where);

  const excluded = new Set<string>([opts.label, ...drop, ...(opts.id === undefined ? [] : [opts.id])]);
  const features: FeatureSpec[] = [];
  for (let c = 0; c < table.columns.length; c++) {
    const col = table.columns[c]!;
    if (excluded.has(col)) continue;
    features.push(inferFeature(table, c, maxCategories, where, opts.highCardinality ?? 'error'));
  }
  if (features.length === 0) {
    throw new FedmartError('DATA_ERROR', `no feature columns left${where} after removing the label${drop.length > 0 ? ' and --drop' : ''}; keep at least one column as a feature`);
  }
  const schema: DatasetSchema = { label: opts.label, positive: [positive], features };
  if (opts.id !== undefined) schema.id = opts.id;
  return schema;
}

/** Options for {@link inferFeatures}. */
export interface InferFeaturesOptions {
  /** Columns that are not features (a label kept for reporting, ids, leaky columns). */
  drop?: string[];
  /** Most distinct values a categorical column may have. Default {@link DEFAULT_MAX_CATEGORIES}. */
  maxCategories?: number;
  /** As in {@link InferSchemaOptions.highCardinality}. */
  highCardinality?: 'error' | 'top';
  /** Name used in error messages, usually the file path. */
  source?: string;
}

/**
 * Infer the feature specs of a table that has no label, for unsupervised
 * work such as customer segments: the same typing rules as
 * {@link inferSchema}, applied to every column not in `drop`. It exists
 * because a {@link DatasetSchema} needs a binary label, and segments must
 * work on a partner's customer file without one.
 *
 * @param table - a parsed table with at least one row
 * @param opts - dropped columns, category cap
 * @returns one spec per remaining column, in column order (no means/stds yet)
 * @throws FedmartError DATA_ERROR when a dropped column is missing, the table is
 *   empty, no column is left, a column is empty or has too many categories
 * @example
 * inferFeatures(bank, { drop: ['y', 'duration'] }).length // 15
 */
export function inferFeatures(table: Table, opts: InferFeaturesOptions = {}): FeatureSpec[] {
  const where = opts.source === undefined ? '' : ` in ${opts.source}`;
  const maxCategories = opts.maxCategories ?? DEFAULT_MAX_CATEGORIES;
  if (!Number.isInteger(maxCategories) || maxCategories < 1) throw new RangeError(`inferFeatures: maxCategories must be an integer >= 1, got ${String(maxCategories)}`);
  const drop = new Set(opts.drop ?? []);
  const missing = [...drop].filter((c) => !table.columns.includes(c));
  if (missing.length > 0) {
    throw new FedmartError('DATA_ERROR', `--drop names ${missing.map((c) => JSON.stringify(c)).join(', ')}, not found${where}; available columns: ${listColumns(table.columns)}`);
  }
  if (table.rows.length === 0) throw new FedmartError('DATA_ERROR', `no data rows${where}: the file has a header but no records`);
  const features: FeatureSpec[] = [];
  table.columns.forEach((col, c) => {
    if (!drop.has(col)) features.push(inferFeature(table, c, maxCategories, where, opts.highCardinality ?? 'error'));
  });
  if (features.length === 0) throw new FedmartError('DATA_ERROR', `no feature columns left${where} after --drop; keep at least one column as a feature`);
  return features;
}

function columnIndexWhere(table: Table, col: string, flag: string, where: string): number {
  const k = table.columns.indexOf(col);
  if (k === -1) {
    throw new FedmartError('DATA_ERROR', `column ${JSON.stringify(col)} not found${where}; available columns: ${listColumns(table.columns)}; pass ${flag} with one of them`);
  }
  return k;
}

function choosePositive(table: Table, labelIdx: number, opts: InferSchemaOptions, where: string): string {
  const label = opts.label;
  const counts = new Map<string, number>();
  let empty = 0;
  let firstEmpty = -1;
  for (let r = 0; r < table.rows.length; r++) {
    const v = table.rows[r]![labelIdx]!;
    if (v === '') {
      if (firstEmpty === -1) firstEmpty = r;
      empty++;
      continue;
    }
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const values = [...counts.keys()];
  if (values.length !== 2) {
    const shown = values.slice(0, 10).map((v) => JSON.stringify(v)).join(', ');
    const more = values.length > 10 ? `, … (${values.length} distinct)` : '';
    throw new FedmartError(
      'DATA_ERROR',
      `label column ${JSON.stringify(label)}${where} must have exactly two distinct non-empty values for binary classification, found ${values.length}: ${shown || '(none)'}${more}; choose a binary --label (and --positive for the value that counts as positive)`,
    );
  }
  if (empty > 0) {
    throw new FedmartError('DATA_ERROR', `label column ${JSON.stringify(label)}${where} is empty in ${empty} row(s) (first: data row ${firstEmpty + 1}); remove or label those rows before training`);
  }
  if (opts.positive !== undefined) {
    if (!counts.has(opts.positive)) {
      throw new FedmartError('DATA_ERROR', `--positive ${JSON.stringify(opts.positive)} is not a value of label column ${JSON.stringify(label)}${where}; its values are ${values.map((v) => JSON.stringify(v)).join(' and ')}`);
    }
    return opts.positive;
  }
  const defaults: readonly string[] = DEFAULT_POSITIVE_VALUES;
  const matches = values.filter((v) => defaults.includes(v.toLowerCase()));
  if (matches.length !== 1) {
    throw new FedmartError(
      'DATA_ERROR',
      `cannot tell which value of label column ${JSON.stringify(label)}${where} is positive: it has ${values.map((v) => JSON.stringify(v)).join(' and ')}; pass --positive with one of them`,
    );
  }
  return matches[0]!;
}

function inferFeature(table: Table, c: number, maxCategories: number, where: string, highCardinality: 'error' | 'top'): FeatureSpec {
  const col = table.columns[c]!;
  const rows = table.rows;
  let numeric = true;
  let present = 0;
  for (let r = 0; r < rows.length; r++) {
    const x = parseNumericCell(rows[r]![c]!);
    if (x === null) continue;
    present++;
    if (Number.isNaN(x)) {
      numeric = false;
      break;
    }
  }
  if (numeric && present === 0) {
    throw new FedmartError('DATA_ERROR', `column ${JSON.stringify(col)}${where} is empty in every row; drop it with --drop ${col}`);
  }
  if (numeric) return { name: col, type: 'numeric' };
  const distinct = new Set<string>();
  if (highCardinality === 'top') {
    const counts = new Map<string, number>();
    for (let r = 0; r < rows.length; r++) {
      const v = rows[r]![c]!;
      if (v !== '') counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || compareCodeUnits(a[0], b[0])).slice(0, maxCategories).map(([v]) => v);
    return { name: col, type: 'categorical', categories: top.sort(compareCodeUnits) };
  }
  for (let r = 0; r < rows.length; r++) {
    const v = rows[r]![c]!;
    if (v === '') continue;
    distinct.add(v);
    if (distinct.size > maxCategories) {
      throw new FedmartError(
        'DATA_ERROR',
        `column ${JSON.stringify(col)}${where} has more than ${maxCategories} distinct values, too many for one-hot encoding (it looks like an identifier or free text); drop it with --drop ${col} or raise --max-categories`,
      );
    }
  }
  const categories = [...distinct].sort(compareCodeUnits);
  return { name: col, type: 'categorical', categories };
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Options for {@link validateTableAgainstSchema}. */
export interface ValidateTableOptions {
  /** Require the label column (training, evaluation). Set false to score unlabeled data. Default true. */
  requireLabel?: boolean;
  /** Name used in error messages, usually the file path. */
  source?: string;
}

/**
 * Check that a table has every column the schema needs. Extra columns are
 * fine (they are ignored). Run before encoding so a partner with a different
 * file layout gets one message listing everything that is missing.
 *
 * @param table - the partner's table
 * @param schema - the federation's schema
 * @param opts - whether the label is required; `source` for messages
 * @throws FedmartError DATA_ERROR naming every missing column and the available ones
 */
export function validateTableAgainstSchema(table: Table, schema: DatasetSchema, opts: ValidateTableOptions = {}): void {
  const needed = [...(opts.requireLabel === false ? [] : [schema.label]), ...schema.features.map((f) => f.name)];
  const present = new Set(table.columns);
  const missing = needed.filter((c) => !present.has(c));
  if (missing.length > 0) {
    const where = opts.source === undefined ? '' : ` in ${opts.source}`;
    throw new FedmartError(
      'DATA_ERROR',
      `the schema needs column(s) ${missing.map((c) => JSON.stringify(c)).join(', ')}, missing${where}; available columns: ${listColumns(table.columns)}; rename the columns or use the schema that matches this data`,
    );
  }
}

