/**
 * Serving the item-Gram DP model (`--dp record`, `dp-gram.ts`): the public item model a brand recommends from — the
 * private item set, its rank-r item factors (shrunk) and the released counts — as a model file and a tensor layout a
 * {@link ModelRegistry} returns, and the recommender over it. All of it is post-processing of the two DP releases:
 * serving adds no privacy cost and the file may be shared like the releases themselves. A customer's vector is solved
 * at the brand from their history (u = Vᵀ1_h, `gramScores`) and never stored.
 *
 * A score decomposes exactly over the history, s_i = Σ_{h} V_i·V_h, so the reason given for an item is the history
 * items with the largest share of its score (the "because of" of an item-item model).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FedmartError } from '@fedmart/shared/errors';
import type { TensorLayoutSpec } from '@fedmart/shared/task/layout';
import { jointParameterCount } from '@fedmart/shared/task/layout';
import type { ModelRegistry, PublishedModel } from '../model-registry.ts';
import type { InteractionData } from './data.ts';
import { gramLayout, gramScores, positions, type GramDpSpec, type GramModel } from './dp-gram.ts';
import { gramModelOf } from './gram-task.ts';
import type { Catalogue, Recommendation } from './recommend.ts';

export const GRAM_MODEL_FORMAT = 'fedmart-recommendation-gram/1';

/** Shape of a served item-Gram model: catalogue size, private-set size N, rank r. */
export interface GramServedShape {
  items: number;
  top: number;
  rank: number;
}

const CatalogueSchema = z.object({ items: z.array(z.string()), featureNames: z.array(z.string()), itemFeatures: z.array(z.array(z.number().int().min(0))) });

export const GramModelFileSchema = z.object({
  format: z.literal(GRAM_MODEL_FORMAT),
  federationId: z.string(),
  version: z.number().int().min(0),
  gram: z.object({ items: z.number().int().min(2), top: z.number().int().min(1), rank: z.number().int().min(0) }),
  weights: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  catalogue: CatalogueSchema,
  columns: z.object({ user: z.string(), item: z.string(), time: z.string().optional() }),
  /** What the release cost (ε, δ, unit), for the reader; the coordinator's ledger is the record. */
  privacy: z.record(z.string(), z.unknown()).optional(),
});
export type GramModelFile = z.infer<typeof GramModelFileSchema>;

/** Tensors of the served model: the private set's catalogue indices, the released counts, the N × r factors. */
export function gramServedLayout(g: GramServedShape): TensorLayoutSpec {
  return {
    kind: 'tensors',
    tensors: [
      { name: 'rec-gram-served|top', shape: [g.top], init: { type: 'zeros' } },
      { name: 'rec-gram-served|counts', shape: [g.items], init: { type: 'zeros' } },
      ...(g.rank > 0 ? [{ name: 'rec-gram-served|V', shape: [g.top, g.rank], init: { type: 'zeros' as const } }] : []),
    ],
  };
}

/** The flat weights of {@link gramServedLayout} (Float32: indices below 2^24, factors and counts to 7 digits). */
export function gramServedWeights(m: GramModel): Float32Array {
  const n = m.top.length;
  const out = new Float32Array(n + m.counts.length + n * m.rank);
  out.set(m.top, 0);
  out.set(m.counts, n);
  out.set(m.V.subarray(0, n * m.rank), n + m.counts.length);
  return out;
}

/** The model file `simulate --dp record --save DIR` writes (read back with {@link parseGramModelFile}). */
export function gramModelFileOf(data: InteractionData, m: GramModel, columns: { user: string; item: string; time?: string | undefined }, privacy: Record<string, unknown>): GramModelFile {
  const w = gramServedWeights(m);
  const bytes = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  return {
    format: GRAM_MODEL_FORMAT,
    federationId: 'simulation',
    version: 1,
    gram: { items: m.counts.length, top: m.top.length, rank: m.rank },
    weights: Buffer.from(bytes).toString('base64'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    catalogue: { items: data.items, featureNames: data.featureNames, itemFeatures: data.itemFeatures.map((f) => Array.from(f)) },
    columns: { user: columns.user, item: columns.item, ...(columns.time ? { time: columns.time } : {}) },
    privacy,
  };
}

/** Parse an item-Gram model file's JSON value. @throws FedmartError DATA_ERROR naming what is wrong */
export function parseGramModelFile(raw: unknown, source: string): GramModelFile {
  const r = GramModelFileSchema.safeParse(raw);
  if (!r.success) throw new FedmartError('DATA_ERROR', `${source} is not an item-Gram recommendation model file (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); pass the model.json written by simulate --dp record --save`);
  return r.data;
}

/** The shape a served layout declares, or null when it is not one. */
export function gramServedShapeOf(spec: PublishedModel['spec']): GramServedShape | null {
  if (!('kind' in spec) || spec.kind !== 'tensors' || spec.tensors[0]?.name !== 'rec-gram-served|top') return null;
  const [top, counts, V] = spec.tensors;
  return { top: top!.shape[0]!, items: counts!.shape[0]!, rank: V?.shape[1] ?? 0 };
}

/**
 * A registry over a federation that runs the item-Gram release between real parties
 * (`scenario recommendation create --dp record`): the coordinator publishes the releases themselves (the summed counts
 * and Gram as a mean over the P brands); this turns a version holding both into the served model
 * ({@link gramServedLayout}) by the same post-processing as `simulate` (`gramModelOf`), so the brand's
 * {@link GramRecommender} serves it. Only a version committed by all P brands is served: the mean × P is the sum only then.
 * @param g - the federation's gram settings (its taskSpec), @param sigma - its noise multiplier (taskSpec `sigma`)
 */
export function gramReleaseRegistry(inner: ModelRegistry, g: GramDpSpec, sigma: number): ModelRegistry {
  const expected = jointParameterCount(gramLayout(g));
  return {
    async load(federationId, version) {
      const p = await inner.load(federationId, version);
      if (p.version === 0) return p; // the caller refuses version 0 (the round-0 initialisation)
      if (p.weights.length !== expected) throw new FedmartError('DATA_ERROR', `model ${federationId}/${p.version} has ${p.weights.length} weights, not the ${expected} of the federation's item-Gram release; it was not published by this federation's release`);
      const gramCommitted = p.weights.subarray(g.items).some((v) => v !== 0);
      if (!gramCommitted) throw new FedmartError('UNAVAILABLE', `federation ${federationId}/${p.version} holds the item counts (release 1 of 2) but not yet the co-occurrence Gram; recommendations are served once the second round commits`);
      // A partner's view lists only itself among the participants; the round's metrics carry how many brands it committed.
      const clients = p.metrics.clients ?? p.participants.length;
      if (clients !== g.partners) throw new FedmartError('UNAVAILABLE', `federation ${federationId}/${p.version} was committed by ${clients} brand(s), but the item-Gram release is planned for exactly ${g.partners}: the published mean × ${g.partners} is not the brands' sum, so it is not served`);
      const m = gramModelOf(g, p.weights, sigma);
      const weights = gramServedWeights(m);
      return { ...p, spec: gramServedLayout({ items: g.items, top: m.top.length, rank: m.rank }), weights, sha256: createHash('sha256').update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength)).digest('hex') };
    },
  };
}

