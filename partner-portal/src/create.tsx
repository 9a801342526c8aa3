import { useState } from 'preact/hooks';
import { STRATEGY_IDS } from '@fedmart/shared/strategy/types';
import { PURPOSES } from '@fedmart/shared/consent';
import type { Api } from './api.ts';
import { ActionButton } from './ui.tsx';

interface Form {
  name: string; inputDim: string; hidden: string; strategy: string; minClients: string;
  protection: 'none' | 'secagg' | 'ckks'; dp: 'off' | 'record' | 'partner'; sigma: string; clip: string; delta: string; sampleRate: string;
  localEpochs: string; batchSize: string; learningRate: string; purpose: string; requiresApproval: boolean;
}

const START: Form = { name: '', inputDim: '', hidden: '16,8', strategy: 'fedavg', minClients: '3', protection: 'none', dp: 'off', sigma: '1.0', clip: '1.0', delta: '1e-5', sampleRate: '0.05', localEpochs: '1', batchSize: '64', learningRate: '0.01', purpose: 'purchase-prediction', requiresApproval: false };

function num(label: string, v: string, { int = false, min = -Infinity, max = Infinity } = {}): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${label}: type a number`);
  if (int && !Number.isInteger(n)) throw new Error(`${label}: must be a whole number`);
  if (n < min || n > max) throw new Error(`${label}: must be between ${min} and ${max}`);
  return n;
}

/**
 * The federation config a form describes (tabular binary task). Checked here
 * for typos; the coordinator validates the whole config and its message is
 * shown when it refuses.
 */
export function configFromForm(f: Form): { name: string; config: Record<string, unknown> } {
  if (f.name.trim() === '') throw new Error('name: give the federation a name');
  const hidden = f.hidden.trim() === '' ? [] : f.hidden.split(',').map((h) => num('hidden layers', h, { int: true, min: 1, max: 4096 }));
  const config: Record<string, unknown> = {
    task: 'binary',
    model: { kind: 'mlp', inputDim: num('input size', f.inputDim, { int: true, min: 1, max: 100_000 }), hidden },
    strategy: f.strategy,
    minClients: num('minimum partners', f.minClients, { int: true, min: 1, max: 100_000 }),
    localTrain: { localEpochs: num('local epochs', f.localEpochs, { int: true, min: 1, max: 1000 }), batchSize: num('batch size', f.batchSize, { int: true, min: 1, max: 65536 }), learningRate: num('learning rate', f.learningRate, { min: 1e-9, max: 10 }), proximalMu: 0 },
  };
  if (f.purpose !== '') config.purpose = f.purpose;
  if (f.requiresApproval) config.release = { requiresApproval: true };
  if (f.protection === 'secagg') config.secureAggregation = {};
  if (f.protection === 'ckks') config.encryption = 'ckks';
  if (f.dp !== 'off') {
    config.dp = { level: f.dp, noiseMultiplier: num('noise multiplier σ', f.sigma, { min: 1e-6, max: 1e6 }), clip: num('clipping norm', f.clip, { min: 1e-9, max: 1e6 }), delta: num('δ', f.delta, { min: 1e-12, max: 0.5 }), ...(f.dp === 'record' ? { sampleRate: num('sampling rate q', f.sampleRate, { min: 1e-9, max: 1 }) } : {}) };
  }
  return { name: f.name.trim(), config };
}

export function CreateFederation(props: { api: Api; onCreated: (id: string) => void }) {
  const [f, setF] = useState<Form>(START);
  const field = (k: Exclude<keyof Form, 'requiresApproval'>) => ({ value: f[k], onInput: (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value }) });
  return (
    <details class="create">
      <summary>Create a federation</summary>
      <form class="inline" onSubmit={(e) => e.preventDefault()} data-testid="create-form">
        <label>Name <input {...field('name')} data-testid="create-name" /></label>
        <label>Input size (encoded features) <input inputMode="numeric" {...field('inputDim')} data-testid="create-input" /></label>
        <label>Hidden layers (comma-separated widths) <input {...field('hidden')} /></label>
        <label>Strategy <select value={f.strategy} onChange={(e) => setF({ ...f, strategy: (e.currentTarget as HTMLSelectElement).value })}>{STRATEGY_IDS.map((s) => <option key={s} value={s}>{s}</option>)}</select></label>
        <label>Minimum partners per round <input inputMode="numeric" {...field('minClients')} /></label>
        <label>Protection of updates <select value={f.protection} onChange={(e) => setF({ ...f, protection: (e.currentTarget as HTMLSelectElement).value as Form['protection'] })}><option value="none">none</option><option value="secagg">secure aggregation</option><option value="ckks">CKKS encryption</option></select></label>
        <label>Differential privacy <select value={f.dp} data-testid="create-dp" onChange={(e) => setF({ ...f, dp: (e.currentTarget as HTMLSelectElement).value as Form['dp'] })}><option value="off">off</option><option value="record">record level</option><option value="partner">partner level</option></select></label>
        {f.dp !== 'off' ? <>
          <label>Noise multiplier σ <input inputMode="decimal" {...field('sigma')} /></label>
          <label>Clipping norm C <input inputMode="decimal" {...field('clip')} /></label>
          <label>δ <input inputMode="decimal" {...field('delta')} /></label>
          {f.dp === 'record' ? <label>Sampling rate q <input inputMode="decimal" {...field('sampleRate')} /></label> : null}
        </> : null}
        <label>Purpose (partners refuse a purpose their consent does not cover) <select value={f.purpose} onChange={(e) => setF({ ...f, purpose: (e.currentTarget as HTMLSelectElement).value })}><option value="">not stated</option>{PURPOSES.map((p) => <option key={p} value={p}>{p}</option>)}</select></label>
        <label class="check"><input type="checkbox" checked={f.requiresApproval} data-testid="create-approval" onChange={(e) => setF({ ...f, requiresApproval: (e.currentTarget as HTMLInputElement).checked })} /> Releases need a compliance officer's approval</label>
        <label>Local epochs <input inputMode="numeric" {...field('localEpochs')} /></label>
        <label>Batch size <input inputMode="numeric" {...field('batchSize')} /></label>
        <label>Learning rate <input inputMode="decimal" {...field('learningRate')} /></label>
        <ActionButton label="Create federation" kind="primary" testId="create-submit" run={async () => {
          const body = configFromForm(f);
          const r = await props.api.send<{ federation: { id: string } }>('POST', '/federations', body);
          setF(START);
          props.onCreated(r.federation.id);
        }} />
      </form>
    </details>
  );
}
