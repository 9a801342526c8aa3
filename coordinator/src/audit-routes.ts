/**
 * Verifiable audit log API (under `/api/v1`, issue 13 item 4). Tree heads
 * and consistency proofs are readable by every role (a partner checks them at
 * every connection; they reveal only sizes and hashes); entries and their
 * inclusion proofs by operators and compliance officers, and by a partner for
 * the entries it may see (`partnerMaySeeAuditEntry` in
 * `@fedmart/shared/audit-log`: its own federation, about itself or
 * federation-wide and naming no other partner; issue 14).
 *
 * - GET /audit/sth                       newest signed tree head
 * - GET /audit/heads?after=&limit=       stored signed heads, oldest first
 * - GET /audit/consistency?from=m[&to=n] PROOF(m, D[n]) (RFC 6962 §2.1.2), n defaults to the newest head
 * - GET /audit/entries?after=&limit=    entries exactly as stored (data as JSON text)
 * - GET /audit/entries/:seq/proof[?size=n] the entry (as stored) and its audit path (RFC 6962 §2.1.1)
 * - GET /federations/:id/audit/entries?after=&limit= the entries about one federation (a partner: those it may see)
 */
import express, { type Request, type RequestHandler } from 'express';
import { identityFingerprint } from '@fedmart/shared/crypto/ed25519';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { FedmartError } from '@fedmart/shared/errors';
import type { Role } from '@fedmart/shared/protocol';
import { partnerMaySeeAuditEntry, type AuditEntry } from '@fedmart/shared/audit-log';
import type { Principal } from './auth.ts';
import type { AsyncStore } from './db/store-api.ts';

/** What the router needs from the HTTP app. */
export interface AuditRouteDeps {
  store: AsyncStore;
  /** The app's auth middleware factory. */
  auth: (...roles: Role[]) => RequestHandler;
}

function intQuery(req: Request, name: string, fallback?: number): number | undefined {
  const raw = req.query[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(n) || n < 0) throw new FedmartError('BAD_REQUEST', `query "${name}" must be a non-negative integer, got "${String(raw)}"`);
  return n;
}

/** Rows read per page while filtering the log. */
const PAGE = 1000;

/**
 * The first `limit` stored entries after `after` that `keep` accepts, read page by page in sequence
 * order (the log is not loaded whole).
 */
async function matchingEntries(store: AsyncStore, after: number, limit: number, keep: (e: AuditEntry) => boolean): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let cursor = after; out.length < limit;) {
    const page = await store.listAudit(PAGE, cursor);
    for (const e of page) if (keep(e) && out.length < limit) out.push(e);
    if (page.length < PAGE) break;
    cursor = page[page.length - 1]!.seq;
  }
  return out;
}

/**
 * Build the audit router (mount it on the `/api/v1` router).
 * @returns an express router
 */
export function createAuditRouter(deps: AuditRouteDeps): express.Router {
  const { store, auth } = deps;
  const router = express.Router();

  router.get('/audit/sth', auth('operator', 'compliance', 'partner'), async (_req, res) => {
    const head = await store.newestAuditHead();
    if (!head) throw new FedmartError('NOT_FOUND', 'the audit log is empty: no tree head signed yet');
    res.json({ head, fingerprint: identityFingerprint(hexToBytes(head.publicKey)) });
  });

  router.get('/audit/heads', auth('operator', 'compliance'), async (req, res) => {
    const after = intQuery(req, 'after', 0)!;
    const limit = Math.min(10_000, Math.max(1, intQuery(req, 'limit', 1000)!));
    res.json({ heads: await store.listAuditHeads(after, limit) });
  });

  router.get('/audit/consistency', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const from = intQuery(req, 'from');
    if (from === undefined) throw new FedmartError('BAD_REQUEST', 'query "from" (the tree size you hold) is required, e.g. /api/v1/audit/consistency?from=120');
    res.json(await store.auditConsistency(from, intQuery(req, 'to')));
  });

  router.get('/audit/entries/:seq/proof', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const seq = Number(req.params.seq);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new FedmartError('BAD_REQUEST', `entry sequence number must be a positive integer, got "${String(req.params.seq)}"`);
    const proof = await store.auditInclusion(seq, intQuery(req, 'size'));
    const p = req.principal!;
    if (p.role === 'partner' && !(await partnerView(p))(proof.entry)) throw new FedmartError('FORBIDDEN', `a partner token can only read audit entries of its own federation that concern it or the whole federation; entry ${seq} is not one`);
    res.json(proof);
  });

  /** What a partner token may see (`partnerMaySeeAuditEntry`), with its enrollment ids in its federation and the other partners' ids and names. */
  const partnerView = async (p: Principal) => {
    const rows = await store.listEnrollments(p.fed ?? '');
    const others = rows.filter((e) => e.partnerId !== p.sub).flatMap((e) => [e.partnerId, e.partnerName]);
    const who = { partnerId: p.sub, federationId: p.fed ?? '', enrollmentIds: new Set(rows.filter((e) => e.partnerId === p.sub).map((e) => e.id)), otherPartners: others };
    return (e: AuditEntry) => p.fed !== undefined && partnerMaySeeAuditEntry(e, who);
  };

  // One federation's entries, as stored: operators and compliance every entry naming it, a partner those it may see.
  router.get('/federations/:id/audit/entries', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const id = String(req.params.id);
    const p = req.principal!;
    if (p.role === 'partner' && p.fed !== id) throw new FedmartError('FORBIDDEN', 'a partner token can only read its own federation');
    await store.getFederation(id);
    const after = intQuery(req, 'after', 0)!;
    const limit = Math.min(10_000, Math.max(1, intQuery(req, 'limit', 1000)!));
    const mine = p.role === 'partner' ? await partnerView(p) : (e: AuditEntry) => e.subject === id || (e.data !== null && e.data.includes(`"federationId":${JSON.stringify(id)}`));
    const entries = await matchingEntries(store, after, limit, mine);
    res.json({
      federationId: id, entries,
      scope: p.role === 'partner'
        ? 'entries of your federation about you (your consent, your enrollment, limits on your examples) and federation-wide decisions that name no other partner (federation lifecycle, model releases, schedules, caps on the federation or on you)'
        : 'every entry naming this federation',
    });
  });

  // Entries exactly as stored (`data` is the JSON text the leaf hashes), for verifiers.
  router.get('/audit/entries', auth('operator', 'compliance'), async (req, res) => {
    const after = intQuery(req, 'after', 0)!;
    const limit = Math.min(10_000, Math.max(1, intQuery(req, 'limit', 1000)!));
    res.json({ entries: await store.listAudit(limit, after) });
  });

  return router;
}
