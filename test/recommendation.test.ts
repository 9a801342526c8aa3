/**
 * The recommendation scenario on the real MovieLens small data (R package
 * dslabs; skipped with the printed reason when it cannot be exported here):
 * a real coordinator and real agents run the recommendation PartnerTask.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import { parseCsv, type Table } from '@fedmart/shared/data/table';
import { readFileSync } from 'node:fs';
import { prepareScenario, partyOf, scenarioSpec, REC_DEFAULTS } from '@fedmart/scenarios/recommendation/scenario';
import { initRecWeights, recLayout } from '@fedmart/scenarios/recommendation/model';
import { popularityMetrics, type LocalRecommender, type RecTrainSpec } from '@fedmart/scenarios/recommendation/local';
import { brandTask, catalogueOf, parseRecFederationSpec, recommendationFederationConfig } from '@fedmart/scenarios/recommendation/federation';
import { RankingAccumulator } from '@fedmart/scenarios/recommendation/metrics';
import { recommendationTask, RECOMMENDATION_TASK, type RecommendationTask } from '@fedmart/scenarios/recommendation/task';
import { FileModelRegistry, historyOf, modelFileOf, recommend, Recommender } from '@fedmart/scenarios/recommendation/recommend';
import { movielensOrReason } from '../cli/datasets.ts';
import { runFederation } from '../cli/federate.ts';
import { startFixture } from './helpers.ts';

const ml = movielensOrReason();
if ('reason' in ml) console.warn(`recommendation tests skipped: ${ml.reason}`);

/** The first `users` users of MovieLens (by id), all their rows: a small real subset. */
function subset(users: number): Table {
  const t = parseCsv(readFileSync((ml as { path: string }).path, 'utf8'));
  const ui = t.columns.indexOf('userId');
  return { columns: t.columns, rows: t.rows.filter((r) => Number(r[ui]) <= users) };
}

function scenario(users: number, partners: number) {
  const s = prepareScenario(subset(users), { user: 'userId', item: 'movieId', time: 'timestamp', itemFeatures: ['genres'] }, { partners, partitionBy: 'random', seed: 3 });
  const spec = scenarioSpec(s, { dim: 16, hidden: 16 });
  const train: RecTrainSpec = { model: spec, negatives: REC_DEFAULTS.negatives, l2: REC_DEFAULTS.l2 };
  const tasks = s.partners.map((p, k) => recommendationTask(partyOf(s, spec, p.users, 10 + k), train));
  const config = { task: RECOMMENDATION_TASK, model: recLayout(spec), taskSpec: train, strategy: 'fedavg' as const, localTrain: { localEpochs: 1, batchSize: 1, learningRate: REC_DEFAULTS.learningRate, proximalMu: 0 }, minClients: partners, sampleFraction: 1, seed: 3 };
  return { s, spec, tasks, config };
}

