/**
 * The experiment harness behind `fedmart simulate` and `fedmart demo`:
 * prepare a real CSV into non-IID partners, run a real federation (real
 * coordinator on a real port, real Socket.IO clients), and train the
 * local-only and centralized baselines with the same model and epoch budget.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { inferSchema, encodeTable, stratifiedSplit, partitionByColumn, selectRows, computeNumericStats, mergeNumericStats, applyNumericStats, featureDim, type Table, type DatasetSchema, type EncodedData } from '@fedmart/shared/data/index';
import type { ModelSpec } from '@fedmart/shared/model';
import { rocAuc, logLoss } from '@fedmart/shared/metrics';
import type { LocalTrainConfig, StrategyId } from '@fedmart/shared/strategy/types';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { predict } from '@fedmart/client-node/ml/trainer';
import { DEFAULT_LOCAL_TRAIN, DEFAULT_MODEL_HIDDEN } from '@fedmart/client-node/ml/defaults';
import type { LocalData } from '@fedmart/client-node/agent';

/** One partner's share of the data. */
export interface PartnerSplit {
  id: string;
  /** Values of the partition column this partner holds. */
  values: string[];
  table: Table;
  data: LocalData;
  positiveRate: number;
}

export interface PreparedExperiment {
  schema: DatasetSchema;
  test: EncodedData;
  partners: PartnerSplit[];
  /** Union of the partners' training rows (for the centralized baseline). */
  central: { x: Float32Array; y: Float32Array; n: number };
  /**
   * Union of the partners' validation rows: the centralized arm and the
   * reference validate on it. The federated arm sees exactly these rows too,
   * but only as the coordinator's example-weighted mean of the partners'
   * own validation losses (which equals the pooled mean log loss).
   */
  centralVal: { x: Float32Array; y: Float32Array; n: number };
  /**
   * The partners' combined training label rate Σ positives / Σ rows, from
   * per-partner (rows, positives) counts — the only label statistic that is
   * combined; the federation's round-0 output bias starts at its log-odds.
   */
  baseRate: number;
  d: number;
}

export interface PrepareOptions {
  table: Table;
  label: string;
  positive?: string;
  partitionBy: string;
  partners: number;
  seed: number;
  drop?: string[];
  /** Fraction held out as the global test set (stratified). Default 0.2. */
  testFraction?: number;
  /** Fraction of each partner's rows kept for its local validation. Default {@link DEFAULT_VAL_FRACTION}. */
  valFraction?: number;
  source?: string;
}

/**
 * Prepare a federated experiment from a table.
 *
 * Standardisation statistics are computed federatedly: each partner computes
 * (count, Σx, Σx²) per numeric column over its own rows and only those sums
 * are merged (the same numbers a coordinator would sum); no row is pooled.
 * The global test set never contributes.
 */
export function prepareExperiment(o: PrepareOptions): PreparedExperiment {
  const { table } = o;
  if (!table.columns.includes(o.partitionBy)) {
    throw new FedmartError('DATA_ERROR', `--partition-by column "${o.partitionBy}" not found in ${o.source ?? 'the data'}; columns are: ${table.columns.join(', ')}`);
  }
  // High-cardinality text columns keep their most frequent values rather than
  // aborting a simulation; the caller can still --drop them.
  const schema0 = inferSchema(table, { label: o.label, ...(o.positive !== undefined ? { positive: o.positive } : {}), drop: o.drop ?? [], source: o.source ?? 'data', highCardinality: 'top' });
  // Labels first (unstandardised encoding is fine for y), then the held-out test split.
  const yAll = encodeTable(table, schema0).y;
  const { train, test } = stratifiedSplit(yAll, o.testFraction ?? 0.2, o.seed);
  const trainTable = selectRows(table, train);
  const testTable = selectRows(table, test);
  const pcol = trainTable.columns.indexOf(o.partitionBy);
  const part = partitionByColumn(trainTable.rows.map((r) => r[pcol] ?? ''), o.partners, o.seed, { column: o.partitionBy });
  const partnerTables: Table[] = [];
  for (let p = 0; p < o.partners; p++) {
    const idx: number[] = [];
    for (let i = 0; i < part.assignment.length; i++) if (part.assignment[i] === p) idx.push(i);
    partnerTables.push(selectRows(trainTable, idx));
  }
  const schema = applyNumericStats(schema0, mergeNumericStats(partnerTables.map((t) => computeNumericStats(t, schema0))));
  const d = featureDim(schema);
  const testEnc = encodeTable(testTable, schema, { source: 'test split' });
  const partners: PartnerSplit[] = partnerTables.map((t, p) => {
    const enc = encodeTable(t, schema, { source: `partner ${p + 1}` });
    const data = splitLocal(enc, o.valFraction ?? DEFAULT_VAL_FRACTION, o.seed + p + 1);
    let pos = 0;
    for (let i = 0; i < enc.n; i++) pos += enc.y[i]!;
    return { id: `partner-${p + 1}`, values: part.groups[p]!, table: t, data, positiveRate: enc.n ? pos / enc.n : 0 };
  });
  const central = concatRows(partners.map((p) => ({ x: p.data.trainX, y: p.data.trainY, n: p.data.trainN })), d);
  const centralVal = concatRows(partners.map((p) => ({ x: p.data.valX, y: p.data.valY, n: p.data.valN })), d);
  let rows = 0;
  let positives = 0;
  for (const p of partners) {
    rows += p.data.trainN;
    for (let i = 0; i < p.data.trainN; i++) positives += p.data.trainY[i]!;
  }
  return { schema, test: testEnc, partners, central, centralVal, baseRate: rows ? positives / rows : 0, d };
}

