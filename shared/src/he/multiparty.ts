/**
 * n-out-of-n multiparty CKKS (Mouchet, Troncoso-Pastoriza, Bossuat, Hubaux,
 * "Multiparty Homomorphic Encryption from Ring-Learning-with-Errors",
 * PoPETs 2021 (4), §IV) on node-seal 6.0.3: no party ever holds the secret
 * key s = Σ s_i that decrypts, so a coordinator colluding with any n − 1
 * partners still cannot decrypt the last partner's individual ciphertext.
 *
 * Protocol (all polynomials in RNS/NTT form, products pointwise mod q_j):
 *
 * 1. Common reference polynomial a ∈ R_q, uniform, expanded from a public
 *    seed every party knows (the CRP of §IV-A): ChaCha20 (RFC 8439) under
 *    SHA-256("fedmart/he/multiparty/v1/crp" ‖ seed), rejection-sampled mod
 *    each prime. Uniform NTT values are a uniform polynomial (the NTT is a
 *    ring isomorphism R_{q_j} ≅ Z_{q_j}^N).
 * 2. EncKeyGen: party i draws its own SEAL secret key s_i and publishes
 *    p_i = −a·s_i + e_i. SEAL only makes public keys for a fresh a_i, so the
 *    party takes SEAL's (b_i, a_i) = (−a_i·s_i + e_i, a_i) — SEAL's own error
 *    sampler and CSPRNG — and publishes b_i + (a_i − a)·s_i, which is exactly
 *    −a·s_i + e_i. The collective public key is (Σ p_i, a), loaded into a
 *    SEAL PublicKey by editing the raw coefficients of an uncompressed
 *    serialisation (the layout checked in `threshold-feasibility.test.ts`).
 * 3. Partners encrypt with SEAL's public-key encryption under that key; the
 *    coordinator adds ciphertexts with SEAL as today.
 * 4. Decryption (the CKS protocol with target key 0, §IV-C): for an
 *    aggregate (c0, c1) each party sends h_i = c1·s_i + e_smg,i; then
 *    c0 + Σ h_i = m + e_ct + Σ e_smg,i decodes to the sum. Every one of the n
 *    shares is needed: any n − 1 leave c1·s_j of the missing party j, which
 *    is uniform-looking (RLWE), so the result is garbage. A party that drops
 *    after uploading therefore fails the round (t-out-of-n needs Shamir
 *    sharing of s_i, the paper's §V extension: not built).
 *
 * Smudging. e_smg,i is uniform in [−B_smg, B_smg) per coefficient from
 * node:crypto's CSPRNG, with B_smg = 2^40 · N · B_ct, where B_ct bounds every
 * coefficient of the aggregate's own noise e_ct in the worst case: m
 * public-key encryptions under (Σ p_i, a) each add e·u + e0 + e1·s with
 * ‖e‖∞ ≤ n·21, ‖s‖₁ ≤ n·N, ‖u‖₁ ≤ N and SEAL's errors bounded by 21 (its
 * centred binomial / 6σ-clipped Gaussian, σ = 3.2), so
 * B_ct = m·21·(2nN + 1) with m ≤ n. By the smudging lemma (Asharov, Jain,
 * López-Alt, Tromer, Vaikuntanathan, Wichs, EUROCRYPT 2012, Lemma 2.1)
 * e_ct + e_smg is then within statistical distance N·B_ct/B_smg = 2^−40 of
 * e_smg alone: one honest party's share hides the ciphertext noise (and so
 * s, cf. Li & Micciancio, EUROCRYPT 2021) from the others and from whoever
 * combines. That costs precision: values are encoded at scale 2^112
 * ({@link MULTIPARTY_SCALE_BITS}) instead of 2^40 so that the smudging noise
 * (≈ B_smg·√(nN/3) per slot) stays ≈ 2^−30 (n = 3) to 2^−18 (n = 100) after
 * decoding, and sums must stay below 2^26 in absolute value so that
 * Δ·Σ + noise < q/2 with the 140-bit data modulus.
 *
 * Wire formats (all little-endian): a public share is "FMPK" ‖ u32 N ‖
 * u32 primes ‖ N·primes uint64 (key level, every prime); a decryption share
 * is "FMDS" ‖ u32 N ‖ u32 primes ‖ N·primes uint64 (the ciphertext's level).
 *
 * What this module does not do: decide when a party may produce a share.
 * A partner must only answer for an aggregate that carries ≥ minClients
 * contributors' signatures whose masks sum to the aggregate's (the existing
 * item-3 check), or the coordinator could ask it to decrypt one partner's
 * ciphertext; and a partner must reveal its key share and its ciphertext
 * only after every party's signed commitment to theirs is in (commit-then-
 * reveal, `protocol-secure.ts` multipartyCommitment), or a cheater shown the
 * others first could publish a rogue share −a·s_B + e − Σ p_j or upload −c_C.
 * Pure: no I/O.
 */
