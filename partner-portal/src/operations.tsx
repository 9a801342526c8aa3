/**
 * Operations views: schedules (operator), model release (operator requests,
 * compliance approves, rollback) and the audit log verified in the browser
 * (RFC 6962 Merkle tree and the coordinator's signed tree heads, checked with
 * the same code the CLI's `fedmart audit verify` runs).
 */
import { useState } from 'preact/hooks';
import { verifyAuditLog, verifyTreeHead, checkHeadExtends, type AuditEntry, type AuditVerification, type SignedTreeHead } from '@fedmart/shared/audit-log';
import type { ScheduleView } from '@fedmart/shared/protocol-schedule';
import type { ModelVersionView } from '@fedmart/shared/api-views';
import type { Api } from './api.ts';
import type { LiveEvent } from './events.ts';
import { fmtMetric, fmtTime } from './format.ts';
import { useLoad } from './hooks.ts';
import { ActionButton, ErrorBox, Section } from './ui.tsx';

const about = (id: string, types: string[]) => (e: LiveEvent) => e.federationId === id && types.includes(e.type);

export function Schedules(props: { api: Api; id: string }) {
  const { api, id } = props;
  const list = useLoad(() => api.get<{ schedules: ScheduleView[] }>(`/federations/${id}/schedules`), [id], 5000, about(id, ['schedule', 'round-end', 'tick-skipped']));
  const steer = (s: ScheduleView, action: 'pause' | 'resume' | 'cancel') => async () => { await api.send('POST', `/schedules/${s.id}/${action}`, {}); list.reload(); };
  const [kind, setKind] = useState<'now' | 'every' | 'cron' | 'until-converged'>('every');
  const [value, setValue] = useState('60');
  const [maxRounds, setMaxRounds] = useState('10');
  const [tz, setTz] = useState(Intl.DateTimeFormat().resolvedOptions().timeZone);
  const spec = () => {
    const max = maxRounds.trim() === '' ? undefined : Number(maxRounds);
    if (max !== undefined && !(Number.isInteger(max) && max >= 1)) throw new Error('most rounds: a whole number of at least 1, or empty for no limit');
    if (kind === 'now') return { kind, rounds: max ?? 1 };
    if (kind === 'every') {
      const s = Number(value);
      if (!(Number.isInteger(s) && s >= 1)) throw new Error('every: the interval in whole seconds (at least 1)');
      return { kind, everySeconds: s, ...(max !== undefined ? { maxRounds: max } : {}) };
    }
    if (kind === 'cron') {
      if (value.trim().split(/\s+/).length < 5) throw new Error('cron: five or six fields, e.g. "0 2 * * *" for 02:00 every day');
      return { kind, cron: value.trim(), timezone: tz, ...(max !== undefined ? { maxRounds: max } : {}) };
    }
    if (max === undefined) throw new Error('until converged: set the most rounds');
    return { kind, maxRounds: max };
  };
  return (
    <Section title="Schedules" id="schedules">
      <form class="inline" onSubmit={(e) => e.preventDefault()}>
        <label>Kind <select value={kind} data-testid="schedule-kind" onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value as typeof kind)}>
          <option value="now">now</option><option value="every">every interval</option><option value="cron">cron</option><option value="until-converged">until converged</option>
        </select></label>
        {kind === 'every' ? <label>Every (seconds) <input inputMode="numeric" value={value} data-testid="schedule-value" onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)} /></label> : null}
        {kind === 'cron' ? <><label>Cron expression <input value={value} data-testid="schedule-value" onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)} /></label><label>Time zone <input value={tz} onInput={(e) => setTz((e.currentTarget as HTMLInputElement).value)} /></label></> : null}
        <label>{kind === 'now' ? 'Rounds' : 'Most rounds'} <input inputMode="numeric" value={maxRounds} data-testid="schedule-max" onInput={(e) => setMaxRounds((e.currentTarget as HTMLInputElement).value)} /></label>
        <ActionButton label="Create schedule" kind="primary" testId="schedule-create" run={async () => { await api.send('POST', `/federations/${id}/schedules`, spec()); list.reload(); }} />
      </form>
      <ErrorBox error={list.error} />
      {list.data ? (
        list.data.schedules.length === 0 ? <p class="muted">No schedules.</p> : (
          <table data-testid="schedules-table">
            <thead><tr><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Rounds done / failed / skipped ticks</th><th scope="col">Next run</th><th scope="col">Reason</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>{[...list.data.schedules].reverse().map((s) => (
              <tr key={s.id}>
                <td>{s.kind}{s.spec.kind === 'every' ? ` ${s.spec.everySeconds} s` : s.spec.kind === 'cron' ? ` "${s.spec.cron}" (${s.spec.timezone})` : ''}</td>
                <td data-testid="schedule-status">{s.status}</td>
                <td>{s.completed} / {s.failed} / {s.skipped}{s.maxRounds !== null ? ` of at most ${s.maxRounds}` : ''}</td>
                <td>{fmtTime(s.nextRunAt)}</td>
                <td>{s.reason ?? ''}</td>
                <td>
                  {s.status === 'running' || s.status === 'pending' ? <ActionButton label="Pause" run={steer(s, 'pause')} /> : null}
                  {s.status === 'paused' ? <ActionButton label="Resume" run={steer(s, 'resume')} /> : null}
                  {s.status === 'running' || s.status === 'pending' || s.status === 'paused' ? <ActionButton label="Cancel" kind="danger" testId="schedule-cancel" run={steer(s, 'cancel')} /> : null}
                </td>
              </tr>
            ))}</tbody>
          </table>
        )
      ) : null}
    </Section>
  );
}

