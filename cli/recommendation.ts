/**
 * `fedmart scenario recommendation simulate`: cross-brand recommendation on
 * any user–item CSV. Arms: federated (real coordinator, real agents, the
 * recommendation PartnerTask), local-only, centralized, matrix
 * factorisation (centralized) and popularity. Every choice (epoch, round)
 * is made on the validation interaction (second-to-last per user); the
 * test interaction (last) is scored once after selection.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { FedmartError } from '@fedmart/shared/errors';
import { formatCsv } from '@fedmart/shared/data/table';
import { prepareScenario, partyOf, scenarioSpec, REC_DEFAULTS, type PreparedScenario } from '@fedmart/scenarios/recommendation/scenario';
import { initRecWeights, recLayout, type RecModelSpec } from '@fedmart/scenarios/recommendation/model';
import { popularityMetrics, type LocalRecommender, type RecTrainSpec } from '@fedmart/scenarios/recommendation/local';
import { RankingAccumulator, type RankingMetrics } from '@fedmart/scenarios/recommendation/metrics';
import { recommendationTask, RECOMMENDATION_TASK, type RecommendationTask } from '@fedmart/scenarios/recommendation/task';
import { FOLD_IN_EPOCHS, FOLD_IN_MAX_STEPS, modelFileOf, type RecommendationModelFile } from '@fedmart/scenarios/recommendation/recommend';
import { gramModelFileOf, type GramModelFile } from '@fedmart/scenarios/recommendation/gram-serve';
import { catalogueOf, recommendationFederationConfig } from '@fedmart/scenarios/recommendation/federation';
import { itemTowerFromCounts, noisyItemCounts, sigmaWithCountRelease } from '@fedmart/scenarios/recommendation/dp-prior';
import { cryptoRandomSource } from '@fedmart/shared/dp/gaussian';
import { operatorApi } from './federation.ts';
import { intFlag, numberFlag, parseFlags, progress, requireString } from './args.ts';
import { runFederation } from './federate.ts';
import { protectionFromFlags, PROTECTION_FLAG_OPTIONS } from './protection-flags.ts';
import { dpFlags, mergeDpIntoProtection, simulationPrivacy } from './privacy.ts';
import { federatedGramDp, gramFederationConfig, gramFlags, gramNoisePlacement, GRAM_DP_DEFAULTS, noiseLabel } from './recommendation-gram.ts';

/** Default released-count threshold for a free item row, and the count release's noise std (chosen on validation; README). */
export const DP_TOWER_DEFAULTS = Object.freeze({ freeMin: 50, countSigma: 5, learningRate: 30 });

