/**
 * The secrets every coordinator of one PostgreSQL database must share (issue 15), kept IN that
 * database (table `fedmart_secrets`, cluster migration 2) instead of each coordinator's data dir:
 *
 * - `signing-key`: the Ed25519 JWK that signs and verifies tokens (auth.ts). A partner's token issued
 *   through one coordinator is verified by whichever it reconnects to.
 * - `log-key`: the Ed25519 key of the audit tree heads (log-key.ts), which partners pin.
 * - `operator-token`: the coordinator-minted operator token (operator-token.ts), one for all.
 *
 * The first coordinator to start on a database creates them (`INSERT … ON CONFLICT DO NOTHING`, then
 * every coordinator reads back what is stored), so N coordinators starting at once agree on one set.
 * Upgrade: where a row is missing and the data dir holds the file of a coordinator that kept its
 * secrets there (`signing-key.jwk`, `log-key.json`, `operator.token`), that file is imported instead
 * of a new secret generated. A log key is never replaced silently: when the database already has
 * signed audit heads, the log key stored first must be the one that signed the newest of them.
 *
 * Envelope encryption (optional): with a key-encryption key (KEK) in `FEDMART_KEY_ENCRYPTION_KEY`
 * (32 bytes, hex or base64) every row is stored wrapped with AES-256-GCM (NIST SP 800-38D): a fresh
 * random 96-bit IV per row (§8.2.2, the RBG-based construction; a handful of rows stay far below the
 * 2^32 invocations §8.3 allows per key), the secret's name as additional authenticated data (a row
 * copied under another name fails to authenticate), the 128-bit tag appended. Stored form:
 * `0x01 ‖ IV(12) ‖ ciphertext ‖ tag(16)`. A wrong KEK, or a row altered, fails authentication: a
 * one-line error, never a garbage key. With a KEK set an unwrapped row is refused (run
 * `fedmart coordinator --migrate-only` with the KEK to wrap the rows); without one a wrapped row is.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { JWK } from 'jose';
import { FedmartError } from '@fedmart/shared/errors';
import { bytesToHex } from '@fedmart/shared/crypto/bytes';
import { generateEd25519KeyPair, identityFingerprint, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { SIGNING_KEY_FILE, TokenAuthority } from './auth.ts';
import { LOG_KEY_FILE, logKeyFromJson, logKeyJson } from './log-key.ts';
import { OPERATOR_TOKEN_FILE, type OperatorTokenSlot } from './operator-token.ts';

/** The environment variable of the key-encryption key. */
export const KEK_ENV = 'FEDMART_KEY_ENCRYPTION_KEY';
/** The shared secrets' row names. */
export const SECRET_NAMES = ['signing-key', 'log-key', 'operator-token'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

const WRAP_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEK_BYTES = 32;

/**
 * Parse a key-encryption key: 32 bytes as 64 hex digits or as base64 (standard or URL-safe).
 * @param value - the variable's value; undefined or empty: no KEK
 * @param from - what to name in errors
 * @returns the 32 key bytes, or null when unset
 * @throws FedmartError CONFIG_ERROR naming the variable (never its value) for anything else
 */
export function parseKeyEncryptionKey(value: string | undefined, from: string = KEK_ENV): Buffer | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (v === '') return null;
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]+$/.test(v) && v.length === 2 * KEK_BYTES) key = Buffer.from(v, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) key = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key === null || key.length !== KEK_BYTES) {
    throw new FedmartError('CONFIG_ERROR', `${from} must be ${KEK_BYTES} random bytes written as 64 hex digits or base64 (e.g. openssl rand -base64 32), got ${key === null ? 'neither hex nor base64' : `${key.length} bytes`} (${v.length} characters)`);
  }
  return key;
}

/** The KEK of `FEDMART_KEY_ENCRYPTION_KEY`, or null when unset. @throws FedmartError CONFIG_ERROR for a malformed value */
export function keyEncryptionKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | null {
  return parseKeyEncryptionKey(env[KEK_ENV]);
}

/**
 * Wrap one secret with AES-256-GCM (NIST SP 800-38D), its name as AAD.
 * @returns `0x01 ‖ IV ‖ ciphertext ‖ tag`
 */
export function wrapSecret(kek: Buffer, name: string, plain: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([Buffer.from([WRAP_VERSION]), iv, body, cipher.getAuthTag()]);
}

