/**
 * Prepare the recommendation scenario from a user–item table: catalogue,
 * leave-last-out splits, evaluation negatives, partners, and each party's
 * local state. Shared by the simulation, the tests and the bench.
 */
import type { Table } from '@fedmart/shared/data/table';
import { columnIndex } from '@fedmart/shared/data/table';
import { leaveLastOut, partitionUsers, readInteractions, sampleEvalNegatives, type InteractionColumns, type InteractionData, type UserSplit } from './data.ts';
import { flattenFeatures, type ItemFeatures, type RecModelSpec } from './model.ts';
import { LocalRecommender } from './local.ts';

/** Default architecture and training settings (chosen on MovieLens validation HR@10; README). */
export const REC_DEFAULTS = Object.freeze({ dim: 32, hidden: 32, negatives: 4, l2: 1e-4, learningRate: 0.05 });

export interface PreparedScenario {
  data: InteractionData;
  splits: UserSplit[];
  feats: ItemFeatures;
  evalNegatives: Int32Array[];
  assignment: Int32Array;
  partners: { id: string; users: number[] }[];
}

/**
 * @param table - interactions
 * @param cols - column roles
 * @param o - partners, partition rule (`partitionBy`: a user column, or undefined for dominant item feature / random), seed
 */
export function prepareScenario(table: Table, cols: InteractionColumns, o: { partners: number; partitionBy?: string | undefined; seed: number }): PreparedScenario {
  const data = readInteractions(table, cols, o.seed);
  const splits = leaveLastOut(data);
  const evalNegatives = sampleEvalNegatives(data, 99, o.seed * 31 + 7);
  let by: 'dominant-feature' | 'random' | string[] = data.featureNames.length ? 'dominant-feature' : 'random';
  if (o.partitionBy === 'random') by = 'random';
  else if (o.partitionBy !== undefined) {
    // A user-level column: the value of each user's first row.
    const ci = columnIndex(table, o.partitionBy, '--partition-by');
    const ui = columnIndex(table, cols.user, '--user');
    const first = new Map<string, string>();
    for (const r of table.rows) if (!first.has(r[ui]!)) first.set(r[ui]!, r[ci]!);
    by = data.users.map((u) => first.get(u)!);
  }
  const assignment = partitionUsers(data, splits, o.partners, by, o.seed);
  const partners = Array.from({ length: o.partners }, (_, k) => ({ id: `partner-${k + 1}`, users: [] as number[] }));
  assignment.forEach((k, u) => partners[k]!.users.push(u));
  return { data, splits, feats: flattenFeatures(data.itemFeatures), evalNegatives, assignment, partners };
}

/** The model spec of a prepared scenario. */
export function scenarioSpec(s: PreparedScenario, o: { dim: number; hidden: number; mf?: boolean }): RecModelSpec {
  return { items: s.data.items.length, features: o.mf ? 0 : s.data.featureNames.length, dim: o.dim, hidden: o.mf ? 0 : o.hidden };
}

/** A party's local state over some users (all users for the centralized arm). */
export function partyOf(s: PreparedScenario, spec: RecModelSpec, users: readonly number[], seed: number): LocalRecommender {
  return new LocalRecommender(spec, s.feats, users.map((u) => s.splits[u]!), users.map((u) => s.evalNegatives[u]!), seed);
}
