/**
 * CKKS parameter sets and the node-seal loader shared by both sides of
 * homomorphic aggregation (CKKS: J. H. Cheon, A. Kim, M. Kim, Y. Song,
 * "Homomorphic Encryption for Arithmetic of Approximate Numbers",
 * ASIACRYPT 2017; implementation: Microsoft SEAL 4.x through node-seal 6.0.3).
 *
 * Everything here is **public**: a parameter set says how big ciphertexts are
 * and how precise sums will be, never anything about a key. The coordinator
 * builds its aggregator from a {@link CkksParams} alone.
 *
 * Pure: no I/O. node-seal is a WebAssembly module compiled once per process;
 * {@link loadSeal} caches that promise.
 */
import SEALModule from 'node-seal';
import { z } from 'zod';
import { FedmartError } from '../errors.ts';

// node-seal ships a CommonJS (UMD) build whose typings are written as an ES
// module: at run time the default import is the factory itself, while
// TypeScript (NodeNext) sees a namespace whose `default` is the factory.
// Accept both shapes so bundlers and test runners with other interop agree.
type SealFactory = typeof SEALModule.default;
const SEAL: SealFactory =
  typeof SEALModule === 'function' ? (SEALModule as unknown as SealFactory) : (SEALModule as unknown as { default: SealFactory }).default;

/** The node-seal library object (`await SEAL()`). */
export type SealLibrary = Awaited<ReturnType<SealFactory>>;
/** A node-seal context built from a {@link CkksParams}. */
export type SealContext = ReturnType<SealLibrary['Context']>;

let sealPromise: Promise<SealLibrary> | undefined;

/**
 * Load node-seal once. Later calls return the same promise, so the 1 MB wasm
 * module is compiled a single time per process.
 *
 * @returns the SEAL library
 * @throws FedmartError UNAVAILABLE if the wasm module cannot be instantiated
 */
export function loadSeal(): Promise<SealLibrary> {
  if (sealPromise === undefined) {
    sealPromise = SEAL().catch((err: unknown) => {
      sealPromise = undefined; // let a later call retry
      throw new FedmartError('UNAVAILABLE', `expected node-seal's WebAssembly module to load, but it failed (${String(err)}); check that node-seal 6.0.3 is installed and WebAssembly is enabled`, { cause: err });
    });
  }
  return sealPromise;
}

/** Serialisation compression for keys and ciphertexts. */
export const CKKS_COMPRESSIONS = ['zstd', 'zlib', 'none'] as const;
/** One of {@link CKKS_COMPRESSIONS}. */
export type CkksCompression = (typeof CKKS_COMPRESSIONS)[number];

/** Security levels SEAL enforces (HomomorphicEncryption.org standard, 2018). */
export const CKKS_SECURITY_LEVELS = [128, 192, 256] as const;

/**
 * A public CKKS parameter set. Both sides must use the identical set; it is
 * safe to send in the clear and to store.
 */
export const CkksParamsSchema = z
  .object({
    /** Ring dimension N: a power of two; each ciphertext packs N/2 real values. */
    polyModulusDegree: z.number().int().min(1024).max(32768).refine((n) => (n & (n - 1)) === 0, 'must be a power of two'),
    /** Bit sizes of the coefficient-modulus primes; the last one is SEAL's special (key-switching) prime. */
    coeffModulusBits: z.array(z.number().int().min(17).max(60)).min(1).max(16),
    /** log2 of the CKKS scale Δ: values are encoded as round(x·Δ). */
    scaleBits: z.number().int().min(10).max(60),
    /** Bits of classical security SEAL must guarantee for N and Σ bits. */
    securityLevel: z.union([z.literal(128), z.literal(192), z.literal(256)]),
    /** Compression for serialised keys and ciphertexts (zstd measured best: see module doc of ckks.ts). */
    compression: z.enum(CKKS_COMPRESSIONS),
  })
  .strict();

/** A public CKKS parameter set (see {@link CkksParamsSchema}). */
export type CkksParams = z.infer<typeof CkksParamsSchema>;

/**
 * Default parameters: N = 8192 (4096 slots), primes [60, 40, 40, 60] bits
 * (200 of the 218 bits HE-standard allows at 128-bit security for N = 8192),
 * scale 2^40, zstd.
 *
 * Why this is precise enough for summing model updates: a symmetric fresh
 * encryption adds an error polynomial e with coefficients of standard
 * deviation σ ≈ 3.2; evaluated at a slot it is a sum of N such terms, so the
 * slot error is about σ·√N ≈ 290, i.e. 290 / 2^40 ≈ 2.6e-10 after decoding.
 * Summing k ciphertexts grows it by √k. Measured on 10 × 100 000 values in
 * [−1, 1]: max |error| ≈ 3e-9, well inside the 1e-6 target, so scale 2^50
 * (which with [60, 50, 50, 60] = 220 bits would exceed the 218-bit budget)
 * is not needed. Headroom: sums decode correctly while |Σ| ≪ 2^(140−40−1).
 */