export const REC_SIMULATE_USAGE = `fedmart scenario recommendation simulate --csv FILE --user COL --item COL [options]

Brands each hold their own customers' interactions; together they train one
Wide & Deep recommender (item embeddings and network joint, user embeddings
local). Prints federated, local-only, centralized, MF and popularity HR@10,
NDCG@10 (vs 99 sampled negatives), full-ranking HR@10 and AUC on the last
interaction per user; choices are made on the second-to-last.

  --csv FILE              interactions, one row per (user, item)
  --user COL, --item COL  the user and item id columns
  --rating COL --min-rating R   keep interactions rated >= R (implicit feedback)
  --time COL              order interactions by it (default: seeded random order)
  --item-features COLS    comma-separated categorical item columns (a|b cells = several values)
  --partition-by COL      a user column whose values define the brands, or "random"
                          (default: each user's dominant item feature, else random)
  --partners N            number of brands (default 6)
  --rounds R              federated rounds (default 20); --epochs E for the single-party arms (default = rounds)
  --lr LR                 SGD learning rate (default ${REC_DEFAULTS.learningRate}); --dim D (default ${REC_DEFAULTS.dim}), --hidden H (default ${REC_DEFAULTS.hidden})
  --seed S                seed of the split, partition and initialisation (default 1)
  --secure-agg            secure aggregation of the joint parameters
  --dp record --epsilon E [--delta D]
                          interaction-level DP. Default (--dp-model gram): two Gaussian releases by
                          every brand, charged by the ledger as two steps — item counts, then the item
                          co-occurrence Gram over the --dp-top N (default ${GRAM_DP_DEFAULTS.top}) items of largest released
                          count, each customer weighted 1/sqrt(their items); item factors are the
                          --dp-rank k (default ${GRAM_DP_DEFAULTS.rank}, at most N/20) leading eigenvectors of the released Gram, each
                          customer's vector is solved at their brand; other items rank by released count; ignores --rounds.
  --dp-noise distributed|local  where the release's noise is added. distributed (default with 3 or more
                          brands and no --he): secure aggregation on, each brand adds a 1/√P share, only the
                          secure sum carries the full noise; local: every brand adds the full noise (√P × more)
  --dp-model tower|free [--clip C] [--dp-batch B] [--dp-lr LR (default ${DP_TOWER_DEFAULTS.learningRate})]
                          interaction-level DP-SGD in every brand instead, on the item-tower model:
                          free item rows only where the brands' Gaussian-noised item counts reach
                          --dp-free-min (default ${DP_TOWER_DEFAULTS.freeMin}), item-feature embeddings and a popularity
                          prior from the same release (--dp-count-sigma, default ${DP_TOWER_DEFAULTS.countSigma}; in the same budget);
                          --dp-model free: a free row per item (no count release)
  --eval-users trained|served  federated arm: score users with the state trained in the rounds (default), or as
                          the brand serves them: refitted to their history against the frozen joint model
                          (the fold-in of fedmart recommend; local, nothing released)
  --arms LIST             comma-separated arms to run besides federated (default local,centralized,mf,popularity; "none" for federated alone)
  --save DIR              write the chosen federated model (DIR/model.json; under --dp record the item-Gram
                          model, post-processing of the releases) and each brand's CSV for fedmart recommend
  --json                  print one JSON object`;

const r4 = (x: number) => Math.round(x * 10_000) / 10_000;
const arm = (m: RankingMetrics) => ({ hr10: r4(m.hr10), ndcg10: r4(m.ndcg10), hr10Full: r4(m.hr10Full), auc: r4(m.auc) });

/**
 * Train one party alone for up to `epochs` epochs, keeping the epoch with the best validation HR@10 (ties: earlier).
 * @returns the chosen epoch, its validation HR and the test metrics of the chosen model
 */
export function trainSingleParty(party: LocalRecommender, spec: RecModelSpec, t: { learningRate: number; l2: number; negatives: number }, epochs: number, seed: number): { epoch: number; valHr10: number; test: RankingAccumulator } {
  const w = initRecWeights(spec, seed);
  let best = { epoch: 0, valHr10: -1, weights: w.slice(), users: party.snapshot() };
  for (let e = 1; e <= epochs; e++) {
    party.train(w, t, 1, seed * 1000 + e);
    const v = party.evaluate(w, 'val', false).result();
    if (v.hr10 > best.valHr10) best = { epoch: e, valHr10: v.hr10, weights: w.slice(), users: party.snapshot() };
  }
  return { epoch: best.epoch, valHr10: best.valHr10, test: party.evaluate(best.weights, 'test', true, best.users) };
}

/** `fedmart scenario <name> <command>`. */
export async function scenarioCommand(argv: string[]): Promise<number> {
  const [name, sub, ...rest] = argv;
  if (name === 'recommendation' && sub === 'create') return createRecommendationFederation(rest);
  if (name !== 'recommendation' || sub !== 'simulate') {
    if (name === undefined || name === '--help' || name === '-h') {
      process.stdout.write(REC_SIMULATE_USAGE + '\n');
      return 0;
    }
    throw new FedmartError('CONFIG_ERROR', `scenario: unknown scenario command "${[name, sub].filter(Boolean).join(' ')}"; available: fedmart scenario recommendation simulate|create (--help)`);
  }
  return simulateRecommendation(rest);
}

