/**
 * `fedmart scenario pricing simulate` and `fedmart price` (issue 11): a
 * demand model estimated by exact federated least squares through the real
 * coordinator and agents (`runFederation`), beside the pooled (centralized
 * LSDV) estimate of the same specification and each partner's local-only
 * estimate.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { computeSigma } from '@fedmart/shared/dp/rdp';
import { analyticGaussianEpsilon, analyticGaussianSigma } from '@fedmart/shared/dp/analytic-gaussian';
import { elasticityErrorTerms } from '@fedmart/scenarios/pricing/dp-error';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import type { Table } from '@fedmart/shared/data/table';
import { demandRows, fitFromStats, flattenStats, pooledLsdv, productStats, regressorNames, statCount, unflattenStats, type DemandRow, type DemandSpec, type ProductFit } from '@fedmart/scenarios/pricing/demand';
import { partitionDemandRows } from '@fedmart/scenarios/pricing/partition';
import { pairCells, pairResidualSensitivity } from '@fedmart/scenarios/pricing/pairwise';
import { pricingTask, recordSensitivity, roundOneSensitivity, solveCommitted, solveTwoStage, stageNoiseMultiplier, sumNoiseStd as sumNoiseStdOf } from '@fedmart/scenarios/pricing/task';
import { flattenResidualStats, residualSensitivity, residualStats, ridgeSolve, twoStageSolve } from '@fedmart/scenarios/pricing/two-stage';
import { createSeededRandomSource, gaussianNoise } from '@fedmart/shared/dp/gaussian';
import { backtest } from '@fedmart/scenarios/pricing/policy';
import { LIMB_BOUND, LIMBS, pricingLayout, type PricingTaskSpec } from '@fedmart/scenarios/pricing/wire';
import { parseFlags, requireString, intFlag, numberFlag, progress } from './args.ts';
import { runFederation } from './federate.ts';

/**
 * Two-stage release (`--dp-stages 2`, the default), rules fixed before any measurement and never from the pooled answer:
 * k = 3 (a normal residual is clipped with probability 0.27 %), R_x = 1.5 in the public units (≥ √2: a row where deal and
 * feature both change is not clipped), w per product by `xtxWeightRule` (from round 1's noisy release), and the RDP budget
 * split 0.2 / 0.8: round 1 only centres round 2's clip (a one-step M-estimator from a consistent start depends on the
 * start only through the share of clipped residuals, Bickel 1975, JASA 70, "One-step Huber estimates in the linear
 * model"), while round 2's noise enters the elasticity directly.
 */
export const TWO_STAGE = { residualK: 3, xRadius: 1.5, budgetRound2: 0.8 };
/** Default public bound R on a demeaned row ‖(x̃, ỹ)‖₂ (log price, cross prices, controls, log units), `--dp-row-bound`. */
export const DEFAULT_ROW_BOUND = 1;
/**
 * Public unit of each column before the row bound (not read from the data): a demeaned row is divided by these, then
 * scaled onto the ball of radius R. Chosen from the spec: a weekly log price rarely moves by more than 0.6 from its
 * store-product mean, a 0/1 control by at most 1, log units by about 3 (a promotion spike). Smaller units mean less
 * noise but more clipping bias (measured in the README).
 */
const DP_SCALE = { logPrice: 0.6, control: 1, logUnits: 3 };

export const PRICING_SIMULATE_USAGE = `fedmart scenario pricing simulate --csv FILE (--quantity COL | --log-quantity COL) --price COL
    [--product COL] [--controls COLS] [--cross-prices COLS] [--fixed-effects COL]
    (--partition-by COL [--partners N] | --partners N) [--secure-agg]
    [--dp partner|record --epsilon E [--delta D] [--dp-row-bound R] [--dp-stages 2|1] [--dp-budget-round2 F] [--dp-cell-cap T]]
    [--threshold 2] [--time COL [--holdout 0.2] [--cost-share 0.6]] [--seed N] [--json]

Log-log demand per product (log units on log own price, log cross prices, controls, fixed
effects), estimated by exact federated least squares: each partner sends only its sufficient
statistics (its fixed effects partialled out inside the partner) in one FedAvg round of a real
coordinator; the coordinator side solves. Compared with the pooled OLS (dummy variables) and
each partner's local-only estimate.

  --partition-by COL   each value is a partner (with --partners N: values grouped into N);
                       a fixed-effect level may not span partners
  --partners N         alone: whole fixed-effect levels (or random rows) dealt to N partners
  --secure-agg         partners' statistics are summed under secure aggregation
  --dp partner|record  each partner adds Gaussian noise to its own statistics (sufficient-
                       statistics perturbation, Analyze Gauss): (ε, δ) record-level DP for
                       every row (a store-week-product) against the coordinator and the
                       other partners, at --epsilon (δ 1e-5), in two rounds (two releases
                       charged by the ledger; with --secure-agg each partner adds a 1/√P share);
                       with --dp-stages 1 the JSON's dpError splits the single release's error
                       into clipping bias and noise (dp-sweep, dp-two-stage: analyses)
  --dp-row-bound R     public bound on each demeaned row ‖(x, y)‖₂ (two stages with fixed effects:
                       on each within-cell difference of two rows); beyond it they are scaled onto
                       it (default ${DEFAULT_ROW_BOUND}; ${TWO_STAGE.xRadius} for the pairwise two-stage release)
  --dp-cell-cap T      two stages with fixed effects: public bound on rows per (product, fixed-effect
                       level) cell, e.g. the panel's number of periods (default: the largest cell of
                       the simulated data); a partner refuses a larger cell
  --dp-stages 2|1      2 (default): a second round releases residual-clipped statistics
                       around round 1's estimate (one Huber step; two releases charged); with
                       --fixed-effects both rounds use clipped differences of pairs of rows of a
                       cell (no cell mean, so no fixed-effect coupling in the sensitivity);
                       1: the single release
  --dp-budget-round2 F RDP budget share of round 2 (default ${TWO_STAGE.budgetRound2})
  --threshold T        |elasticity| ≥ T is class "high" (price-sensitive); default 2
  --time COL           backtest: fit on all but the last --holdout share of periods, then replay
                       the held-out periods under each policy (modelled margin, price volatility);
                       unit cost = --cost-share × the product's mean training price (an assumption)

e.g. fedmart scenario pricing simulate --csv "$(fedmart datasets fetch orangejuice)" --log-quantity logmove
       --price price --product brand --controls deal,feat --fixed-effects store --partners 6 --json`;

