/**
 * Proof that the two dialects agree (issue 15: "keep two with one conformance suite that proves
 * they agree"). Three comparisons, each returning the differences as sentences (empty = agree):
 *
 * 1. {@link compareDeclarations}: `schema.ts` (SQLite, the source of truth) against `schema-pg.ts`:
 *    the same tables, columns (name, kind of value, NOT NULL, primary key, default, enum values) and
 *    indexes (name, uniqueness, columns).
 * 2. {@link introspectSqlite} / {@link introspectPg} against {@link declared}: what each migration
 *    chain really builds (columns with their SQL type, NOT NULL, primary key; indexes; append-only
 *    triggers) is what its drizzle schema declares.
 */
import { getTableConfig as sqliteConfig, type SQLiteTable } from 'drizzle-orm/sqlite-core';
import { getTableConfig as pgConfig, type PgTable } from 'drizzle-orm/pg-core';
import { is, Table } from 'drizzle-orm';
import type Database from 'better-sqlite3';
import type pg from 'pg';
import * as sqliteSchema from './schema.ts';
import * as pgSchema from './schema-pg.ts';
import { PG_ONLY_TABLES } from './migrations-pg.ts';
import { CLUSTER_TABLES } from '../cluster/migrations.ts';

/** Tables the PostgreSQL introspection leaves out: the version table and cluster coordination (no SQLite twin by design). */
const PG_EXCLUDED = `(${['fedmart_schema', ...PG_ONLY_TABLES, ...CLUSTER_TABLES].map((t) => `'${t}'`).join(', ')})`;

export interface ColumnShape { name: string; sqlType: string; kind: string; notNull: boolean; primary: boolean; default: unknown; enumValues: readonly string[] | null }
export interface IndexShape { name: string; unique: boolean; columns: string[] }
export interface TableShape { name: string; columns: ColumnShape[]; indexes: IndexShape[] }
/** A built database: per table its columns (name → SQL type, NOT NULL, pk) and indexes, plus the tables whose UPDATE and DELETE raise. */
export interface BuiltSchema { tables: Map<string, { columns: Map<string, { sqlType: string; notNull: boolean; primary: boolean }>; indexes: IndexShape[] }>; appendOnly: string[] }

const SQLITE_KIND: Record<string, string> = { text: 'text', integer: 'int', real: 'real', blob: 'bytes' };
const PG_KIND: Record<string, string> = { text: 'text', bigint: 'int', boolean: 'bool', 'double precision': 'real', bytea: 'bytes' };

function tablesOf(schema: Record<string, unknown>): Table[] {
  return Object.values(schema).filter((v): v is Table => is(v, Table));
}

/**
 * The drizzle declarations of one dialect, normalized.
 * @param dialect - which schema module
 */
