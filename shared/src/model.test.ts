import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isFedmartError } from './errors.ts';
import { initWeights, ModelSpecSchema, parameterCount, parameterShapes, seededRandom, splitWeights, type ModelSpec } from './model.ts';

const spec = (inputDim: number, hidden: number[]): ModelSpec => ({ kind: 'mlp', inputDim, hidden });

describe('parameterShapes / parameterCount', () => {
  it('logistic regression is one dense layer', () => {
    // Arrange
    const s = spec(5, []);
    // Act / Assert
    expect(parameterShapes(s)).toEqual([[5, 1], [1]]);
    expect(parameterCount(s)).toBe(6); // 5·1 + 1
  });

  it('one hidden layer', () => {
    const s = spec(3, [4]);
    expect(parameterShapes(s)).toEqual([[3, 4], [4], [4, 1], [1]]);
    expect(parameterCount(s)).toBe(21); // 12 + 4 + 4 + 1
  });

  it('two hidden layers', () => {
    const s = spec(51, [32, 16]);
    expect(parameterShapes(s)).toEqual([[51, 32], [32], [32, 16], [16], [16, 1], [1]]);
    expect(parameterCount(s)).toBe(51 * 32 + 32 + 32 * 16 + 16 + 16 + 1); // 2209
    expect(parameterCount(s)).toBe(2209);
  });

  it.each([
    ['zero input', { kind: 'mlp', inputDim: 0, hidden: [] }],
    ['fractional width', { kind: 'mlp', inputDim: 3, hidden: [2.5] }],
    ['zero width', { kind: 'mlp', inputDim: 3, hidden: [0] }],
    ['wrong kind', { kind: 'cnn', inputDim: 3, hidden: [] }],
    ['extra key', { kind: 'mlp', inputDim: 3, hidden: [], act: 'tanh' }],
  ])('rejects an invalid spec (%s) with CONFIG_ERROR', (_name, bad) => {
    expect(() => parameterCount(bad as ModelSpec)).toThrow(expect.objectContaining({ code: 'CONFIG_ERROR' }));
    expect(ModelSpecSchema.safeParse(bad).success).toBe(false);
  });
});

describe('initWeights', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const s = spec(10, [8]);
    expect(initWeights(s, 7)).toEqual(initWeights(s, 7));
    expect(initWeights(s, 7)).not.toEqual(initWeights(s, 8));
  });

  it('draws Glorot-uniform weights and zero biases', () => {
    // Arrange
    const s = spec(40, [20]);
    // Act
    const [w1, b1, w2, b2] = splitWeights(initWeights(s, 1), s);
    // Assert: bounds √(6/(40+20)) and √(6/(20+1))
    const lim1 = Math.sqrt(6 / 60);
    const lim2 = Math.sqrt(6 / 21);
    expect(Math.max(...w1.map(Math.abs))).toBeLessThanOrEqual(lim1);
    expect(Math.max(...w2.map(Math.abs))).toBeLessThanOrEqual(lim2);
    // 800 draws from U(−l, l): max |w| close to l, mean close to 0, variance l²/3
    expect(Math.max(...w1.map(Math.abs))).toBeGreaterThan(0.95 * lim1);
    const mean = w1.reduce((a, b) => a + b, 0) / w1.length;
    const variance = w1.reduce((a, b) => a + (b - mean) ** 2, 0) / w1.length;
    expect(Math.abs(mean)).toBeLessThan(0.05 * lim1);
    expect(variance).toBeGreaterThan(0.8 * (lim1 ** 2 / 3));
    expect(variance).toBeLessThan(1.2 * (lim1 ** 2 / 3));
    expect([...b1, ...b2].every((v) => v === 0)).toBe(true);
  });
});

describe('seededRandom', () => {
  it('yields uniform [0,1) values, reproducibly', () => {
    const a = seededRandom(123);
    const b = seededRandom(123);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
  });

  it('rejects a non-finite seed', () => {
    expect(() => seededRandom(Number.NaN)).toThrow(RangeError);
  });
});

describe('splitWeights', () => {
  it('returns aliasing views whose lengths match the shapes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 3 }), (inputDim, hidden) => {
        const s = spec(inputDim, hidden);
        const flat = initWeights(s, inputDim);
        const views = splitWeights(flat, s);
        const shapes = parameterShapes(s);
        expect(views.map((v) => v.length)).toEqual(shapes.map((sh) => sh.reduce((p, d) => p * d, 1)));
        expect(views.every((v) => v.buffer === flat.buffer)).toBe(true);
        views[views.length - 1][0] = 42; // output bias is the last value
        expect(flat[flat.length - 1]).toBe(42);
      }),
      { numRuns: 50 },
    );
  });

  it('rejects a wrong-length vector with INVALID_UPDATE', () => {
    const s = spec(3, [4]);
    let caught: unknown;
    try {
      splitWeights(new Float32Array(20), s);
    } catch (err) {
      caught = err;
    }
    expect(isFedmartError(caught, 'INVALID_UPDATE')).toBe(true);
    expect((caught as Error).message).toMatch(/20 values .* needs 21/);
  });

  it('rejects a non-Float32Array with TypeError', () => {
    expect(() => splitWeights([1, 2] as unknown as Float32Array, spec(1, []))).toThrow(TypeError);
  });
});