import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes } from '../crypto/bytes.ts';
import { expandSeed } from '../crypto/prg.ts';
import { FedmartError } from '../errors.ts';
import { describe } from './ckks-aggregator.ts';
import { buildSealCkksRuntime, loadSealObject, resolveCkksParams, type CkksParams } from './ckks-params.ts';

/** log2 of the encoding scale of multiparty ciphertexts (see the module doc). */
export const MULTIPARTY_SCALE_BITS = 112;
/** Statistical security of the smudging noise, bits. */
export const SMUDGING_SECURITY_BITS = 40;
/** Largest number of key parties the noise analysis (and the 2^26 headroom) is done for. */
export const MULTIPARTY_MAX_PARTIES = 100;
/** Bound on every coefficient of SEAL's error distribution (CBD / 6σ-clipped Gaussian, σ = 3.2). */
const SEAL_ERROR_BOUND = 21;

const PUBLIC_SHARE_MAGIC = 0x4b504d46; // "FMPK"
const DECRYPTION_SHARE_MAGIC = 0x53444d46; // "FMDS"
const SHARE_HEADER_BYTES = 12;

/**
 * log2 of B_smg for n key parties and m ≤ n contributors (module doc):
 * ⌈log2(2^40 · N · m · 21 · (2nN + 1))⌉.
 * @param parties - n
 * @param polyModulusDegree - N
 * @returns bits of the smudging bound
 */
export function smudgingBits(parties: number, polyModulusDegree: number): number {
  const noiseBound = parties * SEAL_ERROR_BOUND * (2 * parties * polyModulusDegree + 1);
  return Math.ceil(SMUDGING_SECURITY_BITS + Math.log2(polyModulusDegree) + Math.log2(noiseBound));
}

/** One party's key material: the SEAL secret key it keeps, and the share of the collective key it publishes. */
export interface MultipartyKeyShare {
  /** SEAL SecretKey bytes (uncompressed); never leaves the party */
  secretKey: Uint8Array;
  /** p_i = −a·s_i + e_i, to publish */
  publicShare: Uint8Array;
}

