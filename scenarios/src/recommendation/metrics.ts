/**
 * Ranking metrics of leave-one-out evaluation (He et al. 2017, "Neural
 * Collaborative Filtering", §4.1): the held-out item is ranked among
 * sampled negatives; ties count against it (a model that scores everything
 * equal gets no credit).
 */

/** Rank (0 = first) of the positive's score among the negatives' scores (ties count against). */
export function rankOf(pos: number, negs: ArrayLike<number>): number {
  if (Number.isNaN(pos)) return negs.length; // a diverged model gets no credit
  let r = 0;
  for (let k = 0; k < negs.length; k++) if (negs[k]! >= pos) r++;
  return r;
}

/** HR@k: 1 when the positive ranks within the first k. */
export const hitAt = (rank: number, k: number): number => (rank < k ? 1 : 0);

/** NDCG@k with one relevant item: 1/log2(rank + 2) within the first k, else 0. */
export const ndcgAt = (rank: number, k: number): number => (rank < k ? 1 / Math.log2(rank + 2) : 0);

/** Per-user AUC: the fraction of negatives scored strictly below the positive (ties count half). */
export function aucOf(pos: number, negs: ArrayLike<number>): number {
  if (negs.length === 0) return 1;
  if (Number.isNaN(pos)) return 0;
  let s = 0;
  for (let k = 0; k < negs.length; k++) s += negs[k]! < pos ? 1 : negs[k] === pos ? 0.5 : 0;
  return s / negs.length;
}

/** Mean ranking metrics over users. */
export interface RankingMetrics {
  hr10: number;
  ndcg10: number;
  /** HR@10 among all items the user has not interacted with (NaN when not computed). */
  hr10Full: number;
  auc: number;
  users: number;
}

/** Accumulates per-user metrics. */
export class RankingAccumulator {
  private hr = 0;
  private ndcg = 0;
  private full = 0;
  private fullN = 0;
  private auc = 0;
  private n = 0;
  /** Add one user: scores of the positive and its negatives, and optionally the positive's full-catalogue rank. */
  add(pos: number, negs: ArrayLike<number>, fullRank?: number): void {
    const r = rankOf(pos, negs);
    this.hr += hitAt(r, 10);
    this.ndcg += ndcgAt(r, 10);
    this.auc += aucOf(pos, negs);
    if (fullRank !== undefined) {
      this.full += hitAt(fullRank, 10);
      this.fullN++;
    }
    this.n++;
  }
  /** Merge another accumulator (partners' users pooled). */
  merge(o: RankingAccumulator): this {
    this.hr += o.hr;
    this.ndcg += o.ndcg;
    this.full += o.full;
    this.fullN += o.fullN;
    this.auc += o.auc;
    this.n += o.n;
    return this;
  }
  result(): RankingMetrics {
    const n = Math.max(1, this.n);
    return { hr10: this.hr / n, ndcg10: this.ndcg / n, hr10Full: this.fullN ? this.full / this.fullN : Number.NaN, auc: this.auc / n, users: this.n };
  }
}
