/**
 * A recommendation federation between real parties: what the operator puts
 * in the federation's config (task id, the joint tensor layout, and a
 * taskSpec carrying the model settings, the PUBLIC item catalogue and the
 * interaction columns), and how a brand's node turns its own interaction
 * file into the recommendation PartnerTask over that catalogue.
 *
 * The catalogue (marketplace item ids and their public features, in index
 * order) travels in the taskSpec so every brand maps items to the same rows
 * of the joint item-embedding table; user ids never leave a brand.
 */
import { z } from 'zod';
import { FedmartError } from '@fedmart/shared/errors';
import { columnIndex, type Table } from '@fedmart/shared/data/table';
import type { TensorLayoutSpec } from '@fedmart/shared/task/layout';
import { CatalogueBuilder, leaveLastOut, readInteractions, sampleEvalNegatives, type InteractionColumns, type InteractionData } from './data.ts';
import { flattenFeatures, recLayout, type RecModelSpec } from './model.ts';
import { LocalRecommender, type RecTrainSpec } from './local.ts';
import { recommendationTask, RECOMMENDATION_TASK, type RecommendationTask } from './task.ts';
import type { Catalogue } from './recommend.ts';
import type { GramDpSpec } from './dp-gram.ts';
import { gramDpTask } from './gram-task.ts';
import type { PartnerTask } from '@fedmart/shared/task/types';
import { REC_DEFAULTS } from './scenario.ts';

/** Columns of the brands' interaction files (agreed in the federation). */
export interface RecColumns {
  user: string;
  item: string;
  time?: string | undefined;
  rating?: string | undefined;
  minRating?: number | undefined;
}

/** The taskSpec of a recommendation federation between real parties. */
export interface RecFederationSpec extends RecTrainSpec {
  catalogue: Catalogue;
  columns: RecColumns;
  /** Under --dp record: the item-Gram release's settings (dp-gram.ts); brands run it instead of Wide & Deep training. */
  gram?: GramDpSpec | undefined;
  /** The release's noise multiplier σ (the federation's dp plan), for the serving post-processing (noise edge). */
  sigma?: number | undefined;
}

const RecFederationSpecSchema = z.object({
  model: z.object({ items: z.number().int().min(2), features: z.number().int().min(0), dim: z.number().int().min(1).max(1024), hidden: z.number().int().min(0).max(1024) }),
  negatives: z.number().int().min(1).max(16),
  l2: z.number().min(0),
  catalogue: z.object({ items: z.array(z.string()).min(2), featureNames: z.array(z.string()), itemFeatures: z.array(z.array(z.number().int().min(0))) }),
  columns: z.object({ user: z.string().min(1), item: z.string().min(1), time: z.string().min(1).optional(), rating: z.string().min(1).optional(), minRating: z.number().optional() }),
  gram: z.object({
    items: z.number().int().min(2), top: z.number().int().min(2), budget: z.tuple([z.number().positive(), z.number().positive()]), partners: z.number().int().min(1),
    scale: z.number().positive(), rank: z.number().int().min(1), noiseShares: z.number().int().min(1).optional(),
  }).optional(),
  sigma: z.number().positive().optional(),
});

/**
 * Check a federation's taskSpec.
 * @throws FedmartError CONFIG_ERROR naming what is missing or inconsistent
 */
export function parseRecFederationSpec(raw: unknown, federation: string): RecFederationSpec {
  const r = RecFederationSpecSchema.safeParse(raw);
  if (!r.success) throw new FedmartError('CONFIG_ERROR', `federation ${federation} runs the recommendation task but its taskSpec is not a recommendation spec with a catalogue (${r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); the operator creates it with "fedmart scenario recommendation create"`);
  const s = r.data;
  const { items, featureNames, itemFeatures } = s.catalogue;
  if (s.model.items !== items.length || itemFeatures.length !== items.length) throw new FedmartError('CONFIG_ERROR', `federation ${federation}: the model has ${s.model.items} items but the catalogue lists ${items.length} (with ${itemFeatures.length} feature lists); the operator must recreate the federation`);
  if ((s.gram === undefined) !== (s.sigma === undefined)) throw new FedmartError('CONFIG_ERROR', `federation ${federation}: its taskSpec has ${s.gram ? 'gram settings without sigma' : 'sigma without gram settings'}; the operator must recreate it with "fedmart scenario recommendation create --dp record"`);
  if (s.gram && s.gram.items !== items.length) throw new FedmartError('CONFIG_ERROR', `federation ${federation}: the item-Gram release covers ${s.gram.items} items but the catalogue lists ${items.length}; the operator must recreate the federation`);
  if (s.model.features !== featureNames.length || itemFeatures.some((f) => f.some((g) => g >= featureNames.length))) throw new FedmartError('CONFIG_ERROR', `federation ${federation}: the catalogue's item features do not match the model's ${s.model.features} feature values; the operator must recreate the federation`);
  return s;
}

/**
 * The public catalogue from a table of items (or interactions): distinct
 * item ids in order of first appearance, with their categorical features.
 * @param table - rows with an item column and optional feature columns (`a|b` = several values)
 */
export function catalogueOf(table: Table, item: string, featureColumns: readonly string[]): Catalogue {
  const ii = columnIndex(table, item, '--item');
  const builder = new CatalogueBuilder(ii, featureColumns.map((c) => columnIndex(table, c, '--item-features')));
  for (const [r, row] of table.rows.entries()) {
    if (row[ii] === '') throw new FedmartError('DATA_ERROR', `row ${r + 2}: empty item (${item}) cell in the catalogue file`);
    builder.add(row);
  }
  const c = builder.result();
  if (c.items.length < 2) throw new FedmartError('DATA_ERROR', `the catalogue file has ${c.items.length} distinct item(s) in column ${item}; a recommender needs at least 2`);
  return { items: c.items, featureNames: c.featureNames, itemFeatures: c.itemFeatures.map((f) => Array.from(f)) };
}

