/**
 * Recommendation data: any user–item interaction table (with or without
 * ratings, timestamps or item features) becomes implicit feedback, split
 * leave-last-out per user, and partitioned by user among brands.
 *
 * Pure: the caller hands in a parsed {@link Table}.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { columnIndex, listColumns, type Table } from '@fedmart/shared/data/table';
import { partitionByColumn } from '@fedmart/shared/data/split';
import { createSeededRng, randomInt, shuffleInPlace } from '@fedmart/shared/data/rng';

/** How to read an interaction table. */
export interface InteractionColumns {
  user: string;
  item: string;
  /** Optional rating column; with `minRating`, only rows rated ≥ minRating are interactions. */
  rating?: string | undefined;
  minRating?: number | undefined;
  /** Optional timestamp column (numeric or ISO date): the last interaction per user is the test one. */
  time?: string | undefined;
  /** Optional item feature columns (categorical; `a|b|c` cells are multi-valued, e.g. MovieLens genres). */
  itemFeatures?: string[] | undefined;
}

/** The shared marketplace catalogue and every interaction, ids mapped to dense indices. */
export interface InteractionData {
  /** User ids (original strings), index = dense user id. */
  users: string[];
  /** Item ids (original strings), index = dense item id: the public catalogue. */
  items: string[];
  /** Item feature vocabulary (e.g. genres), index = feature id. */
  featureNames: string[];
  /** For each item, its feature ids (public item features). */
  itemFeatures: Int32Array[];
  /** Per user, its distinct items in time order (ties and no timestamps: seeded random order). */
  histories: Int32Array[];
  /** True when the order came from a timestamp column. */
  timed: boolean;
}

/**
 * Read interactions from a table. Repeated (user, item) pairs count once (at
 * their first time). Users with fewer than 3 distinct items cannot give a
 * training, a validation and a test interaction and are dropped.
 * @param table - parsed CSV
 * @param cols - column roles
 * @param seed - orders untimed interactions (non-secret)
 * @returns the catalogue and per-user histories
 * @throws FedmartError DATA_ERROR naming the column or cell that is unusable
 */
export function readInteractions(table: Table, cols: InteractionColumns, seed: number): InteractionData {
  const ui = columnIndex(table, cols.user, '--user');
  const ii = columnIndex(table, cols.item, '--item');
  const ri = cols.rating === undefined ? -1 : columnIndex(table, cols.rating, '--rating');
  const ti = cols.time === undefined ? -1 : columnIndex(table, cols.time, '--time');
  const fi = (cols.itemFeatures ?? []).map((c) => columnIndex(table, c, '--item-features'));
  if (cols.minRating !== undefined && ri < 0) throw new FedmartError('CONFIG_ERROR', '--min-rating needs --rating COL (the column holding the ratings)');
  const catalogue = new CatalogueBuilder(ii, fi);
  const userIndex = new Map<string, number>();
  const users: string[] = [];
  const events: { t: number; item: number }[][] = [];
  for (const [r, row] of table.rows.entries()) {
    const u = row[ui]!;
    const it = row[ii]!;
    if (u === '' || it === '') throw new FedmartError('DATA_ERROR', `row ${r + 2}: empty ${u === '' ? `user (${cols.user})` : `item (${cols.item})`} cell; every interaction needs a user and an item`);
    // Item features are public catalogue facts: read them for every row, kept or not.
    const item = catalogue.add(row);
    if (ri >= 0 && cols.minRating !== undefined) {
      const rating = Number(row[ri]);
      if (row[ri]!.trim() === '' || !Number.isFinite(rating)) throw new FedmartError('DATA_ERROR', `row ${r + 2}: rating "${row[ri]}" in column ${cols.rating} is not a number; fix the cell or drop --rating`);
      if (rating < cols.minRating) continue;
    }
    let t = r;
    if (ti >= 0) {
      const cell = row[ti]!.trim();
      t = /^-?\d+(\.\d+)?$/.test(cell) ? Number(cell) : Date.parse(cell);
      if (!Number.isFinite(t)) throw new FedmartError('DATA_ERROR', `row ${r + 2}: time "${row[ti]}" in column ${cols.time} is neither a number nor a date; fix the cell or drop --time`);
    }
    let user = userIndex.get(u);
    if (user === undefined) {
      user = users.length;
      userIndex.set(u, user);
      users.push(u);
      events.push([]);
    }
    events[user]!.push({ t, item });
  }
  const { items, featureNames, itemFeatures } = catalogue.result();
  if (items.length < 2) throw new FedmartError('DATA_ERROR', `the table has ${items.length} distinct item(s) in column ${cols.item}; a recommender needs a catalogue of at least 2 (columns: ${listColumns(table.columns)})`);
  const rng = createSeededRng(seed);
  const keptUsers: string[] = [];
  const histories: Int32Array[] = [];
  for (const [u, ev] of events.entries()) {
    if (ti < 0) shuffleInPlace(ev, rng);
    else {
      // Ties in time: seeded random order among them.
      const tie = ev.map(() => rng.nextFloat());
      const idx = ev.map((_, k) => k).sort((a, b) => ev[a]!.t - ev[b]!.t || tie[a]! - tie[b]!);
      const sorted = idx.map((k) => ev[k]!);
      ev.splice(0, ev.length, ...sorted);
    }
    const seen = new Set<number>();
    const h: number[] = [];
    for (const e of ev) if (!seen.has(e.item)) { seen.add(e.item); h.push(e.item); }
    if (h.length < 3) continue;
    keptUsers.push(users[u]!);
    histories.push(Int32Array.from(h));
  }
  if (histories.length < 2) throw new FedmartError('DATA_ERROR', `only ${histories.length} user(s) have 3 or more distinct items (one to train on, one to validate, one to test); a recommendation needs more users${cols.minRating !== undefined ? ', or a lower --min-rating' : ''}`);
  return { users: keptUsers, items, featureNames, itemFeatures, histories, timed: ti >= 0 };
}