/**
 * Unwrap {@link wrapSecret}'s output.
 * @throws FedmartError CONFIG_ERROR when it does not authenticate (wrong KEK, or the row was altered or renamed)
 */
export function unwrapSecret(kek: Buffer, name: string, wrapped: Buffer): Buffer {
  if (wrapped.length < 1 + IV_BYTES + TAG_BYTES || wrapped[0] !== WRAP_VERSION) {
    throw new FedmartError('CONFIG_ERROR', `shared secret "${name}" in PostgreSQL is not in the wrapped form this fedmart writes (version ${WRAP_VERSION}, ${wrapped.length} bytes); restore the fedmart_secrets table from backup`);
  }
  const iv = wrapped.subarray(1, 1 + IV_BYTES);
  const tag = wrapped.subarray(wrapped.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', kek, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(name, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(wrapped.subarray(1 + IV_BYTES, wrapped.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new FedmartError('CONFIG_ERROR', `cannot unwrap shared secret "${name}" stored in PostgreSQL: authentication failed (AES-256-GCM): ${KEK_ENV} is not the key it was wrapped with, or the row was altered; set the key-encryption key the secrets were wrapped with`, { cause });
  }
}

interface StoredRow { name: SecretName; value: Buffer; wrapped: boolean }

/** What {@link openSharedSecrets} found and did (for the start-up log and --migrate-only's output). */
export interface SharedSecretsReport {
  /** Generated here (no row, nothing in the data dir to import). */
  created: SecretName[];
  /** Imported from the data dir (a coordinator that kept its secrets there). */
  imported: SecretName[];
  /** Rows this call wrapped with the KEK (`wrapUnwrapped`). */
  wrappedNow: SecretName[];
  /** Whether the rows are stored wrapped (a KEK is set). */
  wrapped: boolean;
  /** Data dir files that differ from the shared secret (stale copies; the shared one is used). */
  staleFiles: string[];
}

/** The shared secrets, unwrapped. */
export interface SharedSecrets {
  /** The token signing key (private JWK). */
  signingKey: JWK;
  /** The audit log's key pair. */
  logKey: Ed25519KeyPair;
  /** The operator token's slot (compare-and-set on its row), for operatorTokenAtStart. */
  operatorToken: OperatorTokenSlot;
  report: SharedSecretsReport;
}

/**
 * Read the shared secrets of the database, creating (or importing from the data dir) the missing ones.
 * Run after the cluster migrations (`migrateCluster`).
 * @param pool - a pool on the coordinators' PostgreSQL
 * @param o.dataDir - the data dir whose files are imported where a row is missing (null: none)
 * @param o.kek - the key-encryption key (null: rows stored unwrapped)
 * @param o.wrapUnwrapped - first wrap rows stored unwrapped with `kek` (`--migrate-only`)
 * @throws FedmartError CONFIG_ERROR for a wrapped row without a KEK, an unwrapped one with a KEK, a wrong KEK, an unreadable data dir file, or a log key that did not sign the database's newest audit head
 */
