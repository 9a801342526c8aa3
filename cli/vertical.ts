/**
 * `fedmart simulate --mode vertical`: a label holder and feature holders that
 * share customers but hold different columns of a CSV align their customers
 * by PSI and train one model (vertical LR under CKKS, or a split NN); the
 * result is compared with the label holder training alone and with a
 * centralized model on every column, all scored on the same held-out rows.
 *
 * How the CSV becomes parties (a simulation of real partners):
 * 1. every row is a customer; its ID is `--id` or a generated one;
 * 2. a stratified 20 % of customers is held out as the test set; every party
 *    holds its columns of them (they are aligned by a second PSI);
 * 3. of the remaining customers a fraction `--overlap` is shared by every
 *    party; the rest are dealt round-robin to the parties as customers of
 *    their own (the label holder alone trains on its shared + own customers;
 *    vertical training sees only the shared ones);
 * 4. each party infers its own columns' types, standardises them with
 *    statistics of its own training rows, and encodes them one-hot/z-scored.
 * The centralized baseline pools all training customers with all columns.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { inferSchema, encodeTable, stratifiedSplit, selectRows, computeNumericStats, applyNumericStats, createSeededRng, shuffleInPlace, type Table, type DatasetSchema } from '@fedmart/shared/data/index';
import { rocAuc } from '@fedmart/shared/metrics';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { createInMemoryVerticalHub, connectVerticalChannel, LabelHolder, FeatureHolder, type LabelledRows, type PartyRows, type SocketVerticalChannel, type VerticalChannel } from '@fedmart/client-node/vertical/index';
import type { X25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { startCoordinator, type Coordinator } from '@fedmart/coordinator';
import { ApiClient } from './api-client.ts';
import { parseFlags, requireString, intFlag, numberFlag, progress } from './args.ts';
import { round4 } from './experiment.ts';

export const VERTICAL_USAGE = `fedmart simulate --mode vertical --csv FILE --label COL --parties "a,b|c,d" [options]

Vertical federated learning on your CSV in one process: the first column
group goes to the label holder (with the label), each further group to a
feature holder. Customers are aligned by ECDH PSI (no ID in the clear), then
trained jointly; printed AUCs are on the same held-out customers.

  --csv FILE          CSV (or .jsonl) with a header row
  --label COL         binary label column (held by the label holder)
  --positive VALUE    label value that counts as positive (default: yes/1/true)
  --sep CHAR          field separator (default: detected)
  --id COL            customer ID column (default: one is generated per row)
  --parties GROUPS    column groups separated by "|", columns by ","
  --drop COLS         comma-separated columns to leave out everywhere (e.g. leaky ones)
  --model lr|splitnn  vertical logistic regression under CKKS (default) or split NN
  --overlap F         fraction of training customers every party holds (default 0.8)
  --epochs E          training epochs (default: lr 8, splitnn 10)
  --batch-size B      rows per step (default: lr 4096, splitnn 256)
  --learning-rate R   Adam learning rate (default: lr 0.05, splitnn 0.01)
  --noise S           split NN: Gaussian noise std on exchanged embeddings (default 0)
  --label-dp EPS      vertical LR: (EPS, --delta)-label DP — Gaussian noise on the residuals,
                      accounted with the RDP accountant (off by default)
  --delta D           δ of --label-dp (default 1e-5)
  --seed S            seed for splits and initial weights (default 42)
  --relay R           coordinator (default: a real coordinator on a free port
                      relays every message, parts sealed end to end between
                      the parties) or memory (an in-process hub)
  --json              print one JSON object on stdout

Example:
  fedmart simulate --mode vertical --csv bank-full.csv --sep ';' --label y --drop duration \\
    --parties "age,balance,housing,loan,contact,day,month,campaign,pdays,previous,poutcome|job,marital,education,default" --json`;

/** Options of {@link runVerticalExperiment}. */
export interface VerticalExperimentOptions {
  readonly table: Table;
  readonly label: string;
  readonly positive?: string;
  readonly id?: string;
  /** Column groups: [label holder's, feature holder 1's, …]. */
  readonly parties: readonly (readonly string[])[];
  readonly drop?: readonly string[];
  readonly model: 'lr' | 'splitnn';
  readonly overlap: number;
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly learningRate?: number;
  readonly noiseStd?: number;
  /** Vertical LR: label DP on the residuals the feature holders compute with (baselines train without it). */
  readonly labelDp?: { readonly epsilon: number; readonly delta: number };
  readonly seed: number;
  readonly testFraction?: number;
  readonly onProgress?: (msg: string) => void;
  /** How the parties talk: through a real coordinator's `/vertical` relay (default) or an in-memory hub. */
  readonly relay?: 'coordinator' | 'memory';
  /** Test and embedding hooks for the relayed run. */
  readonly relayHooks?: VerticalRelayHooks;
}

