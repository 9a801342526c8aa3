import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import igVectors from '../../../test/vectors/explain/integrated-gradients.json' with { type: 'json' };
import { initWeights, type ModelSpec } from '../model.ts';
import type { DatasetSchema } from '../data/index.ts';
import { denseModel, forwardLogit, logitGradient } from './mlp.ts';
import { featureGroups } from './features.ts';
import { baselineFromColumnSums, baselineFromValues, encodedColumnSums, explainRow, integratedGradients, integratedGradientsExact } from './attributions.ts';

/** A random small MLP (weights from the seeded initializer, biases perturbed) and a random row and baseline. */
const arbCase = fc
  .record({
    d: fc.integer({ min: 1, max: 6 }),
    hidden: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }),
    seed: fc.integer({ min: 0, max: 1_000_000 }),
    scale: fc.double({ min: 0.5, max: 3, noNaN: true }),
  })
  .chain((c) =>
    fc.record({
      spec: fc.constant<ModelSpec>({ kind: 'mlp', inputDim: c.d, hidden: c.hidden }),
      seed: fc.constant(c.seed),
      scale: fc.constant(c.scale),
      x: fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: c.d, maxLength: c.d }),
      b: fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: c.d, maxLength: c.d }),
      bias: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 64, maxLength: 64 }),
    }),
  );

function weightsOf(spec: ModelSpec, seed: number, scale: number, bias: number[]): Float32Array {
  const w = initWeights(spec, seed);
  for (let i = 0; i < w.length; i++) w[i] = w[i]! * scale + bias[i % bias.length]! * 0.3;
  return w;
}

/** A schema of `d` numeric columns, so groups are single columns. */
const numericSchema = (d: number): DatasetSchema => ({ label: 'y', positive: ['1'], features: Array.from({ length: d }, (_, i) => ({ name: `f${i}`, type: 'numeric' as const })) });

describe('Integrated Gradients (Sundararajan, Taly, Yan 2017)', () => {
  it('matches the closed-form known-answer vectors for one-hidden-layer ReLU nets', () => {
    for (const c of igVectors.cases) {
      // Arrange
      const model = denseModel(c.spec as ModelSpec, Float32Array.from(c.weights));
      // Act
      const exact = integratedGradientsExact(model, c.x, 0, c.baseline);
      const riemann = integratedGradients(model, c.x, 0, c.baseline, 4096);
      // Assert: float32 weights round the vectors' 3-decimal values at ~1e-8 relative; the Riemann sum errs O(1/steps) per kink
      expect(exact.logit, c.name).toBeCloseTo(c.logit, 5);
      expect(exact.baselineLogit, c.name).toBeCloseTo(c.baselineLogit, 5);
      expect(exact.pieces, c.name).toBe(1 + c.activeFraction.filter((f) => f > 0 && f < 1).length);
      exact.attributions.forEach((a, j) => expect(a, `${c.name} column ${j}`).toBeCloseTo(c.attributions[j]!, 5));
      riemann.attributions.forEach((a, j) => expect(a, `${c.name} column ${j}`).toBeCloseTo(c.attributions[j]!, 2));
    }
  });

  it('integrated exactly, agrees with a fine Riemann sum on random deeper MLPs', () => {
    fc.assert(
      fc.property(arbCase, ({ spec, seed, scale, x, b, bias }) => {
        const model = denseModel(spec, weightsOf(spec, seed, scale, bias));
        const exact = integratedGradientsExact(model, x, 0, b);
        const riemann = integratedGradients(model, x, 0, b, 20_000);
        exact.attributions.forEach((a, j) => expect(Math.abs(a - riemann.attributions[j]!)).toBeLessThan(2e-3 * Math.max(1, Math.abs(a))));
      }),
      { numRuns: 40 },
    );
  });

  it('completeness: attributions of random MLPs sum to f(x) − f(baseline) (far inside 1%), and the reported error is the true one', () => {
    fc.assert(
      fc.property(arbCase, ({ spec, seed, scale, x, b, bias }) => {
        // Arrange
        const model = denseModel(spec, weightsOf(spec, seed, scale, bias));
        const groups = featureGroups(numericSchema(spec.inputDim));
        // Act
        const e = explainRow(model, groups, { kind: 'training-mean', x: Float64Array.from(b) }, x);
        // Assert
        const gap = forwardLogit(model, x) - forwardLogit(model, b);
        const sum = e.contributions.reduce((s, c) => s + c.contribution, 0);
        const trueError = Math.abs(sum - gap) / Math.max(Math.abs(gap), 1e-3);
        expect(e.method).toBe('integrated-gradients');
        expect(trueError).toBeLessThanOrEqual(1e-6); // the acceptance asks for 1%; exact integration leaves round-off
        expect(e.completenessError).toBeCloseTo(trueError, 12);
        expect(e.logit - e.baselineLogit).toBeCloseTo(gap, 12);
      }),
      { numRuns: 150 },
    );
  });

  it('too few steps leave a measurable completeness error that more steps remove', () => {
    // Arrange: a kink in the middle of the path (hidden unit switches on at α = 0.5)
    const spec: ModelSpec = { kind: 'mlp', inputDim: 1, hidden: [1] };
    const model = denseModel(spec, new Float32Array([1, 0, 1, 0]));
    // Act
    const coarse = integratedGradients(model, [1], 0, [-1], 2);
    const fine = integratedGradients(model, [1], 0, [-1], 1000);
    // Assert: f(x) − f(b) = relu(1) − relu(−1) = 1
    expect(coarse.attributions[0]).toBeCloseTo(1, 12); // midpoints 0.25, 0.75: one on, one off → (2)(½) = 1 by symmetry
    expect(integratedGradients(model, [1], 0, [-1], 3).attributions[0]).not.toBeCloseTo(1, 2);
    expect(fine.attributions[0]).toBeCloseTo(1, 12);
  });
});

