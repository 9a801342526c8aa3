/**
 * Global feature importance by permutation (L. Breiman, "Random Forests",
 * Machine Learning 45, 2001, §10; the model-agnostic form of A. Fisher,
 * C. Rudin, F. Dominici, "All Models are Wrong, but Many are Useful",
 * JMLR 20(177), 2019): the importance of a feature is how much worse the
 * model scores when that feature's values are shuffled across rows, which
 * breaks its link to the label while keeping its distribution.
 *
 * Federated: each partner permutes ITS OWN validation rows
 * ({@link partnerPermutationImportance}) and shares only the resulting
 * vector of importances with its validation row count;
 * {@link aggregatePermutationImportance} weights those vectors by row count.
 * No row leaves a partner. What the vector reveals: how much each feature
 * matters to the joint model on that partner's customers (one number per
 * feature, averaged over its rows), plus the row count it already reports
 * for evaluation.
 *
 * A categorical feature is permuted as a whole one-hot group (rows swap
 * their entire group), so the shuffled row is still a valid encoding.
 * Importance is the mean increase in log loss over `repeats` seeded
 * permutations; the drop in ROC AUC is reported beside it.
 *
 * Pure: no I/O. The permutations come from the seeded, non-secret data RNG.
 */
import { FedmartError } from '../errors.ts';
import { logLoss, rocAuc } from '../metrics.ts';
import { createSeededRng, shuffleInPlace } from '../data/rng.ts';
import { forwardLogits, sigmoid, type DenseModel } from './mlp.ts';
import type { FeatureGroup } from './features.ts';

/** One feature's importance. */
export interface FeatureImportance {
  feature: string;
  /** Mean increase in log loss when the feature is permuted (≥ 0 for a useful feature; noise can make it slightly negative). */
  importance: number;
  /** Mean drop in ROC AUC; NaN when the rows hold only one class. */
  aucDrop: number;
}

/** What one partner shares: its validation row count, its baseline scores and one importance per feature. */
export interface PartnerImportance {
  n: number;
  baseLogLoss: number;
  baseAuc: number;
  repeats: number;
  features: FeatureImportance[];
}

/** Options of {@link partnerPermutationImportance}. */
export interface PermutationOptions {
  /** Seed of the permutations (non-secret). */
  seed: number;
  /** Permutations per feature, averaged. Default 5. */
  repeats?: number;
}

/** The combined importance: features sorted by importance, most important first. */
export interface AggregatedImportance {
  /** Total validation rows behind the numbers. */
  n: number;
  repeats: number;
  global: FeatureImportance[];
}

function probsOf(model: DenseModel, x: Float32Array, n: number): Float64Array {
  const z = forwardLogits(model, x, n);
  for (let i = 0; i < n; i++) z[i] = sigmoid(z[i]!);
  return z;
}

/** AUC, or NaN when only one class is present (rocAuc returns NaN then). */
const aucOf = (p: Float64Array, y: Float32Array) => rocAuc(p, y);

/**
 * Permutation importance of every original feature on one partner's rows.
 * Runs at the partner; its result is the only thing the partner shares.
 *
 * @param model - from `denseModel`
 * @param groups - feature groups of the schema (`featureGroups`)
 * @param data - the partner's encoded validation rows and 0/1 labels
 * @param opts - seed and repeats
 * @returns the partner's importance vector
 * @throws FedmartError `DATA_ERROR` if the data is empty or its width does not match the model
 * @throws RangeError if `repeats` is not a positive integer
 */
export function partnerPermutationImportance(model: DenseModel, groups: readonly FeatureGroup[], data: { x: Float32Array; y: Float32Array; n: number }, opts: PermutationOptions): PartnerImportance {
  const repeats = opts.repeats ?? 5;
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`partnerPermutationImportance: repeats must be a positive integer, got ${String(repeats)}`);
  const { n } = data;
  const d = model.spec.inputDim;
  if (!Number.isInteger(n) || n < 1) throw new FedmartError('DATA_ERROR', `permutation importance needs at least one validation row, got ${String(n)}`);
  if (data.x.length !== n * d || data.y.length !== n) throw new FedmartError('DATA_ERROR', `validation rows: expected ${n} × ${d} features and ${n} labels, got ${data.x.length} and ${data.y.length}; encode them with the model's schema`);
  const baseP = probsOf(model, data.x, n);
  const baseLogLoss = logLoss(baseP, data.y);
  const baseAuc = aucOf(baseP, data.y);
  const rng = createSeededRng(opts.seed);
  const work = Float32Array.from(data.x);
  const perm = new Int32Array(n);
  const features = groups.map((g) => {
    let dLoss = 0;
    let dAuc = 0;
    for (let r = 0; r < repeats; r++) {
      for (let i = 0; i < n; i++) perm[i] = i;
      shuffleInPlace(perm, rng);
      for (let i = 0; i < n; i++) {
        const src = perm[i]! * d + g.start;
        work.set(data.x.subarray(src, src + g.width), i * d + g.start);
      }
      const p = probsOf(model, work, n);
      dLoss += logLoss(p, data.y) - baseLogLoss;
      dAuc += baseAuc - aucOf(p, data.y);
    }
    for (let i = 0; i < n; i++) work.set(data.x.subarray(i * d + g.start, i * d + g.start + g.width), i * d + g.start);
    return { feature: g.feature, importance: dLoss / repeats, aucDrop: dAuc / repeats };
  });
  return { n, baseLogLoss, baseAuc, repeats, features };
}

/**
 * Combine partners' importance vectors, each weighted by its validation row
 * count (so the result estimates the importance on the pooled validation
 * rows without pooling them). A partner whose AUC is undefined (one class)
 * still counts for the log-loss importance but not for the AUC drop.
 *
 * @param parts - one {@link PartnerImportance} per partner, all over the same features in the same order
 * @returns features sorted by importance, most important first
 * @throws FedmartError `DATA_ERROR` if there are no partners or their feature lists differ
 * @example
 * aggregatePermutationImportance(partners.map((p) => partnerPermutationImportance(model, groups, p.val, { seed })));
 */
export function aggregatePermutationImportance(parts: readonly PartnerImportance[]): AggregatedImportance {
  if (parts.length === 0) throw new FedmartError('DATA_ERROR', 'no partner importance vectors to aggregate; at least one partner must report');
  const names = parts[0]!.features.map((f) => f.feature);
  for (const p of parts) {
    if (p.features.length !== names.length || p.features.some((f, i) => f.feature !== names[i])) {
      throw new FedmartError('DATA_ERROR', `partners reported importance for different features (${p.features.map((f) => f.feature).join(', ')} vs ${names.join(', ')}); every partner must use the federation's schema`);
    }
    if (!Number.isInteger(p.n) || p.n < 1) throw new FedmartError('DATA_ERROR', `a partner reported ${String(p.n)} validation rows; importance needs at least one`);
  }
  let n = 0;
  for (const p of parts) n += p.n;
  const global = names.map((feature, i) => {
    let loss = 0;
    let auc = 0;
    let aucN = 0;
    for (const p of parts) {
      const f = p.features[i]!;
      loss += p.n * f.importance;
      if (Number.isFinite(f.aucDrop)) {
        auc += p.n * f.aucDrop;
        aucN += p.n;
      }
    }
    return { feature, importance: loss / n, aucDrop: aucN > 0 ? auc / aucN : Number.NaN };
  });
  global.sort((a, b) => b.importance - a.importance);
  return { n, repeats: Math.min(...parts.map((p) => p.repeats)), global };
}
