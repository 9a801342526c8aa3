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
  return { segments, overall, order };
}
