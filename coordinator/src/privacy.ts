/**
 * The coordinator half of differential privacy: the DP-FedAvg strategy
 * wrapper, the privacy ledger, budget caps and the compliance report.
 *
 * Ledger (table `privacy_ledger`, append-only by trigger). Every committed
 * round appends, inside the transaction that writes its model version
 * ({@link recordRoundSpend}, run as `Store.commitRound`'s `extra`), one row
 * per participating partner and one federation row (`partner_id` null) for
 * the federation's DP level, each with the round's (q, σ, steps, δ, C) and
 * the CUMULATIVE RDP accountant state (per-order vector + step history,
 * `RdpAccountant.toJSON`). Totals are read from that state and converted to
 * (ε, δ) with Balle et al. 2020 — RDP composes by adding per order
 * (Mironov 2017); ε never does. {@link verifyPrivacyLedger} recomposes every
 * partner's state from the per-round (q, σ, steps) and checks the stored
 * states and the committed model versions against it.
 *
 * - Record level: partner k's rows charge ⌈localEpochs/q_k⌉ steps at q_k
 *   (`shared/src/dp/plan.ts`, the same numbers the partner's own accountant
 *   uses). A record belongs to one partner, so the federation row holds the
 *   per-order maximum of all partners' cumulative RDP vectors: an upper
 *   bound on every record's RDP curve (ε of the federation = ε of that max).
 * - Partner level: one step at q = 1 per round (`PARTNER_LEVEL_CHARGE`), for
 *   the federation row and for each participant (a partner that sat a round
 *   out spent nothing in it). With adaptive clipping the row also holds the
 *   two mechanisms (update multiplier z_Δ, count std σ_b) whose composition
 *   is the charged σ.
 * - Spend is charged on release (issue 8, item 6): a round that fails after
 *   updates reached the coordinator appends the same rows with `committed`
 *   false and no model version ({@link recordReleasedSpend}, also for rounds
 *   interrupted by a restart), so the ledger agrees with every partner's own
 *   accountant (which charges when it sends) and caps see that spend.
 *
 * Caps (table `privacy_caps`, append-only; newest row in force, ε null lifts
 * it) per federation or per partner and level, set by role `compliance`.
 * {@link refuseRoundOverBudget} projects the next round's spend with the
 * accountant for every enrolled partner; if any cap would be exceeded, the
 * round fails before any training with a reason naming the cap, a `refused`
 * ledger row and an audit entry. A federation without DP spends unbounded ε
 * per round, so any cap refuses its rounds.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { TrainConfigSchema, type DpConfig, type FederationConfig, type TrainDp } from '@fedmart/shared/protocol';
import { RdpAccountant, rdpToEpsilon, type RdpAccountantState } from '@fedmart/shared/dp/rdp';
import { PARTNER_LEVEL_CHARGE, recordLevelCharge, type DpRoundCharge } from '@fedmart/shared/dp/plan';
import { clipToNormInPlace, adaptiveClipEffectiveNoiseMultiplier, adaptiveClipUpdateNoiseMultiplier, distributedNoiseStd, noisedUnclippedFraction, unclippedFractionFromNoisedSum, updateAdaptiveClip } from '@fedmart/shared/dp/clip';
import { cryptoRandomSource, gaussianNoise, type RandomSource } from '@fedmart/shared/dp/gaussian';
import { weightedMetricMeans } from '@fedmart/shared/strategy/base';
import type { AggregateResult, ClientEvaluation, ClientFailure, ClientUpdate, LocalTrainConfig, MeanAggregateInfo, RoundContext, Strategy, StrategyId } from '@fedmart/shared/strategy/types';
import type { BudgetTotal, LedgerEntry, LedgerVerification, PrivacyCap, PrivacyReport } from '@fedmart/shared/api-views';
import { embeddingDpCharge } from '@fedmart/shared/vertical-embedding-dp';
import type { VerticalSpec } from '@fedmart/shared/vertical-spec';
import { Store } from './db/store.ts';
import { SqliteAsyncStore } from './db/store-sqlite-async.ts';
import { ledgerSnapshot, type AsyncStore, type LedgerPlan, type LedgerSnapshot, type NewLedgerRow } from './db/store-api.ts';
import * as t from './db/schema.ts';
import type { RoundOutcome } from './orchestrator.ts';

/** The report and cap functions take the async store or, for SQLite callers (CLI, tests), the synchronous one. */
export type AnyStore = AsyncStore | Store;
/** The async store of either (a sync SQLite `Store` is wrapped). */
export const asAsyncStore = (store: AnyStore): AsyncStore => (store instanceof Store ? new SqliteAsyncStore(store) : store);

/** The two DP levels. */
export const DP_LEVELS = ['record', 'partner'] as const;
export type DpLevel = (typeof DP_LEVELS)[number];
export type { BudgetTotal, LedgerEntry, LedgerVerification, PrivacyCap, PrivacyReport };

// ================================================================ strategy wrapper

/**
 * Server side of the federation's DP (McMahan et al. 2018, "Learning
 * Differentially Private Recurrent Language Models"; Andrew et al. 2021 for
 * adaptive clipping), wrapping the federation's strategy (the shape of
 * Flower's `DifferentialPrivacyServerSideFixedClipping`). Its client half is
 * `client-node/src/ml/dp-sgd.ts` (`trainRoundWithDp`).
 *
 * - Every round, `configureTrain` adds the round's {@link TrainDp} to the
 *   local config (clip, σ, δ; the distributed noise share; the sampling rate).
 * - Record level: aggregation is the inner strategy's (each partner's update
 *   is already DP; the server only post-processes).
 * - Partner level, central mode (a trusted coordinator sees each update):
 *   each update is (re-)clipped to C, the clipped updates are summed,
 *   N(0, σ_Δ²C²) is added to the sum once, and the unweighted mean goes to the
 *   inner strategy's server update. Weighting by example counts would scale
 *   one partner's influence beyond C, so it is not used.
 * - Distributed mode (updates hidden by secure aggregation or CKKS): partners
 *   clipped and noised their own updates with shares they computed from the
 *   terms they accepted (`client-node/src/protection/dp-terms.ts`; the
 *   `noiseStd` sent here is only checked by them). The wrapper refuses a sum
 *   of fewer than minClients of them (it would carry less noise than charged).
 *   Plaintext individual updates in distributed mode are refused: each holds
 *   only a 1/√minClients share of the noise.
 * - Adaptive clipping: C ← C·exp(−η_C(b̃ − γ)), b̃ from the centred count
 *   Σ(b_i − ½) + N(0, σ_b²), sensitivity ½ (TF Privacy's quantile estimator);
 *   σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2) so update and count together cost one
 *   Gaussian query at σ (Andrew et al. §3.1), which the ledger charges. In
 *   central mode the coordinator clips and counts (partners send unclipped
 *   updates to the trusted curator); in distributed mode each partner appends
 *   its bit, noised with a share N(0, σ_b²/minClients), to its update, so it
 *   travels only inside the secure sum. Under CKKS it is refused (the
 *   coordinator cannot read the sum).
 */