/** Hooks of a relayed vertical run (tests use them to observe the relay). */
export interface VerticalRelayHooks {
  /** Use this running coordinator instead of starting one. */
  readonly coordinator?: { url: string; operatorToken: string };
  /** X25519 key pairs per party id (default: fresh ones). */
  readonly keyPairs?: Readonly<Record<string, X25519KeyPair>>;
  /** Receives the job id once the job is created. */
  readonly onJob?: (job: string) => void;
  /** Receives the vertical model's test-set probabilities (in the label holder's aligned test order). */
  readonly onPredictions?: (p: Float32Array, y: Float32Array) => void;
  /** Skip the label-holder-only and centralized baselines (their AUCs are then NaN). */
  readonly skipBaselines?: boolean;
}

/** Result of {@link runVerticalExperiment} (the `--json` output). */
export interface VerticalExperimentResult {
  psi: { intersection: number; seconds: number };
  vertical: { auc: number; seconds: number; steps: number; minBatch?: number; labelDp?: { epsilon: number; delta: number; sigma: number } };
  labelHolderOnly: { auc: number };
  centralized: { auc: number };
  model: 'lr' | 'splitnn';
  relay: 'coordinator' | 'memory';
  parties: { id: string; columns: string[]; trainRows: number; encodedColumns: number }[];
  testRows: number;
}

const GENERATED_ID = '__fedmart_id';
const NO_LABEL_COLUMN = '__fedmart_no_label';

/** Parse `--parties "a,b|c,d"` into column groups, checking every column exists and is used once. */
export function parsePartyGroups(spec: string, columns: readonly string[], reserved: readonly string[]): string[][] {
  const groups = spec.split('|').map((g) => g.split(',').map((c) => c.trim()).filter(Boolean));
  if (groups.length < 2 || groups.some((g) => g.length === 0)) {
    throw new FedmartError('CONFIG_ERROR', `--parties must name at least two non-empty column groups separated by "|" (label holder first), got "${spec}"; e.g. --parties "age,balance|job,education"`);
  }
  const seen = new Set<string>();
  for (const c of groups.flat()) {
    if (!columns.includes(c)) throw new FedmartError('CONFIG_ERROR', `--parties names column "${c}", which is not in the data; columns are: ${columns.join(', ')}`);
    if (reserved.includes(c)) throw new FedmartError('CONFIG_ERROR', `--parties names "${c}", which is the label, the ID or a dropped column; list feature columns only`);
    if (seen.has(c)) throw new FedmartError('CONFIG_ERROR', `--parties names column "${c}" twice; each column belongs to exactly one party`);
    seen.add(c);
  }
  return groups;
}

function project(table: Table, cols: readonly string[]): Table {
  const idx = cols.map((c) => table.columns.indexOf(c));
  return { columns: [...cols], rows: table.rows.map((r) => idx.map((i) => r[i]!)) };
}

/** One party's schema from its own training rows (types, categories, then mean/std of its own rows). */
export function partySchema(train: Table, label: string | undefined, positive: string | undefined, id: string, source: string): DatasetSchema {
  let t = train;
  let lab = label;
  if (lab === undefined) {
    // inferSchema needs a binary label; a feature holder has none, so give it a constant column that is never encoded.
    t = { columns: [...train.columns, NO_LABEL_COLUMN], rows: train.rows.map((r, i) => [...r, i % 2 === 0 ? 'yes' : 'no']) };
    lab = NO_LABEL_COLUMN;
  }
  const s0 = inferSchema(t, { label: lab, ...(label !== undefined && positive !== undefined ? { positive } : {}), id, source });
  return applyNumericStats(s0, computeNumericStats(t, s0));
}

/**
 * Run the vertical experiment end to end (PSI, vertical training, baselines).
 * @param o - data, column groups, model and training options
 * @returns PSI size and time, AUCs of vertical, label-holder-only and centralized
 */