/** Model versions with their release state; what the role may do to each. */
export function Releases(props: { api: Api; id: string; role: 'operator' | 'compliance' | 'partner' }) {
  const { api, id, role } = props;
  const models = useLoad(() => api.get<{ currentModelVersionId: string | null; models: ModelVersionView[] }>(`/federations/${id}/models`), [id], 5000, about(id, ['round-end']));
  const post = (path: string, body: unknown = {}) => async () => { await api.send('POST', `/federations/${id}/models/${path}`, body); models.reload(); };
  return (
    <Section title="Model versions" id="models">
      <p class="muted">Versions move candidate → approved → published → retired. Scenario consumers and <code>fedmart predict</code> read the published version only.</p>
      <ErrorBox error={models.error} />
      {models.data ? (
        <table data-testid="models-table">
          <thead><tr><th scope="col">Version</th><th scope="col">Release</th><th scope="col">Validation AUC</th><th scope="col">Parameters</th><th scope="col">SHA-256</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>{[...models.data.models].reverse().slice(0, 30).map((m) => (
            <tr key={m.id}>
              <td>{m.version}</td>
              <td data-testid="release-status">{m.releaseStatus}{m.publishRequestedBy ? ` (requested by ${m.publishRequestedBy}${m.approvedBy ? `, approved by ${m.approvedBy}` : ''})` : ''}</td>
              <td>{fmtMetric('auc', m.metrics?.eval_auc)}</td>
              <td>{m.paramCount.toLocaleString()}</td>
              <td><code>{m.sha256.slice(0, 16)}…</code></td>
              <td>{fmtTime(m.createdAt)}</td>
              <td>
                {role === 'operator' && (m.releaseStatus === 'candidate' || m.releaseStatus === 'approved') && m.version > 0 ? <ActionButton label={m.releaseStatus === 'approved' ? 'Publish' : 'Request publication'} testId="publish" run={post(`${m.version}/publish`)} /> : null}
                {role === 'operator' && m.releaseStatus === 'retired' ? <ActionButton label="Roll back to this" run={post('rollback', { to: m.version })} /> : null}
                {role === 'compliance' && m.releaseStatus === 'candidate' && m.publishRequestedBy ? <ActionButton label="Approve release" kind="primary" testId="approve" run={post(`${m.version}/approve`)} /> : null}
              </td>
            </tr>
          ))}</tbody>
        </table>
      ) : null}
    </Section>
  );
}

