/**
 * The verifiable audit log (issue 13, item 4): every audit entry is a leaf of
 * an RFC 6962 Merkle tree (`crypto/merkle.ts`), and after every append the
 * coordinator signs a tree head (size, root, timestamp) with its Ed25519 log
 * key. Whoever holds an earlier head (a partner, a compliance officer, a file
 * from `fedmart audit head`) can check with a consistency proof that the
 * newer log extends it, so history that was rewritten, reordered or
 * truncated after they saw it is detected — even by someone with write
 * access to the database, who can recompute hashes but cannot sign heads
 * older partners already hold.
 *
 * This module is pure (encoding, verification); the coordinator stores rows
 * and heads, the CLI and partners fetch and verify them.
 */
import { z } from 'zod';
import { bytesToHex, hexToBytes } from './crypto/bytes.ts';
// @noble/curves (pure JS, RFC 8032 rules with zip215 off) rather than node:crypto, so the same check runs in
// the partner portal in the browser.
import { ed25519 } from '@noble/curves/ed25519.js';
import { MerkleFrontier, merkleLeafHash, verifyConsistency, verifyInclusion } from './crypto/merkle.ts';

/** One stored audit entry, as the coordinator keeps it (`data` is the JSON text, or null). */
export interface AuditEntry {
  seq: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  data: string | null;
}

const HEX32 = z.string().regex(/^[0-9a-f]{64}$/, 'a 32-byte value as 64 lowercase hex digits');

/** A signed tree head (STH) as the API serves it and partners store it. */
export const SignedTreeHeadSchema = z.object({
  /** Number of entries the tree covers. */
  size: z.number().int().nonnegative(),
  /** MTH of the first `size` entries, hex. */
  root: HEX32,
  /** When the coordinator signed it, ms since the epoch. */
  timestamp: z.number().int().nonnegative(),
  /** The coordinator's Ed25519 log key, hex. */
  publicKey: HEX32,
  /** Ed25519 signature over {@link treeHeadMessage}, hex. */
  signature: z.string().regex(/^[0-9a-f]{128}$/, 'a 64-byte signature as 128 hex digits'),
});
export type SignedTreeHead = z.infer<typeof SignedTreeHeadSchema>;

/** Consistency proof body of `GET /api/v1/audit/consistency`. */
export const ConsistencyProofSchema = z.object({ from: z.number().int().nonnegative(), to: z.number().int().nonnegative(), proof: z.array(HEX32) });
/** Inclusion proof body of `GET /api/v1/audit/entries/:seq/proof`. */
export const InclusionProofSchema = z.object({ leafIndex: z.number().int().nonnegative(), treeSize: z.number().int().positive(), proof: z.array(HEX32) });

const utf8 = new TextEncoder();

/**
 * The bytes of an entry's Merkle leaf: a JSON array (strings, integers, nulls — one encoding per entry, so
 * any change to any field, including its sequence number, changes the leaf).
 * @param e - the entry
 * @returns UTF-8 bytes hashed with {@link merkleLeafHash}
 */
export function auditLeafBytes(e: AuditEntry): Uint8Array {
  return utf8.encode(JSON.stringify(['fedmart/audit/v1/entry', e.seq, e.at, e.actor, e.action, e.subject, e.data]));
}

/** Merkle leaf hash of an audit entry. */
export function auditLeafHash(e: AuditEntry): Uint8Array {
  return merkleLeafHash(auditLeafBytes(e));
}

/**
 * The bytes a tree head's signature covers (domain-separated, versioned).
 * @param h - size, root (hex), timestamp
 */
export function treeHeadMessage(h: Pick<SignedTreeHead, 'size' | 'root' | 'timestamp'>): Uint8Array {
  return utf8.encode(JSON.stringify(['fedmart/audit/v1/tree-head', h.size, h.root, h.timestamp]));
}

/**
 * Check a tree head's signature.
 * @param h - the head
 * @param publicKey - the log key to trust (hex); default: the key the head names
 * @returns true only when the head is signed by that key
 */
