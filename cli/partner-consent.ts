/**
 * `fedmart partner consent`: a partner reads its invitation (the federation's terms in words, their hash
 * and the purposes) and consents to them for stated purposes, from the command line, through the same
 * API as the partner portal (`GET`/`POST /api/v1/federations/:id/consent`, coordinator/src/consent-routes.ts).
 * The coordinator records it exactly as a node's hello (terms hash, purposes and time on the enrollment,
 * one `partner.consent` audit entry), so the node started later finds it and adds nothing.
 */
import type { ConsentView } from '@fedmart/shared/api-views';
import { PURPOSES, PurposesSchema } from '@fedmart/shared/consent';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { formatIssues } from '@fedmart/shared/protocol';
import { describeFederationTerms } from '@fedmart/shared/terms-in-words';
import { parseFlags, requireString } from './args.ts';
import { ApiClient, peekClaims } from './api-client.ts';

const CMD = 'partner consent';

export const PARTNER_CONSENT_USAGE = `fedmart partner consent --coordinator URL --token TOKEN [--federation ID] [--show]
                        [--purposes LIST [--terms-hash HASH]] [--json]

Reads the federation's terms (in words, with their hash) and, with --purposes, consents to them.

  --coordinator URL   coordinator base URL, e.g. http://127.0.0.1:7300
  --token TOKEN       your enrollment token (or env FEDMART_TOKEN)
  --federation ID     the federation (default: the one the token was issued for)
  --show              print the invitation and what you consented to; change nothing (the default
                      without --purposes)
  --purposes LIST     consent for these purposes, comma-separated (${PURPOSES.join(', ')}); they must
                      include the federation's purpose
  --terms-hash HASH   consent only if the current terms still have this hash (the one --show printed);
                      without it, the terms are fetched, printed to stderr, and consented to as printed
  --json              print the consent view as one JSON object

Examples:
  fedmart partner consent --coordinator http://127.0.0.1:7300 --token $TOKEN --show
  fedmart partner consent --coordinator http://127.0.0.1:7300 --token $TOKEN --purposes purchase-prediction --terms-hash 3f2a…`;

/** The invitation as text: terms in words, hash, purpose, and the enrollment's consent. */
export function formatConsentView(v: ConsentView): string {
  const terms = describeFederationTerms(v.config).map((t) => `  ${`${t.label}:`.padEnd(24)}${t.text}`);
  const e = v.enrollment;
  const state = e.consentedAt === null || e.termsHash === null
    ? 'not yet consented'
    : `consented ${e.consentedAt} for ${(e.purposes ?? []).join(', ') || '(no purposes stated)'}${e.current ? ' (to these terms)' : ` to other terms (hash ${e.termsHash.slice(0, 16)}…): the terms changed since, consent again`}`;
  return [
    `federation ${v.federationName} (${v.federationId}): terms`,
    ...terms,
    `terms hash: ${v.termsHash}`,
    `federation purpose: ${v.purpose ?? 'not stated'}; purposes you may state: ${v.purposes.join(', ')}`,
    `your enrollment ${e.id} (${e.status}): ${state}`,
  ].join('\n');
}

/**
 * Run `fedmart partner consent`.
 * @param argv - arguments after `partner consent`
 * @returns the exit code
 */
export async function partnerConsentCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(CMD, argv, {
    coordinator: { type: 'string' }, token: { type: 'string' }, federation: { type: 'string' }, show: { type: 'boolean' },
    purposes: { type: 'string' }, 'terms-hash': { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(PARTNER_CONSENT_USAGE + '\n');
    return 0;
  }
  const url = requireString(CMD, values, 'coordinator', 'the coordinator URL, e.g. http://127.0.0.1:7300');
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FedmartError('CONFIG_ERROR', `${CMD}: --coordinator must be an http(s) URL such as http://127.0.0.1:7300, got "${url}"`);
  const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN;
  if (!token) throw new FedmartError('CONFIG_ERROR', `${CMD}: missing --token (the enrollment token the operator issued; or set FEDMART_TOKEN)`);
  const claims = peekClaims(token);
  const federation = (values.federation as string | undefined) ?? (typeof claims.fed === 'string' ? claims.fed : undefined);
  if (!federation) throw new FedmartError('CONFIG_ERROR', `${CMD}: missing --federation (this token names none; is it an enrollment token?)`);
  const wanted = values['terms-hash'] as string | undefined;
  if (wanted !== undefined && !/^[0-9a-f]{64}$/.test(wanted)) throw new FedmartError('CONFIG_ERROR', `${CMD}: --terms-hash must be the 64-hex-digit hash "--show" printed, got "${wanted}"`);
  let purposes: string[] | undefined;
  if (values.purposes !== undefined) {
    const list = String(values.purposes).split(',').map((s) => s.trim()).filter(Boolean);
    const parsed = PurposesSchema.safeParse(list);
    if (!parsed.success || list.length === 0) throw new FedmartError('CONFIG_ERROR', `${CMD}: --purposes must be a comma-separated list of ${PURPOSES.join(', ')}, got "${String(values.purposes)}"${parsed.success ? '' : ` (${formatIssues(parsed.error.issues)})`}`);
    purposes = parsed.data;
  } else if (wanted !== undefined) {
    throw new FedmartError('CONFIG_ERROR', `${CMD}: --terms-hash names the terms you consent to; give --purposes too (what your data may serve)`);
  }

  const api = new ApiClient(url, token);
  const path = `/api/v1/federations/${encodeURIComponent(federation)}/consent`;
  let view = await api.get<ConsentView>(path);
  if (purposes !== undefined) {
    if (wanted === undefined) process.stderr.write(`${formatConsentView(view)}\nconsenting to these terms (hash ${view.termsHash}) for ${purposes.join(', ')}\n`);
    try {
      view = await api.post<ConsentView>(path, { termsHash: wanted ?? view.termsHash, purposes });
    } catch (err) {
      const e = toFedmartError(err);
      if (e.code !== 'CONFLICT') throw e;
      const stale = /terms changed/.test(e.message);
      throw new FedmartError('CONFLICT', `${CMD}: ${e.message}${stale ? `; run "fedmart ${CMD} --show" to read the new terms, then consent with --terms-hash <the new hash>` : ''}`, { cause: err });
    }
  }
  process.stdout.write(values.json ? `${JSON.stringify(view)}\n` : `${formatConsentView(view)}\n${purposes !== undefined ? 'consent recorded\n' : ''}`);
  return 0;
}
