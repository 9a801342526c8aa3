/**
 * Opens the coordinator database: better-sqlite3 (WAL, foreign keys on) under
 * drizzle, migrated to the newest schema. `:memory:` for tests.
 */
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import * as schema from './schema.ts';
import { migrate } from './migrations.ts';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/**
 * @param file - path of the SQLite file, or ':memory:'
 * @returns a drizzle handle (`db.$client` is the raw better-sqlite3 handle)
 */
export function openDatabase(file: string): Db {
  const sqlite = new Database(file);
  if (file !== ':memory:') sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  migrate(sqlite);
  return drizzle({ client: sqlite, schema }) as Db;
}
