/**
 * `fedmart service classify` (customer-service triage with published text
 * models) and `fedmart content check` (advertising-law rules, plus a
 * published classifier's score). Models are read through the ModelRegistry
 * (`scenarios/src/model-registry.ts`) as FEDERATION/VERSION.
 */
import { createHash } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { HttpModelRegistry } from '@fedmart/scenarios/model-registry';
import { loadTextClassifier, type TextClassifier } from '@fedmart/scenarios/text/classifier';
import { ticketClassifier } from '@fedmart/scenarios/service/index';
import { checkCopy, MARKETS, type Market } from '@fedmart/scenarios/content/index';
import { numberFlag, parseFlags, requireString } from './args.ts';

const SERVICE_USAGE = `fedmart service classify --model FEDERATION/VERSION --text "..." [options] --json

Triage one ticket with a published federated text model (trained by
"fedmart scenario text" or a federation of task "text"): intent, calibrated
confidence, sentiment, and whether to escalate to a human, with the reasons.

  --model F/V            intent model, e.g. f_abc/latest
  --sentiment-model F/V  sentiment model (optional)
  --text TEXT            the ticket
  --human-only LIST      comma-separated intents always escalated
  --min-confidence P     escalate below this confidence (default 0.6)
  --negative-threshold P escalate when P(negative) >= P (default 0.85)
  --negative-class NAME  the sentiment model's negative class (default: negative/neg/other/bad)
  --coordinator URL      default http://127.0.0.1:7300; --token T or FEDMART_TOKEN`;

const CONTENT_USAGE = `fedmart content check --text "..." [--market cn|us|eu] [--model F/V --positive CLASS] --json

Check product copy against advertising-law rules (PRC Advertising Law Art. 9,
16-18; FTC Act §5 and substantiation policy; EU Directive 2005/29/EC Annex I),
robust to full-width characters, inserted spaces/punctuation, traditional
characters and case. Each violation: rule, source, span, reason, suggestion.
With --model, a published text classifier also scores the copy (P(--positive)).`;

async function load(values: Record<string, unknown>, ref: string, cmd: string): Promise<TextClassifier & { version: number }> {
  const m = /^([A-Za-z0-9_-]+)\/(latest|\d+)$/.exec(ref);
  if (!m) throw new FedmartError('CONFIG_ERROR', `a model is FEDERATION/VERSION such as f_abc/latest, got "${ref}"`);
  const url = (values.coordinator as string | undefined) ?? 'http://127.0.0.1:7300';
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FedmartError('CONFIG_ERROR', `--coordinator must be an http(s) URL such as http://127.0.0.1:7300, got "${url}"`);
  const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN ?? process.env.FEDMART_OPERATOR_TOKEN;
  if (!token) throw new FedmartError('CONFIG_ERROR', `reading ${ref} from a coordinator needs a token: pass --token or set FEDMART_TOKEN`);
  const registry = new HttpModelRegistry(url, token, fetch, (b) => createHash('sha256').update(b).digest('hex'));
  try {
    return await loadTextClassifier(registry, m[1]!, m[2] === 'latest' ? 'latest' : Number(m[2]));
  } catch (err) {
    if (err instanceof TypeError) throw new FedmartError('UNAVAILABLE', `cannot reach the coordinator at ${url} (${err.message}); start it or pass --coordinator`);
    throw err;
  }
}

/**
 * A command with one subcommand: null when `sub` is it; else print the usage and
 * return the exit code for a help request or nothing, or throw for an unknown one.
 */
function onlySubcommand(command: string, sub: string | undefined, want: string, usage: string): number | null {
  if (sub === want) return null;
  process.stdout.write(usage + '\n');
  if (sub === undefined || sub === '--help' || sub === '-h') return sub ? 0 : 2;
  throw new FedmartError('CONFIG_ERROR', `${command}: unknown subcommand "${sub}"; use ${want}`);
}

export async function serviceCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const cmd = 'service classify';
  const early = onlySubcommand('service', sub, 'classify', SERVICE_USAGE);
  if (early !== null) return early;
  const { values } = parseFlags(cmd, rest, {
    model: { type: 'string' }, 'sentiment-model': { type: 'string' }, text: { type: 'string' }, 'human-only': { type: 'string' },
    'min-confidence': { type: 'string' }, 'negative-threshold': { type: 'string' }, 'negative-class': { type: 'string' },
    coordinator: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(SERVICE_USAGE + '\n');
    return 0;
  }
  const text = requireString(cmd, values, 'text', 'the ticket text');
  const intent = await load(values, requireString(cmd, values, 'model', 'the intent model, FEDERATION/VERSION'), cmd);
  const sentiment = values['sentiment-model'] === undefined ? undefined : await load(values, values['sentiment-model'] as string, cmd);
  const classify = ticketClassifier(sentiment ? { intent, sentiment } : { intent }, {
    humanOnlyIntents: ((values['human-only'] as string | undefined) ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    minConfidence: numberFlag(cmd, values, 'min-confidence', 0.6, 0, 1),
    negativeThreshold: numberFlag(cmd, values, 'negative-threshold', 0.85, 0, 1),
    ...(values['negative-class'] !== undefined ? { negativeClass: values['negative-class'] as string } : {}),
  });
  const d = classify(text);
  const out = { ...d, model: { intent: `${(values.model as string).split('/')[0]}/${intent.version}`, temperature: intent.temperature } };
  process.stdout.write(values.json ? JSON.stringify(out) + '\n' : `intent ${d.intent} (${d.confidence})${d.sentiment ? `, sentiment ${d.sentiment.label} (P(negative) ${d.sentiment.negative})` : ''}\n${d.escalate ? 'ESCALATE' : 'automated'}: ${d.reasons.join('; ')}\n`);
  return 0;
}

export async function contentCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const cmd = 'content check';
  const early = onlySubcommand('content', sub, 'check', CONTENT_USAGE);
  if (early !== null) return early;
  const { values } = parseFlags(cmd, rest, { text: { type: 'string' }, market: { type: 'string' }, model: { type: 'string' }, positive: { type: 'string' }, threshold: { type: 'string' }, coordinator: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    process.stdout.write(CONTENT_USAGE + '\n');
    return 0;
  }
  const text = requireString(cmd, values, 'text', 'the product copy to check');
  const market = ((values.market as string | undefined) ?? 'cn') as Market;
  if (!MARKETS.includes(market)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --market must be one of ${MARKETS.join(', ')}, got "${market}"`);
  let model: Parameters<typeof checkCopy>[2];
  if (values.model !== undefined) {
    const classifier = await load(values, values.model as string, cmd);
    model = { classifier, positive: requireString(cmd, values, 'positive', `the class of ${values.model as string} that counts as a violation (its classes: ${classifier.classes.join(', ')})`), threshold: numberFlag(cmd, values, 'threshold', 0.5, 0, 1) };
  }
  const r = checkCopy(text, market, model);
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : `${r.pass ? 'PASS' : 'FAIL'} (${market})\n` + r.violations.map((v) => `  ${v.rule}: "${v.span.text}" [${v.span.start}, ${v.span.end}) — ${v.reason}; ${v.source}\n    suggestion: ${v.suggestion}\n`).join('') + (r.classifier.score !== null ? `  classifier P(${r.classifier.label}) = ${r.classifier.score}\n` : ''));
  return r.pass ? 0 : 3;
}
