/**
 * CKKS operations for vertical logistic regression: encrypted residuals,
 * encrypted per-feature gradients computed on a feature holder's own
 * columns, additive masks, and key-holder decryption with noise flooding.
 *
 * Protocol this serves (Hardy et al., "Private federated learning on
 * vertically partitioned data via entity resolution and additively
 * homomorphic encryption", arXiv:1711.10677, 2017; in the two-party form of
 * FATE's hetero-LR where the label holder holds the key, Yang et al., ACM
 * TIST 2019): the key holder encrypts the residual vector d (one value per
 * aligned row, packed into slots); a feature holder with plaintext columns
 * X (rows × dims) computes [[Xᵀd + r]] for a random mask r of its own, the
 * key holder decrypts the masked vector, and the feature holder subtracts r.
 *
 * Packing (why only P−1 + log2(S/P) rotations per gradient, S = N/2 slots,
 * P = next power of two ≥ dims). With rot_k(v)[s] = v[s+k] (SEAL's
 * rotate-left) and "diagonal" plaintexts p_t[i] = X[i, (i − t) mod P]
 * (zero when that column index ≥ dims):
 *   c_t  = Σ_chunks [[d]] ⊙ p_t                       (slot i: d_i·X[i, i−t])
 *   H    = Σ_t rot_t(c_t)                              (Horner: rot_1 only)
 *   R    = H + rot_P(H) + rot_2P(…) … up to S/2       (sum of each residue class mod P)
 * and slot j of R holds Σ_i d_i·X[i, j] for every j < dims (replicated every
 * P slots). The Halevi–Shoup diagonal method (CRYPTO 2014) restricted to a
 * P-periodic layout. Galois keys are needed only for the power-of-two steps
 * 1, 2, 4, …, S/2.
 *
 * Scales and levels. Residuals are encrypted at scale Δ = 2^scaleBits under
 * all data primes; plaintext columns are encoded at Δ; products, rotations,
 * the mask and all sums live at Δ² on the top level; one `rescaleToNext`
 * brings the result to ≈Δ, one prime down. The mask is uniform in
 * [−maskBound, maskBound) on EVERY slot (replicas included), drawn from the
 * CSPRNG, so the key holder sees each gradient coordinate plus an
 * independent uniform mask: statistical distance ≤ |g|/maskBound per
 * coordinate (|Xᵀd| ≤ rows·max|x|, so with standardised features and
 * maskBound 2^30 this is ≲ 2^-12 for a 4096-row batch; raise maskBound for
 * heavier-tailed columns — precision allows up to ≈ 2^40 at Δ = 2^40).
 *
 * Decryption leakage. CKKS decryptions carry the encryption error, and
 * handing them back to someone who knows the ciphertext enables key recovery
 * (Li & Micciancio, EUROCRYPT 2021). The key holder therefore adds Gaussian
 * "flooding" noise to the decoded values before returning them
 * ({@link VerticalCkksKeyHolder.decryptMasked} `floodStd`), as analysed by
 * Li, Micciancio, Schultz and Sorrell (CRYPTO 2022). The default flood (2^-10
 * on a sum over a batch, i.e. ≈ 2.4e-7 per gradient coordinate for a
 * 4096-row batch) is far above the CKKS error (≈ 1e-6 on values of 2^30 after
 * the FFT, relative to the sum) yet far below what moves training.
 *
 * A malicious feature holder. {@link VerticalCkksKeyHolder.decryptMasked}
 * decrypts only ciphertexts of the shape an honest gradient has (2 parts,
 * one level below the top, scale exactly Δ²/q_last) and returns only the
 * first `length` slots — the caller passes the width the feature holder
 * declared at setup. A ciphertext does not say how many of its N/2 slots are
 * "used": anything the feature holder can build from [[d]] with Galois keys
 * and plaintext products is an affine map A·d + b, and its first `length`
 * slots are X_kᵀd + b for X_k = Aᵀ — exactly what an honest holder claiming
 * those features learns. So the bound is the declared width per step, not
 * the honesty of the computation (see `vertical-leakage.ts` for what that
 * width still reveals, and `label-holder.ts` for the whole argument).
 * Amplified products of a residual ciphertext are gradient-shaped; they
 * would expose linear functions of its encryption error (hints on the
 * secret key, Li & Micciancio 2021) to a feature holder that knew the
 * residuals exactly, which is why the label holder never lets a residual be
 * exactly predictable (secret initial weights, `label-holder.ts`).
 * No constant-time guarantees beyond SEAL's; secrets are not wiped from
 * wasm memory.
 *
 * Pure: no I/O; masks and noise come from the platform CSPRNG.
 */
