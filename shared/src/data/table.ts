/**
 * A table of strings, as read from a partner's file, and the text parsers
 * that produce it (CSV per RFC 4180, JSON Lines). Typing (numeric vs
 * categorical) is decided later by the schema, so parsing never guesses.
 *
 * Pure: callers hand in the text; reading files lives in client-node.
 */
import { FedmartError } from '../errors.ts';

/** Column names and rows of string cells; every row has `columns.length` cells. */
export interface Table {
  columns: string[];
  rows: string[][];
}

/** Separators tried, in tie-break order, when `sep` is not given. */
export const CSV_SEPARATORS = [',', ';', '\t', '|'] as const;

const QUOTE = 0x22; // "
const LF = 0x0a;
const CR = 0x0d;
const BOM = 0xfeff;

/** Options for {@link parseCsv}. */
export interface ParseCsvOptions {
  /** Field separator (one character; `\t` and `tab` are accepted for tab). Detected from the header when undefined. */
  sep?: string;
  /** Name used in error messages, usually the file path. Default `input`. */
  source?: string;
}

/**
 * Parse delimited text (RFC 4180: quoted fields, doubled quotes inside
 * quotes, CRLF or LF line ends) into a {@link Table}.
 *
 * - The first record is the header; names must be non-empty and unique.
 * - A leading BOM is dropped; blank lines are skipped (a single-column file
 *   must quote an empty value as `""` to keep it).
 * - Cells are not trimmed: spaces are data (RFC 4180 §2.4).
 * - Every row must have as many fields as the header: a ragged row is an
 *   error, because silently padding would shift values into wrong columns.
 *
 * @param text - file contents
 * @param opts - `sep` (auto-detected among `,` `;` tab `|` when undefined) and `source` for messages
 * @returns the header as `columns` and the data records as `rows` (possibly none)
 * @throws FedmartError DATA_ERROR on empty input, bad header, ragged rows or unclosed quotes;
 *   CONFIG_ERROR on an unusable `sep`
 * @example
 * parseCsv('a;b\n1;"x;y"\n').rows // [['1', 'x;y']]
 */
export function parseCsv(text: string, opts: ParseCsvOptions = {}): Table {
  if (typeof text !== 'string') throw new TypeError('parseCsv: text must be a string');
  const source = opts.source ?? 'input';
  let start = 0;
  if (text.charCodeAt(0) === BOM) start = 1;
  if (!/\S/.test(text)) {
    throw new FedmartError('DATA_ERROR', `${source} is empty: expected a header line with column names followed by data rows`);
  }
  const sep = opts.sep === undefined ? detectSeparator(text, start) : normaliseSep(opts.sep);
  const sepCode = sep.charCodeAt(0);

  const n = text.length;
  const records: string[][] = [];
  let header: string[] | null = null;
  let row: string[] = [];
  let i = start;
  let line = 1; // physical line where the scanner is
  let recordLine = 1; // physical line where the current record started
  let lastQuoted = false;

  const endRecord = (): void => {
    // A blank line parses as one empty unquoted field: skip it.
    if (row.length === 1 && row[0] === '' && !lastQuoted) {
      row = [];
      return;
    }
    if (header === null) {
      header = checkHeader(row, source, sep);
    } else if (row.length !== header.length) {
      throw new FedmartError(
        'DATA_ERROR',
        `${source}: line ${recordLine} has ${row.length} fields, the header has ${header.length}; check --sep (using ${describeSep(sep)}) and that fields containing it are quoted`,
      );
    } else {
      records.push(row);
    }
    row = [];
  };

  for (;;) {
    let c = i < n ? text.charCodeAt(i) : -1;
    if (c === QUOTE) {
      // Quoted field: copy chunks between quotes, "" stands for one quote.
      let value = '';
      let chunk = i + 1;
      let j = chunk;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q === -1) {
          throw new FedmartError('DATA_ERROR', `${source}: line ${recordLine} opens a quoted field that is never closed; check for a stray " in that line`);
        }
        if (text.charCodeAt(q + 1) === QUOTE) {
          value += text.slice(chunk, q + 1);
          j = q + 2;
          chunk = j;
          continue;
        }
        value += text.slice(chunk, q);
        // Count line breaks inside the quotes so later messages name the right line.
        for (let k = value.indexOf('\n'); k !== -1; k = value.indexOf('\n', k + 1)) line++;
        i = q + 1;
        break;
      }
      row.push(value);
      lastQuoted = true;
      c = i < n ? text.charCodeAt(i) : -1;
      if (c !== -1 && c !== sepCode && c !== LF && c !== CR) {
        throw new FedmartError(
          'DATA_ERROR',
          `${source}: line ${line} has ${JSON.stringify(text[i])} right after a closing quote; expected ${describeSep(sep)} or end of line (a quote inside a quoted field must be doubled: "")`,
        );
      }
    } else {
      let j = i;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === sepCode || d === LF || d === CR) break;
        j++;
      }
      row.push(text.slice(i, j));
      lastQuoted = false;
      i = j;
      c = i < n ? text.charCodeAt(i) : -1;
    }
    if (c === sepCode) {
      i++;
      continue;
    }
    if (c === -1) {
      endRecord();
      break;
    }
    // Line end: CRLF, LF, or a lone CR (old Mac files).
    i++;
    if (c === CR && i < n && text.charCodeAt(i) === LF) i++;
    endRecord();
    line++;
    recordLine = line;
    if (i >= n) break;
  }
  // header is set: the text had non-whitespace content, so some record was non-blank.
  if (header === null) {
    throw new FedmartError('DATA_ERROR', `${source} has no header line: expected column names separated by ${describeSep(sep)}`);
  }
  return { columns: header, rows: records };
}

