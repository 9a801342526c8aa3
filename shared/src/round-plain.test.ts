/**
 * The plain (no secure aggregation) round state machine: every move is a
 * pure transition; out-of-phase events are rejected with the state unchanged.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRound, sampleClients, transition, type RoundEvent, type RoundState } from './round.ts';

const rand = () => 0.5;
const select = (available: string[], sampleFraction = 1): RoundEvent => ({ type: 'select', available, sampleFraction, rand });

function run(state: RoundState, ...events: RoundEvent[]) {
  const effects = [];
  for (const e of events) {
    const r = transition(state, e);
    expect(r.rejected, `${e.type} rejected: ${r.rejected}`).toBeUndefined();
    state = r.state;
    effects.push(...r.effects.map((x) => x.type));
  }
  return { state, effects };
}

describe('round state machine', () => {
  it('walks scheduled → training → aggregating → evaluating → committed', () => {
    // Arrange
    const s0 = createRound('r1', 1, 2);
    // Act
    const { state, effects } = run(
      s0,
      select(['a', 'b', 'c']),
      { type: 'train-result', nodeId: 'a' },
      { type: 'train-result', nodeId: 'b' },
      { type: 'train-result', nodeId: 'c' },
      { type: 'aggregated', ok: true, evaluators: ['a', 'b'] },
      { type: 'evaluate-result', nodeId: 'a' },
      { type: 'evaluate-result', nodeId: 'b' },
    );
    // Assert
    expect(state.phase).toBe('committed');
    expect(state.trained).toEqual(['a', 'b', 'c']);
    expect(effects).toEqual(['send-train', 'start-timer', 'aggregate', 'send-evaluate', 'start-timer', 'commit']);
    expect(s0.phase).toBe('scheduled'); // not mutated
  });

  it('waits in selecting until enough clients, then fails on the selecting timeout', () => {
    const s1 = run(createRound('r', 1, 3), select(['a'])).state;
    expect(s1.phase).toBe('selecting');
    expect(run(s1, select(['a', 'b', 'c'])).state.phase).toBe('training');
    const failed = transition(s1, { type: 'timeout', phase: 'selecting' });
    expect(failed.state).toMatchObject({ phase: 'failed', reason: expect.stringMatching(/too few clients/) });
  });

  it('aggregates without a client that leaves, and fails when too few can still report', () => {
    const training = run(createRound('r', 1, 2), select(['a', 'b', 'c'])).state;
    const oneLeft = run(training, { type: 'client-left', nodeId: 'c' }, { type: 'train-result', nodeId: 'a' }, { type: 'train-result', nodeId: 'b' });
    expect(oneLeft.state.phase).toBe('aggregating');
    expect(oneLeft.state.failures).toEqual({ c: 'disconnected during training' });
    const twoLeft = run(training, { type: 'client-left', nodeId: 'c' }, { type: 'train-failed', nodeId: 'b', reason: 'out of memory' });
    expect(twoLeft.state).toMatchObject({ phase: 'failed', reason: expect.stringMatching(/too few clients: 0 of 3 selected reported and 1 still pending, minimum is 2/) });
  });

  it('on the training timeout aggregates what arrived if it is enough, else fails', () => {
    const training = run(createRound('r', 1, 2), select(['a', 'b', 'c'])).state;
    const enough = run(training, { type: 'train-result', nodeId: 'a' }, { type: 'train-result', nodeId: 'b' }, { type: 'timeout', phase: 'training' });
    expect(enough.state.phase).toBe('aggregating');
    expect(enough.state.failures).toEqual({ c: 'timed out during training' });
    const short = run(training, { type: 'train-result', nodeId: 'a' }, { type: 'timeout', phase: 'training' });
    expect(short.state).toMatchObject({ phase: 'failed', reason: expect.stringMatching(/before the training timeout/) });
  });

  it('rejects out-of-phase, duplicate and unknown-client events without changing state', () => {
    const training = run(createRound('r', 1, 1), select(['a', 'b'])).state;
    const cases: RoundEvent[] = [
      { type: 'train-result', nodeId: 'zed' },
      { type: 'evaluate-result', nodeId: 'a' },
      { type: 'aggregated', ok: true, evaluators: [] },
    ];
    for (const e of cases) {
      const r = transition(training, e);
      expect(r.rejected).toBeTruthy();
      expect(r.state).toBe(training);
      expect(r.effects).toEqual([]);
    }
    const once = run(training, { type: 'train-result', nodeId: 'a' }).state;
    expect(transition(once, { type: 'train-result', nodeId: 'a' }).rejected).toMatch(/already sent/);
    const done = run(once, { type: 'train-result', nodeId: 'b' }, { type: 'aggregated', ok: false, reason: 'no usable updates' }).state;
    expect(done).toMatchObject({ phase: 'failed', reason: 'no usable updates' });
    expect(transition(done, { type: 'abort', reason: 'x' }).rejected).toMatch(/already failed/);
  });

  it('commits on the evaluation timeout with the evaluations that arrived', () => {
    const evaluating = run(createRound('r', 1, 1), select(['a', 'b']), { type: 'train-result', nodeId: 'a' }, { type: 'train-result', nodeId: 'b' }, { type: 'aggregated', ok: true, evaluators: ['a', 'b'] }, { type: 'evaluate-result', nodeId: 'a' }).state;
    const r = transition(evaluating, { type: 'timeout', phase: 'evaluating' });
    expect(r.state.phase).toBe('committed');
    expect(r.effects.map((e) => e.type)).toEqual(['commit']);
  });

  it('samples max(minClients, ⌈fraction·n⌉) distinct available clients', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 40 }), fc.double({ min: 0.01, max: 1, noNaN: true }), fc.integer({ min: 1, max: 10 }), fc.integer(), (ids, fraction, min, seed) => {
        let x = seed | 0;
        const r = () => ((x = (Math.imul(x, 1103515245) + 12345) | 0) >>> 0) / 2 ** 32;
        const picked = sampleClients(ids, fraction, min, r);
        expect(picked.length).toBe(Math.min(ids.length, Math.max(min, Math.ceil(fraction * ids.length))));
        expect(new Set(picked).size).toBe(picked.length);
        for (const p of picked) expect(ids).toContain(p);
      }),
    );
  });
});
