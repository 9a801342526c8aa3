/**
 * `fedmart demo` (what `npm start` runs): a real federation on real data.
 * Starts the coordinator on SQLite under ./.fedmart, splits the UCI Bank
 * Marketing data by job into non-IID partners, enrolls each partner, and
 * starts every partner as its own OS process holding only its own rows.
 * Runs FedAvg rounds with live progress, prints per-round metrics and the
 * federated vs local-only vs centralized comparison, then keeps serving.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedmartError } from '@fedmart/shared/errors';
import { decodeFloat32 } from '@fedmart/shared/codec';
import { startCoordinator, type Coordinator, type RoundOutcome } from '@fedmart/coordinator';
import { prepareDataDir } from '@fedmart/coordinator/data-dir';
import { readTableFile, writeCsv } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parseFlags, intFlag, progress } from './args.ts';
import { ApiClient } from './api-client.ts';
import { complianceTokenAtStart } from './compliance-token.ts';
import { bankMarketingPath, BANK_LEAKY_COLUMNS } from './datasets.ts';
import { prepareExperiment, defaultModelSpec, experimentFederationConfig, experimentLocalTrain, scoreModel } from './experiment.ts';
import { fitReference, trainArm, type Candidate } from './selection.ts';
import { predictLogistic } from '@fedmart/client-node/ml/logistic-irls';
import { rocAuc, logLoss } from '@fedmart/shared/metrics';

const USAGE = `fedmart demo [--rounds 10] [--partners 4] [--port 7300] [--data-dir ./.fedmart] [--exit]

Runs a real federation on the UCI Bank Marketing data (45,211 customers, CC BY 4.0):
the coordinator on SQLite under the data dir, one OS process per partner holding
only its own rows (split by job: non-IID), FedAvg rounds with live progress, then
the federated vs local-only vs centralized comparison. Keeps serving the API
afterwards unless --exit is given.

--mode vertical: a coordinator and three party processes on the bank data split by
columns (fedmart demo --mode vertical --help).

Example:
  fedmart demo --rounds 8 --partners 5`;

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

export async function demoCommand(argv: string[]): Promise<number> {
  const mi = argv.indexOf('--mode');
  if (mi >= 0 && argv[mi + 1] === 'vertical') return verticalDemoCommand([...argv.slice(0, mi), ...argv.slice(mi + 2)]);
  if (mi >= 0 && argv[mi + 1] !== 'horizontal') throw new FedmartError('CONFIG_ERROR', `demo: --mode must be horizontal or vertical, got "${argv[mi + 1] ?? ''}"`);
  if (mi >= 0) argv = [...argv.slice(0, mi), ...argv.slice(mi + 2)];
  const { values } = parseFlags('demo', argv, {
    rounds: { type: 'string' }, partners: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' },
    exit: { type: 'boolean' }, seed: { type: 'string' }, 'partition-by': { type: 'string' }, 'local-epochs': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const started = Date.now();
  const rounds = intFlag('demo', values, 'rounds', 10, 1, 1000);
  const nPartners = intFlag('demo', values, 'partners', 4, 2, 12);
  const port = intFlag('demo', values, 'port', 7300, 0, 65535);
  const seed = intFlag('demo', values, 'seed', 42, 0, 2 ** 31 - 1);
  const localEpochs = intFlag('demo', values, 'local-epochs', 1, 1, 100);
  const partitionBy = (values['partition-by'] as string | undefined) ?? 'job';
  const dataDir = path.resolve((values['data-dir'] as string | undefined) ?? '.fedmart');
  await prepareDataDir(dataDir); // before the data is read: a bad --data-dir fails in a second, not after the split
  const out = (s: string) => process.stdout.write(s + '\n');

  out('fedmart demo — a horizontal federation on the UCI Bank Marketing data (real customers, CC BY 4.0)');
  const backend = await initBackend();
  out(`ML backend: ${backend.name} (${backend.detail})`);

  // ---- data: each partner gets only its own rows, written to its own file
  const csv = bankMarketingPath('full');
  const table = await readTableFile(csv, { sep: ';' });
  const exp = prepareExperiment({ table, label: 'y', positive: 'yes', partitionBy, partners: nPartners, seed, drop: BANK_LEAKY_COLUMNS, source: csv });
  const spec = defaultModelSpec(exp.d);
  const localTrain = experimentLocalTrain(exp, localEpochs);
  const runDir = path.join(dataDir, 'demo', new Date().toISOString().replace(/[:.]/g, '-'));
  await mkdir(runDir, { recursive: true });
  const schemaPath = path.join(runDir, 'schema.json');
  await writeFile(schemaPath, JSON.stringify(exp.schema, null, 2));
  const files: string[] = [];
  for (const p of exp.partners) {
    const f = path.join(runDir, `${p.id}.csv`);
    await writeCsv(f, p.table, ';');
    files.push(f);
  }
  out(`data: ${table.rows.length} rows, ${exp.d} encoded features (duration dropped: it leaks the label); held-out test set ${exp.test.n} rows`);
  for (const p of exp.partners) out(`  ${p.id}: ${p.table.rows.length} rows, ${(p.positiveRate * 100).toFixed(1)}% subscribed, jobs: ${p.values.join(', ')}`);

  // ---- coordinator
  let coord: Coordinator;
  try {
    coord = await startCoordinator({ port, dataDir, log: () => {} });
  } catch (err) {
    if (err instanceof FedmartError && err.code === 'CONFIG_ERROR' && /in use/.test(err.message) && values.port === undefined) {
      out(`port ${port} is in use; using a free port instead`);
      coord = await startCoordinator({ port: 0, dataDir, log: () => {} });
    } else throw err;
  }
  out(`coordinator: ${coord.url} (SQLite at ${path.join(dataDir, 'fedmart.db')})`);
  const children: ChildProcess[] = [];
  const stopAll = async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await coord.close();
  };

  try {
    const api = new ApiClient(coord.url, coord.operatorToken);
    const config = experimentFederationConfig({ spec, strategy: 'fedavg', localEpochs, minClients: nPartners, seed, schema: exp.schema, localTrain });
    const { federation } = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: `bank-marketing demo ${new Date().toISOString().slice(0, 19)}`, config });
    out(`federation: ${federation.id} (FedAvg, model mlp ${exp.d}→${spec.hidden.join('→')}→1, ${nPartners} partners)`);

    // ---- partners: separate OS processes, token passed through the environment (not argv)
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new FedmartError('UNAVAILABLE', `partners did not connect within 120 s; see their logs in ${runDir}`)), 120_000);
      coord.orchestrator.on('client-connected', (e) => {
        if (e.federationId === federation.id) progress(`  ${e.partnerName} connected (${e.connected}/${nPartners})`);
        if (e.federationId === federation.id && e.connected >= nPartners) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const partnerTokens: string[] = [];
    for (const [i, p] of exp.partners.entries()) {
      const { token } = await api.post<{ token: string }>(`/api/v1/federations/${federation.id}/enrollments`, { partner: p.id });
      partnerTokens.push(token);
      const log = createWriteStream(path.join(runDir, `${p.id}.log`));
      const child = spawn(process.execPath, [BIN, 'partner', '--coordinator', coord.url, '--data', files[i]!, '--schema', schemaPath, '--name', p.id, '--seed', String(seed + i)], {
        env: { ...process.env, FEDMART_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      children.push(child);
      out(`  started ${p.id} as process ${child.pid} (its data: ${path.relative(process.cwd(), files[i]!)})`);
    }
    await connected;
    await printPortalLinks(out, coord, api, dataDir, exp.partners[0]!.id, partnerTokens[0]!);

    // ---- rounds, with live progress
    const live = process.stderr.isTTY;
    const onPhase = (e: { federationId: string; round: number; phase: string; selected: number; reported: number; elapsedMs: number }) => {
      if (e.federationId !== federation.id) return;
      const line = `round ${e.round}/${rounds}  ${e.phase.padEnd(11)}  clients reporting ${e.reported}/${e.selected}  ${(e.elapsedMs / 1000).toFixed(1)} s`;
      if (live) process.stderr.write(`\r\x1b[2K${line}`);
      else progress(line);
    };
    coord.orchestrator.on('phase', onPhase);
    coord.orchestrator.on('client-report', (e) => {
      if (e.federationId !== federation.id || !live) return;
      process.stderr.write(`\r\x1b[2Kround ${e.round}/${rounds}  ${e.kind === 'failed' ? `${e.partnerId} failed: ${e.reason}` : `${e.partnerId} sent its ${e.kind === 'train' ? 'update' : 'evaluation'}`}`);
    });
    coord.orchestrator.on('round-end', (e) => {
      if (e.federationId !== federation.id) return;
      const msg = `round ${e.round}/${rounds}  ${e.phase}${e.reason ? ` (${e.reason})` : ''}  ${e.participants.length} clients  ${e.seconds.toFixed(1)} s` + (e.metrics.eval_auc !== undefined ? `  validation AUC ${e.metrics.eval_auc.toFixed(4)}` : '');
      if (live) process.stderr.write(`\r\x1b[2K${msg}\n`);
      else progress(msg);
    });
    const { done } = coord.orchestrator.scheduleRounds(federation.id, rounds);
    const outcomes = await done;
    coord.orchestrator.off('phase', onPhase);
    printRoundTable(out, outcomes);
    const committed = outcomes.filter((o) => o.phase === 'committed');
    if (committed.length === 0) throw new FedmartError('ROUND_FAILED', `no round committed: ${outcomes.map((o) => o.reason).join('; ')}`);

    // ---- comparison on the held-out test set. Early stopping: the federated model is the
    // committed round with the lowest aggregated validation loss; every baseline picks its
    // epoch by the same rule on its own validation rows (cli/selection.ts).
    const best = committed.filter((o) => o.metrics.eval_loss !== undefined).reduce<RoundOutcome | null>((b, o) => (b === null || o.metrics.eval_loss! < b.metrics.eval_loss! ? o : b), null) ?? committed[committed.length - 1]!;
    const bytes = await api.get<Uint8Array>(`/api/v1/federations/${federation.id}/models/${best.modelVersion}/weights`);
    const fedWeights = decodeFloat32(bytes, bytes.byteLength / 4);
    const fedScore = await scoreModel(spec, fedWeights, exp.test);
    const epochs = committed.length * localEpochs;
    progress(`training baselines with the same model, batch and budget (${epochs} epochs, early stopping on validation)…`);
    const candidate: Candidate = { hidden: spec.hidden, learningRate: localTrain.learningRate, l2: localTrain.l2 ?? 0 };
    const localScores: number[] = [];
    for (const p of exp.partners) {
      const sel = await trainArm({ train: { x: p.data.trainX, y: p.data.trainY, n: p.data.trainN }, val: { x: p.data.valX, y: p.data.valY, n: p.data.valN }, d: exp.d, grid: [candidate], epochs, local: localTrain, seed });
      localScores.push((await scoreModel(sel.spec, sel.weights, exp.test)).auc);
    }
    const centralSel = await trainArm({ train: exp.central, val: exp.centralVal, d: exp.d, grid: [candidate], epochs, local: localTrain, seed });
    const central = await scoreModel(centralSel.spec, centralSel.weights, exp.test);
    const ref = fitReference({ train: exp.central, val: exp.centralVal, d: exp.d });
    const refP = predictLogistic(ref.fit, exp.test.x, exp.test.n);
    const mean = localScores.reduce((a, b) => a + b, 0) / localScores.length;
    out('');
    out(`held-out test set (${exp.test.n} customers no partner trained on; nothing was chosen on it):`);
    out('  model'.padEnd(32) + 'AUC      log loss');
    out(`  federated (round ${best.round} of ${committed.length})`.padEnd(32) + `${fedScore.auc.toFixed(4)}   ${fedScore.logloss.toFixed(4)}`);
    out(`  local-only (mean of ${localScores.length})`.padEnd(32) + `${mean.toFixed(4)}            min ${Math.min(...localScores).toFixed(4)}, max ${Math.max(...localScores).toFixed(4)}`);
    out(`  centralized (pooled data)`.padEnd(32) + `${central.auc.toFixed(4)}   ${central.logloss.toFixed(4)}`);
    out(`  reference (L2 logistic IRLS)`.padEnd(32) + `${rocAuc(refP, exp.test.y).toFixed(4)}   ${logLoss(refP, exp.test.y).toFixed(4)}`);
    out(`  (${localScores.map((s, i) => `${exp.partners[i]!.id} ${s.toFixed(4)}`).join(', ')})`);
    out(`  rounds and epochs chosen by the lowest validation loss (each partner's own ${Math.round(100 * exp.centralVal.n / (exp.centralVal.n + exp.central.n))}% validation rows).`);
    out('');
    out(`done in ${((Date.now() - started) / 1000).toFixed(1)} s on the ${backend.name} backend.`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  if (values.exit) {
    await stopAll();
    return 0;
  }
  out(`the coordinator keeps serving at ${coord.url} (partners stay connected).`);
  out(`  operator token: ${path.join(dataDir, 'operator.token')}`);
  out(`  try: curl -H "Authorization: Bearer $(cat ${path.relative(process.cwd(), path.join(dataDir, 'operator.token'))})" ${coord.url}/api/v1/federations`);
  out('  Ctrl-C stops the coordinator and the partner processes.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await stopAll();
  return 0;
}

/**
 * The portal's address and a sign-in link per role (the token rides in the URL fragment, which
 * the browser never sends to the server; the portal moves it to session storage at once).
 */
