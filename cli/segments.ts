/**
 * `fedmart segments`: customer segments by federated k-means over a CSV the
 * user brings, split into partners that each hold only their own rows, with
 * the centralized k-means from the same initial centroids beside it.
 *
 * The partners run in this process as separate objects (shared/src/cluster
 * `KMeansPartner`); running k-means rounds through the coordinator over
 * Socket.IO needs the task seam of issue 10.
 */
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { createSeededRng, partitionByColumn, selectRows, shuffleInPlace, type Table } from '@fedmart/shared/data/index';
import {
  DEFAULT_CLUSTER_CLIP,
  DEFAULT_INIT_GROUPS_PER_SEGMENT,
  DEFAULT_MIN_GROUP_SIZE,
  KMeansPartner,
  describeSegments,
  encodeForClustering,
  runCentralizedKMeans,
  runFederatedKMeans,
  weightedKMeansPlusPlus,
  type CategoryShare,
  type Points,
  type SegmentProfile,
} from '@fedmart/shared/cluster/index';
import { readTableFile, writeCsv } from '@fedmart/client-node/data/connectors';
import { intFlag, numberFlag, parseFlags, progress, requireString } from './args.ts';

/** Help text of `fedmart segments` (printed by --help). */
export const SEGMENTS_USAGE = `fedmart segments --csv FILE --k K (--partition-by COL | --partners N) [options]

Customer segments by federated k-means: the CSV is split into partners, each
keeps its own rows; only per-segment counts and sums leave a partner in each
Lloyd iteration (with --secure-agg only their sum over partners is revealed).
Prints segment profiles in original units and the inertia of the federated
run beside centralized k-means from the same initial centroids.

  --csv FILE            CSV (or .jsonl) with a header row
  --sep CHAR            field separator (default: detected from the header)
  --k K                 number of segments (2 or more)
  --partition-by COL    group the values of COL into partners (non-IID), with --partners N (default 4)
  --partners N          without --partition-by: a seeded random split into N partners
  --label COL           optional binary column, never a clustering feature: gives each segment's positive rate
  --positive VALUE      with --label: the value that counts as positive (default: yes/1/true)
  --drop COLS           comma-separated columns that are not features (ids, leaky columns)
  --secure-agg          add up each iteration's sums with secure aggregation (3+ partners)
  --seed S              seed of the split and the initialization (default 1)
  --max-iter N          most Lloyd iterations (default 100)
  --tolerance T         stop when inertia improves by less than this fraction (default 1e-4)
  --min-group M         initialization: each group mean a partner sends covers >= M customers (default ${DEFAULT_MIN_GROUP_SIZE})
  --clip Z              standardised numeric values are clipped to ±Z before clustering (default ${DEFAULT_CLUSTER_CLIP})
  --assignments-dir DIR write DIR/partner-<i>.csv (row,segment) per partner: its own customers' segments
  --json                print one JSON object on stdout (progress goes to stderr)

Example:
  fedmart segments --csv bank-full.csv --sep ';' --label y --positive yes --drop duration \\
    --k 5 --partition-by job --partners 6 --secure-agg --json`;

/** Split row indices among partners: by a column's values, or at random (seeded). */
function splitRows(table: Table, opts: { partitionBy?: string; partners: number; seed: number; source: string }): { rows: number[][]; values: string[][] | null } {
  if (opts.partitionBy !== undefined) {
    const c = table.columns.indexOf(opts.partitionBy);
    if (c === -1) throw new FedmartError('DATA_ERROR', `segments: --partition-by column "${opts.partitionBy}" not found in ${opts.source}; columns are: ${table.columns.join(', ')}`);
    const part = partitionByColumn(table.rows.map((r) => r[c]!), opts.partners, opts.seed, { column: opts.partitionBy });
    const rows: number[][] = Array.from({ length: opts.partners }, () => []);
    part.assignment.forEach((p, i) => rows[p]!.push(i));
    return { rows, values: part.groups };
  }
  if (table.rows.length < opts.partners) throw new FedmartError('CONFIG_ERROR', `segments: --partners ${opts.partners} is more than the ${table.rows.length} rows of ${opts.source}`);
  const order = shuffleInPlace(Array.from({ length: table.rows.length }, (_, i) => i), createSeededRng(opts.seed));
  const rows: number[][] = Array.from({ length: opts.partners }, () => []);
  order.forEach((i, r) => rows[r % opts.partners]!.push(i));
  for (const r of rows) r.sort((a, b) => a - b);
  return { rows, values: null };
}

function pool(points: readonly Points[]): Points {
  const d = points[0]!.d;
  const n = points.reduce((a, p) => a + p.n, 0);
  const x = new Float32Array(n * d);
  let off = 0;
  for (const p of points) {
    x.set(p.x, off * d);
    off += p.n;
  }
  return { x, n, d };
}

