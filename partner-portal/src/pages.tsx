import { useState } from 'preact/hooks';
import type { BudgetTotal, ConsentView, EnrollmentView, FederationDetail, FederationView, LedgerEntry, ModelVersionView, ParticipantView, PrivacyReport, RoundView } from '@fedmart/shared/api-views';
import type { Api } from './api.ts';
import type { Session } from './session.ts';
import { LineChart, type Series } from './chart.tsx';
import { fmtEpsilon, fmtMetric, fmtSeconds, fmtTime } from './format.ts';
import { useLoad } from './hooks.ts';
import type { LiveEvent } from './events.ts';

const forFederation = (id: string, types: string[]) => (e: LiveEvent) => e.federationId === id && types.includes(e.type);
import { Terms } from './terms.tsx';
import { Invitation, PartnerAudit } from './partner.tsx';
import { CreateFederation } from './create.tsx';
import { AuditVerify, Releases, Schedules } from './operations.tsx';
import { ActionButton, CopyField, ErrorBox, Section, download } from './ui.tsx';

/** How often live views refresh (ms). */
export const LIVE_MS = 1000;

export function FederationList(props: { api: Api; canCreate: boolean }) {
  const feds = useLoad(() => props.api.get<{ federations: FederationView[] }>('/federations'), [], LIVE_MS * 5);
  return (
    <>
    <AuditVerify api={props.api} />
    <Section title="Federations" id="federations">
      {props.canCreate ? <CreateFederation api={props.api} onCreated={(id) => { location.hash = `#/f/${encodeURIComponent(id)}`; }} /> : null}
      <ErrorBox error={feds.error} />
      {feds.data && feds.data.federations.length === 0 ? <p class="muted">No federations yet.</p> : null}
      {feds.data ? (
        <table>
          <thead><tr><th scope="col">Name</th><th scope="col">Task</th><th scope="col">Strategy</th><th scope="col">Protection</th><th scope="col">DP</th><th scope="col">Created</th></tr></thead>
          <tbody>
            {feds.data.federations.map((f) => (
              <tr key={f.id}>
                <td><a href={`#/f/${encodeURIComponent(f.id)}`} data-testid="federation-link">{f.name}</a></td>
                <td>{f.config.task}</td>
                <td>{f.config.strategy}</td>
                <td>{f.config.secureAggregation ? 'secure aggregation' : f.config.encryption === 'ckks' ? 'CKKS' : 'none'}</td>
                <td>{f.config.dp ? `${f.config.dp.level}, σ ${f.config.dp.noiseMultiplier}` : 'off'}</td>
                <td>{fmtTime(f.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
    </>
  );
}

function metricSeries(rounds: RoundView[], names: string[]): { x: number[]; series: Series[] } {
  const done = rounds.filter((r) => r.phase === 'committed' && r.metrics);
  return { x: done.map((r) => r.number), series: names.map((n) => ({ label: n, values: done.map((r) => r.metrics?.[n] ?? null) })) };
}

/** Who was selected in a round, who reported, who dropped out and why (the round's log). */
function RoundDetail(props: { api: Api; round: RoundView }) {
  const { api, round } = props;
  const d = useLoad(() => api.get<{ participants: ParticipantView[] }>(`/rounds/${round.id}`), [round.id, round.phase]);
  return (
    <tr class="detail"><td colSpan={7}>
      <ErrorBox error={d.error} />
      {d.data ? (
        d.data.participants.length === 0 ? <p class="muted">No partner was selected{round.reason ? `: ${round.reason}` : ''}.</p> : (
          <table data-testid="round-participants">
            <thead><tr><th scope="col">Partner</th><th scope="col">Status</th><th scope="col">Examples</th><th scope="col">Local AUC</th><th scope="col">Reason</th></tr></thead>
            <tbody>{d.data.participants.map((p) => <tr key={p.partnerId}><td>{p.partnerId}</td><td>{p.status}</td><td>{p.numExamples?.toLocaleString() ?? '—'}</td><td>{fmtMetric('auc', p.evalMetrics?.auc)}</td><td>{p.reason ?? ''}</td></tr>)}</tbody>
          </table>
        )
      ) : null}
    </td></tr>
  );
}

function RoundsTable(props: { rounds: RoundView[]; api?: Api }) {
  const rows = [...props.rounds].reverse().slice(0, 50);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <table data-testid="rounds-table">
      <thead><tr><th scope="col">Round</th><th scope="col">Phase</th><th scope="col">Validation AUC</th><th scope="col">Validation loss</th><th scope="col">Started</th><th scope="col">Took</th><th scope="col">Reason</th></tr></thead>
      <tbody>
        {rows.flatMap((r) => [
          <tr key={r.id} class={`phase-${r.phase}`}>
            <td>{props.api ? <button type="button" class="link" aria-expanded={open === r.id} aria-label={`round ${r.number}: who took part`} onClick={() => setOpen(open === r.id ? null : r.id)}>{r.number}</button> : r.number}</td>
            <td data-testid="round-phase">{r.phase}</td>
            <td>{fmtMetric('auc', r.metrics?.eval_auc)}</td>
            <td>{fmtMetric('loss', r.metrics?.eval_loss)}</td>
            <td>{fmtTime(r.startedAt)}</td>
            <td>{fmtSeconds(r.startedAt, r.endedAt)}</td>
            <td>{r.reason ?? ''}</td>
          </tr>,
          ...(open === r.id && props.api ? [<RoundDetail key={`${r.id}-d`} api={props.api} round={r} />] : []),
        ])}
      </tbody>
    </table>
  );
}


/** The operator's view of one federation: who is connected, rounds live, metrics, enrollments. */
export function OperatorFederation(props: { api: Api; id: string }) {
  const { api, id } = props;
  const detail = useLoad(() => api.get<FederationDetail>(`/federations/${id}`), [id], LIVE_MS * 2, forFederation(id, ['connected', 'disconnected']));
  const rounds = useLoad(() => api.get<{ rounds: RoundView[] }>(`/federations/${id}/rounds`), [id], LIVE_MS, forFederation(id, ['phase', 'round-end']));
  const enrollments = useLoad(() => api.get<{ enrollments: EnrollmentView[] }>(`/federations/${id}/enrollments`), [id], LIVE_MS * 5);
  const [count, setCount] = useState('5');
  const [partner, setPartner] = useState('');
  const [issued, setIssued] = useState<{ partner: string; token: string } | null>(null);
  const chart = rounds.data ? metricSeries(rounds.data.rounds, ['eval_auc']) : null;
  return (
    <>
      <ErrorBox error={detail.error} />
      {detail.data ? (
        <Section title={detail.data.federation.name} id="federation">
          <Terms config={detail.data.federation.config} />
          <p>Connected now: <strong data-testid="connected-count">{detail.data.connected.length}</strong> {detail.data.connected.map((c) => `${c.partnerName}${c.numExamples !== undefined ? ` (${c.numExamples.toLocaleString()} examples)` : ''}`).join(', ')}</p>
        </Section>
      ) : null}
      <Section title="Rounds" id="rounds">
        <form class="inline" onSubmit={(e) => e.preventDefault()}>
          <label>Rounds to run <input type="number" min="1" max="1000" value={count} onInput={(e) => setCount((e.currentTarget as HTMLInputElement).value)} /></label>
          <ActionButton label="Run rounds now" kind="primary" testId="run-rounds" run={async () => {
            const n = Number(count);
            if (!Number.isInteger(n) || n < 1) throw new Error('rounds to run must be a whole number of at least 1');
            await api.send('POST', `/federations/${id}/rounds`, { count: n });
            rounds.reload();
          }} />
        </form>
        <ErrorBox error={rounds.error} />
        {chart ? <LineChart title="Validation AUC of the committed model, by round" x={chart.x} xLabel="round" yLabel="AUC" series={chart.series} testId="metrics-chart" /> : null}
        {rounds.data ? <RoundsTable rounds={rounds.data.rounds} api={api} /> : null}
      </Section>
      <Schedules api={api} id={id} />
      <Releases api={api} id={id} role="operator" />
      <Section title="Enrollments" id="enrollments">
        <form class="inline" onSubmit={(e) => e.preventDefault()}>
          <label>Partner name <input value={partner} onInput={(e) => setPartner((e.currentTarget as HTMLInputElement).value)} /></label>
          <ActionButton label="Enroll partner" testId="enroll" run={async () => {
            const name = partner.trim();
            if (name.length === 0) throw new Error('type the partner\'s name first');
            const r = await api.send<{ token: string }>('POST', `/federations/${id}/enrollments`, { partner: name });
            setIssued({ partner: name, token: r.token });
            setPartner('');
            enrollments.reload();
          }} />
        </form>
        {issued ? (
          <div class="issued">
            <p>Give <strong>{issued.partner}</strong> this token (for <code>fedmart partner --token</code>) or the portal link. It is shown once.</p>
            <CopyField label="Enrollment token" value={issued.token} testId="issued-token" />
            <CopyField label="Portal sign-in link" value={`${location.origin}/#token=${issued.token}`} />
          </div>
        ) : null}
        <ErrorBox error={enrollments.error} />
        {enrollments.data ? (
          <table>
            <thead><tr><th scope="col">Partner</th><th scope="col">Status</th><th scope="col">Consented</th><th scope="col">Identity key</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {enrollments.data.enrollments.map((e) => (
                <tr key={e.id}>
                  <td>{e.partnerName}</td>
                  <td>{e.status}</td>
                  <td data-testid="enrollment-consent">{typeof e.consentedAt === 'number' ? `${fmtTime(new Date(e.consentedAt).toISOString())}${typeof e.purposes === 'string' ? ` for ${(JSON.parse(e.purposes) as string[]).join(', ')}` : ''}` : 'not yet'}</td>
                  <td><code>{e.identityFingerprint ?? 'not bound yet'}</code></td>
                  <td>{fmtTime(e.expiresAt)}</td>
                  <td>{e.status !== 'revoked' ? <ActionButton label="Revoke" kind="danger" run={async () => { await api.send('DELETE', `/federations/${id}/enrollments/${e.id}`); enrollments.reload(); }} /> : null}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Section>
    </>
  );
}

/**
 * Rounds left before a cap, projected from the mean spend of the last three
 * charged rounds (RDP composition grows slower than linearly, so this errs
 * on the early side).
 */
export function projectCapRound(history: { round: number | null; epsilon: number | null }[], cap: number | null): number | null {
  if (cap === null) return null;
  const pts = history.filter((h) => h.round !== null && h.epsilon !== null) as { round: number; epsilon: number }[];
  if (pts.length < 2) return null;
  const last = pts[pts.length - 1]!;
  if (last.epsilon >= cap) return last.round;
  const tail = pts.slice(-4);
  const step = (tail[tail.length - 1]!.epsilon - tail[0]!.epsilon) / (tail[tail.length - 1]!.round - tail[0]!.round);
  if (!(step > 0)) return null;
  return last.round + Math.ceil((cap - last.epsilon) / step);
}

function budgetKey(t: { partnerId: string | null; level: string }): string {
  return `${t.partnerId ?? '*'}|${t.level}`;
}

function BudgetTable(props: { totals: BudgetTotal[]; history: LedgerEntry[] }) {
  return (
    <table data-testid="budget-table">
      <thead><tr><th scope="col">Scope</th><th scope="col">Level</th><th scope="col">Spent</th><th scope="col">Cap</th><th scope="col">Remaining</th><th scope="col">δ</th><th scope="col">Rounds charged</th><th scope="col">Cap reached at round (projected)</th></tr></thead>
      <tbody>
        {props.totals.map((t) => {
          const hist = props.history.filter((h) => h.kind === 'spent' && budgetKey(h) === budgetKey(t));
          const proj = projectCapRound(hist, t.cap);
          return (
            <tr key={budgetKey(t)}>
              <td>{t.scope === 'federation' ? 'whole federation' : (t.partnerName ?? t.partnerId)}</td>
              <td>{t.level}</td>
              <td data-testid="epsilon-spent" data-epsilon={String(t.epsilon)}>{fmtEpsilon(t.epsilon)}</td>
              <td>{t.cap === null ? 'no cap' : fmtEpsilon(t.cap)}</td>
              <td>{t.cap === null ? '—' : fmtEpsilon(Math.max(0, t.cap - t.epsilon))}</td>
              <td>{t.delta}</td>
              <td>{t.rounds}</td>
              <td>{proj === null ? '—' : String(proj)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function epsilonSeries(totals: BudgetTotal[], history: LedgerEntry[]): { x: number[]; series: Series[] } {
  const spent = history.filter((h) => h.kind === 'spent' && h.round !== null && h.epsilon !== null);
  const x = [...new Set(spent.map((h) => h.round!))].sort((a, b) => a - b);
  const series: Series[] = [];
  for (const t of totals) {
    const rows = spent.filter((h) => budgetKey(h) === budgetKey(t));
    const at = new Map(rows.map((h) => [h.round!, h.epsilon!]));
    let lastSeen: number | null = null;
    series.push({ label: `${t.scope === 'federation' ? 'federation' : (t.partnerName ?? t.partnerId)} (${t.level})`, values: x.map((r) => (lastSeen = at.get(r) ?? lastSeen)) });
    if (t.cap !== null) series.push({ label: `cap ${t.scope === 'federation' ? 'federation' : (t.partnerName ?? t.partnerId)}`, values: x.map(() => t.cap), dash: true });
  }
  return { x, series };
}

/** The compliance officer's view: ε over rounds against caps, caps, refusals, the report. */
export function CompliancePrivacy(props: { api: Api; id: string }) {
  const { api, id } = props;
  const report = useLoad(() => api.get<PrivacyReport>(`/federations/${id}/privacy`), [id], LIVE_MS, forFederation(id, ['ledger', 'round-end']));
  const [level, setLevel] = useState<'record' | 'partner'>('record');
  const [partnerId, setPartnerId] = useState('');
  const [eps, setEps] = useState('');
  const r = report.data;
  const chart = r ? epsilonSeries(r.totals, r.history) : null;
  return (
    <>
      <ErrorBox error={report.error} />
      {r ? (
        <>
          <Section title={`Privacy budget: ${r.federationName}`} id="privacy">
            <p>Accountant: Rényi DP (composed per scope, converted at each scope's δ). Ledger check: {r.verification.ok ? <strong class="ok" data-testid="ledger-ok">verified ({r.verification.committedRounds} committed rounds)</strong> : <strong class="error">problems: {r.verification.problems.join('; ')}</strong>}</p>
            {chart ? <LineChart title="ε spent by round, against its cap" x={chart.x} xLabel="round" yLabel="ε" series={chart.series} testId="epsilon-chart" /> : null}
            <BudgetTable totals={r.totals} history={r.history} />
            <div class="buttons">
              <ActionButton label="Download CSV" testId="download-csv" run={async () => download(`privacy-ledger-${id}.csv`, 'text/csv', await api.text(`/federations/${id}/privacy?format=csv`))} />
              <ActionButton label="Download JSON" run={async () => download(`privacy-report-${id}.json`, 'application/json', JSON.stringify(r, null, 2))} />
              <button type="button" onClick={() => print()}>Print report</button>
            </div>
          </Section>
          <Section title="Caps" id="caps">
            <form class="inline" onSubmit={(e) => e.preventDefault()}>
              <label>Level <select value={level} onChange={(e) => setLevel((e.currentTarget as HTMLSelectElement).value as 'record' | 'partner')}><option value="record">record</option><option value="partner">partner</option></select></label>
              <label>Partner id (empty: whole federation) <input value={partnerId} onInput={(e) => setPartnerId((e.currentTarget as HTMLInputElement).value)} /></label>
              <label>ε cap <input inputMode="decimal" value={eps} data-testid="cap-epsilon" onInput={(e) => setEps((e.currentTarget as HTMLInputElement).value)} /></label>
              <ActionButton label="Set cap" kind="primary" testId="set-cap" run={async () => {
                const v = Number(eps);
                if (!(v > 0) || !Number.isFinite(v)) throw new Error('the ε cap must be a positive number');
                await api.send('PUT', `/federations/${id}/privacy/caps`, { level, epsilon: v, ...(partnerId.trim() ? { partnerId: partnerId.trim() } : {}) });
                report.reload();
              }} />
              <ActionButton label="Lift cap" run={async () => {
                await api.send('PUT', `/federations/${id}/privacy/caps`, { level, epsilon: null, ...(partnerId.trim() ? { partnerId: partnerId.trim() } : {}) });
                report.reload();
              }} />
            </form>
            <table>
              <thead><tr><th scope="col">Scope</th><th scope="col">Level</th><th scope="col">ε</th><th scope="col">Set by</th><th scope="col">When</th></tr></thead>
              <tbody>{r.capHistory.map((c, i) => <tr key={i}><td>{c.partnerId ?? 'whole federation'}</td><td>{c.level}</td><td>{c.epsilon === null ? 'lifted' : fmtEpsilon(c.epsilon)}</td><td>{c.setBy}</td><td>{fmtTime(c.setAt)}</td></tr>)}</tbody>
            </table>
          </Section>
          <Releases api={api} id={id} role="compliance" />
          <AuditVerify api={api} />
          <Section title="Refused rounds" id="refused">
            {r.refused.length === 0 ? <p class="muted">No round has been refused for budget.</p> : (
              <table data-testid="refused-table">
                <thead><tr><th scope="col">Round</th><th scope="col">Scope</th><th scope="col">Projected ε</th><th scope="col">Reason</th><th scope="col">When</th></tr></thead>
                <tbody>{r.refused.map((h) => <tr key={h.id}><td>{h.round ?? '—'}</td><td>{h.partnerName ?? h.partnerId ?? 'federation'}</td><td>{fmtEpsilon(h.epsilon)}</td><td data-testid="refused-reason">{h.reason}</td><td>{fmtTime(h.createdAt)}</td></tr>)}</tbody>
              </table>
            )}
          </Section>
        </>
      ) : null}
    </>
  );
}

/** A brand's view of its own federation: the terms, its participation round by round, its own ε. */
export function PartnerFederation(props: { api: Api; session: Session }) {
  const { api, session } = props;
  const id = session.claims.fed!;
  const me = session.claims.sub;
  const detail = useLoad(() => api.get<FederationDetail>(`/federations/${id}`), [id], LIVE_MS * 5);
  const rounds = useLoad(async () => {
    const { rounds } = await api.get<{ rounds: RoundView[] }>(`/federations/${id}/rounds`);
    const recent = rounds.slice(-20);
    const mine = await Promise.all(recent.map((r) => api.get<{ participants: ParticipantView[] }>(`/rounds/${r.id}`).then((x) => x.participants.find((p) => p.partnerId === me) ?? null)));
    return { rounds: recent, mine };
  }, [id], LIVE_MS * 2, forFederation(id, ['phase', 'round-end', 'report', 'refusal', 'dropout']));
  const budget = useLoad(() => api.get<{ totals: BudgetTotal[]; history: LedgerEntry[] }>(`/federations/${id}/privacy/partners/${encodeURIComponent(me)}`).catch((e: Error & { status?: number }) => {
    if ((e as { status?: number }).status === 404) return { totals: [], history: [] };
    throw e;
  }), [id], LIVE_MS, forFederation(id, ['ledger', 'round-end']));
  const chart = budget.data ? epsilonSeries(budget.data.totals, budget.data.history) : null;
  const local = rounds.data ? { x: rounds.data.rounds.map((r) => r.number), series: [
    { label: 'global (aggregated) AUC', values: rounds.data.rounds.map((r) => r.metrics?.eval_auc ?? null) },
    { label: 'your local AUC', values: rounds.data.mine.map((p) => p?.evalMetrics?.auc ?? p?.evalMetrics?.eval_auc ?? null) },
  ] } : null;
  const [consented, setConsented] = useState<ConsentView | null>(null);
  const consent = useLoad(() => api.get<ConsentView>(`/federations/${id}/consent`), [id]);
  const c = consented ?? consent.data;
  return (
    <>
      <ErrorBox error={detail.error} />
      {detail.data ? (
        <Section title={`Your federation: ${detail.data.federation.name}`} id="federation">
          <p>You are <strong>{me}</strong>; your token opens this federation only. Connected now: {detail.data.connected.length} partner{detail.data.connected.length === 1 ? '' : 's'}.</p>
        </Section>
      ) : null}
      <ErrorBox error={consent.error} />
      {c ? <Invitation api={api} id={id} consent={c} onConsented={setConsented} /> : null}
      <Section title="Your privacy budget" id="budget">
        <ErrorBox error={budget.error} />
        {budget.data ? <><BudgetTable totals={budget.data.totals} history={budget.data.history} />{chart ? <LineChart title="Your ε spent by round" x={chart.x} xLabel="round" yLabel="ε" series={chart.series} testId="partner-epsilon-chart" /> : null}</> : null}
      </Section>
      <Releases api={api} id={id} role="partner" />
      <PartnerAudit api={api} id={id} />
      <Section title="Your participation" id="participation">
        <ErrorBox error={rounds.error} />
        {local ? <LineChart title="Local vs global validation AUC" x={local.x} xLabel="round" yLabel="AUC" series={local.series} testId="local-global-chart" /> : null}
        {rounds.data ? (
          <table data-testid="participation-table">
            <thead><tr><th scope="col">Round</th><th scope="col">Round phase</th><th scope="col">You</th><th scope="col">Examples</th><th scope="col">Why</th></tr></thead>
            <tbody>
              {rounds.data.rounds.map((r, i) => {
                const p = rounds.data!.mine[i];
                return <tr key={r.id}><td>{r.number}</td><td>{r.phase}</td><td data-testid="my-status">{p ? p.status : 'not selected'}</td><td>{p?.numExamples?.toLocaleString() ?? '—'}</td><td>{p?.reason ?? r.reason ?? ''}</td></tr>;
              }).reverse()}
            </tbody>
          </table>
        ) : null}
      </Section>
    </>
  );
}
