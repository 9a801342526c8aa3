import { describe, expect, it } from 'vitest';
import { SECAGG_STAGES, type SecAggStage } from './messages.ts';
import { runSecAggInMemory } from './simulate.ts';

const cases: [number, SecAggStage][] = [];
for (const rate of [0.1, 0.3]) for (const stage of SECAGG_STAGES) cases.push([rate, stage]);

describe('runSecAggInMemory: end-to-end rounds with dropouts', () => {
  it('no dropout: plain SecAgg and SecAgg+ both recover the weighted mean', () => {
    for (const neighbours of [undefined, 100]) {
      // Act
      const r = runSecAggInMemory({ clients: 12, params: 2000, neighbours, seed: 3 });
      // Assert
      expect(r.outcome).toBe('ok');
      expect(r.survivors).toBe(12);
      expect(r.correct).toBe(true);
      expect(r.maxAbsError).toBeLessThanOrEqual(r.errorBound);
    }
  });

  it('times server and plain sum on an injected CPU clock too, and only when given one', () => {
    // Arrange: a fake clock that advances 1 ms per reading; each timed server call reads it twice (a 1 ms span).
    let now = 0;
    // Act
    const r = runSecAggInMemory({ clients: 5, params: 10, seed: 2, cpuClock: () => now++ });
    const plain = runSecAggInMemory({ clients: 5, params: 10, seed: 2 });
    // Assert: 5 masked inputs received, then close + 5 receives at consistency-check and unmask each, and the final close: 5 + 6 + 6 + 1 = 18 timed calls
    expect(r.outcome).toBe('ok');
    expect(r.serverCpuMs).toBe(18);
    expect(r.plainSumCpuMs).toBe(1);
    expect(plain.serverCpuMs).toBeUndefined();
  });

  it.each(cases)('%s dropout at stage %s (complete graph) is correct', (dropout, stage) => {
    // Arrange: 12 clients, k = 11, t = 6
    // Act
    const r = runSecAggInMemory({ clients: 12, params: 2000, dropout, dropoutStage: stage, neighbours: 11, seed: 5 });
    // Assert
    const dropped = Math.round(dropout * 12);
    expect(r.droppedAt[stage]).toBe(dropped);
    expect(r.outcome, r.failure).toBe('ok');
    // Clients dropping at the consistency check or while unmasking already sent their masked input: they are in the sum.
    expect(r.survivors).toBe(stage === 'unmask' || stage === 'consistency-check' ? 12 : 12 - dropped);
    expect(r.correct).toBe(true);
  });

  it.each(SECAGG_STAGES)('10%% dropout at stage %s with SecAgg+ neighbourhoods (n = 40, default k = 18) is correct', (stage) => {
    const r = runSecAggInMemory({ clients: 40, params: 1000, dropout: 0.1, dropoutStage: stage, seed: 11 });
    expect(r.neighbours).toBe(18);
    expect(r.threshold).toBe(6);
    expect(r.outcome, r.failure).toBe('ok');
    expect(r.correct).toBe(true);
  });

  it('30% dropout at random stages, 16-bit ring and deterministic rounding', () => {
    const r = runSecAggInMemory({ clients: 12, params: 3000, dropout: 0.3, neighbours: 11, seed: 9, quantization: { bits: 16, maxWeight: 50, rounding: 'deterministic' } });
    expect(r.outcome, r.failure).toBe('ok');
    expect(r.correct).toBe(true);
    expect(r.errorBound).toBeGreaterThan(1e-5); // 16 bits is coarse: the bound is real, and met
  });

  it('reports (does not throw) a round that fails because too many clients dropped', () => {
    // 5 of 10 drop before masking; t = 5 but each survivor has only 4 surviving neighbours, so all are excluded
    const r = runSecAggInMemory({ clients: 10, params: 100, dropout: 0.5, dropoutStage: 'masked-input', neighbours: 9, seed: 2 });
    expect(r.outcome).toBe('failed');
    expect(r.failure).toMatch(/stage 'masked-input': 0 client\(s\) are left in the survivor set \(5 excluded for fewer than t = 5 surviving neighbours\), fewer than the 6 signatures/);
    expect(r.correct).toBe(false);
  });

  it('rejects invalid options', () => {
    expect(() => runSecAggInMemory({ clients: 2, params: 10 })).toThrow(/clients/);
    expect(() => runSecAggInMemory({ clients: 5, params: 10, dropout: 1 })).toThrow(/dropout/);
  });
});
