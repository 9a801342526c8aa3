/**
 * The partner's side of the DP terms: what it accepted when it joined, and
 * the check of every round instruction against them (issue 8, item 4).
 *
 * Threat model. The coordinator may lie: it writes the round instruction,
 * so it could lower σ, shrink or omit the distributed noise share, ask for a
 * plaintext update in a secure-aggregation federation, or run a round with
 * fewer partners than the noise was split over. Every one of those would
 * release a weaker guarantee than the ledger shows. So the partner takes its
 * numbers from the terms it pinned at its first welcome (kept for the life of
 * the enrollment, and meant to be bound later to the consent-time terms hash)
 * and computes its noise share itself; the instruction's values are only
 * compared, and any disagreement is a refusal with the reason. What remains
 * trusted: the first welcome itself (until the terms are pinned by hash at
 * consent), and, under SecAgg+ with a sparse graph, the coordinator's word on
 * how many partners survived (a client sees only its neighbours; item 1's
 * signed survivor sets close that).
 *
 * Not a constraint: the clip C of an adaptive-clipping round. The noise is
 * σ·C for the same C the partner clips to, so C moves utility, not ε.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { FederationTermsSchema, dpTermsIssues, formatIssues, type FederationTerms, type TrainDp } from '@fedmart/shared/protocol';
import { adaptiveClipUpdateNoiseMultiplier, distributedNoiseStd } from '@fedmart/shared/dp/clip';

/** How this partner privatises one round, computed from its pinned terms. */
export interface PartnerDpPlan {
  level: 'record' | 'partner';
  /** C of this round. */
  clip: number;
  /** σ the round is charged at (the partner's own accountant uses it too). */
  noiseMultiplier: number;
  delta: number;
  /** Record level: Poisson rate (absent: batchSize / n). */
  sampleRate?: number;
  /** Partner level: clip the update here; false in central mode with adaptive clipping, where the trusted coordinator clips and counts. */
  clipHere: boolean;
  /** Partner level, distributed: std of this partner's Gaussian share on its update (0: none). */
  noiseStd: number;
  /** Partner level, distributed with adaptive clipping: std of the share on the centred clip bit appended to the update (null: no bit). */
  clipBitNoiseStd: number | null;
}

/**
 * Parse and check the terms of a welcome before pinning them.
 * @param raw - `welcome.terms`
 * @returns the terms to pin
 * @throws FedmartError PROTOCOL_MISMATCH when absent or malformed; CONFIG_ERROR when their DP policy cannot hold
 */
