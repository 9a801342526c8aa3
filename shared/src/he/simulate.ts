/**
 * In-memory CKKS aggregation round, for `fedmart bench he` and tests: every
 * client encrypts an update-like vector under the shared federation key, a
 * coordinator-side aggregator built from public parameters only sums the
 * ciphertexts, one client decrypts, and the result is compared with the
 * plain sum of the same vectors, timed in the same run.
 *
 * Pure: no I/O. Timing uses `performance.now()`; inputs come from a seeded,
 * non-cryptographic PRNG (they are benchmark data, not secrets), while the
 * keys and encryption randomness still come from SEAL's CSPRNG.
 */
import { createSeededRng } from '../data/rng.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateEd25519KeyPair, signEd25519, verifyEd25519 } from '../crypto/ed25519.ts';
import { equalBytes } from '../crypto/bytes.ts';
import { createCkksAggregator } from './ckks-aggregator.ts';
import { createCkksContext } from './ckks.ts';
import type { CkksParams } from './ckks-params.ts';

/** Options of {@link runHeAggregationInMemory}. */
export interface HeAggregationOptions {
  /** Number of clients, ≥ 1. */
  readonly clients: number;
  /** Number of model parameters per client (vector length), ≥ 1. */
  readonly params: number;
  /** Seed for the input vectors (default 1). */
  readonly seed?: number;
  /** CKKS parameter overrides (default {@link DEFAULT_CKKS_PARAMS}). */
  readonly ckks?: Partial<CkksParams>;
  /** Largest |HE sum − exact sum| still counted as correct (default 1e-6). */
  readonly tolerance?: number;
}

/** Result of {@link runHeAggregationInMemory}; times in milliseconds. */
export interface HeAggregationReport {
  readonly clients: number;
  readonly params: number;
  /** True when every value of the decrypted sum is within `tolerance` of the exact sum. */
  readonly correct: boolean;
  /** max_i |decrypted_i − Σ_clients x_i| with the exact sum taken in float64. */
  readonly maxAbsError: number;
  readonly tolerance: number;
  /** Mean time per client to encode, encrypt and serialise its vector. */
  readonly clientEncryptMs: number;
  /** Coordinator time to load, add and serialise all clients' ciphertexts. */
  readonly serverAggregateMs: number;
  /** Time to load, decrypt and decode the summed ciphertexts. */
  readonly decryptMs: number;
  /** Ciphertext bytes one client uploads. */
  readonly bytesPerClient: number;
  /** Bytes of the same update sent as float32 (4 · params). */
  readonly plainBytesPerClient: number;
  /** Median over 5 runs of summing the clients' float32 vectors into a float64 accumulator (the plain coordinator's work). */
  readonly plainSumMs: number;
  /** The CKKS parameter set used. */
  readonly ckks: CkksParams;
  /**
   * Cost of binding the aggregate to its signed contributors (issue 8, item 3): each client hashes its
   * chunks' mask parts and signs; the coordinator extracts every upload's masks; a partner re-adds the listed
   * masks, compares them with the aggregate's and verifies every signature before decrypting.
   */
  readonly binding: {
    /** The re-added masks equal the aggregate's (the check a partner makes). */
    readonly ok: boolean;
    readonly clientSignMs: number;
    readonly serverMaskMs: number;
    readonly partnerCheckMs: number;
    /** Bytes of the encrypted aggregate a partner receives (the baseline). */
    readonly aggregateBytes: number;
    /** Extra bytes a partner receives with it: every contributor's masks, identity key and signature. */
    readonly extraBytesPerPartner: number;
  };
}

/**
 * Run one HE aggregation round in memory.
 *
 * @param opts - clients, vector length, seed, CKKS overrides, tolerance
 * @returns timings, sizes and the accuracy check
 * @throws RangeError for non-positive sizes; FedmartError CONFIG_ERROR for bad CKKS parameters
 * @example
 * const r = await runHeAggregationInMemory({ clients: 10, params: 100_000 });
 * r.correct; // true; r.maxAbsError ≈ 3e-9
 */