/** Top-k from a published item-Gram model, for a brand's own customers (same answer shape as the Wide & Deep one). */
export class GramRecommender {
  private readonly model: GramModel;
  private readonly index: Map<string, number>;
  constructor(readonly published: PublishedModel, readonly catalogue: Catalogue) {
    const g = gramServedShapeOf(published.spec);
    if (!g) throw new FedmartError('DATA_ERROR', `model ${published.federationId}/${published.version} is not an item-Gram model (its first tensor is not rec-gram-served|top)`);
    if (g.items !== catalogue.items.length) throw new FedmartError('DATA_ERROR', `the catalogue has ${catalogue.items.length} items but the item-Gram model was released over ${g.items}; use the catalogue the federation was created with`);
    const w = published.weights;
    if (w.length !== g.top + g.items + g.top * g.rank) throw new FedmartError('DATA_ERROR', `the item-Gram model has ${w.length} weights, not the ${g.top + g.items + g.top * g.rank} its layout declares`);
    const top = Int32Array.from(w.subarray(0, g.top));
    if (top.some((i) => !(i >= 0 && i < g.items)) || new Set(top).size !== top.length) throw new FedmartError('DATA_ERROR', 'the item-Gram model\'s private item set holds an index outside the catalogue or twice; the file is damaged — write it again');
    this.model = { top, pos: positions(top, g.items), rank: g.rank, counts: Float64Array.from(w.subarray(g.top, g.top + g.items)), V: Float64Array.from(w.subarray(g.top + g.items)) };
    this.index = new Map(catalogue.items.map((id, i) => [id, i]));
  }

  /** Top-k unseen items for a history (item ids; unknown ids ignored), with each item's top contributing history items. */
  topK(history: readonly string[], k: number, userKey: string): Recommendation[] {
    const seen = Int32Array.from(new Set(history.map((h) => this.index.get(h)).filter((x): x is number => x !== undefined)));
    if (seen.length === 0) throw new FedmartError('NOT_FOUND', `user ${userKey} has no interactions with catalogue items in the partner data; recommendations need a history`);
    const scores = gramScores(this.model, seen, null);
    const seenSet = new Set(seen);
    const order: number[] = [];
    for (let i = 0; i < scores.length; i++) if (!seenSet.has(i)) order.push(i);
    order.sort((a, b) => scores[b]! - scores[a]! || a - b);
    const { V, pos, rank: r } = this.model;
    const dot = (a: number, b: number) => { let d = 0; for (let c = 0; c < r; c++) d += V[a * r + c]! * V[b * r + c]!; return d; };
    return order.slice(0, k).map((i) => {
      const p = pos[i]!;
      const parts = p < 0 ? [] : Array.from(seen, (h) => ({ h, c: pos[h]! < 0 ? 0 : dot(p, pos[h]!) })).filter((x) => x.c > 0).sort((a, b) => b.c - a.c || a.h - b.h);
      return {
        item: this.catalogue.items[i]!,
        score: round(scores[i]!),
        reason: {
          // One factor part: the whole score is the "deep" (embedding) contribution; an item outside the private set ranks by its released count.
          wide: 0,
          deep: round(scores[i]!),
          features: (this.catalogue.itemFeatures[i] ?? []).map((f) => this.catalogue.featureNames[f]!),
          becauseOf: parts.slice(0, 3).map((x) => this.catalogue.items[x.h]!),
        },
      };
    });
  }
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;
