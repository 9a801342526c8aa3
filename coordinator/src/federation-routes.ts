/**
 * Federation life cycle (issue 13, item 2): validation at creation, archive
 * and delete, each with what is kept and what is deleted stated in the
 * response (and the README).
 *
 * - POST   /federations/:id/archive   operator: no more rounds or enrollments; tokens revoked; everything kept
 * - DELETE /federations/:id           operator: archive, then delete the model weights and per-partner data
 * - (guard) POST /federations/:id/rounds|enrollments refuse an archived or deleted federation
 */
import express, { type Request, type RequestHandler } from 'express';
import { FedmartError } from '@fedmart/shared/errors';
import { MAX_ATTACHMENT_BYTES, type FederationConfig, type Role } from '@fedmart/shared/protocol';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import { DatasetSchemaSchema } from '@fedmart/shared/data/schema';
import { featureDim } from '@fedmart/shared/data/encode';
import type { AsyncStore } from './db/store-api.ts';
import type { Orchestrator } from './orchestrator.ts';

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
  store: AsyncStore;
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

  const active: RequestHandler = async (req, _res, next) => {
    const f = await store.getFederation(id(req));
    if (f.status !== 'active') throw new FedmartError('CONFLICT', `federation ${f.id} is ${f.status}: it runs no more rounds and takes no enrollments; create a new federation`);
    next();
  };
  router.post('/federations/:id/rounds', active);
  router.post('/federations/:id/enrollments', active);
  router.post('/federations/:id/vertical/rounds', active);

  /** One transaction (`AsyncStore.endFederation`): enrollments revoked, status, erasure on delete, the audit entry; then the live partners are dropped. */
  const end = async (req: Request, status: 'archived' | 'deleted') => {
    const f = await store.getFederation(id(req));
    const retention = RETENTION[status];
    await store.endFederation(f.id, status, { actor: req.principal!.sub, action: `federation.${status}`, subject: f.id, data: { retention } });
    for (const c of orchestrator.connectedClients(f.id)) c.disconnect(`federation ${f.id} was ${status} by the operator`);
    return { federationId: f.id, status, retention };
  };

  router.post('/federations/:id/archive', auth('operator'), async (req, res) => {
    res.json(await end(req, 'archived'));
  });

  router.delete('/federations/:id', auth('operator'), async (req, res) => {
    res.json(await end(req, 'deleted'));
  });

  return router;
}
