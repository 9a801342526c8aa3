import { describe, expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import type { Table } from '@fedmart/shared/data/index';
import { bankMarketingPath } from './datasets.ts';
import { prepareExperiment, experimentLocalTrain, splitLocal, DEFAULT_VAL_FRACTION, MIN_ROWS_FOR_VALIDATION } from './experiment.ts';
import { effectiveLearningRate, fitReference, isBetterRun, parseGrid, trainArm, validationScore, DEFAULT_GRID, labelRate } from './selection.ts';

/** The real bank sample with a row id column appended (a numeric feature that identifies each row after encoding). */
async function bankWithIds(): Promise<{ table: Table; idCol: number }> {
  const t = await readTableFile(bankMarketingPath('small'), { sep: ';' });
  return { table: { columns: [...t.columns, 'rowid'], rows: t.rows.map((r, i) => [...r, String(i)]) }, idCol: t.columns.length };
}

/** Encoded values of one feature column, as a set (the standardised row id is unique per row). */
function column(x: Float32Array, n: number, d: number, j: number): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < n; i++) s.add(x[i * d + j]!);
  return s;
}

describe('prepareExperiment: the split', () => {
  it('keeps test, training and validation rows disjoint, and the pooled sets are exactly the partners\' union', async () => {
    // Arrange
    const { table } = await bankWithIds();
    // Act
    const exp = prepareExperiment({ table, label: 'y', positive: 'yes', partitionBy: 'job', partners: 3, seed: 5, drop: ['duration'] });
    // Assert: find the encoded rowid column (the only one whose values are all distinct).
    const j = exp.schema.features.findIndex((f) => f.name === 'rowid');
    expect(j).toBeGreaterThanOrEqual(0);
    const jEnc = exp.schema.features.slice(0, j).reduce((a, f) => a + (f.type === 'numeric' ? 1 : f.categories.length), 0);
    const test = column(exp.test.x, exp.test.n, exp.d, jEnc);
    const train = column(exp.central.x, exp.central.n, exp.d, jEnc);
    const val = column(exp.centralVal.x, exp.centralVal.n, exp.d, jEnc);
    expect(test.size + train.size + val.size).toBe(table.rows.length);
    for (const v of test) expect(train.has(v) || val.has(v)).toBe(false);
    for (const v of val) expect(train.has(v)).toBe(false);
    expect(exp.central.n).toBe(exp.partners.reduce((a, p) => a + p.data.trainN, 0));
    expect(exp.centralVal.n).toBe(exp.partners.reduce((a, p) => a + p.data.valN, 0));
    // Each partner validates on about DEFAULT_VAL_FRACTION of its own rows.
    for (const p of exp.partners) expect(Math.abs(p.data.valN / (p.data.trainN + p.data.valN) - DEFAULT_VAL_FRACTION)).toBeLessThan(0.02);
    // The base rate is the pooled training label rate.
    expect(exp.baseRate).toBeCloseTo(labelRate(exp.central), 12);
  });

  it('validates a tiny partner on its own rows only below the documented size', () => {
    const enc = (n: number) => ({ x: new Float32Array(n), y: Float32Array.from({ length: n }, (_, i) => i % 2), n, d: 1, featureNames: ['f'] });
    const tiny = splitLocal(enc(MIN_ROWS_FOR_VALIDATION - 1), 0.2, 1);
    expect(tiny.valX).toBe(tiny.trainX);
    const small = splitLocal(enc(MIN_ROWS_FOR_VALIDATION), 0.2, 1);
    expect(small.valN + small.trainN).toBe(MIN_ROWS_FOR_VALIDATION);
    expect(small.valN).toBeGreaterThan(0);
  });
});