export class DpStrategy implements Strategy {
  readonly id: StrategyId;
  readonly needsIndividualUpdates: boolean;
  /** The clipping norm the next round uses (moves with adaptive clipping). */
  clip: number;
  /** z_Δ: the noise multiplier on the update sum (σ, or the adaptive-clipping split of σ). */
  readonly updateNoiseMultiplier: number;
  /** Aggregate-only entry (secure aggregation / CKKS), present when the inner strategy has one. */
  aggregateMean?: (round: number, global: Float32Array, mean: Float64Array, info: MeanAggregateInfo) => AggregateResult;
  readonly #updateMultiplier: number;

  /**
   * @param inner - the federation's strategy
   * @param dp - the federation's DP config
   * @param minClients - fewest partners a round aggregates (distributed noise is split over this many)
   * @param clip - starting clip (default dp.clip; a restarted coordinator resumes an adaptive clip)
   * @param rng - byte source of the central noise (default: platform CSPRNG)
   */
  constructor(readonly inner: Strategy, readonly dp: DpConfig, readonly minClients: number, clip: number = dp.clip, private readonly rng: RandomSource = cryptoRandomSource) {
    this.id = inner.id;
    this.needsIndividualUpdates = inner.needsIndividualUpdates;
    this.clip = clip;
    this.#updateMultiplier = dp.level === 'partner' && dp.adaptiveClip ? adaptiveClipUpdateNoiseMultiplier(dp.noiseMultiplier, dp.adaptiveClip.countStd) : dp.noiseMultiplier;
    this.updateNoiseMultiplier = this.#updateMultiplier;
    const innerMean = inner.aggregateMean?.bind(inner);
    if (innerMean) {
      this.aggregateMean = (round, global, mean, info) => {
        if (dp.level === 'partner' && dp.mode !== 'distributed') {
          throw new FedmartError('CONFIG_ERROR', "partner-level DP in central mode needs each partner's update to clip it; with secure aggregation or CKKS set dp.mode to 'distributed'");
        }
        if (dp.level === 'partner' && info.clients < minClients) {
          throw new FedmartError('ROUND_FAILED', `only ${info.clients} partners contributed, but distributed DP noise is split over minClients=${minClients}; the sum would carry less noise than the ledger charges`);
        }
        const clipUsed = this.clip;
        const extra: Record<string, number> = { dp_clip: clipUsed };
        if (dp.level === 'partner' && dp.adaptiveClip) {
          if (info.noisedClipCount === undefined) throw new FedmartError('ROUND_FAILED', 'adaptive clipping: the secure sum carried no clip count; the clip cannot move without it');
          this.clip = this.#nextClip(clipUsed, unclippedFractionFromNoisedSum(info.noisedClipCount, info.clients));
          extra.dp_next_clip = this.clip;
        }
        const out = innerMean(round, global, mean, info);
        return { ...out, metrics: { ...out.metrics, ...extra } };
      };
    }
  }

