/**
 * Federation terms a partner consents to, and pins (issue 8, "Identity
 * first"): the strategy, the protection (secure aggregation / CKKS and their
 * parameters), the DP policy and the minimum number of participants. A
 * partner stores {@link federationTermsHash} at consent and refuses, with the
 * reason, any later welcome whose terms hash differs and any round
 * instruction that contradicts the pinned terms ({@link checkAgainstTerms}).
 * This keeps a coordinator from quietly weakening a federation after
 * partners joined it (e.g. switching protection off, lowering DP noise, or
 * running a round with fewer participants than agreed).
 *
 * Pure: no I/O.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from './crypto/bytes.ts';
import { FedmartError } from './errors.ts';
import type { FederationConfig } from './protocol.ts';

/** The parts of a federation's config a partner consents to. */
export interface FederationTerms {
  strategy: string;
  strategyOptions: Record<string, unknown>;
  secureAggregation: Record<string, unknown> | null;
  encryption: string;
  keyHolder: string | null;
  /** CKKS key mode (absent: the one federation key; kept out of the hash then, so older pins still match). */
  he?: { keys: string } | undefined;
  dp: Record<string, unknown> | null;
  minClients: number;
}

/**
 * Extract the terms from a federation config.
 * @param config - the federation's config (as the coordinator stores it)
 * @returns the consented-to terms
 */
export function federationTerms(config: Pick<FederationConfig, 'strategy' | 'strategyOptions' | 'secureAggregation' | 'encryption' | 'keyHolder' | 'he' | 'dp' | 'minClients'>): FederationTerms {
  return {
    strategy: config.strategy,
    strategyOptions: { ...(config.strategyOptions ?? {}) },
    secureAggregation: config.secureAggregation ? { ...config.secureAggregation } : null,
    encryption: config.encryption ?? 'none',
    keyHolder: config.keyHolder ?? null,
    ...(config.he ? { he: { ...config.he } } : {}),
    dp: config.dp ? { ...config.dp } : null,
    minClients: config.minClients,
  };
}

/** JSON with object keys sorted at every level, so equal terms always hash alike. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * SHA-256 over the canonical JSON of the terms, domain-separated.
 * @param terms - terms (or a config, whose terms are taken)
 * @returns 64 hex digits
 * @example
 * federationTermsHash(federationTerms(config)) === pinnedHash
 */
export function federationTermsHash(terms: FederationTerms): string {
  return bytesToHex(sha256(new TextEncoder().encode(`fedmart/federation-terms/v1|${canonicalJson(terms)}`)));
}

/** What a round instruction claims, as far as the terms constrain it. */
export interface InstructionFacts {
  /** protection the instruction runs under */
  protection?: 'secagg' | 'ckks' | undefined;
  /** the DP settings it carries to the partner (absent: none) */
  dp?: Record<string, unknown> | undefined;
  /** participants of the round, when the instruction says (e.g. a SecAgg setup) */
  participants?: number;
  /** SecAgg+ threshold / degree the round uses */
  threshold?: number;
  neighbours?: number;
}

/**
 * Partner-side check hook: refuse an instruction that contradicts the pinned
 * terms. Call it on every train instruction and protocol setup.
 * @param terms - the pinned terms
 * @param facts - what the instruction says
 * @throws FedmartError CONFLICT naming the contradiction and the pinned value
 */
export function checkAgainstTerms(terms: FederationTerms, facts: InstructionFacts): void {
  const refuse = (what: string) => {
    throw new FedmartError('CONFLICT', `round refused: ${what}, contradicting the federation terms this partner consented to; the operator must create a new federation (or re-enroll partners) to change them`);
  };
  const expected = terms.secureAggregation ? 'secagg' : terms.encryption === 'ckks' ? 'ckks' : undefined;
  if (facts.protection !== expected) refuse(`the instruction runs with protection '${facts.protection ?? 'none'}' but the terms say '${expected ?? 'none'}'`);
  // Whether an instruction must carry DP settings depends on the DP mode (central partner-level
  // noise carries none to the partner); that presence check belongs to the DP layer.
  if (!terms.dp && facts.dp !== undefined) refuse(`the instruction carries differential-privacy settings but the terms have none`);
  if (terms.dp && facts.dp) {
    // σ and C may legitimately move between rounds (adaptive clipping splits the noise); those
    // checks belong to the DP layer, which calls this hook with its own facts.
    for (const key of ['level', 'delta'] as const) {
      if (terms.dp[key] !== undefined && facts.dp[key] !== undefined && facts.dp[key] !== terms.dp[key]) refuse(`the instruction sets dp.${key} = ${String(facts.dp[key])} but the terms say ${String(terms.dp[key])}`);
    }
  }
  if (facts.participants !== undefined && facts.participants < terms.minClients) refuse(`the round has ${facts.participants} participants but the terms require at least ${terms.minClients}`);
  const sa = terms.secureAggregation;
  if (sa && facts.threshold !== undefined && typeof sa.threshold === 'number' && facts.threshold < sa.threshold) refuse(`the round uses threshold t = ${facts.threshold} but the terms set ${sa.threshold}`);
  if (sa && facts.neighbours !== undefined && typeof sa.neighbours === 'number' && facts.participants !== undefined && facts.neighbours < Math.min(sa.neighbours, facts.participants - 1)) refuse(`the round uses ${facts.neighbours} neighbours but the terms set ${sa.neighbours}`);
}