function checkHeader(row: string[], source: string, sep: string): string[] {
  const seen = new Map<string, number>();
  for (let k = 0; k < row.length; k++) {
    const name = row[k]!;
    if (name.trim() === '') {
      throw new FedmartError('DATA_ERROR', `${source}: header column ${k + 1} has no name; every column needs a unique name (check --sep, using ${describeSep(sep)})`);
    }
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw new FedmartError('DATA_ERROR', `${source}: header names column ${JSON.stringify(name)} twice (columns ${prev + 1} and ${k + 1}); rename one of them`);
    }
    seen.set(name, k);
  }
  return row;
}

/**
 * Choose the separator that occurs most often (outside quotes) in the header
 * line. Ties go to the earlier entry of {@link CSV_SEPARATORS}; a header with
 * none of them is a single column and gets `,`.
 */
function detectSeparator(text: string, start: number): string {
  const counts = new Map<number, number>(CSV_SEPARATORS.map((s) => [s.charCodeAt(0), 0]));
  let inQuotes = false;
  let seenContent = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      inQuotes = !inQuotes; // "" toggles twice: correct for doubled quotes
      seenContent = true;
    } else if (!inQuotes && (c === LF || c === CR)) {
      if (seenContent) break; // leading blank lines are skipped by the parser too
    } else {
      if (!inQuotes) {
        const k = counts.get(c);
        if (k !== undefined) counts.set(c, k + 1);
      }
      seenContent = true;
    }
  }
  let best: string = CSV_SEPARATORS[0];
  let bestCount = 0;
  for (const s of CSV_SEPARATORS) {
    const k = counts.get(s.charCodeAt(0))!;
    if (k > bestCount) {
      best = s;
      bestCount = k;
    }
  }
  return best;
}

function normaliseSep(sep: string): string {
  if (typeof sep !== 'string') throw new TypeError('parseCsv: sep must be a string');
  if (sep === '\\t' || sep.toLowerCase() === 'tab') return '\t';
  if (sep.length !== 1 || sep === '"' || sep === '\n' || sep === '\r') {
    throw new FedmartError('CONFIG_ERROR', `--sep must be a single character other than a quote or line break (e.g. "," ";" "|" or "\\t"), got ${JSON.stringify(sep)}`);
  }
  return sep;
}

function describeSep(sep: string): string {
  return sep === '\t' ? 'tab' : JSON.stringify(sep);
}

