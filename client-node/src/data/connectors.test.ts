import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedmartError } from '@fedmart/shared/errors';
import type { DatasetSchema, Table } from '@fedmart/shared/data/index';
import { readSchemaFile, readTableFile, writeCsv, writeSchemaFile } from './connectors.ts';

let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedmart-connectors-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Await `p`, expect a DATA_ERROR and return its message. */
async function dataError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(isFedmartError(err, 'DATA_ERROR')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a DATA_ERROR, nothing was thrown');
}

async function put(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text, 'utf8');
  return path;
}

describe('readTableFile', () => {
  it('reads CSV with a detected separator, TSV with tab, and an explicit --sep', async () => {
    const csv = await put('a.csv', '"x";"y"\n1;"yes"\n');
    const tsv = await put('a.tsv', 'x,y\tz\n1,2\t3\n');
    const txt = await put('a.txt', 'x|y\n1|2\n');
    expect(await readTableFile(csv)).toEqual({ columns: ['x', 'y'], rows: [['1', 'yes']] });
    expect((await readTableFile(tsv)).columns).toEqual(['x,y', 'z']);
    expect((await readTableFile(txt, { sep: ',' })).columns).toEqual(['x|y']);
  });

  it('reads JSON Lines (.jsonl and .ndjson, any case)', async () => {
    const path = await put('b.JSONL', '{"x":1,"y":"yes"}\n{"x":2}\n');
    const nd = await put('b.ndjson', '{"x":1}\n');
    expect(await readTableFile(path)).toEqual({ columns: ['x', 'y'], rows: [['1', 'yes'], ['2', '']] });
    expect((await readTableFile(nd)).rows).toEqual([['1']]);
  });

  it('names the supported extensions for an unknown one', async () => {
    const msg = await dataError(readTableFile(join(dir, 'data.xlsx')));
    expect(msg).toMatch(/unsupported file type "\.xlsx"; supported extensions are \.csv, \.tsv, \.txt, \.jsonl, \.ndjson/);
  });

  it('explains a missing file with the --data flag', async () => {
    const path = join(dir, 'missing.csv');
    expect(await dataError(readTableFile(path))).toBe(`cannot read ${path}: no such file; check the --data path`);
  });

  it('explains a directory', async () => {
    const path = join(dir, 'folder.csv');
    await mkdir(path);
    expect(await dataError(readTableFile(path))).toMatch(/it is a directory; pass a file to --data/);
  });

  it.skipIf(process.getuid?.() === 0)('explains a permission error', async () => {
    const path = await put('secret.csv', 'a\n1\n');
    await chmod(path, 0o000);
    expect(await dataError(readTableFile(path))).toMatch(/permission denied/);
  });

  it('explains an empty file', async () => {
    const path = await put('empty.csv', '');
    const blank = await put('blank.jsonl', '\n \n');
    expect(await dataError(readTableFile(path))).toMatch(/the file is empty; expected a header line/);
    expect(await dataError(readTableFile(blank))).toMatch(/the file is empty; expected one JSON object per line/);
  });

  it('puts the path in parse errors', async () => {
    const path = await put('ragged.csv', 'a,b\n1,2\n3\n');
    expect(await dataError(readTableFile(path))).toContain(`${path}: line 3 has 1 fields, the header has 2; check --sep`);
  });
});

describe('readSchemaFile / writeSchemaFile', () => {
  const schema: DatasetSchema = { label: 'y', positive: ['yes'], features: [{ name: 'age', type: 'numeric', mean: 41, std: 10.5 }, { name: 'job', type: 'categorical', categories: ['a', 'b'] }] };

  it('round-trips a schema', async () => {
    const path = join(dir, 'nested', 'schema.json');
    await writeSchemaFile(path, schema);
    expect(await readSchemaFile(path)).toEqual(schema);
  });

  it('reports every issue with its path', async () => {
    const path = await put('bad-schema.json', JSON.stringify({ label: 'y', positive: [], features: [{ name: 'age', type: 'numeric' }, { name: 'job', type: 'categorical', categories: [] }] }));
    const msg = await dataError(readSchemaFile(path));
    expect(msg).toContain(`schema ${path} is invalid:`);
    expect(msg).toContain('  - positive: positive must list at least one label value');
    expect(msg).toContain('  - features.1.categories: a categorical feature needs at least one category');
  });

  it('reports invalid JSON and a missing file with the --schema flag', async () => {
    const path = await put('broken.json', '{"label": ');
    expect(await dataError(readSchemaFile(path))).toMatch(/not valid JSON/);
    expect(await dataError(readSchemaFile(join(dir, 'nope.json')))).toMatch(/no such file; check the --schema path/);
  });

  it('refuses to write an invalid schema', async () => {
    const msg = await dataError(writeSchemaFile(join(dir, 'x.json'), { ...schema, positive: [] }));
    expect(msg).toMatch(/refusing to write an invalid schema/);
  });
});

describe('writeCsv', () => {
  it('writes a table that reads back identically, creating directories', async () => {
    // Arrange
    const table: Table = { columns: ['id', 'note'], rows: [['1', 'a;b'], ['2', 'say "hi"\nbye'], ['3', '']] };
    const path = join(dir, 'out', 'partner-1.csv');
    // Act
    await writeCsv(path, table, ';');
    // Assert
    expect(await readTableFile(path)).toEqual(table);
    expect(await readFile(path, 'utf8')).toBe('id;note\n1;"a;b"\n2;"say ""hi""\nbye"\n3;\n');
  });

  it('reports a path it cannot write', async () => {
    const file = await put('plain.txt', 'x');
    expect(await dataError(writeCsv(join(file, 'sub.csv'), { columns: ['a'], rows: [] }))).toMatch(/cannot write .*a parent of the path is not a directory/);
  });
});
