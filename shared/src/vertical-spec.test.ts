import { describe, expect, it } from 'vitest';
import { normaliseId, parsePartiesFlag, VerticalSpecSchema } from './vertical-spec.ts';
import { FederationConfigSchema } from './protocol.ts';

const base = {
  labelHolder: { party: 'platform', label: 'y', columns: ['age', 'job'] },
  featureHolders: [{ party: 'brand-a', columns: ['housing'] }, { party: 'brand-b', columns: ['poutcome'] }],
  idColumn: 'customer_id', model: 'lr', epochs: 3,
};
const issues = (v: unknown) => {
  const r = VerticalSpecSchema.safeParse(v);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('vertical spec', () => {
  it('accepts a valid spec with defaults', () => {
    const s = VerticalSpecSchema.parse(base);
    expect(s.idNormalisation).toBe('trim');
    expect(s.testFraction).toBe(0.2);
  });
  it('refuses a column declared twice, the ID or the label as a feature, a party named twice', () => {
    expect(issues({ ...base, featureHolders: [{ party: 'brand-a', columns: ['age'] }] })).toEqual([expect.stringMatching(/column "age" is declared by both platform and brand-a/)]);
    expect(issues({ ...base, featureHolders: [{ party: 'brand-a', columns: ['customer_id'] }] })).toEqual([expect.stringMatching(/is the ID column/)]);
    expect(issues({ ...base, featureHolders: [{ party: 'brand-a', columns: ['y'] }] })).toEqual([expect.stringMatching(/is the label/)]);
    expect(issues({ ...base, featureHolders: [{ party: 'platform', columns: ['loan'] }] })).toEqual([expect.stringMatching(/party "platform" is named twice/)]);
  });
  it('ties protections to the model', () => {
    expect(issues({ ...base, protections: { embeddingNoise: 0.1 } })).toEqual([expect.stringMatching(/embedding noise applies to model splitnn/)]);
    expect(issues({ ...base, model: 'splitnn', protections: { ckks: true } })).toEqual([expect.stringMatching(/CKKS protects vertical LR/)]);
    expect(issues({ ...base, protections: { ckks: false } })).toEqual([expect.stringMatching(/cannot be turned off/)]);
  });
  it('needs mode vertical in a federation config', () => {
    const r = FederationConfigSchema.safeParse({ vertical: base, model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 } });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message)).toContain("a vertical spec needs mode 'vertical'");
  });
  it('normalises IDs and parses --parties', () => {
    expect(normaliseId(' C01 ', 'trim')).toBe('C01');
    expect(normaliseId(' C01 ', 'trim-lower')).toBe('c01');
    expect(normaliseId(' C01 ', 'exact')).toBe(' C01 ');
    expect(parsePartiesFlag('brand-a:housing, loan;brand-b:poutcome')).toEqual([{ party: 'brand-a', columns: ['housing', 'loan'] }, { party: 'brand-b', columns: ['poutcome'] }]);
    expect(parsePartiesFlag('brand-a')).toEqual([{ party: '', columns: [] }]);
  });
});