export const DEFAULT_CKKS_PARAMS: Readonly<CkksParams> = Object.freeze({
  polyModulusDegree: 8192,
  coeffModulusBits: Object.freeze([60, 40, 40, 60]) as unknown as number[],
  scaleBits: 40,
  securityLevel: 128,
  compression: 'zstd',
});

/**
 * Fill in defaults and validate a parameter set (shape only; whether SEAL
 * accepts the combination is checked when a context is built).
 *
 * @param params - a partial or full parameter set, e.g. parsed from a message
 * @returns a complete, validated copy
 * @throws FedmartError CONFIG_ERROR naming the offending field
 * @example
 * const p = resolveCkksParams({ scaleBits: 30 });
 */
export function resolveCkksParams(params: Partial<CkksParams> = {}): CkksParams {
  if (params === null || typeof params !== 'object') throw new TypeError(`resolveCkksParams: params must be an object, got ${params === null ? 'null' : typeof params}`);
  const merged = { ...DEFAULT_CKKS_PARAMS, coeffModulusBits: [...DEFAULT_CKKS_PARAMS.coeffModulusBits], ...params };
  const parsed = CkksParamsSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FedmartError('CONFIG_ERROR', `invalid CKKS parameters: ${issue.path.join('.') || '(root)'} ${issue.message}; expected e.g. ${JSON.stringify(DEFAULT_CKKS_PARAMS)}`, { details: parsed.error.issues });
  }
  const p = parsed.data;
  const dataBits = dataLevelBits(p);
  if (p.scaleBits >= dataBits) {
    throw new FedmartError('CONFIG_ERROR', `invalid CKKS parameters: scaleBits ${p.scaleBits} must be below the ${dataBits} bits of the data-level modulus (all primes but the last special prime), or sums overflow; lower scaleBits or add a prime`);
  }
  return { ...p, coeffModulusBits: [...p.coeffModulusBits] };
}

/**
 * Bits of the modulus a fresh ciphertext lives under: every prime but SEAL's
 * special prime (the last), or the single prime when there is only one.
 * @param params - a parameter set
 * @returns the sum of the data primes' bit sizes
 */
export function dataLevelBits(params: Pick<CkksParams, 'coeffModulusBits'>): number {
  const bits = params.coeffModulusBits;
  const data = bits.length > 1 ? bits.slice(0, -1) : bits;
  return data.reduce((a, b) => a + b, 0);
}

/** @internal the SEAL objects both sides need; none of them holds a key. */
export interface SealCkksRuntime {
  readonly seal: SealLibrary;
  readonly context: SealContext;
  readonly compression: unknown;
  readonly slotCount: number;
  readonly scale: number;
  readonly dataPrimeCount: number;
}

/**
 * @internal Build a SEAL CKKS context for validated parameters.
 * @param params - output of {@link resolveCkksParams}
 * @returns SEAL library, context and derived constants
 * @throws FedmartError CONFIG_ERROR when SEAL rejects the combination (e.g. too many modulus bits for N at this security level)
 */
export async function buildSealCkksRuntime(params: CkksParams): Promise<SealCkksRuntime> {
  const seal = await loadSeal();
  const N = params.polyModulusDegree;
  const level = params.securityLevel === 128 ? seal.SecurityLevel.tc128 : params.securityLevel === 192 ? seal.SecurityLevel.tc192 : seal.SecurityLevel.tc256;
  const maxBits = seal.CoeffModulus.MaxBitCount(N, level);
  const totalBits = params.coeffModulusBits.reduce((a, b) => a + b, 0);
  if (totalBits > maxBits) {
    throw new FedmartError('CONFIG_ERROR', `invalid CKKS parameters: coefficient modulus has ${totalBits} bits but N=${N} allows at most ${maxBits} bits at ${params.securityLevel}-bit security; drop or shrink a prime, or double polyModulusDegree`);
  }
  let context: SealContext;
  try {
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(N);
    parms.setCoeffModulus(seal.CoeffModulus.Create(N, Int32Array.from(params.coeffModulusBits)));
    context = seal.Context(parms, true, level);
    parms.delete();
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `invalid CKKS parameters ${JSON.stringify(params)}: SEAL refused them (${String(err)}); use DEFAULT_CKKS_PARAMS or a set from the SEAL examples`, { cause: err });
  }
  if (!context.parametersSet()) {
    context.delete();
    throw new FedmartError('CONFIG_ERROR', `invalid CKKS parameters ${JSON.stringify(params)}: SEAL reports them as not set (primes may not exist for these bit sizes and N); use DEFAULT_CKKS_PARAMS`);
  }
  return {
    seal,
    context,
    compression: seal.ComprModeType[params.compression],
    slotCount: N / 2,
    scale: 2 ** params.scaleBits,
    dataPrimeCount: params.coeffModulusBits.length > 1 ? params.coeffModulusBits.length - 1 : 1,
  };
}