export const REC_CREATE_USAGE = `fedmart scenario recommendation create --name NAME --catalogue FILE --item COL --user COL [options]

Creates a recommendation federation on a coordinator (operator token): the
public item catalogue (item ids in FILE's order of first appearance, with
their --item-features) and the columns every brand's interaction file uses
travel in the federation's taskSpec. Brands then join with
"fedmart partner --data THEIR.csv [--serve PORT]".

  --catalogue FILE        items (or interactions) with the item column and its features
  --item COL, --user COL  the item and user id columns of the brands' files
  --item-features COLS    comma-separated categorical item columns of FILE
  --time COL              the brands' timestamp column (orders each customer's history)
  --rating COL --min-rating R   brands keep interactions rated >= R
  --dim D, --hidden H     model size (default ${REC_DEFAULTS.dim}, ${REC_DEFAULTS.hidden}); --lr LR (default ${REC_DEFAULTS.learningRate})
  --min-clients N         brands per round (default 2)
  --dp record --epsilon E [--delta D (default 1e-5)] [--dp-noise distributed|local] [--max-interactions M] [--dp-top N] [--dp-rank k]
                          interaction-level DP by the item-Gram release instead of Wide & Deep training: two
                          rounds, in which every brand releases its Gaussian-noised item counts, then the
                          co-occurrence Gram over the N (default ${GRAM_DP_DEFAULTS.top}) items of largest released count; the
                          coordinator's ledger charges both. Exactly --min-clients brands must take part in
                          both rounds. M (default 1000000) is the public bound on one brand's interactions
                          (a brand above it is refused). Brands serve the item model computed from the
                          committed releases.
  --dp-noise distributed|local  distributed (default with --min-clients >= 3): secure aggregation on, each
                          brand adds a 1/sqrt(P) share of the noise and only the sum carries all of it;
                          local (default below 3 brands): every brand adds the full noise (sqrt(P) x more in the sum)
  --coordinator URL --token T   (default http://127.0.0.1:7300, FEDMART_OPERATOR_TOKEN)
  --json                  print the coordinator's answer`;