export interface PricingSimulateOptions {
  table: Table;
  spec: DemandSpec;
  partitionBy?: string | undefined;
  partners?: number | undefined;
  secureAgg?: boolean;
  /** Record-level DP, noise added by each partner to its own statistics (`--dp partner|record`). */
  dp?: { epsilon: number; delta: number; rowBound?: number | undefined; stages?: 1 | 2 | undefined; budgetRound2?: number | undefined; cellCap?: number | undefined } | undefined;
  threshold?: number;
  seed?: number;
  /** Backtest: the time column; its last `holdout` share of periods is held out (the model is fitted on the rest). */
  time?: string | undefined;
  holdout?: number;
  /** Backtest: unit cost as a share of the product's mean training price (the data carry no costs). */
  costShare?: number;
  onProgress?: (line: string) => void;
}

const r6 = (v: number): number => Number(v.toPrecision(10));

/** Public unit of each regressor (log prices, controls) and, last, of log units: the `RowClip.scale` of a DP release. */
function unitsOf(regressors: readonly string[], u: { logPrice: number; control: number; logUnits: number }): number[] {
  return [...regressors.map((name, j) => (j === 0 || name.startsWith('log_') ? u.logPrice : u.control)), u.logUnits];
}

/**
 * The DP error trade-off over a grid of public units (`fedmart scenario pricing dp-sweep`): for each choice, the worst
 * product's |clipping bias| + 3 × first-order noise std (dp-error.ts), with the noise of the release as run (each
 * partner adds σΔ₂, σ from the RDP accountant) and with both levers (one σΔ₂ split over the partners, σ from the analytic
 * Gaussian mechanism). It reads the pooled data, so it is an analysis of this panel, not a way for a real federation to
 * pick its units (that would look at everyone's rows).
 */
export function pricingDpSweep(o: { table: Table; spec: DemandSpec; partners: number; epsilon: number; delta: number; rowBound: number }) {
  const rows = demandRows(o.table, o.spec);
  const regressors = regressorNames(o.spec);
  const p = regressors.length;
  const fe = Boolean(o.spec.fixedEffects);
  const pooled = pooledLsdv(rows, p, fe);
  const delta2 = recordSensitivity(o.rowBound, fe);
  const rdp = computeSigma({ q: 1, steps: 1, delta: o.delta, epsilon: o.epsilon }).sigma;
  const analytic = analyticGaussianSigma(o.epsilon, o.delta);
  const settings = { asRun: rdp * delta2 * Math.sqrt(o.partners), bothLevers: analytic * delta2 };
  const grid: { units: { logPrice: number; control: number; logUnits: number }; asRun: number; bothLevers: number; worstBias: number }[] = [];
  for (const logPrice of [0.3, 0.45, 0.6, 0.8, 1, 1.3]) for (const control of [1, 2, 4]) for (const logUnits of [1.5, 2, 3, 4, 6, 8]) {
    const units = { logPrice, control, logUnits };
    const scale = unitsOf(regressors, units);
    const clipped = productStats(rows, p, fe, { radius: o.rowBound, scale });
    const point = { units, asRun: 0, bothLevers: 0, worstBias: 0 };
    for (const [k, c] of clipped) {
      const g = pooled.get(k)!;
      if ('error' in g) continue;
      for (const key of ['asRun', 'bothLevers'] as const) {
        const t = elasticityErrorTerms(c, p, g.elasticity, settings[key], scale);
        point[key] = Math.max(point[key], r6(Math.abs(t.clipBias) + 3 * t.noiseSd));
        point.worstBias = Math.max(point.worstBias, r6(Math.abs(t.clipBias)));
      }
    }
    grid.push(point);
  }
  const best = (key: 'asRun' | 'bothLevers') => [...grid].sort((a, b) => a[key] - b[key]).slice(0, 5);
  const current = grid.find((g) => g.units.logPrice === DP_SCALE.logPrice && g.units.control === DP_SCALE.control && g.units.logUnits === DP_SCALE.logUnits);
  return { scenario: 'pricing' as const, analysis: 'dp-sweep' as const, criterion: 'max over products of |clipping bias| + 3 × noise std (elasticity units)', rowBound: o.rowBound, sigma: { rdp, analytic }, sensitivity: delta2, partners: o.partners, points: grid.length, default: current, bestAsRun: best('asRun'), bestWithBothLevers: best('bothLevers') };
}


/**
 * The two-stage mechanism of `two-stage.ts` against the one-stage release, over `seeds` noise draws
 * (`fedmart scenario pricing dp-two-stage`). The partners' statistics are summed exactly (every fixed-effect cell lies
 * inside one partner, so the sum is the pooled within statistic) and the noise is drawn as the federation would add it:
 * each of the P partners adds σΔ (the sum's std σΔ√P), or, for comparison, one σΔ split into P shares under secure
 * aggregation (std σΔ; what the federation runs under --secure-agg, distributed-noise.ts). σ: the RDP accountant's for one release (one stage)
 * or two (two stages, both charged). The bounds follow fixed rules, not the pooled answer: round 1's units and R as
 * run; c = k·σ̂ with σ̂ the residual scale of round 1's noisy release; R_x a public bound in the same units. The pooled
 * estimate is read only to score the draws, so this is an analysis of a panel, like dp-sweep.
 */
