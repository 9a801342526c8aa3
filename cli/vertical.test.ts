import { describe, expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { bankMarketingPath } from './datasets.ts';
import { parsePartyGroups, runVerticalExperiment, simulateVerticalCommand } from './vertical.ts';

const PARTIES = [
  ['age', 'balance', 'housing', 'loan', 'contact', 'day', 'month', 'campaign', 'pdays', 'previous', 'poutcome'],
  ['job', 'marital', 'education', 'default'],
];

describe('fedmart simulate --mode vertical (bank.csv, 4,521 rows)', () => {
  it('runs PSI, vertical LR under CKKS and both baselines end to end on real data', async () => {
    const table = await readTableFile(bankMarketingPath('small'), { sep: ';' });
    const r = await runVerticalExperiment({ table, label: 'y', drop: ['duration'], parties: PARTIES, model: 'lr', overlap: 0.8, epochs: 3, seed: 42 });
    // 20 % test held out (stratified: 904 rows), 80 % of the remaining 3,617 shared
    expect(r.testRows).toBe(904);
    expect(r.psi.intersection).toBe(Math.round(0.8 * (4521 - 904)));
    expect(r.parties.map((p) => p.encodedColumns)).toEqual([29, 21]);
    for (const auc of [r.vertical.auc, r.labelHolderOnly.auc, r.centralized.auc]) {
      expect(auc).toBeGreaterThan(0.6);
      expect(auc).toBeLessThanOrEqual(1);
    }
    expect(r.vertical.steps).toBe(3);
  });

  it('runs the split NN variant with noisy embeddings', async () => {
    const table = await readTableFile(bankMarketingPath('small'), { sep: ';' });
    const r = await runVerticalExperiment({ table, label: 'y', drop: ['duration'], parties: PARTIES, model: 'splitnn', overlap: 1, epochs: 4, noiseStd: 0.05, seed: 1 });
    expect(r.psi.intersection).toBe(4521 - 904);
    expect(r.vertical.auc).toBeGreaterThan(0.6);
  });

  it('rejects bad --parties with messages that say what to do', () => {
    const cols = ['a', 'b', 'c', 'y'];
    expect(() => parsePartyGroups('a,b', cols, ['y'])).toThrow(/at least two/);
    expect(() => parsePartyGroups('a|zz', cols, ['y'])).toThrow(/"zz", which is not in the data/);
    expect(() => parsePartyGroups('a|y', cols, ['y'])).toThrow(/label, the ID or a dropped/);
    expect(() => parsePartyGroups('a,b|b', cols, ['y'])).toThrow(/twice/);
  });

  it('rejects --label-dp outside vertical LR and --delta without --label-dp', async () => {
    const table = { columns: ['a', 'b', 'y'], rows: Array.from({ length: 40 }, (_, i) => [String(i), String(i % 3), i % 2 ? 'yes' : 'no']) };
    await expect(runVerticalExperiment({ table, label: 'y', parties: [['a'], ['b']], model: 'splitnn', overlap: 1, seed: 1, relay: 'memory', labelDp: { epsilon: 1, delta: 1e-5 } })).rejects.toThrow(/--label-dp noises vertical LR residuals; it does not apply to --model splitnn/);
    await expect(simulateVerticalCommand(['--mode', 'vertical', '--csv', 'x.csv', '--label', 'y', '--parties', 'a|b', '--delta', '1e-6'])).rejects.toThrow(/--delta is the δ of --label-dp; pass --label-dp EPS too/);
  });
});