/** create's --dp flags (validated): undefined without --dp. */
function createDpFlags(cmd: string, values: Record<string, unknown>): { epsilon: number; delta: number; secureAgg: boolean; maxInteractions: number } | undefined {
  if (values.dp === undefined) {
    for (const f of ['epsilon', 'delta', 'secure-agg', 'max-interactions', 'dp-top', 'dp-rank', 'dp-noise']) if (values[f] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} needs --dp record (the item-Gram release)`);
    return undefined;
  }
  if (values.dp !== 'record') throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp must be "record" (interaction-level DP by the item-Gram release); got "${String(values.dp)}"`);
  if (values.epsilon === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp record needs --epsilon E (the budget of both releases), e.g. --epsilon 8`);
  const epsilon = numberFlag(cmd, values, 'epsilon', 8, 1e-3, 1e3);
  const delta = numberFlag(cmd, values, 'delta', 1e-5, 1e-12, 0.1);
  return { epsilon, delta, secureAgg: values['secure-agg'] === true, maxInteractions: intFlag(cmd, values, 'max-interactions', 1_000_000, 1, 1_000_000_000) };
}

async function createRecommendationFederation(argv: string[]): Promise<number> {
  const cmd = 'scenario recommendation create';
  const { values } = parseFlags(cmd, argv, {
    name: { type: 'string' }, catalogue: { type: 'string' }, item: { type: 'string' }, user: { type: 'string' }, 'item-features': { type: 'string' }, time: { type: 'string' },
    rating: { type: 'string' }, 'min-rating': { type: 'string' }, dim: { type: 'string' }, hidden: { type: 'string' }, lr: { type: 'string' }, 'min-clients': { type: 'string' },
    coordinator: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' },
    dp: { type: 'string' }, epsilon: { type: 'string' }, delta: { type: 'string' }, 'secure-agg': { type: 'boolean' }, 'max-interactions': { type: 'string' }, 'dp-top': { type: 'string' }, 'dp-rank': { type: 'string' }, 'dp-noise': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(REC_CREATE_USAGE + '\n');
    return 0;
  }
  const name = requireString(cmd, values, 'name', 'a name for the federation');
  const file = requireString(cmd, values, 'catalogue', 'the item catalogue file');
  const item = requireString(cmd, values, 'item', 'the item id column');
  const user = requireString(cmd, values, 'user', "the user id column of the brands' files");
  if (values['min-rating'] !== undefined && values.rating === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --min-rating needs --rating COL`);
  const features = typeof values['item-features'] === 'string' ? values['item-features'].split(',').map((c) => c.trim()).filter(Boolean) : [];
  const dp = createDpFlags(cmd, values);
  const catalogue = catalogueOf(await readTableFile(file, { flag: '--catalogue' }), item, features);
  const minClients = intFlag(cmd, values, 'min-clients', 2, 1, 100_000);
  const base = recommendationFederationConfig({
    catalogue,
    columns: { user, item, ...(typeof values.time === 'string' ? { time: values.time } : {}), ...(typeof values.rating === 'string' ? { rating: values.rating } : {}), ...(values['min-rating'] !== undefined ? { minRating: numberFlag(cmd, values, 'min-rating', 0, -1e12, 1e12) } : {}) },
    dim: intFlag(cmd, values, 'dim', REC_DEFAULTS.dim, 1, 1024), hidden: intFlag(cmd, values, 'hidden', REC_DEFAULTS.hidden, 0, 1024),
    learningRate: numberFlag(cmd, values, 'lr', REC_DEFAULTS.learningRate, 1e-6, 10), minClients,
  });
  let config: Record<string, unknown> = base;
  if (dp) {
    if (dp.secureAgg && minClients < 3) throw new FedmartError('CONFIG_ERROR', `${cmd}: --secure-agg needs --min-clients 3 or more (the secure sum of 2 brands reveals each one's release to the other); got ${minClients}`);
    const noise = gramNoisePlacement(cmd, values, minClients, '--min-clients');
    progress(`dp noise: ${noise.placement} — ${noise.why}`);
    const secureAgg = dp.secureAgg || noise.secureAgg;
    const { top, rank } = gramFlags(cmd, values, catalogue.items.length);
    const gram = gramFederationConfig({ items: catalogue.items.length, partners: minClients, scale: dp.maxInteractions, top, rank, epsilon: dp.epsilon, delta: dp.delta, secureAggregation: secureAgg ? {} : undefined, distributed: noise.placement === 'distributed', seed: 1 });
    config = { ...gram.config, taskSpec: { ...base.taskSpec, ...gram.config.taskSpec } };
    progress(`dp: record (interaction) level, item-Gram release: sigma ${gram.sigma.toFixed(4)} for epsilon ${gram.dp.planned.toFixed(4)} <= ${dp.epsilon} at delta ${dp.delta} over two rounds of exactly ${minClients} brands; top ${gram.g.top} items, ${gram.coordinates} joint coordinates; noise ${noiseLabel(noise.placement === 'distributed', secureAgg, minClients)}`);
  }
  const api = await operatorApi(values);
  const r = await api.post<{ federation: { id: string }; model: { paramCount: number } }>('/api/v1/federations', { name, config });
  if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(`created recommendation federation ${r.federation.id} ("${name}"): ${catalogue.items.length} items, ${catalogue.featureNames.length} feature values, ${r.model.paramCount} joint parameters${dp ? `; item-Gram DP release (epsilon ${dp.epsilon}, delta ${dp.delta}): run 2 rounds with all ${minClients} brands` : ''}\n`);
  return 0;
}