describe('selection: one rule for every arm', () => {
  it('prefers lower validation loss, then the earlier setting, then the earlier epoch; never NaN', () => {
    expect(isBetterRun({ valLoss: 0.2, candidateIndex: 3, epoch: 9 }, { valLoss: 0.3, candidateIndex: 0, epoch: 1 })).toBe(true);
    expect(isBetterRun({ valLoss: 0.3, candidateIndex: 0, epoch: 1 }, { valLoss: 0.3, candidateIndex: 1, epoch: 1 })).toBe(true);
    expect(isBetterRun({ valLoss: 0.3, candidateIndex: 1, epoch: 5 }, { valLoss: 0.3, candidateIndex: 1, epoch: 4 })).toBe(false);
    expect(isBetterRun({ valLoss: Number.NaN, candidateIndex: 0, epoch: 1 }, null)).toBe(false);
    expect(isBetterRun({ valLoss: 0.9, candidateIndex: 0, epoch: 1 }, { valLoss: Number.NaN, candidateIndex: 0, epoch: 1 })).toBe(true);
  });

  it('parses --grid and names a bad entry', () => {
    expect(parseGrid('default')).toEqual(DEFAULT_GRID);
    expect(parseGrid('0/0.01/1e-3;64x16/0.003')).toEqual([{ hidden: [], learningRate: 0.01, l2: 1e-3 }, { hidden: [64, 16], learningRate: 0.003, l2: 0 }]);
    expect(() => parseGrid('32/fast/0')).toThrow(/--grid entry "32\/fast\/0" is not hidden\/learningRate\/l2/);
    expect(() => parseGrid(';')).toThrow(/--grid is empty/);
  });

  it('scales the learning rate with √batch (Adam), the same for every arm at one batch', () => {
    const c = { hidden: [], learningRate: 0.01, l2: 0 };
    expect(effectiveLearningRate(c, 256)).toBeCloseTo(0.01, 12);
    expect(effectiveLearningRate(c, 64)).toBeCloseTo(0.005, 12);
    expect(effectiveLearningRate({ ...c, lrBatch: 2048 }, 2048)).toBeCloseTo(0.01, 12);
  });

  it('trainArm keeps the (setting, epoch) with the lowest validation loss, scored on the validation rows it was given', async () => {
    // Arrange: real bank rows; two settings, 4 epochs each.
    const exp = prepareExperiment({ table: (await bankWithIds()).table, label: 'y', positive: 'yes', partitionBy: 'job', partners: 3, seed: 3, drop: ['duration', 'rowid'] });
    const grid = parseGrid('0/0.01/1e-4;8/0.01/1e-4');
    const local = experimentLocalTrain(exp, 1);
    // Act
    const sel = await trainArm({ train: exp.central, val: exp.centralVal, d: exp.d, grid, epochs: 4, local, seed: 3 });
    // Assert: every setting tried within the budget, the winner is the minimum, and its score is reproducible on validation.
    expect(sel.tried).toHaveLength(2);
    for (const t of sel.tried) {
      expect(t.epoch).toBeGreaterThanOrEqual(1);
      expect(t.epoch).toBeLessThanOrEqual(4);
      expect(sel.valLoss).toBeLessThanOrEqual(t.valLoss);
    }
    const again = await validationScore(sel.spec, sel.weights, exp.centralVal);
    expect(again.loss).toBeCloseTo(sel.validation.loss, 6);
    const onTest = await validationScore(sel.spec, sel.weights, exp.test);
    expect(onTest.loss).not.toBeCloseTo(sel.validation.loss, 6);
  });

  it('the reference picks λ by validation loss over its path', async () => {
    const exp = prepareExperiment({ table: (await bankWithIds()).table, label: 'y', positive: 'yes', partitionBy: 'job', partners: 3, seed: 3, drop: ['duration', 'rowid'] });
    const ref = fitReference({ train: exp.central, val: exp.centralVal, d: exp.d, lambdas: [1, 0.01, 1e-4] });
    expect(ref.tried.map((t) => t.lambda)).toEqual([1, 0.01, 1e-4]);
    expect(ref.validation.loss).toBe(Math.min(...ref.tried.map((t) => t.valLoss)));
    expect(ref.fit.converged).toBe(true);
  });
});
