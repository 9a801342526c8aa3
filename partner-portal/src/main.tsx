/**
 * fedmart partner portal: one single-page app for the three kinds of users.
 * The role comes from the signed-in token; the coordinator enforces it on
 * every call (the portal only hides what a role cannot do).
 *
 * Preact (3 kB, React's API, maintained) keeps the bundle small and needs no
 * runtime code generation, so the strict CSP (`script-src 'self'`) holds.
 */
import { render } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { createApi } from './api.ts';
import { viewerTimeZone } from './format.ts';
import { useRoute } from './hooks.ts';
import { CompliancePrivacy, FederationList, OperatorFederation, PartnerFederation } from './pages.tsx';
import { endSession, loadSession, startSession, type Session } from './session.ts';
import { ErrorBox } from './ui.tsx';
import { closeEvents, onEventsStatus, openEvents, eventsConnected } from './events.ts';
import { useEffect } from 'preact/hooks';

const ROLE_TITLE = { operator: 'Operator', compliance: 'Compliance officer', partner: 'Partner (brand)' } as const;

function SignIn(props: { onSession: (s: Session) => void; error: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(props.error);
  return (
    <main class="signin">
      <h1>fedmart portal</h1>
      <p>Sign in with the token your operator gave you, or open the sign-in link they sent.</p>
      <form onSubmit={(e) => {
        e.preventDefault();
        const s = startSession(token);
        if (typeof s === 'string') setError(s);
        else props.onSession(s);
      }}>
        <label for="token">Token</label>
        <textarea id="token" rows={4} value={token} onInput={(e) => setToken((e.currentTarget as HTMLTextAreaElement).value)} autocomplete="off" spellcheck={false} />
        <button type="submit" class="primary">Sign in</button>
      </form>
      <ErrorBox error={error} />
    </main>
  );
}

function App() {
  const initial = useMemo(() => loadSession(), []);
  const [session, setSession] = useState<Session | null>(typeof initial === 'object' ? initial : null);
  const [signInError, setSignInError] = useState<string | null>(typeof initial === 'string' ? initial : null);
  const route = useRoute();
  const [live, setLive] = useState(eventsConnected());
  useEffect(() => onEventsStatus(setLive), []);
  useEffect(() => {
    if (!session) return;
    openEvents(session.token);
    return closeEvents;
  }, [session]);
  const api = useMemo(() => (session ? createApi(session.token, (msg) => {
    endSession();
    setSession(null);
    setSignInError(`signed out: ${msg}`);
  }) : null), [session]);
  if (!session || !api) return <SignIn error={signInError} onSession={(s) => { setSignInError(null); setSession(s); }} />;
  const role = session.claims.role;
  const fedId = route[0] === 'f' ? route[1] : undefined;
  let body;
  if (role === 'partner') {
    body = fedId !== undefined && fedId !== session.claims.fed
      ? <p class="error" role="alert">Your token belongs to federation {session.claims.fed}; it cannot open {fedId}. <a href="#/">Back to your federation</a></p>
      : <PartnerFederation api={api} session={session} />;
  } else if (fedId === undefined) body = <FederationList api={api} canCreate={role === 'operator'} />;
  else if (role === 'operator') body = <OperatorFederation api={api} id={fedId} />;
  else body = <CompliancePrivacy api={api} id={fedId} />;
  return (
    <>
      <header>
        <a href="#/" class="brand">fedmart</a>
        <span class="who" data-testid="who">{ROLE_TITLE[role]}: {session.claims.sub}</span>
        <span class="live" data-testid="live" title={live ? 'live: views update as the coordinator reports' : 'the live stream is down: views refresh every few seconds'}>{live ? '● live' : '○ polling'}</span>
        <span class="tz">times in {viewerTimeZone}</span>
        <button type="button" onClick={() => { endSession(); closeEvents(); setSession(null); }}>Sign out</button>
      </header>
      <main>
        {fedId !== undefined && role !== 'partner' ? <nav aria-label="breadcrumb"><a href="#/">All federations</a></nav> : null}
        {body}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