export function pricingDpTwoStage(o: { table: Table; spec: DemandSpec; partners: number; epsilon: number; delta: number; rowBound: number; seeds: number; residualK: number; xRadius: number; xtxWeight: number; tolerance: number }) {
  const rows = demandRows(o.table, o.spec);
  const regressors = regressorNames(o.spec);
  const p = regressors.length;
  const fe = Boolean(o.spec.fixedEffects);
  const pooled = pooledLsdv(rows, p, fe);
  const scale = unitsOf(regressors, DP_SCALE);
  const xScale = scale.slice(0, p);
  const uy = scale[p]!;
  const products = [...pooled.keys()].filter((k) => !('error' in pooled.get(k)!));
  const round1 = productStats(rows, p, fe, { radius: o.rowBound, scale });
  const d1 = recordSensitivity(o.rowBound, fe);
  const d2 = residualSensitivity(o.xRadius, o.xtxWeight, fe);
  const sigma1 = computeSigma({ q: 1, steps: 1, delta: o.delta, epsilon: o.epsilon }).sigma;
  const sigma2 = computeSigma({ q: 1, steps: 2, delta: o.delta, epsilon: o.epsilon }).sigma;
  const tri = (p * (p + 1)) / 2;
  const noisy = (v: ArrayLike<number>, std: number, rng: ReturnType<typeof createSeededRandomSource>) => {
    const e = gaussianNoise(v.length, std, rng);
    return Float64Array.from(v, (x, i) => x + e[i]!);
  };
  /** Round 1 (the one-stage release): β₀ in data units and the residual scale σ̂, from the noisy sum. */
  const stage1 = (k: string, std: number, rng: ReturnType<typeof createSeededRandomSource>) => {
    const st = round1.get(k)!;
    const flat = flattenStats(st, p);
    const v = noisy(flat.subarray(0, tri + p + 2), std, rng); // XᵀX, Xᵀy, yᵀy, n (levels: public-size count, unused)
    const un = unflattenStats([...v, 0, 0, 0], p);
    const g = ridgeSolve(un.xtx, un.xty, p, std);
    if (!g) return null;
    let ssr = un.yty;
    for (let a = 0; a < p; a++) {
      ssr -= 2 * g[a]! * un.xty[a]!;
      for (let b = 0; b < p; b++) ssr += g[a]! * g[b]! * un.xtx[a * p + b]!;
    }
    return { beta0: Array.from(g, (x, j) => (x * uy) / xScale[j]!), sigmaHat: uy * Math.sqrt(Math.max(ssr, 1e-12) / Math.max(un.n, p + 1)) };
  };
  const mechanisms = [
    { name: 'one-stage, each partner adds σΔ (as run)', stages: 1, split: false },
    { name: 'two-stage, each partner adds σΔ', stages: 2, split: false },
    { name: 'two-stage, σΔ split into P shares (as --secure-agg runs it)', stages: 2, split: true },
    { name: 'one-stage, σΔ split into P shares (as --secure-agg --dp-stages 1 runs it)', stages: 1, split: true },
  ] as const;
  const out = [];
  for (const [mi, m] of mechanisms.entries()) {
    const sigma = m.stages === 1 ? sigma1 : sigma2;
    const share = m.split ? 1 : Math.sqrt(o.partners);
    const worst: number[] = [];
    const errs = new Map<string, number[]>(products.map((k) => [k, []]));
    for (let s = 1; s <= o.seeds; s++) {
      const seed = new Uint8Array(32);
      new DataView(seed.buffer).setUint32(0, s);
      seed[4] = mi; // the one-stage draws of two mechanisms do not share noise with the two-stage ones
      const rng = createSeededRandomSource(seed);
      let w = 0;
      for (const k of products) {
        const s1 = stage1(k, sigma * d1 * share, rng);
        let beta: number[] | null = s1?.beta0 ?? null;
        if (s1 && m.stages === 2) {
          const c = o.residualK * s1.sigmaHat;
          const st = residualStats(rows.filter((r) => r.product === k), p, fe, { beta0: new Map([[k, s1.beta0]]), residualClip: new Map([[k, c]]), scale: xScale, xRadius: o.xRadius, xtxWeight: o.xtxWeight }).get(k)!;
          const std = sigma * d2 * share;
          beta = twoStageSolve(noisy(flattenResidualStats(st, p, o.xtxWeight), std, rng), p, { beta0: s1.beta0, residualClip: c, scale: xScale, xtxWeight: o.xtxWeight, noiseStd: std });
        }
        const e = beta ? beta[0]! - (pooled.get(k) as ProductFit).elasticity : Number.POSITIVE_INFINITY;
        errs.get(k)!.push(e);
        w = Math.max(w, Math.abs(e));
      }
      worst.push(w);
    }
    const sorted = [...worst].sort((a, b) => a - b);
    const mean = (v: number[]) => v.reduce((t, x) => t + x, 0) / v.length;
    out.push({
      mechanism: m.name, sigma: r6(sigma), sensitivity: m.stages === 1 ? [r6(d1)] : [r6(d1), r6(d2)],
      withinTolerance: worst.filter((x) => x <= o.tolerance).length, seeds: o.seeds,
      maxAbsError: { min: r6(sorted[0]!), median: r6(sorted[Math.floor((sorted.length - 1) / 2)]!), max: r6(sorted[sorted.length - 1]!), mean: r6(mean(worst)) },
      byProduct: Object.fromEntries([...errs].map(([k, v]) => [k, { meanError: r6(mean(v)), sd: r6(Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)))) }])),
    });
  }
  return { scenario: 'pricing' as const, analysis: 'dp-two-stage' as const, epsilon: o.epsilon, delta: o.delta, partners: o.partners, tolerance: o.tolerance, rules: { rowBound: o.rowBound, units: scale, residualClip: `${o.residualK} × σ̂ (round 1)`, xRadius: o.xRadius, xtxWeight: o.xtxWeight }, mechanisms: out };
}


/**
 * Run the pricing simulation.
 * @returns the JSON object the CLI prints
 * @throws FedmartError on bad columns, partitions or a federation that does not commit
 */