import { FedmartError } from '../errors.ts';
import { cryptoRandomSource, gaussianNoise, type RandomSource } from '../dp/gaussian.ts';
import { describe } from './ckks-aggregator.ts';
import { buildSealCkksRuntime, disposeSecretKeyMaterial, loadSealObject, resolveCkksParams, sealHeaderProblem, type CkksParams, type SealCkksRuntime } from './ckks-params.ts';

/** Default bound of the uniform additive mask on encrypted gradients (see the module doc). */
export const DEFAULT_GRADIENT_MASK_BOUND = 2 ** 30;
/** Default standard deviation of the flooding noise the key holder adds to decrypted masked sums. */
export const DEFAULT_DECRYPT_FLOOD_STD = 2 ** -10;

/** Key material the vertical key holder creates. Only `galoisKeys` ever leaves it. */
export interface VerticalCkksKeyBytes {
  /** Secret key; stays with the key holder. */
  readonly secretKey: Uint8Array;
  /** Galois (rotation) keys for steps 1, 2, 4, …, slots/2: public, sent to feature holders. */
  readonly galoisKeys: Uint8Array;
}

/** Opaque handle on a loaded secret key (serialises to its `kind` only). */
export interface VerticalCkksSecretKey {
  readonly kind: 'vertical-ckks-secret-key';
  /** Free the wasm memory holding the key. */
  dispose(): void;
}

/** Key-holder side: make keys, encrypt residuals, decrypt masked gradients. */
export interface VerticalCkksKeyHolder {
  /** Public parameters (share them with feature holders). */
  readonly params: CkksParams;
  /** Values per ciphertext. */
  readonly slotCount: number;
  /** @returns a fresh secret key and the Galois keys feature holders need. */
  keygen(): VerticalCkksKeyBytes;
  /**
   * @param bytes - the secret key from {@link keygen}
   * @returns an opaque handle
   * @throws FedmartError CRYPTO_ERROR for bytes that are not a secret key under these parameters
   */
  loadSecretKey(bytes: Uint8Array): VerticalCkksSecretKey;
  /**
   * Encrypt a vector (symmetric, seed-compressed), `slotCount` values per chunk.
   * @param values - finite values, e.g. residuals σ(z) − y
   * @param sk - the secret key
   * @returns one serialised ciphertext per chunk
   * @throws FedmartError INVALID_UPDATE for non-finite values
   */
  encrypt(values: Float64Array, sk: VerticalCkksSecretKey): Uint8Array[];
  /**
   * Decrypt a masked gradient ciphertext and return its first `length` slots,
   * plus Gaussian flooding noise (see the module doc).
   * @param ciphertext - from {@link VerticalCkksEvaluator.maskedColumnSums}
   * @param sk - the secret key
   * @param length - number of slots to return (the feature holder's dims), ≤ slotCount
   * @param floodStd - noise std added to each value (default {@link DEFAULT_DECRYPT_FLOOD_STD}; 0 only in tests)
   * @returns the flooded masked values
   * @throws FedmartError INVALID_MESSAGE if the bytes are not a ciphertext under these parameters, or not of the level and scale of a maskedColumnSums output
   */
  decryptMasked(ciphertext: Uint8Array, sk: VerticalCkksSecretKey, length: number, floodStd?: number, rng?: RandomSource): Float64Array;
  /** Free the wasm objects. */
  dispose(): void;
}

/** Feature-holder side: homomorphic column sums on its own plaintext columns. No key that decrypts. */
export interface VerticalCkksEvaluator {
  readonly params: CkksParams;
  readonly slotCount: number;
  /**
   * Compute [[Σ_i d_i·X[i, j] + mask_j]] for j < dims (see the module doc).
   * @param residualChunks - the key holder's encrypted residuals for `rows` rows
   * @param x - the feature holder's rows in the same order, row-major, `rows × dims`
   * @param rows - number of rows (≤ chunks × slotCount)
   * @param dims - number of columns
   * @param mask - `slotCount` mask values, one per slot (use {@link uniformMask}); subtract `mask[j]` from decrypted slot j
   * @returns one serialised ciphertext
   * @throws FedmartError INVALID_MESSAGE for chunks that do not load or a chunk count that does not fit `rows`
   */
  maskedColumnSums(residualChunks: ReadonlyArray<Uint8Array>, x: Float32Array | Float64Array, rows: number, dims: number, mask: Float64Array): Uint8Array;
  /** Free the wasm objects. */
  dispose(): void;
}

