/**
 * Compliance API (under `/api/v1`): privacy budgets per federation and per
 * partner with their history, refused rounds, caps, and the ledger export as
 * JSON or CSV. Role `compliance` reads everything and is the only role that
 * may set caps; `operator` may read. Partner tokens get 403.
 *
 * - GET  /federations/:id/privacy[?format=json|csv]   full report / ledger CSV
 * - GET  /federations/:id/privacy/partners/:partnerId  one partner's totals and history (also that partner itself)
 * - GET  /federations/:id/privacy/refused             rounds refused for budget
 * - GET  /federations/:id/privacy/caps                caps in force and their history
 * - PUT  /federations/:id/privacy/caps                set or lift one cap (compliance only)
 */
import express, { type RequestHandler, type Request } from 'express';
import { FedmartError } from '@fedmart/shared/errors';
import { PrivacyCapBodySchema, formatIssues, type Role } from '@fedmart/shared/protocol';
import type { AsyncStore } from './db/store-api.ts';
import { listPrivacyCaps, privacyCapHistory, privacyReport, privacyReportCsv, setPrivacyCap } from './privacy.ts';

/** What the router needs from the HTTP app: the store and its Bearer-token role check. */
export interface ComplianceRouteDeps {
  store: AsyncStore;
  /** The app's auth middleware factory: allows the listed roles, 401/403 otherwise. */
  auth: (...roles: Role[]) => RequestHandler;
}

function param(req: Request, name: string): string {
  const v = (req.params as Record<string, string | string[] | undefined>)[name];
  if (typeof v !== 'string' || v.length === 0) throw new FedmartError('BAD_REQUEST', `missing path parameter "${name}"`);
  return v;
}

/**
 * Build the compliance router (mount it on the `/api/v1` router).
 * @param deps - store and auth middleware
 * @returns an express router
 */
export function createComplianceRouter(deps: ComplianceRouteDeps): express.Router {
  const { store, auth } = deps;
  const router = express.Router();
  const readers = auth('compliance', 'operator');

  router.get('/federations/:id/privacy', readers, async (req, res) => {
    const format = req.query.format ?? 'json';
    if (format !== 'json' && format !== 'csv') throw new FedmartError('BAD_REQUEST', `query "format" must be json or csv, got "${String(format)}"`);
    const report = await privacyReport(store, param(req, 'id'));
    if (format === 'csv') {
      res.set('content-type', 'text/csv; charset=utf-8');
      res.set('content-disposition', `attachment; filename="privacy-ledger-${report.federationId}.csv"`);
      res.send(privacyReportCsv(report));
      return;
    }
    res.json(report);
  });

  // A partner may read its own budget (and only its own, in its own federation).
  router.get('/federations/:id/privacy/partners/:partnerId', auth('compliance', 'operator', 'partner'), async (req, res) => {
    const partnerId = param(req, 'partnerId');
    const p = req.principal!;
    if (p.role === 'partner' && (p.fed !== param(req, 'id') || p.sub !== partnerId)) throw new FedmartError('FORBIDDEN', 'a partner token can only read its own privacy budget, in its own federation');
    const report = await privacyReport(store, param(req, 'id'));
    const totals = report.totals.filter((x) => x.partnerId === partnerId);
    if (totals.length === 0 && !report.history.some((h) => h.partnerId === partnerId)) {
      throw new FedmartError('NOT_FOUND', `partner "${partnerId}" has no budget in federation ${report.federationId}; list partners with GET /api/v1/federations/${report.federationId}/enrollments`);
    }
    res.json({ federationId: report.federationId, partnerId, totals, caps: report.caps.filter((c) => c.partnerId === partnerId), history: report.history.filter((h) => h.partnerId === partnerId) });
  });

  router.get('/federations/:id/privacy/refused', readers, async (req, res) => {
    const report = await privacyReport(store, param(req, 'id'));
    const rounds = (await store.listRounds(report.federationId)).filter((r) => report.refused.some((x) => x.roundId === r.id)).map((r) => ({ roundId: r.id, round: r.number, phase: r.phase, reason: r.reason, at: new Date(r.updatedAt).toISOString() }));
    res.json({ federationId: report.federationId, rounds, entries: report.refused });
  });

  router.get('/federations/:id/privacy/caps', readers, async (req, res) => {
    const id = param(req, 'id');
    await store.getFederation(id);
    res.json({ federationId: id, caps: await listPrivacyCaps(store, id), history: (await privacyCapHistory(store, id)).map((c) => ({ ...c, createdAt: new Date(c.createdAt).toISOString() })) });
  });

  router.put('/federations/:id/privacy/caps', auth('compliance'), async (req, res) => {
    const id = param(req, 'id');
    const parsed = PrivacyCapBodySchema.safeParse(req.body ?? {});
    if (!parsed.success) throw new FedmartError('BAD_REQUEST', `invalid request body: ${formatIssues(parsed.error.issues)}; send { "level": "record"|"partner", "epsilon": number|null, "partnerId"?: string }`);
    const caps = await setPrivacyCap(store, { federationId: id, partnerId: parsed.data.partnerId ?? null, level: parsed.data.level, epsilon: parsed.data.epsilon, setBy: req.principal!.sub });
    res.json({ federationId: id, caps });
  });

  return router;
}
