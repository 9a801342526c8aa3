/**
 * `fedmart audit verify|head`: check the coordinator's verifiable audit log
 * (RFC 6962 Merkle tree with signed tree heads, `@fedmart/shared/audit-log`)
 * from the outside — over the API or straight from a data dir — optionally
 * against a tree head saved earlier (a partner's `audit-head.json`, or one
 * written by `fedmart audit head --out`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { FedmartError } from '@fedmart/shared/errors';
import { ConsistencyProofSchema, SignedTreeHeadSchema, checkHeadExtends, verifyAuditLog, type AuditEntry, type AuditVerification, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { formatIssues } from '@fedmart/shared/protocol';
import { parseFlags } from './args.ts';
import { operatorApi } from './federation.ts';
import type { ApiClient } from './api-client.ts';

const USAGE = `fedmart audit <verify|head> [flags]

  verify (--coordinator URL | --data-dir DIR) [--from-head FILE] [--token T] [--json]
         Recompute the audit log's Merkle tree and check every signed tree head;
         with --from-head, also that the log extends that earlier head (a partner's
         <partner data dir>/audit-head.json, or a file from "fedmart audit head").
         Exit 0 when the log verifies; 1 with the first bad entry otherwise.
  head   [--coordinator URL] [--out FILE] [--json]   print (or save) the newest signed tree head

The token is read as for fedmart federation (operator or compliance token).

Example:
  fedmart audit head --coordinator http://127.0.0.1:7300 --out head-monday.json
  fedmart audit verify --coordinator http://127.0.0.1:7300 --from-head head-monday.json`;

/** Read the entries and heads of a coordinator data dir, read-only (no migration, no writes). */
export function readAuditFromDataDir(dir: string): { entries: AuditEntry[]; heads: SignedTreeHead[] } {
  const file = path.join(path.resolve(dir), 'fedmart.db');
  if (!existsSync(file)) throw new FedmartError('CONFIG_ERROR', `audit verify: no coordinator database at ${file}; pass the coordinator's --data-dir`);
  const sqlite = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const hasHeads = sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_tree_heads'").get();
    if (!hasHeads) throw new FedmartError('CONFIG_ERROR', `audit verify: ${file} has no signed tree heads yet (a fedmart older than the Merkle audit log); start the coordinator once to migrate it`);
    const entries = sqlite.prepare('SELECT seq, at, actor, action, subject, data FROM audit_log ORDER BY seq').all() as AuditEntry[];
    const heads = sqlite.prepare('SELECT size, root, timestamp, public_key AS publicKey, signature FROM audit_tree_heads ORDER BY size').all() as SignedTreeHead[];
    return { entries, heads };
  } finally {
    sqlite.close();
  }
}

async function pages<T>(api: ApiClient, route: string, key: string, upTo: number, cursor: (x: T) => number): Promise<T[]> {
  const out: T[] = [];
  let after = 0;
  while (after < upTo) {
    const page = (await api.get<Record<string, T[]>>(`${route}?after=${after}&limit=10000`))[key] ?? [];
    if (page.length === 0) break;
    for (const x of page) if (cursor(x) <= upTo) out.push(x);
    after = cursor(page[page.length - 1]!);
  }
  return out;
}

async function readHeadFile(file: string): Promise<SignedTreeHead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new FedmartError('CONFIG_ERROR', `audit verify: cannot read --from-head ${file}: ${why}; check the --from-head path`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `audit verify: --from-head ${file} is not JSON (${(err as Error).message}); pass a file written by fedmart audit head or a partner's audit-head.json`, { cause: err });
  }
  const parsed = SignedTreeHeadSchema.safeParse((raw as { head?: unknown })?.head ?? raw);
  if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `audit verify: --from-head ${file} is not a signed tree head (${formatIssues(parsed.error.issues)}); pass a file written by fedmart audit head or a partner's audit-head.json`);
  return parsed.data;
}

/**
 * Verify a coordinator's audit log.
 * @param values - parsed flags (coordinator | data-dir, from-head, token)
 * @returns the verdict
 */
export async function verifyAudit(values: Record<string, unknown>): Promise<AuditVerification> {
  const trusted = typeof values['from-head'] === 'string' ? await readHeadFile(values['from-head']) : null;
  // --data-dir alone verifies the database; with --coordinator it only locates the operator token.
  if (typeof values.coordinator !== 'string') {
    if (typeof values['data-dir'] !== 'string') throw new FedmartError('CONFIG_ERROR', 'audit verify: pass --coordinator URL (over the API) or --data-dir DIR (the coordinator\'s data dir)');
    return verifyAuditLog({ ...readAuditFromDataDir(values['data-dir']), trusted });
  }
  const api = await operatorApi(values);
  const { head } = await api.get<{ head: SignedTreeHead }>('/api/v1/audit/sth');
  const newest = SignedTreeHeadSchema.parse(head);
  const heads = await pages<SignedTreeHead>(api, '/api/v1/audit/heads', 'heads', newest.size, (h) => h.size);
  const entries = await pages<AuditEntry>(api, '/api/v1/audit/entries', 'entries', newest.size, (e) => e.seq);
  const v = verifyAuditLog({ entries, heads, trusted });
  if (!v.ok || trusted === null) return v;
  // As a partner would: the coordinator's own proof that its newest head extends the trusted one.
  const proof = ConsistencyProofSchema.parse(await api.get(`/api/v1/audit/consistency?from=${Math.min(trusted.size, newest.size)}&to=${newest.size}`)).proof;
  const problem = checkHeadExtends(trusted, newest, proof);
  return problem ? { ...v, ok: false, firstBad: { seq: Math.min(trusted.size, newest.size) || 1, reason: problem } } : v;
}

export async function auditCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE + '\n');
    return sub ? 0 : 2;
  }
  const { values } = parseFlags(`audit ${sub}`, rest, {
    coordinator: { type: 'string' }, 'data-dir': { type: 'string' }, 'from-head': { type: 'string' }, token: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' },
  });
  if (sub === 'verify') {
    const v = await verifyAudit(values);
    if (values.json) process.stdout.write(JSON.stringify(v) + '\n');
    else if (v.ok) process.stdout.write(`audit log verifies: ${v.entries} entries, signed head size ${v.head?.size ?? 0} root ${v.head?.root.slice(0, 16) ?? '-'}…\n`);
    else process.stdout.write(`audit log does NOT verify: first bad entry ${v.firstBad!.seq}: ${v.firstBad!.reason}\n`);
    return v.ok ? 0 : 1;
  }
  if (sub === 'head') {
    const api = await operatorApi(values);
    const body = await api.get<{ head: SignedTreeHead; fingerprint: string }>('/api/v1/audit/sth');
    if (typeof values.out === 'string') await writeFile(values.out, JSON.stringify(body.head, null, 2) + '\n');
    process.stdout.write(values.json ? JSON.stringify(body) + '\n' : `tree head: size ${body.head.size}, root ${body.head.root}, signed ${new Date(body.head.timestamp).toISOString()} by log key ${body.fingerprint}${typeof values.out === 'string' ? ` (saved to ${values.out})` : ''}\n`);
    return 0;
  }
  throw new FedmartError('CONFIG_ERROR', `audit: unknown subcommand "${sub}"; use verify or head (fedmart audit --help)`);
}
