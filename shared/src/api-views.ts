/**
 * The shapes of the coordinator's REST answers (`/api/v1`), shared by the
 * coordinator that builds them and the clients that read them (the CLI's API
 * client, the partner portal). Types only: nothing here runs.
 */
import type { DpConfig, FederationConfig, FederationTerms, Role } from './protocol.ts';
import type { AuditEntry } from './audit-log.ts';

/** Privacy levels of the ledger: one record (example) or one whole partner. */
export type DpLevel = 'record' | 'partner';

/** `GET /federations`, `GET /federations/:id`. */
export interface FederationView {
  id: string;
  name: string;
  status: string;
  config: FederationConfig;
  currentModelVersionId: string | null;
  createdAt: string;
}

/** `GET /federations/:id` (the federation with who is connected now). */
export interface FederationDetail {
  federation: FederationView;
  connected: { partnerId: string; partnerName: string; numExamples?: number }[];
  identities: { partnerId: string; partnerName: string; identityFingerprint: string }[];
}

/** One round (`GET /federations/:id/rounds`, `GET /rounds/:id`). */
export interface RoundView {
  id: string;
  federationId: string;
  number: number;
  phase: string;
  reason: string | null;
  strategy: string;
  config: unknown;
  /** Aggregated metrics (`eval_auc`, `eval_loss`, …); null until the round reports. */
  metrics: Record<string, number> | null;
  baseModelVersionId: string | null;
  startedAt: string;
  endedAt: string | null;
}

/** One partner's row of a round (a partner token sees only its own). */
export interface ParticipantView {
  partnerId: string;
  status: string;
  reason?: string | null;
  numExamples?: number | null;
  trainMetrics: Record<string, number> | null;
  evalMetrics: Record<string, number> | null;
  [key: string]: unknown;
}

/** `GET /federations/:id/enrollments`. */
export interface EnrollmentView {
  id: string;
  federationId: string;
  partnerId: string;
  partnerName: string;
  status: string;
  expiresAt: string;
  maxExamples: number | null;
  identityFingerprint: string | null;
  [key: string]: unknown;
}

/** The claims of a fedmart token that a client may read (the server checks the signature). */
export interface TokenClaims {
  sub: string;
  role: Role;
  /** Partner tokens: the one federation they belong to. */
  fed?: string;
  jti?: string;
  exp?: number;
}

/** The error body of every failed call. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** A cap in force. */
export interface PrivacyCap {
  federationId: string;
  /** null: the whole federation. */
  partnerId: string | null;
  level: DpLevel;
  epsilon: number;
  setBy: string;
  setAt: string;
}

/** One ledger row as the compliance API shows it. */
export interface LedgerEntry {
  id: number;
  roundId: string | null;
  round: number | null;
  modelVersion: number | null;
  partnerId: string | null;
  partnerName: string | null;
  level: DpLevel;
  kind: 'spent' | 'refused';
  /** spent: false when the round failed after updates were released (charged, no model version). */
  committed: boolean;
  /** spent: cumulative ε of this scope after the round; refused: the projected ε. */
  epsilon: number | null;
  delta: number | null;
  sigma: number | null;
  /** z_Δ on the update sum; with adaptive clipping σ = (z_Δ⁻² + (2σ_b)⁻²)^(−1/2). */
  updateSigma: number | null;
  /** σ_b on the centred clipped count (adaptive clipping). */
  countStd: number | null;
  q: number | null;
  steps: number | null;
  clip: number | null;
  reason: string | null;
  createdAt: string;
}

/** A budget total, recomputed from the accountant state. */
export interface BudgetTotal {
  scope: 'federation' | 'partner';
  partnerId: string | null;
  partnerName: string | null;
  level: DpLevel;
  epsilon: number;
  /** Rényi order of the tightest bound. */
  order: number | null;
  delta: number;
  /** Rounds charged. */
  rounds: number;
  /** The cap in force, if any. */
  cap: number | null;
  /** The partner's own accountant, as reported with its last update (record level). */
  reportedEpsilon: number | null;
}

/** The compliance report of one federation. */
export interface PrivacyReport {
  federationId: string;
  federationName: string;
  generatedAt: string;
  accountant: 'rdp';
  dp: DpConfig | null;
  totals: BudgetTotal[];
  caps: PrivacyCap[];
  capHistory: { partnerId: string | null; level: string; epsilon: number | null; setBy: string; setAt: string }[];
  history: LedgerEntry[];
  refused: LedgerEntry[];
  verification: LedgerVerification;
}

export interface LedgerVerification {
  ok: boolean;
  /** Committed model versions (after version 0) checked. */
  committedRounds: number;
  problems: string[];
}

export type { DpConfig };

/** `GET /federations/:id/models[/:version]` (a partner sees itself only in `participants`). */
export interface ModelVersionView {
  id: string;
  federationId: string;
  version: number;
  roundId: string | null;
  parentId: string | null;
  strategy: string | null;
  participants: string[];
  metrics: Record<string, number> | null;
  spec: unknown;
  paramCount: number;
  sha256: string;
  encrypted: boolean;
  createdAt: string;
  /** candidate → approved → published → retired (`coordinator/src/model-release.ts`). */
  releaseStatus: string;
  publishRequestedBy: string | null;
  approvedBy: string | null;
  publishedAt: string | null;
}

/** `GET|POST /federations/:id/consent` (partner tokens): the invitation's terms and this enrollment's consent. */
export interface ConsentView {
  federationId: string;
  federationName: string;
  config: FederationConfig;
  /** The terms exactly as a node receives them in its welcome and pins (`protocol.ts` federationTerms). */
  terms: FederationTerms;
  /** `federationTermsHash(terms)`: what a consent names. */
  termsHash: string;
  /** The federation's declared purpose (null: none). */
  purpose: string | null;
  /** Every purpose a partner may state. */
  purposes: string[];
  enrollment: {
    id: string;
    status: string;
    /** When the partner consented (portal) or its node first said hello; null: not yet. */
    consentedAt: string | null;
    /** The terms hash consented to (null: not yet). */
    termsHash: string | null;
    purposes: string[] | null;
    /** The consent is to the current terms. */
    current: boolean;
  };
}

/** `GET /federations/:id/audit/entries` (every role; a partner sees only `partnerMaySeeAuditEntry`). */
export interface FederationAuditView {
  federationId: string;
  /** Entries exactly as stored (`data` is the JSON text the leaf hashes). */
  entries: AuditEntry[];
  /** What the caller's role may see, in words. */
  scope: string;
}
