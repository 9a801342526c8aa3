/**
 * `fedmart scenario recommendation simulate --dp record` with the item-Gram
 * release (`--dp-model gram`, the default under --dp): the brands' two
 * Gaussian releases (item counts, then the co-occurrence Gram over the N
 * items of largest released count; `scenarios/src/recommendation/dp-gram.ts`)
 * run as two rounds of a real federation (coordinator, agents, the task
 * seam, secure aggregation when asked), the coordinator's RDP ledger charges
 * them (two steps at σ, q = 1), and the item model (EASE) is computed from
 * the committed releases by post-processing (rank-k PSD part of the Gram);
 * each brand scores its own customers from their histories.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { GRAM_SENSITIVITY, gramLayout, gramScores, type GramDpSpec, type GramModel } from '@fedmart/scenarios/recommendation/dp-gram';
import { brandNoiseStd, gramDpTask, gramModelOf } from '@fedmart/scenarios/recommendation/gram-task';
import { RECOMMENDATION_TASK } from '@fedmart/scenarios/recommendation/task';
import { fullRank } from '@fedmart/scenarios/recommendation/local';
import { RankingAccumulator, type RankingMetrics } from '@fedmart/scenarios/recommendation/metrics';
import type { PreparedScenario } from '@fedmart/scenarios/recommendation/scenario';
import { intFlag } from './args.ts';
import { runFederation } from './federate.ts';
import { calibrateSimulationDp, simulationPrivacy } from './privacy.ts';
import type { SimulationProtection } from './protection-flags.ts';

/**
 * Defaults of the release (chosen on MovieLens VALIDATION HR@10, seed 42; README): N items in the Gram, the rank of
 * the item factors, the count release's RDP budget share.
 */
export const GRAM_DP_DEFAULTS = Object.freeze({ top: 3000, rank: 12, countBudget: 0.1 });

/**
 * The default rank for a private set of N items: GRAM_DP_DEFAULTS.rank, but at most max(1, ⌊N/20⌋). Near N the
 * projection V Vᵀ approaches the identity, so an unseen item's score V_j·Vᵀ1_h tends to 0 and ranking is random or
 * worse. Validation HR@10 (second-to-last item): bayesm's Scotch survey, 21 brands, secure sum, 3 draws — rank 1
 * 0.905, 2 0.829, 3 0.714, 12 0.574; MovieLens, N 3000 — rank 12 (the cap is inactive there). Any divisor from 11
 * to 250 agrees with both; 20 is the one taken.
 */
export function defaultGramRank(top: number): number {
  return Math.min(GRAM_DP_DEFAULTS.rank, Math.max(1, Math.floor(top / 20)));
}

/** The --dp-model gram flags (validated), or a CONFIG_ERROR naming the flag; an explicit --dp-rank is used as given. */
export function gramFlags(cmd: string, values: Record<string, unknown>, items: number): { top: number; rank: number } {
  const top = Math.min(items, intFlag(cmd, values, 'dp-top', GRAM_DP_DEFAULTS.top, 2, 20_000));
  return { top, rank: intFlag(cmd, values, 'dp-rank', defaultGramRank(top), 1, 512) };
}

/**
 * Where the release's noise is added (`--dp-noise`). `distributed`: under secure aggregation each brand adds a 1/√P
 * share, so only the secure sum carries the full noise (the distributed Gaussian of Kairouz, Liu & Steinke, ICML 2021,
 * with SecAgg's real-valued wire); `local`: every brand adds the full noise to what it uploads, so the coordinator may
 * see each brand's release (√P times the noise in the sum). Default: distributed when there are at least 3 brands and
 * no CKKS (--he), local otherwise; both are printed in the run's privacy block.
 * @param cmd - command name for messages
 * @param values - parsed flags (`dp-noise`, `secure-agg`, `he`)
 * @param brands - P
 * @param minFlag - the flag that set P, for the message (`--partners` in simulate, `--min-clients` in create)
 * @returns the placement, whether secure aggregation must be on, and why (for the progress line)
 */