describe('exact linear contributions', () => {
  it('sum to the logit minus the baseline logit, to float64 round-off', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }).chain((d) =>
          fc.record({
            w: fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: d + 1, maxLength: d + 1 }),
            x: fc.array(fc.double({ min: -4, max: 4, noNaN: true }), { minLength: d, maxLength: d }),
            b: fc.array(fc.double({ min: -4, max: 4, noNaN: true }), { minLength: d, maxLength: d }),
          }),
        ),
        ({ w, x, b }) => {
          // Arrange
          const d = x.length;
          const spec: ModelSpec = { kind: 'mlp', inputDim: d, hidden: [] };
          const weights = Float32Array.from(w);
          const model = denseModel(spec, weights);
          // Act
          const e = explainRow(model, featureGroups(numericSchema(d)), { kind: 'training-mean', x: Float64Array.from(b) }, x);
          // Assert: contribution_j = w_j (x_j − b_j), and the logit is Σ w_j x_j + bias
          expect(e.method).toBe('linear-exact');
          const sum = e.contributions.reduce((s, c) => s + c.contribution, 0);
          expect(Math.abs(sum + e.baselineLogit - e.logit)).toBeLessThan(1e-9);
          let logit = weights[d]!;
          for (let j = 0; j < d; j++) logit += weights[j]! * x[j]!;
          expect(e.logit).toBeCloseTo(logit, 9);
          for (const c of e.contributions) {
            const j = Number(c.feature.slice(1));
            expect(c.contribution).toBeCloseTo(weights[j]! * (x[j]! - b[j]!), 9);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('Integrated Gradients of a linear logit equal the exact contributions', () => {
    const spec: ModelSpec = { kind: 'mlp', inputDim: 3, hidden: [] };
    const model = denseModel(spec, new Float32Array([0.5, -2, 1.25, 0.1]));
    const ig = integratedGradients(model, [1, 2, 3], 0, [0.5, 0, -1], 7);
    expect(Array.from(ig.attributions)).toEqual([0.25, -4, 5]);
  });
});

describe('gradient of the logit', () => {
  it('matches central finite differences away from ReLU kinks', () => {
    fc.assert(
      fc.property(arbCase, ({ spec, seed, scale, x, bias }) => {
        const model = denseModel(spec, weightsOf(spec, seed, scale, bias));
        const { gradient } = logitGradient(model, x);
        const h = 1e-6;
        for (let j = 0; j < spec.inputDim; j++) {
          const up = [...x];
          const down = [...x];
          up[j] += h;
          down[j] -= h;
          const f0 = forwardLogit(model, x);
          const forward = (forwardLogit(model, up) - f0) / h;
          const backward = (f0 - forwardLogit(model, down)) / h;
          // One-sided slopes that disagree mean a ReLU kink at x; the gradient is a subgradient there.
          if (Math.abs(forward - backward) > 1e-4) continue;
          const fd = (forwardLogit(model, up) - forwardLogit(model, down)) / (2 * h);
          expect(gradient[j]).toBeCloseTo(fd, 5);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('baseline', () => {
  const schema: DatasetSchema = { label: 'y', positive: ['yes'], features: [{ name: 'age', type: 'numeric', mean: 40, std: 10 }, { name: 'contact', type: 'categorical', categories: ['cellular', 'telephone', 'unknown'] }] };
  const groups = featureGroups(schema);

  it('puts numerics at the federation mean and one-hot groups at the pooled base rates of the partners', () => {
    // Arrange: partner A has 2 rows (cellular, unknown), partner B 2 rows (cellular, cellular)
    const a = encodedColumnSums([0.5, 1, 0, 0, -1, 0, 0, 1], 2, 4);
    const b = encodedColumnSums([2, 1, 0, 0, 0, 1, 0, 0], 2, 4);
    // Act
    const base = baselineFromColumnSums(groups, [a, b]);
    // Assert
    expect(base.kind).toBe('training-mean');
    expect(Array.from(base.x)).toEqual([0, 0.75, 0, 0.25]);
  });

  it('without column sums is the zero-categories baseline, and stored values must fit the model', () => {
    expect(baselineFromValues(undefined, groups)).toEqual({ kind: 'zero-categories', x: new Float64Array(4) });
    expect(() => baselineFromValues([1, 2], groups)).toThrow(/4 finite values/);
    expect(() => baselineFromColumnSums(groups, [{ n: 1, sums: [1] }])).toThrow(/1 entries, the schema encodes 4/);
  });
});
