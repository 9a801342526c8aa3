/**
 * Consent by purpose (issue 13, item 5) and the model-release policy
 * (item 3): the closed lists and the pure checks both sides run.
 *
 * A partner states, at enrollment and in every hello, which purposes its data
 * may serve; a federation declares the one purpose its joint model serves.
 * The partner's agent refuses a federation whose purpose its consent does not
 * cover (it does not rely on the coordinator to check), and the coordinator
 * records the consent and its changes in the audit log.
 */
import { z } from 'zod';

/** What a federation's joint model may be used for. */
export const PURPOSES = ['purchase-prediction', 'recommendation', 'pricing', 'service', 'content', 'segments'] as const;
export type Purpose = (typeof PURPOSES)[number];
export const PurposeSchema = z.enum(PURPOSES);
/** A partner's consent: the purposes its data may serve (at least one, no duplicates). */
export const PurposesSchema = z.array(PurposeSchema).min(1).max(PURPOSES.length).refine((xs) => new Set(xs).size === xs.length, 'purposes must not repeat');

/** How a federation's model versions are released (absent: every committed version is published at once, as before). */
export const ReleasePolicySchema = z.object({
  /** Publishing needs a compliance officer's approval of an operator's request (two different people). */
  requiresApproval: z.boolean().default(false),
  /** Publish every committed version automatically (only without requiresApproval). */
  autoPublish: z.boolean().default(false),
}).strict();
export type ReleasePolicy = z.infer<typeof ReleasePolicySchema>;

/** Life cycle of a model version. */
export const RELEASE_STATUSES = ['candidate', 'approved', 'published', 'retired'] as const;
export type ReleaseStatus = (typeof RELEASE_STATUSES)[number];

/**
 * Why a partner's consent does not cover a federation's purpose.
 * @param consent - the purposes the partner consented to (null: it stated none, which covers every purpose)
 * @param purpose - the federation's declared purpose (null: it declared none)
 * @returns null when covered, otherwise the reason
 */
export function purposeRefusal(consent: readonly Purpose[] | null, purpose: Purpose | null | undefined): string | null {
  if (consent === null) return null;
  if (!purpose) return `the federation declares no purpose, and this partner's data may only serve ${consent.join(', ')}; the operator must set the federation's purpose`;
  if (!consent.includes(purpose)) return `the federation's purpose is "${purpose}", which this partner's consent (${consent.join(', ')}) does not cover`;
  return null;
}

/**
 * `POST /api/v1/federations/:id/consent` (issue 14): a partner consents, in the portal, to the terms it
 * was shown. `termsHash` is the `federationTermsHash` of those terms (what its node pins); the
 * coordinator refuses it when the terms changed since.
 */
export const ConsentBodySchema = z.object({
  termsHash: z.string().regex(/^[0-9a-f]{64}$/, 'the terms hash shown with the terms: 64 lowercase hex digits'),
  purposes: PurposesSchema,
}).strict();
export type ConsentBody = z.infer<typeof ConsentBodySchema>;