/** n-out-of-n multiparty CKKS over one parameter set and one party count. */
export interface MultipartyCkks {
  readonly params: CkksParams;
  readonly parties: number;
  readonly slotCount: number;
  /** log2 of the smudging bound each decryption share uses */
  readonly smudgingBits: number;
  /**
   * EncKeyGen for one party.
   * @param crpSeed - the public seed of the common reference polynomial (≥ 16 bytes, the same for every party)
   */
  createKeyShare(crpSeed: Uint8Array): MultipartyKeyShare;
  /**
   * The collective public key (Σ p_i, a) as SEAL PublicKey bytes.
   * @param crpSeed - the seed the shares were made with
   * @param publicShares - exactly `parties` shares
   * @throws FedmartError INVALID_MESSAGE for a wrong count or malformed share
   */
  combinePublicKey(crpSeed: Uint8Array, publicShares: readonly Uint8Array[]): Uint8Array;
  /** Encrypt a vector under the collective key, one ciphertext per N/2 values. */
  encryptVector(publicKey: Uint8Array, values: Float64Array | Float32Array): Uint8Array[];
  /** Sum clients' encrypted vectors chunk by chunk (what the coordinator does). */
  addCiphertexts(perClient: ReadonlyArray<ReadonlyArray<Uint8Array>>): Uint8Array[];
  /**
   * This party's decryption shares h_i = c1·s_i + e_smg of each chunk.
   * @param secretKey - the party's own SEAL secret key bytes
   * @param chunks - the aggregate's ciphertext chunks
   */
  decryptionShares(secretKey: Uint8Array, chunks: ReadonlyArray<Uint8Array>): Uint8Array[];
  /**
   * c0 + Σ h_i, decoded.
   * @param chunks - the aggregate's ciphertext chunks
   * @param shares - one array of per-chunk shares per party; all `parties` are needed
   * @param length - values to return
   * @throws FedmartError ROUND_FAILED when fewer than `parties` share sets are given (n-out-of-n: a dropout fails the decryption); INVALID_MESSAGE for malformed shares
   */
  combineDecryption(chunks: ReadonlyArray<Uint8Array>, shares: ReadonlyArray<ReadonlyArray<Uint8Array>>, length: number): Float64Array;
  /**
   * What c0 + Σ of only the given shares decodes to, without the n-share check: what a
   * coalition missing a party would get. For tests and the adversarial checks.
   */
  partialDecryptUnsafe(chunks: ReadonlyArray<Uint8Array>, shares: ReadonlyArray<ReadonlyArray<Uint8Array>>, length: number): Float64Array;
  dispose(): void;
}

/** Read/write the trailing `words` uint64 of a SEAL uncompressed serialisation (the RNS coefficients). */
function tailWords(raw: Uint8Array, words: number): BigUint64Array {
  const start = raw.byteLength - words * 8;
  if (start < 0) throw new FedmartError('INTERNAL', `multiparty CKKS: a ${raw.byteLength}-byte SEAL serialisation is shorter than its ${words} coefficients`);
  return alignedWords(raw.subarray(start));
}
/**
 * The uint64 words of `bytes`, copied into a fresh buffer: bytes that arrive over Socket.IO are Node Buffers,
 * views into a shared pool at any offset, whose `.slice()` is a view too (not a copy).
 */
function alignedWords(bytes: Uint8Array): BigUint64Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new BigUint64Array(copy.buffer);
}
function setTailWords(raw: Uint8Array, words: BigUint64Array): void {
  raw.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), raw.byteLength - words.byteLength);
}

