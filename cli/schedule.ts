/**
 * `fedmart schedule create|list|show|pause|resume|cancel` (issue 13, item 1):
 * schedules of training rounds on a running coordinator, and the wait loop
 * `fedmart federation rounds --wait` shares. `--wait` exits non-zero when any
 * round of the schedule failed or the schedule did not end `done`.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { isScheduleFinished, type ScheduleSpecInput, type ScheduleView } from '@fedmart/shared/protocol-schedule';
import { intFlag, numberFlag, parseFlags, progress, requireString } from './args.ts';
import type { ApiClient } from './api-client.ts';
import { operatorApi } from './federation.ts';

const USAGE = `fedmart schedule <create|list|show|pause|resume|cancel> [flags]

Schedules of training rounds (the operator token as for fedmart federation).

  create --federation ID --kind now --rounds N [--wait]
  create --federation ID --kind cron --cron "0 2 * * *" [--timezone Europe/Paris] [--max-rounds N] [--wait]
  create --federation ID --kind every --every SECONDS [--max-rounds N] [--wait]
  create --federation ID --kind until-converged --max-rounds N [--metric eval_loss] [--goal min|max]
         [--tolerance 0.001] [--patience 2] [--wait]
         (stops when the metric improves by less than the tolerance for --patience rounds,
          at --max-rounds, or before a round that would exceed a privacy cap)
  list   --federation ID
  show   --schedule ID [--wait]
  pause | resume | cancel --schedule ID

A cron/every tick that arrives while a round runs is skipped and counted.
--wait prints each round as it ends and exits 1 when any round failed.
Common: --coordinator URL (default http://127.0.0.1:7300), --token, --data-dir, --json

Example:
  fedmart schedule create --federation f_123 --kind cron --cron "30 1 * * *" --timezone Europe/Berlin
  fedmart schedule create --federation f_123 --kind until-converged --max-rounds 30 --tolerance 0.0005 --wait`;

const out = (values: Record<string, unknown>, json: unknown, text: string) => process.stdout.write(values.json ? JSON.stringify(json) + '\n' : text + '\n');

/** One line about a schedule. */
export function describeSchedule(s: ScheduleView): string {
  const what = s.spec.kind === 'now' ? `${s.spec.rounds} round(s) now`
    : s.spec.kind === 'cron' ? `cron "${s.spec.cron}" (${s.spec.timezone})${s.maxRounds ? `, at most ${s.maxRounds} round(s)` : ''}`
      : s.spec.kind === 'every' ? `every ${s.spec.everySeconds} s${s.maxRounds ? `, at most ${s.maxRounds} round(s)` : ''}`
        : `until ${s.spec.metric} (${s.spec.goal}) improves by < ${s.spec.tolerance} for ${s.spec.patience} round(s), at most ${s.spec.maxRounds}`;
  return `${s.id} ${s.status}: ${what}; ${s.completed} committed, ${s.failed} failed, ${s.skipped} tick(s) skipped${s.nextRunAt ? `; next ${s.nextRunAt}` : ''}${s.reason ? ` — ${s.reason}` : ''}`;
}

/**
 * Wait for a schedule to finish, printing each round of the federation as it ends.
 * @returns 0 when it ended `done` with no failed round, 1 otherwise
 */
export async function waitForSchedule(api: ApiClient, scheduleId: string, values: Record<string, unknown>, roundsBefore?: number): Promise<number> {
  type Round = { number: number; phase: string; reason: string | null; metrics: Record<string, number> | null };
  let s = (await api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${encodeURIComponent(scheduleId)}`)).schedule;
  const roundsUrl = `/api/v1/federations/${encodeURIComponent(s.federationId)}/rounds`;
  const before = roundsBefore ?? (await api.get<{ rounds: Round[] }>(roundsUrl)).rounds.filter((x) => x.phase === 'committed' || x.phase === 'failed').length;
  const seen = new Set<number>();
  let rounds: Round[] = [];
  for (;;) {
    rounds = (await api.get<{ rounds: Round[] }>(roundsUrl)).rounds.slice(before);
    for (const x of rounds) {
      if ((x.phase === 'committed' || x.phase === 'failed') && !seen.has(x.number)) {
        seen.add(x.number);
        progress(`round ${x.number} ${x.phase}${x.reason ? ` (${x.reason})` : ''}${x.metrics?.eval_auc !== undefined ? `, validation AUC ${x.metrics.eval_auc.toFixed(4)}` : ''}`);
      }
    }
    s = (await api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${encodeURIComponent(scheduleId)}`)).schedule;
    if (isScheduleFinished(s.status)) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  const total = s.completed + s.failed;
  out(values, { scheduleId, status: s.status, schedule: s, rounds }, `schedule ${s.status}${s.reason ? `: ${s.reason}` : ''}; ${s.completed} of ${total} round(s) committed`);
  return s.status === 'done' && s.failed === 0 ? 0 : 1;
}