export function declared(dialect: 'sqlite' | 'postgres'): TableShape[] {
  const out: TableShape[] = [];
  for (const table of tablesOf(dialect === 'sqlite' ? sqliteSchema : pgSchema)) {
    const cfg = dialect === 'sqlite' ? sqliteConfig(table as SQLiteTable) : pgConfig(table as PgTable);
    const columns = cfg.columns.map((c) => {
      const sqlType = c.getSQLType();
      const kind = dialect === 'sqlite' ? (c.columnType === 'SQLiteBoolean' ? 'bool' : SQLITE_KIND[sqlType] ?? sqlType) : PG_KIND[sqlType] ?? sqlType;
      const enumValues = (c as unknown as { enumValues?: readonly string[] }).enumValues;
      return { name: c.name, sqlType, kind, notNull: c.notNull, primary: c.primary, default: c.default ?? null, enumValues: enumValues?.length ? enumValues : null };
    }).sort((a, b) => a.name.localeCompare(b.name));
    const indexes = cfg.indexes.map((i) => ({ name: i.config.name!, unique: i.config.unique, columns: i.config.columns.map((c) => (c as { name: string }).name) })).sort((a, b) => a.name.localeCompare(b.name));
    out.push({ name: cfg.name, columns, indexes });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Differences between the SQLite and the PostgreSQL declarations (empty: they agree). */
export function compareDeclarations(a: TableShape[] = declared('sqlite'), b: TableShape[] = declared('postgres')): string[] {
  const diffs: string[] = [];
  const bt = new Map(b.map((x) => [x.name, x]));
  for (const ta of a) {
    const tb = bt.get(ta.name);
    if (!tb) { diffs.push(`table ${ta.name} is declared for SQLite but not for PostgreSQL`); continue; }
    bt.delete(ta.name);
    const cb = new Map(tb.columns.map((c) => [c.name, c]));
    for (const ca of ta.columns) {
      const c = cb.get(ca.name);
      if (!c) { diffs.push(`${ta.name}.${ca.name} is missing in PostgreSQL`); continue; }
      cb.delete(ca.name);
      for (const k of ['kind', 'notNull', 'primary', 'default', 'enumValues'] as const) {
        if (JSON.stringify(ca[k]) !== JSON.stringify(c[k])) diffs.push(`${ta.name}.${ca.name}: ${k} is ${JSON.stringify(ca[k])} in SQLite, ${JSON.stringify(c[k])} in PostgreSQL`);
      }
    }
    for (const extra of cb.keys()) diffs.push(`${ta.name}.${extra} exists only in PostgreSQL`);
    if (JSON.stringify(ta.indexes) !== JSON.stringify(tb.indexes)) diffs.push(`${ta.name}: indexes differ: SQLite ${JSON.stringify(ta.indexes)}, PostgreSQL ${JSON.stringify(tb.indexes)}`);
  }
  for (const extra of bt.keys()) diffs.push(`table ${extra} exists only in PostgreSQL`);
  return diffs;
}

/**
 * Differences between a built database and its dialect's declarations.
 * @param built - {@link introspectSqlite} or {@link introspectPg}
 * @param appendOnly - tables that must refuse UPDATE and DELETE
 */
export function compareBuilt(built: BuiltSchema, decl: TableShape[], appendOnly: readonly string[]): string[] {
  const diffs: string[] = [];
  const names = new Set(decl.map((d) => d.name));
  for (const name of built.tables.keys()) if (!names.has(name)) diffs.push(`the database has table ${name}, which the schema does not declare`);
  for (const d of decl) {
    const b = built.tables.get(d.name);
    if (!b) { diffs.push(`the migrations do not create table ${d.name}`); continue; }
    for (const c of d.columns) {
      const bc = b.columns.get(c.name);
      if (!bc) { diffs.push(`the migrations do not create ${d.name}.${c.name}`); continue; }
      if (bc.sqlType !== c.sqlType) diffs.push(`${d.name}.${c.name} is ${bc.sqlType} in the database, ${c.sqlType} in the schema`);
      if (bc.notNull !== (c.notNull || c.primary)) diffs.push(`${d.name}.${c.name}: NOT NULL is ${bc.notNull} in the database, ${c.notNull} in the schema`);
      if (bc.primary !== c.primary) diffs.push(`${d.name}.${c.name}: primary key is ${bc.primary} in the database, ${c.primary} in the schema`);
    }
    for (const name of b.columns.keys()) if (!d.columns.some((c) => c.name === name)) diffs.push(`the database has ${d.name}.${name}, which the schema does not declare`);
    const bi = [...b.indexes].sort((x, y) => x.name.localeCompare(y.name));
    if (JSON.stringify(bi) !== JSON.stringify(d.indexes)) diffs.push(`${d.name}: the database's indexes ${JSON.stringify(bi)} differ from the schema's ${JSON.stringify(d.indexes)}`);
  }
  const want = [...appendOnly].sort();
  if (JSON.stringify(built.appendOnly) !== JSON.stringify(want)) diffs.push(`append-only tables (UPDATE and DELETE triggers) are ${JSON.stringify(built.appendOnly)} in the database, expected ${JSON.stringify(want)}`);
  return diffs;
}

/** Tables with both a `<t>_no_update` and a `<t>_no_delete` trigger, sorted. */
function appendOnlyFrom(triggers: { name: string; table: string }[]): string[] {
  const has = (table: string, name: string) => triggers.some((x) => x.table === table && x.name === name);
  return [...new Set(triggers.map((x) => x.table))].filter((table) => has(table, `${table}_no_update`) && has(table, `${table}_no_delete`)).sort();
}

/** What a migrated SQLite database holds. */
export function introspectSqlite(sqlite: Database.Database): BuiltSchema {
  const tables: BuiltSchema['tables'] = new Map();
  const names = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((r) => r.name);
  for (const name of names) {
    const cols = sqlite.prepare(`PRAGMA table_info(${name})`).all() as { name: string; type: string; notnull: number; pk: number }[];
    const idx = (sqlite.prepare(`PRAGMA index_list(${name})`).all() as { name: string; unique: number; origin: string }[]).filter((i) => i.origin === 'c');
    tables.set(name, {
      columns: new Map(cols.map((c) => [c.name, { sqlType: c.type.toLowerCase(), notNull: c.notnull === 1 || c.pk > 0, primary: c.pk > 0 }])),
      indexes: idx.map((i) => ({ name: i.name, unique: i.unique === 1, columns: (sqlite.prepare(`PRAGMA index_info(${i.name})`).all() as { name: string }[]).map((x) => x.name) })),
    });
  }
  const triggers = sqlite.prepare("SELECT name, tbl_name AS 'table' FROM sqlite_master WHERE type = 'trigger'").all() as { name: string; table: string }[];
  return { tables, appendOnly: appendOnlyFrom(triggers) };
}

/** What a migrated PostgreSQL database holds (schema `public`, without the version table). */
export async function introspectPg(client: pg.ClientBase): Promise<BuiltSchema> {
  const tables: BuiltSchema['tables'] = new Map();
  const cols = await client.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(`SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT IN ${PG_EXCLUDED}`);
  const pks = await client.query<{ table: string; column: string }>(`SELECT c.relname AS table, a.attname AS column FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND n.nspname = 'public' AND c.relname NOT IN ${PG_EXCLUDED}`);
  const idx = await client.query<{ table: string; name: string; unique: boolean; columns: string[] }>(
    `SELECT t.relname AS table, ic.relname AS name, i.indisunique AS unique, array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT i.indisprimary AND t.relname NOT IN ${PG_EXCLUDED}`);
  const primary = new Set(pks.rows.map((r) => `${r.table}.${r.column}`));
  for (const c of cols.rows) {
    if (!tables.has(c.table_name)) tables.set(c.table_name, { columns: new Map(), indexes: idx.rows.filter((i) => i.table === c.table_name).map((i) => ({ name: i.name, unique: i.unique, columns: i.columns })) });
    tables.get(c.table_name)!.columns.set(c.column_name, { sqlType: c.data_type, notNull: c.is_nullable === 'NO', primary: primary.has(`${c.table_name}.${c.column_name}`) });
  }
  const triggers = await client.query<{ name: string; table: string }>("SELECT tg.tgname AS name, c.relname AS table FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid WHERE NOT tg.tgisinternal");
  return { tables, appendOnly: appendOnlyFrom(triggers.rows) };
}