  /** The DP settings partners receive for the next round. */
  trainDp(): TrainDp {
    const { dp } = this;
    if (dp.level === 'record') {
      return { level: 'record', clip: this.clip, noiseMultiplier: dp.noiseMultiplier, delta: dp.delta, ...(dp.sampleRate !== undefined ? { sampleRate: dp.sampleRate } : {}) };
    }
    return {
      level: 'partner', clip: this.clip, noiseMultiplier: dp.noiseMultiplier, delta: dp.delta,
      ...(dp.mode === 'distributed' ? { noiseStd: distributedNoiseStd(this.#updateMultiplier, this.clip, this.minClients) } : {}),
    };
  }

  /** One geometric step of the adaptive clip from b̃ (Andrew et al. 2021). */
  #nextClip(clipUsed: number, bTilde: number): number {
    const a = this.dp.adaptiveClip!;
    return updateAdaptiveClip({ clip: clipUsed, targetQuantile: a.targetQuantile, clipLearningRate: a.clipLearningRate, countStd: a.countStd }, bTilde).clip;
  }

  /** Distributed adaptive clipping: partners append one noised centred clip bit to the vector they mask. */
  get securedExtraCoordinates(): number {
    return this.dp.level === 'partner' && this.dp.mode === 'distributed' && this.dp.adaptiveClip ? 1 : 0;
  }

  configureTrain(ctx: RoundContext, base: LocalTrainConfig): LocalTrainConfig {
    return { ...this.inner.configureTrain(ctx, base), dp: this.trainDp() } as LocalTrainConfig;
  }

  aggregateTrain(round: number, global: Float32Array, results: readonly ClientUpdate[], failures: readonly ClientFailure[]): AggregateResult {
    if (this.dp.level === 'record' || results.length === 0) return this.inner.aggregateTrain(round, global, results, failures);
    const n = results.length;
    if (this.dp.mode === 'distributed') {
      throw new FedmartError('CONFIG_ERROR', 'distributed partner-level DP: plaintext individual updates carry only a share of the noise and are refused; turn on secure aggregation or CKKS');
    }
    const clipUsed = this.clip;
    const sum = new Float64Array(global.length);
    let unclipped = 0;
    for (const r of results) {
      if (r.delta.length !== global.length) throw new FedmartError('INVALID_UPDATE', `update of ${r.nodeId} has ${r.delta.length} values, the model has ${global.length}`);
      const v = Float64Array.from(r.delta);
      unclipped += clipToNormInPlace(v, clipUsed) === 1 ? 1 : 0;
      for (let i = 0; i < v.length; i++) sum[i] = sum[i]! + v[i]!;
    }
    const noise = gaussianNoise(sum.length, this.#updateMultiplier * clipUsed, this.rng);
    for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + noise[i]!;
    const mean = new Float64Array(sum.length);
    for (let i = 0; i < sum.length; i++) mean[i] = sum[i]! / n;
    const metrics = weightedMetricMeans(results);
    const extra: Record<string, number> = { dp_clip: clipUsed };
    if (this.dp.adaptiveClip) {
      this.clip = this.#nextClip(clipUsed, noisedUnclippedFraction(unclipped, n, this.dp.adaptiveClip.countStd, this.rng));
      extra.dp_next_clip = this.clip;
    }
    const out = this.inner.aggregateMean
      ? this.inner.aggregateMean(round, global, mean, { totalWeight: n, clients: n, metrics })
      : this.inner.aggregateTrain(round, global, [{ nodeId: 'dp-fedavg-mean', numExamples: 1, delta: Float32Array.from(mean), metrics }], failures);
    return { weights: out.weights, metrics: { ...out.metrics, ...extra } };
  }

  configureEvaluate(ctx: RoundContext): { evaluate: boolean } {
    return this.inner.configureEvaluate(ctx);
  }

  aggregateEvaluate(round: number, results: readonly ClientEvaluation[], failures: readonly ClientFailure[]): Record<string, number> {
    return this.inner.aggregateEvaluate(round, results, failures);
  }

  summary(): string {
    const d = this.dp;
    return `${this.inner.summary()}; DP ${d.level} level (σ=${d.noiseMultiplier}, C=${this.clip}, δ=${d.delta}${d.level === 'partner' ? `, ${d.mode ?? 'central'} noise` : ''}${d.adaptiveClip ? ', adaptive clip' : ''})`;
  }
}

/**
 * Extra coordinates partners append to the vector they mask (distributed
 * adaptive clipping: one noised centred clip bit), 0 otherwise.
 * @param strategy - the federation's (possibly DP-wrapped) strategy
 * @returns how many coordinates follow the model parameters in the secure sum
 */
export function securedExtraCoordinates(strategy: Strategy): number {
  return strategy instanceof DpStrategy ? strategy.securedExtraCoordinates : 0;
}

/**
 * Wrap a federation's strategy in {@link DpStrategy} when its config asks for
 * DP (otherwise return it unchanged). An adaptive clip resumes from the
 * current model version's `train_dp_next_clip` after a restart.
 * @param inner - the federation's strategy
 * @param store - the coordinator store
 * @param federationId - the federation
 * @returns the strategy to run rounds with
 */
export async function withDifferentialPrivacy(inner: Strategy, store: AsyncStore, federationId: string): Promise<Strategy> {
  const fed = await store.getFederation(federationId);
  const config = store.federationConfig(fed);
  if (!config.dp) return inner;
  let clip = config.dp.clip;
  if (config.dp.adaptiveClip && fed.currentModelVersionId) {
    const m = JSON.parse((await store.getModelVersion(fed.currentModelVersionId)).metrics) as Record<string, unknown>;
    if (typeof m.train_dp_next_clip === 'number' && m.train_dp_next_clip > 0) clip = m.train_dp_next_clip;
  }
  return new DpStrategy(inner, config.dp, Math.max(1, config.minClients), clip);
}

// ================================================================ ledger

/**
 * A read-only snapshot of the federation's ledger (newest `spent` row per scope, and the cap history),
 * for projections that write nothing; writers get theirs inside the appending transaction.
 */
async function readSnapshot(store: AsyncStore, federationId: string): Promise<LedgerSnapshot> {
  const [rows, caps] = await Promise.all([store.ledgerRows(federationId), store.privacyCapHistory(federationId)]);
  const latest = new Map<string, t.PrivacyLedgerRow>();
  for (const r of rows) if (r.kind === 'spent') latest.set(`${r.partnerId ?? ''}|${r.level}`, r);
  return ledgerSnapshot(federationId, caps, [...latest.values()]);
}

function accountantOf(row: t.PrivacyLedgerRow | undefined): RdpAccountant {
  if (!row?.accountant) return new RdpAccountant();
  return RdpAccountant.fromJSON(JSON.parse(row.accountant));
}

/** Per-order max of RDP states (the federation's record-level bound). */
function maxState(states: RdpAccountantState[], orders: readonly number[]): RdpAccountantState {
  const rdp = orders.map(() => 0 as number | null);
  for (const s of states) {
    if (s.orders.length !== orders.length || s.orders.some((o, i) => o !== orders[i])) throw new FedmartError('INTERNAL', 'privacy ledger states use different Rényi orders; they cannot be combined');
    s.rdp.forEach((v, i) => {
      const cur = rdp[i];
      rdp[i] = v === null || cur === null ? null : Math.max(cur as number, v);
    });
  }
  return { version: 1, orders: [...orders], rdp, steps: [] };
}

function epsilonOfState(state: RdpAccountantState, delta: number): { epsilon: number; order: number } {
  return rdpToEpsilon(state.orders, state.rdp.map((v) => (v === null ? Infinity : v)), delta);
}

/** The local config a round ran with (its `rounds.config` JSON). */
function roundTrainConfig(row: t.RoundRow) {
  const parsed = TrainConfigSchema.safeParse(JSON.parse(row.config));
  if (!parsed.success) throw new FedmartError('INTERNAL', `stored local config of round ${row.id} is invalid`);
  return parsed.data;
}

function chargeFor(dp: DpConfig, cfg: { batchSize: number; localEpochs: number }, numExamples: number | null | undefined): DpRoundCharge {
  if (dp.level === 'partner') return PARTNER_LEVEL_CHARGE;
  if (numExamples === null || numExamples === undefined || numExamples < 1) {
    // Unknown size (never connected): q = 1 is the most a round can spend for a fixed number of epochs.
    return dp.sampleRate !== undefined ? recordLevelCharge({ sampleRate: dp.sampleRate, batchSize: cfg.batchSize, localEpochs: cfg.localEpochs, numExamples: 1 }) : { q: 1, steps: cfg.localEpochs };
  }
  return recordLevelCharge({ sampleRate: dp.sampleRate, batchSize: cfg.batchSize, localEpochs: cfg.localEpochs, numExamples });
}

/** The update multiplier z_Δ and count std σ_b of a DP config (adaptive clipping splits σ between them). */
function mechanismsOf(dp: DpConfig): { updateSigma: number; countStd: number | null } {
  if (dp.level === 'partner' && dp.adaptiveClip) return { updateSigma: adaptiveClipUpdateNoiseMultiplier(dp.noiseMultiplier, dp.adaptiveClip.countStd), countStd: dp.adaptiveClip.countStd };
  return { updateSigma: dp.noiseMultiplier, countStd: null };
}

/**
 * The ledger plan of one round's spend (one row per releasing partner, one federation row): the
 * federation's config, the round's local config and the participants' sizes are read now; the rows
 * are decided from the snapshot the store reads inside the appending transaction.
 * @returns the plan, or undefined for a federation without DP
 */
async function spendPlan(store: AsyncStore, r: { federationId: string; roundId: string; participants: readonly string[]; committed: boolean }): Promise<LedgerPlan | undefined> {
  const config = store.federationConfig(await store.getFederation(r.federationId));
  const dp = config.dp;
  if (!dp) return undefined;
  const round = await store.getRound(r.roundId);
  const cfg = roundTrainConfig(round);
  const sigma = cfg.dp?.noiseMultiplier ?? dp.noiseMultiplier;
  const clip = cfg.dp?.clip ?? dp.clip;
  const { updateSigma, countStd } = mechanismsOf(dp);
  const sizes = new Map((await store.listParticipants(r.roundId)).map((p) => [p.partnerId, p.numExamples]));
  const charges = r.participants.map((p) => [p, chargeFor(dp, cfg, sizes.get(p))] as const);
  return (snapshot, modelVersionId) => chargeRows(snapshot, { ...r, modelVersionId, dp, sigma, clip, updateSigma, countStd, charges });
}

/** One round's spend rows: a row per releasing partner (its charge composed onto its accountant) and the federation row. */
function chargeRows(snapshot: LedgerSnapshot, r: { federationId: string; roundId: string; modelVersionId: string | null; committed: boolean; dp: Pick<DpConfig, 'level' | 'delta'>; sigma: number; clip: number; updateSigma: number; countStd: number | null; charges: readonly (readonly [string, DpRoundCharge])[] }): NewLedgerRow[] {
  const { dp, sigma } = r;
  const now = Date.now();
  const common = { federationId: r.federationId, roundId: r.roundId, modelVersionId: r.modelVersionId, level: dp.level, kind: 'spent' as const, delta: dp.delta, sigma, clip: r.clip, reason: null, createdAt: now, committed: r.committed, updateSigma: r.updateSigma, countStd: r.countStd };
  const rows: (typeof t.privacyLedger.$inferInsert)[] = [];
  const states: RdpAccountantState[] = [];
  for (const [partnerId, charge] of r.charges) {
    const acc = accountantOf(snapshot.latestSpent(partnerId, dp.level)).step(charge.q, sigma, charge.steps);
    const state = acc.toJSON();
    states.push(state);
    rows.push({ ...common, partnerId, epsilon: acc.epsilon(dp.delta).epsilon, q: charge.q, steps: charge.steps, accountant: JSON.stringify(state) });
  }
  let fedState: RdpAccountantState;
  let fedCharge: DpRoundCharge;
  if (dp.level === 'partner') {
    fedCharge = PARTNER_LEVEL_CHARGE;
    fedState = accountantOf(snapshot.latestSpent(null, dp.level)).step(fedCharge.q, sigma, fedCharge.steps).toJSON();
  } else {
    // max over every partner's cumulative curve = max(previous federation curve, this round's participants)
    const prev = accountantOf(snapshot.latestSpent(null, dp.level)).toJSON();
    fedState = maxState([prev, ...states], prev.orders);
    fedCharge = rows.reduce<DpRoundCharge>((m, x) => ({ q: Math.max(m.q, x.q ?? 0), steps: Math.max(m.steps, x.steps ?? 0) }), { q: 0, steps: 0 });
  }
  rows.push({ ...common, partnerId: null, epsilon: epsilonOfState(fedState, dp.delta).epsilon, q: fedCharge.q || null, steps: fedCharge.steps || null, accountant: JSON.stringify(fedState) });
  return rows;
}

/**
 * The ledger plan of a committed round's privacy spend. Pass it to `AsyncStore.commitRound`, so it
 * commits or rolls back with the model version (planned under the federation's lock).
 * A federation without DP appends nothing (undefined).
 * @param store - the coordinator store
 * @param r - federation, round and the partners whose updates made the new version
 * @throws FedmartError INTERNAL when stored state is corrupt (the commit then rolls back)
 */
export function roundSpendPlan(store: AsyncStore, r: { federationId: string; roundId: string; participants: readonly string[] }): Promise<LedgerPlan | undefined> {
  return spendPlan(store, { ...r, committed: true });
}

/**
 * Charge the spend of a round that failed after updates left their
 * partners (issue 8, item 6). A DP update costs privacy when it is released,
 * not when a model is committed: the coordinator held it (plain, masked or
 * encrypted), and a partner's own accountant charged it when it sent it. The
 * rows are `spent` with `committed` false and no model version, so totals,
 * caps and every partner's accountant stay in agreement; failing rounds
 * cannot be used to spend past a cap. Nothing is appended without DP, without
 * releases, or twice for one round.
 * @param store - coordinator store
 * @param r - federation, the failed round, and the partners whose updates arrived (default: its participants stored as 'trained')
 */
export async function recordReleasedSpend(store: AsyncStore, r: { federationId: string; roundId: string; participants?: readonly string[] }): Promise<void> {
  const participants = r.participants ?? (await store.listParticipants(r.roundId)).filter((p) => p.status === 'trained').map((p) => p.partnerId);
  if (participants.length === 0) return;
  // One coordinator fails a round once (at the round's end or at start-up), so this check and the append do not race.
  if ((await store.ledgerRows(r.federationId)).some((l) => l.roundId === r.roundId && l.kind === 'spent')) return;
  const plan = await spendPlan(store, { federationId: r.federationId, roundId: r.roundId, participants: [...participants].sort(), committed: false });
  if (plan) await store.chargeLedger(r.federationId, plan);
}

// ================================================================ caps


function capLabel(c: { partnerId: string | null; level: DpLevel; epsilon: number }, partnerName?: string): string {
  return `the ${c.level}-level cap of ${c.partnerId === null ? 'the federation' : `partner ${partnerName ?? c.partnerId}`} (epsilon ${c.epsilon})`;
}

/**
 * Set (or lift, with epsilon null) a cap. Append-only: the history stays.
 * @param store - coordinator store
 * @param c - federation, partner (null = federation-wide), level, ε (null lifts) and who set it
 * @returns the caps now in force
 * @throws FedmartError NOT_FOUND for an unknown federation or a partner not enrolled in it
 */
export async function setPrivacyCap(anyStore: AnyStore, c: { federationId: string; partnerId: string | null; level: DpLevel; epsilon: number | null; setBy: string }): Promise<PrivacyCap[]> {
  const store = asAsyncStore(anyStore);
  await store.getFederation(c.federationId);
  if (c.partnerId !== null && !(await store.listEnrollments(c.federationId)).some((e) => e.partnerId === c.partnerId)) {
    throw new FedmartError('NOT_FOUND', `partner "${c.partnerId}" is not enrolled in federation ${c.federationId}; list partners with GET /api/v1/federations/${c.federationId}/enrollments`);
  }
  await store.appendPrivacyCap({ federationId: c.federationId, partnerId: c.partnerId, level: c.level, epsilon: c.epsilon, setBy: c.setBy }, { actor: c.setBy, action: c.epsilon === null ? 'privacy.cap.lifted' : 'privacy.cap.set', subject: c.federationId, data: { partnerId: c.partnerId, level: c.level, epsilon: c.epsilon } });
  return listPrivacyCaps(store, c.federationId);
}

/** Every cap row of a federation, oldest first (the caps' history). */
export function privacyCapHistory(anyStore: AnyStore, federationId: string): Promise<t.PrivacyCapRow[]> {
  const store = asAsyncStore(anyStore);
  return store.privacyCapHistory(federationId);
}

/**
 * The caps in force: newest row per (partner, level), lifted ones left out.
 * @param store - coordinator store
 * @param federationId - the federation
 * @returns caps with a finite ε
 */
export async function listPrivacyCaps(anyStore: AnyStore, federationId: string): Promise<PrivacyCap[]> {
  const store = asAsyncStore(anyStore);
  return capsInForce(federationId, await store.privacyCapHistory(federationId));
}

function capsInForce(federationId: string, history: readonly t.PrivacyCapRow[]): PrivacyCap[] {
  const latest = new Map<string, t.PrivacyCapRow>();
  for (const r of history) latest.set(`${r.partnerId ?? ''}|${r.level}`, r);
  return [...latest.values()]
    .filter((r) => r.epsilon !== null)
    .map((r) => ({ federationId, partnerId: r.partnerId, level: r.level, epsilon: r.epsilon!, setBy: r.setBy, setAt: new Date(r.createdAt).toISOString() }));
}

// ================================================================ refusal

/**
 * Refuse a round before any training if its projected spend would exceed a
 * cap. Projects, with the accountant, the spend of every enrolled partner
 * (as if each were selected) and of the federation.
 *
 * On refusal — in one transaction — the round becomes `failed` with a
 * reason naming the cap, a `refused` ledger row per exceeded cap is
 * appended, and the audit log records `privacy.round.refused`.
 *
 * @param store - coordinator store
 * @param r - the round just created (phase `scheduled`) and the config it would run with (`localTrain` = the round's local config)
 * @returns the failed outcome, or null when the round may run
 */
export async function refuseRoundOverBudget(store: AsyncStore, r: { federationId: string; roundId: string; round: number; config: FederationConfig }): Promise<RoundOutcome | null> {
  const dp = r.config.dp;
  const sigma = dp ? ((r.config.localTrain as { dp?: TrainDp }).dp?.noiseMultiplier ?? dp.noiseMultiplier) : 0;
  const enrollments = await store.listEnrollments(r.federationId);
  // Atomic (issue 15): checked under the federation's lock, the planned spend of every other unfinished round counted as spent.
  let projection: BudgetProjection | null = null;
  const refusal = await store.admitRound(r.federationId, r.roundId, (snapshot, inFlight) => {
    const spends = dp ? inFlight.map((x) => inFlightSpend(dp, r.config, x)) : [];
    projection = projectOnSnapshot(snapshot, enrollments, r.federationId, r.round, dp, [...spends, { sigma, chargeOf: (e) => chargeFor(dp!, r.config.localTrain, e.numExamples) }], dp ? inFlight : []);
    return projection === null ? null : { reason: projection.reason, rows: refusalRows({ ...r, projection }) };
  });
  if (refusal === null) return null;
  const { violations } = projection as unknown as BudgetProjection;
  await store.audit('coordinator', 'privacy.round.refused', r.roundId, { federationId: r.federationId, round: r.round, reason: refusal.reason, caps: violations.map((v) => ({ partnerId: v.cap.partnerId, level: v.cap.level, epsilon: v.cap.epsilon, projected: Number.isFinite(v.projected) ? v.projected : null })) });
  return { roundId: r.roundId, round: r.round, phase: 'failed', reason: refusal.reason, metrics: {}, participants: [], failures: {}, seconds: 0 };
}

/** The planned spend of an unfinished round, from its stored local config (the federation's when unreadable). */
function inFlightSpend(dp: DpConfig, config: FederationConfig, row: t.RoundRow): PlannedSpend {
  let cfg: { batchSize: number; localEpochs: number; dp?: TrainDp } = config.localTrain;
  try {
    const parsed = TrainConfigSchema.safeParse(JSON.parse(row.config));
    if (parsed.success) cfg = parsed.data;
  } catch {
    // keep the federation's config
  }
  return { sigma: cfg.dp?.noiseMultiplier ?? dp.noiseMultiplier, chargeOf: (e) => chargeFor(dp, cfg, e.numExamples) };
}

/**
 * Fail a round over budget: `refused` rows per exceeded cap (one ledger transaction), then the phase
 * and the audit entry. The round never ran, so nothing else moves it in between; a coordinator
 * stopped between the two finds it `scheduled` at start-up and fails it as interrupted.
 */
async function writeRefusal(store: AsyncStore, r: { federationId: string; roundId: string; round: number; projection: BudgetProjection }): Promise<void> {
  const { reason, violations } = r.projection;
  await store.chargeLedger(r.federationId, () => refusalRows(r));
  await store.setRoundPhase(r.roundId, 'failed', reason);
  await store.audit('coordinator', 'privacy.round.refused', r.roundId, { federationId: r.federationId, round: r.round, reason, caps: violations.map((v) => ({ partnerId: v.cap.partnerId, level: v.cap.level, epsilon: v.cap.epsilon, projected: Number.isFinite(v.projected) ? v.projected : null })) });
}

/** The `refused` ledger rows of a projection: one per exceeded cap. */
function refusalRows(r: { federationId: string; roundId: string; projection: BudgetProjection }): NewLedgerRow[] {
  const { violations, delta, dp, names } = r.projection;
  const now = Date.now();
  return violations.map((v) => ({
    federationId: r.federationId, partnerId: v.cap.partnerId, roundId: r.roundId, modelVersionId: null, level: v.cap.level, kind: 'refused',
    epsilon: Number.isFinite(v.projected) ? v.projected : null, delta, sigma: dp?.noiseMultiplier ?? null, q: v.charge?.q ?? null, steps: v.charge?.steps ?? null,
    clip: dp?.clip ?? null, accountant: null, reason: `${capLabel(v.cap, names.get(v.cap.partnerId ?? ''))}: projected epsilon ${Number.isFinite(v.projected) ? v.projected.toFixed(4) : 'unbounded'}`, createdAt: now,
  }));
}

/** Why the next round would break a cap (see {@link projectRoundOverBudget}). */
export interface BudgetProjection {
  reason: string;
  violations: { cap: PrivacyCap; projected: number; charge: DpRoundCharge | null }[];
  delta: number | null;
  dp: FederationConfig['dp'];
  names: Map<string, string>;
}

/**
 * The projection behind {@link refuseRoundOverBudget}, writing nothing: would a
 * round with this config bring any capped scope above its cap? Schedules ask
 * before each round so they stop cleanly instead of having the round refused.
 * @returns the reason and the caps that would be exceeded, or null when the round fits every cap
 */
export function projectRoundOverBudget(store: AsyncStore, r: { federationId: string; round: number; config: FederationConfig }): Promise<BudgetProjection | null> {
  const dp = r.config.dp;
  const sigma = dp ? ((r.config.localTrain as { dp?: TrainDp }).dp?.noiseMultiplier ?? dp.noiseMultiplier) : 0;
  return projectCaps(store, r.federationId, r.round, dp, sigma, (e) => chargeFor(dp!, r.config.localTrain, e.numExamples));
}

/**
 * Project the next round onto every cap: each enrolled partner's accountant stepped by its charge (null:
 * the partner releases nothing in such a round), the federation's by the partner-level step or the
 * per-order max. A federation without DP (dp undefined) breaks every cap.
 */
async function projectCaps(store: AsyncStore, federationId: string, round: number, dp: DpConfig | undefined, sigma: number, chargeOf: PlannedSpend['chargeOf']): Promise<BudgetProjection | null> {
  const snapshot = await readSnapshot(store, federationId);
  if (capsInForce(federationId, snapshot.caps).length === 0) return null;
  return projectOnSnapshot(snapshot, await store.listEnrollments(federationId), federationId, round, dp, [{ sigma, chargeOf }], []);
}

/** One round's planned spend: its σ and each partner's charge (null: releases nothing). */
interface PlannedSpend { sigma: number; chargeOf: (e: { partnerId: string; partnerName: string; numExamples: number | null }) => DpRoundCharge | null }

/**
 * {@link projectCaps} on a snapshot: `spends` composed in order onto every accountant (the unfinished
 * rounds' planned spends, then the round asked about, last), each partner as if selected.
 * @param inFlight - the unfinished rounds behind all but the last spend (named in the reason)
 */
function projectOnSnapshot(snapshot: LedgerSnapshot, enrollments: readonly { partnerId: string; partnerName: string; numExamples: number | null; status: string }[], federationId: string, round: number, dp: DpConfig | undefined, spends: readonly PlannedSpend[], inFlight: readonly t.RoundRow[]): BudgetProjection | null {
  const caps = capsInForce(federationId, snapshot.caps);
  if (caps.length === 0) return null;
  const names = new Map(enrollments.map((e) => [e.partnerId, e.partnerName]));
  const violations: { cap: PrivacyCap; projected: number; charge: DpRoundCharge | null }[] = [];
  if (!dp) {
    for (const cap of caps) violations.push({ cap, projected: Infinity, charge: null });
  } else {
    const enrolled = enrollments.filter((e) => e.status !== 'revoked');
    const projected = new Map<string, { state: RdpAccountantState; charge: DpRoundCharge }>();
    const current = spends[spends.length - 1]!;
    for (const e of enrolled) {
      const charge = current.chargeOf(e);
      if (charge === null) continue;
      const acc = accountantOf(snapshot.latestSpent(e.partnerId, dp.level));
      for (const s of spends) {
        const c = s.chargeOf(e);
        if (c !== null) acc.step(c.q, s.sigma, c.steps);
      }
      projected.set(e.partnerId, { state: acc.toJSON(), charge });
    }
    const fedPrev = accountantOf(snapshot.latestSpent(null, dp.level));
    let fedState: RdpAccountantState;
    if (dp.level === 'partner') {
      for (const s of spends) fedPrev.step(1, s.sigma, 1);
      fedState = fedPrev.toJSON();
    } else {
      fedState = maxState([fedPrev.toJSON(), ...[...projected.values()].map((p) => p.state)], fedPrev.orders);
    }
    for (const cap of caps) {
      if (cap.level !== dp.level) continue; // this federation spends nothing at the other level
      if (cap.partnerId === null) {
        const eps = epsilonOfState(fedState, dp.delta).epsilon;
        if (eps > cap.epsilon) violations.push({ cap, projected: eps, charge: dp.level === 'partner' ? PARTNER_LEVEL_CHARGE : null });
      } else {
        const p = projected.get(cap.partnerId);
        if (!p) continue; // not enrolled (or revoked), or releases nothing: cannot spend
        const eps = epsilonOfState(p.state, dp.delta).epsilon;
        if (eps > cap.epsilon) violations.push({ cap, projected: eps, charge: p.charge });
      }
    }
  }
  if (violations.length === 0) return null;
  const first = violations[0]!;
  const delta = dp?.delta ?? null;
  const flying = inFlight.length ? `, counting the planned spend of round${inFlight.length > 1 ? 's' : ''} ${inFlight.map((x) => `${x.number} (${x.id})`).join(', ')} still in flight` : '';
  const reason = dp
    ? `privacy budget exceeded: round ${round} would bring ${first.cap.partnerId === null ? 'the federation' : `partner ${names.get(first.cap.partnerId) ?? first.cap.partnerId}`} to ${first.cap.level}-level epsilon ${first.projected.toFixed(4)} (delta ${delta})${flying}, above ${capLabel(first.cap, names.get(first.cap.partnerId ?? ''))}${violations.length > 1 ? ` and ${violations.length - 1} more cap(s)` : ''}; the round was refused before any training — a compliance officer may raise the cap`
    : `privacy budget exceeded: ${capLabel(first.cap, names.get(first.cap.partnerId ?? ''))} is set but this federation has no differential privacy, so a round would spend unbounded epsilon; refused before any training — configure dp or lift the cap`;
  return { reason, violations, delta, dp, names };
}

// ================================================================ vertical split NN (embedding DP)

/**
 * The ledger's view of a vertical federation: a split NN with embedding DP spends, per round, at record
 * level for each FEATURE HOLDER (its customers' features are what the label holder sees through the
 * embeddings), `embeddingDpCharge(epochs)` = 2E steps at q = 1 with σ = the spec's noise multiplier
 * (`shared/src/vertical-embedding-dp.ts`). The label holder releases nothing to this accountant. LR, and a
 * split NN without embeddingDp, claim no ε (so any cap refuses their rounds, as for horizontal federations
 * without DP); size-only overlap checks release no model input and are not charged.
 */
function verticalDp(spec: VerticalSpec): { dp: DpConfig; charge: DpRoundCharge } | undefined {
  const e = spec.model === 'splitnn' ? spec.protections.embeddingDp : undefined;
  if (e === undefined) return undefined;
  return { dp: { level: 'record', noiseMultiplier: e.noiseMultiplier, clip: e.clip, delta: e.delta }, charge: embeddingDpCharge(spec.epochs) };
}

/**
 * Would the next vertical round break a cap? (null: it fits, or there are no caps, or it is an overlap check.)
 * @param store - coordinator store
 * @param r - federation, the round number and its vertical spec
 */
export async function projectVerticalRoundOverBudget(store: AsyncStore, r: { federationId: string; round: number; spec: VerticalSpec }): Promise<BudgetProjection | null> {
  if (r.spec.psi === 'size') return null;
  const v = verticalDp(r.spec);
  const holders = new Set(r.spec.featureHolders.map((f) => f.party));
  return projectCaps(store, r.federationId, r.round, v?.dp, v?.dp.noiseMultiplier ?? 0, (e) => (holders.has(e.partnerName) ? v!.charge : null));
}

/**
 * Refuse a vertical round over budget: the round becomes `failed` with the reason, `refused` ledger rows and an audit entry.
 * @returns the reason, or null when the round may run
 */
export async function refuseVerticalRoundOverBudget(store: AsyncStore, r: { federationId: string; roundId: string; round: number; spec: VerticalSpec }): Promise<string | null> {
  const projection = await projectVerticalRoundOverBudget(store, r);
  if (projection === null) return null;
  await writeRefusal(store, { ...r, projection });
  return projection.reason;
}

/**
 * Charge a vertical round's release (split NN with embedding DP): committed with its model version, or, for a
 * round that failed after training began, not committed (spend on release, as horizontal rounds). Call it
 * inside the commit transaction (`Store.commitRound`'s extra). Nothing without embedding DP.
 * @param r - federation, round, version (null: failed), the feature holders' partner ids
 */
export function verticalSpendPlan(r: { federationId: string; roundId: string; committed: boolean; featureHolders: readonly string[]; spec: VerticalSpec }): LedgerPlan | undefined {
  const v = verticalDp(r.spec);
  if (v === undefined || r.spec.psi === 'size') return undefined;
  return (snapshot, modelVersionId) => chargeRows(snapshot, {
    federationId: r.federationId, roundId: r.roundId, modelVersionId, committed: r.committed, dp: v.dp,
    sigma: v.dp.noiseMultiplier, clip: v.dp.clip, updateSigma: v.dp.noiseMultiplier, countStd: null, charges: [...r.featureHolders].sort().map((p) => [p, v.charge] as const),
  });
}

/** Charge a vertical round that failed after training began (not committed; see {@link verticalSpendPlan}). */
export async function recordVerticalSpend(store: AsyncStore, r: { federationId: string; roundId: string; featureHolders: readonly string[]; spec: VerticalSpec }): Promise<void> {
  const plan = verticalSpendPlan({ ...r, committed: false });
  if (plan) await store.chargeLedger(r.federationId, plan);
}

// ================================================================ report





/**
 * Build the compliance report: totals per federation and partner (from the
 * composed accountant states), caps and their history, every ledger row,
 * refused rounds and the ledger verification.
 * @param store - coordinator store
 * @param federationId - the federation
 * @returns the report
 * @throws FedmartError NOT_FOUND for an unknown federation
 */
export async function privacyReport(anyStore: AnyStore, federationId: string): Promise<PrivacyReport> {
  const store = asAsyncStore(anyStore);
  const fed = await store.getFederation(federationId);
  const config = store.federationConfig(fed);
  const enrollments = await store.listEnrollments(federationId);
  const names = new Map(enrollments.map((e) => [e.partnerId, e.partnerName]));
  const rounds = await store.listRounds(federationId);
  const roundNo = new Map(rounds.map((r) => [r.id, r.number]));
  const versionNo = new Map((await store.listModelVersions(federationId)).map((m) => [m.id, m.version]));
  const rows = await store.ledgerRows(federationId);
  const snapshot = await readSnapshot(store, federationId);
  const history: LedgerEntry[] = rows.map((r) => ({
    id: r.id, roundId: r.roundId, round: r.roundId ? (roundNo.get(r.roundId) ?? null) : null, modelVersion: r.modelVersionId ? (versionNo.get(r.modelVersionId) ?? null) : null,
    partnerId: r.partnerId, partnerName: r.partnerId ? (names.get(r.partnerId) ?? null) : null, level: r.level, kind: r.kind, committed: r.kind === 'spent' && r.committed, epsilon: r.epsilon, delta: r.delta,
    sigma: r.sigma, updateSigma: r.updateSigma, countStd: r.countStd, q: r.q, steps: r.steps, clip: r.clip, reason: r.reason, createdAt: new Date(r.createdAt).toISOString(),
  }));
  const caps = capsInForce(federationId, snapshot.caps);
  const capOf = (partnerId: string | null, level: DpLevel) => caps.find((c) => c.partnerId === partnerId && c.level === level)?.epsilon ?? null;
  const totals: BudgetTotal[] = [];
  const delta = config.dp?.delta ?? 1e-5;
  const reported = new Map<string, number>();
  // Every round whose updates were released (committed or not) was charged by the partner too.
  for (const r of [...rounds].sort((a, b) => a.number - b.number)) {
    for (const p of await store.listParticipants(r.id)) {
      if (p.status !== 'trained') continue;
      const m = p.trainMetrics ? (JSON.parse(p.trainMetrics) as Record<string, unknown>) : {};
      if (typeof m.epsilon_record === 'number') reported.set(p.partnerId, m.epsilon_record);
    }
  }
  const levels = new Set<DpLevel>(rows.filter((r) => r.kind === 'spent').map((r) => r.level));
  if (config.dp) levels.add(config.dp.level);
  for (const level of levels) {
    const scopes: (string | null)[] = [null, ...enrollments.map((e) => e.partnerId)];
    for (const partnerId of scopes) {
      const last = snapshot.latestSpent(partnerId, level);
      const state = accountantOf(last).toJSON();
      const { epsilon, order } = last ? epsilonOfState(state, last.delta ?? delta) : { epsilon: 0, order: NaN };
      totals.push({
        scope: partnerId === null ? 'federation' : 'partner', partnerId, partnerName: partnerId ? (names.get(partnerId) ?? null) : null, level,
        epsilon, order: Number.isFinite(order) ? order : null, delta: last?.delta ?? delta,
        rounds: rows.filter((r) => r.kind === 'spent' && r.level === level && r.partnerId === partnerId).length,
        cap: capOf(partnerId, level), reportedEpsilon: partnerId ? (reported.get(partnerId) ?? null) : null,
      });
    }
  }
  return {
    federationId, federationName: fed.name, generatedAt: new Date().toISOString(), accountant: 'rdp', dp: config.dp ?? null, totals, caps,
    capHistory: snapshot.caps.map((c) => ({ partnerId: c.partnerId, level: c.level, epsilon: c.epsilon, setBy: c.setBy, setAt: new Date(c.createdAt).toISOString() })),
    history, refused: history.filter((h) => h.kind === 'refused'), verification: await verifyPrivacyLedger(store, federationId),
  };
}

const CSV_COLUMNS = ['id', 'createdAt', 'round', 'roundId', 'modelVersion', 'level', 'kind', 'committed', 'scope', 'partnerId', 'partnerName', 'epsilon', 'delta', 'sigma', 'updateSigma', 'countStd', 'q', 'steps', 'clip', 'reason'] as const;

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) || /^[=+\-@]/.test(s) ? `"${(/^[=+\-@]/.test(s) && typeof v === 'string' ? `'${s}` : s).replace(/"/g, '""')}"` : s;
}

/**
 * The ledger as CSV (RFC 4180; text cells that start with = + - @ are
 * prefixed with ' so spreadsheets do not run them as formulas).
 * @param report - from {@link privacyReport}
 * @returns CSV text with a header row, one line per ledger row
 */
export function privacyReportCsv(report: PrivacyReport): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const h of report.history) {
    const row: Record<(typeof CSV_COLUMNS)[number], unknown> = { ...h, scope: h.partnerId === null ? 'federation' : 'partner' };
    lines.push(CSV_COLUMNS.map((c) => csvCell(row[c])).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** Result of {@link verifyPrivacyLedger}. */

function sameRdp(a: readonly (number | null)[], b: readonly (number | null)[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i];
    if (x === null || y === null) return x === y;
    return Math.abs(x - (y as number)) <= 1e-9 * Math.max(1, Math.abs(x));
  });
}

