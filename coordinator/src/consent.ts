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
  /** The terms hash changed with this consent (the portal's first consent, or terms consented anew). */
  termsChanged?: boolean;
}

/**
 * Store the purposes and audit the consent when it changed (each write awaited in order).
 * @param anyStore - the async store (a sync SQLite `Store` is wrapped, for callers not yet on the async API)
 * @returns true when a `partner.consent` entry was appended
 */
export async function recordConsent(anyStore: AnyStore, c: ConsentRecord): Promise<boolean> {
  if (c.purposes === undefined) return false;
  const store = asAsyncStore(anyStore);
  const previous = await store.setEnrollmentPurposes(c.enrollmentId, c.purposes);
  const changed = previous === null || previous.join(',') !== c.purposes.join(',') || c.termsChanged === true;
  if (changed) await store.audit(c.partnerId, 'partner.consent', c.enrollmentId, { federationId: c.federationId, purposes: c.purposes, previous, termsHash: c.termsHash });
  if (purposeRefusal(c.purposes, c.purpose ?? null)) await store.audit(c.partnerId, 'partner.purpose-refused', c.enrollmentId, { federationId: c.federationId, purpose: c.purpose ?? null, purposes: c.purposes });
  return changed;
}