function specFromFlags(cmd: string, values: Record<string, unknown>): ScheduleSpecInput {
  const kind = requireString(cmd, values, 'kind', 'now, cron, every or until-converged');
  const max = values['max-rounds'] === undefined ? {} : { maxRounds: intFlag(cmd, values, 'max-rounds', 1, 1, 100_000) };
  switch (kind) {
    case 'now':
      return { kind, rounds: intFlag(cmd, values, 'rounds', 1, 1, 10_000) };
    case 'cron':
      return { kind, cron: requireString(cmd, values, 'cron', 'a cron expression such as "0 2 * * *"'), timezone: (values.timezone as string | undefined) ?? 'UTC', ...max };
    case 'every':
      return { kind, everySeconds: intFlag(cmd, values, 'every', 0, 1, 366 * 24 * 3600), ...max };
    case 'until-converged': {
      if (values['max-rounds'] === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --kind until-converged needs --max-rounds N (the most rounds it may run)`);
      const goal = (values.goal as string | undefined) ?? 'min';
      if (goal !== 'min' && goal !== 'max') throw new FedmartError('CONFIG_ERROR', `${cmd}: --goal must be min (lower is better, e.g. eval_loss) or max (e.g. eval_auc), got "${goal}"`);
      return { kind, maxRounds: max.maxRounds!, metric: (values.metric as string | undefined) ?? 'eval_loss', goal, tolerance: numberFlag(cmd, values, 'tolerance', 1e-3, 0, 1e6), patience: intFlag(cmd, values, 'patience', 2, 1, 1000) };
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `${cmd}: --kind must be now, cron, every or until-converged, got "${kind}"`);
  }
}

export async function scheduleCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE + '\n');
    return sub ? 0 : 2;
  }
  const cmd = `schedule ${sub}`;
  const { values } = parseFlags(cmd, rest, {
    coordinator: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' }, wait: { type: 'boolean' },
    federation: { type: 'string' }, schedule: { type: 'string' }, kind: { type: 'string' }, rounds: { type: 'string' }, cron: { type: 'string' }, timezone: { type: 'string' },
    every: { type: 'string' }, 'max-rounds': { type: 'string' }, metric: { type: 'string' }, goal: { type: 'string' }, tolerance: { type: 'string' }, patience: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  switch (sub) {
    case 'create': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const spec = specFromFlags(cmd, values);
      const api = await operatorApi(values);
      const roundsUrl = `/api/v1/federations/${encodeURIComponent(fed)}/rounds`;
      const before = values.wait ? (await api.get<{ rounds: { phase: string }[] }>(roundsUrl)).rounds.length : 0;
      const { schedule } = await api.post<{ schedule: ScheduleView }>(`/api/v1/federations/${encodeURIComponent(fed)}/schedules`, spec);
      if (!values.wait) {
        out(values, { schedule }, `created ${describeSchedule(schedule)}`);
        return 0;
      }
      progress(`created ${describeSchedule(schedule)}`);
      return waitForSchedule(api, schedule.id, values, before);
    }
    case 'list': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const api = await operatorApi(values);
      const { schedules } = await api.get<{ schedules: ScheduleView[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/schedules`);
      out(values, { schedules }, schedules.map(describeSchedule).join('\n') || `no schedules in ${fed}`);
      return 0;
    }
    case 'show': {
      const id = requireString(cmd, values, 'schedule', 'the schedule id (fedmart schedule list)');
      const api = await operatorApi(values);
      if (values.wait) return waitForSchedule(api, id, values);
      const { schedule } = await api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${encodeURIComponent(id)}`);
      out(values, { schedule }, describeSchedule(schedule));
      return 0;
    }
    case 'pause':
    case 'resume':
    case 'cancel': {
      const id = requireString(cmd, values, 'schedule', 'the schedule id (fedmart schedule list)');
      const api = await operatorApi(values);
      const { schedule } = await api.post<{ schedule: ScheduleView }>(`/api/v1/schedules/${encodeURIComponent(id)}/${sub}`, {});
      out(values, { schedule }, describeSchedule(schedule));
      return 0;
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `schedule: unknown subcommand "${sub}"; choose one of: create, list, show, pause, resume, cancel`);
  }
}
