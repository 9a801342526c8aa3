/**
 * Content compliance for product copy: the advertising-law rule engine
 * (`rules.ts`) plus, optionally, the federated text classifier for
 * violations the rules miss (a text model trained with
 * `fedmart scenario text`, e.g. on SpamAssassin spam vs ham as deceptive vs
 * legitimate marketing mail).
 */
import { FedmartError } from '@fedmart/shared/errors';
import { findViolations, MARKETS, type Market, type Violation } from './rules.ts';
import type { TextClassifier } from '../text/classifier.ts';

export { RULES, MARKETS, findViolations, type Market, type Violation, type ContentRule } from './rules.ts';

/** What {@link checkCopy} returns. */
export interface CopyCheck {
  pass: boolean;
  market: Market;
  violations: Violation[];
  /** The classifier's probability that the copy is deceptive (its `positive` class), or null without a classifier. */
  classifier: { score: number | null; label?: string; threshold?: number };
}

/**
 * Check product copy against the rules of a market, and score it with a classifier if given.
 * @param text - the copy as written
 * @param market - cn | us | eu (default cn)
 * @param model - optional classifier, its class counted as a violation (`positive`, e.g. "spam") and the score threshold (default 0.5)
 * @returns pass (no rule hit and score below threshold), the violations and the score
 * @throws FedmartError CONFIG_ERROR for an unknown market or a positive class the model does not have
 */
export function checkCopy(text: string, market: Market = 'cn', model?: { classifier: TextClassifier; positive: string; threshold?: number }): CopyCheck {
  if (!MARKETS.includes(market)) throw new FedmartError('CONFIG_ERROR', `unknown market "${String(market)}"; choose one of: ${MARKETS.join(', ')}`);
  if (typeof text !== 'string') throw new FedmartError('CONFIG_ERROR', 'checkCopy: text must be a string');
  const violations = findViolations(text, market);
  let classifier: CopyCheck['classifier'] = { score: null };
  if (model) {
    const k = model.classifier.classes.indexOf(model.positive);
    if (k === -1) throw new FedmartError('CONFIG_ERROR', `the classifier has no class "${model.positive}" (its classes: ${model.classifier.classes.join(', ')})`);
    const threshold = model.threshold ?? 0.5;
    classifier = { score: Math.round(model.classifier.proba(text)[k]! * 1e4) / 1e4, label: model.positive, threshold };
  }
  return { pass: violations.length === 0 && (classifier.score === null || classifier.score < (classifier.threshold ?? 0.5)), market, violations, classifier };
}
