/**
 * `fedmart simulate`: federated vs local-only vs centralized on a CSV the user brings.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { STRATEGY_IDS, type StrategyId } from '@fedmart/shared/strategy/types';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parseFlags, requireString, intFlag, progress } from './args.ts';
import { prepareExperiment, defaultModelSpec, experimentFederationConfig, experimentLocalTrain, centralTrain, scoreModel, trainBaseline, round4 } from './experiment.ts';
import { runFederation } from './federate.ts';
import { PROTECTION_FLAG_OPTIONS, PROTECTION_USAGE, protectionFromFlags } from './protection-flags.ts';
import { dpFlags, mergeDpIntoProtection, simulationPrivacy } from './privacy.ts';

export const SIMULATE_USAGE = `fedmart simulate --csv FILE --label COL --partition-by COL [options]

Runs the real coordinator and partner code in one process over your CSV and
compares federated training with local-only and centralized training.

  --csv FILE            CSV (or .jsonl) with a header row
  --label COL           binary label column
  --positive VALUE      label value that counts as positive (default: yes/1/true)
  --sep CHAR            field separator (default: detected from the header)
  --partition-by COL    column whose values are grouped into partners (non-IID)
  --partners N          number of partners (default 4)
  --rounds R            federated rounds (default 10)
  --local-epochs E      local epochs per round (default 1)
  --strategy NAME       ${STRATEGY_IDS.join('|')} (default fedavg)
  --drop COLS           comma-separated columns to leave out (e.g. leaky ones)
  --seed S              seed for splits and initial weights (default 42)
  --json                print one JSON object on stdout (progress goes to stderr)
${PROTECTION_USAGE}
  --dp record|partner   differential privacy: DP-SGD in each partner, or DP-FedAvg
  --epsilon E           with --dp: privacy budget for all planned rounds (sigma is calibrated)
  --delta D             with --dp: delta (default 1e-5)
  --clip C              with --dp: clipping norm (default 3 for record, 0.5 for partner);
                        record level trains with batch 2048, learning rate 0.05 (DP-SGD likes large batches)
  --mode vertical       vertical FL instead (PSI + vertical LR / split NN over column groups);
                        see: fedmart simulate --mode vertical --help

Example:
  fedmart simulate --csv bank-full.csv --sep ';' --label y --positive yes \\
    --partition-by job --partners 6 --rounds 20 --drop duration --json`;

export async function simulateCommand(argv: string[]): Promise<number> {
  // Vertical federated learning has its own flags and harness (cli/vertical.ts).
  const modeAt = argv.findIndex((a) => a === '--mode' || a.startsWith('--mode='));
  if (modeAt !== -1 && (argv[modeAt] === '--mode=vertical' || argv[modeAt + 1] === 'vertical')) {
    return (await import('./vertical.ts')).simulateVerticalCommand(argv);
  }
  const { values } = parseFlags('simulate', argv, {
    csv: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, sep: { type: 'string' },
    'partition-by': { type: 'string' }, partners: { type: 'string' }, rounds: { type: 'string' }, 'local-epochs': { type: 'string' },
    strategy: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, drop: { type: 'string' },
    dp: { type: 'string' }, epsilon: { type: 'string' }, delta: { type: 'string' }, clip: { type: 'string' },
    ...PROTECTION_FLAG_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(SIMULATE_USAGE + '\n');
    return 0;
  }
  const started = Date.now();
  const csv = requireString('simulate', values, 'csv', 'the CSV file to federate');
  const label = requireString('simulate', values, 'label', 'the binary label column');
  const partitionBy = requireString('simulate', values, 'partition-by', 'the column whose values define the partners');
  const partners = intFlag('simulate', values, 'partners', 4, 2, 1000);
  const rounds = intFlag('simulate', values, 'rounds', 10, 1, 10_000);
  const localEpochs = intFlag('simulate', values, 'local-epochs', 1, 1, 1000);
  const seed = intFlag('simulate', values, 'seed', 42, 0, 2 ** 31 - 1);
  const strategy = (values.strategy as string | undefined) ?? 'fedavg';
  if (!(STRATEGY_IDS as readonly string[]).includes(strategy)) {
    throw new FedmartError('CONFIG_ERROR', `simulate: unknown strategy "${strategy}"; choose one of: ${STRATEGY_IDS.join(', ')}`);
  }
  const sep = values.sep as string | undefined;
  if (sep !== undefined && sep.length !== 1 && sep !== '\\t') throw new FedmartError('CONFIG_ERROR', `simulate: --sep must be one character, got "${sep}"`);
  const drop = typeof values.drop === 'string' ? values.drop.split(',').map((s) => s.trim()).filter(Boolean) : [];

  const backend = await initBackend();
  progress(`backend: ${backend.name} (${backend.detail})`);
  const table = await readTableFile(csv, sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep });
  progress(`read ${table.rows.length} rows × ${table.columns.length} columns from ${csv}`);
  const exp = prepareExperiment({ table, label, ...(values.positive !== undefined ? { positive: values.positive as string } : {}), partitionBy, partners, seed, drop, source: csv });
  const spec = defaultModelSpec(exp.d);
  const localTrain = experimentLocalTrain(exp, localEpochs);
  progress(`${exp.d} encoded features; test set ${exp.test.n} rows; partners: ${exp.partners.map((p) => `${p.id}=${p.data.trainN + (p.data.valX === p.data.trainX ? 0 : p.data.valN)} rows (${p.values.slice(0, 3).join(', ')}${p.values.length > 3 ? ', …' : ''}) pos ${(p.positiveRate * 100).toFixed(1)}%`).join('; ')}`);

  const dp = dpFlags(values, { rounds, localEpochs, partnerSizes: exp.partners.map((p) => p.data.trainN) });
  if (dp?.config.level === 'partner' && partners < 100) {
    // DP-FedAvg hides each partner among the others: the noise σ·C on the sum is
    // split over n partners, so with few partners it swamps the signal.
    progress(`warning: partner-level DP with ${partners} partners adds noise σ·C = ${(dp.config.noiseMultiplier * dp.config.clip).toFixed(3)} to a sum of ${partners} clipped updates; expect a weak model (DP-FedAvg needs hundreds of partners, McMahan et al. 2018). Record-level DP (--dp record) protects each customer instead.`);
  }
  if (dp) progress(`dp: ${dp.config.level} level, sigma ${dp.config.noiseMultiplier.toFixed(4)} for epsilon ${dp.planned.toFixed(4)} <= ${dp.target} at delta ${dp.config.delta} (q ${dp.q.toFixed(4)}, ${dp.steps} steps), clip ${dp.config.clip}`);
  const protection = protectionFromFlags(values, partners, seed);
  progress(`federated: ${rounds} rounds × ${localEpochs} local epoch(s), strategy ${strategy}${protection.summary ? `, ${protection.summary}` : ''}`);
  const fed = await runFederation({
    config: { ...experimentFederationConfig({ spec, strategy: strategy as StrategyId, localEpochs, minClients: protection.minClients, seed, localTrain: { ...localTrain, ...dp?.localTrain } }), ...mergeDpIntoProtection(dp, protection.config, protection.minClients) },
    partners: exp.partners.map((p, i) => ({ id: p.id, data: p.data, ...(protection.dropAtStage ? { dropAtStage: (round: number) => protection.dropAtStage!(i, round) } : {}) })),
    modelFromPartner: protection.modelFromPartner, waitForAllPartners: protection.dropAtStage !== null,
    rounds, seed, onProgress: progress,
  });
  const fedScore = await scoreModel(spec, fed.weights, exp.test);
  progress(`federated: test auc ${fedScore.auc.toFixed(4)}, logloss ${fedScore.logloss.toFixed(4)}`);

  const epochs = rounds * localEpochs;
  const locals: number[] = [];
  for (const p of exp.partners) {
    const s = await trainBaseline(spec, seed, { x: p.data.trainX, y: p.data.trainY, n: p.data.trainN }, epochs, exp.test, localTrain);
    locals.push(s.auc);
    progress(`local-only ${p.id}: test auc ${s.auc.toFixed(4)}`);
  }
  const central = await trainBaseline(spec, seed, exp.central, epochs, exp.test, centralTrain(localTrain, exp));
  progress(`centralized: test auc ${central.auc.toFixed(4)}, logloss ${central.logloss.toFixed(4)}`);

  const result = {
    task: 'binary',
    partners: exp.partners.map((p) => ({ id: p.id, rows: p.table.rows.length, positiveRate: round4(p.positiveRate), values: p.values })),
    federated: { auc: round4(fedScore.auc), logloss: round4(fedScore.logloss), rounds: fed.committed },
    localOnly: { auc: round4(locals.reduce((a, b) => a + b, 0) / locals.length), aucMin: round4(Math.min(...locals)), aucMax: round4(Math.max(...locals)) },
    centralized: { auc: round4(central.auc), logloss: round4(central.logloss) },
    ...(dp ? { privacy: simulationPrivacy(dp, fed.privacy) } : {}),
    backend: backend.name,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    process.stdout.write(
      `\n            AUC     logloss\nfederated   ${result.federated.auc.toFixed(4)}  ${result.federated.logloss.toFixed(4)}   (${result.federated.rounds} rounds)\nlocal-only  ${result.localOnly.auc.toFixed(4)}            (mean of ${locals.length}; min ${result.localOnly.aucMin.toFixed(4)}, max ${result.localOnly.aucMax.toFixed(4)})\ncentralized ${result.centralized.auc.toFixed(4)}  ${result.centralized.logloss.toFixed(4)}\nbackend ${result.backend}, ${result.seconds} s\n`,
    );
  }
  return 0;
}
