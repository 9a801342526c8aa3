/**
 * The federated text classifier (`scenarios/src/text`) end to end on real
 * reviews: Amazon fine-food reviews (R modeldata), 4 partners with
 * Dirichlet(0.5) label skew, through the real coordinator and Socket.IO
 * agents (runTextExperiment → runFederation). Also the model's exact
 * per-example gradient norm (what DP-SGD clips), the seeded Dirichlet split,
 * and record-level DP through the seam's recordDp.
 */
import { describe, expect, it } from 'vitest';
import { initJointWeights } from '@fedmart/shared/task/layout';
import { applyExample, exampleGradient, featurizeAll, featurize, textLayout, trainSgd, viewParams, Scratch, DEFAULT_BUCKETS, DEFAULT_DIM } from '@fedmart/scenarios/text/fasttext';
import { dirichletPartition } from '@fedmart/scenarios/text/split';
import { fineFoods, haveFineFoods } from '@fedmart/scenarios/text/datasets';
import { parseTextSimulateArgs, runTextExperiment, scenarioCommand, TEXT_SIMULATE_USAGE, type TextInput } from '../cli/text.ts';

async function reviews(ctx: { skip: () => void }, n?: number): Promise<TextInput> {
  if (!(await haveFineFoods())) {
    console.warn('skipped: Rscript with the R package modeldata is not installed (apt-get install r-base-core r-cran-modeldata)');
    ctx.skip();
  }
  const rows = (await fineFoods()).slice(0, n);
  return { texts: rows.map((r) => r.text), labels: rows.map((r) => r.label) };
}

describe('text model', () => {
  it('the closed-form per-example gradient norm equals the norm of the gradient actually applied', () => {
    const shape = { buckets: 512, dim: 8, classes: ['a', 'b', 'c'] };
    const w = initJointWeights(textLayout(shape), 3);
    // Non-zero head so ∂emb is non-zero.
    const p = viewParams(w, shape);
    for (let i = 0; i < p.head.length; i++) p.head[i] = Math.sin(i + 1) * 0.5;
    const docs = featurizeAll(['great great coffee, would buy again', '很好喝 的 咖啡 最佳', 'x'], [0, 1, 2], shape.buckets);
    const s = new Scratch(shape.dim, 3);
    for (let i = 0; i < docs.n; i++) {
      const { sqNorm } = exampleGradient(p, docs, i, s, 1.7, true);
      const before = w.slice();
      const q = viewParams(w, shape);
      applyExample(q, docs, i, s, 1);
      let sq = 0;
      for (let k = 0; k < w.length; k++) sq += (Number(w[k]!) - Number(before[k]!)) ** 2;
      expect(Math.abs(sq - sqNorm) / sqNorm).toBeLessThan(1e-4);
      w.set(before);
    }
  });

  it('Chinese text gets character n-gram features without a segmenter, and hashing is deterministic', () => {
    const a = featurize('这款咖啡很好喝', 1 << 16);
    expect(a.length).toBeGreaterThanOrEqual(7 + 6 + 5); // 7 chars, 6 bigrams of tokens, char bi+trigrams
    expect([...featurize('这款咖啡很好喝', 1 << 16)]).toEqual([...a]);
    expect([...featurize('ＧＲＥＡＴ coffee', 1 << 16)]).toEqual([...featurize('great coffee', 1 << 16)]);
  });

  it('feature dropout leaves feature occurrences out of SGD steps (rows it drops are not updated), seeded', async () => {
    const shape = { buckets: 1 << 12, dim: 4, classes: ['a', 'b'] };
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const docs = featurizeAll([words], [1], shape.buckets);
    const touched = async (featureDropout: number) => {
      const w0 = initJointWeights(textLayout(shape), 5);
      const w = w0.slice();
      const p = viewParams(w, shape);
      p.head.forEach((_, k) => (p.head[k] = k % 2 ? -0.1 : 0.1)); // class columns differ, so embedding rows receive gradient
      await trainSgd(p, docs, { learningRate: 0.1, epochs: 1, seed: 9, featureDropout });
      const e0 = viewParams(w0, shape).emb;
      let rows = 0;
      for (let r = 0; r < shape.buckets; r++) if (p.emb.subarray(r * 4, r * 4 + 4).some((v, j) => v !== e0[r * 4 + j])) rows++;
      return { rows, w };
    };
    const all = await touched(0);
    const half = await touched(0.5);
    expect(all.rows).toBeGreaterThan(350); // 200 unigrams + 199 bigrams, a few hash collisions
    expect(half.rows).toBeGreaterThan(0.3 * all.rows);
    expect(half.rows).toBeLessThan(0.7 * all.rows);
    expect([...(await touched(0.5)).w]).toEqual([...half.w]);
    await expect(trainSgd(viewParams(initJointWeights(textLayout(shape), 5), shape), docs, { learningRate: 0.1, epochs: 1, seed: 9, featureDropout: 1 })).rejects.toThrow(/feature dropout must be in \[0, 1\)/);
  });

  it('the Dirichlet split is seeded and skews labels', () => {
    const labels = Array.from({ length: 2000 }, (_, i) => i % 4);
    const idx = labels.map((_, i) => i);
    const a = dirichletPartition(idx, labels, 4, 0.5, 7);
    expect(dirichletPartition(idx, labels, 4, 0.5, 7)).toEqual(a);
    expect(a.flat().sort((x, y) => x - y)).toEqual(idx);
    // Label skew: some partner's majority class holds well over the IID 25%.
    const share = Math.max(...a.map((rows) => Math.max(...[0, 1, 2, 3].map((c) => rows.filter((r) => labels[r] === c).length)) / rows.length));
    expect(share).toBeGreaterThan(0.45);
  });
});

