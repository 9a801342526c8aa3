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
import { FoldIn } from './foldin.ts';
import { REC_DEFAULTS } from './scenario.ts';
import { GRAM_MODEL_FORMAT, GramRecommender, gramServedLayout, parseGramModelFile, type GramModelFile } from './gram-serve.ts';

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

/** Parse a Wide & Deep model file's text. @throws FedmartError DATA_ERROR naming what is wrong */
export function parseModelFile(text: string, source: string): RecommendationModelFile {
  const r = ModelFileSchema.safeParse(jsonOf(text, source));
  if (!r.success) throw new FedmartError('DATA_ERROR', `${source} is not a recommendation model file (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); pass the model.json written by simulate --save`);
  return r.data;
}

function jsonOf(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new FedmartError('DATA_ERROR', `${source} is not JSON; pass the model.json written by "fedmart scenario recommendation simulate --save DIR"`);
  }
}

/** Parse either model file `simulate --save` writes: Wide & Deep, or the item-Gram DP model (`--dp record`). */
export function parseAnyModelFile(text: string, source: string): RecommendationModelFile | GramModelFile {
  const raw = jsonOf(text, source);
  if ((raw as { format?: unknown } | null)?.format === GRAM_MODEL_FORMAT) return parseGramModelFile(raw, source);
  return parseModelFile(text, source);
}

