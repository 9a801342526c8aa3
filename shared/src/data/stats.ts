/**
 * Federated standardisation statistics.
 *
 * Numeric features are standardised with one global mean and std, so that a
 * weight means the same thing on every partner. Nobody holds all rows, so:
 *
 * 1. each partner runs {@link computeNumericStats} on its own table, which
 *    returns only aggregates per numeric feature — `count`, `sum`, `sumSq` —
 *    never a row or a single value;
 * 2. the coordinator (or secure aggregation, since these are plain sums)
 *    adds them up with {@link mergeNumericStats};
 * 3. everyone applies the merged result to the schema with
 *    {@link applyNumericStats}, which fills in `mean` and `std`.
 *
 * Sums reveal less than rows but are not private: a partner with very few
 * rows discloses their average. Where that matters, sum them under secure
 * aggregation, or add DP noise before sharing.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { FedmartError } from '../errors.ts';
import { parseNumericCell, type DatasetSchema } from './schema.ts';
import type { Table } from './table.ts';

/** Aggregates of one numeric feature: number of non-empty values, Σv and Σv². */
export const NumericStatsSchema = z.object({
  name: z.string().min(1),
  count: z.number().int().nonnegative(),
  sum: z.number().refine(Number.isFinite, 'sum must be finite'),
  sumSq: z.number().refine((v) => Number.isFinite(v) && v >= 0, 'sumSq must be finite and >= 0'),
});
export type NumericStats = z.infer<typeof NumericStatsSchema>;

/** Stds below this are treated as a constant column and replaced by 1 (avoids dividing by ~0). */
export const STD_FLOOR = 1e-6;

/**
 * A variance below this fraction of E[v²] is indistinguishable from float64
 * rounding in Σv²/n − mean² (each sum carries ~n·2⁻⁵³ relative error), so
 * the column is treated as constant.
 */
export const RELATIVE_VARIANCE_FLOOR = 1e-10;

/**
 * Aggregates for every numeric feature of the schema, in schema order.
 * Empty cells are skipped (they are missing, not zero).
 *
 * @param table - the partner's own table
 * @param schema - the federation's schema
 * @returns one entry per numeric feature; only sums, no rows
 * @throws FedmartError DATA_ERROR if a numeric column is missing or holds a non-number
 */
export function computeNumericStats(table: Table, schema: DatasetSchema): NumericStats[] {
  const out: NumericStats[] = [];
  for (const f of schema.features) {
    if (f.type !== 'numeric') continue;
    const c = table.columns.indexOf(f.name);
    if (c === -1) {
      throw new FedmartError('DATA_ERROR', `numeric feature ${JSON.stringify(f.name)} is not a column of this table; the table and the schema do not match`);
    }
    let count = 0;
    let sum = 0;
    let sumSq = 0;
    for (let r = 0; r < table.rows.length; r++) {
      const cell = table.rows[r]![c]!;
      const x = parseNumericCell(cell);
      if (x === null) continue;
      if (Number.isNaN(x)) {
        throw new FedmartError('DATA_ERROR', `column ${JSON.stringify(f.name)} data row ${r + 1}: ${JSON.stringify(cell)} is not a number, but the schema says numeric; fix the value or the schema`);
      }
      count++;
      sum += x;
      sumSq += x * x;
    }
    out.push({ name: f.name, count, sum, sumSq });
  }
  return out;
}

/**
 * Add up the statistics of several partners. Every list must name the same
 * features in the same order (they come from the same schema).
 *
 * @param list - one `computeNumericStats` result per partner
 * @returns the element-wise sums
 * @throws RangeError if `list` is empty; FedmartError DATA_ERROR if the lists disagree or hold invalid numbers
 */
export function mergeNumericStats(list: NumericStats[][]): NumericStats[] {
  if (!Array.isArray(list) || list.length === 0) throw new RangeError('mergeNumericStats: expected at least one list of stats');
  const first = list[0]!;
  const out = first.map((s) => ({ name: s.name, count: 0, sum: 0, sumSq: 0 }));
  list.forEach((stats, p) => {
    const parsed = z.array(NumericStatsSchema).safeParse(stats);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new FedmartError('DATA_ERROR', `numeric stats #${p + 1} are invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    const names = stats.map((s) => s.name);
    if (names.length !== out.length || names.some((n, i) => n !== out[i]!.name)) {
      throw new FedmartError('DATA_ERROR', `numeric stats #${p + 1} cover [${names.join(', ')}] but #1 covers [${out.map((s) => s.name).join(', ')}]; all partners must use the same schema`);
    }
    stats.forEach((s, i) => {
      const o = out[i]!;
      o.count += s.count;
      o.sum += s.sum;
      o.sumSq += s.sumSq;
    });
  });
  return out;
}

/**
 * Fill in `mean` and `std` of every numeric feature from (merged) stats:
 * mean = Σv / n, std = sqrt(Σv² / n − mean²), the population std of the
 * pooled data (as scikit-learn's StandardScaler). A std below
 * {@link STD_FLOOR} (a constant column) becomes 1, and a feature with no
 * values gets mean 0, std 1, so encoding never divides by zero.
 *
 * The one-pass formula loses precision when |mean| ≫ std (catastrophic
 * cancellation): a variance below {@link RELATIVE_VARIANCE_FLOOR} × E[v²]
 * is rounding noise and the feature is treated as constant (std 1). That
 * costs nothing for real features (std/|mean| > 1e-5), and shifting values
 * to a smaller offset before summing would need an extra agreed round.
 *
 * @param schema - the schema (not modified)
 * @param stats - merged stats covering every numeric feature
 * @returns a new schema with mean/std set on numeric features
 * @throws FedmartError DATA_ERROR if stats miss a numeric feature or name a non-numeric one
 */
export function applyNumericStats(schema: DatasetSchema, stats: readonly NumericStats[]): DatasetSchema {
  const byName = new Map(stats.map((s) => [s.name, s]));
  for (const s of stats) {
    const f = schema.features.find((g) => g.name === s.name);
    if (f === undefined || f.type !== 'numeric') {
      throw new FedmartError('DATA_ERROR', `stats name ${JSON.stringify(s.name)}, which is not a numeric feature of the schema; compute stats with the same schema`);
    }
  }
  const features = schema.features.map((f) => {
    if (f.type !== 'numeric') return f;
    const s = byName.get(f.name);
    if (s === undefined) {
      throw new FedmartError('DATA_ERROR', `no stats for numeric feature ${JSON.stringify(f.name)}; compute stats with the same schema`);
    }
    if (s.count === 0) return { ...f, mean: 0, std: 1 };
    const mean = s.sum / s.count;
    const meanSq = s.sumSq / s.count;
    const variance = meanSq - mean * mean;
    // Below ~1e-10 of E[v²] the difference is rounding noise from the one-pass formula, not spread.
    if (!(variance > RELATIVE_VARIANCE_FLOOR * meanSq)) return { ...f, mean, std: 1 };
    const sd = Math.sqrt(variance);
    return { ...f, mean, std: sd < STD_FLOOR ? 1 : sd };
  });
  return { ...schema, features };
}