export async function openSharedSecrets(pool: pg.Pool, o: { dataDir: string | null; kek: Buffer | null; wrapUnwrapped?: boolean }): Promise<SharedSecrets> {
  const report: SharedSecretsReport = { created: [], imported: [], wrappedNow: [], wrapped: o.kek !== null, staleFiles: [] };
  if (o.wrapUnwrapped && o.kek) report.wrappedNow = await wrapStoredSecrets(pool, o.kek);
  let rows = await readRows(pool);
  const files = o.dataDir === null ? new Map<SecretName, string>() : await dataDirSecrets(o.dataDir);

  // Every missing secret is decided (and the log key checked against the signed heads) before any row is written.
  const missing = new Map<SecretName, { plain: Buffer; fromFile: boolean }>();
  if (!rows.has('signing-key')) {
    const file = files.get('signing-key');
    const jwk = file !== undefined ? await importedSigningKey(file, o.dataDir!) : await TokenAuthority.generateJwk();
    missing.set('signing-key', { plain: Buffer.from(JSON.stringify(jwk)), fromFile: file !== undefined });
  }
  if (!rows.has('log-key')) {
    const file = files.get('log-key');
    const pair = file !== undefined ? importedLogKey(file, o.dataDir!) : generateEd25519KeyPair();
    await assertSignedNewestHead(pool, pair, file !== undefined ? path.join(o.dataDir!, LOG_KEY_FILE) : null);
    missing.set('log-key', { plain: Buffer.from(logKeyJson(pair)), fromFile: file !== undefined });
  }
  if (!rows.has('operator-token') && files.has('operator-token')) {
    // Imported as it is; operatorTokenAtStart replaces it when it does not verify under the shared signing key.
    missing.set('operator-token', { plain: Buffer.from(files.get('operator-token')!.trim()), fromFile: true });
  }
  for (const [name, m] of missing) await insertIfAbsent(pool, name, m.plain, o.kek);
  rows = await readRows(pool);
  const plain = (name: SecretName) => openRow(rows.get(name)!, o.kek);
  // What this call stored (another coordinator starting at the same time may have stored its own first).
  for (const [name, m] of missing) if (plain(name).equals(m.plain)) (m.fromFile ? report.imported : report.created).push(name);
  const signingKey = JSON.parse(plain('signing-key').toString('utf8')) as JWK;
  const logKey = logKeyFromJson(plain('log-key').toString('utf8'));
  const signingFile = files.get('signing-key'), logFile = files.get('log-key');
  if (signingFile !== undefined && JSON.stringify(await importedSigningKey(signingFile, o.dataDir!)) !== JSON.stringify(signingKey)) report.staleFiles.push(SIGNING_KEY_FILE);
  if (logFile !== undefined && bytesToHex(importedLogKey(logFile, o.dataDir!).secretKey) !== bytesToHex(logKey.secretKey)) report.staleFiles.push(LOG_KEY_FILE);
  return { signingKey, logKey, operatorToken: operatorTokenSlot(pool, o.kek), report };
}

/**
 * Wrap every row stored unwrapped with `kek` (compare-and-set per row, so two runs at once wrap each once).
 * @returns the names wrapped now
 */
export async function wrapStoredSecrets(pool: pg.Pool, kek: Buffer): Promise<SecretName[]> {
  const wrapped: SecretName[] = [];
  for (const row of (await readRows(pool)).values()) {
    if (row.wrapped) {
      unwrapSecret(kek, row.name, row.value); // a KEK other than the one already used is refused here
      continue;
    }
    const r = await pool.query('UPDATE fedmart_secrets SET value = $2, wrapped = true, updated_at = clock_timestamp() WHERE name = $1 AND NOT wrapped AND value = $3', [row.name, wrapSecret(kek, row.name, row.value), row.value]);
    if (r.rowCount === 1) wrapped.push(row.name);
  }
  return wrapped;
}

async function readRows(q: pg.Pool): Promise<Map<SecretName, StoredRow>> {
  const r = await q.query<StoredRow>('SELECT name, value, wrapped FROM fedmart_secrets ORDER BY name');
  return new Map(r.rows.map((row) => [row.name, row]));
}

