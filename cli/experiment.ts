/**
 * The experiment harness behind `fedmart simulate` and `fedmart demo`:
 * prepare a real CSV into non-IID partners, run a real federation (real
 * coordinator on a real port, real Socket.IO clients), and train the
 * local-only and centralized baselines with the same model and epoch budget.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { inferSchema, encodeTable, stratifiedSplit, partitionByColumn, selectRows, computeNumericStats, mergeNumericStats, applyNumericStats, featureDim, type Table, type DatasetSchema, type EncodedData } from '@fedmart/shared/data/index';
import { initWeights, type ModelSpec } from '@fedmart/shared/model';
import { rocAuc, logLoss } from '@fedmart/shared/metrics';
import type { LocalTrainConfig, StrategyId } from '@fedmart/shared/strategy/types';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { trainLocal, predict } from '@fedmart/client-node/ml/trainer';
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
  /** Fraction of each partner's rows kept for its local validation. Default 0.1. */
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
    const data = splitLocal(enc, o.valFraction ?? 0.1, o.seed + p + 1);
    let pos = 0;
    for (let i = 0; i < enc.n; i++) pos += enc.y[i]!;
    return { id: `partner-${p + 1}`, values: part.groups[p]!, table: t, data, positiveRate: enc.n ? pos / enc.n : 0 };
  });
  let n = 0;
  for (const p of partners) n += p.data.trainN;
  const cx = new Float32Array(n * d);
  const cy = new Float32Array(n);
  let off = 0;
  for (const p of partners) {
    cx.set(p.data.trainX, off * d);
    cy.set(p.data.trainY, off);
    off += p.data.trainN;
  }
  return { schema, test: testEnc, partners, central: { x: cx, y: cy, n }, d };
}

/** Stratified local train/validation split of one partner's encoded rows. */
export function splitLocal(enc: EncodedData, valFraction: number, seed: number): LocalData {
  let pos = 0;
  for (let i = 0; i < enc.n; i++) pos += enc.y[i]!;
  // Tiny partners or single-class partners: keep everything for training.
  if (enc.n < 20 || pos < 2 || enc.n - pos < 2) {
    return { trainX: enc.x, trainY: enc.y, trainN: enc.n, valX: enc.x, valY: enc.y, valN: enc.n, d: enc.d };
  }
  const { train, test } = stratifiedSplit(enc.y, valFraction, seed);
  const take = (idx: Int32Array) => {
    const x = new Float32Array(idx.length * enc.d);
    const y = new Float32Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k]!;
      x.set(enc.x.subarray(i * enc.d, (i + 1) * enc.d), k * enc.d);
      y[k] = enc.y[i]!;
    }
    return { x, y };
  };
  const tr = take(train);
  const va = take(test);
  return { trainX: tr.x, trainY: tr.y, trainN: train.length, valX: va.x, valY: va.y, valN: test.length, d: enc.d };
}

/**
 * Local training settings for an experiment: the defaults, with the batch
 * shrunk for small partners so each still takes ≥ ~20 optimizer steps per
 * epoch (the same settings are used by every arm of the comparison).
 */
export function experimentLocalTrain(exp: PreparedExperiment, localEpochs = 1): LocalTrainConfig {
  const smallest = Math.min(...exp.partners.map((p) => p.data.trainN));
  const batchSize = Math.max(16, Math.min(DEFAULT_LOCAL_TRAIN.batchSize, Math.floor(smallest / 20)));
  return { ...DEFAULT_LOCAL_TRAIN, batchSize, localEpochs };
}

/**
 * Centralized training settings matched to the federation: one FedAvg round
 * averages the partners' mini-batch steps, which moves the model like one
 * step on a batch as large as all partners' batches together. Training the
 * pooled data with that batch size gives the same number of optimizer steps
 * per epoch as a partner takes, so the baseline is neither starved nor
 * over-trained relative to the federation.
 */
export function centralTrain(local: LocalTrainConfig, exp: PreparedExperiment): LocalTrainConfig {
  const smallest = Math.min(...exp.partners.map((p) => p.data.trainN));
  const stepsPerEpoch = Math.max(1, Math.ceil(smallest / local.batchSize));
  return { ...local, batchSize: Math.max(local.batchSize, Math.ceil(exp.central.n / stepsPerEpoch)) };
}

/** The model every arm of the comparison uses. */
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

/**
 * Train a model from the common initial weights for `epochs` epochs (the same
 * budget as rounds × local epochs of the federation) and score it on `test`.
 */
export async function trainBaseline(spec: ModelSpec, seed: number, set: { x: Float32Array; y: Float32Array; n: number }, epochs: number, test: EncodedData, local: LocalTrainConfig = DEFAULT_LOCAL_TRAIN): Promise<{ auc: number; logloss: number }> {
  const init = initWeights(spec, seed);
  const r = await trainLocal({ spec, weights: init, x: set.x, y: set.y, n: set.n, config: { ...local, localEpochs: epochs }, seed });
  return scoreModel(spec, r.weights, test);
}

/** Round a metric for printing/JSON. */
export const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
