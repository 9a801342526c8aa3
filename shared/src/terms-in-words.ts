/**
 * A federation's terms in words: what a partner consents to, one line per term. The partner portal's
 * invitation and `fedmart partner consent --show` print the same lines.
 */
import type { FederationConfig } from './protocol.ts';

/**
 * Describe a federation's configuration as the terms a partner reads before consenting.
 * @param c - the federation's config (as `GET /federations/:id/consent` returns it)
 * @returns labelled lines, in reading order
 * @example describeFederationTerms(config).map((t) => `${t.label}: ${t.text}`).join('\n')
 */
export function describeFederationTerms(c: FederationConfig): { label: string; text: string }[] {
  const protection = c.secureAggregation ? 'secure aggregation (the coordinator sees only the sum of updates)' : c.encryption === 'ckks' ? 'CKKS homomorphic encryption (the coordinator adds ciphertexts it cannot read)' : 'none: the coordinator sees each partner\'s update';
  const dp = c.dp
    ? `${c.dp.level}-level differential privacy: updates clipped to L2 norm ${c.dp.clip}, Gaussian noise σ = ${c.dp.noiseMultiplier} × clip${c.dp.mode ? ` (${c.dp.mode} noise)` : ''}, δ = ${c.dp.delta}${c.dp.sampleRate !== undefined ? `, sampling rate q = ${c.dp.sampleRate}` : ''}${c.dp.adaptiveClip ? ', adaptive clipping' : ''}`
    : 'off (no formal privacy guarantee on the released model)';
  const model = c.model.kind === 'mlp' ? `MLP ${c.model.inputDim}→${c.model.hidden.join('→')}→1` : `${c.model.tensors.length} joint tensors (scenario ${c.task})`;
  return [
    { label: 'Task', text: `${c.task}${c.mode === 'vertical' ? ' (vertical: parties hold different columns of the same customers)' : ''}` },
    { label: 'Model', text: model },
    { label: 'Strategy', text: `${c.strategy}, at least ${c.minClients} partners per round, ${Math.round(c.sampleFraction * 100)}% sampled` },
    { label: 'Protection of updates', text: protection },
    { label: 'Differential privacy', text: dp },
    { label: 'Purpose', text: c.purpose ?? 'not stated' },
    { label: 'Model release', text: c.release?.requiresApproval ? 'each version needs an operator\'s request and a compliance officer\'s approval' : 'each committed version is published' },
    { label: 'Per-partner limits', text: `at most ${c.limits.maxExamplesPerPartner.toLocaleString('en-US')} examples counted; updates above ${c.limits.medianNormFactor}× the median norm are ${c.limits.onLargeUpdate === 'clip' ? 'clipped' : 'rejected'}` },
  ];
}
