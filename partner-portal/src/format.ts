/** Numbers with units, times in the viewer's own time zone. */
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export const viewerTimeZone = zone;

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '—' : dateTime.format(d);
}

export function fmtEpsilon(e: number | null | undefined): string {
  return e === null || e === undefined || !Number.isFinite(e) ? '—' : `ε ${e.toFixed(3)}`;
}

export function fmtSeconds(startIso: string, endIso: string | null): string {
  if (!endIso) return 'running';
  const s = (new Date(endIso).getTime() - new Date(startIso).getTime()) / 1000;
  return `${s.toFixed(1)} s`;
}

export function fmtMetric(name: string, v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return name.endsWith('loss') ? v.toFixed(4) : v.toFixed(4);
}
