/**
 * A feature holder's own embedding-DP accountant in a split-NN vertical
 * federation, kept on its disk at `<dataDir>/vertical/<federation>/embedding-dp-ledger.json`.
 * The coordinator's privacy ledger charges each training round 2E Gaussian steps at q = 1
 * (shared/src/vertical-embedding-dp.ts); a scoring request releases the scored customers'
 * embeddings once more (clipped to C, N(0, (z·2C)²) per coordinate: one more step of the same
 * Gaussian mechanism for each scored row, or k steps for a row asked k times). The party records
 * both here and composes them with the RDP accountant (Mironov 2017; ε via Balle et al. 2020),
 * so a predict run spends visible ε; with `--max-epsilon` it refuses a scoring request whose
 * release would take its customers past that ε, before anything is sent.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { computeEpsilon } from '@fedmart/shared/dp/rdp';
import type { EmbeddingDpTerms } from '@fedmart/shared/vertical-embedding-dp';

/** One charged release. */
export interface PartyDpEntry {
  readonly kind: 'train' | 'predict';
  /** The round whose model part made the release. */
  readonly round: number;
  /** Gaussian steps at q = 1 for the most-released row of this release. */
  readonly steps: number;
  /** Customers released. */
  readonly rows: number;
  /** ε of the whole ledger after this entry (at the terms' δ). */
  readonly epsilonAfter: number;
  readonly at: string;
}

/** The ledger file. */
export interface PartyDpLedger {
  readonly federation: string;
  readonly noiseMultiplier: number;
  readonly delta: number;
  readonly entries: PartyDpEntry[];
}

/** Where a party keeps its embedding-DP ledger of a federation. */
export function partyLedgerPath(dataDir: string, federation: string): string {
  return path.join(dataDir, 'vertical', federation, 'embedding-dp-ledger.json');
}

/** ε after `steps` Gaussian steps at q = 1 with the terms' noise multiplier. */
export function partyEpsilon(terms: Pick<EmbeddingDpTerms, 'noiseMultiplier' | 'delta'>, steps: number): number {
  return steps === 0 ? 0 : computeEpsilon({ q: 1, sigma: terms.noiseMultiplier, steps, delta: terms.delta }).epsilon;
}

/** Read the ledger (an empty one when there is no file yet). */
export async function readPartyLedger(file: string, federation: string, terms: Pick<EmbeddingDpTerms, 'noiseMultiplier' | 'delta'>): Promise<PartyDpLedger> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { federation, noiseMultiplier: terms.noiseMultiplier, delta: terms.delta, entries: [] };
    throw new FedmartError('CONFIG_ERROR', `cannot read the embedding-DP ledger ${file}: ${(err as Error).message}; fix its permissions`, { cause: err });
  }
  try {
    const l = JSON.parse(raw) as PartyDpLedger;
    if (l.federation !== federation || !Array.isArray(l.entries)) throw new Error('not a ledger of this federation');
    return l;
  } catch (err) {
    throw new FedmartError('DATA_ERROR', `the embedding-DP ledger ${file} is unreadable (${(err as Error).message}); restore it from a backup — deleting it would forget ε already spent`, { cause: err });
  }
}

/**
 * Charge one release to the ledger, or refuse it when it would pass `maxEpsilon` (then nothing is written).
 * @returns the ledger's ε and total steps after the charge
 * @throws FedmartError BUDGET_EXCEEDED when the release would take the ledger past `maxEpsilon`
 */
export async function chargePartyRelease(o: { file: string; federation: string; terms: Pick<EmbeddingDpTerms, 'noiseMultiplier' | 'delta'>; kind: 'train' | 'predict'; round: number; steps: number; rows: number; maxEpsilon?: number }): Promise<{ epsilon: number; steps: number; entries: number }> {
  const ledger = await readPartyLedger(o.file, o.federation, o.terms);
  const before = ledger.entries.reduce((s, e) => s + e.steps, 0);
  const epsilon = partyEpsilon(o.terms, before + o.steps);
  if (o.maxEpsilon !== undefined && epsilon > o.maxEpsilon) {
    throw new FedmartError('BUDGET_EXCEEDED', `embedding-DP budget: this ${o.kind === 'predict' ? 'scoring request' : 'round'} would bring this party's customers to epsilon ${epsilon.toFixed(4)} (delta ${o.terms.delta}), above --max-epsilon ${o.maxEpsilon}; refused before any release — raise --max-epsilon or score fewer times`);
  }
  const next: PartyDpLedger = { ...ledger, entries: [...ledger.entries, { kind: o.kind, round: o.round, steps: o.steps, rows: o.rows, epsilonAfter: epsilon, at: new Date().toISOString() }] };
  await mkdir(path.dirname(o.file), { recursive: true });
  await writeFile(`${o.file}.tmp`, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
  await rename(`${o.file}.tmp`, o.file);
  return { epsilon, steps: before + o.steps, entries: next.entries.length };
}

/** Steps a scoring request costs: the number of times its most-repeated row is released. */
export function scoringSteps(rows: readonly number[]): number {
  const n = new Map<number, number>();
  let max = 0;
  for (const r of rows) {
    const k = (n.get(r) ?? 0) + 1;
    n.set(r, k);
    if (k > max) max = k;
  }
  return max;
}