const secretKeys = new WeakMap<object, { owner: object; sk: ReturnType<SealCkksRuntime['seal']['SecretKey']> | undefined; encryptor?: ReturnType<SealCkksRuntime['seal']['Encryptor']>; decryptor?: ReturnType<SealCkksRuntime['seal']['Decryptor']> }>();

/** Power-of-two rotation steps 1, 2, …, slots/2. */
function galoisSteps(slots: number): Int32Array {
  const steps: number[] = [];
  for (let s = 1; s < slots; s *= 2) steps.push(s);
  return Int32Array.from(steps);
}

/**
 * A uniform random mask in [−bound, bound) from the CSPRNG (53-bit uniforms).
 * @param n - length
 * @param bound - half-width, > 0
 * @param rng - byte source (default the platform CSPRNG)
 * @returns the mask
 */
export function uniformMask(n: number, bound = DEFAULT_GRADIENT_MASK_BOUND, rng: RandomSource = cryptoRandomSource): Float64Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`uniformMask: n must be an integer >= 0, got ${String(n)}`);
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`uniformMask: bound must be a finite number > 0, got ${String(bound)}`);
  const bytes = new Uint8Array(n * 8);
  rng.fill(bytes);
  const view = new DataView(bytes.buffer);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = (view.getUint32(8 * i, true) >>> 11) * 2 ** 32 + view.getUint32(8 * i + 4, true);
    out[i] = (k / 2 ** 53) * 2 * bound - bound;
  }
  bytes.fill(0);
  return out;
}

function loadCiphertext(rt: SealCkksRuntime, bytes: unknown, into: ReturnType<SealCkksRuntime['seal']['CipherText']>, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new FedmartError('INVALID_MESSAGE', `${what}: expected a serialised CKKS ciphertext (Uint8Array), got ${describe(bytes)}`);
  const problem = sealHeaderProblem(bytes);
  if (problem !== null) throw new FedmartError('INVALID_MESSAGE', `${what}: expected a serialised CKKS ciphertext, got ${problem}; forward the peer's bytes unchanged`);
  try {
    into.loadArray(rt.context, bytes);
  } catch (err) {
    throw new FedmartError('INVALID_MESSAGE', `${what}: expected a CKKS ciphertext under the session's parameters, but SEAL rejected it (${String(err)}); both parties must use the same CKKS parameters`, { cause: err });
  }
}

/**
 * Create the key holder's side (the label holder in vertical LR).
 * @param params - public CKKS parameters (defaults: N 8192, primes [60,40,40,60], Δ 2^40)
 * @returns the key-holder operations
 * @throws FedmartError CONFIG_ERROR for parameters SEAL rejects, or fewer than two data primes (one is consumed by the rescale)
 */