/**
 * Number of ciphertext chunks a vector of `length` values needs.
 * @param length - number of real values
 * @param params - the parameter set (N/2 slots per chunk)
 * @returns ⌈length / (N/2)⌉
 */
export function ckksChunkCount(length: number, params: Pick<CkksParams, 'polyModulusDegree'>): number {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`ckksChunkCount: length must be a non-negative integer, got ${String(length)}`);
  return Math.ceil(length / (params.polyModulusDegree / 2));
}

const SEAL_MAGIC = 0xa15e;
const SEAL_HEADER_BYTES = 16;

/**
 * @internal Check the 16-byte SEAL serialisation header (magic 0xA15E,
 * header size, SEAL major version 4, compression 0–2, declared total size)
 * before handing bytes to the wasm loader. A truncated or padded stream can
 * otherwise reach a code path that aborts the wasm instance instead of
 * throwing, so this keeps one bad upload from disturbing the coordinator.
 *
 * @param bytes - serialised SEAL object
 * @returns null when the header is plausible, else what is wrong
 */
export function sealHeaderProblem(bytes: Uint8Array): string | null {
  if (bytes.byteLength < SEAL_HEADER_BYTES) return `${bytes.byteLength} bytes is shorter than the ${SEAL_HEADER_BYTES}-byte SEAL header`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(0, true) !== SEAL_MAGIC || bytes[2] !== SEAL_HEADER_BYTES) return 'not a SEAL serialisation (bad magic or header size)';
  if (bytes[3] !== 4) return `SEAL major version ${bytes[3]}, expected 4`;
  if (bytes[5]! > 2) return `unknown compression mode ${bytes[5]}`;
  const declared = view.getBigUint64(8, true);
  if (declared !== BigInt(bytes.byteLength)) return `header declares ${declared} bytes but ${bytes.byteLength} arrived (truncated or padded)`;
  return null;
}

/**
 * Load serialised SEAL bytes into a fresh SEAL object: the header is checked
 * first ({@link sealHeaderProblem}), and the object is freed if SEAL rejects
 * the bytes, so a bad key or ciphertext never leaks wasm memory.
 *
 * @param context - the SEAL context the bytes were made under
 * @param what - what is loaded, for messages ("SecretKey", "PublicKey", …)
 * @param make - creates the empty SEAL object
 * @param bytes - the serialised object
 * @param rejected - message for bytes with a valid header that SEAL still refuses
 * @returns the loaded object (the caller owns it and must `delete()` it)
 * @throws TypeError when `bytes` is not a Uint8Array; FedmartError CRYPTO_ERROR otherwise
 */
export function loadSealObject<T extends { loadArray(ctx: SealContext, a: Uint8Array): void; delete(): void }>(context: SealContext, what: string, make: () => T, bytes: Uint8Array, rejected: (err: unknown) => string): T {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`load${what}: bytes must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  const problem = sealHeaderProblem(bytes);
  if (problem !== null) throw new FedmartError('CRYPTO_ERROR', `expected a serialised CKKS ${what}, got ${problem}; pass the bytes keygen produced (after unwrapSecretKey for a secret key)`);
  const obj = make();
  try {
    obj.loadArray(context, bytes);
    return obj;
  } catch (err) {
    obj.delete();
    throw new FedmartError('CRYPTO_ERROR', rejected(err), { cause: err });
  }
}

/** SEAL objects behind a secret-key handle (the key and the encryptor/decryptor built from it). */
export interface SecretKeyMaterial {
  sk: { delete(): void } | undefined;
  encryptor?: { delete(): void } | undefined;
  decryptor?: { delete(): void } | undefined;
}

/** Free a secret-key handle's SEAL objects; later use of the handle fails as "disposed". */
export function disposeSecretKeyMaterial(m: SecretKeyMaterial): void {
  m.encryptor?.delete();
  m.decryptor?.delete();
  m.sk?.delete();
  m.sk = undefined;
  m.encryptor = undefined;
  m.decryptor = undefined;
}
