/**
 * Small argument helpers over node:util parseArgs: every bad flag gets a
 * message naming the flag, what was expected, and the command's usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FedmartError } from '@fedmart/shared/errors';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse `argv` for one subcommand; unknown flags and missing values are CONFIG_ERRORs. */
export function parseFlags<O extends Options>(command: string, argv: string[], options: O): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const all: Options = { ...options, help: { type: 'boolean', short: 'h' } };
  // parseArgs refuses "--flag -1" as ambiguous (the value could be another flag); a negative number after
  // a flag that takes a value is that value, so it reaches the flag's own check ("must be … from 1 to …").
  const takesValue = new Map<string, string>();
  for (const [name, o] of Object.entries(all)) {
    if (o.type !== 'string') continue;
    takesValue.set(`--${name}`, name);
    if (o.short !== undefined) takesValue.set(`-${o.short}`, name);
  }
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = takesValue.get(argv[i]!);
    if (name !== undefined && NEGATIVE_NUMBER.test(argv[i + 1] ?? '')) args.push(`--${name}=${argv[++i]}`);
    else if (argv[i] === '--') {
      args.push(...argv.slice(i));
      break;
    } else args.push(argv[i]!);
  }
  try {
    const r = parseArgs({ args, options: all, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    const ambiguous = e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? /^Option '(-[^']+)' argument is ambiguous/.exec(e.message) : null;
    const msg = ambiguous
      ? `${ambiguous[1]} needs a value, and the next argument starts with "-"; if that is the value, write ${ambiguous[1]}=VALUE`
      : e.message.replace(/\. To specify a positional argument.*$/s, '').replace(/\s*\n\s*/g, ' ');
    throw new FedmartError('CONFIG_ERROR', `${command}: ${msg}; run "fedmart ${command} --help" for the flags`);
  }
}
const NEGATIVE_NUMBER = /^-(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

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