export async function createVerticalCkksKeyHolder(params: Partial<CkksParams> = {}): Promise<VerticalCkksKeyHolder> {
  const resolved = resolveCkksParams(params);
  const rt = await buildSealCkksRuntime(resolved);
  checkLevels(rt, resolved);
  const { seal, context } = rt;
  const encoder = seal.CKKSEncoder(context);
  const owner = {};
  const compression = rt.compression as never;
  const expected = gradientCiphertextShape(rt);

  const secretOf = (key: unknown, fn: string) => {
    const s = typeof key === 'object' && key !== null ? secretKeys.get(key) : undefined;
    if (s === undefined || s.owner !== owner) throw new TypeError(`${fn}: expected a secret key from this key holder's loadSecretKey, got ${describe(key)}`);
    if (s.sk === undefined) throw new TypeError(`${fn}: this secret key was disposed`);
    return s as typeof s & { sk: NonNullable<typeof s.sk> };
  };

  return {
    params: resolved,
    slotCount: rt.slotCount,
    keygen() {
      const kg = seal.KeyGenerator(context);
      try {
        const sk = kg.secretKey();
        const secretKey = sk.saveArray(compression);
        sk.delete();
        const gk = kg.createGaloisKeysSerializable(galoisSteps(rt.slotCount));
        const galoisKeys = gk.saveArray(compression);
        gk.delete();
        return { secretKey, galoisKeys };
      } finally {
        kg.delete();
      }
    },
    loadSecretKey(bytes) {
      const sk = loadSealObject(context, 'SecretKey', () => seal.SecretKey(), bytes, (err) => `loadSecretKey: SEAL rejected the key (${String(err)}); it must come from keygen under the same parameters`);
      const internals: { owner: object; sk: typeof sk | undefined; encryptor?: ReturnType<typeof seal.Encryptor>; decryptor?: ReturnType<typeof seal.Decryptor> } = { owner, sk };
      const handle: VerticalCkksSecretKey = Object.freeze({
        kind: 'vertical-ckks-secret-key' as const,
        dispose() {
          disposeSecretKeyMaterial(internals);
        },
      });
      secretKeys.set(handle, internals);
      return handle;
    },
    encrypt(values, key) {
      if (!(values instanceof Float64Array)) throw new TypeError(`encrypt: values must be a Float64Array, got ${describe(values)}`);
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v - v !== 0) throw new FedmartError('INVALID_UPDATE', `encrypt: expected finite values, got ${v} at index ${i}; check the model for divergence`);
      }
      const s = secretOf(key, 'encrypt');
      if (s.encryptor === undefined) {
        const kg = seal.KeyGenerator(context, s.sk);
        const pk = kg.createPublicKey();
        s.encryptor = seal.Encryptor(context, pk, s.sk);
        pk.delete();
        kg.delete();
      }
      const slots = rt.slotCount;
      const buf = new Float64Array(slots);
      const pt = seal.PlainText();
      const out: Uint8Array[] = [];
      try {
        for (let start = 0; start < Math.max(values.length, 1); start += slots) {
          const end = Math.min(values.length, start + slots);
          buf.fill(0);
          buf.set(values.subarray(start, end));
          encoder.encode(buf, rt.scale, pt);
          const ser = s.encryptor.encryptSymmetricSerializable(pt);
          try {
            out.push(ser.saveArray(compression));
          } finally {
            ser.delete();
          }
        }
      } finally {
        pt.delete();
        buf.fill(0);
      }
      return out;
    },
    decryptMasked(ciphertext, key, length, floodStd = DEFAULT_DECRYPT_FLOOD_STD, rng = cryptoRandomSource) {
      const s = secretOf(key, 'decryptMasked');
      if (!Number.isSafeInteger(length) || length < 0 || length > rt.slotCount) throw new RangeError(`decryptMasked: length must be an integer in [0, ${rt.slotCount}], got ${String(length)}`);
      const ct = seal.CipherText();
      const pt = seal.PlainText();
      try {
        loadCiphertext(rt, ciphertext, ct, 'decryptMasked');
        checkGradientShape(ct, expected, resolved);
        s.decryptor ??= seal.Decryptor(context, s.sk);
        s.decryptor.decrypt(ct, pt);
        const decoded = encoder.decode(pt) as Float64Array;
        const out = Float64Array.from(decoded.subarray(0, length));
        const noise = gaussianNoise(length, floodStd, rng);
        for (let i = 0; i < length; i++) out[i]! += noise[i]!;
        decoded.fill(0);
        return out;
      } finally {
        ct.delete();
        pt.delete();
      }
    },
    dispose() {
      encoder.delete();
      context.delete();
    },
  };
}

/** Level and scale of an honest {@link VerticalCkksEvaluator.maskedColumnSums} output. */
interface GradientShape {
  /** SEAL parms id one level below the top data level (one prime consumed by the rescale). */
  readonly parmsId: readonly bigint[];
  readonly primes: number;
  /** Δ² / q_last: SEAL's scale after multiplyPlain at Δ·Δ and rescaleToNext. */
  readonly scale: number;
}

function gradientCiphertextShape(rt: SealCkksRuntime): GradientShape {
  const top = rt.context.firstContextData;
  const below = top.nextContextData;
  const primes = top.parms.coeffModulus;
  const last = primes[primes.length - 1]!;
  return { parmsId: [...below.parmsId.values], primes: rt.dataPrimeCount - 1, scale: (rt.scale * rt.scale) / Number(last) };
}