describe.skipIf('reason' in ml)('recommendation scenario on MovieLens (real coordinator)', () => {
  it('federated Wide & Deep beats popularity on HR@10 of the held-out last interaction', async () => {
    const { s, spec, tasks, config } = scenario(200, 2);
    const fed = await runFederation({ config, partners: tasks.map((task, k) => ({ id: `brand-${k + 1}`, task })), rounds: 5, seed: 3 });
    expect(fed.committed).toBe(5);
    const chosen = fed.best!;
    expect(chosen.metrics.eval_hr10).toBeGreaterThan(0);
    const acc = new RankingAccumulator();
    for (const t of tasks) acc.merge(t.local.evaluate(chosen.weights, 'test', false, t.usersAt(chosen.weights)));
    const pop = popularityMetrics(spec.items, [partyOf(s, spec, s.splits.map((_, u) => u), 1)]).result();
    const f = acc.result();
    console.info(`federated HR@10 ${f.hr10.toFixed(4)} NDCG@10 ${f.ndcg10.toFixed(4)} vs popularity HR@10 ${pop.hr10.toFixed(4)} (${f.users} users)`);
    expect(f.users).toBe(s.splits.length);
    expect(f.hr10).toBeGreaterThan(pop.hr10);
  }, 600_000);

  it('user embeddings never appear in any frame a partner sends (and the check finds them when they are leaked)', async () => {
    for (const leak of [false, true]) {
      const { tasks, config } = scenario(120, 3);
      await using fx = await startFixture();
      const fedId = await fx.createFederation(config);
      const watched = tasks[0]!;
      // Positive control: a partner that (wrongly) writes its user-embedding change into its update.
      const sent: RecommendationTask = leak ? { ...watched, round: (args) => { const r = watched.round(args); return { plain: async () => { const before = watched.local.users.p.slice(); const out = await r.plain(); for (let i = 0; i < before.length; i++) out.delta[i] = watched.local.users.p[i]! - before[i]!; return out; } }; } } : watched;
      const frames: Uint8Array[] = [];
      const texts: string[] = [];
      const agents: PartnerAgent[] = [];
      for (const [k, task] of [sent, ...tasks.slice(1)].entries()) {
        const a = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fedId, `brand-${k + 1}`), task, reconnect: false });
        if (k === 0) {
          a.socket.io.on('open', () => {
            a.socket.io.engine.on('packetCreate', (packet: { data?: unknown }) => {
              if (typeof packet.data === 'string') texts.push(packet.data);
              else if (packet.data instanceof Uint8Array || Buffer.isBuffer(packet.data)) frames.push(new Uint8Array(packet.data as Uint8Array));
              else if (packet.data instanceof ArrayBuffer) frames.push(new Uint8Array(packet.data));
            });
          });
        }
        agents.push(a);
      }
      // Every state of the user embeddings the partner ever held: initial, and after each round.
      const states: Float32Array[] = [watched.local.users.p.slice()];
      const deltas: Float32Array[] = [];
      try {
        await Promise.all(agents.map((a) => a.ready));
        for (let r = 0; r < 2; r++) {
          const outcome = await fx.coord.orchestrator.runRound(fedId);
          expect(outcome.phase, outcome.reason).toBe('committed');
          const now = watched.local.users.p.slice();
          const prev = states[states.length - 1]!;
          deltas.push(now.map((x, i) => x - prev[i]!));
          states.push(now);
        }
      } finally {
        await Promise.all(agents.map((a) => a.close()));
      }
      expect(frames.length).toBeGreaterThan(0);
      const all = Buffer.concat([...frames.map((b) => Buffer.from(b)), Buffer.from(texts.join('\n'))]);
      const dim = watched.local.spec.dim;
      let found = 0;
      let checked = 0;
      for (const v of [...states, ...deltas]) {
        for (let u = 0; u < watched.local.splits.length; u++) {
          const row = Buffer.from(v.buffer, v.byteOffset + u * dim * 4, dim * 4);
          checked++;
          if (all.indexOf(row) >= 0) found++;
        }
      }
      expect(checked).toBeGreaterThan(100);
      if (leak) expect(found).toBeGreaterThan(0);
      else expect(found).toBe(0);
    }
  }, 600_000);

  it('a brand maps its own file onto the federation catalogue; items outside it are ignored, a missing column is named', () => {
    const t = subset(60);
    const catalogue = catalogueOf(t, 'movieId', ['genres']);
    const config = recommendationFederationConfig({ catalogue, columns: { user: 'userId', item: 'movieId', time: 'timestamp' }, dim: 8, hidden: 8, minClients: 2 });
    const spec = parseRecFederationSpec(config.taskSpec, 'f_test');
    const ui = t.columns.indexOf('userId');
    const ii = t.columns.indexOf('movieId');
    const mine = { columns: t.columns, rows: [...t.rows.filter((r) => Number(r[ui]) % 2 === 0), [...t.rows[0]!.map((c, k) => (k === ii ? 'not-in-catalogue' : k === ui ? '2' : c))]] };
    const brand = brandTask(mine, spec, 1, 'brand.csv');
    expect(brand.unknownItems).toBe(1);
    expect(brand.histories.get('2')!.includes('not-in-catalogue')).toBe(false);
    // Catalogue indices: every training item of the brand's users is the catalogue row of that id.
    if (!('local' in brand.task)) throw new Error('expected the Wide & Deep task (no gram settings in the taskSpec)');
    const local = brand.task.local as LocalRecommender;
    const ids = new Set(mine.rows.filter((r) => r[ui] === brand.users[0]).map((r) => r[ii]!));
    for (const it of local.splits[0]!.train) expect(ids.has(catalogue.items[it]!)).toBe(true);
    expect(() => brandTask({ columns: t.columns.filter((c) => c !== 'movieId'), rows: [] }, spec, 1, 'brand.csv')).toThrow(/movieId/);
    expect(() => parseRecFederationSpec({ ...config.taskSpec, catalogue: undefined }, 'f_test')).toThrow(/scenario recommendation create/);
  });

  it('--eval-users served: a task scores its users refitted to the frozen joint model (the serving fold-in), not the trained state', async () => {
    const { s, spec, config } = scenario(60, 1);
    const train = config.taskSpec;
    const fold = { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives, epochs: 5 };
    const local = partyOf(s, spec, s.partners[0]!.users, 4);
    const task = recommendationTask(local, train, { foldInEval: fold });
    const w = initRecWeights(spec, 2);
    local.train(w, { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives }, 2, 1);
    const r = await task.evaluate(w);
    const served = local.foldInUsers(w, fold, 1);
    expect(r.metrics.hr10).toBe(local.evaluate(w, 'val', false, served).result().hr10);
    expect(Array.from(task.usersAt(w).p)).toEqual(Array.from(served.p));
    expect(Array.from(task.usersAt(w).p)).not.toEqual(Array.from(local.users.p));
  });

  it('recommend() reads the model through a ModelRegistry and returns the top k unseen items, best first, with reasons', async () => {
    const { s, spec, tasks, config } = scenario(150, 2);
    const fed = await runFederation({ config, partners: tasks.map((task, k) => ({ id: `brand-${k + 1}`, task })), rounds: 2, seed: 3 });
    const file = modelFileOf(s.data, spec, fed.weights, { user: 'userId', item: 'movieId' });
    const registry = new FileModelRegistry(file);
    const data = subset(150);
    for (const user of ['1', '15', '73']) {
      const recs = await recommend({ registry, federation: 'simulation', version: 'latest', catalogue: file.catalogue, model: file.model, data, columns: { user: 'userId', item: 'movieId' }, user, k: 10 });
      const seen = new Set(historyOf(data, { user: 'userId', item: 'movieId' }, user));
      expect(recs.length).toBe(10);
      for (const r of recs) expect(seen.has(r.item)).toBe(false);
      for (let i = 1; i < recs.length; i++) expect(recs[i]!.score).toBeLessThanOrEqual(recs[i - 1]!.score);
      for (const r of recs) {
        expect(r.score).toBeCloseTo(r.reason.wide + r.reason.deep, 3);
        expect(r.reason.becauseOf.every((h) => seen.has(h))).toBe(true);
      }
    }
    await expect(recommend({ registry, federation: 'simulation', version: 'latest', catalogue: file.catalogue, model: file.model, data, columns: { user: 'userId', item: 'movieId' }, user: 'nobody', k: 5 })).rejects.toThrow(/no rows in the partner data/);
    // The serving fold-in (user-only gradient, cached item pre-activations) gives the baseline SGD fold-in's user vector.
    const rec = new Recommender(await registry.load('simulation', 'latest'), file.catalogue, file.model);
    let worst = 0;
    for (const sp of s.splits.slice(0, 25)) {
      const key = s.data.users[sp.user]!;
      const fast = rec.fold(sp.train, key, { uncapped: true });
      const base = rec.fold(sp.train, key, { baseline: true });
      for (let d = 0; d < fast.p.length; d++) worst = Math.max(worst, Math.abs(fast.p[d]! - base.p[d]!));
      for (let d = 0; d < fast.c.length; d++) worst = Math.max(worst, Math.abs(fast.c[d]! - base.c[d]!));
    }
    expect(worst).toBeLessThan(1e-4);
    // The same ranking as the baseline for one user (top-k by the heap = a full sort).
    const hist = historyOf(data, { user: 'userId', item: 'movieId' }, '15');
    expect(rec.topK(hist, 10, '15', { uncapped: true }).map((r) => r.item)).toEqual(rec.topK(hist, 10, '15', { baseline: true }).map((r) => r.item));
    const tampered = new FileModelRegistry({ ...file, weights: Buffer.from(Float32Array.from(fed.weights, (x, i) => (i === 0 ? x + 1 : x)).buffer).toString('base64') });
    await expect(tampered.load('simulation', 'latest')).rejects.toThrow(/SHA-256/);
  }, 600_000);
});
