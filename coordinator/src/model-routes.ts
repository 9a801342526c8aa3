/**
 * Model release API (under `/api/v1`, issue 13 item 3; logic in `model-release.ts`).
 *
 * - GET  /federations/:id/models/published            the published version (what scenarios read)
 * - POST /federations/:id/models/:version/publish     operator: publish, or ask to (requiresApproval)
 * - POST /federations/:id/models/:version/approve     compliance: approve (publishes when already asked)
 * - POST /federations/:id/models/:version/retire      operator
 * - POST /federations/:id/models/rollback { to? }     operator: re-publish an earlier published version
 */
import express, { type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import { FedmartError } from '@fedmart/shared/errors';
import { formatIssues, type Role } from '@fedmart/shared/protocol';
import type { AsyncStore } from './db/store-api.ts';
import { approveModel, publishModel, publishedModel, retireModel, rollbackModel } from './model-release.ts';

/** What the router needs from the HTTP app. */
export interface ModelRouteDeps {
  store: AsyncStore;
  auth: (...roles: Role[]) => RequestHandler;
}

const RollbackBodySchema = z.object({ to: z.number().int().min(0).optional() }).strict();

function ids(req: Request): { fed: string; version: number } {
  const fed = String(req.params.id ?? '');
  const version = Number(req.params.version);
  if (!Number.isInteger(version) || version < 0) throw new FedmartError('BAD_REQUEST', `model version must be a non-negative integer, got "${String(req.params.version)}"`);
  return { fed, version };
}

/**
 * Build the model release router (mount it on `/api/v1` before the generic `/models/:version` routes).
 * @returns an express router
 */
export function createModelRouter(deps: ModelRouteDeps): express.Router {
  const { store, auth } = deps;
  const router = express.Router();

  router.get('/federations/:id/models/published', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const p = req.principal!;
    if (p.role === 'partner' && p.fed !== req.params.id) throw new FedmartError('FORBIDDEN', 'a partner token can only read its own federation');
    const m = await publishedModel(store, String(req.params.id));
    res.json({ federationId: m.federationId, version: m.version, sha256: m.sha256, releaseStatus: m.releaseStatus, publishedAt: m.publishedAt === null ? null : new Date(m.publishedAt).toISOString() });
  });

  router.post('/federations/:id/models/rollback', auth('operator'), async (req, res) => {
    const body = RollbackBodySchema.safeParse(req.body ?? {});
    if (!body.success) throw new FedmartError('BAD_REQUEST', `invalid request body: ${formatIssues(body.error.issues)}; send { "to"?: version }`);
    res.json(await rollbackModel(store, String(req.params.id), body.data.to, req.principal!));
  });

  router.post('/federations/:id/models/:version/publish', auth('operator'), async (req, res) => {
    const { fed, version } = ids(req);
    const step = await publishModel(store, fed, version, req.principal!);
    res.status(step.awaiting ? 202 : 200).json(step);
  });

  router.post('/federations/:id/models/:version/approve', auth('compliance'), async (req, res) => {
    const { fed, version } = ids(req);
    res.json(await approveModel(store, fed, version, req.principal!));
  });

  router.post('/federations/:id/models/:version/retire', auth('operator'), async (req, res) => {
    const { fed, version } = ids(req);
    res.json(await retireModel(store, fed, version, req.principal!));
  });

  return router;
}
