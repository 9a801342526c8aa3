/**
 * Customer-service triage: an intent classifier, a sentiment model and an
 * escalation rule. A ticket goes to a human when the intent's calibrated
 * confidence is below the brand's threshold, when sentiment is strongly
 * negative, or when the intent is one the brand marks human-only; every
 * decision carries its reasons. The models are federated text models
 * (`fedmart scenario text`), loaded through a ModelRegistry; a brand's own
 * ticket intents drop in by training on its tickets' labels.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { TextClassifier } from '../text/classifier.ts';

/** The brand's escalation policy. */
export interface ServicePolicy {
  /** Intents always handed to a human (e.g. "refund", "legal"). */
  humanOnlyIntents: readonly string[];
  /** Escalate when the top intent's calibrated probability is below this (default 0.6). */
  minConfidence: number;
  /** Escalate when P(negative sentiment) is at least this (default 0.85). */
  negativeThreshold: number;
  /** The sentiment model's negative class (default: the first of negative/neg/other/bad/spam it has). */
  negativeClass?: string;
}

export const DEFAULT_POLICY: ServicePolicy = Object.freeze({ humanOnlyIntents: [], minConfidence: 0.6, negativeThreshold: 0.85 });

/** A triaged ticket. */
export interface TicketDecision {
  intent: string;
  confidence: number;
  sentiment: { label: string; negative: number } | null;
  escalate: boolean;
  reasons: string[];
}

const NEGATIVE_NAMES = ['negative', 'neg', 'other', 'bad', 'spam'];
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/**
 * Build a ticket classifier.
 * @param models - the intent model, and optionally a sentiment model
 * @param policy - escalation policy (defaults {@link DEFAULT_POLICY})
 * @returns classifyTicket(text) → {intent, confidence, sentiment, escalate, reasons}
 * @throws FedmartError CONFIG_ERROR when the policy names an intent or class the models do not have
 */
export function ticketClassifier(models: { intent: TextClassifier; sentiment?: TextClassifier }, policy: Partial<ServicePolicy> = {}): (text: string) => TicketDecision {
  const p: ServicePolicy = { ...DEFAULT_POLICY, ...policy };
  for (const i of p.humanOnlyIntents) if (!models.intent.classes.includes(i)) throw new FedmartError('CONFIG_ERROR', `human-only intent "${i}" is not a class of the intent model (its classes: ${models.intent.classes.join(', ')})`);
  if (!(p.minConfidence >= 0 && p.minConfidence <= 1) || !(p.negativeThreshold >= 0 && p.negativeThreshold <= 1)) throw new FedmartError('CONFIG_ERROR', 'minConfidence and negativeThreshold must be in [0, 1]');
  let neg = -1;
  if (models.sentiment) {
    const name = p.negativeClass ?? NEGATIVE_NAMES.find((n) => models.sentiment!.classes.includes(n));
    neg = name === undefined ? -1 : models.sentiment.classes.indexOf(name);
    if (neg === -1) throw new FedmartError('CONFIG_ERROR', `cannot tell the sentiment model's negative class among ${models.sentiment.classes.join(', ')}; set negativeClass (--negative-class)`);
  }
  return (text) => {
    if (typeof text !== 'string' || text.trim() === '') throw new FedmartError('CONFIG_ERROR', 'a ticket needs non-empty text');
    const probs = models.intent.proba(text);
    let k = 0;
    for (let c = 1; c < probs.length; c++) if (probs[c]! > probs[k]!) k = c;
    const intent = models.intent.classes[k]!;
    const confidence = r4(probs[k]!);
    const reasons: string[] = [];
    if (confidence < p.minConfidence) reasons.push(`low confidence: ${confidence} < ${p.minConfidence} for intent "${intent}"`);
    if (p.humanOnlyIntents.includes(intent)) reasons.push(`intent "${intent}" is human-only for this brand`);
    let sentiment: TicketDecision['sentiment'] = null;
    if (models.sentiment) {
      const s = models.sentiment.proba(text);
      let top = 0;
      for (let c = 1; c < s.length; c++) if (s[c]! > s[top]!) top = c;
      sentiment = { label: models.sentiment.classes[top]!, negative: r4(s[neg]!) };
      if (sentiment.negative >= p.negativeThreshold) reasons.push(`strongly negative sentiment: P(${models.sentiment.classes[neg]}) = ${sentiment.negative} >= ${p.negativeThreshold}`);
    }
    if (reasons.length === 0) reasons.push(`automated: intent "${intent}" at confidence ${confidence}${sentiment ? `, P(negative) ${sentiment.negative}` : ''}`);
    return { intent, confidence, sentiment, escalate: reasons.length > 0 && !reasons[0]!.startsWith('automated'), reasons };
  };
}

/**
 * Classify one ticket (see {@link ticketClassifier}).
 * @param text - the ticket
 * @param models - intent (and sentiment) models
 * @param policy - escalation policy
 */
export function classifyTicket(text: string, models: { intent: TextClassifier; sentiment?: TextClassifier }, policy: Partial<ServicePolicy> = {}): TicketDecision {
  return ticketClassifier(models, policy)(text);
}