export async function runVerticalExperiment(o: VerticalExperimentOptions): Promise<VerticalExperimentResult> {
  const say = o.onProgress ?? (() => undefined);
  const drop = [...(o.drop ?? [])];
  let table = o.table;
  let id = o.id;
  if (id === undefined) {
    table = { columns: [...table.columns, GENERATED_ID], rows: table.rows.map((r, i) => [...r, `cust-${i}`]) };
    id = GENERATED_ID;
  } else if (!table.columns.includes(id)) throw new FedmartError('CONFIG_ERROR', `--id column "${id}" is not in the data; columns are: ${table.columns.join(', ')}`);
  const groups = o.parties.map((g) => [...g]);
  parsePartyGroups(groups.map((g) => g.join(',')).join('|'), table.columns, [o.label, id, ...drop]);
  if (!(o.overlap > 0 && o.overlap <= 1)) throw new FedmartError('CONFIG_ERROR', `--overlap must be in (0, 1], got ${o.overlap}`);

  // Labels (and the positive value) from the label column alone.
  const labelOnly = project(table, [o.label, groups[0]![0]!]);
  const s = inferSchema(labelOnly, { label: o.label, ...(o.positive !== undefined ? { positive: o.positive } : {}), source: 'data' });
  const positive = s.positive[0]!;
  const li = table.columns.indexOf(o.label);
  const yAll = Float32Array.from(table.rows, (r) => (r[li] === positive ? 1 : 0));

  // Held-out test customers first (shared by every party), then shared / own training customers.
  const { train, test } = stratifiedSplit(yAll, o.testFraction ?? 0.2, o.seed);
  const pool = shuffleInPlace(Int32Array.from(train), createSeededRng(o.seed + 7));
  const nShared = Math.round(o.overlap * pool.length);
  const K = groups.length;
  const partyRows: number[][] = groups.map(() => Array.from(pool.subarray(0, nShared)));
  for (let k = nShared; k < pool.length; k++) partyRows[(k - nShared) % K]!.push(pool[k]!);
  for (const r of partyRows) r.sort((a, b) => a - b);
  const testTable = selectRows(table, test);

  const partyIds = groups.map((_, k) => (k === 0 ? 'label-holder' : `feature-holder-${k}`));
  const sets = groups.map((cols, k) => {
    const withLabel = k === 0 ? [id, ...cols, o.label] : [id, ...cols];
    const tr = project(selectRows(table, partyRows[k]!), withLabel);
    const te = project(testTable, withLabel);
    const schema = partySchema(tr, k === 0 ? o.label : undefined, k === 0 ? positive : undefined, id, partyIds[k]!);
    const encTr = encodeTable(tr, schema, { requireLabel: k === 0, source: `${partyIds[k]} train` });
    const encTe = encodeTable(te, schema, { requireLabel: k === 0, source: `${partyIds[k]} test` });
    const idc = tr.columns.indexOf(id);
    return {
      train: { ids: tr.rows.map((r) => r[idc]!), x: encTr.x, d: encTr.d, y: encTr.y },
      test: { ids: te.rows.map((r) => r[idc]!), x: encTe.x, d: encTe.d, y: encTe.y },
    };
  });
  say(`parties: ${partyIds.map((p, k) => `${p} ${groups[k]!.length} columns → ${sets[k]!.train.d} encoded, ${sets[k]!.train.ids.length} training customers`).join('; ')}; test ${test.length}`);

  const model = o.model;
  const epochs = o.epochs ?? (model === 'lr' ? 8 : 10);
  if (o.labelDp !== undefined && model !== 'lr') throw new FedmartError('CONFIG_ERROR', `--label-dp noises vertical LR residuals; it does not apply to --model ${model} (use --noise for split NN embeddings)`);
  const trainModel = async (lh: LabelHolder, labelDp?: { epsilon: number; delta: number }) =>
    model === 'lr'
      ? lh.trainLr({ epochs, seed: o.seed, ...(o.batchSize ? { batchSize: o.batchSize } : {}), ...(o.learningRate ? { learningRate: o.learningRate } : {}), ...(labelDp ? { labelDp } : {}), onEpoch: (e, l) => say(`  epoch ${e}: loss ${l.toFixed(4)}`) })
      : lh.trainSplitNn({ epochs, seed: o.seed, ...(o.batchSize ? { batchSize: o.batchSize } : {}), ...(o.learningRate ? { learningRate: o.learningRate } : {}), noiseStd: o.noiseStd ?? 0, onEpoch: (e, l) => say(`  epoch ${e}: loss ${l.toFixed(4)}`) });

  // Vertical: PSI on training and test customers, then joint training.
  const relay = o.relay ?? 'coordinator';
  const net = relay === 'memory' ? memoryNetwork(partyIds, `sim-${o.seed}`) : await coordinatorNetwork(partyIds, o.relayHooks ?? {}, say);
  const lh = new LabelHolder(net.channels[0]!, { featureHolders: partyIds.slice(1), sets: { train: sets[0]!.train, test: sets[0]!.test }, session: net.session });
  const fhs = partyIds.slice(1).map((p, k) => new FeatureHolder(net.channels[k + 1]!, { labelHolder: partyIds[0]!, sets: { train: sets[k + 1]!.train as PartyRows, test: sets[k + 1]!.test as PartyRows }, session: net.session }));
  let psiTrain: { size: number; seconds: number };
  let vertical: VerticalExperimentResult['vertical'];
  try {
    [psiTrain] = await Promise.all([lh.align('train'), ...fhs.map((f) => f.align('train'))]);
    say(`psi: ${psiTrain.size} shared training customers in ${psiTrain.seconds.toFixed(2)} s`);
    await Promise.all([lh.align('test'), ...fhs.map((f) => f.align('test'))]);
    say(`vertical ${model}: ${epochs} epochs`);
    const serving = fhs.map((f) => f.serve());
    try {
      const rep = await trainModel(lh, o.labelDp);
      const pred = await lh.predict('test');
      await lh.finish();
      o.relayHooks?.onPredictions?.(pred.p, pred.y);
      vertical = {
        auc: rocAuc(pred.p, pred.y), seconds: rep.seconds, steps: rep.steps,
        ...(rep.minBatch !== undefined ? { minBatch: rep.minBatch } : {}),
        ...(rep.labelDp !== undefined ? { labelDp: { epsilon: Math.round(rep.labelDp.epsilon * 1e4) / 1e4, delta: rep.labelDp.delta, sigma: Math.round(rep.labelDp.sigma * 1e4) / 1e4 } } : {}),
      };
    } catch (err) {
      await lh.abort(err);
      net.close(err as Error);
      await Promise.allSettled(serving);
      throw err;
    }
    await Promise.all(serving);
  } finally {
    await net.dispose();
  }
  say(`vertical (${relay} relay): test auc ${vertical.auc.toFixed(4)} (${vertical.steps} steps, ${vertical.seconds.toFixed(1)} s${vertical.minBatch !== undefined ? `, minimum batch ${vertical.minBatch}` : ''}${vertical.labelDp ? `, label DP ε=${vertical.labelDp.epsilon} δ=${vertical.labelDp.delta} σ=${vertical.labelDp.sigma}` : ''})`);
  if (o.relayHooks?.skipBaselines) {
    return {
      psi: { intersection: psiTrain.size, seconds: Math.round(psiTrain.seconds * 100) / 100 },
      vertical: { ...vertical, auc: round4(vertical.auc), seconds: Math.round(vertical.seconds * 10) / 10 },
      labelHolderOnly: { auc: Number.NaN }, centralized: { auc: Number.NaN }, model, relay,
      parties: partyIds.map((p, k) => ({ id: p, columns: groups[k]!, trainRows: sets[k]!.train.ids.length, encodedColumns: sets[k]!.train.d })),
      testRows: test.length,
    };
  }

  // Label holder alone: its own customers (shared + own), its own columns, same model family.
  const alone = new LabelHolder(null, { featureHolders: [], sets: { train: sets[0]!.train, test: sets[0]!.test } });
  await alone.align('train');
  await alone.align('test');
  await trainModel(alone);
  const pa = await alone.predict('test');
  await alone.finish();
  const aloneAuc = rocAuc(pa.p, pa.y);
  say(`label holder alone: test auc ${aloneAuc.toFixed(4)}`);

  // Centralized: every training customer with every party's columns, pooled.
  const allCols = groups.flat();
  const cTrain = project(selectRows(table, train), [id, ...allCols, o.label]);
  const cTest = project(testTable, [id, ...allCols, o.label]);
  const cs = partySchema(cTrain, o.label, positive, id, 'centralized');
  const ce = encodeTable(cTrain, cs);
  const cte = encodeTable(cTest, cs);
  const idc = cTrain.columns.indexOf(id);
  const central = new LabelHolder(null, {
    featureHolders: [],
    sets: { train: { ids: cTrain.rows.map((r) => r[idc]!), x: ce.x, d: ce.d, y: ce.y } as LabelledRows, test: { ids: cTest.rows.map((r) => r[idc]!), x: cte.x, d: cte.d, y: cte.y } },
  });
  await central.align('train');
  await central.align('test');
  await trainModel(central);
  const pc = await central.predict('test');
  await central.finish();
  const centralAuc = rocAuc(pc.p, pc.y);
  say(`centralized: test auc ${centralAuc.toFixed(4)}`);

  return {
    psi: { intersection: psiTrain.size, seconds: Math.round(psiTrain.seconds * 100) / 100 },
    vertical: { ...vertical, auc: round4(vertical.auc), seconds: Math.round(vertical.seconds * 10) / 10 },
    labelHolderOnly: { auc: round4(aloneAuc) },
    centralized: { auc: round4(centralAuc) },
    model,
    relay,
    parties: partyIds.map((p, k) => ({ id: p, columns: groups[k]!, trainRows: sets[k]!.train.ids.length, encodedColumns: sets[k]!.train.d })),
    testRows: test.length,
  };
}

