import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { DatasetSchemaSchema, FeatureSpecSchema, inferSchema, parseNumericCell, validateTableAgainstSchema, type DatasetSchema } from './schema.ts';
import type { Table } from './table.ts';

function errorOf(fn: () => unknown, code = 'DATA_ERROR'): string {
  try {
    fn();
  } catch (err) {
    expect(isFedmartError(err)).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    return (err as Error).message;
  }
  throw new Error('expected a FedmartError, nothing was thrown');
}

/** A small bank-like table: numeric age (with a gap), categorical job, leaky duration, label y. */
function makeTable(labels: string[] = ['no', 'yes', 'no', 'yes']): Table {
  const ages = ['30', '', '41.5', '-2e1'];
  const jobs = ['tech', 'admin', 'tech', ''];
  return {
    columns: ['age', 'job', 'duration', 'y'],
    rows: labels.map((y, i) => [ages[i % 4]!, jobs[i % 4]!, String(100 + i), y]),
  };
}

describe('FeatureSpecSchema / DatasetSchemaSchema', () => {
  it('accepts both feature kinds', () => {
    expect(FeatureSpecSchema.parse({ name: 'age', type: 'numeric', mean: 40, std: 10 })).toEqual({ name: 'age', type: 'numeric', mean: 40, std: 10 });
    expect(FeatureSpecSchema.parse({ name: 'job', type: 'categorical', categories: ['a', 'b'] }).type).toBe('categorical');
  });

  it.each([
    [{ name: 'x', type: 'ordinal' }, 'type'],
    [{ name: 'x', type: 'categorical' }, 'categories'],
    [{ name: 'x', type: 'categorical', categories: ['a', 'a'] }, 'categories'],
    [{ name: 'x', type: 'numeric', std: 0 }, 'std'],
    [{ name: 'x', type: 'numeric', mean: Number.NaN }, 'mean'],
    [{ name: '', type: 'numeric' }, 'name'],
  ])('rejects feature %j at path %s', (spec, path) => {
    const r = FeatureSpecSchema.safeParse(spec);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('rejects an empty positive list, no features, duplicate features and a label used as a feature', () => {
    const ok: DatasetSchema = { label: 'y', positive: ['yes'], features: [{ name: 'age', type: 'numeric' }] };
    expect(DatasetSchemaSchema.safeParse(ok).success).toBe(true);
    expect(DatasetSchemaSchema.safeParse({ ...ok, positive: [] }).success).toBe(false);
    expect(DatasetSchemaSchema.safeParse({ ...ok, features: [] }).success).toBe(false);
    const dup = DatasetSchemaSchema.safeParse({ ...ok, features: [ok.features[0], ok.features[0]] });
    expect(dup.error!.issues[0]!.message).toMatch(/appears twice/);
    const lab = DatasetSchemaSchema.safeParse({ ...ok, features: [{ name: 'y', type: 'numeric' }] });
    expect(lab.error!.issues[0]!.path).toEqual(['features', 0, 'name']);
  });
});

describe('parseNumericCell', () => {
  it.each([
    ['12', 12],
    ['-3.5e2', -350],
    [' 7 ', 7],
    ['', null],
    ['  ', null],
    ['abc', Number.NaN],
    ['Infinity', Number.NaN],
    ['1,5', Number.NaN],
  ])('%j → %s', (cell, expected) => {
    expect(parseNumericCell(cell)).toEqual(expected);
  });
});

describe('inferSchema', () => {
  it('types columns, sorts categories, drops columns and picks "yes" as positive', () => {
    // Arrange
    const t = makeTable();
    // Act
    const s = inferSchema(t, { label: 'y', drop: ['duration'] });
    // Assert
    expect(s).toEqual({
      label: 'y',
      positive: ['yes'],
      features: [
        { name: 'age', type: 'numeric' },
        { name: 'job', type: 'categorical', categories: ['admin', 'tech'] },
      ],
    });
  });

  it.each([
    [['0', '1', '0', '1'], '1'],
    [['False', 'True', 'False', 'False'], 'True'],
    [['negative', 'POSITIVE', 'negative', 'negative'], 'POSITIVE'],
  ])('defaults positive among %j to %s', (labels, expected) => {
    expect(inferSchema(makeTable(labels), { label: 'y' }).positive).toEqual([expected]);
  });

  it('uses --positive when given and rejects one that is not a label value', () => {
    expect(inferSchema(makeTable(['churn', 'stay', 'stay', 'stay']), { label: 'y', positive: 'churn' }).positive).toEqual(['churn']);
    expect(errorOf(() => inferSchema(makeTable(['a', 'b', 'a', 'b']), { label: 'y', positive: 'c' }))).toMatch(/--positive "c" is not a value of label column "y"; its values are "a" and "b"/);
  });

  it('asks for --positive when the positive value is ambiguous', () => {
    const msg = errorOf(() => inferSchema(makeTable(['churn', 'stay', 'stay', 'stay']), { label: 'y' }));
    expect(msg).toMatch(/"churn" and "stay"; pass --positive with one of them/);
    expect(errorOf(() => inferSchema(makeTable(['yes', '1', 'yes', '1']), { label: 'y' }))).toMatch(/--positive/);
  });

  it('requires exactly two label values, listing the first 10 found', () => {
    const many = Array.from({ length: 12 }, (_, i) => `v${i}`);
    const t: Table = { columns: ['a', 'y'], rows: many.map((v) => ['1', v]) };
    const msg = errorOf(() => inferSchema(t, { label: 'y' }));
    expect(msg).toMatch(/exactly two distinct non-empty values .* found 12: "v0", .*"v9", … \(12 distinct\)/);
    expect(msg).not.toContain('"v10"');
    expect(msg).toContain('--positive');
    expect(errorOf(() => inferSchema(makeTable(['yes', 'yes', 'yes', 'yes']), { label: 'y' }))).toMatch(/found 1: "yes"/);
  });

  it('rejects empty label cells', () => {
    expect(errorOf(() => inferSchema(makeTable(['yes', '', 'no', 'no']), { label: 'y' }))).toMatch(/empty in 1 row\(s\) \(first: data row 2\)/);
  });

  it('names the flag and the available columns for a missing label, id or drop column', () => {
    expect(errorOf(() => inferSchema(makeTable(), { label: 'target', source: 'b.csv' }))).toBe(
      'column "target" not found in b.csv; available columns: age, job, duration, y; pass --label with one of them',
    );
    expect(errorOf(() => inferSchema(makeTable(), { label: 'y', drop: ['durration'] }))).toMatch(/--drop names "durration", not found; available columns: age, job, duration, y/);
    expect(errorOf(() => inferSchema(makeTable(), { label: 'y', id: 'customer' }))).toMatch(/pass --id/);
    expect(errorOf(() => inferSchema(makeTable(), { label: 'y', drop: ['y'] }))).toMatch(/--drop includes the label/);
  });

  it('keeps the id column out of the features', () => {
    const s = inferSchema(makeTable(), { label: 'y', id: 'duration' });
    expect(s.id).toBe('duration');
    expect(s.features.map((f) => f.name)).toEqual(['age', 'job']);
  });

  it('rejects too many categories, suggesting --drop', () => {
    const t: Table = { columns: ['code', 'y'], rows: Array.from({ length: 10 }, (_, i) => [`c${i}`, i % 2 ? 'yes' : 'no']) };
    expect(inferSchema(t, { label: 'y', maxCategories: 10 }).features[0]).toMatchObject({ type: 'categorical' });
    expect(errorOf(() => inferSchema(t, { label: 'y', maxCategories: 9 }))).toMatch(/"code" has more than 9 distinct values.*--drop code/);
  });

  it('rejects a column that is empty everywhere, and a table with no rows', () => {
    const t: Table = { columns: ['blank', 'y'], rows: [['', 'yes'], ['', 'no']] };
    expect(errorOf(() => inferSchema(t, { label: 'y' }))).toMatch(/"blank" is empty in every row; drop it with --drop blank/);
    expect(errorOf(() => inferSchema({ columns: ['a', 'y'], rows: [] }, { label: 'y' }))).toMatch(/no data rows/);
  });

  it('rejects a schema without features', () => {
    const t: Table = { columns: ['a', 'y'], rows: [['1', 'yes'], ['2', 'no']] };
    expect(errorOf(() => inferSchema(t, { label: 'y', drop: ['a'] }))).toMatch(/no feature columns left/);
  });

  it('produces schemas that DatasetSchemaSchema accepts', () => {
    expect(DatasetSchemaSchema.parse(inferSchema(makeTable(), { label: 'y' }))).toBeTruthy();
  });

  it('checks its arguments', () => {
    expect(() => inferSchema(makeTable(), {} as never)).toThrow(TypeError);
    expect(() => inferSchema(makeTable(), { label: 'y', maxCategories: 0 })).toThrow(RangeError);
  });
});

describe('validateTableAgainstSchema', () => {
  const schema: DatasetSchema = {
    label: 'y',
    positive: ['yes'],
    features: [
      { name: 'age', type: 'numeric' },
      { name: 'job', type: 'categorical', categories: ['a'] },
    ],
  };

  it('passes a table with extra columns', () => {
    expect(() => validateTableAgainstSchema({ columns: ['extra', 'job', 'age', 'y'], rows: [] }, schema)).not.toThrow();
  });

  it('names every missing column', () => {
    const msg = errorOf(() => validateTableAgainstSchema({ columns: ['age', 'other'], rows: [] }, schema, { source: 'p2.csv' }));
    expect(msg).toMatch(/needs column\(s\) "y", "job", missing in p2\.csv; available columns: age, other/);
  });

  it('does not need the label for scoring', () => {
    expect(() => validateTableAgainstSchema({ columns: ['age', 'job'], rows: [] }, schema, { requireLabel: false })).not.toThrow();
  });
});

describe('inferSchema with messy real-world columns', () => {
  it('treats NA tokens as missing in numeric columns and keeps the top categories when asked', () => {
    const rows: string[][] = [];
    for (let i = 0; i < 200; i++) rows.push([i % 7 === 0 ? 'NA' : String(i), `city-${i % 100}`, i % 3 === 0 ? 'yes' : 'no']);
    const table = { columns: ['income', 'city', 'y'], rows };
    expect(() => inferSchema(table, { label: 'y', maxCategories: 10 })).toThrow(/more than 10 distinct values/);
    const schema = inferSchema(table, { label: 'y', maxCategories: 10, highCardinality: 'top' });
    expect(schema.features[0]).toEqual({ name: 'income', type: 'numeric' });
    const city = schema.features[1]!;
    expect(city.type === 'categorical' && city.categories).toHaveLength(10);
    expect(parseNumericCell('?')).toBeNull();
    expect(parseNumericCell('NA')).toBeNull();
  });
});