function encodeShare(magic: number, N: number, primes: number, words: BigUint64Array): Uint8Array {
  const head = new Uint8Array(SHARE_HEADER_BYTES);
  const view = new DataView(head.buffer);
  view.setUint32(0, magic, true);
  view.setUint32(4, N, true);
  view.setUint32(8, primes, true);
  return concatBytes(head, new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
}

function decodeShare(what: string, magic: number, N: number, primes: number, q: readonly bigint[], bytes: unknown): BigUint64Array {
  if (!(bytes instanceof Uint8Array)) throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: ${what}: expected bytes, got ${describe(bytes)}`);
  const expected = SHARE_HEADER_BYTES + 8 * N * primes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength !== expected || view.getUint32(0, true) !== magic || view.getUint32(4, true) !== N || view.getUint32(8, true) !== primes) {
    throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: ${what}: expected ${expected} bytes for N = ${N} and ${primes} primes with its header, got ${bytes.byteLength}; the party must send the module's output unchanged`);
  }
  const words = alignedWords(bytes.subarray(SHARE_HEADER_BYTES));
  for (let j = 0; j < primes; j++) {
    for (let k = j * N; k < (j + 1) * N; k++) if (words[k]! >= q[j]!) throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: ${what}: coefficient ${k} is not reduced modulo prime ${j}`);
  }
  return words;
}

/**
 * The common reference polynomial a: for each prime q_j, N values uniform in
 * [0, q_j) by rejection from ChaCha20 words (two per candidate, masked to the
 * prime's bit length).
 */
function commonReferencePolynomial(seed: Uint8Array, N: number, q: readonly bigint[]): BigUint64Array {
  if (!(seed instanceof Uint8Array) || seed.length < 16) throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: crpSeed: expected at least 16 bytes, got ${describe(seed)}`);
  const key = sha256(concatBytes(new TextEncoder().encode('fedmart/he/multiparty/v1/crp'), seed));
  const out = new BigUint64Array(N * q.length);
  const BLOCK = 4096;
  let words: Uint32Array = new Uint32Array(0);
  let pos = 0;
  let counter = 0;
  for (let j = 0; j < q.length; j++) {
    const qj = q[j]!;
    const bits = qj.toString(2).length;
    const hiMask = bits >= 64 ? 0xffffffff : 2 ** (bits - 32) - 1;
    for (let k = j * N; k < (j + 1) * N; ) {
      if (pos + 2 > words.length) {
        words = expandSeed(key, BLOCK, { counter });
        counter += BLOCK / 16;
        pos = 0;
      }
      const candidate = (BigInt(words[pos + 1]! & hiMask) << 32n) | BigInt(words[pos]!);
      pos += 2;
      if (candidate < qj) out[k++] = candidate;
    }
  }
  return out;
}

/** Uniform integers in [−2^bits, 2^bits) from the OS CSPRNG, reduced into RNS form for primes q. */
function smudgingNoise(N: number, q: readonly bigint[], bits: number): BigUint64Array {
  const bytesPer = Math.ceil((bits + 1) / 8);
  const random = randomBytes(N * bytesPer);
  const width = 1n << BigInt(bits + 1);
  const half = 1n << BigInt(bits);
  const out = new BigUint64Array(N * q.length);
  for (let k = 0; k < N; k++) {
    const hex = random.toString('hex', k * bytesPer, (k + 1) * bytesPer);
    const e = (BigInt('0x' + hex) % width) - half; // bytesPer·8 ≥ bits + 1, so this is uniform on 2^(bits+1) values
    for (let j = 0; j < q.length; j++) {
      const r = e % q[j]!;
      out[j * N + k] = r < 0n ? r + q[j]! : r;
    }
  }
  random.fill(0);
  return out;
}

/**
 * Build the multiparty CKKS context.
 * @param opts - number of key parties (2..100) and the CKKS parameter set (default N = 8192, [60,40,40,60])
 * @returns the context
 * @throws FedmartError CONFIG_ERROR for a bad party count or parameters SEAL rejects
 * @example
 * const mp = await createMultipartyCkks({ parties: 3 });
 * const shares = [1, 2, 3].map(() => mp.createKeyShare(seed));
 * const pk = mp.combinePublicKey(seed, shares.map((s) => s.publicShare));
 */