/** The parties' channels and how to tear them down. */
interface VerticalNetwork {
  readonly channels: VerticalChannel[];
  readonly session: string;
  close(reason: Error): void;
  dispose(): Promise<void>;
}

function memoryNetwork(partyIds: readonly string[], session: string): VerticalNetwork {
  const hub = createInMemoryVerticalHub({ session });
  return { channels: partyIds.map((p) => hub.channel(p)), session, close: (r) => hub.close(r), dispose: async () => undefined };
}

/**
 * A vertical job on a real coordinator: create the job (a federation with
 * `mode: 'vertical'`; its model spec is nominal: the relay ignores it),
 * enroll every party through the REST API, connect each party's relay
 * channel with its own token and wait until all have exchanged keys.
 */
async function coordinatorNetwork(partyIds: readonly string[], hooks: VerticalRelayHooks, say: (m: string) => void): Promise<VerticalNetwork> {
  let own: Coordinator | undefined;
  let target = hooks.coordinator;
  if (target === undefined) {
    own = await startCoordinator({ port: 0, dataDir: null });
    target = { url: own.url, operatorToken: own.operatorToken };
  }
  const channels: SocketVerticalChannel[] = [];
  try {
    const api = new ApiClient(target.url, target.operatorToken);
    const config = { mode: 'vertical', model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 } };
    const { federation } = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: `vertical ${partyIds.join(' + ')}`, config });
    hooks.onJob?.(federation.id);
    for (const party of partyIds) {
      const { token } = await api.post<{ token: string }>(`/api/v1/federations/${federation.id}/enrollments`, { partner: party });
      const keyPair = hooks.keyPairs?.[party];
      channels.push(await connectVerticalChannel({ url: target.url, token, ...(keyPair ? { keyPair } : {}) }));
    }
    for (const [k, ch] of channels.entries()) {
      if (ch.self !== partyIds[k]) throw new FedmartError('INTERNAL', `vertical relay authenticated party ${partyIds[k]} as ${ch.self}`);
      await ch.waitForPeers(partyIds.filter((p) => p !== ch.self));
    }
    say(`relay: job ${federation.id} on ${target.url}, ${partyIds.length} parties connected, keys exchanged`);
    return {
      channels, session: federation.id,
      close: () => channels.forEach((c) => c.close()),
      dispose: async () => {
        channels.forEach((c) => c.close());
        await own?.close();
      },
    };
  } catch (err) {
    channels.forEach((c) => c.close());
    await own?.close();
    throw err;
  }
}