async function simulateRecommendation(argv: string[]): Promise<number> {
  const cmd = 'scenario recommendation simulate';
  const { values } = parseFlags(cmd, argv, {
    csv: { type: 'string' }, user: { type: 'string' }, item: { type: 'string' }, rating: { type: 'string' }, 'min-rating': { type: 'string' }, time: { type: 'string' },
    'item-features': { type: 'string' }, 'partition-by': { type: 'string' }, partners: { type: 'string' }, rounds: { type: 'string' }, epochs: { type: 'string' },
    lr: { type: 'string' }, dim: { type: 'string' }, hidden: { type: 'string' }, seed: { type: 'string' }, save: { type: 'string' }, arms: { type: 'string' }, json: { type: 'boolean' },
    dp: { type: 'string' }, epsilon: { type: 'string' }, delta: { type: 'string' }, clip: { type: 'string' }, 'dp-batch': { type: 'string' }, 'dp-lr': { type: 'string' }, 'eval-users': { type: 'string' },
    'dp-model': { type: 'string' }, 'dp-free-min': { type: 'string' }, 'dp-count-sigma': { type: 'string' },
    'dp-top': { type: 'string' }, 'dp-rank': { type: 'string' }, 'dp-noise': { type: 'string' },
    ...PROTECTION_FLAG_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(REC_SIMULATE_USAGE + '\n');
    return 0;
  }
  const started = Date.now();
  const csv = requireString(cmd, values, 'csv', 'the interaction CSV');
  const user = requireString(cmd, values, 'user', 'the user id column');
  const item = requireString(cmd, values, 'item', 'the item id column');
  const partners = intFlag(cmd, values, 'partners', 6, 1, 1000);
  const rounds = intFlag(cmd, values, 'rounds', 20, 1, 10_000);
  const epochs = intFlag(cmd, values, 'epochs', rounds, 1, 10_000);
  const seed = intFlag(cmd, values, 'seed', 1, 0, 2 ** 31 - 1);
  const dim = intFlag(cmd, values, 'dim', REC_DEFAULTS.dim, 1, 1024);
  const hidden = intFlag(cmd, values, 'hidden', REC_DEFAULTS.hidden, 0, 1024);
  const learningRate = numberFlag(cmd, values, 'lr', REC_DEFAULTS.learningRate, 1e-6, 10);
  const minRating = values['min-rating'] === undefined ? undefined : numberFlag(cmd, values, 'min-rating', 0, -1e12, 1e12);
  if (values.dp !== undefined && values.dp !== 'record') throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp must be "record" (interaction-level DP-SGD in each brand); partner-level DP hides a whole brand and needs hundreds of them`);
  const table = await readTableFile(csv, { flag: '--csv' });
  const s = prepareScenario(table, { user, item, rating: values.rating as string | undefined, minRating, time: values.time as string | undefined, itemFeatures: typeof values['item-features'] === 'string' ? values['item-features'].split(',').map((c) => c.trim()).filter(Boolean) : undefined }, { partners, partitionBy: values['partition-by'] as string | undefined, seed });
  const spec = scenarioSpec(s, { dim, hidden });
  const gram = gramModelFlags(cmd, values, s);
  const dpModel = gram ? undefined : dpModelFlags(cmd, values, s, spec);
  const train: RecTrainSpec = { model: dpModel?.spec ?? spec, negatives: REC_DEFAULTS.negatives, l2: REC_DEFAULTS.l2 };
  const t = { learningRate, l2: train.l2, negatives: train.negatives };
  progress(`${s.data.users.length} users, ${s.data.items.length} items, ${s.data.featureNames.length} item feature values, ${s.data.histories.reduce((a, h) => a + h.length, 0)} interactions; partners: ${s.partners.map((p) => `${p.id}=${p.users.length} users`).join(', ')}`);

  // Popularity and the single-party arms.
  const ARMS = ['local', 'centralized', 'mf', 'popularity'];
  const arms = values.arms === undefined ? ARMS : values.arms === 'none' ? [] : String(values.arms).split(',').map((a) => a.trim());
  for (const a of arms) if (!ARMS.includes(a)) throw new FedmartError('CONFIG_ERROR', `${cmd}: unknown arm "${a}" in --arms; choose from ${ARMS.join(', ')} or "none"`);
  const all = s.splits.map((_, u) => u);
  const pop = arms.includes('popularity') ? popularityMetrics(spec.items, [partyOf(s, spec, all, seed)]).result() : null;
  const central = arms.includes('centralized') ? trainSingleParty(partyOf(s, spec, all, seed), spec, t, epochs, seed) : null;
  if (central) progress(`centralized: epoch ${central.epoch} chosen on validation (HR@10 ${central.valHr10.toFixed(4)})`);
  const mfSpec = scenarioSpec(s, { dim, hidden, mf: true });
  const mf = arms.includes('mf') ? trainSingleParty(partyOf(s, mfSpec, all, seed), mfSpec, t, epochs, seed) : null;
  let local: RankingAccumulator | null = null;
  if (arms.includes('local')) {
    local = new RankingAccumulator();
    for (const p of s.partners) local.merge(trainSingleParty(partyOf(s, spec, p.users, seed + 1), spec, t, epochs, seed).test);
  }
  progress(`single-party arms done (${((Date.now() - started) / 1000).toFixed(0)} s)`);

  if (gram) {
    // Federated under --dp-model gram: two releases through the seam, the ledger's charge, the model by post-processing.
    const noise = gramNoisePlacement(cmd, values, partners);
    progress(`dp noise: ${noise.placement} — ${noise.why}`);
    const protection = protectionFromFlags(noise.secureAgg ? { ...values, 'secure-agg': true } : values, partners, seed);
    const epsilon = numberFlag(cmd, values, 'epsilon', Number.NaN, 1e-6, 1e6);
    const delta = values.delta === undefined ? 1e-5 : numberFlag(cmd, values, 'delta', 1e-5, 1e-300, 0.999999);
    const r = await federatedGramDp(s, { epsilon, delta, ...gram, protection, distributed: noise.placement === 'distributed', seed, onProgress: progress });
    if (typeof values.save === 'string') {
      const { epsilon: e, delta: d, unit } = r.privacy as { epsilon: number; delta: number; unit: string };
      saveForRecommend(values.save, s, gramModelFileOf(s.data, r.model, { user, item, time: values.time as string | undefined }, { level: 'record', unit, epsilon: e, delta: d, model: 'gram' }), table, { user });
    }
    const out = {
      scenario: 'recommendation',
      partners: s.partners.map((p) => ({ id: p.id, users: p.users.length, interactions: p.users.reduce((a, u) => a + s.splits[u]!.train.length + 2, 0) })),
      federated: arm(r.test),
      ...(local ? { localOnly: arm(local.result()) } : {}),
      ...(central ? { centralized: arm(central.test.result()) } : {}),
      ...(pop ? { popularity: arm(pop) } : {}),
      ...(mf ? { mf: arm(mf.test.result()) } : {}),
      selection: { federatedRound: 2, federatedUsers: 'served', ...(central ? { centralizedEpoch: central.epoch } : {}), ...(mf ? { mfEpoch: mf.epoch } : {}), on: 'the release settings are defaults chosen on validation HR@10 (README); no choice is made in this run' },
      privacy: r.privacy,
      ...(protection.summary ? { protection: protection.summary } : {}),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    process.stdout.write(values.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
    return 0;
  }

  // Federated: the recommendation task in real agents against a real coordinator.
  const evalUsers = (values['eval-users'] as string | undefined) ?? (values.dp === undefined ? 'trained' : 'served');
  if (evalUsers !== 'trained' && evalUsers !== 'served') throw new FedmartError('CONFIG_ERROR', `${cmd}: --eval-users must be "trained" or "served", got "${evalUsers}"`);
  const foldInEval = evalUsers === 'served' ? { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives, epochs: FOLD_IN_EPOCHS, maxSteps: FOLD_IN_MAX_STEPS } : undefined;
  const tasks: RecommendationTask[] = s.partners.map((p, k) => recommendationTask(partyOf(s, train.model, p.users, seed + 100 + k), train, foldInEval ? { foldInEval } : {}));
  const protection = protectionFromFlags(values, partners, seed);
  // The federation schema caps a round's learning rate at 10; a larger DP-SGD step goes through the taskSpec's dpStepScale.
  const dpLr = values.dp === undefined ? undefined : numberFlag(cmd, values, 'dp-lr', DP_TOWER_DEFAULTS.learningRate, 1e-6, 10_000);
  if (dpLr !== undefined && dpLr > 10) train.dpStepScale = dpLr / 10;
  const dp = values.dp === undefined ? undefined : dpFlags({ ...values, 'dp-batch': values['dp-batch'] ?? '512', 'dp-lr': String(Math.min(10, dpLr!)) }, { rounds, localEpochs: 1, partnerSizes: tasks.map((x) => x.numExamples) });
  let composed: { epsilon: number; sgdEpsilon: number } | undefined;
  if (dp && dpModel?.countSigma !== undefined) {
    // DP-SGD's σ leaves room for the item-count release in the same budget (RDP composition, dp-prior.ts).
    const r = sigmaWithCountRelease({ q: dp.q, steps: dp.steps, delta: dp.config.delta, epsilon: dp.target, countSigma: dpModel.countSigma });
    dp.config.noiseMultiplier = r.sigma;
    dp.planned = r.epsilon;
    composed = r;
  }
  if (dp) progress(`dp: record (interaction) level, sigma ${dp.config.noiseMultiplier.toFixed(4)} for epsilon ${dp.planned.toFixed(4)} <= ${dp.target} at delta ${dp.config.delta} (q ${dp.q.toFixed(4)}, ${dp.steps} steps), clip ${dp.config.clip}${dpModel?.countSigma !== undefined ? `; item tower ${dpModel.spec.tower!.rows} free rows of ${spec.items}, count release sigma ${dpModel.countSigma}` : ''}`);
  const fed = await runFederation({
    config: {
      task: RECOMMENDATION_TASK,
      model: recLayout(train.model),
      taskSpec: train,
      strategy: 'fedavg',
      localTrain: { localEpochs: 1, batchSize: dp?.localTrain?.batchSize ?? 1, learningRate: dp?.localTrain?.learningRate ?? learningRate, proximalMu: 0 },
      minClients: protection.minClients,
      sampleFraction: 1,
      seed,
      timeouts: { selectingMs: 120_000, trainingMs: 900_000, evaluatingMs: 300_000 },
      ...mergeDpIntoProtection(dp, protection.config, protection.minClients),
    },
    partners: tasks.map((task, k) => ({ id: s.partners[k]!.id, task })),
    rounds,
    seed,
    onProgress: progress,
  });
  const chosen = fed.best ?? { weights: fed.weights, round: fed.committed, metrics: {} as Record<string, number> };
  const fedTest = new RankingAccumulator();
  for (const task of tasks) fedTest.merge(task.local.evaluate(chosen.weights, 'test', true, task.usersAt(chosen.weights)));
  progress(`federated: round ${chosen.round} chosen on validation (HR@10 ${r4(chosen.metrics.eval_hr10 ?? Number.NaN)})`);

  if (typeof values.save === 'string') saveForRecommend(values.save, s, modelFileOf(s.data, train.model, chosen.weights, { user, item, time: values.time as string | undefined }), table, { user });
  const out = {
    scenario: 'recommendation',
    partners: s.partners.map((p, k) => ({ id: p.id, users: p.users.length, interactions: tasks[k]!.numExamples + 2 * p.users.length })),
    federated: arm(fedTest.result()),
    ...(local ? { localOnly: arm(local.result()) } : {}),
    ...(central ? { centralized: arm(central.test.result()) } : {}),
    ...(pop ? { popularity: arm(pop) } : {}),
    ...(mf ? { mf: arm(mf.test.result()) } : {}),
    selection: { federatedRound: chosen.round, federatedUsers: evalUsers, ...(central ? { centralizedEpoch: central.epoch } : {}), ...(mf ? { mfEpoch: mf.epoch } : {}), on: 'validation HR@10 (second-to-last interaction per user)' },
    ...(dp ? { privacy: recPrivacy(dp, fed.privacy, composed, dpModel) } : {}),
    ...(protection.summary ? { protection: protection.summary } : {}),
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  process.stdout.write(values.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
  return 0;
}

/**
 * `--dp-model gram` (the default under --dp record): the item-Gram release's settings, or undefined for the DP-SGD
 * models and without --dp.
 */
function gramModelFlags(cmd: string, values: Record<string, unknown>, s: PreparedScenario): ReturnType<typeof gramFlags> | undefined {
  const kind = (values['dp-model'] as string | undefined) ?? 'gram';
  if (values.dp === undefined || kind !== 'gram') {
    for (const f of ['dp-top', 'dp-rank', 'dp-noise']) if (values[f] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} sets the item-Gram release; it needs --dp record (with --dp-model gram, the default)`);
    return undefined;
  }
  if (values.epsilon === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp needs --epsilon E (the privacy budget for both releases)`);
  for (const f of ['clip', 'dp-batch', 'dp-lr', 'dp-free-min', 'dp-count-sigma', 'eval-users']) if (values[f] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} sets DP-SGD; it needs --dp-model tower or free (the default --dp-model gram trains no SGD model)`);
  return gramFlags(cmd, values, s.data.items.length);
}

