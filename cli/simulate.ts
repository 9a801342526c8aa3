/**
 * `fedmart simulate`: federated vs local-only vs centralized vs an exact
 * logistic-regression reference, on a CSV the user brings. Every choice is
 * made on validation rows (see `selection.ts`); the held-out test split is
 * scored once per arm, for reporting.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { STRATEGY_IDS, type StrategyId } from '@fedmart/shared/strategy/types';
import { computeSigma } from '@fedmart/shared/dp/rdp';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { predictLogistic } from '@fedmart/client-node/ml/logistic-irls';
import { logOdds } from '@fedmart/shared/model';
import { rocAuc, logLoss } from '@fedmart/shared/metrics';
import { parseFlags, requireString, intFlag, numberFlag, progress } from './args.ts';
import { prepareExperiment, experimentFederationConfig, experimentLocalTrain, scoreModel, round4, DEFAULT_VAL_FRACTION } from './experiment.ts';
import { runFederation } from './federate.ts';
import { explainFederatedModel, explanationsJson } from './explain.ts';
import { writeModelFile } from './model-file.ts';
import { PROTECTION_FLAG_OPTIONS, PROTECTION_USAGE, protectionFromFlags } from './protection-flags.ts';
import { dpFlags, mergeDpIntoProtection, simulationPrivacy, type SimulationDp } from './privacy.ts';
import { candidateLabel, candidateSpec, effectiveLearningRate, fitReference, isBetterRun, parseGrid, trainArm, DEFAULT_GRID, type ArmSelection, type BaselineDp, type Candidate, type RunKey } from './selection.ts';

export const SIMULATE_USAGE = `fedmart simulate --csv FILE --label COL --partition-by COL [options]

Runs the real coordinator and partner code in one process over your CSV and
compares four arms on a held-out test split (20%, stratified, never used to
choose anything):
  federated    FedAvg (or --strategy) over the partners, real Socket.IO agents
  local-only   each partner alone (mean, min, max over partners)
  centralized  all partners' rows pooled (what federation tries to match)
  reference    exact L2 logistic regression (Newton/IRLS), λ chosen on validation
Each partner keeps ${Math.round(DEFAULT_VAL_FRACTION * 100)}% of its rows for validation. The gradient-trained arms search
the same grid (--grid) with the same epoch budget (rounds × local epochs) and
keep the (setting, epoch/round) with the lowest validation log loss: the
federated arm by the coordinator's aggregated validation loss, local-only on
each partner's own validation rows, centralized on the pooled ones.

  --csv FILE            CSV (or .jsonl) with a header row
  --label COL           binary label column
  --positive VALUE      label value that counts as positive (default: yes/1/true)
  --sep CHAR            field separator (default: detected from the header)
  --partition-by COL    column whose values are grouped into partners (non-IID)
  --partners N          number of partners (default 4)
  --rounds R            federated rounds = epoch budget of every arm (default 10)
  --local-epochs E      local epochs per round (default 1)
  --strategy NAME       ${STRATEGY_IDS.join('|')} (default fedavg)
  --grid SPEC           settings searched by every arm: "default" (${DEFAULT_GRID.length} settings:
                        ${DEFAULT_GRID.map(candidateLabel).join('; ')})
                        or "hidden/lr/l2;..." e.g. "0/0.01/1e-3;32/0.003/1e-4" (0 = logistic)
  --val-fraction F      share of each partner's rows kept for validation (default ${DEFAULT_VAL_FRACTION})
  --drop COLS           comma-separated columns to leave out (e.g. leaky ones)
  --seed S              seed for splits and initial weights (default 42)
  --json                print one JSON object on stdout (progress goes to stderr)
${PROTECTION_USAGE}
  --dp record|partner   differential privacy: DP-SGD in each partner, or DP-FedAvg
  --epsilon E           with --dp: privacy budget for all planned rounds (sigma is calibrated)
  --delta D             with --dp: delta (default 1e-5)
  --clip C              with --dp: clipping norm (default 3 for record, 0.5 for partner);
                        record level trains with batch 1024, learning rate 0.03 (DP-SGD likes large batches; chosen on validation).
                        Under DP no grid is searched (each setting tried would spend privacy):
                        one setting, early stopping on validation.
  --dp-batch B, --dp-lr LR  with --dp record: DP-SGD's batch (default 1024) and learning rate (default 0.03)
  --dp-baselines        with --dp record: train local-only and centralized with DP-SGD at the same epsilon
                        (otherwise they are non-private, and the JSON says so)
  --explain             add global feature importance (permutation importance on each partner's own
                        validation rows, combined) and per-row attribution checks for the federated model
  --save-model FILE     write the selected federated model (spec, schema, weights, SHA-256) for fedmart predict
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
    grid: { type: 'string' }, 'val-fraction': { type: 'string' }, 'dp-baselines': { type: 'boolean' }, 'dp-batch': { type: 'string' }, 'dp-lr': { type: 'string' },
    explain: { type: 'boolean' }, 'save-model': { type: 'string' },
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

  if (values['dp-baselines'] === true && values.dp !== 'record') {
    throw new FedmartError('CONFIG_ERROR', `simulate: --dp-baselines needs --dp record (partner-level DP hides one partner among many; a single-party baseline has no one to hide among)`);
  }
  if (values.dp !== undefined && values.grid !== undefined) throw new FedmartError('CONFIG_ERROR', 'simulate: --grid cannot be combined with --dp: every setting tried would spend privacy budget; drop --grid (one setting, early stopping on validation)');
  const gridFlag = values.dp === undefined ? parseGrid((values.grid as string | undefined) ?? 'default') : null;
  const valFraction = numberFlag('simulate', values, 'val-fraction', DEFAULT_VAL_FRACTION, 0.05, 0.5);

  const backend = await initBackend();
  progress(`backend: ${backend.name} (${backend.detail})`);
  const table = await readTableFile(csv, { flag: '--csv', ...(sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep }) });
  progress(`read ${table.rows.length} rows × ${table.columns.length} columns from ${csv}`);
  const exp = prepareExperiment({ table, label, ...(values.positive !== undefined ? { positive: values.positive as string } : {}), partitionBy, partners, seed, drop, valFraction, source: csv });
  const localTrain = experimentLocalTrain(exp, localEpochs);
  progress(`${exp.d} encoded features; test set ${exp.test.n} rows (reporting only); validation ${exp.centralVal.n} rows; partners: ${exp.partners.map((p) => `${p.id}=${p.table.rows.length} rows (${p.values.slice(0, 3).join(', ')}${p.values.length > 3 ? ', …' : ''}) pos ${(p.positiveRate * 100).toFixed(1)}%`).join('; ')}`);

  const dp = dpFlags(values, { rounds, localEpochs, partnerSizes: exp.partners.map((p) => p.data.trainN) });
  if (dp?.config.level === 'partner' && partners < 100) {
    // DP-FedAvg hides each partner among the others: the noise σ·C on the sum is
    // split over n partners, so with few partners it swamps the signal.
    progress(`warning: partner-level DP with ${partners} partners adds noise σ·C = ${(dp.config.noiseMultiplier * dp.config.clip).toFixed(3)} to a sum of ${partners} clipped updates; expect a weak model (DP-FedAvg needs hundreds of partners, McMahan et al. 2018). Record-level DP (--dp record) protects each customer instead.`);
  }
  if (dp) progress(`dp: ${dp.config.level} level, sigma ${dp.config.noiseMultiplier.toFixed(4)} for epsilon ${dp.planned.toFixed(4)} <= ${dp.target} at delta ${dp.config.delta} (q ${dp.q.toFixed(4)}, ${dp.steps} steps), clip ${dp.config.clip}`);
  const grid: Candidate[] = dp || !gridFlag ? [dpCandidate(dp!)] : gridFlag;
  const batch = dp?.localTrain?.batchSize ?? localTrain.batchSize;
  const armLocal = { ...localTrain, batchSize: batch };
  const epochs = rounds * localEpochs;
  progress(`selection: ${grid.length} setting(s) × ${epochs} epochs per arm, batch ${batch}, lowest validation log loss wins: ${grid.map(candidateLabel).join('; ')}`);

  // ---- federated arm: one real federation per setting, early stopping on the aggregated validation loss.
  const protection = protectionFromFlags(values, partners, seed);
  let fedBest: (RunKey & { candidate: Candidate; weights: Float32Array; evalAuc: number; round: number }) | null = null;
  const fedTried: { candidate: string; round: number; valLoss: number }[] = [];
  let committed = 0;
  let privacyReport: Awaited<ReturnType<typeof runFederation>>['privacy'];
  for (const [candidateIndex, candidate] of grid.entries()) {
    const spec = candidateSpec(candidate, exp.d);
    progress(`federated [${candidateIndex + 1}/${grid.length}] ${candidateLabel(candidate)}: ${rounds} rounds × ${localEpochs} local epoch(s), strategy ${strategy}${protection.summary ? `, ${protection.summary}` : ''}`);
    const fed = await runFederation({
      config: { ...experimentFederationConfig({ spec, strategy: strategy as StrategyId, localEpochs, minClients: protection.minClients, seed, localTrain: { ...armLocal, learningRate: effectiveLearningRate(candidate, batch), l2: candidate.l2 } }), initialOutputBias: logOdds(exp.baseRate), ...mergeDpIntoProtection(dp, protection.config, protection.minClients) },
      partners: exp.partners.map((p, i) => ({ id: p.id, data: p.data, ...(protection.dropAtStage ? { dropAtStage: (round: number) => protection.dropAtStage!(i, round) } : {}) })),
      modelFromPartner: protection.modelFromPartner, waitForAllPartners: protection.dropAtStage !== null,
      rounds, seed, onProgress: progress,
    });
    committed = Math.max(committed, fed.committed);
    privacyReport = fed.privacy;
    if (fed.best) {
      const key = { valLoss: fed.best.evalLoss, candidateIndex, epoch: fed.best.round * localEpochs };
      fedTried.push({ candidate: candidateLabel(candidate), round: fed.best.round, valLoss: round4(fed.best.evalLoss) });
      if (isBetterRun(key, fedBest)) fedBest = { ...key, candidate, weights: fed.best.weights, evalAuc: fed.best.evalAuc, round: fed.best.round };
    } else fedTried.push({ candidate: candidateLabel(candidate), round: 0, valLoss: Number.NaN });
  }
  if (!fedBest) throw new FedmartError('ROUND_FAILED', 'simulate: no federated round reported a validation loss; check the partners\' logs above');
  const fedSpec = candidateSpec(fedBest.candidate, exp.d);
  const fedScore = await scoreModel(fedSpec, fedBest.weights, exp.test);
  progress(`federated: selected ${candidateLabel(fedBest.candidate)} at round ${fedBest.round} (validation loss ${fedBest.valLoss.toFixed(4)}); test auc ${fedScore.auc.toFixed(4)}, logloss ${fedScore.logloss.toFixed(4)}`);

  // ---- baselines: same grid, same epoch budget, same batch, same rule, their own validation rows.
  const privateBaselines = values['dp-baselines'] === true && dp !== undefined;
  const locals: { id: string; sel: ArmSelection; auc: number; logloss: number; dp?: BaselineDp }[] = [];
  for (const p of exp.partners) {
    const train = { x: p.data.trainX, y: p.data.trainY, n: p.data.trainN };
    const bdp = privateBaselines ? baselineDp(dp, train.n, batch, epochs) : undefined;
    const sel = await trainArm({ train, val: { x: p.data.valX, y: p.data.valY, n: p.data.valN }, d: exp.d, grid, epochs, local: armLocal, seed, ...(bdp ? { dp: bdp } : {}) });
    const s = await scoreModel(sel.spec, sel.weights, exp.test);
    locals.push({ id: p.id, sel, ...s, ...(bdp ? { dp: bdp } : {}) });
    progress(`local-only ${p.id}: selected ${candidateLabel(sel.candidate)} at epoch ${sel.epoch}; test auc ${s.auc.toFixed(4)}`);
  }
  const centralDp = privateBaselines ? baselineDp(dp, exp.central.n, batch, epochs) : undefined;
  const central = await trainArm({ train: exp.central, val: exp.centralVal, d: exp.d, grid, epochs, local: armLocal, seed, ...(centralDp ? { dp: centralDp } : {}) });
  const centralScore = await scoreModel(central.spec, central.weights, exp.test);
  progress(`centralized: selected ${candidateLabel(central.candidate)} at epoch ${central.epoch}; test auc ${centralScore.auc.toFixed(4)}, logloss ${centralScore.logloss.toFixed(4)}`);
  const ref = fitReference({ train: exp.central, val: exp.centralVal, d: exp.d });
  const refP = predictLogistic(ref.fit, exp.test.x, exp.test.n);
  const refScore = { auc: rocAuc(refP, exp.test.y), logloss: logLoss(refP, exp.test.y) };
  progress(`reference (L2 logistic regression, IRLS): lambda ${ref.lambda} chosen on validation; test auc ${refScore.auc.toFixed(4)}, logloss ${refScore.logloss.toFixed(4)}`);

  // ---- explanations and the model file (the selected federated model; validation rows only).
  const explanation = values.explain === true || values['save-model'] !== undefined
    ? explainFederatedModel({ spec: fedSpec, weights: fedBest.weights, schema: exp.schema, partners: exp.partners.map((p) => ({ id: p.id, ...p.data })), seed })
    : null;
  if (values.explain === true && explanation) progress(`explanations: top features ${explanation.global.slice(0, 5).map((g) => `${g.feature} ${g.importance.toFixed(4)}`).join(', ')}`);
  if (typeof values['save-model'] === 'string') {
    const file = values['save-model'];
    await writeModelFile(file, { spec: fedSpec, weights: fedBest.weights, dataSchema: exp.schema, ...(explanation ? { baseline: explanation.baseline } : {}), metadata: { source: `fedmart simulate (${csv})`, createdAt: new Date().toISOString(), metrics: { test_auc: round4(fedScore.auc), test_logloss: round4(fedScore.logloss), validation_loss: round4(fedBest.valLoss), round: fedBest.round } } });
    progress(`saved the selected federated model to ${file} (score rows with: fedmart predict --model ${file} --csv rows.csv --explain)`);
  }

  const localAucs = locals.map((l) => l.auc).filter(Number.isFinite);
  const nanOr = (x: number) => (Number.isFinite(x) ? round4(x) : null);
  const selected = (c: Candidate, at: Record<string, number>) => ({ model: c.hidden.length ? `mlp[${c.hidden.join(',')}]` : 'logistic', learningRate: round6(effectiveLearningRate(c, batch)), l2: c.l2, batchSize: batch, ...at });
  const result = {
    task: 'binary',
    partners: exp.partners.map((p) => ({ id: p.id, rows: p.table.rows.length, trainRows: p.data.trainN, validationRows: p.data.valN, positiveRate: round4(p.positiveRate), values: p.values })),
    selection: {
      rule: 'lowest validation log loss over every (setting, epoch or round); ties to the simpler setting, then the earlier epoch',
      metric: 'validation log loss',
      grid: grid.map(candidateLabel),
      budget: { settings: grid.length, epochs, batchSize: batch },
      validation: {
        federated: `the coordinator's example-weighted mean of the partners' own validation losses (${exp.centralVal.n} rows in all), after every round`,
        localOnly: "each partner's own validation rows",
        centralized: `all partners' validation rows pooled (${exp.centralVal.n})`,
        reference: 'the same pooled validation rows, for lambda',
      },
      test: `${exp.test.n} held-out rows, scored once per arm after selection`,
      ...(dp ? { note: 'under DP one setting is trained (each setting tried would spend privacy); early stopping uses validation metrics, which are not covered by the DP guarantee' } : {}),
    },
    federated: {
      auc: round4(fedScore.auc), logloss: round4(fedScore.logloss), rounds: committed,
      selected: selected(fedBest.candidate, { round: fedBest.round }),
      validation: { loss: round4(fedBest.valLoss), auc: nanOr(fedBest.evalAuc) },
      tried: fedTried,
    },
    localOnly: {
      auc: round4(localAucs.reduce((a, b) => a + b, 0) / Math.max(1, localAucs.length)), aucMin: round4(Math.min(...localAucs)), aucMax: round4(Math.max(...localAucs)),
      logloss: round4(locals.reduce((a, l) => a + l.logloss, 0) / locals.length),
      private: privateBaselines,
      partners: locals.map((l) => ({ id: l.id, auc: nanOr(l.auc), logloss: round4(l.logloss), selected: selected(l.sel.candidate, { epoch: l.sel.epoch }), validation: { loss: round4(l.sel.validation.loss), auc: nanOr(l.sel.validation.auc) } })),
    },
    centralized: {
      auc: round4(centralScore.auc), logloss: round4(centralScore.logloss), private: privateBaselines,
      selected: selected(central.candidate, { epoch: central.epoch }),
      validation: { loss: round4(central.validation.loss), auc: nanOr(central.validation.auc) },
      tried: central.tried.map((t) => ({ ...t, valLoss: round4(t.valLoss) })),
      ...(centralDp ? { dp: { noiseMultiplier: round4(centralDp.noiseMultiplier), sampleRate: round4(centralDp.sampleRate), clip: centralDp.clip } } : {}),
    },
    reference: {
      auc: round4(refScore.auc), logloss: round4(refScore.logloss), method: 'L2 logistic regression fitted to convergence by Newton/IRLS on the pooled training rows',
      lambda: ref.lambda, iterations: ref.fit.iterations, converged: ref.fit.converged,
      validation: { loss: round4(ref.validation.loss), auc: nanOr(ref.validation.auc) },
      tried: ref.tried.map((t) => ({ ...t, valLoss: round4(t.valLoss) })),
    },
    ...(values.explain === true && explanation ? { explanations: explanationsJson(explanation) } : {}),
    ...(dp ? { privacy: { ...simulationPrivacy(dp, privacyReport), baselines: privateBaselines ? `DP-SGD at the same epsilon target ${dp.target} (delta ${dp.config.delta})` : 'non-private (pass --dp-baselines to train them with DP-SGD at the same epsilon)' } } : {}),
    backend: backend.name,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    const f = (x: number | null) => (x === null ? '   —  ' : x.toFixed(4));
    process.stdout.write(
      `\n              test AUC  test logloss  validation loss  selected\n` +
        `federated     ${f(result.federated.auc)}    ${f(result.federated.logloss)}        ${f(result.federated.validation.loss)}           ${candidateLabel(fedBest.candidate)}, round ${fedBest.round} of ${committed}\n` +
        `local-only    ${f(result.localOnly.auc)}    ${f(result.localOnly.logloss)}                         mean of ${locals.length} (min ${f(result.localOnly.aucMin)}, max ${f(result.localOnly.aucMax)})${privateBaselines ? ', DP-SGD' : ''}\n` +
        `centralized   ${f(result.centralized.auc)}    ${f(result.centralized.logloss)}        ${f(result.centralized.validation.loss)}           ${candidateLabel(central.candidate)}, epoch ${central.epoch}${privateBaselines ? ', DP-SGD' : ''}\n` +
        `reference     ${f(result.reference.auc)}    ${f(result.reference.logloss)}        ${f(result.reference.validation.loss)}           L2 logistic (IRLS), lambda ${ref.lambda}\n` +
        `test split: ${exp.test.n} rows, used for these figures only; backend ${result.backend}, ${result.seconds} s\n`,
    );
  }
  return 0;
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** The one setting trained under DP: the default model with the DP-SGD learning rate (record level) or the usual one. */
function dpCandidate(dp: SimulationDp): Candidate {
  const base = DEFAULT_GRID.find((c) => c.hidden.length > 0)!;
  return dp.localTrain ? { hidden: [...base.hidden], learningRate: dp.localTrain.learningRate, lrBatch: dp.localTrain.batchSize, l2: 0 } : { hidden: [...base.hidden], learningRate: base.learningRate, l2: 0 };
}

/**
 * DP-SGD settings for a baseline arm at the federated arm's ε: sampling rate
 * batch/n, σ calibrated by the same RDP accountant for that arm's steps
 * (epochs × ⌈1/q⌉), so each arm spends the same (ε, δ) on its own records.
 */
function baselineDp(dp: SimulationDp, n: number, batch: number, epochs: number): BaselineDp {
  const q = Math.min(1, batch / n);
  const steps = epochs * Math.max(1, Math.ceil(1 / q - 1e-9));
  const { sigma } = computeSigma({ q, steps, delta: dp.config.delta, epsilon: dp.target });
  return { clip: dp.config.clip, noiseMultiplier: sigma, sampleRate: q };
}