/**
 * The federation config of a recommendation federation (POST /api/v1/federations `config`).
 * @param o - the catalogue, the brands' column names, the model size and the round's SGD settings
 */
export function recommendationFederationConfig(o: { catalogue: Catalogue; columns: RecColumns; dim?: number; hidden?: number; learningRate?: number; minClients: number; seed?: number }): { task: string; model: TensorLayoutSpec; taskSpec: RecFederationSpec; strategy: 'fedavg'; localTrain: { localEpochs: number; batchSize: number; learningRate: number; proximalMu: number }; minClients: number; sampleFraction: number; seed: number } {
  const features = o.catalogue.featureNames.length;
  const model: RecModelSpec = { items: o.catalogue.items.length, features, dim: o.dim ?? REC_DEFAULTS.dim, hidden: o.hidden ?? REC_DEFAULTS.hidden };
  const taskSpec: RecFederationSpec = { model, negatives: REC_DEFAULTS.negatives, l2: REC_DEFAULTS.l2, catalogue: o.catalogue, columns: o.columns };
  return {
    task: RECOMMENDATION_TASK, model: recLayout(model), taskSpec, strategy: 'fedavg',
    localTrain: { localEpochs: 1, batchSize: 1, learningRate: o.learningRate ?? REC_DEFAULTS.learningRate, proximalMu: 0 },
    minClients: o.minClients, sampleFraction: 1, seed: o.seed ?? 1,
  };
}

/** A brand's own interactions over the federation's catalogue. */
export interface BrandData {
  /** The brand's users with ≥ 3 catalogue items (trained on), by id. */
  users: string[];
  /** Every user's catalogue items in the file (served from; users with any history), by user id. */
  histories: Map<string, string[]>;
  /** Rows whose item is not in the catalogue (ignored). */
  unknownItems: number;
  /** Wide & Deep training, or (taskSpec `gram`) the two DP releases of the item-Gram mechanism over every history. */
  task: RecommendationTask | (PartnerTask & { numExamples: number });
  /** Interactions the task trains on (Wide & Deep: the training split; item-Gram: every history item). */
  interactions: number;
}

/**
 * A brand's PartnerTask from its own file: items mapped onto the
 * federation's catalogue (rows with other items are ignored and counted),
 * leave-last-out splits for the validation metrics it reports.
 * @throws FedmartError DATA_ERROR when the file lacks the agreed columns or has too few usable users
 */
export function brandTask(table: Table, spec: RecFederationSpec, seed: number, source: string): BrandData {
  const cols = spec.columns;
  const ii = columnIndex(table, cols.item, `the federation's item column (${source})`);
  const ui = columnIndex(table, cols.user, `the federation's user column (${source})`);
  const index = new Map(spec.catalogue.items.map((id, i) => [id, i]));
  const kept = table.rows.filter((r) => index.has(r[ii]!));
  const unknownItems = table.rows.length - kept.length;
  const histories = new Map<string, string[]>();
  for (const r of kept) {
    const h = histories.get(r[ui]!);
    if (h) h.push(r[ii]!);
    else histories.set(r[ui]!, [r[ii]!]);
  }
  const icols: InteractionColumns = { user: cols.user, item: cols.item, time: cols.time, rating: cols.rating, minRating: cols.minRating };
  let local: InteractionData;
  try {
    local = readInteractions({ columns: table.columns, rows: kept }, icols, seed);
  } catch (e) {
    if (e instanceof FedmartError && e.code === 'DATA_ERROR') throw new FedmartError('DATA_ERROR', `${source}: ${e.message} (${kept.length} rows with catalogue items, ${unknownItems} with items outside the federation's catalogue)`);
    throw e;
  }
  // Local item indices → the catalogue's.
  const toCat = Int32Array.from(local.items, (id) => index.get(id)!);
  const data: InteractionData = {
    users: local.users, items: spec.catalogue.items, featureNames: spec.catalogue.featureNames,
    itemFeatures: spec.catalogue.itemFeatures.map((f) => Int32Array.from(f)),
    histories: local.histories.map((h) => Int32Array.from(h, (i) => toCat[i]!)), timed: local.timed,
  };
  if (spec.gram) {
    // The item-Gram release uses every interaction (no held-out split: nothing is evaluated, evaluation would be a
    // noiseless statistic of the customers). The public wire scale bounds the brand's interaction count.
    const interactions = data.histories.reduce((a, h) => a + h.length, 0);
    if (interactions > spec.gram.scale) throw new FedmartError('DATA_ERROR', `${source}: this brand has ${interactions} interactions with catalogue items, above the federation's declared bound of ${spec.gram.scale} per brand (--max-interactions); the operator recreates the federation with a larger bound`);
    return { users: data.users, histories, unknownItems, task: gramDpTask(data.histories, spec.catalogue.items.length), interactions };
  }
  const splits = leaveLastOut(data);
  const negatives = sampleEvalNegatives(data, 99, seed * 31 + 7);
  const party = new LocalRecommender(spec.model, flattenFeatures(data.itemFeatures), splits, negatives, seed);
  const task = recommendationTask(party, { model: spec.model, negatives: spec.negatives, l2: spec.l2 });
  return { users: data.users, histories, unknownItems, task, interactions: task.numExamples };
}
