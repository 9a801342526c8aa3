/**
 * The partner's own side (issue 14): its invitation and consent to the federation's terms, and its
 * audit entries, each with a "Verify" that checks the entry's RFC 6962 inclusion proof against the
 * coordinator's signed tree head here in the browser.
 */
import { useState } from 'preact/hooks';
import { checkEntryIncluded, type AuditEntry, type SignedTreeHead } from '@fedmart/shared/audit-log';
import type { ConsentView, FederationAuditView } from '@fedmart/shared/api-views';
import type { Api } from './api.ts';
import type { LiveEvent } from './events.ts';
import { fmtTime } from './format.ts';
import { useLoad } from './hooks.ts';
import { checkHeadAgainstSeen } from './operations.tsx';
import { Terms } from './terms.tsx';
import { ActionButton, ErrorBox, Section } from './ui.tsx';

/** What each purpose means, in words (the closed list of `@fedmart/shared/consent`). */
const PURPOSE_WORDS: Record<string, string> = {
  'purchase-prediction': 'predict whether a customer buys',
  recommendation: 'recommend products to customers',
  pricing: 'set or adjust prices',
  service: 'customer service (e.g. routing or answering requests)',
  content: 'rank or classify content (reviews, text)',
  segments: 'group customers into segments',
};

/** The invitation: the terms in words, their hash, and consent by purpose (recorded like a node's hello). */
export function Invitation(props: { api: Api; id: string; consent: ConsentView; onConsented: (c: ConsentView) => void }) {
  const { api, id, consent: c } = props;
  const [chosen, setChosen] = useState<string[]>(c.enrollment.purposes ?? []);
  const consented = c.enrollment.termsHash !== null;
  const dp = c.config.dp;
  return (
    <Section title={consented && c.enrollment.current ? 'Your consent' : `Invitation: ${c.federationName}`} id="consent">
      {consented && c.enrollment.current ? (
        <p class="ok" data-testid="consent-status">You consented on {fmtTime(c.enrollment.consentedAt)} to these terms (hash <code>{c.termsHash.slice(0, 16)}…</code>) for {(c.enrollment.purposes ?? []).join(', ') || 'every purpose'}. Your node refuses any round that contradicts them.</p>
      ) : consented ? (
        <p class="error" role="alert" data-testid="consent-status">The terms changed since you consented (you consented to <code>{c.enrollment.termsHash!.slice(0, 16)}…</code>, they are now <code>{c.termsHash.slice(0, 16)}…</code>). Your node will refuse to take part until you consent again.</p>
      ) : (
        <p data-testid="consent-status">You are invited to join the federation <strong>{c.federationName}</strong>. Read the terms; nothing of your data is used until you consent and start your node (<code>fedmart partner --token …</code>).</p>
      )}
      <Terms config={c.config} />
      <h3>What differential privacy means here</h3>
      <p data-testid="dp-words">{dp
        ? `${dp.level === 'record' ? 'Each of your records (customers or orders)' : 'Your whole contribution'} is protected: what the released model reveals about it is bounded by ε, spent round by round and shown below with the cap a compliance officer sets. Noise σ = ${dp.noiseMultiplier} × the clip norm ${dp.clip}; δ = ${dp.delta} is the chance the bound fails.`
        : 'This federation has no differential privacy: the released model carries no formal bound on what it reveals about your data.'}</p>
      <p class="muted">Terms hash (SHA-256 of the strategy, protection, DP policy and minimum participants; your node pins the same hash): <code data-testid="terms-hash">{c.termsHash}</code></p>
      <fieldset>
        <legend>Your data may serve</legend>
        {c.purposes.map((p) => (
          <label class="check" key={p}>
            <input type="checkbox" checked={chosen.includes(p)} data-testid={`purpose-${p}`} onChange={(e) => {
              const on = (e.currentTarget as HTMLInputElement).checked;
              setChosen((xs) => (on ? [...xs.filter((x) => x !== p), p] : xs.filter((x) => x !== p)));
            }} />
            {p}: {PURPOSE_WORDS[p] ?? p}{p === c.purpose ? ' (this federation\'s purpose)' : ''}
          </label>
        ))}
      </fieldset>
      <ActionButton label={consented ? 'Update my consent' : 'Consent to these terms'} kind="primary" testId="consent" run={async () => {
        if (chosen.length === 0) throw new Error('tick at least one purpose your data may serve');
        props.onConsented(await api.send<ConsentView>('POST', `/federations/${id}/consent`, { termsHash: c.termsHash, purposes: [...chosen].sort((a, b) => c.purposes.indexOf(a) - c.purposes.indexOf(b)) }));
      }} />
    </Section>
  );
}