/**
 * Refuse anything but the shape of an honest gradient ciphertext before it
 * is decrypted (the threat model is in the module doc of
 * `client-node/src/vertical/label-holder.ts`): 2 parts (no ciphertext ×
 * ciphertext product, which without relinearisation keys is the only way to
 * grow), NTT form, the parms id one level below the top (so a fresh residual
 * ciphertext echoed back is refused), and exactly the scale Δ²/q_last — the
 * scale is metadata the sender writes, and decoding divides by it: a smaller
 * declared scale would make the decryption error, which carries information
 * on the secret key (Li & Micciancio, EUROCRYPT 2021), show through the
 * flooding noise.
 */
function checkGradientShape(ct: { size: number; isNttForm: boolean; parmsId: { values: BigUint64Array }; coeffModulusSize: number; scale: number }, want: GradientShape, params: CkksParams): void {
  const got = [...ct.parmsId.values];
  const sameLevel = got.length === want.parmsId.length && got.every((v, i) => v === want.parmsId[i]);
  if (ct.size !== 2 || !ct.isNttForm || !sameLevel || ct.scale !== want.scale) {
    throw new FedmartError(
      'INVALID_MESSAGE',
      `decryptMasked: expected the gradient ciphertext of maskedColumnSums (2 parts, NTT form, ${want.primes} data prime(s) left, scale 2^${Math.log2(want.scale).toFixed(4)}), got ${ct.size} parts, ${ct.isNttForm ? 'NTT' : 'coefficient'} form, ${ct.coeffModulusSize} prime(s)${sameLevel ? '' : ' (another level)'}, scale 2^${Math.log2(ct.scale).toFixed(4)}; refusing to decrypt it — a residual ciphertext echoed back or a re-scaled one is not a gradient (CKKS parameters ${params.polyModulusDegree}/[${params.coeffModulusBits.join(',')}]/2^${params.scaleBits})`,
    );
  }
}

function checkLevels(rt: SealCkksRuntime, params: CkksParams): void {
  if (rt.dataPrimeCount < 2) {
    throw new FedmartError('CONFIG_ERROR', `vertical CKKS needs at least two data primes (one is consumed by the rescale after plaintext multiplication), got coefficient moduli [${params.coeffModulusBits.join(',')}]; use e.g. [60,40,40,60]`);
  }
}

/**
 * Create a feature holder's evaluator from public parameters and the key
 * holder's Galois keys. It cannot decrypt anything.
 * @param params - the session's public CKKS parameters
 * @param galoisKeys - serialised Galois keys from {@link VerticalCkksKeyHolder.keygen}
 * @returns the evaluator
 * @throws FedmartError CRYPTO_ERROR if the Galois keys do not load under these parameters
 */
