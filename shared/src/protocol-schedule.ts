/**
 * Schedules of training rounds (issue 13, item 1): the REST body that creates
 * one and the settings each kind keeps.
 *
 * - `now`: `rounds` rounds, one after another, starting now;
 * - `cron`: one round at each tick of a cron expression read in an IANA time
 *   zone (croner syntax, 5 or 6 fields), up to `maxRounds` rounds (absent: until cancelled);
 * - `every`: one round every `everySeconds`, the first one interval after creation;
 * - `until-converged`: rounds one after another until the aggregated
 *   validation `metric` improves by less than `tolerance` for `patience`
 *   rounds in a row, or `maxRounds` ran, or — checked before each round — the
 *   next round would exceed a privacy cap (a clean stop with the reason).
 *
 * A tick that arrives while a round of the federation runs is skipped and
 * counted (`skipped`), never queued.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';

/** The aggregated metric until-converged watches defaults to validation loss (lower is better). */
export const DEFAULT_CONVERGENCE_METRIC = 'eval_loss';

const maxRounds = z.number().int().min(1).max(100_000);

export const ScheduleSpecSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('now'), rounds: z.number().int().min(1).max(10_000).default(1) }).strict(),
  z.object({ kind: z.literal('cron'), cron: z.string().min(1).max(200), timezone: z.string().min(1).max(100).default('UTC'), maxRounds: maxRounds.optional() }).strict(),
  z.object({ kind: z.literal('every'), everySeconds: z.number().int().min(1).max(366 * 24 * 3600), maxRounds: maxRounds.optional() }).strict(),
  z.object({
    kind: z.literal('until-converged'),
    maxRounds,
    /** An aggregated round metric (`eval_<name>` or `train_<name>`). */
    metric: z.string().regex(/^(eval|train)_[A-Za-z0-9_]+$/, 'an aggregated round metric such as eval_loss or eval_auc').default(DEFAULT_CONVERGENCE_METRIC),
    /** `min` when lower is better (loss), `max` when higher is better (AUC). */
    goal: z.enum(['min', 'max']).default('min'),
    /** Smallest improvement of the best value that counts as progress (absolute, ≥ 0). */
    tolerance: z.number().min(0).max(1e6).default(1e-3),
    /** Rounds in a row without such progress before stopping. */
    patience: z.number().int().min(1).max(1000).default(2),
  }).strict(),
]);
export type ScheduleSpec = z.infer<typeof ScheduleSpecSchema>;
export type ScheduleSpecInput = z.input<typeof ScheduleSpecSchema>;
export type ScheduleKind = ScheduleSpec['kind'];

export const SCHEDULE_STATUSES = ['pending', 'running', 'paused', 'done', 'failed', 'cancelled'] as const;
export type ScheduleStatus = (typeof SCHEDULE_STATUSES)[number];

/** A schedule as the REST API shows it. */
export interface ScheduleView {
  id: string;
  federationId: string;
  kind: ScheduleKind;
  spec: ScheduleSpec;
  status: ScheduleStatus;
  reason: string | null;
  /** Most rounds (null: no limit). */
  maxRounds: number | null;
  completed: number;
  failed: number;
  skipped: number;
  nextRunAt: string | null;
  progress: { best?: number; stale?: number; consecutiveFailures?: number } | null;
  createdAt: string;
  updatedAt: string;
}

/** Statuses after which a schedule runs nothing more. */
export const isScheduleFinished = (s: ScheduleStatus): boolean => s === 'done' || s === 'failed' || s === 'cancelled';