type Verdict = { ok: true; text: string } | { ok: false; text: string };

/** A partner's audit entries; "Verify" checks one entry's inclusion proof against a signed tree head. */
export function PartnerAudit(props: { api: Api; id: string }) {
  const { api, id } = props;
  const list = useLoad(() => api.get<FederationAuditView>(`/federations/${id}/audit/entries`), [id], 10_000, (e: LiveEvent) => e.federationId === id && ['round-end', 'ledger'].includes(e.type));
  const [verdicts, setVerdicts] = useState<Record<number, Verdict>>({});
  const verify = (e: AuditEntry) => async () => {
    const { head } = await api.get<{ head: SignedTreeHead }>('/audit/sth');
    const seen = await checkHeadAgainstSeen(api, head);
    const p = await api.get<{ entry: AuditEntry; leafIndex: number; treeSize: number; proof: string[] }>(`/audit/entries/${e.seq}/proof?size=${head.size}`);
    // The entry the proof is for must be the one listed, field by field (the leaf hashes them all).
    const same = (['seq', 'at', 'actor', 'action', 'subject', 'data'] as const).every((k) => p.entry[k] === e[k]);
    const why = seen ?? (same ? checkEntryIncluded(e, p, head) : `the coordinator's proof is for a different entry ${p.entry.seq} than the one listed`);
    setVerdicts((v) => ({ ...v, [e.seq]: why === null
      ? { ok: true, text: `included: leaf ${p.leafIndex} of the ${head.size.toLocaleString()}-entry log whose head (root ${head.root.slice(0, 12)}…) the coordinator's log key ${head.publicKey.slice(0, 12)}… signed at ${fmtTime(new Date(head.timestamp).toISOString())}` }
      : { ok: false, text: `not verified: ${why}` } }));
  };
  return (
    <Section title="Your audit entries" id="partner-audit">
      <ErrorBox error={list.error} />
      {list.data ? <p class="muted">What you see: {list.data.scope}. "Verify" fetches the entry's RFC 6962 inclusion proof and the newest signed tree head and checks both here, in your browser.</p> : null}
      {list.data && list.data.entries.length === 0 ? <p class="muted">No entries yet.</p> : null}
      {list.data && list.data.entries.length > 0 ? (
        <table data-testid="partner-audit-table">
          <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Details</th><th scope="col">Proof</th></tr></thead>
          <tbody>{[...list.data.entries].reverse().map((e) => (
            <tr key={e.seq} data-testid="partner-audit-row" data-action={e.action}>
              <td>{e.seq}</td>
              <td>{fmtTime(new Date(e.at).toISOString())}</td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td><code>{e.data ?? ''}</code></td>
              <td>
                <ActionButton label="Verify" testId="verify-entry" run={verify(e)} />
                {verdicts[e.seq] ? <span class={verdicts[e.seq]!.ok ? 'ok' : 'error'} role={verdicts[e.seq]!.ok ? 'status' : 'alert'} data-testid="entry-verdict">{verdicts[e.seq]!.text}</span> : null}
              </td>
            </tr>
          ))}</tbody>
        </table>
      ) : null}
    </Section>
  );
}
