import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { eventsConnected, onEvent, onEventsStatus, type LiveEvent } from './events.ts';

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Load with `fn` and reload every `everyMs` (0: once). Keeps the last good
 * data while a reload is in flight, shows the error in words when one fails.
 */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], everyMs = 0, live?: (e: LiveEvent) => boolean): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    fn().then(
      (d) => { if (mine === seq.current) { setData(d); setError(null); setLoading(false); } },
      (e: Error) => { if (mine === seq.current) { setError(e.message); setLoading(false); } },
    );
  }, deps);
  const [streaming, setStreaming] = useState(eventsConnected());
  useEffect(() => onEventsStatus(setStreaming), []);
  useEffect(() => {
    setLoading(true);
    run();
    if (everyMs <= 0) return;
    // With the live stream up, events trigger the reloads and the poll only backs it up.
    const t = setInterval(run, live && streaming ? Math.max(everyMs, 10_000) : everyMs);
    return () => clearInterval(t);
  }, [run, everyMs, streaming]);
  useEffect(() => {
    if (!live) return;
    let pending: ReturnType<typeof setTimeout> | null = null;
    return onEvent((e) => {
      if (!live(e) || pending !== null) return;
      pending = setTimeout(() => { pending = null; run(); }, 50); // coalesce a burst of events into one reload
    });
  }, [run]);
  return { data, error, loading, reload: run };
}

/** The hash route: `#/` or `#/f/<federationId>[/<tab>]`. */
export function useRoute(): string[] {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').filter((s) => s.length > 0).map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
