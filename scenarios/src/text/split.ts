/**
 * Splits for text experiments: a stratified held-out test split, partners
 * by a column or by Dirichlet label skew, and each partner's validation
 * split. Seeded and non-secret (`seededRandom`).
 *
 * Dirichlet label skew (Hsu, Qi, Brown 2019, "Measuring the Effects of
 * Non-Identical Data Distribution for Federated Visual Classification"):
 * for each class, draw proportions p ~ Dir(α·1_N) over the N partners and
 * deal that class's rows out in those proportions. Small α: each partner
 * sees mostly a few classes.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { seededRandom } from '@fedmart/shared/model';

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Gamma(α, 1) by Marsaglia & Tsang (2000); α < 1 via Gamma(α+1)·U^{1/α}. */
export function gammaSample(alpha: number, rand: () => number): number {
  if (alpha < 1) return gammaSample(alpha + 1, rand) * Math.pow(1 - rand(), 1 / alpha);
  const d = alpha - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rand);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rand();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Dir(α·1_k) sample. */
export function dirichletSample(k: number, alpha: number, rand: () => number): number[] {
  const g = Array.from({ length: k }, () => gammaSample(alpha, rand));
  const s = g.reduce((a, b) => a + b, 0);
  return g.map((x) => (s > 0 ? x / s : 1 / k));
}

/**
 * Stratified split of `indices` into (rest, held) with `fraction` of each class held out.
 * @param indices - rows to split
 * @param labels - label of every row (indexed by row)
 * @param fraction - share held out, per class (at least one row of a class with ≥ 2 rows)
 * @param seed - non-secret seed
 */
export function stratifiedSplit(indices: readonly number[], labels: ArrayLike<number>, fraction: number, seed: number): { rest: number[]; held: number[] } {
  const rand = seededRandom(seed);
  const groups = new Map<number, number[]>();
  for (const i of indices) {
    const y = labels[i]!;
    if (!groups.has(y)) groups.set(y, []);
    groups.get(y)!.push(i);
  }
  const rest: number[] = [];
  const held: number[] = [];
  for (const y of [...groups.keys()].sort((a, b) => a - b)) {
    const rows = shuffle([...groups.get(y)!], rand);
    const h = rows.length >= 2 ? Math.max(1, Math.round(rows.length * fraction)) : 0;
    held.push(...rows.slice(0, h));
    rest.push(...rows.slice(h));
  }
  return { rest: rest.sort((a, b) => a - b), held: held.sort((a, b) => a - b) };
}

/**
 * Dirichlet label-skew partition of `indices` over `partners`, redrawn (up to
 * 100 times) until every partner has at least `minRows` rows.
 * @returns one sorted index list per partner
 * @throws FedmartError DATA_ERROR when no draw gives every partner minRows rows
 */
export function dirichletPartition(indices: readonly number[], labels: ArrayLike<number>, partners: number, alpha: number, seed: number, minRows = 10): number[][] {
  if (!(alpha > 0)) throw new FedmartError('CONFIG_ERROR', `--dirichlet must be > 0, got ${alpha}`);
  const sub = new Map<number, number[]>();
  for (const i of indices) {
    const y = labels[i]!;
    if (!sub.has(y)) sub.set(y, []);
    sub.get(y)!.push(i);
  }
  const rand = seededRandom(seed * 31 + 7);
  for (let attempt = 0; attempt < 100; attempt++) {
    const parts: number[][] = Array.from({ length: partners }, () => []);
    for (const y of [...sub.keys()].sort((a, b) => a - b)) {
      const rows = shuffle([...sub.get(y)!], rand);
      const p = dirichletSample(partners, alpha, rand);
      let start = 0;
      let cum = 0;
      for (let k = 0; k < partners; k++) {
        cum += p[k]!;
        const end = k === partners - 1 ? rows.length : Math.round(cum * rows.length);
        parts[k]!.push(...rows.slice(start, end));
        start = end;
      }
    }
    if (parts.every((p) => p.length >= minRows)) return parts.map((p) => p.sort((a, b) => a - b));
  }
  throw new FedmartError('DATA_ERROR', `a Dirichlet(${alpha}) split of ${indices.length} rows over ${partners} partners left a partner with fewer than ${minRows} rows in 100 draws; use fewer partners, a larger --dirichlet or more rows`);
}

/** IID partition: shuffled rows dealt round-robin. */
export function iidPartition(indices: readonly number[], partners: number, seed: number): number[][] {
  const rows = shuffle([...indices], seededRandom(seed * 13 + 5));
  const parts: number[][] = Array.from({ length: partners }, () => []);
  rows.forEach((r, i) => parts[i % partners]!.push(r));
  return parts.map((p) => p.sort((a, b) => a - b));
}

/**
 * Partition by a column's values: each value's rows stay together; values
 * (largest first) go to the partner with the fewest rows so far.
 * @returns partners (index lists) and the values each holds
 */
export function columnPartition(indices: readonly number[], values: readonly string[], partners: number): { rows: number[][]; values: string[][] } {
  const groups = new Map<string, number[]>();
  for (const i of indices) {
    const v = values[i]!;
    if (!groups.has(v)) groups.set(v, []);
    groups.get(v)!.push(i);
  }
  if (groups.size < partners) throw new FedmartError('DATA_ERROR', `the partition column has ${groups.size} distinct value(s), fewer than --partners ${partners}; pass --partners ${Math.max(2, groups.size)} or another column`);
  const order = [...groups.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  const rows: number[][] = Array.from({ length: partners }, () => []);
  const vals: string[][] = Array.from({ length: partners }, () => []);
  for (const [v, r] of order) {
    let k = 0;
    for (let j = 1; j < partners; j++) if (rows[j]!.length < rows[k]!.length) k = j;
    rows[k]!.push(...r);
    vals[k]!.push(v);
  }
  return { rows: rows.map((p) => p.sort((a, b) => a - b)), values: vals };
}

