import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

export function ErrorBox(props: { error: string | null }) {
  return props.error ? <p class="error" role="alert">{props.error}</p> : null;
}

export function Section(props: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section aria-labelledby={props.id ? `${props.id}-h` : undefined} id={props.id}>
      <h2 id={props.id ? `${props.id}-h` : undefined}>{props.title}</h2>
      {props.children}
    </section>
  );
}

/** A button that runs an async action, shows "working…" and the error in words. */
export function ActionButton(props: { label: string; run: () => Promise<unknown>; kind?: 'danger' | 'primary'; testId?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <span class="action">
      <button type="button" class={props.kind ?? ''} disabled={busy} data-testid={props.testId} onClick={async () => {
        setBusy(true);
        setError(null);
        try { await props.run(); } catch (e) { setError((e as Error).message); } finally { setBusy(false); }
      }}>{busy ? 'working…' : props.label}</button>
      {error ? <span class="error inline" role="alert">{error}</span> : null}
    </span>
  );
}

export function CopyField(props: { label: string; value: string; testId?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="copy">
      <label>{props.label}<input readOnly value={props.value} data-testid={props.testId} onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} /></label>
      <button type="button" onClick={async () => {
        try { await navigator.clipboard.writeText(props.value); setCopied(true); } catch { setCopied(false); }
      }}>{copied ? 'copied' : 'copy'}</button>
    </div>
  );
}

export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