/**
 * Check the ledger against the committed model versions and recompose every
 * accountant from the per-round (q, σ, steps):
 * - each committed round of a DP federation has spent rows pointing at its
 *   model version, one per participant plus the federation row; no spent
 *   row points at anything else;
 * - each stored cumulative state equals the composition of that scope's
 *   charges so far (partner rows, and the partner-level federation row), and
 *   the record-level federation state equals the per-order max of the
 *   partners' states.
 * @param store - coordinator store
 * @param federationId - the federation
 * @returns ok and the list of problems found
 */
export async function verifyPrivacyLedger(anyStore: AnyStore, federationId: string): Promise<LedgerVerification> {
  const store = asAsyncStore(anyStore);
  const config = store.federationConfig(await store.getFederation(federationId));
  const problems: string[] = [];
  const versions = (await store.listModelVersions(federationId)).filter((m) => m.version > 0);
  const spent = (await store.ledgerRows(federationId)).filter((r) => r.kind === 'spent');
  const rounds = await store.listRounds(federationId);
  const byVersion = new Map<string, t.PrivacyLedgerRow[]>();
  const byFailedRound = new Map<string, t.PrivacyLedgerRow[]>();
  for (const r of spent) {
    if (!r.committed) {
      if (r.modelVersionId) problems.push(`ledger row ${r.id} is marked not committed but points at model version ${r.modelVersionId}`);
      else if (!r.roundId) problems.push(`ledger row ${r.id} is a not-committed spend without a round`);
      else byFailedRound.set(r.roundId, [...(byFailedRound.get(r.roundId) ?? []), r]);
      continue;
    }
    if (!r.modelVersionId) {
      problems.push(`ledger row ${r.id} is 'spent' without a model version`);
      continue;
    }
    byVersion.set(r.modelVersionId, [...(byVersion.get(r.modelVersionId) ?? []), r]);
  }
  const versionIds = new Set(versions.map((v) => v.id));
  for (const id of byVersion.keys()) if (!versionIds.has(id)) problems.push(`ledger rows point at model version ${id}, which was never committed`);
  if (config.dp) {
    for (const v of versions) {
      const rows = byVersion.get(v.id) ?? [];
      const participants = JSON.parse(v.participants) as string[];
      const partnerRows = rows.filter((r) => r.partnerId !== null).map((r) => r.partnerId!).sort();
      if (rows.filter((r) => r.partnerId === null).length !== 1 || JSON.stringify(partnerRows) !== JSON.stringify([...participants].sort())) {
        problems.push(`model version ${v.version} (round ${v.roundId}) has ${rows.length} ledger rows; expected one per participant (${participants.length}) plus one federation row`);
      }
    }
    // A failed round whose updates were released is charged to exactly its releasing partners, plus the federation.
    for (const round of rounds) {
      if (round.phase !== 'failed') continue;
      const rows = byFailedRound.get(round.id) ?? [];
      const released = (await store.listParticipants(round.id)).filter((p) => p.status === 'trained').map((p) => p.partnerId).sort();
      const partnerRows = rows.filter((r) => r.partnerId !== null).map((r) => r.partnerId!).sort();
      if (JSON.stringify(partnerRows) !== JSON.stringify(released) || rows.filter((r) => r.partnerId === null).length !== (released.length ? 1 : 0)) {
        problems.push(`failed round ${round.number} (${round.id}) released ${released.length} update(s) but has ${rows.length} not-committed ledger rows; expected one per releasing partner plus one federation row`);
      }
    }
  }
  for (const roundId of byFailedRound.keys()) {
    if (rounds.find((x) => x.id === roundId)?.phase !== 'failed') problems.push(`not-committed ledger rows point at round ${roundId}, which did not fail`);
  }
  for (const r of spent) {
    if (r.countStd !== null && r.updateSigma !== null && r.sigma !== null) {
      const z = adaptiveClipEffectiveNoiseMultiplier(r.updateSigma, r.countStd);
      if (Math.abs(z - r.sigma) > 1e-9 * r.sigma) problems.push(`ledger row ${r.id} charges σ ${r.sigma}, but its update multiplier ${r.updateSigma} and count std ${r.countStd} compose to ${z}`);
    }
  }
  // Recompose every scope from its charges.
  const scopes = new Map<string, t.PrivacyLedgerRow[]>();
  for (const r of spent) scopes.set(`${r.level}|${r.partnerId ?? ''}`, [...(scopes.get(`${r.level}|${r.partnerId ?? ''}`) ?? []), r]);
  const latestPartnerStates = new Map<DpLevel, RdpAccountantState[]>();
  for (const [key, rows] of scopes) {
    const [level, partner] = key.split('|') as [DpLevel, string];
    const last = rows[rows.length - 1]!;
    const stored = JSON.parse(last.accountant ?? 'null') as RdpAccountantState | null;
    if (!stored) {
      problems.push(`ledger row ${last.id} has no accountant state`);
      continue;
    }
    if (partner === '' && level === 'record') continue; // checked against the partners below
    const acc = new RdpAccountant(stored.orders);
    for (const r of rows) {
      if (r.q === null || r.sigma === null || r.steps === null) {
        problems.push(`ledger row ${r.id} lacks q, sigma or steps`);
        continue;
      }
      acc.step(r.q, r.sigma, r.steps);
    }
    if (!sameRdp(acc.toJSON().rdp, stored.rdp)) problems.push(`the stored ${level}-level accountant of ${partner || 'the federation'} does not equal the composition of its ${rows.length} charges`);
    if (partner !== '') latestPartnerStates.set(level, [...(latestPartnerStates.get(level) ?? []), stored]);
  }
  const fedRecord = scopes.get('record|');
  if (fedRecord) {
    const stored = JSON.parse(fedRecord[fedRecord.length - 1]!.accountant ?? 'null') as RdpAccountantState;
    const expect = maxState(latestPartnerStates.get('record') ?? [], stored.orders);
    if (!sameRdp(expect.rdp, stored.rdp)) problems.push('the record-level federation accountant is not the per-order maximum of the partners\' accountants');
  }
  return { ok: problems.length === 0, committedRounds: versions.length, problems };
}
