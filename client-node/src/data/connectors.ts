/**
 * File connectors: the only place the data layer touches the filesystem.
 * Reading turns OS errors into messages a partner can act on (which flag,
 * which path); parsing and validation are the pure functions of
 * `@fedmart/shared/data`.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { DatasetSchemaSchema, formatCsv, parseCsv, parseJsonl, type DatasetSchema, type Table } from '@fedmart/shared/data/index';

/** File extensions {@link readTableFile} understands, by format. */
export const TABLE_EXTENSIONS = { csv: ['.csv', '.tsv', '.txt'], jsonl: ['.jsonl', '.ndjson'] } as const;

/**
 * Read a table from a CSV/TSV (`.csv`, `.tsv`, `.txt`) or JSON Lines
 * (`.jsonl`, `.ndjson`) file, as UTF-8.
 *
 * @param path - file path
 * @param opts - `sep` for delimited files, auto-detected when undefined (tab for `.tsv`); `flag`: the CLI flag that named the file, for error messages (default `--data`)
 * @returns the parsed table
 * @throws FedmartError DATA_ERROR on an unsupported extension, a missing,
 *   unreadable or empty file, or a parse error (with the line number)
 * @example
 * const table = await readTableFile('data/bank-full.csv');
 */
export async function readTableFile(path: string, opts: { sep?: string; flag?: string } = {}): Promise<Table> {
  if (typeof path !== 'string' || path === '') throw new TypeError('readTableFile: path must be a non-empty string');
  const ext = extname(path).toLowerCase();
  const isCsv = (TABLE_EXTENSIONS.csv as readonly string[]).includes(ext);
  const isJsonl = (TABLE_EXTENSIONS.jsonl as readonly string[]).includes(ext);
  if (!isCsv && !isJsonl) {
    const all = [...TABLE_EXTENSIONS.csv, ...TABLE_EXTENSIONS.jsonl].join(', ');
    throw new FedmartError('DATA_ERROR', `cannot read ${path}: unsupported file type ${JSON.stringify(ext || '(no extension)')}; supported extensions are ${all}; convert the file or rename it`);
  }
  const text = await readText(path, opts.flag ?? '--data');
  if (!/\S/.test(text)) {
    throw new FedmartError('DATA_ERROR', `cannot read ${path}: the file is empty; expected ${isCsv ? 'a header line and data rows' : 'one JSON object per line'}`);
  }
  if (isJsonl) return parseJsonl(text, { source: path });
  const sep = opts.sep ?? (ext === '.tsv' ? '\t' : undefined);
  return parseCsv(text, sep === undefined ? { source: path } : { sep, source: path });
}

/**
 * Read and validate a dataset schema (JSON). Every validation issue is
 * reported with its path, e.g. `features.2.categories: a categorical feature
 * needs at least one category`.
 *
 * @param path - file path (the `--schema` flag)
 * @returns the validated schema
 * @throws FedmartError DATA_ERROR on a missing/unreadable file, invalid JSON, or a schema violation
 */
export async function readSchemaFile(path: string): Promise<DatasetSchema> {
  if (typeof path !== 'string' || path === '') throw new TypeError('readSchemaFile: path must be a non-empty string');
  const text = await readText(path, '--schema');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FedmartError('DATA_ERROR', `cannot read schema ${path}: not valid JSON (${(err as Error).message}); fix the file or infer a new schema`, { cause: err });
  }
  const parsed = DatasetSchemaSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  - ${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new FedmartError('DATA_ERROR', `schema ${path} is invalid:\n${issues.join('\n')}\nfix these fields (expected { label, positive: [..], features: [{ name, type: "numeric" | "categorical", ... }] })`, {
      details: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  }
  return parsed.data;
}

/**
 * Write a schema as pretty JSON (validated first, so a bad one is never saved).
 *
 * @param path - destination; parent directories are created
 * @param schema - the schema
 * @throws FedmartError DATA_ERROR if the schema is invalid or the file cannot be written
 */
export async function writeSchemaFile(path: string, schema: DatasetSchema): Promise<void> {
  const parsed = DatasetSchemaSchema.safeParse(schema);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new FedmartError('DATA_ERROR', `refusing to write an invalid schema to ${path}: ${first.path.join('.') || '(root)'}: ${first.message}`);
  }
  await writeAtomically(path, JSON.stringify(parsed.data, null, 2) + '\n');
}

/**
 * Write a table as CSV (RFC 4180 quoting, LF line ends), e.g. one partner's
 * partition. The file is written beside the target and renamed into place,
 * so a reader never sees half a file.
 *
 * @param path - destination; parent directories are created
 * @param table - the table
 * @param sep - separator, default `,`
 * @throws FedmartError DATA_ERROR if the file cannot be written
 */
export async function writeCsv(path: string, table: Table, sep = ','): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new TypeError('writeCsv: path must be a non-empty string');
  await writeAtomically(path, formatCsv(table, sep));
}

/**
 * Write a UTF-8 text file beside its target and rename it into place, so a
 * reader never sees half a file (schemas, partitions, model files).
 *
 * @param path - destination; parent directories are created
 * @param text - the content
 * @throws FedmartError DATA_ERROR if the file cannot be written
 */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (err) {
    // Recursive mkdir reports EEXIST (or ENOTDIR) when a parent is a regular file.
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'a parent of the path is not a directory' : describeFsError(err);
    throw new FedmartError('DATA_ERROR', `cannot write ${path}: ${why}; check the output path and permissions`, { cause: err });
  }
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new FedmartError('DATA_ERROR', `cannot write ${path}: ${describeFsError(err)}; check the output path and permissions`, { cause: err });
  }
}

/**
 * Read a UTF-8 text file, turning OS errors into a message naming the flag.
 *
 * @param path - file path
 * @param flag - the CLI flag that named it (`--data`, `--model`)
 * @returns the text
 * @throws FedmartError DATA_ERROR on a missing, unreadable or directory path
 */
export async function readText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what =
      code === 'ENOENT' ? `no such file; check the ${flag} path`
      : code === 'EISDIR' ? `it is a directory; pass a file to ${flag}`
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied; make the file readable by this user'
      : `${describeFsError(err)}; check the ${flag} path`;
    throw new FedmartError('DATA_ERROR', `cannot read ${path}: ${what}`, { cause: err });
  }
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return 'no such file or directory';
  if (e?.code === 'EISDIR') return 'it is a directory';
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return 'permission denied';
  if (e?.code === 'ENOTDIR') return 'a parent of the path is not a directory';
  return e instanceof Error ? e.message : String(err);
}
