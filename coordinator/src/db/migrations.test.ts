import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { getTableConfig } from 'drizzle-orm/sqlite-core';
import * as schema from './schema.ts';
import { MIGRATIONS, migrate } from './migrations.ts';
import { openDatabase } from './client.ts';

const tables = Object.values(schema).filter((t): t is typeof schema.partners => typeof t === 'object' && t !== null && Symbol.for('drizzle:IsDrizzleTable') in (t as object));

describe('migrations', () => {
  it('create exactly the tables and columns the drizzle schema declares', () => {
    const sqlite = new Database(':memory:');
    migrate(sqlite);
    expect(tables.length).toBeGreaterThanOrEqual(9);
    for (const table of tables) {
      const cfg = getTableConfig(table);
      const cols = (sqlite.prepare(`PRAGMA table_info(${cfg.name})`).all() as { name: string; notnull: number }[]).map((c) => c.name).sort();
      expect(cols, cfg.name).toEqual(cfg.columns.map((c) => c.name).sort());
    }
    for (const required of ['partners', 'federations', 'enrollments', 'rounds', 'round_participants', 'model_versions', 'privacy_ledger', 'schedules', 'audit_log']) {
      expect(tables.map((t) => getTableConfig(t).name)).toContain(required);
    }
  });

  it('are idempotent and record the schema version', () => {
    const sqlite = new Database(':memory:');
    expect(migrate(sqlite)).toBe(MIGRATIONS.length);
    expect(migrate(sqlite)).toBe(MIGRATIONS.length);
    expect(sqlite.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
  });

  it('refuse a database from a newer fedmart', () => {
    const sqlite = new Database(':memory:');
    sqlite.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    expect(() => migrate(sqlite)).toThrow(/newer than this fedmart/);
  });

  it('open with foreign keys enforced', () => {
    const db = openDatabase(':memory:');
    expect(db.$client.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(() => db.$client.prepare("insert into enrollments (id, federation_id, partner_id, token_id, status, expires_at, created_at) values ('e', 'nope', 'nope', 't', 'invited', 0, 0)").run()).toThrow(/FOREIGN KEY/);
    db.$client.close();
  });
});