function poolLabels(labels: readonly (Float32Array | undefined)[]): Float32Array | undefined {
  if (labels.some((l) => l === undefined)) return undefined;
  const out = new Float32Array(labels.reduce((a, l) => a + l!.length, 0));
  let off = 0;
  for (const l of labels) {
    out.set(l!, off);
    off += l!.length;
  }
  return out;
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

function formatValue(v: number | CategoryShare[]): string {
  if (typeof v === 'number') return v.toLocaleString('en-US', { maximumFractionDigits: 2 });
  return v.map((c) => `${c.value} ${pct(c.share)}`).join(', ');
}

function formatSegment(s: SegmentProfile, overall: SegmentProfile): string {
  const head = s.segment === 0 ? `all customers: ${s.size.toLocaleString('en-US')}` : `segment ${s.segment}: ${s.size.toLocaleString('en-US')} customers (${pct(s.share)})`;
  const lines = [head + (s.positiveRate === undefined ? '' : `, positive rate ${pct(s.positiveRate)}${s.segment === 0 ? '' : ` (all: ${pct(overall.positiveRate!)})`}`)];
  if (s.distinctive !== undefined && s.distinctive.length > 0) {
    const show = (v: number, share: boolean) => (share ? pct(v) : formatValue(v));
    lines.push('  stands out: ' + s.distinctive.map((c) => `${c.column}${c.value === undefined ? '' : `=${c.value}`} ${show(c.segment, c.value !== undefined)} (all ${show(c.overall, c.value !== undefined)})`).join(' · '));
  }
  const numeric = Object.entries(s.profile).filter(([, v]) => typeof v === 'number');
  if (numeric.length > 0) lines.push('  ' + numeric.map(([k, v]) => `${k} ${formatValue(v)}`).join(' · '));
  for (const [k, v] of Object.entries(s.profile)) if (typeof v !== 'number') lines.push(`  ${k}: ${formatValue(v)}`);
  return lines.join('\n');
}

/**
 * Run `fedmart segments`.
 * @param argv - flags after the command name
 * @returns exit code
 * @throws FedmartError CONFIG_ERROR / DATA_ERROR on bad flags or data (printed as one line by main)
 */
export async function segmentsCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('segments', argv, {
    csv: { type: 'string' }, sep: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, drop: { type: 'string' },
    k: { type: 'string' }, 'partition-by': { type: 'string' }, partners: { type: 'string' }, 'secure-agg': { type: 'boolean' },
    seed: { type: 'string' }, 'max-iter': { type: 'string' }, tolerance: { type: 'string' }, 'min-group': { type: 'string' },
    clip: { type: 'string' }, 'assignments-dir': { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(SEGMENTS_USAGE + '\n');
    return 0;
  }
  const csv = requireString('segments', values, 'csv', 'the CSV file of customers');
  if (values.k === undefined) throw new FedmartError('CONFIG_ERROR', 'segments: missing --k (the number of segments, 2 or more)');
  const k = intFlag('segments', values, 'k', 0, 2, 1_000_000);
  const partitionBy = values['partition-by'] as string | undefined;
  if (partitionBy === undefined && values.partners === undefined) {
    throw new FedmartError('CONFIG_ERROR', 'segments: say how customers are split into partners: --partition-by COL (grouped by a column) or --partners N (random split)');
  }
  const partners = intFlag('segments', values, 'partners', 4, 1, 1000);
  const secure = values['secure-agg'] === true;
  if (secure && partners < 3) throw new FedmartError('CONFIG_ERROR', `segments: --secure-agg needs at least 3 partners (the sum of 2 reveals each to the other), got --partners ${partners}`);
  const seed = intFlag('segments', values, 'seed', 1, 0, 2 ** 31 - 1);
  const maxIterations = intFlag('segments', values, 'max-iter', 100, 1, 100_000);
  const tolerance = numberFlag('segments', values, 'tolerance', 1e-4, 0, 1);
  const minGroupSize = intFlag('segments', values, 'min-group', DEFAULT_MIN_GROUP_SIZE, 1, 1_000_000);
  const clip = numberFlag('segments', values, 'clip', DEFAULT_CLUSTER_CLIP, 1e-6, 1e6);
  if (!(clip > 0)) throw new FedmartError('CONFIG_ERROR', `segments: --clip must be > 0, got "${String(values.clip)}"`);
  const label = values.label as string | undefined;
  const positive = values.positive as string | undefined;
  if (positive !== undefined && label === undefined) throw new FedmartError('CONFIG_ERROR', 'segments: --positive needs --label (the column whose value it is)');
  const sep = values.sep as string | undefined;
  const drop = typeof values.drop === 'string' ? values.drop.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const assignmentsDir = values['assignments-dir'] as string | undefined;

  const table = await readTableFile(csv, { flag: '--csv', ...(sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep }) });
  progress(`read ${table.rows.length} rows × ${table.columns.length} columns from ${csv}`);
  if (k > table.rows.length) throw new FedmartError('CONFIG_ERROR', `segments: --k ${k} is more than the ${table.rows.length} rows of ${csv}; choose fewer segments`);
  const split = splitRows(table, { ...(partitionBy === undefined ? {} : { partitionBy }), partners, seed, source: csv });
  const partnerTables = split.rows.map((idx) => selectRows(table, idx));
  const enc = encodeForClustering(table, partnerTables, { ...(label === undefined ? {} : { label }), ...(positive === undefined ? {} : { positive }), drop, clip, source: csv });
  progress(`${partners} partners (${partnerTables.map((t) => t.rows.length).join(', ')} rows), ${enc.features.length} features → ${enc.d} encoded columns`);

  const members = enc.partners.map((p, i) => new KMeansPartner(`partner-${i + 1}`, p.points, p.labels));
  const fed = runFederatedKMeans(members, {
    k,
    seed,
    maxIterations,
    tolerance,
    init: { minGroupSize },
    // maxRows: the total row count, public after the standardisation statistics.
    aggregation: secure ? { kind: 'secure', bounds: { maxRows: table.rows.length, columnBounds: enc.columnBounds, partners } } : { kind: 'plain' },
    onStep: (it, inertia) => {
      if (it % 10 === 0) progress(`federated iteration ${it}: inertia ${inertia.toFixed(1)}`);
    },
  });
  progress(`federated: ${fed.iterations} iterations, inertia ${fed.inertia.toFixed(1)}${secure ? `, ${fed.secureRounds} secure-aggregation rounds` : ''}`);
  const pooled = pool(enc.partners.map((p) => p.points));
  const labels = poolLabels(enc.partners.map((p) => p.labels));
  const central = runCentralizedKMeans(pooled, fed.initial, { k, maxIterations, tolerance, ...(labels === undefined ? {} : { labels }) });
  const plusPlus = runCentralizedKMeans(pooled, weightedKMeansPlusPlus(pooled, k, createSeededRng(seed)), { k, maxIterations, tolerance });
  progress(`centralized from the same start: ${central.iterations} iterations, inertia ${central.inertia.toFixed(1)}; centralized k-means++: ${plusPlus.inertia.toFixed(1)}`);

  const described = describeSegments(enc.features, fed.profile);
  const rank = new Int32Array(k);
  described.order.forEach((j, r) => (rank[j] = r + 1));
  const partnerReports = members.map((m, i) => {
    const counts = new Array<number>(k).fill(0);
    for (const j of fed.assignments[i]!) counts[rank[j]! - 1]!++;
    return { id: m.id, rows: m.rows, ...(split.values === null ? {} : { values: split.values[i]! }), initGroups: fed.initGroups[i]!, segmentSizes: counts };
  });
  if (assignmentsDir !== undefined) {
    for (let i = 0; i < members.length; i++) {
      const rows = split.rows[i]!.map((r, t) => [String(r + 1), String(rank[fed.assignments[i]![t]!]!)]);
      await writeCsv(path.join(assignmentsDir, `${members[i]!.id}.csv`), { columns: ['row', 'segment'], rows });
    }
    progress(`wrote each partner's assignments (row = data row of ${csv}, 1 = first after the header) to ${assignmentsDir}`);
  }
  const r6 = (v: number) => Math.round(v * 1e6) / 1e6;
  const gap = (fed.inertia - central.inertia) / central.inertia;
  const report = {
    k,
    rows: table.rows.length,
    features: enc.features.map((f) => f.name),
    encodedColumns: enc.d,
    secureAggregation: secure,
    seed,
    clip,
    partners: partnerReports,
    initialization: {
      method: 'each partner sends means of local k-means++ groups of >= minGroupSize customers; the coordinator runs weighted k-means++ and weighted Lloyd on them (k-FED, Dennis et al. 2021; Bahmani et al. 2012)',
      minGroupSize,
      groupsPerPartner: DEFAULT_INIT_GROUPS_PER_SEGMENT * k,
      groupsSent: fed.initGroups.reduce((a, v) => a + v, 0),
    },
    iterations: { federated: fed.iterations, centralized: central.iterations },
    converged: { federated: fed.converged, centralized: central.converged },
    segments: described.segments,
    overall: described.overall,
    inertia: {
      federated: r6(fed.inertia),
      centralized: r6(central.inertia),
      relativeGap: Number(gap.toPrecision(3)),
      centralizedKMeansPlusPlus: r6(plusPlus.inertia),
      units: `sum over customers of the squared distance to their segment's centroid, in encoded units (numeric columns standardised and clipped at ±${clip}, one-hot columns 0/1)`,
    },
    ...(secure ? { secureRounds: fed.secureRounds } : {}),
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return 0;
  }
  const out: string[] = [];
  out.push(`${k} segments of ${table.rows.length.toLocaleString('en-US')} customers across ${partners} partners (secure aggregation ${secure ? 'on' : 'off'})`);
  out.push(`inertia: federated ${fed.inertia.toFixed(1)}, centralized from the same start ${central.inertia.toFixed(1)} (gap ${(Math.abs(gap) < 5e-7 ? 0 : 100 * gap).toFixed(4)}%), centralized k-means++ ${plusPlus.inertia.toFixed(1)}`);
  out.push('');
  out.push(formatSegment(described.overall, described.overall));
  for (const s of described.segments) out.push('', formatSegment(s, described.overall));
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