export async function createMultipartyCkks(opts: { parties: number; params?: Partial<CkksParams> }): Promise<MultipartyCkks> {
  const n = opts.parties;
  if (!Number.isSafeInteger(n) || n < 2 || n > MULTIPARTY_MAX_PARTIES) {
    throw new FedmartError('CONFIG_ERROR', `multiparty CKKS: parties: expected an integer in [2, ${MULTIPARTY_MAX_PARTIES}], got ${String(n)}; the smudging bound and the 2^26 headroom are computed for at most ${MULTIPARTY_MAX_PARTIES} parties`);
  }
  const params = resolveCkksParams(opts.params ?? {});
  const rt = await buildSealCkksRuntime(params);
  const { seal, context } = rt;
  const none = seal.ComprModeType.none as never;
  const N = params.polyModulusDegree;
  const qKey = Array.from(context.keyContextData.parms.coeffModulus as BigUint64Array, (x) => BigInt(x));
  const qData = Array.from(context.firstContextData.parms.coeffModulus as BigUint64Array, (x) => BigInt(x));
  const K = qKey.length;
  const L = qData.length;
  const scale = 2 ** MULTIPARTY_SCALE_BITS;
  const bits = smudgingBits(n, N);
  if (MULTIPARTY_SCALE_BITS + 26 + 1 > qData.reduce((acc, x) => acc + Math.log2(Number(x)), 0)) {
    throw new FedmartError('CONFIG_ERROR', `multiparty CKKS: the data modulus of ${JSON.stringify(params.coeffModulusBits)} leaves no room for scale 2^${MULTIPARTY_SCALE_BITS} plus 2^26 headroom; use the default [60,40,40,60]`);
  }
  const encoder = seal.CKKSEncoder(context);
  const evaluator = seal.Evaluator(context);

  const loadCiphertext = (bytes: Uint8Array, what: string) => {
    const ct = loadSealObject(context, 'CipherText', () => seal.CipherText(), bytes, (err) => `multiparty CKKS: ${what} is not a ciphertext under these parameters (${String(err)})`);
    if (ct.size !== 2 || ct.coeffModulusSize !== L || ct.polyModulusDegree !== N || ct.scale !== scale || !ct.isNttForm) {
      ct.delete();
      throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: ${what}: expected a fresh 2-part NTT ciphertext with ${L} primes at scale 2^${MULTIPARTY_SCALE_BITS}, got size ${ct.size}, ${ct.coeffModulusSize} primes, scale 2^${Math.log2(ct.scale).toFixed(1)}`);
    }
    return ct;
  };
  const rawOf = (obj: { saveArray(c: never): Uint8Array }) => obj.saveArray(none);

  /** NTT form of a coefficient-domain polynomial at the data level, by SEAL's own transform on a scratch ciphertext. */
  const toNtt = (template: Uint8Array, coefficients: BigUint64Array): BigUint64Array => {
    const ct = seal.CipherText();
    try {
      ct.loadArray(context, template);
      evaluator.cipherTransformFromNtt(ct, ct);
      const raw = rawOf(ct);
      const data = tailWords(raw, 2 * N * L);
      data.set(coefficients, 0); // poly 0 = the coefficients; poly 1 stays (SEAL refuses a zero, "transparent", ciphertext)
      setTailWords(raw, data);
      ct.loadArray(context, raw);
      evaluator.cipherTransformToNtt(ct, ct);
      return tailWords(rawOf(ct), 2 * N * L).slice(0, N * L);
    } finally {
      ct.delete();
    }
  };

  const secretWords = (secretKey: Uint8Array): BigUint64Array => {
    const sk = loadSealObject(context, 'SecretKey', () => seal.SecretKey(), secretKey, (err) => `multiparty CKKS: not a SecretKey under these parameters (${String(err)})`);
    try {
      return tailWords(rawOf(sk), N * K);
    } finally {
      sk.delete();
    }
  };

  const combine = (chunks: ReadonlyArray<Uint8Array>, shares: ReadonlyArray<ReadonlyArray<Uint8Array>>, length: number): Float64Array => {
    if (!Number.isSafeInteger(length) || length < 0 || length > chunks.length * rt.slotCount) throw new RangeError(`combineDecryption: length must be an integer in [0, ${chunks.length * rt.slotCount}], got ${String(length)}`);
    shares.forEach((s, i) => {
      if (!Array.isArray(s) || s.length !== chunks.length) throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: party ${i} sent ${Array.isArray(s) ? s.length : 'no'} decryption share(s) for ${chunks.length} chunk(s)`);
    });
    const out = new Float64Array(length);
    const pt = seal.PlainText();
    try {
      chunks.forEach((bytes, c) => {
        const ct = loadCiphertext(bytes, `aggregate chunk ${c}`);
        let acc: BigUint64Array;
        try {
          acc = tailWords(rawOf(ct), 2 * N * L).slice(0, N * L); // c0
        } finally {
          ct.delete();
        }
        const hs = shares.map((s, i) => decodeShare(`party ${i} share of chunk ${c}`, DECRYPTION_SHARE_MAGIC, N, L, qData, s[c]));
        for (let j = 0; j < L; j++) {
          const qj = qData[j]!;
          for (let k = j * N; k < (j + 1) * N; k++) {
            let v = acc[k]!;
            for (const h of hs) v += h[k]!;
            acc[k] = v % qj;
          }
        }
        encoder.encode(new Float64Array(rt.slotCount), scale, pt);
        const raw = rawOf(pt);
        setTailWords(raw, acc);
        pt.loadArray(context, raw);
        const values = encoder.decode(pt);
        const start = c * rt.slotCount;
        for (let i = 0; i < rt.slotCount && start + i < length; i++) out[start + i] = values[i]!;
      });
    } finally {
      pt.delete();
    }
    return out;
  };

  return {
    params,
    parties: n,
    slotCount: rt.slotCount,
    smudgingBits: bits,

    createKeyShare(crpSeed) {
      const a = commonReferencePolynomial(crpSeed, N, qKey);
      const kg = seal.KeyGenerator(context);
      const sk = kg.secretKey();
      const pk = kg.createPublicKey();
      try {
        const secretKey = rawOf(sk);
        const s = tailWords(secretKey, N * K);
        const pkWords = tailWords(rawOf(pk), 2 * N * K); // (b_i, a_i) = (−a_i·s_i + e_i, a_i)
        const p = new BigUint64Array(N * K);
        for (let j = 0; j < K; j++) {
          const qj = qKey[j]!;
          for (let k = j * N; k < (j + 1) * N; k++) p[k] = (pkWords[k]! + ((pkWords[N * K + k]! + qj - a[k]!) % qj) * s[k]!) % qj; // b_i + (a_i − a)·s_i
        }
        s.fill(0n);
        return { secretKey, publicShare: encodeShare(PUBLIC_SHARE_MAGIC, N, K, p) };
      } finally {
        pk.delete();
        sk.delete();
        kg.delete();
      }
    },

    combinePublicKey(crpSeed, publicShares) {
      if (!Array.isArray(publicShares) || publicShares.length !== n) {
        throw new FedmartError('INVALID_MESSAGE', `multiparty CKKS: the collective key needs exactly ${n} public shares (n-out-of-n), got ${Array.isArray(publicShares) ? publicShares.length : describe(publicShares)}`);
      }
      const a = commonReferencePolynomial(crpSeed, N, qKey);
      const ps = publicShares.map((b, i) => decodeShare(`public share ${i}`, PUBLIC_SHARE_MAGIC, N, K, qKey, b));
      const words = new BigUint64Array(2 * N * K);
      for (let j = 0; j < K; j++) {
        const qj = qKey[j]!;
        for (let k = j * N; k < (j + 1) * N; k++) {
          let v = 0n;
          for (const p of ps) v += p[k]!;
          words[k] = v % qj;
          words[N * K + k] = a[k]!;
        }
      }
      const kg = seal.KeyGenerator(context);
      const template = kg.createPublicKey();
      try {
        const raw = rawOf(template);
        setTailWords(raw, words);
        const check = loadSealObject(context, 'PublicKey', () => seal.PublicKey(), raw, (err) => `multiparty CKKS: the combined public key does not load (${String(err)})`);
        check.delete();
        return raw;
      } finally {
        template.delete();
        kg.delete();
      }
    },

    encryptVector(publicKey, values) {
      if (!(values instanceof Float64Array) && !(values instanceof Float32Array)) throw new TypeError(`encryptVector: values must be a Float64Array or Float32Array, got ${describe(values)}`);
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v - v !== 0 || Math.abs(v) >= 2 ** 26) throw new FedmartError('INVALID_UPDATE', `encryptVector: expected finite values below 2^26 in absolute value, got ${v} at index ${i}; clip the update before encrypting`);
      }
      const pk = loadSealObject(context, 'PublicKey', () => seal.PublicKey(), publicKey, (err) => `multiparty CKKS: not a PublicKey under these parameters (${String(err)})`);
      const encryptor = seal.Encryptor(context, pk);
      const pt = seal.PlainText();
      const ct = seal.CipherText();
      const buf = new Float64Array(rt.slotCount);
      const out: Uint8Array[] = [];
      try {
        for (let start = 0; start < values.length; start += rt.slotCount) {
          const end = Math.min(values.length, start + rt.slotCount);
          buf.fill(0);
          buf.set(values.subarray(start, end));
          encoder.encode(buf, scale, pt);
          encryptor.encrypt(pt, ct);
          out.push(ct.saveArray(rt.compression as never));
        }
      } finally {
        buf.fill(0);
        ct.delete();
        pt.delete();
        encryptor.delete();
        pk.delete();
      }
      return out;
    },

    addCiphertexts(perClient) {
      if (!Array.isArray(perClient) || perClient.length === 0) throw new RangeError('addCiphertexts: expected at least one client');
      const chunks = perClient[0]!.length;
      perClient.forEach((c, i) => {
        if (!Array.isArray(c) || c.length !== chunks) throw new FedmartError('INVALID_UPDATE', `addCiphertexts: client ${i} sent ${Array.isArray(c) ? c.length : 'no'} chunk(s), client 0 sent ${chunks}`);
      });
      const out: Uint8Array[] = [];
      for (let c = 0; c < chunks; c++) {
        const sum = loadCiphertext(perClient[0]![c]!, `client 0 chunk ${c}`);
        try {
          for (let i = 1; i < perClient.length; i++) {
            const x = loadCiphertext(perClient[i]![c]!, `client ${i} chunk ${c}`);
            try {
              evaluator.add(sum, x, sum);
            } finally {
              x.delete();
            }
          }
          out.push(sum.saveArray(rt.compression as never));
        } finally {
          sum.delete();
        }
      }
      return out;
    },

    decryptionShares(secretKey, chunks) {
      const s = secretWords(secretKey);
      try {
        return chunks.map((bytes, c) => {
          const ct = loadCiphertext(bytes, `aggregate chunk ${c}`);
          let raw: Uint8Array;
          try {
            raw = rawOf(ct);
          } finally {
            ct.delete();
          }
          const words = tailWords(raw, 2 * N * L);
          const e = toNtt(raw, smudgingNoise(N, qData, bits));
          const h = new BigUint64Array(N * L);
          for (let j = 0; j < L; j++) {
            const qj = qData[j]!;
            for (let k = j * N; k < (j + 1) * N; k++) h[k] = (words[N * L + k]! * s[k]! + e[k]!) % qj; // c1·s_i + e_smg (s_i's first L primes)
          }
          e.fill(0n);
          return encodeShare(DECRYPTION_SHARE_MAGIC, N, L, h);
        });
      } finally {
        s.fill(0n);
      }
    },

    combineDecryption(chunks, shares, length) {
      if (!Array.isArray(shares) || shares.length !== n) {
        throw new FedmartError('ROUND_FAILED', `multiparty CKKS: decryption needs the shares of all ${n} key parties (n-out-of-n), got ${Array.isArray(shares) ? shares.length : 0}; a party that dropped after the upload fails the round (t-out-of-n is not built)`);
      }
      return combine(chunks, shares, length);
    },

    partialDecryptUnsafe: combine,

    dispose() {
      evaluator.delete();
      encoder.delete();
    },
  };
}