export function verifyTreeHead(h: SignedTreeHead, publicKey: string = h.publicKey): boolean {
  if (h.publicKey !== publicKey) return false;
  try {
    return ed25519.verify(hexToBytes(h.signature), treeHeadMessage(h), hexToBytes(publicKey), { zip215: false });
  } catch {
    return false;
  }
}

/** Outcome of {@link verifyAuditLog}. */
export interface AuditVerification {
  ok: boolean;
  /** Entries checked. */
  entries: number;
  /** Size and root of the newest signed head that verified (null: none). */
  head: { size: number; root: string } | null;
  /** The first bad entry (sequence number) and why; null when the log verifies. */
  firstBad: { seq: number; reason: string } | null;
}

/**
 * Verify a whole audit log against its signed tree heads and, optionally, a head obtained earlier
 * (from a partner's data dir or a saved file): sequence numbers run 1..n without gaps, every head is
 * signed by the log key, every head's root is the MTH of the entries it covers, every entry is covered
 * by a head, and the earlier head is a prefix of this log.
 * @param args.entries - entries in sequence order
 * @param args.heads - stored heads in size order
 * @param args.trusted - a head obtained earlier (its key is then the only one trusted)
 * @returns the verdict with the first bad entry
 */
export function verifyAuditLog(args: { entries: readonly AuditEntry[]; heads: readonly SignedTreeHead[]; trusted?: SignedTreeHead | null }): AuditVerification {
  const { entries, heads } = args;
  const trusted = args.trusted ?? null;
  const problems: { seq: number; reason: string }[] = [];
  const newest = heads.length > 0 ? heads[heads.length - 1]! : null;
  const key = trusted?.publicKey ?? newest?.publicKey ?? null;
  const n = entries.length;

  for (let i = 0; i < n; i++) {
    const seq = entries[i]!.seq;
    if (seq !== i + 1) {
      problems.push(seq > i + 1 ? { seq: i + 1, reason: `entry ${i + 1} is missing (the log jumps from ${i} to ${seq}): it was deleted` } : { seq, reason: `entry ${seq} appears out of order or twice (at position ${i + 1})` });
      break;
    }
  }
  if (trusted !== null && !verifyTreeHead(trusted)) problems.push({ seq: 1, reason: `the trusted tree head (size ${trusted.size}) has an invalid signature; it is not a head this coordinator signed` });
  const checks = [...heads.map((h) => ({ h, trusted: false })), ...(trusted ? [{ h: trusted, trusted: true }] : [])].sort((a, b) => a.h.size - b.h.size);
  if (newest === null && n > 0) problems.push({ seq: 1, reason: `no signed tree head covers the ${n} entries` });
  if (newest !== null && trusted !== null && trusted.size > newest.size) {
    problems.push({ seq: newest.size + 1, reason: `the log was truncated or rolled back: the trusted head covers ${trusted.size} entries, the newest signed head only ${newest.size}` });
  }
  if (newest !== null && newest.size < n) problems.push({ seq: newest.size + 1, reason: `entries ${newest.size + 1}..${n} are not covered by any signed tree head (appended without the log key)` });

  const frontier = new MerkleFrontier();
  let lastGood: { size: number; root: string } | null = null;
  let k = 0;
  for (const { h, trusted: isTrusted } of checks) {
    const label = isTrusted ? `the trusted tree head (size ${h.size})` : `the tree head of size ${h.size}`;
    if (!isTrusted && (key === null || !verifyTreeHead(h, key))) {
      problems.push({ seq: Math.max(1, h.size), reason: `${label} is not signed by the log key ${key?.slice(0, 16) ?? '?'}…` });
      break;
    }
    if (h.size > n) {
      problems.push({ seq: n + 1, reason: `${label} covers ${h.size} entries but the log holds ${n}: entries ${n + 1}..${h.size} were deleted` });
      break;
    }
    while (k < h.size) frontier.append(auditLeafHash(entries[k++]!));
    const root = bytesToHex(frontier.root());
    if (root !== h.root) {
      const from = (lastGood?.size ?? 0) + 1;
      problems.push({ seq: from, reason: from === h.size ? `entry ${h.size} was altered: ${label} does not match the stored entries` : `one of entries ${from}..${h.size} was altered: ${label} does not match the stored entries` });
      break;
    }
    if (!isTrusted) lastGood = { size: h.size, root };
  }
  problems.sort((a, b) => a.seq - b.seq);
  return { ok: problems.length === 0, entries: n, head: lastGood, firstBad: problems[0] ?? null };
}