/**
 * CLI entry for `fedmart simulate --mode vertical …` (simulate.ts delegates here).
 * @param argv - the simulate arguments
 * @returns exit code
 */
export async function simulateVerticalCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('simulate --mode vertical', argv, {
    mode: { type: 'string' }, csv: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, sep: { type: 'string' }, id: { type: 'string' },
    parties: { type: 'string' }, drop: { type: 'string' }, model: { type: 'string' }, overlap: { type: 'string' }, epochs: { type: 'string' },
    'batch-size': { type: 'string' }, 'learning-rate': { type: 'string' }, noise: { type: 'string' }, 'label-dp': { type: 'string' }, delta: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, relay: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(VERTICAL_USAGE + '\n');
    return 0;
  }
  const started = Date.now();
  const cmd = 'simulate --mode vertical';
  const csv = requireString(cmd, values, 'csv', 'the CSV file');
  const label = requireString(cmd, values, 'label', 'the binary label column');
  const partiesSpec = requireString(cmd, values, 'parties', 'column groups, label holder first, e.g. "age,balance|job,education"');
  const model = (values.model as string | undefined) ?? 'lr';
  if (model !== 'lr' && model !== 'splitnn') throw new FedmartError('CONFIG_ERROR', `${cmd}: --model must be lr or splitnn, got "${model}"`);
  const relay = (values.relay as string | undefined) ?? 'coordinator';
  if (relay !== 'coordinator' && relay !== 'memory') throw new FedmartError('CONFIG_ERROR', `${cmd}: --relay must be coordinator or memory, got "${relay}"`);
  const overlap = numberFlag(cmd, values, 'overlap', 0.8, 0.01, 1);
  const seed = intFlag(cmd, values, 'seed', 42, 0, 2 ** 31 - 1);
  const epochs = values.epochs === undefined ? undefined : intFlag(cmd, values, 'epochs', 1, 1, 10_000);
  const batchSize = values['batch-size'] === undefined ? undefined : intFlag(cmd, values, 'batch-size', 1, 1, 1_000_000);
  const learningRate = values['learning-rate'] === undefined ? undefined : numberFlag(cmd, values, 'learning-rate', 0.01, 1e-6, 10);
  const noiseStd = numberFlag(cmd, values, 'noise', 0, 0, 100);
  const labelDp = values['label-dp'] === undefined ? undefined : { epsilon: numberFlag(cmd, values, 'label-dp', 1, 1e-3, 1000), delta: numberFlag(cmd, values, 'delta', 1e-5, 1e-12, 0.1) };
  if (labelDp === undefined && values.delta !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --delta is the δ of --label-dp; pass --label-dp EPS too`);
  const sep = values.sep as string | undefined;
  if (sep !== undefined && sep.length !== 1 && sep !== '\\t') throw new FedmartError('CONFIG_ERROR', `${cmd}: --sep must be one character, got "${sep}"`);
  const drop = typeof values.drop === 'string' ? values.drop.split(',').map((x) => x.trim()).filter(Boolean) : [];

  if (model === 'splitnn') {
    const backend = await initBackend();
    progress(`backend: ${backend.name} (${backend.detail})`);
  }
  const table = await readTableFile(csv, { flag: '--csv', ...(sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep }) });
  progress(`read ${table.rows.length} rows × ${table.columns.length} columns from ${csv}`);
  const missingDrop = drop.filter((c) => !table.columns.includes(c));
  if (missingDrop.length) throw new FedmartError('CONFIG_ERROR', `${cmd}: --drop names ${missingDrop.join(', ')}, not in the data; columns are: ${table.columns.join(', ')}`);
  const id = values.id as string | undefined;
  const parties = parsePartyGroups(partiesSpec, table.columns, [label, ...(id ? [id] : []), ...drop]);
  const r = await runVerticalExperiment({
    table, label, ...(values.positive !== undefined ? { positive: values.positive as string } : {}), ...(id !== undefined ? { id } : {}),
    parties, drop, model, overlap, seed, noiseStd, relay, ...(labelDp !== undefined ? { labelDp } : {}),
    ...(epochs !== undefined ? { epochs } : {}), ...(batchSize !== undefined ? { batchSize } : {}), ...(learningRate !== undefined ? { learningRate } : {}),
    onProgress: progress,
  });
  const out = { ...r, seconds: Math.round((Date.now() - started) / 100) / 10 };
  if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
  else {
    process.stdout.write(
      `\npsi: ${r.psi.intersection} shared customers in ${r.psi.seconds} s\n                    AUC\nvertical (${model.padEnd(7)})  ${r.vertical.auc.toFixed(4)}   (${r.vertical.steps} steps, ${r.vertical.seconds} s)\n${r.vertical.labelDp ? `  label DP ε=${r.vertical.labelDp.epsilon} δ=${r.vertical.labelDp.delta} (residual noise σ=${r.vertical.labelDp.sigma}); baselines train without noise\n` : ''}label holder alone  ${r.labelHolderOnly.auc.toFixed(4)}\ncentralized         ${r.centralized.auc.toFixed(4)}\n${out.seconds} s\n`,
    );
  }
  return 0;
}