export function gramNoisePlacement(cmd: string, values: Record<string, unknown>, brands: number, minFlag = '--partners'): { placement: 'distributed' | 'local'; secureAgg: boolean; why: string } {
  const asked = values['dp-noise'] as string | undefined;
  if (asked !== undefined && asked !== 'distributed' && asked !== 'local') throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp-noise must be "distributed" (a 1/sqrt(P) share per brand under secure aggregation) or "local" (full noise at every brand); got "${asked}"`);
  const he = values.he === true;
  if (asked === 'distributed') {
    if (he) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp-noise distributed runs under secure aggregation; it cannot be combined with --he (use --dp-noise local with --he)`);
    if (brands < 3) throw new FedmartError('CONFIG_ERROR', `${cmd}: --dp-noise distributed needs secure aggregation over at least 3 brands (the sum of 2 reveals each to the other); got ${minFlag} ${brands}: raise it or use --dp-noise local`);
    return { placement: 'distributed', secureAgg: true, why: 'asked (--dp-noise distributed)' };
  }
  if (asked === 'local') return { placement: 'local', secureAgg: values['secure-agg'] === true, why: 'asked (--dp-noise local)' };
  if (he) return { placement: 'local', secureAgg: false, why: 'default under --he (distributed noise needs secure aggregation)' };
  if (brands < 3) return { placement: 'local', secureAgg: false, why: `default with ${brands} brand(s) (distributed noise needs secure aggregation over at least 3)` };
  return { placement: 'distributed', secureAgg: true, why: `default with ${brands} brands: secure aggregation on, --dp-noise local to opt out` };
}

/** How the release's noise is placed, in words (progress lines and the privacy block). */
export function noiseLabel(distributed: boolean, secure: boolean, brands: number): string {
  return distributed ? `${brands} shares under secure aggregation` : `full at every brand${secure ? ' (under secure aggregation)' : ''}`;
}

/**
 * Run the two releases and score every brand's customers on their test interaction.
 * @param s - the prepared scenario
 * @param o - ε, δ, the release settings, the protection layers, seed
 * @returns the federated arm's test metrics and the privacy block
 */