async function pages<T>(fetchPage: (after: number) => Promise<T[]>, key: (t: T) => number): Promise<T[]> {
  const all: T[] = [];
  for (let after = 0; ;) {
    const page = await fetchPage(after);
    if (page.length === 0) return all;
    all.push(...page);
    after = key(page[page.length - 1]!);
  }
}

const HEAD_KEY = 'fedmart.auditHead';

/** The newest signed tree head this browser verified before (null: none). */
function seenHead(): SignedTreeHead | null {
  const stored = localStorage.getItem(HEAD_KEY);
  return stored ? (JSON.parse(stored) as SignedTreeHead) : null;
}

/**
 * Check a signed tree head: its Ed25519 signature (RFC 8032) and, when this browser verified an
 * earlier head, an RFC 6962 consistency proof that the log extends it. A head that passes becomes
 * the one remembered.
 * @param remember - store the head when it passes (false: the caller found other problems)
 * @returns null when it passes, otherwise the reason
 */
export async function checkHeadAgainstSeen(api: Api, head: SignedTreeHead, remember = true): Promise<string | null> {
  const older = seenHead();
  let why: string | null = null;
  if (!verifyTreeHead(head, older?.publicKey ?? head.publicKey)) why = older && older.publicKey !== head.publicKey ? `the tree head is signed by another key (${head.publicKey.slice(0, 16)}…) than the one this browser saw before (${older.publicKey.slice(0, 16)}…)` : 'the newest tree head is not signed by its key';
  else if (older && older.size <= head.size) {
    const c = await api.get<{ proof: string[] }>(`/audit/consistency?from=${older.size}&to=${head.size}`);
    why = checkHeadExtends(older, head, c.proof);
  } else if (older) why = `the log shrank: this browser saw ${older.size} entries, the newest head covers ${head.size}`;
  if (why === null && remember) localStorage.setItem(HEAD_KEY, JSON.stringify(head));
  return why;
}

/**
 * Verify the audit log here, in the browser: every entry's leaf, every signed
 * tree head's root and signature, and consistency with the newest head this
 * browser saw before (kept in localStorage), so a rewritten or truncated
 * history is caught even if the coordinator re-signs it.
 */
export function AuditVerify(props: { api: Api }) {
  const { api } = props;
  const [result, setResult] = useState<(AuditVerification & { extends: string | null }) | null>(null);
  return (
    <Section title="Audit log" id="audit">
      <p class="muted">An RFC 6962 Merkle tree over every audited action, with a tree head signed by the coordinator after each. Verification runs in this browser.</p>
      <ActionButton label="Verify audit log" kind="primary" testId="verify-audit" run={async () => {
        const entries = await pages((after) => api.get<{ entries: AuditEntry[] }>(`/audit/entries?after=${after}&limit=10000`).then((r) => r.entries), (e) => e.seq);
        const heads = await pages((after) => api.get<{ heads: SignedTreeHead[] }>(`/audit/heads?after=${after}&limit=10000`).then((r) => r.heads), (h) => h.size);
        const v = verifyAuditLog({ entries, heads, trusted: seenHead() });
        const newest = heads[heads.length - 1];
        const ext = newest ? await checkHeadAgainstSeen(api, newest, v.ok) : null;
        setResult({ ...v, extends: ext });
      }} />
      {result ? (
        result.ok && result.extends === null
          ? <p class="ok" data-testid="audit-result">Verified: {result.entries.toLocaleString()} entries; tree head of size {result.head?.size ?? 0} (root <code>{result.head?.root.slice(0, 16)}…</code>) signed by the coordinator's log key, consistent with the last head this browser saw.</p>
          : <p class="error" role="alert" data-testid="audit-result">Not verified: {result.firstBad ? `first bad entry ${result.firstBad.seq}: ${result.firstBad.reason}` : result.extends}</p>
      ) : null}
    </Section>
  );
}