/**
 * Check that a newer signed head extends an older one (what a partner does at every connection).
 * @param older - the head held from before (null: first contact, only the new head's signature is checked)
 * @param newer - the head just received
 * @param proof - PROOF(older.size, D[newer.size]), hex (ignored when older is null)
 * @returns null when consistent, otherwise the reason
 */
export function checkHeadExtends(older: SignedTreeHead | null, newer: SignedTreeHead, proof: readonly string[]): string | null {
  if (!verifyTreeHead(newer, older?.publicKey ?? newer.publicKey)) {
    return older && older.publicKey !== newer.publicKey
      ? `the coordinator's audit log is now signed by another key (${newer.publicKey.slice(0, 16)}…, was ${older.publicKey.slice(0, 16)}…)`
      : `the coordinator's tree head of size ${newer.size} has an invalid signature`;
  }
  if (older === null) return null;
  if (newer.size < older.size) return `the coordinator's audit log shrank: it now has ${newer.size} entries, this partner saw ${older.size}; history was truncated or rolled back`;
  if (!HEX_LIST.safeParse(proof).success) return 'the consistency proof is malformed';
  if (!verifyConsistency(older.size, newer.size, hexToBytes(older.root), hexToBytes(newer.root), proof.map(hexToBytes))) {
    return `the coordinator's audit log of ${newer.size} entries does not extend the ${older.size} entries this partner saw (consistency proof fails): history was rewritten`;
  }
  return null;
}
const HEX_LIST = z.array(HEX32);

/**
 * Check that one entry is in the log a signed tree head commits to: the head is signed by the log key,
 * the entry's leaf (RFC 6962 §2.1, {@link auditLeafHash}) sits at position seq − 1, and its audit path
 * (§2.1.1) leads to the head's root. What a partner's browser runs on its own entries.
 * @param entry - the entry as stored (as the list showed it)
 * @param p - the coordinator's inclusion proof (`GET /api/v1/audit/entries/:seq/proof?size=`)
 * @param head - the signed tree head the proof is against
 * @param publicKey - the log key to trust (hex); default: the key the head names
 * @returns null when included, otherwise the reason
 */
export function checkEntryIncluded(entry: AuditEntry, p: { leafIndex: number; treeSize: number; proof: readonly string[] }, head: SignedTreeHead, publicKey: string = head.publicKey): string | null {
  if (!verifyTreeHead(head, publicKey)) return `the tree head of size ${head.size} is not signed by the log key ${publicKey.slice(0, 16)}…`;
  if (p.treeSize !== head.size) return `the proof is for a tree of ${p.treeSize} entries, the signed head covers ${head.size}`;
  if (p.leafIndex !== entry.seq - 1) return `entry ${entry.seq} must be leaf ${entry.seq - 1}, the proof places it at ${p.leafIndex}`;
  if (!HEX_LIST.safeParse(p.proof).success) return 'the inclusion proof is malformed';
  if (!verifyInclusion(p.leafIndex, p.treeSize, auditLeafHash(entry), p.proof.map(hexToBytes), hexToBytes(head.root))) {
    return `entry ${entry.seq} is not in the log of ${head.size} entries the coordinator signed (its inclusion proof does not lead to the signed root): it was altered or never logged`;
  }
  return null;
}

/** Federation-wide actions a partner of that federation may see (their data names no partner, or only caps, filtered below). */
const FEDERATION_WIDE = /^(federation\.(created|archived|deleted)|model\.[a-z-]+|schedule\.[a-z-]+|privacy\.cap\.(set|lifted)|privacy\.round\.refused)$/;

/** Every string anywhere in a JSON value (the free text of an entry's data: reasons, notes). */
function stringsIn(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) stringsIn(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stringsIn(x, out);
  return out;
}

