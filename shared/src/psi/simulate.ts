/**
 * In-memory two-party PSI run, for `fedmart bench psi` and tests: two
 * parties of `size` IDs each, sharing `overlap · size` of them, run the ECDH
 * PSI of {@link PsiParty} end to end and the result is checked against the
 * plain set intersection.
 *
 * Pure: no I/O. IDs come from a seeded, non-cryptographic PRNG (benchmark
 * data); the parties' scalars and shuffles still use the CSPRNG. Timing uses
 * `performance.now()`.
 */
import { createSeededRng, shuffleInPlace } from '../data/rng.ts';
import { randomBytes } from 'node:crypto';
import { PsiParty, x25519Multiply, x25519PrivateKeyObject, type PsiMode, type PsiPartyOptions } from './ecdh-psi.ts';

/** Options of {@link runPsiInMemory}. */
export interface PsiRunOptions {
  /** IDs per party, ≥ 1. */
  readonly size: number;
  /** Fraction of each party's IDs the other also holds, in [0, 1]. */
  readonly overlap: number;
  /** Seed for the synthetic IDs (default 1). */
  readonly seed?: number;
  /** "ids" (default) or "size" (cardinality only). */
  readonly mode?: PsiMode;
  /** CPU-time clock in ms (e.g. from `process.cpuUsage()`), injected to keep this module free of process globals; when given, the protocol is also timed in CPU time. */
  readonly cpuClock?: () => number;
  /** Passed to both parties' `multiplyBatch` (e.g. the CLI's thread pool); default: this thread. */
  readonly multiplyBatch?: PsiPartyOptions['multiplyBatch'];
}

/** Result of {@link runPsiInMemory}. */
export interface PsiRunReport {
  readonly size: number;
  readonly overlap: number;
  readonly mode: PsiMode;
  /** Intersection size party A computed. */
  readonly intersection: number;
  /** Expected intersection size, round(overlap · size). */
  readonly expected: number;
  /** Both parties found exactly the true intersection (the same IDs in mode "ids", the same count in mode "size"). */
  readonly correct: boolean;
  /** Wall time of the protocol (both parties' hashing, blinding, re-blinding and matching), in seconds. */
  readonly seconds: number;
  /** The same in CPU time (both parties run in this one thread), when a cpuClock was given: what a machine shared with other jobs disturbs least. */
  readonly cpuSeconds?: number;
  /** Bytes each party sends (two lists of 32-byte values). */
  readonly bytesPerParty: number;
  /**
   * Baseline measured in the same run: the time the protocol's 4·size native
   * X25519 multiplications alone take (extrapolated from up to 20,000 of
   * them), i.e. the floor any hashing and matching sit on.
   */
  readonly x25519FloorSeconds: number;
}

/** Time `4·size` X25519 multiplications from a sample of at most 20,000, in seconds. */
function x25519Floor(size: number): number {
  const sample = Math.min(4 * size, 20_000);
  const key = x25519PrivateKeyObject(new Uint8Array(randomBytes(32)));
  let u: Uint8Array = new Uint8Array(32);
  u[0] = 9; // the base point: on the curve, of large order
  const t = performance.now();
  for (let i = 0; i < sample; i++) u = x25519Multiply(key, u);
  return ((performance.now() - t) / 1000) * ((4 * size) / sample);
}

/**
 * Run the PSI protocol between two in-memory parties.
 *
 * @param opts - set size, overlap fraction, seed, mode
 * @returns the intersection, whether it is right, and the time taken
 * @throws RangeError for a non-positive size or an overlap outside [0, 1]
 * @example
 * const r = runPsiInMemory({ size: 100_000, overlap: 0.5 }); // r.correct, r.seconds ≈ 20
 */
export function runPsiInMemory(opts: PsiRunOptions): PsiRunReport {
  const { size, overlap } = opts;
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`runPsiInMemory: size must be a positive integer, got ${String(size)}`);
  if (typeof overlap !== 'number' || !(overlap >= 0 && overlap <= 1)) throw new RangeError(`runPsiInMemory: overlap must be in [0, 1], got ${String(overlap)}`);
  const mode = opts.mode ?? 'ids';
  const expected = Math.round(overlap * size);

  // Arrange: 2·size − expected distinct IDs; A takes the first `size`, B
  // shares A's first `expected` and adds its own, then both lists are shuffled.
  const rng = createSeededRng(opts.seed ?? 1);
  const pool = new Set<string>();
  while (pool.size < 2 * size - expected) {
    pool.add(`cust-${rng.nextUint32().toString(36)}${rng.nextUint32().toString(36)}@example.com`);
  }
  const all = [...pool];
  const idsA = all.slice(0, size);
  const shared = new Set(idsA.slice(0, expected));
  const idsB = [...idsA.slice(0, expected), ...all.slice(size)];
  shuffleInPlace(idsA, rng);
  shuffleInPlace(idsB, rng);

  // Act: the full exchange, as over the wire.
  const t = performance.now();
  const c0 = opts.cpuClock?.() ?? 0;
  const partyOpts = { mode, ...(opts.multiplyBatch ? { multiplyBatch: opts.multiplyBatch } : {}) };
  const a = new PsiParty(idsA, partyOpts);
  const b = new PsiParty(idsB, partyOpts);
  const aToB = a.blindOwn();
  const bToA = b.blindOwn();
  const doubledForA = b.blindOther(aToB);
  const doubledForB = a.blindOther(bToA);
  const resA = a.intersect(doubledForA, doubledForB);
  const resB = b.intersect(doubledForB, doubledForA);
  const seconds = (performance.now() - t) / 1000;
  const cpuSeconds = opts.cpuClock ? (opts.cpuClock() - c0) / 1000 : undefined;

  // Assert: against the plain intersection.
  const sameIds = (ids: string[] | undefined): boolean => ids !== undefined && ids.length === expected && ids.every((id) => shared.has(id));
  const correct = resA.size === expected && resB.size === expected && (mode === 'size' || (sameIds(resA.ids) && sameIds(resB.ids)));

  return { size, overlap, mode, intersection: resA.size, expected, correct, seconds, ...(cpuSeconds === undefined ? {} : { cpuSeconds }), bytesPerParty: 2 * size * 32, x25519FloorSeconds: x25519Floor(size) };
}
