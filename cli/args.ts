/**
 * Small argument helpers over node:util parseArgs: every bad flag gets a
 * message naming the flag, what was expected, and the command's usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FedmartError } from '@fedmart/shared/errors';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse `argv` for one subcommand; unknown flags and missing values are CONFIG_ERRORs. */
export function parseFlags<O extends Options>(command: string, argv: string[], options: O): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new FedmartError('CONFIG_ERROR', `${command}: ${msg}; run "fedmart ${command} --help" for the flags`);
  }
}

/** A required string flag. */
export function requireString(command: string, values: Record<string, unknown>, name: string, hint: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new FedmartError('CONFIG_ERROR', `${command}: missing --${name} (${hint})`);
  return v;
}

/** An integer flag within [min, max]. */
export function intFlag(command: string, values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new FedmartError('CONFIG_ERROR', `${command}: --${name} must be an integer from ${min} to ${max}, got "${String(v)}"`);
  }
  return n;
}

/** A number flag within [min, max]. */
export function numberFlag(command: string, values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new FedmartError('CONFIG_ERROR', `${command}: --${name} must be a number from ${min} to ${max}, got "${String(v)}"`);
  }
  return n;
}

/** Print to stderr (progress; stdout is reserved for results). */
export function progress(msg: string): void {
  process.stderr.write(msg + '\n');
}
