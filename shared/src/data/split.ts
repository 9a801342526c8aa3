/**
 * Reproducible splits: train/test (stratified by label) and partners
 * (grouped by a column, so partners differ the way real ones do).
 *
 * Pure: no I/O. Randomness comes from the seeded PRNG in `rng.ts`.
 */
import { FedmartError } from '../errors.ts';
import { createSeededRng, shuffleInPlace } from './rng.ts';
import type { Table } from './table.ts';

/**
 * Split row indices into train and test, keeping the positive rate of both
 * equal to the whole's. Within each class the indices are shuffled with the
 * seeded PRNG and the first round(count × testFraction) go to test; a class
 * with at least 2 rows always puts at least one row on each side, so a test
 * set can be scored with ROC AUC even for rare positives.
 *
 * @param y - labels, each exactly 0 or 1
 * @param testFraction - share of each class held out, in (0, 1)
 * @param seed - PRNG seed (same seed → same split)
 * @returns ascending row indices of each side (shuffle batches yourself)
 * @throws TypeError if `y` is not a Float32Array; RangeError on a bad fraction or a label not 0/1
 * @example
 * const { train, test } = stratifiedSplit(enc.y, 0.2, 42);
 */
export function stratifiedSplit(y: Float32Array, testFraction: number, seed: number): { train: Int32Array; test: Int32Array } {
  if (!(y instanceof Float32Array)) throw new TypeError('stratifiedSplit: y must be a Float32Array');
  if (typeof testFraction !== 'number' || !(testFraction > 0 && testFraction < 1)) {
    throw new RangeError(`stratifiedSplit: testFraction must be in (0, 1), got ${String(testFraction)}`);
  }
  const classes: number[][] = [[], []];
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (v !== 0 && v !== 1) throw new RangeError(`stratifiedSplit: y[${i}] is ${v}; labels must be 0 or 1`);
    classes[v]!.push(i);
  }
  const rng = createSeededRng(seed);
  const train: number[] = [];
  const test: number[] = [];
  for (const members of classes) {
    shuffleInPlace(members, rng);
    let k = Math.round(members.length * testFraction);
    if (members.length >= 2) k = Math.min(Math.max(k, 1), members.length - 1);
    for (let j = 0; j < members.length; j++) (j < k ? test : train).push(members[j]!);
  }
  return { train: Int32Array.from(train).sort(), test: Int32Array.from(test).sort() };
}

/** Result of {@link partitionByColumn}. */
export interface ColumnPartition {
  /** Distinct values owned by each partner, largest (by rows) first. */
  groups: string[][];
  /** For each row, the index of the partner that owns it. */
  assignment: Int32Array;
  /** Rows per partner. */
  sizes: number[];
}

/**
 * Split rows among partners by the values of one column (e.g. `job` or a
 * region): every distinct value goes wholly to one partner, so partners see
 * different sub-populations — non-IID by construction, as real brands are.
 * Values are placed largest first onto the partner with the fewest rows so
 * far (greedy LPT scheduling, Graham 1969), which balances row counts; the
 * seed breaks ties between equal-sized values and between equal partners.
 * An empty cell is a value like any other.
 *
 * @param values - the partition column, one cell per row
 * @param partners - number of partners, an integer >= 1
 * @param seed - PRNG seed (same seed → same partition)
 * @param opts - `column` names the column in error messages
 * @returns the value groups, the per-row assignment and the group sizes
 * @throws RangeError on a bad `partners`; FedmartError CONFIG_ERROR if the
 *   column has fewer distinct values than partners
 * @example
 * const { assignment } = partitionByColumn(table.rows.map((r) => r[jobIdx]), 6, 1, { column: 'job' });
 */
export function partitionByColumn(values: readonly string[], partners: number, seed: number, opts: { column?: string } = {}): ColumnPartition {
  if (!Array.isArray(values)) throw new TypeError('partitionByColumn: values must be an array of strings');
  if (!Number.isInteger(partners) || partners < 1) throw new RangeError(`partitionByColumn: partners must be an integer >= 1, got ${String(partners)}`);
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  if (counts.size < partners) {
    const col = opts.column === undefined ? 'the partition column' : `column ${JSON.stringify(opts.column)}`;
    throw new FedmartError(
      'CONFIG_ERROR',
      `${col} has ${counts.size} distinct value(s), fewer than the ${partners} partners requested; each partner needs at least one value: use --partners ${Math.max(1, counts.size)} or fewer, or partition by a column with more values`,
    );
  }
  const rng = createSeededRng(seed);
  // Seeded order, then a stable sort by count: the seed decides among equal counts.
  const order = shuffleInPlace([...counts.keys()], rng).sort((a, b) => counts.get(b)! - counts.get(a)!);
  const tieRank = shuffleInPlace(Array.from({ length: partners }, (_, g) => g), rng);
  const groups: string[][] = Array.from({ length: partners }, () => []);
  const sizes = new Array<number>(partners).fill(0);
  const groupOf = new Map<string, number>();
  for (const v of order) {
    let best = tieRank[0]!;
    for (const g of tieRank) if (sizes[g]! < sizes[best]!) best = g;
    groups[best]!.push(v);
    sizes[best]! += counts.get(v)!;
    groupOf.set(v, best);
  }
  const assignment = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) assignment[i] = groupOf.get(values[i]!)!;
  return { groups, assignment, sizes };
}

/**
 * Rows of a table at the given indices, in that order (rows are shared, not copied).
 *
 * @param table - the table
 * @param indices - row indices
 * @returns a table with the same columns
 * @throws RangeError on an out-of-range index
 */
export function selectRows(table: Table, indices: ArrayLike<number>): Table {
  const n = table.rows.length;
  const rows: string[][] = new Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`selectRows: index ${String(i)} at position ${k} is outside 0..${n - 1}`);
    rows[k] = table.rows[i]!;
  }
  return { columns: [...table.columns], rows };
}

/**
 * Rows of a row-major n×d matrix at the given indices (use d = 1 for labels).
 *
 * @param x - the matrix
 * @param d - row width, an integer >= 1 dividing `x.length`
 * @param indices - row indices
 * @returns a new indices.length×d matrix
 * @throws RangeError on a bad `d` or an out-of-range index
 */
export function takeRows(x: Float32Array, d: number, indices: ArrayLike<number>): Float32Array {
  if (!Number.isInteger(d) || d < 1 || x.length % d !== 0) throw new RangeError(`takeRows: d must be an integer >= 1 dividing x.length ${x.length}, got ${String(d)}`);
  const n = x.length / d;
  const out = new Float32Array(indices.length * d);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`takeRows: index ${String(i)} at position ${k} is outside 0..${n - 1}`);
    out.set(x.subarray(i * d, (i + 1) * d), k * d);
  }
  return out;
}

/**
 * Indices of the rows assigned to one partner.
 *
 * @param assignment - from {@link partitionByColumn}
 * @param partner - partner index
 * @returns ascending row indices
 */
export function rowsOfPartner(assignment: Int32Array, partner: number): Int32Array {
  let count = 0;
  for (let i = 0; i < assignment.length; i++) if (assignment[i] === partner) count++;
  const out = new Int32Array(count);
  let k = 0;
  for (let i = 0; i < assignment.length; i++) if (assignment[i] === partner) out[k++] = i;
  return out;
}

