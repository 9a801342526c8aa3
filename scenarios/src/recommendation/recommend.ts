/**
 * The consumer: a brand serves top-k recommendations for its own users from
 * the published joint model, read ONLY through a {@link ModelRegistry}.
 *
 * User parameters are local and never published, so they are recomputed at
 * serving time by fold-in (the user's embedding and feature crosses fitted
 * to their history with the joint parameters frozen, seeded: the same
 * history always gives the same answer). Nothing user-specific needs to be
 * stored beside the partner's data, and a new customer is served as soon as
 * they have a history.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FedmartError } from '@fedmart/shared/errors';
import { columnIndex, type Table } from '@fedmart/shared/data/table';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import type { ModelRegistry, PublishedModel } from '../model-registry.ts';
import type { InteractionData } from './data.ts';
import { flattenFeatures, jointViews, recLayout, Scorer, WideDeep, type RecModelSpec } from './model.ts';
import { REC_DEFAULTS } from './scenario.ts';

/** The public catalogue a model's item indices refer to. */
export interface Catalogue {
  items: string[];
  featureNames: string[];
  itemFeatures: number[][];
}

const ModelFileSchema = z.object({
  format: z.literal('fedmart-recommendation-model/1'),
  federationId: z.string(),
  version: z.number().int().min(0),
  model: z.object({ items: z.number().int().min(2), features: z.number().int().min(0), dim: z.number().int().min(1), hidden: z.number().int().min(0) }),
  weights: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  catalogue: z.object({ items: z.array(z.string()), featureNames: z.array(z.string()), itemFeatures: z.array(z.array(z.number().int().min(0))) }),
  columns: z.object({ user: z.string(), item: z.string(), time: z.string().optional() }),
});
export type RecommendationModelFile = z.infer<typeof ModelFileSchema>;

/** A model file for {@link FileModelRegistry} (what `simulate --save` writes). */
export function modelFileOf(data: InteractionData, spec: RecModelSpec, weights: Float32Array, columns: { user: string; item: string; time?: string | undefined }): RecommendationModelFile {
  const bytes = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
  return {
    format: 'fedmart-recommendation-model/1',
    federationId: 'simulation',
    version: 1,
    model: spec,
    weights: Buffer.from(bytes).toString('base64'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    catalogue: { items: data.items, featureNames: data.featureNames, itemFeatures: data.itemFeatures.map((f) => Array.from(f)) },
    columns: { user: columns.user, item: columns.item, ...(columns.time ? { time: columns.time } : {}) },
  };
}

/** Parse a model file's text. @throws FedmartError DATA_ERROR naming what is wrong */
export function parseModelFile(text: string, source: string): RecommendationModelFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FedmartError('DATA_ERROR', `${source} is not JSON; pass the model.json written by "fedmart scenario recommendation simulate --save DIR"`);
  }
  const r = ModelFileSchema.safeParse(raw);
  if (!r.success) throw new FedmartError('DATA_ERROR', `${source} is not a recommendation model file (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); pass the model.json written by simulate --save`);
  return r.data;
}

/** A registry over one saved model file (the simulation's published model). */
export class FileModelRegistry implements ModelRegistry {
  constructor(private readonly file: RecommendationModelFile) {}
  async load(federationId: string, version: number | 'latest'): Promise<PublishedModel> {
    const f = this.file;
    if (federationId !== f.federationId || (version !== 'latest' && version !== f.version)) throw new FedmartError('NOT_FOUND', `the model file holds ${f.federationId}/${f.version}, not ${federationId}/${version}`);
    const bytes = Buffer.from(f.weights, 'base64');
    if (createHash('sha256').update(bytes).digest('hex') !== f.sha256) throw new FedmartError('UNPROCESSABLE', 'the model file\'s weights do not match their SHA-256; the file was altered — write it again with simulate --save');
    const weights = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { federationId: f.federationId, version: f.version, spec: recLayout(f.model), weights, sha256: f.sha256, metrics: {}, participants: [] };
  }
}

/** One recommended item. */
export interface Recommendation {
  item: string;
  score: number;
  /** Why: the wide (item, feature, user × feature) and deep (embeddings) contributions, and the history items most like it. */
  reason: { wide: number; deep: number; features: string[]; becauseOf: string[] };
}

/** Arguments of {@link recommend}. */
export interface RecommendArgs {
  registry: ModelRegistry;
  federation: string;
  version: number | 'latest';
  /** The public catalogue the model was trained over, and the model's architecture. */
  catalogue: Catalogue;
  model: RecModelSpec;
  /** The partner's interactions and which columns hold users and items. */
  data: Table;
  columns: { user: string; item: string };
  user: string;
  k: number;
}