/** A registry over one saved model file (the simulation's published model): Wide & Deep, or the item-Gram DP model. */
export class FileModelRegistry implements ModelRegistry {
  constructor(private readonly file: RecommendationModelFile | GramModelFile) {}
  async load(federationId: string, version: number | 'latest'): Promise<PublishedModel> {
    const f = this.file;
    if (federationId !== f.federationId || (version !== 'latest' && version !== f.version)) throw new FedmartError('NOT_FOUND', `the model file holds ${f.federationId}/${f.version}, not ${federationId}/${version}`);
    const bytes = Buffer.from(f.weights, 'base64');
    if (createHash('sha256').update(bytes).digest('hex') !== f.sha256) throw new FedmartError('UNPROCESSABLE', 'the model file\'s weights do not match their SHA-256; the file was altered — write it again with simulate --save');
    const weights = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { federationId: f.federationId, version: f.version, spec: 'gram' in f ? gramServedLayout(f.gram) : recLayout(f.model), weights, sha256: f.sha256, metrics: {}, participants: [] };
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

/** Epochs of the serving fold-in (the baseline's 20: fewer lost validation HR@10, README). */
export const FOLD_IN_EPOCHS = 20;
/** Cap on the serving fold-in's SGD steps (history items × epochs): a 500-item history gets 2 epochs (validation HR@10 0.7679 vs 0.7560 at 2,000 steps and 0.7589 uncapped, README). */
export const FOLD_IN_MAX_STEPS = 1000;

/** How a user is folded in: the serving fold-in (default), without its step cap, or the full-backward baseline. */
export interface FoldOptions {
  baseline?: boolean;
  uncapped?: boolean;
}

/** A loaded model ready to serve many users (fold-in per user). */
export class Recommender {
  private readonly scorer: Scorer;
  private readonly foldIn: FoldIn;
  private readonly wd: WideDeep;
  private readonly index: Map<string, number>;
  /** Item embedding norms (for the "because of" cosine). */
  private readonly norms: Float32Array;
  constructor(readonly published: PublishedModel, readonly catalogue: Catalogue, readonly spec: RecModelSpec) {
    if (spec.items !== catalogue.items.length) throw new FedmartError('DATA_ERROR', `the catalogue has ${catalogue.items.length} items but the model was trained over ${spec.items}; use the catalogue the federation was created with`);
    if (published.weights.length !== jointParameterCount(recLayout(spec))) throw new FedmartError('DATA_ERROR', `the published model has ${published.weights.length} parameters, not the ${jointParameterCount(recLayout(spec))} of a recommendation model over this catalogue`);
    const feats = flattenFeatures(catalogue.itemFeatures.map((f) => Int32Array.from(f)));
    this.scorer = new Scorer(spec, jointViews(spec, published.weights, feats), feats);
    this.foldIn = new FoldIn(this.scorer, REC_DEFAULTS.negatives);
    this.wd = new WideDeep(spec, feats, REC_DEFAULTS.negatives);
    this.index = new Map(catalogue.items.map((id, i) => [id, i]));
    const q = this.scorer.joint.q;
    this.norms = new Float32Array(spec.items);
    for (let i = 0; i < spec.items; i++) {
      let n = 0;
      for (let x = 0; x < spec.dim; x++) n += q[i * spec.dim + x]! ** 2;
      this.norms[i] = Math.sqrt(n) || 1;
    }
  }

  /** Catalogue indices of a history (item ids; unknown ids are ignored), distinct. */
  indicesOf(history: readonly string[]): Int32Array {
    return Int32Array.from(new Set(history.map((h) => this.index.get(h)).filter((x): x is number => x !== undefined)));
  }

  /** The user's local parameters fitted to a history (seeded by the user key); `baseline`: the 20-epoch full-backward SGD of {@link WideDeep.foldIn}. */
  fold(seen: Int32Array, userKey: string, o: FoldOptions = {}): { p: Float32Array; c: Float32Array } {
    let seed = 0;
    for (const ch of userKey) seed = (Math.imul(seed, 31) + ch.charCodeAt(0)) >>> 0;
    const t = { learningRate: REC_DEFAULTS.learningRate, l2: REC_DEFAULTS.l2, negatives: REC_DEFAULTS.negatives, epochs: FOLD_IN_EPOCHS };
    if (o.baseline) return this.wd.foldIn(this.published.weights, seen, t, seed);
    return this.foldIn.run(seen, o.uncapped ? t : { ...t, maxSteps: FOLD_IN_MAX_STEPS }, seed);
  }

  /** Scores of `candidates` for folded-in user parameters. */
  scores(user: { p: Float32Array; c: Float32Array }, candidates: ArrayLike<number>): Float32Array {
    return this.scorer.scores(user.p, user.c, candidates);
  }

  /**
   * Top-k unseen items for a user with this history (item ids; unknown ids are ignored).
   * @param o - how the user is folded in (default: the serving fold-in)
   */
  topK(history: readonly string[], k: number, userKey: string, o: FoldOptions = {}): Recommendation[] {
    const seen = this.indicesOf(history);
    if (seen.length === 0) throw new FedmartError('NOT_FOUND', `user ${userKey} has no interactions with catalogue items in the partner data; recommendations need a history`);
    const { p, c } = this.fold(seen, userKey, o);
    const pre = this.scorer.userPre(p);
    const seenSet = new Set(seen);
    // Top-k by a size-k min-heap over the catalogue (ties: the lower index wins).
    const heapI = new Int32Array(k);
    const heapS = new Float64Array(k);
    let size = 0;
    const less = (a: number, b: number) => heapS[a]! < heapS[b]! || (heapS[a] === heapS[b] && heapI[a]! > heapI[b]!);
    const swap = (a: number, b: number) => {
      const ti = heapI[a]!; heapI[a] = heapI[b]!; heapI[b] = ti;
      const ts = heapS[a]!; heapS[a] = heapS[b]!; heapS[b] = ts;
    };
    const down = (x: number) => {
      for (;;) {
        const l = 2 * x + 1;
        const r = l + 1;
        let m = x;
        if (l < size && less(l, m)) m = l;
        if (r < size && less(r, m)) m = r;
        if (m === x) return;
        swap(x, m);
        x = m;
      }
    };
    for (let i = 0; i < this.spec.items; i++) {
      if (seenSet.has(i)) continue;
      const s = this.scorer.score(p, c, pre, i);
      if (size < k) {
        heapI[size] = i;
        heapS[size] = s;
        for (let x = size++; x > 0 && less(x, (x - 1) >> 1); x = (x - 1) >> 1) swap(x, (x - 1) >> 1);
      } else if (s > heapS[0]!) {
        heapI[0] = i;
        heapS[0] = s;
        down(0);
      }
    }
    const top = Array.from(heapI.subarray(0, size)).map((i, x) => ({ i, s: heapS[x]! })).sort((a, b) => b.s - a.s || a.i - b.i);
    const q = this.scorer.joint.q;
    const dim = this.spec.dim;
    const cos = (a: number, b: number) => {
      let d = 0;
      for (let x = 0; x < dim; x++) d += q[a * dim + x]! * q[b * dim + x]!;
      return d / (this.norms[a]! * this.norms[b]!);
    };
    return top.map(({ i }) => {
      const parts = this.scorer.parts(p, c, pre, i);
      return {
        item: this.catalogue.items[i]!,
        score: round(parts.wide + parts.deep),
        reason: {
          wide: round(parts.wide),
          deep: round(parts.deep),
          features: (this.catalogue.itemFeatures[i] ?? []).map((f) => this.catalogue.featureNames[f]!),
          becauseOf: Array.from(seen, (h) => ({ h, c: cos(i, h) })).sort((a, b) => b.c - a.c).slice(0, 3).map((x) => this.catalogue.items[x.h]!),
        },
      };
    });
  }
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** The items of one user in a partner's table. */
export function historyOf(data: Table, columns: { user: string; item: string }, user: string): string[] {
  return historyLookup(historiesOf(data, columns), columns.user)(user);
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

/** What `fedmart recommend --json` prints and the partner's `GET /recommend` answers. */
export interface RecommendResponse {
  user: string;
  model: string;
  k: number;
  recommendations: Recommendation[];
  /** Fold-in, scoring and ranking for this user (the model already loaded). */
  ms: number;
}

/**
 * A brand's recommendation service: loads a published version through the
 * registry once (cached until {@link invalidate}, e.g. when a new round
 * commits) and answers per user from the brand's own histories.
 */
export class RecommendationService {
  private loaded: { key: string; version: number; rec: Pick<Recommender, 'topK'> } | null = null;
  constructor(
    private readonly registry: ModelRegistry,
    readonly federation: string,
    private readonly catalogue: Catalogue,
    /** The Wide & Deep architecture, or 'gram' for the item-Gram DP model (gram-serve.ts). */
    private readonly spec: RecModelSpec | 'gram',
    /** The brand's history of a user (item ids); throws FedmartError NOT_FOUND for a user it does not have. */
    private readonly historyOf: (user: string) => string[],
  ) {}

  /** Drop the cached model (the next answer loads the version asked for again). */
  invalidate(): void {
    this.loaded = null;
  }

  /**
   * @param version - a version, or 'latest' (the federation's current one; version 0, the round-0 initialisation, is not served)
   * @throws FedmartError NOT_FOUND for a user this brand does not have; UNAVAILABLE when no round has committed a model yet
   */
  async answer(user: string, k: number, version: number | 'latest' = 'latest'): Promise<RecommendResponse> {
    const history = this.historyOf(user);
    const key = String(version);
    if (this.loaded?.key !== key) {
      const published = await this.registry.load(this.federation, version);
      if (published.version === 0 && version === 'latest') throw new FedmartError('UNAVAILABLE', `federation ${this.federation} has no published model yet (version 0 is the untrained round-0 initialisation); recommendations are served once a round commits`);
      this.loaded = { key, version: published.version, rec: this.spec === 'gram' ? new GramRecommender(published, this.catalogue) : new Recommender(published, this.catalogue, this.spec) };
    }
    const started = performance.now();
    const recommendations = this.loaded.rec.topK(history, k, user);
    return { user, model: `${this.federation}/${this.loaded.version}`, k, recommendations, ms: Math.round((performance.now() - started) * 10) / 10 };
  }
}

/** Index a brand's table by user: user id → item ids (every row of theirs). */
export function historiesOf(data: Table, columns: { user: string; item: string }): Map<string, string[]> {
  const ui = columnIndex(data, columns.user, '--user-column');
  const ii = columnIndex(data, columns.item, '--item-column');
  const out = new Map<string, string[]>();
  for (const r of data.rows) {
    const h = out.get(r[ui]!);
    if (h) h.push(r[ii]!);
    else out.set(r[ui]!, [r[ii]!]);
  }
  return out;
}

/** A `historyOf` over an indexed table: NOT_FOUND names the column for a user the brand does not have. */
export function historyLookup(histories: ReadonlyMap<string, string[]>, userColumn: string): (user: string) => string[] {
  return (user) => {
    const h = histories.get(user);
    if (!h) throw new FedmartError('NOT_FOUND', `user "${user}" has no rows in the partner data (column ${userColumn}); recommend for one of this brand's own users`);
    return h;
  };
}