export async function simulatePricing(o: PricingSimulateOptions) {
  const started = Date.now();
  const say = o.onProgress ?? (() => {});
  const all = demandRows(o.table, o.spec);
  let rows = all;
  let heldOut: DemandRow[] = [];
  let timeOf: ((r: DemandRow) => number) | null = null;
  if (o.time) {
    const tj = o.table.columns.indexOf(o.time);
    if (tj < 0) throw new FedmartError('DATA_ERROR', `--time ${o.time}: the CSV has no column "${o.time}"`);
    timeOf = (r) => Number(o.table.rows[r.index]![tj]);
    const periods = [...new Set(all.map(timeOf))].sort((a, b) => a - b);
    if (periods.some((t) => !Number.isFinite(t))) throw new FedmartError('DATA_ERROR', `--time ${o.time}: the column must be numeric (a week or day number)`);
    const cut = periods[Math.floor(periods.length * (1 - (o.holdout ?? 0.2)))]!;
    rows = all.filter((r) => timeOf!(r) < cut);
    heldOut = all.filter((r) => timeOf!(r) >= cut);
    say(`backtest: fitting on ${o.time} < ${cut} (${rows.length} rows), holding out ${heldOut.length} rows`);
  }
  const regressors = regressorNames(o.spec);
  const p = regressors.length;
  const fe = Boolean(o.spec.fixedEffects);
  const keys = o.partitionBy ? (() => {
    const j = o.table.columns.indexOf(o.partitionBy!);
    if (j < 0) throw new FedmartError('DATA_ERROR', `--partition-by ${o.partitionBy}: the CSV has no column "${o.partitionBy}"`);
    return rows.map((r) => o.table.rows[r.index]![j]!);
  })() : null;
  const parts = partitionDemandRows(rows, keys, o.partners ?? null, o.seed ?? 42, o.partitionBy, fe);
  const products = [...new Set(rows.map((r) => r.product))].sort((a, b) => (Number.isFinite(Number(a)) && Number.isFinite(Number(b)) ? Number(a) - Number(b) : a < b ? -1 : 1));
  const stages = o.dp ? (o.dp.stages ?? 2) : 1;
  // Two stages with fixed effects: both releases on within-cell pairs (pairwise.ts; no fixed-effect coupling). The cell
  // cap T is a public design bound (a weekly panel: its number of weeks); the simulation defaults it to the largest cell.
  const pairs = o.dp && stages === 2 && fe ? { cellCap: o.dp.cellCap ?? Math.max(2, ...[...pairCells(rows, Number.MAX_SAFE_INTEGER).values()].map((c) => c.length)) } : undefined;
  // Every partner refuses a cell beyond the cap (pairwise.ts); the simulation holds all partners' rows, so say it before starting.
  if (pairs) for (const q of parts) pairCells(q.rows, pairs.cellCap);
  say(`${rows.length} rows, ${products.length} products, regressors ${regressors.join(', ')}; partners ${parts.map((q) => `${q.id}=${q.rows.length}`).join(', ')}`);

  let dpScale: number | undefined;
  let dpConfig: FederationConfigInput['dp'];
  let sensitivity = 0;
  let rowScale: number[] | undefined;
  // R ≥ √2 on pairs, as R_x: a pair whose deal and feature both differ is not clipped in x alone.
  const rowBound = o.dp?.rowBound ?? (pairs ? TWO_STAGE.xRadius : DEFAULT_ROW_BOUND);
  const nMaxRows = Math.max(...parts.map((q) => q.rows.length));
  const twoStage = o.dp && stages === 2 ? {
    residualK: TWO_STAGE.residualK, xRadius: TWO_STAGE.xRadius, budget: [1 - (o.dp.budgetRound2 ?? TWO_STAGE.budgetRound2), o.dp.budgetRound2 ?? TWO_STAGE.budgetRound2] as [number, number], partners: parts.length,
    // a partner's round-2 block has norm ≤ n·√(w²R_x⁴ + R_x²) ≤ n·√(R_x⁴ + R_x²) (w ≤ 1), so coordinates stay ≤ 1
    // (on pairs: ≤ Σ_cells n_c(n_c − 1)/(2T)·√(…) < n·√(…) too, as n_c ≤ T)
    dpScale2: Math.ceil(nMaxRows * Math.sqrt(TWO_STAGE.xRadius ** 4 + TWO_STAGE.xRadius ** 2)),
    ...(pairs ? { pairs } : {}),
  } : undefined;
  if (o.dp) {
    // Record-level DP by sufficient-statistics perturbation at each partner (task.ts, recordSensitivity): one Gaussian
    // release of σ·Δ₂ per partner, q = 1, one step, which is what the ledger charges for sampleRate 1, batch 1, 1 epoch.
    sensitivity = roundOneSensitivity({ rowBound, fixedEffects: fe, twoStage });
    const delta = o.dp.delta;
    // Two stages: two Gaussian releases, charged as two steps at q = 1 (task.ts, stageNoiseMultiplier).
    const { sigma } = computeSigma({ q: 1, steps: stages, delta, epsilon: o.dp.epsilon });
    // Public scale of the wire: a partner's statistics have norm ≤ nMax·√(R⁴ + 2) per product, so coordinates stay ≤ 1.
    const nMax = Math.max(...parts.map((q) => q.rows.length));
    dpScale = nMax * Math.sqrt(rowBound ** 4 + 2);
    dpConfig = { level: 'record', noiseMultiplier: sigma, clip: sensitivity, sampleRate: 1, delta };
    rowScale = unitsOf(regressors, DP_SCALE);
  }
  // Under --secure-agg the noise is distributed: each of the P = minClients partners adds a 1/√P share, and only the
  // secure sum (which the coordinator commits only with all minClients partners) carries the full σΔ₂ the ledger charges.
  const noiseShares = o.dp && o.secureAgg ? parts.length : undefined;
  const taskSpec: PricingTaskSpec = { products, regressors, fixedEffects: fe, encoding: o.dp ? 'dp' : 'exact', ...(o.dp ? { dpScale, rowBound, rowScale } : {}), ...(noiseShares ? { noiseShares, secureSum: true } : {}), ...(twoStage ? { twoStage } : {}) };
  // DP: the largest per-coordinate noise std of any release, in wire units (bounds the update norm and the SecAgg clip).
  const wireNoise = !o.dp ? 0 : !twoStage ? (dpConfig!.noiseMultiplier * sensitivity) / dpScale! : Math.max(
    (stageNoiseMultiplier(dpConfig!.noiseMultiplier, twoStage, 0) * sensitivity) / dpScale!,
    (stageNoiseMultiplier(dpConfig!.noiseMultiplier, twoStage, 1) * (pairs ? pairResidualSensitivity(twoStage.xRadius, 1) : 3 * Math.sqrt(twoStage.xRadius ** 4 + twoStage.xRadius ** 2))) / twoStage.dpScale2);
  const layout = pricingLayout(taskSpec);
  const coords = products.length * statCount(p) * (o.dp ? 1 : LIMBS) + 1;
  const config: FederationConfigInput = {
    task: 'pricing',
    model: layout,
    taskSpec,
    localTrain: { localEpochs: 1, batchSize: 1, learningRate: 1, proximalMu: 0 },
    minClients: parts.length,
    seed: o.seed ?? 42,
    // Exact mode: the update is a vector of limbs |L| ≤ 2048, so its norm is at most 2048·√coords by construction.
    // DP: ≤ 1 per product from the statistics plus the noise, σΔ₂/dpScale per coordinate (8 std is never exceeded in practice).
    limits: { maxUpdateNorm: o.dp ? Math.sqrt(products.length) * (1 + 8 * wireNoise * Math.sqrt(statCount(p))) : LIMB_BOUND * Math.sqrt(coords) * 1.0001, maxExamplesPerPartner: 10_000_000, medianNormFactor: 3, onLargeUpdate: 'reject' },
    ...(o.secureAgg ? { secureAggregation: { clip: o.dp ? 1 + 8 * wireNoise : LIMB_BOUND, bits: 32 } } : {}),
    ...(dpConfig ? { dp: dpConfig } : {}),
  };
  const fed = await runFederation({ config, partners: parts.map((q) => ({ id: q.id, task: pricingTask(q.rows, q.rows) })), rounds: stages, seed: o.seed ?? 42, waitForAllPartners: true, onProgress: say });
  const committedRounds = fed.outcomes.filter((x) => x.phase === 'committed');
  if (committedRounds.length < stages) throw new FedmartError('UNAVAILABLE', `pricing: ${committedRounds.length} of the ${stages} rounds of the two-stage DP release committed; nothing is solved`);
  const participants = Math.min(...committedRounds.map((x) => x.participants.length));
  if (noiseShares && participants < noiseShares) throw new FedmartError('UNAVAILABLE', `pricing: a round committed ${participants} of ${noiseShares} noise shares; the sum carries less noise than charged, so it is not solved`);
  if (twoStage && participants !== twoStage.partners) throw new FedmartError('UNAVAILABLE', `pricing: a round of the two-stage release committed ${participants} of ${twoStage.partners} partners; round 2 was planned on all of them, so it is not solved`);
  const solved = twoStage ? solveTwoStage(layout, taskSpec, fed.weights, dpConfig!.noiseMultiplier) : solveCommitted(layout, fed.weights, participants, o.dp ? dpConfig!.noiseMultiplier * sensitivity : 0, rowScale, noiseShares);
  const pooled = pooledLsdv(rows, p, fe);

  const threshold = o.threshold ?? 2;
  const federated = { elasticity: {} as Record<string, number | null>, se: {} as Record<string, number | null>, r2: {} as Record<string, number | null>, class: {} as Record<string, string | null>, errors: {} as Record<string, string> };
  for (const k of products) {
    const f = solved.get(k);
    if (!f || 'error' in f) { federated.elasticity[k] = federated.se[k] = federated.r2[k] = federated.class[k] = null; federated.errors[k] = f && 'error' in f ? f.error : 'no statistics'; continue; }
    federated.elasticity[k] = r6(f.elasticity);
    federated.se[k] = r6(f.se);
    federated.r2[k] = r6(f.r2);
    federated.class[k] = Math.abs(f.elasticity) >= threshold ? 'high' : 'low';
  }
  const pooledOut = { elasticity: {} as Record<string, number | null>, se: {} as Record<string, number | null>, r2: {} as Record<string, number | null> };
  for (const k of products) {
    const f = pooled.get(k)!;
    if ('error' in f) { pooledOut.elasticity[k] = pooledOut.se[k] = pooledOut.r2[k] = null; continue; }
    pooledOut.elasticity[k] = r6(f.elasticity);
    pooledOut.se[k] = r6(f.se);
    pooledOut.r2[k] = r6(f.r2);
  }
  const localOnly: Record<string, { mean: number; min: number; max: number; partners: number }> = {};
  for (const k of products) {
    const es: number[] = [];
    for (const q of parts) {
      const st = productStats(q.rows.filter((r) => r.product === k), p, fe).get(k);
      if (!st) continue;
      try { es.push(fitFromStats(st, p, k, fe).elasticity); } catch { /* too few rows or a constant regressor at this partner */ }
    }
    if (es.length) localOnly[k] = { mean: r6(es.reduce((s, v) => s + v, 0) / es.length), min: r6(Math.min(...es)), max: r6(Math.max(...es)), partners: es.length };
  }
  let maxAbsDiff = 0;
  for (const k of products) {
    const f = solved.get(k);
    const g = pooled.get(k)!;
    if (f && !('error' in f) && !('error' in g)) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(f.elasticity - g.elasticity));
  }
  let backtestOut: Record<string, ReturnType<typeof backtest>> | undefined;
  if (timeOf && heldOut.length) {
    backtestOut = {};
    for (const k of products) {
      const f = solved.get(k);
      if (!f || 'error' in f) continue;
      const train = rows.filter((r) => r.product === k);
      const cost = (o.costShare ?? 0.6) * (train.reduce((t, r) => t + r.price, 0) / train.length);
      const byT = new Map<number, { p: number; q: number; n: number }>();
      for (const r of heldOut) {
        if (r.product !== k) continue;
        const t = timeOf(r);
        const c = byT.get(t) ?? byT.set(t, { p: 0, q: 0, n: 0 }).get(t)!;
        c.p += r.price; c.q += Math.exp(r.y); c.n++;
      }
      const periods = [...byT.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => ({ price: c.p / c.n, units: c.q }));
      if (periods.length > 1) backtestOut[k] = backtest(periods, f.elasticity, cost, { threshold });
    }
  }
  // DP: where the error comes from (clipping bias vs noise on XᵀX / Xᵀy), from the noiseless clipped statistics (dp-error.ts).
  let dpError: { byProduct: Record<string, ReturnType<typeof elasticityErrorTerms>>; maxAbsClipBias: number; maxNoiseSd: number; maxNoiseSdIf: { distributedNoise: number; analyticSigma: number; both: number } } | undefined;
  if (o.dp && !twoStage) {
    const clippedAll = productStats(rows, p, fe, { radius: rowBound, scale: rowScale! });
    const sumNoise = sumNoiseStdOf(dpConfig!.noiseMultiplier * sensitivity, parts.length, noiseShares); // as run: σΔ₂ at each partner, or shares
    const byProduct: Record<string, ReturnType<typeof elasticityErrorTerms>> = {};
    for (const k of products) {
      const g = pooled.get(k)!;
      const c = clippedAll.get(k);
      if ('error' in g || !c) continue;
      try {
        const t = elasticityErrorTerms(c, p, g.elasticity, sumNoise, rowScale!);
        byProduct[k] = { clipBias: r6(t.clipBias), noiseSd: r6(t.noiseSd), noiseSdFromXtx: r6(t.noiseSdFromXtx), noiseSdFromXty: r6(t.noiseSdFromXty) };
      } catch { /* singular clipped statistics: reported by the solve */ }
    }
    const terms = Object.values(byProduct);
    const maxNoise = Math.max(...terms.map((t) => t.noiseSd));
    const analytic = analyticGaussianSigma(o.dp.epsilon, o.dp.delta);
    dpError = {
      byProduct,
      maxAbsClipBias: Math.max(...terms.map((t) => Math.abs(t.clipBias))),
      maxNoiseSd: maxNoise,
      // The same release with the noise split over the P partners (needs secure aggregation), or calibrated by the analytic Gaussian mechanism.
      maxNoiseSdIf: { distributedNoise: r6(noiseShares ? maxNoise : maxNoise / Math.sqrt(parts.length)), analyticSigma: r6((maxNoise * analytic) / dpConfig!.noiseMultiplier), both: r6((maxNoise * analytic) / dpConfig!.noiseMultiplier / Math.sqrt(parts.length)) },
    };
  }
  const privacy = fed.privacy ? fed.privacy.totals.filter((t) => t.scope === 'federation').map((t) => ({ level: t.level, epsilon: t.epsilon, delta: t.delta })) : undefined;
  return {
    scenario: 'pricing' as const,
    partners: parts.map((q) => ({ id: q.id, rows: q.rows.length })),
    specification: { regressors, fixedEffects: o.spec.fixedEffects ?? null, products: products.length, rows: rows.length, threshold },
    federated: { ...federated, errors: Object.keys(federated.errors).length ? federated.errors : undefined },
    pooled: pooledOut,
    localOnly: { elasticity: localOnly },
    comparison: { maxAbsElasticityDiff: maxAbsDiff },
    protection: { secureAggregation: Boolean(o.secureAgg), dp: o.dp ? {
      level: 'record' as const, mechanism: twoStage ? `two-stage: sufficient-statistics perturbation (Analyze Gauss), then residual-clipped statistics (one Huber step) in a second round${pairs ? ', both on clipped differences of pairs of rows inside each fixed-effect cell (no cell mean, so no fixed-effect coupling)' : ''}` : 'sufficient-statistics perturbation (Analyze Gauss)', record: 'one row', stages,
      ...(pairs ? { cellCap: pairs.cellCap } : {}),
      ...(twoStage ? { twoStage: {
        residualK: twoStage.residualK, xRadius: twoStage.xRadius, budget: twoStage.budget,
        noiseMultiplierPerRelease: [r6(stageNoiseMultiplier(dpConfig!.noiseMultiplier, twoStage, 0)), r6(stageNoiseMultiplier(dpConfig!.noiseMultiplier, twoStage, 1))],
        byProduct: Object.fromEntries([...solved].filter(([, f]) => !('error' in f)).map(([k, f]) => { const pl = (f as unknown as { plan: { xtxWeight: number; residualClip: number; sensitivity: number; stepNorm: number } }).plan; return [k, { xtxWeight: r6(pl.xtxWeight), residualClip: r6(pl.residualClip), sensitivity: r6(pl.sensitivity), predictedStep: r6(pl.stepNorm) }]; })),
      } } : {}),
      ...(noiseShares ? {
        noiseAddedBy: `each partner adds a 1/√${noiseShares} share (distributed Gaussian inside the secure sum)`, noiseShares,
        protects: `each row of every partner, at the ledger's ε, against the coordinator and every reader of the model, who see only the secure sum (noise σΔ₂), as long as secure aggregation holds (no coalition of the coordinator with enough partners to unmask an update); against a coalition of other partners that subtracts its own statistics and shares from the sum, a row is covered by the honest partners' shares only (σΔ₂·√(h/${noiseShares}) for h honest partners, so no more than its own share if all others collude); not a whole partner (see README)`,
      } : {
        noiseAddedBy: 'each partner',
        protects: 'each row (one observation of the CSV) of every partner, against the coordinator, the other partners and every reader of the model; not a whole partner (see README)',
      }),
      caveat: pairs
        ? `the sensitivity bound holds for every row of a panel with at most ${pairs.cellCap} rows per (product, fixed-effect level) cell (the public cell cap); a partner with a larger cell refuses before releasing anything, which reveals only that its data are outside that domain`
        : `the sensitivity bound holds for rows whose demeaned values lie within the row bound ${rowBound} (in the public column units) of their fixed-effect cell's mean; an outlier's pull on its cell mean is not bounded`,
      epsilon: privacy?.[0]?.epsilon ?? null, epsilonAccountant: 'rdp (the ledger)', // Two Gaussian releases of normalised σ₁, σ₂ compose exactly to one Gaussian of 1/σ² = 1/σ₁² + 1/σ₂² = stages/σ_ledger²
      // (Gaussian differential privacy, Dong, Roth & Su 2019/2022, JRSS-B, Cor. 3.3), so the tight ε is that Gaussian's.
      epsilonTight: r6(analyticGaussianEpsilon(dpConfig!.noiseMultiplier / Math.sqrt(stages), o.dp.delta)), delta: o.dp.delta,
      noiseMultiplier: dpConfig!.noiseMultiplier, rowBound, rowScale, sensitivity, noiseStd: dpConfig!.noiseMultiplier * sensitivity, noiseStdPerPartner: dpConfig!.noiseMultiplier * sensitivity / Math.sqrt(noiseShares ?? 1), noiseStdOfSum: sumNoiseStdOf(dpConfig!.noiseMultiplier * sensitivity, parts.length, noiseShares),
    } : null },
    ...(dpError ? { dpError } : {}),
    ...(backtestOut ? { backtest: { costShare: o.costShare ?? 0.6, heldOutRows: heldOut.length, byProduct: backtestOut, total: (['observed', 'margin-optimal', 'cost-plus'] as const).map((pol) => ({ policy: pol, margin: Object.values(backtestOut!).reduce((t, b) => t + b[pol].margin, 0), volatility: Object.values(backtestOut!).reduce((t, b) => t + b[pol].volatility, 0) / Math.max(1, Object.keys(backtestOut!).length) })) } } : {}),
    modelVersion: fed.outcomes.find((x) => x.phase === 'committed')!.modelVersion,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

const list = (v: unknown): string[] => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

/** `fedmart scenario pricing simulate …`. */
export async function pricingSimulateCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('scenario pricing simulate', argv, {
    csv: { type: 'string' }, sep: { type: 'string' }, quantity: { type: 'string' }, 'log-quantity': { type: 'string' }, price: { type: 'string' },
    product: { type: 'string' }, controls: { type: 'string' }, 'cross-prices': { type: 'string' }, 'fixed-effects': { type: 'string' },
    'partition-by': { type: 'string' }, partners: { type: 'string' }, 'secure-agg': { type: 'boolean' }, dp: { type: 'string' },
    epsilon: { type: 'string' }, delta: { type: 'string' }, 'dp-row-bound': { type: 'string' }, 'dp-stages': { type: 'string' }, 'dp-budget-round2': { type: 'string' }, 'dp-cell-cap': { type: 'string' }, time: { type: 'string' }, holdout: { type: 'string' }, 'cost-share': { type: 'string' }, threshold: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) { process.stdout.write(PRICING_SIMULATE_USAGE + '\n'); return 0; }
  const cmd = 'scenario pricing simulate';
  if (values['partition-by'] === undefined && values.partners === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: give --partition-by COL (each value a partner) or --partners N`);
  const partners = values.partners === undefined ? undefined : intFlag(cmd, values, 'partners', 2, 2, 1000);
  if (values.dp !== undefined && values.dp !== 'partner' && values.dp !== 'record') throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp must be "partner" or "record" (both: noise added at each partner, record-level guarantee), got "${String(values.dp)}"`);
  if (values.dp === undefined && (values.epsilon !== undefined || values['dp-row-bound'] !== undefined || values['dp-stages'] !== undefined || values['dp-budget-round2'] !== undefined || values['dp-cell-cap'] !== undefined)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --epsilon, --dp-row-bound, --dp-stages, --dp-budget-round2 and --dp-cell-cap need --dp partner`);
  if (values['dp-stages'] === '1' && values['dp-budget-round2'] !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp-budget-round2 splits the budget of the two-stage release; drop it or use --dp-stages 2`);
  const dp = values.dp ? { epsilon: numberFlag(cmd, values, 'epsilon', Number.NaN, 0.01, 100), delta: numberFlag(cmd, values, 'delta', 1e-5, 1e-12, 0.1), rowBound: values['dp-row-bound'] === undefined ? undefined : numberFlag(cmd, values, 'dp-row-bound', DEFAULT_ROW_BOUND, 0.01, 1000), stages: intFlag(cmd, values, 'dp-stages', 2, 1, 2) as 1 | 2, budgetRound2: numberFlag(cmd, values, 'dp-budget-round2', TWO_STAGE.budgetRound2, 0.01, 0.99), cellCap: values['dp-cell-cap'] === undefined ? undefined : intFlag(cmd, values, 'dp-cell-cap', 2, 2, 1_000_000) } : undefined;
  if (dp && !Number.isFinite(dp.epsilon)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp ${String(values.dp)} needs --epsilon E`);
  const { table, spec } = await readDemandInput(cmd, values);
  const out = await simulatePricing({ table, spec, partitionBy: values['partition-by'] as string | undefined, partners, secureAgg: values['secure-agg'] === true, dp, threshold: numberFlag(cmd, values, 'threshold', 2, 0, 100), time: values.time as string | undefined, holdout: numberFlag(cmd, values, 'holdout', 0.2, 0.05, 0.5), costShare: numberFlag(cmd, values, 'cost-share', 0.6, 0, 0.99), seed: intFlag(cmd, values, 'seed', 42, 0, 2 ** 31 - 1), onProgress: progress });
  process.stdout.write(values.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
  return 0;
}

/** `fedmart scenario pricing dp-sweep --csv FILE (data flags as simulate) [--partners 6] [--epsilon 4] [--delta 1e-5] [--dp-row-bound 1] [--json]`. */
export async function pricingDpSweepCommand(argv: string[]): Promise<number> {
  const cmd = 'scenario pricing dp-sweep';
  const { values } = parseFlags(cmd, argv, {
    csv: { type: 'string' }, sep: { type: 'string' }, quantity: { type: 'string' }, 'log-quantity': { type: 'string' }, price: { type: 'string' },
    product: { type: 'string' }, controls: { type: 'string' }, 'cross-prices': { type: 'string' }, 'fixed-effects': { type: 'string' },
    partners: { type: 'string' }, epsilon: { type: 'string' }, delta: { type: 'string' }, 'dp-row-bound': { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) { process.stdout.write(`fedmart ${cmd} --csv FILE (--quantity COL | --log-quantity COL) --price COL [--product COL] [--controls COLS]\n    [--cross-prices COLS] [--fixed-effects COL] [--partners 6] [--epsilon 4] [--delta 1e-5] [--dp-row-bound 1] [--json]\n\nThe DP error trade-off of --dp partner over a grid of public column units, from the pooled data (analysis only).\n`); return 0; }
  const { table, spec } = await readDemandInput(cmd, values);
  const out = pricingDpSweep({ table, spec, partners: intFlag(cmd, values, 'partners', 6, 2, 1000), epsilon: numberFlag(cmd, values, 'epsilon', 4, 0.01, 100), delta: numberFlag(cmd, values, 'delta', 1e-5, 1e-12, 0.1), rowBound: numberFlag(cmd, values, 'dp-row-bound', DEFAULT_ROW_BOUND, 0.01, 1000) });
  process.stdout.write(values.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
  return 0;
}

/** `fedmart scenario pricing dp-two-stage --csv FILE (data flags as simulate) [--partners 6] [--epsilon 4] [--seeds 20] [--residual-clip 3] [--x-bound 1.5] [--xtx-weight 1] [--json]`. */
export async function pricingDpTwoStageCommand(argv: string[]): Promise<number> {
  const cmd = 'scenario pricing dp-two-stage';
  const { values } = parseFlags(cmd, argv, {
    csv: { type: 'string' }, sep: { type: 'string' }, quantity: { type: 'string' }, 'log-quantity': { type: 'string' }, price: { type: 'string' },
    product: { type: 'string' }, controls: { type: 'string' }, 'cross-prices': { type: 'string' }, 'fixed-effects': { type: 'string' },
    partners: { type: 'string' }, epsilon: { type: 'string' }, delta: { type: 'string' }, 'dp-row-bound': { type: 'string' }, seeds: { type: 'string' },
    'residual-clip': { type: 'string' }, 'x-bound': { type: 'string' }, 'xtx-weight': { type: 'string' }, tolerance: { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) { process.stdout.write(`fedmart ${cmd} --csv FILE (--quantity COL | --log-quantity COL) --price COL [--product COL] [--controls COLS]\n    [--cross-prices COLS] [--fixed-effects COL] [--partners 6] [--epsilon 4] [--delta 1e-5] [--dp-row-bound 1] [--seeds 20]\n    [--residual-clip K (3: c = K·σ̂ of round 1)] [--x-bound R_x (1.5)] [--xtx-weight w (1)] [--tolerance 0.15] [--json]\n\nThe one-stage DP release against the two-stage residual-clipped one (scenarios/src/pricing/two-stage.ts), over seeded noise\ndraws on the exact pooled statistics; counts the draws whose every elasticity is within the tolerance of the pooled one (analysis only).\n`); return 0; }
  const { table, spec } = await readDemandInput(cmd, values);
  const out = pricingDpTwoStage({
    table, spec, partners: intFlag(cmd, values, 'partners', 6, 2, 1000), epsilon: numberFlag(cmd, values, 'epsilon', 4, 0.01, 100), delta: numberFlag(cmd, values, 'delta', 1e-5, 1e-12, 0.1),
    rowBound: numberFlag(cmd, values, 'dp-row-bound', DEFAULT_ROW_BOUND, 0.01, 1000), seeds: intFlag(cmd, values, 'seeds', 20, 1, 10_000), residualK: numberFlag(cmd, values, 'residual-clip', 3, 0.1, 100),
    xRadius: numberFlag(cmd, values, 'x-bound', 1.5, 0.01, 1000), xtxWeight: numberFlag(cmd, values, 'xtx-weight', 1, 0.001, 1000), tolerance: numberFlag(cmd, values, 'tolerance', 0.15, 0, 100),
  });
  process.stdout.write(values.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
  return 0;
}

/** The CSV and demand specification flags shared by simulate and dp-sweep. */
async function readDemandInput(cmd: string, values: Record<string, unknown>): Promise<{ table: Table; spec: DemandSpec }> {
  const csv = requireString(cmd, values, 'csv', 'the price/quantity CSV');
  const price = requireString(cmd, values, 'price', 'the own-price column');
  if ((values.quantity === undefined) === (values['log-quantity'] === undefined)) throw new FedmartError('CONFIG_ERROR', `${cmd}: give exactly one of --quantity COL (units) or --log-quantity COL (log units)`);
  const sep = values.sep as string | undefined;
  const table = await readTableFile(csv, { flag: '--csv', ...(sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep }) });
  const spec: DemandSpec = {
    quantity: values.quantity as string | undefined, logQuantity: values['log-quantity'] as string | undefined, price,
    product: values.product as string | undefined, controls: list(values.controls), crossPrices: list(values['cross-prices']), fixedEffects: values['fixed-effects'] as string | undefined,
  };
  return { table, spec };
}

/** `fedmart scenario <name> …`. */
export async function scenarioCommand(argv: string[]): Promise<number> {
  const [name, verb, ...rest] = argv;
  if (name === 'pricing' && verb === 'simulate') return pricingSimulateCommand(rest);
  if (name === 'pricing' && verb === 'dp-sweep') return pricingDpSweepCommand(rest);
  if (name === 'pricing' && verb === 'dp-two-stage') return pricingDpTwoStageCommand(rest);
  throw new FedmartError('CONFIG_ERROR', `scenario: usage is "fedmart scenario pricing simulate …" "fedmart scenario pricing dp-sweep …" or "fedmart scenario pricing dp-two-stage …" (got "${[name, verb].filter(Boolean).join(' ')}"); run "fedmart scenario pricing simulate --help"`);
}

export type { DemandRow, ProductFit };
