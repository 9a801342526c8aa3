/**
 * Segment profiles a marketer can read, from the sums of the final pass
 * only (no row): size, share, positive rate, and each column in original
 * units — a numeric column as its mean in the segment (the standardised
 * mean mapped back with the schema's mean and std; values were clipped at
 * ±Z standard deviations before clustering, so it is the mean of the
 * clipped values), a categorical column as its most common categories with
 * their shares within the segment (the mean of a one-hot column is exactly
 * that share).
 *
 * Pure: no I/O.
 */
import type { FeatureSpec } from '../data/schema.ts';
import type { ClusterSums } from './lloyd.ts';

/** A categorical column's value and its share of the segment's customers. */
export interface CategoryShare {
  value: string;
  share: number;
}

/** One column of a profile: a mean (numeric) or the top categories (categorical). */
export type ProfileValue = number | CategoryShare[];

/** A column (or one category of it) where a segment differs most from everyone. */
export interface DistinctiveColumn {
  column: string;
  /** the category, for a categorical column */
  value?: string;
  /** the segment's mean (numeric, original units) or share (category) */
  segment: number;
  /** the same for all customers */
  overall: number;
}

/** A segment, or the whole population, described in original units. */
export interface SegmentProfile {
  /** 1-based segment number, largest segment first (0 for the whole population) */
  segment: number;
  size: number;
  /** size / all customers */
  share: number;
  /** share of positive customers, when labels were given */
  positiveRate?: number;
  /** per column: mean in original units, or top categories with shares */
  profile: Record<string, ProfileValue>;
  /**
   * the encoded columns where this segment's mean is furthest from the
   * overall mean, in overall standard deviations (1 for a standardised
   * numeric column, √(p(1−p)) for a category of overall share p); segments only
   */
  distinctive?: DistinctiveColumn[];
}

/** The result of {@link describeSegments}. */
export interface SegmentDescription {
  /** segments by decreasing size */
  segments: SegmentProfile[];
  /** the whole population, for comparison */
  overall: SegmentProfile;
  /** order[r] = cluster index of segment r + 1 (to relabel assignments) */
  order: number[];
}

const round = (v: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

function describe(features: readonly FeatureSpec[], segment: number, size: number, all: number, sums: ArrayLike<number>, positives: number | undefined, top: number): SegmentProfile {
  const profile: Record<string, ProfileValue> = {};
  let t = 0;
  for (const f of features) {
    if (f.type === 'numeric') {
      const z = size > 0 ? sums[t]! / size : 0;
      profile[f.name] = round((f.mean ?? 0) + (f.std ?? 1) * z, 2);
      t += 1;
    } else {
      const shares = f.categories.map((value, c) => ({ value, share: size > 0 ? sums[t + c]! / size : 0 }));
      profile[f.name] = shares
        .filter((s) => s.share > 0)
        .sort((a, b) => b.share - a.share || (a.value < b.value ? -1 : 1))
        .slice(0, top)
        .map((s) => ({ value: s.value, share: round(s.share, 3) }));
      t += f.categories.length;
    }
  }
  return { segment, size, share: round(all > 0 ? size / all : 0, 4), ...(positives === undefined ? {} : { positiveRate: round(size > 0 ? positives / size : 0, 4) }), profile };
}

/** Per encoded column: its column name, category (if any), and how to map a mean back to original units. */
function encodedColumns(features: readonly FeatureSpec[]): { column: string; value?: string; toOriginal: (z: number) => number }[] {
  const out: { column: string; value?: string; toOriginal: (z: number) => number }[] = [];
  for (const f of features) {
    if (f.type === 'numeric') out.push({ column: f.name, toOriginal: (z) => (f.mean ?? 0) + (f.std ?? 1) * z });
    else for (const value of f.categories) out.push({ column: f.name, value, toOriginal: (z) => z });
  }
  return out;
}

function distinctiveColumns(features: readonly FeatureSpec[], segmentMean: ArrayLike<number>, overallMean: ArrayLike<number>, top: number): DistinctiveColumn[] {
  return encodedColumns(features)
    .map((c, t) => {
      const p = overallMean[t]!;
      const sd = c.value === undefined ? 1 : Math.sqrt(p * (1 - p));
      return { c, t, score: sd > 0 ? Math.abs(segmentMean[t]! - p) / sd : 0 };
    })
    .filter((e) => e.score > 0)
    .sort((a, b) => b.score - a.score || a.t - b.t)
    .slice(0, top)
    .map(({ c, t }) => ({
      column: c.column,
      ...(c.value === undefined ? {} : { value: c.value }),
      segment: round(c.toOriginal(segmentMean[t]!), c.value === undefined ? 2 : 3),
      overall: round(c.toOriginal(overallMean[t]!), c.value === undefined ? 2 : 3),
    }));
}

/**
 * Profiles of every segment and of the whole population.
 *
 * @param features - the schema's features, with `mean`/`std` filled in, in encoding order
 * @param total - the combined sums at the final centroids (positives optional)
 * @param topCategories - categories listed per categorical column; default 3
 * @returns segments by decreasing size (ties: lower cluster index first), the overall profile and the order
 * @example
 * describeSegments(schema.features, run.profile).segments[0].profile.age // 38.4
 */
export function describeSegments(features: readonly FeatureSpec[], total: ClusterSums, topCategories = 3): SegmentDescription {
  const { k, d } = total;
  const all = total.counts.reduce((a, v) => a + v, 0);
  const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => total.counts[b]! - total.counts[a]! || a - b);
  const segments = order.map((j, r) => describe(features, r + 1, total.counts[j]!, all, total.sums.subarray(j * d, (j + 1) * d), total.positives?.[j], topCategories));
  const overallSums = new Float64Array(d);
  for (let j = 0; j < k; j++) for (let t = 0; t < d; t++) overallSums[t]! += total.sums[j * d + t]!;
  const overall = describe(features, 0, all, all, overallSums, total.positives?.reduce((a, v) => a + v, 0), topCategories);
  const overallMean = overallSums.map((v) => (all > 0 ? v / all : 0));
  order.forEach((j, r) => {
    const size = total.counts[j]!;
    if (size > 0) segments[r]!.distinctive = distinctiveColumns(features, total.sums.subarray(j * d, (j + 1) * d).map((v) => v / size), overallMean, 3);
  });
  return { segments, overall, order };
}