/**
 * The model `--dp record --dp-model tower|free` trains: `--dp-model tower` the item
 * tower over public item features with free rows only for items whose
 * released (Gaussian-noised, dp-prior.ts) count reaches --dp-free-min, and
 * the released counts as the popularity prior; `--dp-model free` keeps the
 * plain model (a free row per item).
 */
function dpModelFlags(cmd: string, values: Record<string, unknown>, s: PreparedScenario, spec: RecModelSpec): { spec: RecModelSpec; countSigma?: number } | undefined {
  if (values.dp === undefined) {
    for (const f of ['dp-model', 'dp-free-min', 'dp-count-sigma']) if (values[f] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} needs --dp record`);
    return undefined;
  }
  const kind = (values['dp-model'] as string | undefined) ?? 'gram';
  if (kind !== 'tower' && kind !== 'free') throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp-model must be "gram" (the item-Gram release, the default), "tower" (DP-SGD on the item tower over public features) or "free" (DP-SGD with a free embedding row per item), got "${kind}"`);
  if (kind === 'free') {
    for (const f of ['dp-free-min', 'dp-count-sigma']) if (values[f] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} sets the item tower; it needs --dp-model tower`);
    return { spec };
  }
  const freeMin = numberFlag(cmd, values, 'dp-free-min', DP_TOWER_DEFAULTS.freeMin, 0, 1e12);
  const countSigma = numberFlag(cmd, values, 'dp-count-sigma', DP_TOWER_DEFAULTS.countSigma, 0.1, 1e6);
  // Each brand releases its noisy training-interaction counts; the sum is public (post-processing from here on).
  const counts = new Float64Array(spec.items);
  for (const p of s.partners) {
    const trainItems: number[] = [];
    for (const u of p.users) for (const it of s.splits[u]!.train) trainItems.push(it);
    const c = noisyItemCounts(spec.items, trainItems, countSigma, cryptoRandomSource);
    for (let i = 0; i < c.length; i++) counts[i]! += c[i]!;
  }
  return { spec: { ...spec, tower: itemTowerFromCounts(counts, freeMin) }, countSigma };
}

/** simulate's privacy block for the recommendation scenario: the ledger's DP-SGD ε, and with the item tower the ε composed with the count release. */
function recPrivacy(dp: NonNullable<ReturnType<typeof dpFlags>>, report: Parameters<typeof simulationPrivacy>[1], composed: { epsilon: number; sgdEpsilon: number } | undefined, dpModel: { spec: RecModelSpec; countSigma?: number } | undefined) {
  const base = simulationPrivacy(dp, report);
  const unit = 'interaction (one observed user-item pair with its sampled negatives)';
  if (!composed || dpModel?.countSigma === undefined) return { ...base, unit, model: 'free' };
  const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
  return {
    ...base,
    // The ledger charges DP-SGD's rounds; the count release happened once before them, in the same budget.
    epsilon: r6(composed.epsilon),
    epsilonSgdLedger: base.epsilon,
    epsilonSgdPlanned: r6(composed.sgdEpsilon),
    countRelease: { sigma: dpModel.countSigma, sensitivity: 1, composition: 'RDP (Mironov 2017), Balle et al. 2020 conversion' },
    unit,
    model: 'tower',
    freeItemRows: dpModel.spec.tower!.rows,
  };
}

function saveForRecommend(dir: string, s: PreparedScenario, file: RecommendationModelFile | GramModelFile, table: Awaited<ReturnType<typeof readTableFile>>, cols: { user: string }): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(file));
  const ui = table.columns.indexOf(cols.user);
  for (const p of s.partners) {
    const ids = new Set(p.users.map((u) => s.data.users[u]!));
    writeFileSync(path.join(dir, `${p.id}.csv`), formatCsv({ columns: table.columns, rows: table.rows.filter((r) => ids.has(r[ui]!)) }));
  }
  progress(`saved ${path.join(dir, 'model.json')} and ${s.partners.length} brand CSVs`);
}