export async function runHeAggregationInMemory(opts: HeAggregationOptions): Promise<HeAggregationReport> {
  const { clients, params } = opts;
  if (!Number.isSafeInteger(clients) || clients < 1) throw new RangeError(`runHeAggregationInMemory: clients must be a positive integer, got ${String(clients)}`);
  if (!Number.isSafeInteger(params) || params < 1) throw new RangeError(`runHeAggregationInMemory: params must be a positive integer, got ${String(params)}`);
  const tolerance = opts.tolerance ?? 1e-6;
  if (!(tolerance > 0)) throw new RangeError(`runHeAggregationInMemory: tolerance must be > 0, got ${String(tolerance)}`);

  // Arrange: update-like inputs in [−1, 1], as float32 like real model deltas.
  const rng = createSeededRng(opts.seed ?? 1);
  const inputs: Float32Array[] = [];
  for (let k = 0; k < clients; k++) {
    const v = new Float32Array(params);
    for (let i = 0; i < params; i++) v[i] = rng.nextFloat() * 2 - 1;
    inputs.push(v);
  }
  const exact = new Float64Array(params);
  for (const v of inputs) for (let i = 0; i < params; i++) exact[i] += v[i]!;

  const client = await createCkksContext(opts.ckks);
  // The coordinator gets the public parameters only, as over the wire.
  const coordinator = await createCkksAggregator(JSON.parse(JSON.stringify(client.params)) as CkksParams);
  try {
    const keys = client.keygen();
    const sk = client.loadSecretKey(keys.secretKey);
    client.encryptVector(new Float32Array(1), sk); // warm-up: derive the encryptor once, outside the timings

    let t = performance.now();
    const uploads = inputs.map((v) => client.encryptVector(v, sk));
    const clientEncryptMs = (performance.now() - t) / clients;
    const bytesPerClient = uploads[0]!.reduce((a, b) => a + b.byteLength, 0);

    t = performance.now();
    const sum = coordinator.addCiphertexts(uploads);
    const serverAggregateMs = performance.now() - t;

    // Contributor binding, measured in the same run.
    const ids = uploads.map(() => generateEd25519KeyPair());
    const statement = (masks: Uint8Array[]) => {
      const h = sha256.create();
      for (const m of masks) h.update(m);
      return h.digest();
    };
    t = performance.now();
    const signatures = uploads.map((u, k) => signEd25519(ids[k]!.secretKey, statement(client.maskParts(u))));
    const clientSignMs = (performance.now() - t) / clients;
    t = performance.now();
    const masks = uploads.map((u) => coordinator.maskParts(u));
    const serverMaskMs = performance.now() - t;
    t = performance.now();
    let bindingOk = masks.every((m, k) => verifyEd25519(ids[k]!.publicKey, statement(m), signatures[k]!));
    const expectedMasks = client.sumMasks(masks);
    const actualMasks = client.maskParts(sum);
    bindingOk &&= actualMasks.every((m, i) => equalBytes(m, expectedMasks[i]!));
    const partnerCheckMs = performance.now() - t;
    const aggregateBytes = sum.reduce((a, b) => a + b.byteLength, 0);
    const extraBytesPerPartner = masks.reduce((a, m) => a + m.reduce((b, c) => b + c.byteLength, 0) + 32 + 64, 0);

    t = performance.now();
    const decrypted = client.decryptVector(sum, sk, params);
    const decryptMs = performance.now() - t;
    sk.dispose();

    let maxAbsError = 0;
    for (let i = 0; i < params; i++) {
      const e = Math.abs(decrypted[i]! - exact[i]!);
      if (Number.isNaN(e)) maxAbsError = Infinity; // a NaN slot is infinitely wrong
      else if (e > maxAbsError) maxAbsError = e;
    }

    return {
      clients,
      params,
      correct: maxAbsError <= tolerance,
      maxAbsError,
      tolerance,
      clientEncryptMs,
      serverAggregateMs,
      decryptMs,
      bytesPerClient,
      plainBytesPerClient: 4 * params,
      plainSumMs: measurePlainSum(inputs, params),
      ckks: client.params,
      binding: { ok: bindingOk, clientSignMs, serverMaskMs, partnerCheckMs, aggregateBytes, extraBytesPerPartner },
    };
  } finally {
    coordinator.dispose();
    client.dispose();
  }
}

/** Median of 5 timed plain sums (after whatever JIT warm-up the first run gives). */
function measurePlainSum(inputs: readonly Float32Array[], params: number): number {
  const times: number[] = [];
  let sink = 0;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    const acc = new Float64Array(params);
    for (const v of inputs) for (let i = 0; i < params; i++) acc[i] += v[i]!;
    times.push(performance.now() - t);
    sink += acc[0]!;
  }
  times.sort((a, b) => a - b);
  // `sink` depends on every run, so no run's loop is dead code.
  return times[2]! + 0 * (Number.isFinite(sink) ? 0 : 1);
}