/**
 * Render a table as RFC 4180 text: a field is quoted when it contains the
 * separator, a quote, CR or LF (quotes doubled); an empty value in a
 * single-column table is written as `""` so it does not read back as a blank
 * line. Lines end with LF. `parseCsv(formatCsv(t, sep), { sep })` returns `t`.
 *
 * @param table - the table
 * @param sep - separator, default `,`
 * @returns the text, ending with a newline
 * @throws FedmartError CONFIG_ERROR on an unusable `sep`
 */
export function formatCsv(table: Table, sep = ','): string {
  const s = normaliseSep(sep);
  const single = table.columns.length === 1;
  const needsQuote = (v: string): boolean =>
    v.includes(s) || v.includes('"') || v.includes('\n') || v.includes('\r') || (single && v === '') || (v.length > 0 && v.charCodeAt(0) === BOM);
  const field = (v: string): string => (needsQuote(v) ? `"${v.replaceAll('"', '""')}"` : v);
  const parts: string[] = [table.columns.map(field).join(s)];
  for (const row of table.rows) parts.push(row.map(field).join(s));
  return parts.join('\n') + '\n';
}

/** Options for {@link parseJsonl}. */
export interface ParseJsonlOptions {
  /** Name used in error messages, usually the file path. Default `input`. */
  source?: string;
}

/**
 * Parse JSON Lines (one JSON object per line, https://jsonlines.org) into a
 * {@link Table}. Columns are the union of keys in first-seen order, so
 * records may omit keys; cells are strings so CSV and JSONL behave alike:
 * strings as is, numbers and booleans via `String`, nested values as JSON,
 * null or missing as `''`.
 *
 * @param text - file contents; blank lines are skipped, a leading BOM dropped
 * @param opts - `source` for messages
 * @returns the table
 * @throws FedmartError DATA_ERROR on empty input or a line that is not a JSON object (with its line number)
 */
export function parseJsonl(text: string, opts: ParseJsonlOptions = {}): Table {
  if (typeof text !== 'string') throw new TypeError('parseJsonl: text must be a string');
  const source = opts.source ?? 'input';
  const body = text.charCodeAt(0) === BOM ? text.slice(1) : text;
  const lines = body.split('\n');
  const objects: Record<string, unknown>[] = [];
  const index = new Map<string, number>();
  const columns: string[] = [];
  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln]!;
    const lineText = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (lineText.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (err) {
      throw new FedmartError('DATA_ERROR', `${source}: line ${ln + 1} is not valid JSON (${(err as Error).message}); expected one JSON object per line`, { cause: err });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      throw new FedmartError('DATA_ERROR', `${source}: line ${ln + 1} is ${kind}; expected one JSON object per line, like {"age": 41, "job": "admin."}`);
    }
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (!index.has(key)) {
        index.set(key, columns.length);
        columns.push(key);
      }
    }
    objects.push(obj);
  }
  if (objects.length === 0) {
    throw new FedmartError('DATA_ERROR', `${source} is empty: expected one JSON object per line`);
  }
  const rows: string[][] = new Array(objects.length);
  for (let r = 0; r < objects.length; r++) {
    const obj = objects[r]!;
    const cells = new Array<string>(columns.length).fill('');
    for (const key of Object.keys(obj)) cells[index.get(key)!] = cellToString(obj[key]);
    rows[r] = cells;
  }
  return { columns, rows };
}

function cellToString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * Index of a column, or a DATA_ERROR that lists the available ones.
 *
 * @param table - the table
 * @param name - column name
 * @param flag - CLI flag to mention in the message (e.g. `--label`)
 * @returns zero-based column index
 * @throws FedmartError DATA_ERROR if the column is absent
 */
export function columnIndex(table: Table, name: string, flag?: string): number {
  const k = table.columns.indexOf(name);
  if (k === -1) {
    const hint = flag === undefined ? 'use one of the available columns' : `pass ${flag} with one of them`;
    throw new FedmartError('DATA_ERROR', `column ${JSON.stringify(name)} not found; available columns: ${listColumns(table.columns)}; ${hint}`);
  }
  return k;
}

/** Comma-separated list of column names, shortened after 40 entries. */
export function listColumns(columns: readonly string[]): string {
  const shown = columns.slice(0, 40).join(', ');
  return columns.length > 40 ? `${shown}, … (${columns.length} in all)` : shown;
}