/** The catalogue as rows are read: item ids in order of first appearance and their categorical features (`a|b` cells: several values). */
export class CatalogueBuilder {
  private readonly itemIndex = new Map<string, number>();
  private readonly items: string[] = [];
  private readonly featureIndex = new Map<string, number>();
  private readonly featureNames: string[] = [];
  private readonly itemFeats: Set<number>[] = [];
  /** @param ii - the item column's index; fi - the feature columns' indices */
  constructor(private readonly ii: number, private readonly fi: readonly number[]) {}

  /** Add one row's item and features; @returns the item's index */
  add(row: readonly string[]): number {
    const it = row[this.ii]!;
    let item = this.itemIndex.get(it);
    if (item === undefined) {
      item = this.items.length;
      this.itemIndex.set(it, item);
      this.items.push(it);
      this.itemFeats.push(new Set());
    }
    for (const f of this.fi) {
      for (const v of row[f]!.split('|')) {
        const name = v.trim();
        if (name === '' || name === '(no genres listed)' || name === 'NA') continue;
        let id = this.featureIndex.get(name);
        if (id === undefined) {
          id = this.featureNames.length;
          this.featureIndex.set(name, id);
          this.featureNames.push(name);
        }
        this.itemFeats[item]!.add(id);
      }
    }
    return item;
  }

  result(): { items: string[]; featureNames: string[]; itemFeatures: Int32Array[] } {
    return { items: this.items, featureNames: this.featureNames, itemFeatures: this.itemFeats.map((s) => Int32Array.from([...s].sort((a, b) => a - b))) };
  }
}

/** One user's leave-last-out split: train items, the validation item (second-to-last), the test item (last). */
export interface UserSplit {
  user: number;
  train: Int32Array;
  val: number;
  test: number;
}

/**
 * Leave-last-out per user: the last interaction (by time; random without
 * timestamps, see {@link readInteractions}) is the test item, the
 * second-to-last the validation item, the rest is training.
 * @param data - interactions
 * @returns one split per user
 */
export function leaveLastOut(data: InteractionData): UserSplit[] {
  return data.histories.map((h, user) => ({ user, train: h.subarray(0, h.length - 2), val: h[h.length - 2]!, test: h[h.length - 1]! }));
}

/**
 * Assign users to partners. `dominant-feature`: each user's most frequent
 * item feature in their training history (e.g. genre; non-IID brands),
 * spread over partners by {@link partitionByColumn}; `random`: uniformly at
 * random (seeded), as equal as possible.
 * @param data - interactions
 * @param splits - per-user splits (training items decide the dominant feature)
 * @param partners - number of partners
 * @param by - partitioning rule, or a per-user value (e.g. a user column)
 * @param seed - non-secret seed
 * @returns partner index per user
 * @throws FedmartError CONFIG_ERROR when there are fewer users or values than partners
 */
export function partitionUsers(data: InteractionData, splits: readonly UserSplit[], partners: number, by: 'dominant-feature' | 'random' | string[], seed: number): Int32Array {
  if (partners > splits.length) throw new FedmartError('CONFIG_ERROR', `--partners ${partners} is more than the ${splits.length} users with enough interactions; use fewer partners`);
  if (by === 'random') {
    const order = shuffleInPlace(splits.map((s) => s.user), createSeededRng(seed));
    const out = new Int32Array(data.users.length);
    order.forEach((u, k) => { out[u] = k % partners; });
    return out;
  }
  let values: string[];
  if (Array.isArray(by)) values = by;
  else {
    if (data.featureNames.length === 0) throw new FedmartError('CONFIG_ERROR', 'partitioning by dominant item feature needs --item-features COLS; pass them, or use --partners N alone with --partition-by random');
    values = splits.map((s) => {
      const counts = new Map<number, number>();
      for (const it of s.train) for (const f of data.itemFeatures[it]!) counts.set(f, (counts.get(f) ?? 0) + 1);
      let best = -1;
      let bestCount = -1;
      for (const [f, c] of counts) if (c > bestCount || (c === bestCount && f < best)) { best = f; bestCount = c; }
      return best < 0 ? '(none)' : data.featureNames[best]!;
    });
  }
  return partitionByColumn(values, partners, seed, { column: Array.isArray(by) ? 'partition' : 'dominant item feature' }).assignment;
}

/**
 * For each user, `count` sampled negative items for the evaluation of one
 * held-out item: distinct, never in the user's history (seeded; the same
 * for every arm so arms are compared on the same candidates). With a
 * catalogue too small for `count`, every unseen item is a candidate.
 * @param data - interactions (the whole history counts as seen)
 * @param count - negatives per user (99 in the NCF protocol, He et al. 2017)
 * @param seed - non-secret seed
 * @returns per user, the negative item ids
 */
export function sampleEvalNegatives(data: InteractionData, count: number, seed: number): Int32Array[] {
  const rng = createSeededRng(seed);
  const nItems = data.items.length;
  return data.histories.map((h) => {
    const seen = new Set(h);
    const free = nItems - seen.size;
    if (free <= count) {
      const all: number[] = [];
      for (let i = 0; i < nItems; i++) if (!seen.has(i)) all.push(i);
      return Int32Array.from(all);
    }
    const out = new Set<number>();
    while (out.size < count) {
      const j = randomInt(rng, nItems);
      if (!seen.has(j)) out.add(j);
    }
    return Int32Array.from(out);
  });
}
