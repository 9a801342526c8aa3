/**
 * One party's recommendation state: its users' splits, training examples
 * and LOCAL user parameters (a partner's own customers; everybody for the
 * centralized arm). Joint parameters come and go as flat vectors.
 */
import { createSeededRng } from '@fedmart/shared/data/rng';
import type { UserSplit } from './data.ts';
import { RankingAccumulator } from './metrics.ts';
import { FoldIn, type FoldInSettings } from './foldin.ts';
import { initUserParams, Scorer, WideDeep, jointViews, type ItemFeatures, type RecModelSpec, type TrainSettings, type UserParams } from './model.ts';

/** Training settings of the scenario (taskSpec), beside the round's epochs and learning rate. */
export interface RecTrainSpec {
  model: RecModelSpec;
  negatives: number;
  l2: number;
  /** DP-SGD: the step is learningRate × dpStepScale × (clipped sum + noise) / expected batch (the federation schema caps learningRate at 10). */
  dpStepScale?: number | undefined;
}

export class LocalRecommender {
  readonly model: WideDeep;
  users: UserParams;
  readonly examples: { user: Int32Array; item: Int32Array };
  readonly seen: Set<number>[];
  constructor(
    readonly spec: RecModelSpec,
    readonly feats: ItemFeatures,
    /** This party's users' splits (local index k ↔ splits[k]). */
    readonly splits: readonly UserSplit[],
    /** Evaluation negatives per local user (sampled over the whole catalogue minus the user's history). */
    readonly evalNegatives: readonly Int32Array[],
    seed: number,
    maxNegatives = 16,
  ) {
    this.model = new WideDeep(spec, feats, maxNegatives);
    this.users = initUserParams(spec, splits.length, seed);
    const n = splits.reduce((s, u) => s + u.train.length, 0);
    const user = new Int32Array(n);
    const item = new Int32Array(n);
    let k = 0;
    splits.forEach((s, local) => {
      for (const it of s.train) {
        user[k] = local;
        item[k++] = it;
      }
    });
    this.examples = { user, item };
    this.seen = splits.map((s) => new Set(s.train));
  }

  get numExamples(): number {
    return this.examples.user.length;
  }

  /** Train `epochs` epochs in place; returns the mean loss of the last. */
  train(flat: Float32Array, t: TrainSettings, epochs: number, seed: number, touched?: Uint8Array): number {
    let loss = 0;
    for (let e = 0; e < epochs; e++) loss = this.model.epoch(flat, this.users, this.examples, this.seen, t, seed * 131 + e, touched);
    return loss;
  }

  /** {@link train}, yielding to the event loop every `slice` examples (for partner nodes: heartbeats keep flowing). */
  async trainYielding(flat: Float32Array, t: TrainSettings, epochs: number, seed: number, touched?: Uint8Array, slice = 2000): Promise<number> {
    let loss = 0;
    for (let e = 0; e < epochs; e++) {
      const run = this.model.epochRunner(flat, this.users, this.examples, this.seen, t, seed * 131 + e, touched);
      while (run.step(slice)) await new Promise((r) => setImmediate(r));
      loss = run.meanLoss();
    }
    return loss;
  }

  /**
   * Ranking metrics of joint weights with these (or given) user parameters.
   * @param which - 'val' ranks the validation item, 'test' the test item
   * @param full - also rank the item among every item the user has not interacted with
   */
  evaluate(flat: Float32Array, which: 'val' | 'test', full: boolean, users: UserParams = this.users): RankingAccumulator {
    const scorer = new Scorer(this.spec, jointViews(this.spec, flat, this.feats), this.feats);
    const acc = new RankingAccumulator();
    const { dim, features } = this.spec;
    this.splits.forEach((s, k) => {
      const p = users.p.subarray(k * dim, (k + 1) * dim);
      const c = users.c.subarray(k * features, (k + 1) * features);
      const target = which === 'val' ? s.val : s.test;
      if (!full) {
        const sc = scorer.scores(p, c, [target, ...this.evalNegatives[k]!]);
        acc.add(sc[0]!, sc.subarray(1));
        return;
      }
      const all = scorer.scores(p, c, null);
      const pos = all[target]!;
      const negs = this.evalNegatives[k]!;
      const negScores = new Float32Array(negs.length);
      negs.forEach((n, m) => { negScores[m] = all[n]!; });
      acc.add(pos, negScores, fullRank(all, target, s, which));
    });
    return acc;
  }

  /**
   * Every user's parameters refitted to their training items against frozen
   * joint weights (the serving fold-in, foldin.ts): what a brand serves with.
   * Local computation on the brand's own data; nothing of it is released.
   */
  foldInUsers(flat: Float32Array, t: FoldInSettings, seed: number): UserParams {
    const fold = new FoldIn(new Scorer(this.spec, jointViews(this.spec, flat, this.feats), this.feats));
    const { dim, features } = this.spec;
    const out: UserParams = { p: new Float32Array(this.users.p.length), c: new Float32Array(this.users.c.length) };
    this.splits.forEach((s, k) => {
      const u = fold.run(s.train, t, seed * 7919 + k);
      out.p.set(u.p, k * dim);
      out.c.set(u.c, k * features);
    });
    return out;
  }

  /** A deep copy of the user parameters (for snapshots). */
  snapshot(): UserParams {
    return { p: this.users.p.slice(), c: this.users.c.slice() };
  }
}

/** Rank of `target` among items the user has not interacted with (training items and the other held-out item excluded). */
export function fullRank(all: Float32Array, target: number, s: UserSplit, which: 'val' | 'test'): number {
  const excluded = new Set(s.train);
  excluded.add(which === 'val' ? s.test : s.val);
  const pos = all[target]!;
  let r = 0;
  for (let i = 0; i < all.length; i++) if (i !== target && !excluded.has(i) && all[i]! >= pos) r++;
  return r;
}

/**
 * The popularity arm: items scored by how many training interactions they
 * have over all parties.
 */
export function popularityMetrics(items: number, parties: readonly LocalRecommender[]): RankingAccumulator {
  const count = new Float32Array(items);
  for (const p of parties) for (const it of p.examples.item) count[it]!++;
  // Deterministic, seeded tie-break between equally popular items, below one interaction.
  const rng = createSeededRng(4242);
  for (let i = 0; i < items; i++) count[i]! += 0.5 * rng.nextFloat();
  const acc = new RankingAccumulator();
  for (const p of parties) {
    p.splits.forEach((s, k) => {
      const negs = p.evalNegatives[k]!;
      const ns = new Float32Array(negs.length);
      negs.forEach((n, m) => { ns[m] = count[n]!; });
      acc.add(count[s.test]!, ns, fullRank(count, s.test, s, 'test'));
    });
  }
  return acc;
}
