/**
 * Recording a partner's consent (issues 13 and 14), the one place both ways of consenting go
 * through: a partner node's hello (`socket.ts`, the CLI's `fedmart partner`) and the portal's
 * consent (`POST /api/v1/federations/:id/consent`, `consent-routes.ts`). The purposes are stored on
 * the enrollment and every change is a `partner.consent` audit entry by the partner, about its
 * enrollment, with the federation, the purposes, the purposes recorded before and the hash of the
 * terms consented to (`federationTermsHash`, the hash the partner's node pins); a consent that does
 * not cover the federation's purpose is audited as `partner.purpose-refused` (the partner's agent
 * refuses to take part on its own, `@fedmart/shared/consent`).
 */
import { purposeRefusal, type Purpose } from '@fedmart/shared/consent';
import { asAsyncStore, type AnyStore } from './privacy.ts';
import type { AuditEntryInput } from './db/store-api.ts';

export interface ConsentRecord {
  enrollmentId: string;
  partnerId: string;
  federationId: string;
  /** What the partner stated (undefined: a hello that states none; nothing is recorded). */
  purposes: Purpose[] | undefined;
  /** The federation's declared purpose. */
  purpose: Purpose | undefined;
  /** Hash of the terms the partner consents to. */
  termsHash: string;
  /** Record `termsHash` and the time on the enrollment (the portal's consent; a node's hello binds it with its key). A changed hash is a new consent. */
  recordTerms?: boolean;
}

/**
 * Store the purposes (and, from the portal, the terms hash) and audit the consent when it changed, in one store
 * transaction: a crash or an audit failure leaves neither a consent without its audit entry nor an entry without it.
 * @param anyStore - the async store (a sync SQLite `Store` is wrapped, for callers not yet on the async API)
 * @returns true when a `partner.consent` entry was appended
 */
export async function recordConsent(anyStore: AnyStore, c: ConsentRecord): Promise<boolean> {
  if (c.purposes === undefined) return false;
  const purposes = c.purposes;
  let changed = false;
  await asAsyncStore(anyStore).recordConsent(c.enrollmentId, { purposes, ...(c.recordTerms ? { termsHash: c.termsHash } : {}) }, (previous) => {
    changed = previous.purposes === null || previous.purposes.join(',') !== purposes.join(',') || (c.recordTerms === true && previous.termsHash !== c.termsHash);
    const entries: AuditEntryInput[] = [];
    if (changed) entries.push({ actor: c.partnerId, action: 'partner.consent', subject: c.enrollmentId, data: { federationId: c.federationId, purposes, previous: previous.purposes, termsHash: c.termsHash } });
    if (purposeRefusal(purposes, c.purpose ?? null)) entries.push({ actor: c.partnerId, action: 'partner.purpose-refused', subject: c.enrollmentId, data: { federationId: c.federationId, purpose: c.purpose ?? null, purposes } });
    return entries;
  });
  return changed;
}