/** Stack labelled row blocks (row-major, width d) into one. */
export function concatRows(parts: readonly { x: Float32Array; y: Float32Array; n: number }[], d: number): { x: Float32Array; y: Float32Array; n: number } {
  let n = 0;
  for (const p of parts) n += p.n;
  const x = new Float32Array(n * d);
  const y = new Float32Array(n);
  let off = 0;
  for (const p of parts) {
    x.set(p.x.subarray(0, p.n * d), off * d);
    y.set(p.y.subarray(0, p.n), off);
    off += p.n;
  }
  return { x, y, n };
}

/**
 * Stratified local train/validation split of one partner's encoded rows.
 *
 * The validation rows are the partner's own: every choice the harness makes
 * (learning rate, width, ridge, early-stopping round) is made on them, and
 * the held-out test split is only ever used for reporting. A partner with
 * fewer than {@link MIN_ROWS_FOR_VALIDATION} rows keeps them all for
 * training and validates on them (flagged by `valN === trainN` and the same
 * arrays); that is the only case where validation and training overlap.
 */
export function splitLocal(enc: EncodedData, valFraction: number, seed: number): LocalData {
  if (enc.n < MIN_ROWS_FOR_VALIDATION) {
    return { trainX: enc.x, trainY: enc.y, trainN: enc.n, valX: enc.x, valY: enc.y, valN: enc.n, d: enc.d };
  }
  const { train, test } = stratifiedSplit(enc.y, valFraction, seed);
  const tr = takeRows(enc, train);
  const va = takeRows(enc, test);
  return { trainX: tr.x, trainY: tr.y, trainN: train.length, valX: va.x, valY: va.y, valN: test.length, d: enc.d };
}

/** Partners smaller than this train on all their rows and validate on them too. */
export const MIN_ROWS_FOR_VALIDATION = 20;

/** Default fraction of each partner's rows kept for its own validation. */
export const DEFAULT_VAL_FRACTION = 0.15;

function takeRows(enc: { x: Float32Array; y: Float32Array; d: number }, idx: Int32Array): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(idx.length * enc.d);
  const y = new Float32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    x.set(enc.x.subarray(i * enc.d, (i + 1) * enc.d), k * enc.d);
    y[k] = enc.y[i]!;
  }
  return { x, y };
}

/**
 * Local training settings for an experiment: the defaults, with the batch
 * shrunk for small partners so each still takes ≥ ~20 optimizer steps per
 * epoch. Every arm (federated, local-only, centralized) trains with this
 * batch size, so no arm gets a larger effective step than another.
 */
export function experimentLocalTrain(exp: PreparedExperiment, localEpochs = 1): LocalTrainConfig {
  const smallest = Math.min(...exp.partners.map((p) => p.data.trainN));
  const batchSize = Math.max(16, Math.min(DEFAULT_LOCAL_TRAIN.batchSize, Math.floor(smallest / 20)));
  return { ...DEFAULT_LOCAL_TRAIN, batchSize, localEpochs };
}

/** The model every arm of the comparison uses when no grid is searched. */
export function defaultModelSpec(d: number): ModelSpec {
  return { kind: 'mlp', inputDim: d, hidden: [...DEFAULT_MODEL_HIDDEN] };
}

/** Federation config for an experiment. */
export function experimentFederationConfig(args: { spec: ModelSpec; strategy: StrategyId; localEpochs: number; minClients: number; seed: number; schema?: DatasetSchema; localTrain?: Partial<LocalTrainConfig> }): FederationConfigInput {
  return {
    model: args.spec,
    strategy: args.strategy,
    localTrain: { ...DEFAULT_LOCAL_TRAIN, localEpochs: args.localEpochs, ...args.localTrain },
    minClients: args.minClients,
    sampleFraction: 1,
    seed: args.seed,
    timeouts: { selectingMs: 120_000, trainingMs: 600_000, evaluatingMs: 120_000 },
    ...(args.schema ? { dataSchema: args.schema } : {}),
  };
}

/** AUC and log loss of a model on a labelled set. */
export async function scoreModel(spec: ModelSpec, weights: Float32Array, set: { x: Float32Array; y: Float32Array; n: number }): Promise<{ auc: number; logloss: number }> {
  const p = await predict(spec, weights, set.x, set.n);
  return { auc: rocAuc(p, set.y), logloss: logLoss(p, set.y) };
}

/** Round a metric for printing/JSON. */
export const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
