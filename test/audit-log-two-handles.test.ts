/**
 * The SQLite audit log appended through two handles on one file (two coordinators on one database,
 * or a CLI process beside a running coordinator): each handle's cached Merkle frontier is caught up
 * with the rows the other appended inside its write transaction, so every signed tree head is the
 * root of the rows as stored and the whole log verifies (RFC 6962 leaves, Ed25519 heads).
 */
import { afterAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { openDatabase } from '@fedmart/coordinator/db/client';
import { Store } from '@fedmart/coordinator/db/store';

const dir = mkdtempSync(path.join(tmpdir(), 'fedmart-audit-2h-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('two handles appending alternately to one SQLite audit log sign heads that match the stored rows', () => {
  const file = path.join(dir, 'fedmart.db');
  const key = generateEd25519KeyPair();
  const a = new Store(openDatabase(file), key);
  const b = new Store(openDatabase(file), key);
  a.audit('alice', 'first'); // both handles have cached frontiers from here on
  b.audit('bob', 'first');
  for (let i = 0; i < 20; i++) (i % 3 === 0 ? b : a).audit(i % 3 === 0 ? 'bob' : 'alice', `action-${i}`, null, { i });
  for (const s of [a, b]) {
    const v = s.auditLog.verify();
    expect(v.ok, JSON.stringify(v)).toBe(true);
    expect(s.auditLog.newestHead()!.size).toBe(22);
  }
  // A third handle opened later agrees with what the two signed.
  const c = new Store(openDatabase(file), key);
  expect(c.auditLog.verify().ok).toBe(true);
  c.audit('carol', 'later');
  expect(a.auditLog.verify().ok).toBe(true);
  expect(a.auditLog.newestHead()!.size).toBe(23);
});
