/**
 * Issue 9, item 4 (acceptance): explanations of a model trained by the
 * repo's own trainer on the real UCI Bank Marketing data (bank-full, 45,211
 * customers, `duration` dropped), computed the federated way — each of 6
 * partners (split by job) permutes its own validation rows and only the
 * importance vectors are combined. An independent logistic regression with
 * permutation importance by column ranks contact, month, poutcome, housing,
 * campaign; ours must put contact, month and poutcome in the top 5, and the
 * per-row attributions must add up (exactly for LR, within 1% for the MLP).
 */
import { describe, expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { trainLocal } from '@fedmart/client-node/ml/trainer';
import { initWeights, type ModelSpec } from '@fedmart/shared/model';
import { bankMarketingPath } from '../cli/datasets.ts';
import { prepareExperiment } from '../cli/experiment.ts';
import { explainFederatedModel, explanationsJson } from '../cli/explain.ts';

await initBackend();
const table = await readTableFile(bankMarketingPath('full'), { sep: ';' });
const exp = prepareExperiment({ table, label: 'y', positive: 'yes', partitionBy: 'job', partners: 6, seed: 1, drop: ['duration'] });

async function trained(hidden: number[]): Promise<{ spec: ModelSpec; weights: Float32Array }> {
  const spec: ModelSpec = { kind: 'mlp', inputDim: exp.d, hidden };
  const r = await trainLocal({ spec, weights: initWeights(spec, 1), x: exp.central.x, y: exp.central.y, n: exp.central.n, config: { localEpochs: 5, batchSize: 256, learningRate: 0.01, proximalMu: 0 }, seed: 1 });
  return { spec, weights: r.weights };
}

describe('issue 9: explanations on the bank data', { timeout: 300_000 }, () => {
  for (const [name, hidden] of [['logistic regression', []], ['MLP [32]', [32]]] as const) {
    it(`${name}: contact, month and poutcome rank in the top 5, per-row attributions add up`, async () => {
      // Arrange
      const { spec, weights } = await trained([...hidden]);
      // Act
      const e = explainFederatedModel({ spec, weights, schema: exp.schema, partners: exp.partners.map((p) => ({ id: p.id, ...p.data })), seed: 1 });
      // Assert
      const top5 = e.global.slice(0, 5).map((g) => g.feature);
      expect(top5, JSON.stringify(e.global)).toEqual(expect.arrayContaining(['contact', 'month', 'poutcome']));
      expect(e.global.map((g) => g.feature).sort()).toEqual(exp.schema.features.map((f) => f.name).sort()); // original columns, not one-hot columns
      expect(e.validationRows).toBe(exp.partners.reduce((s, p) => s + p.data.valN, 0));
      expect(e.partners.map((p) => p.rows)).toEqual(exp.partners.map((p) => p.data.valN));
      expect(e.attributions.rowsChecked).toBe(120);
      expect(e.attributions.baseline).toBe('training-mean');
      const json = explanationsJson(e); // what simulate --json reports
      expect(json).not.toHaveProperty('baseline');
      expect(json.global.slice(0, 5).map((g) => g.feature)).toEqual(top5);
      expect(JSON.parse(JSON.stringify(json)).method).toBe('permutation-importance');
      if (hidden.length === 0) {
        expect(e.attributions.method).toBe('linear-exact');
        expect(e.attributions.maxCompletenessError).toBeLessThan(1e-9);
      } else {
        expect(e.attributions.method).toBe('integrated-gradients');
        expect(e.attributions.maxCompletenessError).toBeLessThanOrEqual(0.01);
      }
    });
  }
});