export function pinFederationTerms(raw: unknown): FederationTerms {
  if (raw === undefined) throw new FedmartError('PROTOCOL_MISMATCH', 'the coordinator sent no federation terms in its welcome, so rounds cannot be checked against what this partner accepted; upgrade the coordinator');
  const parsed = FederationTermsSchema.safeParse(raw);
  if (!parsed.success) throw new FedmartError('PROTOCOL_MISMATCH', `the federation terms in the welcome are malformed: ${formatIssues(parsed.error.issues)}`);
  const issues = dpTermsIssues(parsed.data);
  if (issues.length) throw new FedmartError('CONFIG_ERROR', `refusing to join: the federation's DP terms cannot give their guarantee (${issues[0]})`);
  return parsed.data;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/**
 * Compare the terms of a later welcome (after a reconnect) with the pinned ones.
 * @param pinned - the terms accepted at the first welcome
 * @param fresh - the terms just received
 * @returns null when equal, else a sentence naming what changed
 */
export function termsChange(pinned: FederationTerms, fresh: FederationTerms): string | null {
  const keys = [...new Set([...Object.keys(pinned), ...Object.keys(fresh)])] as (keyof FederationTerms)[];
  const changed = keys.filter((k) => canonical(pinned[k]) !== canonical(fresh[k]));
  return changed.length ? `the coordinator now announces different federation terms (${changed.join(', ')}) than this partner accepted; re-enroll to accept new terms` : null;
}

const refuse = (what: string) => new FedmartError('FORBIDDEN', `refusing the round: ${what}, which contradicts the federation terms this partner accepted; nothing was trained or sent`);

function sameNumber(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * Check a round instruction against the pinned terms and work out this
 * partner's DP for the round. Numbers come from the terms; the
 * instruction's own values must agree with them.
 * @param terms - pinned terms
 * @param instruction - the round's protection and DP block
 * @returns the plan, or null for a federation without DP
 * @throws FedmartError FORBIDDEN naming the contradiction (protection, level, σ, δ, q, clip, noise share)
 */
export function planRoundDp(terms: FederationTerms, instruction: { protection?: string | undefined; dp?: TrainDp | undefined }): PartnerDpPlan | null {
  const protection = terms.secureAggregation ? 'secagg' : terms.encryption === 'ckks' ? 'ckks' : 'none';
  const asked = instruction.protection ?? 'none';
  if (asked !== protection) throw refuse(`the instruction protects updates with ${asked} where the terms say ${protection}`);
  const dp = terms.dp;
  const got = instruction.dp;
  if (!dp) {
    if (got) throw refuse(`the instruction asks for ${got.level}-level DP, but the terms have none`);
    return null;
  }
  if (!got) throw refuse(`the instruction omits differential privacy, but the terms require ${dp.level}-level DP (σ ${dp.noiseMultiplier})`);
  if (got.level !== dp.level) throw refuse(`the instruction asks for ${got.level}-level DP where the terms say ${dp.level}`);
  if (!sameNumber(got.noiseMultiplier, dp.noiseMultiplier)) throw refuse(`the instruction sets noise multiplier ${got.noiseMultiplier} where the terms say ${dp.noiseMultiplier}`);
  if (!sameNumber(got.delta, dp.delta)) throw refuse(`the instruction sets delta ${got.delta} where the terms say ${dp.delta}`);
  if ((got.sampleRate ?? null) !== (dp.sampleRate ?? null)) throw refuse(`the instruction sets sampling rate ${got.sampleRate ?? 'default'} where the terms say ${dp.sampleRate ?? 'default'}`);
  if (!dp.adaptiveClip && !sameNumber(got.clip, dp.clip)) throw refuse(`the instruction sets clip ${got.clip} where the terms say ${dp.clip} (no adaptive clipping)`);
  const base = { level: dp.level, clip: got.clip, noiseMultiplier: dp.noiseMultiplier, delta: dp.delta, ...(dp.sampleRate !== undefined ? { sampleRate: dp.sampleRate } : {}) };
  if (dp.level === 'record') {
    if (got.noiseStd !== undefined) throw refuse('the instruction sets a partner-level noise share in a record-level federation');
    return { ...base, clipHere: true, noiseStd: 0, clipBitNoiseStd: null };
  }
  if (dp.mode !== 'distributed') {
    if (got.noiseStd !== undefined) throw refuse(`the instruction sets a distributed noise share (${got.noiseStd}) where the terms say the coordinator adds the noise`);
    return { ...base, clipHere: !dp.adaptiveClip, noiseStd: 0, clipBitNoiseStd: null };
  }
  const updateZ = dp.adaptiveClip ? adaptiveClipUpdateNoiseMultiplier(dp.noiseMultiplier, dp.adaptiveClip.countStd) : dp.noiseMultiplier;
  const noiseStd = distributedNoiseStd(updateZ, got.clip, terms.minClients);
  if (got.noiseStd === undefined) throw refuse(`the instruction omits the distributed noise share (the terms give σ ${dp.noiseMultiplier}, C ${got.clip}, split over at least ${terms.minClients} partners: std ${noiseStd.toPrecision(6)})`);
  if (!sameNumber(got.noiseStd, noiseStd)) throw refuse(`the instruction sets the noise share std to ${got.noiseStd} where the terms give ${noiseStd.toPrecision(6)} (σ ${dp.noiseMultiplier}, C ${got.clip}, at least ${terms.minClients} partners)`);
  return { ...base, clipHere: true, noiseStd, clipBitNoiseStd: dp.adaptiveClip ? distributedNoiseStd(dp.adaptiveClip.countStd, 1, terms.minClients) : null };
}

/**
 * Refuse to go on with a distributed-noise round that has fewer partners
 * than the noise was split over (the sum would carry less noise than charged).
 * @param terms - pinned terms
 * @param count - partners the round includes at this stage (selected, or survivors)
 * @param stage - where the count was learned, for the message
 * @param taskShares - the task's own noise split (a record-level release whose noise is shared over that many partners,
 *   the item-Gram task's noiseShares; 0 when the task adds its full noise)
 * @throws FedmartError FORBIDDEN when count < minClients under distributed partner-level DP, or count < taskShares
 */
export function checkRoundParticipants(terms: FederationTerms, count: number, stage: string, taskShares = 0): void {
  const need = Math.max(terms.dp?.level === 'partner' && terms.dp.mode === 'distributed' ? terms.minClients : 0, taskShares > 1 ? taskShares : 0);
  if (count < need) throw refuse(`the round has ${count} partner(s) at ${stage}, fewer than the ${need} the DP noise is split over`);
}