export async function printPortalLinks(out: (s: string) => void, coord: Coordinator, api: ApiClient, dataDir: string, partnerName: string, partnerToken: string): Promise<void> {
  const compliance = await complianceTokenAtStart(api, dataDir);
  out(`portal: ${coord.url}/  (watch the rounds live; sign in as)`);
  out(`  operator:    ${coord.url}/#token=${coord.operatorToken}`);
  out(`  compliance:  ${coord.url}/#token=${compliance.token}`);
  out(`    (${compliance.origin === 'reused' ? 'reused' : compliance.origin === 'rotated' ? 'renewed; the old one is revoked' : 'issued'}; stored in ${compliance.file})`);
  out(`  partner ${partnerName}: ${coord.url}/#token=${partnerToken}`);
}

function printRoundTable(out: (s: string) => void, outcomes: RoundOutcome[]): void {
  out('');
  out('round  result      clients  train loss  val loss  val AUC   seconds');
  for (const o of outcomes) {
    const m = o.metrics;
    const f = (x: number | undefined) => (x === undefined ? '—'.padEnd(8) : x.toFixed(4).padEnd(8));
    out(`${String(o.round).padEnd(7)}${o.phase.padEnd(12)}${String(o.participants.length).padEnd(9)}${f(m.train_loss)}    ${f(m.eval_loss)}  ${f(m.eval_auc)}  ${o.seconds.toFixed(1)}${o.reason ? `  ${o.reason}` : ''}`);
  }
}