const ID_CHAR = /[A-Za-z0-9_-]/;
/** Index of the first whole-token occurrence of `n` in `text` (not inside a longer id), or -1. */
function tokenIndex(text: string, n: string): number {
  if (n.length === 0) return -1;
  for (let i = text.indexOf(n); i >= 0; i = text.indexOf(n, i + 1)) {
    if (!ID_CHAR.test(text[i - 1] ?? '') && !ID_CHAR.test(text[i + n.length] ?? '')) return i;
  }
  return -1;
}

/**
 * Whether `text` mentions one of `names` as a whole token (`partner-1` is not found in `partner-10`).
 * Over-matching hides more, never less.
 * @param text - free text, e.g. a schedule's or a round's reason
 * @param names - partner ids and display names to look for
 * @returns the first name found, or null
 */
export function mentionedPartner(text: string, names: Iterable<string>): string | null {
  for (const n of names) if (tokenIndex(text, n) >= 0) return n;
  return null;
}

/**
 * `text` with every whole-token mention of `names` replaced by "another partner": what a partner may read
 * of a free-text reason that is not hashed into the audit log (a round's reason over REST).
 * @param text - free text
 * @param names - the other partners' ids and display names
 * @returns the redacted text
 * @example redactPartnerNames('no decryption share from p_b', ['p_b']) // 'no decryption share from another partner'
 */
export function redactPartnerNames(text: string, names: Iterable<string>): string {
  let out = text;
  // Longest first, so a name that contains another is replaced whole.
  for (const n of [...names].sort((x, y) => y.length - x.length)) {
    for (let i = tokenIndex(out, n); i >= 0; i = tokenIndex(out, n)) out = `${out.slice(0, i)}another partner${out.slice(i + n.length)}`;
  }
  return out;
}

/**
 * Which audit entries a partner token may read (issue 14): entries of ITS federation that concern it
 * (it acted, e.g. its consent; or it is the subject, by partner id or by its enrollment id, e.g. its
 * enrollment, a cap on its example count, its key-holder role), and federation-wide decisions that name
 * no other partner (federation created / archived / deleted, model releases, schedules, caps on the
 * whole federation or on this partner, rounds refused for budget when every cap named is the
 * federation's or this partner's). Never entries of another federation, and never entries that name
 * another partner (e.g. `round.committed` lists every participant, `round.updates-bounded` who was
 * clipped), because who took part and with what is what partners may not learn about each other.
 * That includes free text: a `schedule.ended` whose reason is "stopped before the next round: privacy
 * budget exceeded: round 4 would bring partner brand-b to record-level epsilon 1.3 … above the cap of
 * partner brand-b", or "last: no decryption share from p_…", names brand-b's cap and spend, so it is
 * hidden from the other partners (it is treated as naming that partner) when `who.otherPartners` lists
 * brand-b's id or name.
 * An entry is shown whole or not at all: its leaf hashes every field, so it cannot be redacted and still verify.
 * @param e - the entry as stored
 * @param who - the partner id, its federation, its enrollment ids in that federation, and the ids and
 *   display names of every OTHER partner enrolled in it (whose mention in any string hides the entry)
 */
export function partnerMaySeeAuditEntry(e: AuditEntry, who: { partnerId: string; federationId: string; enrollmentIds: ReadonlySet<string>; otherPartners: Iterable<string> }): boolean {
  let data: Record<string, unknown> = {};
  try {
    const parsed: unknown = e.data === null ? null : JSON.parse(e.data);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed as Record<string, unknown>;
  } catch {
    return false;
  }
  const inFederation = data.federationId === who.federationId || (e.subject === who.federationId && data.federationId === undefined);
  if (!inFederation) return false;
  const others = [...who.otherPartners].filter((n) => n !== who.partnerId);
  const namesAnother = stringsIn(data).some((s) => mentionedPartner(s, others) !== null);
  if (e.actor === who.partnerId || e.subject === who.partnerId || (e.subject !== null && who.enrollmentIds.has(e.subject))) return !namesAnother;
  if (!FEDERATION_WIDE.test(e.action)) return false;
  const own = (id: unknown) => id === null || id === undefined || id === who.partnerId;
  if (!own(data.partnerId)) return false;
  if (Array.isArray(data.caps) && !data.caps.every((c) => own((c as { partnerId?: unknown } | null)?.partnerId))) return false;
  return !namesAnother;
}
