/**
 * A partner's invitation and consent in the partner portal (issue 14), under `/api/v1`:
 *
 * - GET  /federations/:id/consent  the terms a partner token is invited to (the same
 *   `federationTerms` a node receives in its welcome, and their `federationTermsHash`, the hash the
 *   node pins), the federation's purpose and release policy, and what this enrollment consented to.
 * - POST /federations/:id/consent  `{ termsHash, purposes }`: consent to those terms for those
 *   purposes. Refused when the hash is not that of the current terms (they changed since the
 *   partner read them) or when the purposes do not cover the federation's purpose. Recorded exactly
 *   as a node's hello records it (`consent.ts`): purposes and terms hash on the enrollment, and a
 *   `partner.consent` audit entry by the partner.
 *
 * Partner tokens only, and only for their own federation (operators see consents in the enrollments).
 */
import express, { type Request, type RequestHandler } from 'express';
import { ConsentBodySchema, PURPOSES, purposeRefusal } from '@fedmart/shared/consent';
import { FedmartError } from '@fedmart/shared/errors';
import { federationTermsHash, type FederationTerms as HashedTerms } from '@fedmart/shared/federation-terms';
import { federationTerms, formatIssues, type Role } from '@fedmart/shared/protocol';
import type { ConsentView } from '@fedmart/shared/api-views';
import type { AsyncStore } from './db/store-api.ts';
import type { EnrollmentRow } from './db/schema.ts';
import { recordConsent } from './consent.ts';

export interface ConsentRouteDeps {
  store: AsyncStore;
  auth: (...roles: Role[]) => RequestHandler;
}

/** The hash a node pins: of the terms exactly as its welcome carries them (`socket.ts`, `client-node/src/agent.ts`). */
const termsHashOf = (terms: ReturnType<typeof federationTerms>): string => federationTermsHash(terms as unknown as HashedTerms);

/** The caller's own enrollment in federation `id` (partner tokens only). */
async function ownEnrollment(store: AsyncStore, req: Request, id: string): Promise<EnrollmentRow> {
  const p = req.principal!;
  if (p.fed !== id) throw new FedmartError('FORBIDDEN', 'a partner token can only read and consent to its own federation');
  const e = p.jti ? await store.findEnrollmentByToken(p.jti) : undefined;
  if (!e || e.federationId !== id) throw new FedmartError('NOT_FOUND', `no enrollment of this token in federation ${id}; ask the operator for a new enrollment link`);
  return e;
}

/**
 * Build the consent router (mount it on the `/api/v1` router).
 * @returns an express router
 */
export function createConsentRouter(deps: ConsentRouteDeps): express.Router {
  const { store, auth } = deps;
  const router = express.Router();

  const view = async (id: string, e: EnrollmentRow): Promise<ConsentView> => {
    const f = await store.getFederation(id);
    const config = store.federationConfig(f);
    const terms = federationTerms(config);
    const termsHash = termsHashOf(terms);
    return {
      federationId: f.id, federationName: f.name, config, terms, termsHash,
      purpose: config.purpose ?? null, purposes: [...PURPOSES],
      enrollment: {
        id: e.id, status: e.status,
        consentedAt: e.consentedAt === null ? null : new Date(e.consentedAt).toISOString(),
        termsHash: e.termsHash, purposes: e.purposes === null ? null : (JSON.parse(e.purposes) as string[]),
        current: e.termsHash === termsHash,
      },
    };
  };

  router.get('/federations/:id/consent', auth('partner'), async (req, res) => {
    const id = String(req.params.id);
    res.json(await view(id, await ownEnrollment(store, req, id)));
  });

  router.post('/federations/:id/consent', auth('partner'), async (req, res) => {
    const id = String(req.params.id);
    const e = await ownEnrollment(store, req, id);
    const parsed = ConsentBodySchema.safeParse(req.body ?? {});
    if (!parsed.success) throw new FedmartError('BAD_REQUEST', `invalid consent: ${formatIssues(parsed.error.issues)}`);
    const { termsHash, purposes } = parsed.data;
    const config = store.federationConfig(await store.getFederation(id));
    const current = termsHashOf(federationTerms(config));
    if (termsHash !== current) throw new FedmartError('CONFLICT', `the federation's terms changed since they were shown (hash ${termsHash.slice(0, 16)}…, now ${current.slice(0, 16)}…); reload them, read them again and consent to the new ones`);
    const refusal = purposeRefusal(purposes, config.purpose ?? null);
    if (refusal) throw new FedmartError('CONFLICT', `consent not recorded: ${refusal}; consent to a purpose list that includes "${config.purpose ?? '(none)'}", or do not join this federation`);
    await recordConsent(store, { enrollmentId: e.id, partnerId: e.partnerId, federationId: id, purposes, purpose: config.purpose, termsHash, recordTerms: true });
    res.json(await view(id, (await store.findEnrollmentByToken(e.tokenId))!));
  });

  return router;
}
