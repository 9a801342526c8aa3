/**
 * Federation life cycle (issue 13, item 2): validation at creation, archive
 * and delete, each with what is kept and what is deleted stated in the
 * response (and the README).
 *
 * - POST   /federations/:id/archive   operator: no more rounds or enrollments; tokens revoked; everything kept
 * - DELETE /federations/:id           operator: archive, then delete the model weights and per-partner data
 * - (guard) POST /federations/:id/rounds|enrollments refuse an archived or deleted federation
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { eq } from 'drizzle-orm';
import { createHash } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { MAX_ATTACHMENT_BYTES, type FederationConfig, type Role } from '@fedmart/shared/protocol';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { DatasetSchemaSchema } from '@fedmart/shared/data/schema';
import { featureDim } from '@fedmart/shared/data/encode';
import type { Store } from './db/store.ts';
import type { Orchestrator } from './orchestrator.ts';
import * as t from './db/schema.ts';

/** What archiving keeps (everything) and deleting removes. */
export const RETENTION = {
  archived: {
    kept: ['audit log', 'privacy ledger and caps', 'federation config', 'rounds and their aggregate metrics', 'model versions (weights and lineage)', 'enrollments (revoked)'],
    deleted: [] as string[],
  },
  deleted: {
    kept: ['audit log (append-only, always kept)', 'privacy ledger and caps (the record of ε spent)', 'federation config', 'rounds: phase, reason and aggregate metrics', 'model version lineage and the SHA-256 of the deleted weights'],
    deleted: ['model weights of every version', 'per-partner round records (example counts, local metrics)', 'partner identity keys, terms hashes and stated purposes on the enrollments (tokens revoked)'],
  },
} as const;

/**
 * Refuse, with the reason, a federation config that cannot work, before anything is stored (zod already refuses
 * incompatible protection settings, e.g. secure aggregation with CKKS, with its own reason).
 * @throws FedmartError UNPROCESSABLE naming the problem and the fix
 */
export function validateFederationConfig(config: FederationConfig): void {
  const params = jointParameterCount(config.model);
  // Plain updates are float32, secure-aggregation masked inputs one 32-bit ring element per parameter.
  const updateBytes = params * 4 + (config.secureAggregation ? 4 : 0);
  if (updateBytes > MAX_ATTACHMENT_BYTES) {
    throw new FedmartError('UNPROCESSABLE', `the model has ${params} parameters: each partner's update is ${(updateBytes / 2 ** 20).toFixed(1)} MiB, over the ${(MAX_ATTACHMENT_BYTES / 2 ** 20).toFixed(1)} MiB a message may carry (the transport's maxHttpBufferSize); every round would time out — shrink the hidden layers or embedding tables`);
  }
  if (config.dataSchema !== undefined && config.model.kind === 'mlp') {
    const schema = DatasetSchemaSchema.safeParse(config.dataSchema);
    if (!schema.success) throw new FedmartError('UNPROCESSABLE', 'the data schema is not a fedmart data schema; infer it with fedmart schema infer');
    const d = featureDim(schema.data);
    if (d !== config.model.inputDim) throw new FedmartError('UNPROCESSABLE', `the model takes ${config.model.inputDim} inputs but the data schema encodes ${d} columns; set model.inputDim to ${d} (fedmart federation create computes it from the schema)`);
  }
}

/** What the router needs from the HTTP app. */
export interface FederationRouteDeps {
  store: Store;
  orchestrator: Orchestrator;
  auth: (...roles: Role[]) => RequestHandler;
}

/**
 * Build the life-cycle router (mount it on `/api/v1` before the federation routes it guards).
 * @returns an express router
 */
export function createFederationRouter(deps: FederationRouteDeps): express.Router {
  const { store, orchestrator, auth } = deps;
  const router = express.Router();
  const id = (req: Request) => String(req.params.id ?? '');

  const active = (req: Request, _res: Response, next: NextFunction) => {
    const f = store.getFederation(id(req));
    if (f.status !== 'active') return next(new FedmartError('CONFLICT', `federation ${f.id} is ${f.status}: it runs no more rounds and takes no enrollments; create a new federation`));
    next();
  };
  router.post('/federations/:id/rounds', active);
  router.post('/federations/:id/enrollments', active);
  router.post('/federations/:id/vertical/rounds', active);

  const end = (fedId: string, status: 'archived' | 'deleted') => {
    for (const c of orchestrator.connectedClients(fedId)) c.disconnect(`federation ${fedId} was ${status} by the operator`);
    for (const e of store.listEnrollments(fedId)) store.revokeEnrollment(e.id);
    store.db.update(t.federations).set({ status, endedAt: Date.now() }).where(eq(t.federations.id, fedId)).run();
  };

  router.post('/federations/:id/archive', auth('operator'), (req, res) => {
    const f = store.getFederation(id(req));
    if (f.status !== 'active') throw new FedmartError('CONFLICT', `federation ${f.id} is already ${f.status}`);
    end(f.id, 'archived');
    store.audit(req.principal!.sub, 'federation.archived', f.id, { retention: RETENTION.archived });
    res.json({ federationId: f.id, status: 'archived', retention: RETENTION.archived });
  });

  router.delete('/federations/:id', auth('operator'), (req, res) => {
    const f = store.getFederation(id(req));
    if (f.status === 'deleted') throw new FedmartError('CONFLICT', `federation ${f.id} is already deleted`);
    const empty = Buffer.alloc(0);
    store.db.$client.transaction(() => {
      end(f.id, 'deleted');
      store.db.update(t.modelVersions).set({ weights: empty, sha256: createHash('sha256').update(empty).digest('hex'), paramCount: 0, releaseStatus: 'retired' }).where(eq(t.modelVersions.federationId, f.id)).run();
      const rounds = store.listRounds(f.id).map((r) => r.id);
      for (const r of rounds) store.db.update(t.roundParticipants).set({ numExamples: null, trainMetrics: null, evalMetrics: null, reason: null }).where(eq(t.roundParticipants.roundId, r)).run();
      store.db.update(t.enrollments).set({ identityKey: null, termsHash: null, purposes: null, numExamples: null }).where(eq(t.enrollments.federationId, f.id)).run();
      store.audit(req.principal!.sub, 'federation.deleted', f.id, { retention: RETENTION.deleted });
    }).immediate();
    res.json({ federationId: f.id, status: 'deleted', retention: RETENTION.deleted });
  });

  return router;
}
