import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { createStrategy, isStrategyId, listStrategies } from './registry.ts';
import { STRATEGY_IDS } from './types.ts';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('createStrategy', () => {
  it('creates every registered id, with the id it was asked for', () => {
    for (const id of STRATEGY_IDS) expect(createStrategy(id).id).toBe(id);
  });

  it('returns a fresh instance each time (server optimizer state is per federation)', () => {
    expect(createStrategy('fedadam')).not.toBe(createStrategy('fedadam'));
  });

  it('rejects an unknown id with CONFIG_ERROR listing the choices', () => {
    const err = thrown(() => createStrategy('fedsgd'));
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    expect((err as Error).message).toBe('unknown strategy "fedsgd"; choose one of: fedavg, fedprox, fedadam, fedyogi, median, trimmed-mean, krum');
    expect(isFedmartError(thrown(() => createStrategy(42 as unknown as string)), 'CONFIG_ERROR')).toBe(true);
  });

  it('passes options through and validates them', () => {
    const s = createStrategy('fedprox', { proximalMu: 0.3 });
    expect(s.configureTrain({ round: 1, global: new Float32Array(1), clients: [] }, { localEpochs: 1, batchSize: 1, learningRate: 1, proximalMu: 0 }).proximalMu).toBe(0.3);
    expect(isFedmartError(thrown(() => createStrategy('trimmed-mean', { trimBeta: 0.7 })), 'CONFIG_ERROR')).toBe(true);
    expect(isFedmartError(thrown(() => createStrategy('fedavg', null as unknown as object)), 'CONFIG_ERROR')).toBe(true);
  });

  it('ignores options meant for other strategies', () => {
    expect(() => createStrategy('fedavg', { krumF: 3, tau: 0.1 })).not.toThrow();
  });
});

describe('listStrategies / isStrategyId', () => {
  it('lists every id in order, with its secure-aggregation compatibility matching the instance', () => {
    const list = listStrategies();
    expect(list.map((s) => s.id)).toEqual([...STRATEGY_IDS]);
    for (const info of list) expect(createStrategy(info.id).needsIndividualUpdates).toBe(info.needsIndividualUpdates);
    expect(list.find((s) => s.id === 'krum')!.options).toEqual(['krumF', 'krumM']);
  });

  it('returns copies the caller cannot use to corrupt the registry', () => {
    (listStrategies()[0]!.options as string[]).push('junk');
    expect(listStrategies()[0]!.options).toEqual([]);
  });

  it('recognises ids', () => {
    expect(isStrategyId('krum')).toBe(true);
    expect(isStrategyId('Krum')).toBe(false);
    expect(isStrategyId(undefined)).toBe(false);
  });
});