/** A loaded model ready to serve many users (fold-in per user). */
export class Recommender {
  private readonly scorer: Scorer;
  private readonly wd: WideDeep;
  private readonly index: Map<string, number>;
  constructor(readonly published: PublishedModel, readonly catalogue: Catalogue, readonly spec: RecModelSpec) {
    if (spec.items !== catalogue.items.length) throw new FedmartError('DATA_ERROR', `the catalogue has ${catalogue.items.length} items but the model was trained over ${spec.items}; use the catalogue the federation was created with`);
    if (published.weights.length !== jointParameterCount(recLayout(spec))) throw new FedmartError('DATA_ERROR', `the published model has ${published.weights.length} parameters, not the ${jointParameterCount(recLayout(spec))} of a recommendation model over this catalogue`);
    const feats = flattenFeatures(catalogue.itemFeatures.map((f) => Int32Array.from(f)));
    this.scorer = new Scorer(spec, jointViews(spec, published.weights), feats);
    this.wd = new WideDeep(spec, feats, REC_DEFAULTS.negatives);
    this.index = new Map(catalogue.items.map((id, i) => [id, i]));
  }

  /** Top-k unseen items for a user with this history (item ids); unknown ids are ignored. */
  topK(history: readonly string[], k: number, userKey: string): Recommendation[] {
    const seen = [...new Set(history.map((h) => this.index.get(h)).filter((x): x is number => x !== undefined))];
    if (seen.length === 0) throw new FedmartError('NOT_FOUND', `user ${userKey} has no interactions with catalogue items in the partner data; recommendations need a history`);
    let seed = 0;
    for (const ch of userKey) seed = (Math.imul(seed, 31) + ch.charCodeAt(0)) >>> 0;
    const { p, c } = this.wd.foldIn(this.published.weights, Int32Array.from(seen), { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives, epochs: 20 }, seed);
    const pre = this.scorer.userPre(p);
    const seenSet = new Set(seen);
    const top: { i: number; wide: number; deep: number; s: number }[] = [];
    for (let i = 0; i < this.spec.items; i++) {
      if (seenSet.has(i)) continue;
      const parts = this.scorer.parts(p, c, pre, i);
      const s = parts.wide + parts.deep;
      if (top.length < k || s > top[top.length - 1]!.s) {
        top.push({ i, ...parts, s });
        top.sort((a, b) => b.s - a.s);
        if (top.length > k) top.pop();
      }
    }
    const q = this.scorer.joint.q;
    const dim = this.spec.dim;
    const cos = (a: number, b: number) => {
      let d = 0, na = 0, nb = 0;
      for (let x = 0; x < dim; x++) {
        d += q[a * dim + x]! * q[b * dim + x]!;
        na += q[a * dim + x]! ** 2;
        nb += q[b * dim + x]! ** 2;
      }
      return d / Math.sqrt(na * nb || 1);
    };
    return top.map((t) => ({
      item: this.catalogue.items[t.i]!,
      score: round(t.s),
      reason: {
        wide: round(t.wide),
        deep: round(t.deep),
        features: (this.catalogue.itemFeatures[t.i] ?? []).map((f) => this.catalogue.featureNames[f]!),
        becauseOf: seen.map((h) => ({ h, c: cos(t.i, h) })).sort((a, b) => b.c - a.c).slice(0, 3).map((x) => this.catalogue.items[x.h]!),
      },
    }));
  }
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** The items of one user in a partner's table. */
export function historyOf(data: Table, columns: { user: string; item: string }, user: string): string[] {
  const ui = columnIndex(data, columns.user, '--user-column');
  const ii = columnIndex(data, columns.item, '--item-column');
  const out = data.rows.filter((r) => r[ui] === user).map((r) => r[ii]!);
  if (out.length === 0) throw new FedmartError('NOT_FOUND', `user "${user}" has no rows in the partner data (column ${columns.user}); recommend for one of this brand's own users`);
  return out;
}

/**
 * Top-k recommendations for one of the partner's users from a published model.
 * @returns up to k items the user has not interacted with, best first, with scores and reasons
 * @throws FedmartError NOT_FOUND for an unknown user or model version; DATA_ERROR when catalogue and model disagree
 */
export async function recommend(a: RecommendArgs): Promise<Recommendation[]> {
  const published = await a.registry.load(a.federation, a.version);
  return new Recommender(published, a.catalogue, a.model).topK(historyOf(a.data, a.columns, a.user), a.k, a.user);
}