export async function federatedGramDp(s: PreparedScenario, o: { epsilon: number; delta: number; top: number; rank: number; protection: SimulationProtection; distributed?: boolean; seed: number; onProgress: (line: string) => void }): Promise<{ test: RankingMetrics; privacy: Record<string, unknown>; model: GramModel }> {
  const items = s.data.items.length;
  const histories = s.partners.map((p) => p.users.map((u) => s.splits[u]!.train));
  const P = s.partners.length;
  const secure = o.protection.config.secureAggregation !== undefined;
  if (o.protection.dropAtStage) throw new FedmartError('CONFIG_ERROR', 'scenario recommendation simulate: --dp-model gram plans both releases on every brand; it cannot run with --dropout (use --dp-model tower)');
  // Public wire scale (the operator's bound on a brand's interactions): every count and Gram entry divided by it is ≤ 1.
  const scale = Math.max(1, ...histories.map((h) => h.reduce((a, x) => a + x.length, 0)));
  const { g, sigma, dp, config, coordinates: len } = gramFederationConfig({ items, partners: P, scale, top: o.top, rank: o.rank, epsilon: o.epsilon, delta: o.delta, secureAggregation: secure ? (o.protection.config.secureAggregation as object) : undefined, distributed: o.distributed, seed: o.seed });
  const distributed = g.noiseShares !== undefined;
  o.onProgress(`dp: record (interaction) level, item-Gram release: sigma ${sigma.toFixed(4)} for epsilon ${dp.planned.toFixed(4)} <= ${o.epsilon} at delta ${o.delta} (two releases, q 1); top ${o.top} items, ${len} joint coordinates; noise ${noiseLabel(distributed, secure, P)}`);
  const tasks = histories.map((h) => gramDpTask(h, items));
  const fed = await runFederation({
    config,
    partners: tasks.map((task, k) => ({ id: s.partners[k]!.id, task })),
    rounds: 2,
    seed: o.seed,
    waitForAllPartners: true,
    onProgress: o.onProgress,
  });
  const committed = fed.outcomes.filter((x) => x.phase === 'committed');
  if (committed.length < 2) throw new FedmartError('UNAVAILABLE', `recommendation: ${committed.length} of the 2 rounds of the item-Gram release committed; nothing is scored`);
  if (committed.some((x) => x.participants.length !== P)) throw new FedmartError('UNAVAILABLE', `recommendation: a round of the item-Gram release committed ${Math.min(...committed.map((x) => x.participants.length))} of ${P} brands; the mean × P would not be the sum, so it is not scored`);
  const model = gramModelOf(g, fed.weights, sigma);
  o.onProgress(`item-Gram model: rank ${model.rank} over ${model.top.length} items; eigenvalues ${Array.from(model.values, (v) => v.toFixed(0)).join(', ')}; noise edge 2s√N ${model.noiseEdge.toFixed(0)}`);
  const acc = new RankingAccumulator();
  for (const p of s.partners) {
    for (const u of p.users) {
      const sp = s.splits[u]!;
      const all = gramScores(model, sp.train, null);
      const negs = s.evalNegatives[u]!;
      const ns = Float32Array.from(negs, (n) => all[n]!);
      acc.add(all[sp.test]!, ns, fullRank(all, sp.test, sp, 'test'));
    }
  }
  const base = simulationPrivacy(dp, fed.privacy);
  return {
    test: acc.result(),
    model,
    privacy: {
      ...base,
      unit: 'interaction (one observed user-item pair; add/remove)',
      model: 'gram',
      releases: [
        { what: 'item counts', sensitivity: 1, noiseMultiplier: r6(sigma / Math.sqrt(2 * g.budget[0])) },
        { what: `co-occurrence Gram over the top ${model.top.length} released counts, each customer weighted 1/sqrt(items)`, sensitivity: r6(GRAM_SENSITIVITY), noiseMultiplier: r6(sigma / Math.sqrt(2 * g.budget[1])) },
      ],
      noise: noiseLabel(distributed, secure, P),
      noisePlacement: distributed ? 'distributed' : 'local',
      rank: model.rank,
      eigenvalues: Array.from(model.values, r6),
      noiseEdge: r6(model.noiseEdge),
    },
  };
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * The federation config of the item-Gram release (simulate --dp record, and scenario recommendation create --dp record):
 * the joint layout, the gram settings in the taskSpec, σ for two Gaussian steps at q = 1, the norm limits and the
 * secure-aggregation quantisation of the wire values.
 * @param o - catalogue size, the number of brands P (every one in both rounds), the public per-brand interaction bound
 *   (wire scale), the release settings, the budget, secure aggregation's settings when on
 */
export function gramFederationConfig(o: { items: number; partners: number; scale: number; top: number; rank: number; epsilon: number; delta: number; secureAggregation: object | undefined; distributed?: boolean; seed: number }) {
  const P = o.partners;
  const secure = o.secureAggregation !== undefined;
  // Distributed noise (a 1/√P share per brand) only under secure aggregation: without it the coordinator would see a brand's under-noised release.
  const distributed = o.distributed ?? secure;
  if (distributed && !secure) throw new FedmartError('CONFIG_ERROR', 'item-Gram release: distributed noise needs secure aggregation (each brand adds only a 1/sqrt(P) share)');
  const g: GramDpSpec = { items: o.items, top: Math.min(o.top, o.items), budget: [GRAM_DP_DEFAULTS.countBudget, 1 - GRAM_DP_DEFAULTS.countBudget], partners: P, scale: o.scale, rank: o.rank, ...(distributed ? { noiseShares: P } : {}) };
  // Two Gaussian releases, q = 1: the accountant's σ for two steps (batch = the whole brand: q = 1).
  const dp = calibrateSimulationDp({ level: 'record', epsilon: o.epsilon, delta: o.delta, clip: GRAM_SENSITIVITY, rounds: 2, localEpochs: 1, batchSize: 1, learningRate: 1, partnerSizes: [1] });
  const sigma = dp.config.noiseMultiplier;
  const wireNoise = Math.max(brandNoiseStd(g, sigma, 0), brandNoiseStd(g, sigma, 1)) / o.scale;
  const layout = gramLayout(g);
  const coordinates = layout.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const config = {
    task: RECOMMENDATION_TASK,
    model: layout,
    taskSpec: { gram: g, sigma } as Record<string, unknown>,
    strategy: 'fedavg' as const,
    localTrain: { localEpochs: 1, batchSize: 1, learningRate: 1, proximalMu: 0 },
    minClients: P,
    sampleFraction: 1,
    seed: o.seed,
    timeouts: { selectingMs: 120_000, trainingMs: 900_000, evaluatingMs: 300_000 },
    // A brand's statistics divided by the scale have norm ≤ 2 (counts: ≤ Σ n_u / scale ≤ 1; Gram: each customer's
    // block has Frobenius norm √n ≤ n, summed ≤ 1), plus the noise (8 std is never exceeded in practice).
    limits: { maxUpdateNorm: 2 + 8 * wireNoise * Math.sqrt(coordinates), maxExamplesPerPartner: 10_000_000, medianNormFactor: 3, onLargeUpdate: 'reject' as const },
    ...(secure ? { secureAggregation: { ...o.secureAggregation, clip: 1 + 8 * wireNoise, bits: 32 } } : {}),
    dp: dp.config,
  };
  return { g, sigma, dp, config, coordinates };
}
