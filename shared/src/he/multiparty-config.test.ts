/**
 * `he: { keys: 'multiparty' }` is checked when a federation is created
 * (shared/src/protocol.ts heConfigIssues): combinations that cannot give
 * n-out-of-n multiparty CKKS its guarantee are refused with the reason.
 */
import { describe, expect, it } from 'vitest';
import { FederationConfigSchema } from '../protocol.ts';

const base = { model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 }, minClients: 3 };
const issues = (extra: Record<string, unknown>) => {
  const r = FederationConfigSchema.safeParse({ ...base, ...extra });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe("federation setting he: { keys: 'multiparty' }", () => {
  it('is accepted with CKKS, every partner in every round and at least two partners; kept in the config', () => {
    const r = FederationConfigSchema.safeParse({ ...base, encryption: 'ckks', he: { keys: 'multiparty' } });
    expect(r.success).toBe(true);
    expect(r.success && r.data.he).toEqual({ keys: 'multiparty' });
    expect(issues({ encryption: 'ckks', he: { keys: 'federation' }, keyHolder: 'a' })).toEqual([]);
  });

  it('refuses it without CKKS, with a key holder, with minClients < 2, with sampled rounds, and an unknown key mode', () => {
    expect(issues({ he: { keys: 'multiparty' } }).join()).toMatch(/he\.keys: he applies with encryption 'ckks' only/);
    expect(issues({ encryption: 'ckks', he: { keys: 'multiparty' }, keyHolder: 'a' }).join()).toMatch(/no key holder.*drop keyHolder/);
    expect(issues({ encryption: 'ckks', he: { keys: 'multiparty' }, minClients: 1 }).join()).toMatch(/minClients ≥ 2/);
    expect(issues({ encryption: 'ckks', he: { keys: 'multiparty' }, minClients: 101 }).join()).toMatch(/at most 100 key parties/);
    expect(issues({ encryption: 'ckks', he: { keys: 'multiparty' }, sampleFraction: 0.5 }).join()).toMatch(/n-out-of-n.*sampleFraction to 1/);
    expect(issues({ encryption: 'ckks', he: { keys: 'threshold' } }).length).toBeGreaterThan(0);
  });
});