describe('fedmart scenario text: federated vs local-only vs centralized on real reviews', () => {
  it('4 partners at Dirichlet 0.5: federated macro-F1 ≥ 0.97 × centralized, local-only clearly lower', async (ctx) => {
    const input = await reviews(ctx);
    const r = await runTextExperiment({ input, partners: 4, dirichlet: 0.5, rounds: 10, localEpochs: 1, learningRates: [0.2], buckets: 1 << 15, dim: 16, classWeighting: 'balanced', seed: 42, flags: {} });
    console.info(JSON.stringify({ federated: r.federated, localOnly: r.localOnly, centralized: r.centralized, seconds: r.seconds }));
    expect(r.classes).toEqual(['great', 'other']);
    expect(r.partners.reduce((s, p) => s + p.rows, 0)).toBe(4000);
    expect(r.federated.macroF1).toBeGreaterThanOrEqual(0.97 * r.centralized.macroF1);
    expect(r.federated.macroF1 - r.localOnly.macroF1).toBeGreaterThan(0.05);
    expect(r.centralized.macroF1).toBeGreaterThan(0.7);
  }, 600_000);

  it('record-level DP through the seam: DP-SGD in each partner, the ledger charges the planned epsilon', async (ctx) => {
    const input = await reviews(ctx, 1500);
    const r = await runTextExperiment({ input, partners: 3, rounds: 2, localEpochs: 1, learningRates: [0.1], buckets: 1 << 12, dim: 8, classWeighting: 'balanced', seed: 1, flags: { dp: 'record', epsilon: '8' } });
    const privacy = r.privacy as { level: string; epsilon: number; epsilonTarget: number; steps: number; ledgerVerified: boolean };
    expect(privacy.level).toBe('record');
    expect(privacy.epsilon).toBeGreaterThan(0);
    expect(privacy.epsilon).toBeLessThanOrEqual(8 + 1e-9);
    expect(privacy.ledgerVerified).toBe(true);
    expect(r.federated.macroF1).toBeGreaterThan(0.3);
  }, 600_000);
});

describe('fedmart scenario text simulate --class-weights', () => {
  const base = ['text', 'simulate', '--csv', '/nonexistent/fedmart-texts.jsonl', '--text', 'text', '--label', 'label', '--json'];
  it('takes a list searched by every arm; an unknown or repeated weighting is named before any data is read', async () => {
    await expect(scenarioCommand([...base, '--class-weights', 'logit-adjust,foo'])).rejects.toThrow(/--class-weights must be a comma-separated list of logit-adjust, balanced, none, got "logit-adjust,foo"/);
    await expect(scenarioCommand([...base, '--class-weights', 'none,none'])).rejects.toThrow(/--class-weights lists a weighting twice/);
    // A valid list passes the flag check and fails only on the missing file.
    await expect(scenarioCommand([...base, '--class-weights', 'logit-adjust,none'])).rejects.toThrow(/fedmart-texts\.jsonl/);
  });
  it('--feature-dropout takes a list of rates searched by every arm; a bad or repeated rate is named before any data is read', async () => {
    await expect(scenarioCommand([...base, '--feature-dropout', '0.5,0.99'])).rejects.toThrow(/--feature-dropout must be a comma-separated list of rates in \[0, 0\.95\], got "0\.5,0\.99"/);
    await expect(scenarioCommand([...base, '--feature-dropout', '0.5,'])).rejects.toThrow(/--feature-dropout must be a comma-separated list/);
    await expect(scenarioCommand([...base, '--feature-dropout', '0.7,0.7'])).rejects.toThrow(/--feature-dropout lists a rate twice/);
    await expect(scenarioCommand([...base, '--feature-dropout', '0.5,0.7'])).rejects.toThrow(/fedmart-texts\.jsonl/);
  });
  it('runs 20 federated rounds × 3 local epochs by default (every arm\'s epoch budget 60), as the README measures', async () => {
    const a = parseTextSimulateArgs(base);
    if (a.help) throw new Error('unexpected --help');
    expect(a.options).toMatchObject({ rounds: 20, localEpochs: 3 });
    expect(TEXT_SIMULATE_USAGE).toMatch(/--rounds R +federated rounds \(default 20\)/);
    const b = parseTextSimulateArgs([...base, '--rounds', '10']);
    expect(b.help === false && b.options.rounds).toBe(10);
  });
});

describe('fedmart bench text', () => {
  it('times the JS classifier beside the same weights in tfjs, and both give the same probabilities', async () => {
    const { benchText } = await import('../cli/bench-text.ts');
    const r = await benchText({ texts: 50, epochs: 1 });
    expect(r.agreement.maxAbsProbabilityDifference).toBeLessThan(1e-4);
    expect(r.latencyMs.texts).toBe(50);
    expect(r.training.examplesPerSecond).toBeGreaterThan(0);
    expect(r.model.parameters).toBe(DEFAULT_BUCKETS * DEFAULT_DIM + DEFAULT_DIM * r.data.classes.length + 2 * r.data.classes.length);
  }, 300_000);
});
