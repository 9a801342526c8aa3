import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildNeighbourGraph, defaultNeighbourDegree } from './graph.ts';

const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('SecAgg+ neighbourhood graph', () => {
  it('is k-regular, symmetric, loop-free and connected for even k < n − 1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 80 }), seedArb, fc.nat(), (n, seed, pick) => {
        // Arrange
        const ids = Array.from({ length: n }, (_, i) => 1000 + 3 * i);
        const evens = Array.from({ length: Math.floor((n - 2) / 2) }, (_, i) => 2 * (i + 1)).filter((k) => k < n - 1);
        fc.pre(evens.length > 0);
        const k = evens[pick % evens.length]!;
        // Act
        const g = buildNeighbourGraph(ids, seed, k);
        // Assert
        expect(g.degree).toBe(k);
        expect(g.complete).toBe(false);
        const sets = new Map(ids.map((id) => [id, new Set(g.neighbours.get(id))]));
        const regular = ids.every((id) => g.neighbours.get(id)!.length === k && sets.get(id)!.size === k && !sets.get(id)!.has(id));
        const symmetric = ids.every((id) => [...sets.get(id)!].every((v) => sets.get(v)!.has(id)));
        expect(regular).toBe(true);
        expect(symmetric).toBe(true);
        const reached = new Set([ids[0]!]);
        const stack = [ids[0]!];
        while (stack.length) for (const v of g.neighbours.get(stack.pop()!)!) if (!reached.has(v)) (reached.add(v), stack.push(v));
        expect(reached.size).toBe(n);
      }),
      { numRuns: 30 },
    );
  });

  it('is a deterministic function of the public seed and the id set (not its order)', () => {
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    const seed = new Uint8Array(32).fill(7);
    const a = buildNeighbourGraph(ids, seed, 6);
    const b = buildNeighbourGraph([...ids].reverse(), seed.slice(), 6);
    const c = buildNeighbourGraph(ids, new Uint8Array(32).fill(8), 6);
    expect([...b.neighbours]).toEqual([...a.neighbours]);
    expect([...c.neighbours]).not.toEqual([...a.neighbours]);
  });

  it('is complete (plain SecAgg) when k ≥ n − 1', () => {
    const g = buildNeighbourGraph([5, 1, 9, 3], new Uint8Array(32), 10);
    expect(g.complete).toBe(true);
    expect(g.degree).toBe(3);
    expect(g.neighbours.get(1)).toEqual([3, 5, 9]);
  });

  it('default degree is ⌈2·log2 n⌉ rounded to even, capped at n − 1', () => {
    expect([3, 10, 50, 100, 1000].map(defaultNeighbourDegree)).toEqual([2, 8, 12, 14, 20]);
  });

  it('rejects odd k below n − 1, duplicate ids and bad seeds', () => {
    const ids = Array.from({ length: 10 }, (_, i) => i + 1);
    expect(() => buildNeighbourGraph(ids, new Uint8Array(32), 3)).toThrow(/even k/);
    expect(() => buildNeighbourGraph([1, 1, 2], new Uint8Array(32))).toThrow(/duplicate id 1/);
    expect(() => buildNeighbourGraph([0, 1, 2], new Uint8Array(32))).toThrow(/positive uint32/);
    expect(() => buildNeighbourGraph(ids, new Uint8Array(31))).toThrow(/seed/);
  });
});
