import type { FederationConfig } from '@fedmart/shared/protocol';

/** A federation's terms in words: what a partner consents to. */
export function Terms(props: { config: FederationConfig }) {
  const c = props.config;
  const protection = c.secureAggregation ? 'secure aggregation (the coordinator sees only the sum of updates)' : c.encryption === 'ckks' ? 'CKKS homomorphic encryption (the coordinator adds ciphertexts it cannot read)' : 'none: the coordinator sees each partner\'s update';
  const dp = c.dp
    ? `${c.dp.level}-level differential privacy: updates clipped to L2 norm ${c.dp.clip}, Gaussian noise σ = ${c.dp.noiseMultiplier} × clip${c.dp.mode ? ` (${c.dp.mode} noise)` : ''}, δ = ${c.dp.delta}${c.dp.sampleRate !== undefined ? `, sampling rate q = ${c.dp.sampleRate}` : ''}${c.dp.adaptiveClip ? ', adaptive clipping' : ''}`
    : 'off (no formal privacy guarantee on the released model)';
  const model = c.model.kind === 'mlp' ? `MLP ${c.model.inputDim}→${c.model.hidden.join('→')}→1` : `${c.model.tensors.length} joint tensors (scenario ${c.task})`;
  return (
    <dl class="terms">
      <dt>Task</dt><dd>{c.task}{c.mode === 'vertical' ? ' (vertical: parties hold different columns of the same customers)' : ''}</dd>
      <dt>Model</dt><dd>{model}</dd>
      <dt>Strategy</dt><dd>{c.strategy}, at least {c.minClients} partners per round, {Math.round(c.sampleFraction * 100)}% sampled</dd>
      <dt>Protection of updates</dt><dd>{protection}</dd>
      <dt>Differential privacy</dt><dd>{dp}</dd>
      <dt>Purpose</dt><dd>{c.purpose ?? 'not stated'}</dd>
      <dt>Model release</dt><dd>{c.release?.requiresApproval ? 'each version needs an operator\'s request and a compliance officer\'s approval' : 'each committed version is published'}</dd>
      <dt>Per-partner limits</dt><dd>at most {c.limits.maxExamplesPerPartner.toLocaleString()} examples counted; updates above {c.limits.medianNormFactor}× the median norm are {c.limits.onLargeUpdate === 'clip' ? 'clipped' : 'rejected'}</dd>
    </dl>
  );
}