const VERTICAL_USAGE = `fedmart demo --mode vertical [--model lr|splitnn] [--epochs 20] [--rows N] [--batch-size B]
                             [--learning-rate R] [--data-dir ./.fedmart-vertical] [--exit] [--json]

A vertical federation between three real processes on the UCI Bank Marketing data
(duration dropped): platform (label y; age, job, marital, education, default,
balance), brand-a (housing, loan, contact, day, month), brand-b (campaign, pdays,
previous, poutcome); 80 % of customers shared by all. Prints PSI size and time,
the vertical test AUC beside the label holder alone and a centralized model on
the same shared held-out customers, and predict-through-the-parties vs the
in-process model for 100 of them. The coordinator and parties stop at the end.`;

async function verticalDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('demo --mode vertical', argv, {
    model: { type: 'string' }, epochs: { type: 'string' }, rows: { type: 'string' }, 'batch-size': { type: 'string' }, 'learning-rate': { type: 'string' },
    'data-dir': { type: 'string' }, exit: { type: 'boolean' }, json: { type: 'boolean' }, seed: { type: 'string' }, port: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(VERTICAL_USAGE + '\n');
    return 0;
  }
  const cmd = 'demo --mode vertical';
  const model = (values.model as string | undefined) ?? 'lr';
  if (model !== 'lr' && model !== 'splitnn') throw new FedmartError('CONFIG_ERROR', `${cmd}: --model must be lr or splitnn, got "${model}"`);
  const lrFlag = values['learning-rate'];
  const lr = lrFlag === undefined ? undefined : Number(lrFlag);
  if (lr !== undefined && !(lr > 0 && lr <= 10)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --learning-rate must be a number in (0, 10], got "${String(lrFlag)}"`);
  if (model === 'splitnn') await initBackend();
  const { runVerticalDemo } = await import('./vertical-demo.ts');
  const r = await runVerticalDemo({
    dataDir: path.resolve((values['data-dir'] as string | undefined) ?? '.fedmart-vertical'), model, epochs: intFlag(cmd, values, 'epochs', 20, 1, 1000),
    ...(values.rows !== undefined ? { rows: intFlag(cmd, values, 'rows', 45211, 500, 45211) } : {}),
    ...(values['batch-size'] !== undefined ? { batchSize: intFlag(cmd, values, 'batch-size', 256, 16, 1_000_000) } : {}),
    ...(lr !== undefined ? { learningRate: lr } : {}),
    seed: intFlag(cmd, values, 'seed', 42, 0, 2 ** 31 - 1), port: intFlag(cmd, values, 'port', 0, 0, 65535), log: progress,
  });
  progress(`federation ${r.federation}, model ${r.model}: round ${r.round.number} committed as model v${r.round.version} in ${r.round.seconds} s`);
  // Exactly the shape issue 16 names (the federation and round go to the progress log above).
  if (values.json) process.stdout.write(JSON.stringify({ processes: r.processes, psi: r.psi, vertical: r.vertical, labelHolderOnly: r.labelHolderOnly, centralized: r.centralized, predict: r.predict }) + '\n');
  else {
    process.stdout.write(`vertical ${r.model} between ${r.processes} processes (federation ${r.federation})\n  PSI: ${r.psi.intersection} shared training customers in ${r.psi.seconds} s\n  test AUC on shared held-out customers: vertical ${r.vertical.auc.toFixed(4)}, label holder alone ${r.labelHolderOnly.auc.toFixed(4)}, centralized ${r.centralized.auc.toFixed(4)}\n  predict through the parties for ${r.predict.ids} customers: max |p - in-process| = ${r.predict.maxAbsDiff.toExponential(2)}\n`);
  }
  return 0;
}