export async function createVerticalCkksEvaluator(params: Partial<CkksParams>, galoisKeys: Uint8Array): Promise<VerticalCkksEvaluator> {
  const resolved = resolveCkksParams(params);
  const rt = await buildSealCkksRuntime(resolved);
  checkLevels(rt, resolved);
  const { seal, context } = rt;
  if (!(galoisKeys instanceof Uint8Array)) throw new TypeError(`createVerticalCkksEvaluator: galoisKeys must be a Uint8Array, got ${describe(galoisKeys)}`);
  const problem = sealHeaderProblem(galoisKeys);
  if (problem !== null) throw new FedmartError('CRYPTO_ERROR', `createVerticalCkksEvaluator: expected serialised Galois keys, got ${problem}`);
  const gk = seal.GaloisKeys();
  try {
    gk.loadArray(context, galoisKeys);
  } catch (err) {
    gk.delete();
    throw new FedmartError('CRYPTO_ERROR', `createVerticalCkksEvaluator: SEAL rejected the Galois keys (${String(err)}); they must come from the key holder's keygen under the same parameters`, { cause: err });
  }
  const encoder = seal.CKKSEncoder(context);
  const evaluator = seal.Evaluator(context);
  const compression = rt.compression as never;
  const slots = rt.slotCount;

  return {
    params: resolved,
    slotCount: slots,
    maskedColumnSums(residualChunks, x, rows, dims, mask) {
      if (!Array.isArray(residualChunks) || residualChunks.length === 0) throw new FedmartError('INVALID_MESSAGE', `maskedColumnSums: expected at least one residual ciphertext, got ${describe(residualChunks)}`);
      if (!Number.isSafeInteger(rows) || rows < 1) throw new RangeError(`maskedColumnSums: rows must be a positive integer, got ${String(rows)}`);
      if (!Number.isSafeInteger(dims) || dims < 1 || dims > slots) throw new RangeError(`maskedColumnSums: dims must be an integer in [1, ${slots}], got ${String(dims)}`);
      if (x.length !== rows * dims) throw new RangeError(`maskedColumnSums: x has ${x.length} values, expected rows × dims = ${rows * dims}`);
      if (!(mask instanceof Float64Array) || mask.length !== slots) throw new RangeError(`maskedColumnSums: mask must be a Float64Array of ${slots} values (one per slot)`);
      const chunks = residualChunks.length;
      if (Math.ceil(rows / slots) !== chunks) {
        throw new FedmartError('INVALID_MESSAGE', `maskedColumnSums: ${rows} rows need ${Math.ceil(rows / slots)} residual chunks of ${slots} slots, got ${chunks}; the residuals must cover exactly this batch`);
      }
      let P = 1;
      while (P < dims) P *= 2;
      const cts = residualChunks.map(() => seal.CipherText());
      const pt = seal.PlainText();
      const prod = seal.CipherText();
      const diag: (ReturnType<typeof seal.CipherText> | undefined)[] = [];
      const acc = seal.CipherText();
      const tmp = seal.CipherText();
      const buf = new Float64Array(slots);
      try {
        residualChunks.forEach((bytes, c) => {
          loadCiphertext(rt, bytes, cts[c]!, `maskedColumnSums chunk ${c}`);
          if (cts[c]!.size !== 2 || cts[c]!.coeffModulusSize !== rt.dataPrimeCount || cts[c]!.scale !== rt.scale) {
            throw new FedmartError('INVALID_MESSAGE', `maskedColumnSums chunk ${c}: expected a fresh ciphertext at the top level and scale 2^${resolved.scaleBits}, got size ${cts[c]!.size}, ${cts[c]!.coeffModulusSize} primes, scale 2^${Math.log2(cts[c]!.scale).toFixed(1)}`);
          }
        });
        // c_t = Σ_chunks [[d]] ⊙ p_t, p_t[i] = X[i, (i − t) mod P] (zero outside the columns).
        for (let t = 0; t < P; t++) {
          const ct = seal.CipherText();
          let any = false;
          for (let c = 0; c < chunks; c++) {
            const start = c * slots;
            const end = Math.min(rows, start + slots);
            buf.fill(0);
            let nonzero = false;
            for (let i = start; i < end; i++) {
              const col = (((i - t) % P) + P) % P;
              if (col < dims) {
                const v = x[i * dims + col]!;
                buf[i - start] = v;
                if (v !== 0) nonzero = true;
              }
            }
            if (!nonzero) continue; // multiplyPlain rejects an all-zero plaintext (transparent result)
            encoder.encode(buf, rt.scale, pt);
            evaluator.multiplyPlain(cts[c]!, pt, prod);
            if (!any) ct.copy(prod);
            else evaluator.add(ct, prod, ct);
            any = true;
          }
          if (any) diag.push(ct);
          else {
            ct.delete();
            diag.push(undefined); // an all-zero diagonal contributes nothing
          }
        }
        // H = Σ_t rot_t(c_t) by Horner with rot_1 only.
        let started = false;
        for (let t = P - 1; t >= 0; t--) {
          if (started) evaluator.rotateVector(acc, 1, gk, acc);
          const c = diag[t];
          if (c !== undefined) {
            if (!started) {
              acc.copy(c);
              started = true;
            } else evaluator.add(acc, c, acc);
          }
        }
        if (!started) throw new FedmartError('DATA_ERROR', 'maskedColumnSums: every feature value of this batch is zero; nothing to compute');
        // Sum each residue class mod P.
        for (let s = P; s < slots; s *= 2) {
          evaluator.rotateVector(acc, s, gk, tmp);
          evaluator.add(acc, tmp, acc);
        }
        // Mask every slot at the product's scale and level, then rescale once.
        encoder.encode(mask, acc.scale, pt);
        evaluator.addPlain(acc, pt, acc);
        evaluator.rescaleToNext(acc, acc);
        return acc.saveArray(compression);
      } finally {
        buf.fill(0);
        for (const c of cts) c.delete();
        for (const c of diag) c?.delete();
        pt.delete();
        prod.delete();
        acc.delete();
        tmp.delete();
      }
    },
    dispose() {
      gk.delete();
      encoder.delete();
      evaluator.delete();
      context.delete();
    },
  };
}