async function insertIfAbsent(q: pg.Pool, name: SecretName, plain: Buffer, kek: Buffer | null): Promise<void> {
  await q.query('INSERT INTO fedmart_secrets (name, value, wrapped) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [name, kek ? wrapSecret(kek, name, plain) : plain, kek !== null]);
}

/** The plaintext of a stored row, checked against the KEK setting. */
function openRow(row: StoredRow, kek: Buffer | null): Buffer {
  if (row.wrapped && kek === null) throw new FedmartError('CONFIG_ERROR', `shared secret "${row.name}" in PostgreSQL is wrapped with a key-encryption key: set ${KEK_ENV} to that key (32 bytes, hex or base64) on every coordinator`);
  if (!row.wrapped && kek !== null) throw new FedmartError('CONFIG_ERROR', `shared secret "${row.name}" is stored unwrapped in PostgreSQL although ${KEK_ENV} is set: run fedmart coordinator --migrate-only --database … with ${KEK_ENV} set to wrap the stored secrets, then start the coordinators`);
  return row.wrapped ? unwrapSecret(kek!, row.name, row.value) : row.value;
}

/** The operator token's row as a slot: reads unwrap, a replacement is a compare-and-set on the stored bytes. */
function operatorTokenSlot(pool: pg.Pool, kek: Buffer | null): OperatorTokenSlot {
  const NAME = 'operator-token';
  let seen: Buffer | null = null;
  const read = async () => {
    const row = (await readRows(pool)).get(NAME);
    seen = row?.value ?? null;
    return row ? openRow(row, kek).toString('utf8').trim() : null;
  };
  return {
    read,
    replace: async (previous, next) => {
      if (previous === null || seen === null) await insertIfAbsent(pool, NAME, Buffer.from(next), kek);
      else await pool.query('UPDATE fedmart_secrets SET value = $2, wrapped = $3, updated_at = clock_timestamp() WHERE name = $1 AND value = $4', [NAME, kek ? wrapSecret(kek, NAME, Buffer.from(next)) : Buffer.from(next), kek !== null, seen]);
      const now = await read();
      if (now === null) throw new FedmartError('INTERNAL', 'the operator token row vanished from fedmart_secrets while it was replaced');
      return now;
    },
  };
}

/** The data dir's secret files that exist (text). */
async function dataDirSecrets(dataDir: string): Promise<Map<SecretName, string>> {
  const out = new Map<SecretName, string>();
  const files: [SecretName, string][] = [['signing-key', SIGNING_KEY_FILE], ['log-key', LOG_KEY_FILE], ['operator-token', OPERATOR_TOKEN_FILE]];
  for (const [name, file] of files) {
    try {
      out.set(name, await readFile(path.join(dataDir, file), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FedmartError('CONFIG_ERROR', `cannot read ${path.join(dataDir, file)} to import it into PostgreSQL: ${(err as Error).message}; fix its permissions`, { cause: err });
    }
  }
  return out;
}

async function importedSigningKey(text: string, dataDir: string): Promise<JWK> {
  try {
    const jwk = JSON.parse(text) as JWK;
    await TokenAuthority.fromJwk(jwk);
    return jwk;
  } catch (cause) {
    throw new FedmartError('CONFIG_ERROR', `cannot import the signing key ${path.join(dataDir, SIGNING_KEY_FILE)} into PostgreSQL: ${(cause as Error).message}; restore it from backup, or remove it to have a new key generated (tokens it signed become invalid)`, { cause });
  }
}

function importedLogKey(text: string, dataDir: string): Ed25519KeyPair {
  try {
    return logKeyFromJson(text);
  } catch (cause) {
    throw new FedmartError('CONFIG_ERROR', `cannot import the audit log key ${path.join(dataDir, LOG_KEY_FILE)} into PostgreSQL: ${(cause as Error).message}; restore it from backup (partners hold tree heads signed with it)`, { cause });
  }
}

/** Never store a log key other than the one partners pinned: it must have signed the database's newest audit head. */
async function assertSignedNewestHead(pool: pg.Pool, pair: Ed25519KeyPair, file: string | null): Promise<void> {
  const head = (await pool.query<{ size: string; public_key: string }>('SELECT size, public_key FROM audit_tree_heads ORDER BY size DESC LIMIT 1')).rows[0];
  if (!head || head.public_key === bytesToHex(pair.publicKey)) return;
  const signer = identityFingerprint(Buffer.from(head.public_key, 'hex'));
  throw new FedmartError('CONFIG_ERROR', file === null
    ? `the database's audit tree heads (newest: size ${head.size}) are signed by log key ${signer}, which this coordinator does not have: put the log-key.json of the coordinator that signed them into --data-dir once (it is imported into PostgreSQL), instead of a new key partners would refuse`
    : `the database's newest audit tree head (size ${head.size}) is signed by log key ${signer}, but ${file} holds ${identityFingerprint(pair.publicKey)}: start first the coordinator whose log-key.json signed it (or copy that file here); partners pinned that key`);
}

/**
 * One line on what {@link openSharedSecrets} did, for the start-up log and --migrate-only.
 * @returns the line, or null when it only read what was stored
 */
export function describeSharedSecrets(r: SharedSecretsReport): string | null {
  const parts: string[] = [];
  if (r.created.length) parts.push(`created ${r.created.join(', ')}`);
  if (r.imported.length) parts.push(`imported ${r.imported.join(', ')} from the data dir`);
  if (r.wrappedNow.length) parts.push(`wrapped ${r.wrappedNow.join(', ')} with ${KEK_ENV}`);
  if (r.staleFiles.length) parts.push(`ignored the data dir's ${r.staleFiles.join(', ')}: they differ from the shared secrets in PostgreSQL, which are used (remove the stale files)`);
  return parts.length ? `shared secrets in PostgreSQL${r.wrapped ? ' (wrapped)' : ''}: ${parts.join('; ')}` : null;
}
