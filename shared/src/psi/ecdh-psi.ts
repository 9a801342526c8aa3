/**
 * ECDH-style private set intersection (PSI), the commutative-blinding
 * protocol of C. Meadows (IEEE S&P 1986) and B. Huberman, M. Franklin,
 * T. Hogg ("Enhancing privacy and trust in electronic communities", ACM EC
 * 1999), in the form deployed by M. Ion et al., "On Deploying Secure
 * Computing: Private Intersection-Sum-with-Cardinality" (IEEE EuroS&P 2020).
 *
 * Protocol (both parties run a {@link PsiParty}; only blinded values travel):
 * 1. A sends `A.blindOwn()` = { a·H(x) : x ∈ X }, shuffled. B likewise.
 * 2. B returns `B.blindOther(fromA)` = { b·a·H(x) }, in the order received
 *    (mode "ids") or shuffled again (mode "size"). A likewise.
 * 3. `A.intersect(doubledForA, doubledForB)`: since a·b·H(x) = b·a·H(x), the
 *    doubly-blinded values of shared IDs coincide. In mode "ids" A maps its
 *    own positions back to IDs; in mode "size" the order was destroyed by B,
 *    so A learns only the cardinality (Ion et al.'s cardinality variant).
 *
 * Group and map. Scalar multiplication is X25519 (RFC 7748) through
 * `node:crypto`, i.e. OpenSSL: ≈ 20 000 multiplications/s on this 2-core
 * machine, against ≈ 1 000/s for a pure-JS prime-order group. H(x) is
 * RFC 9380 `encode_to_curve` for `curve25519_XMD:SHA-512_ELL2_NU_` (see
 * `hash-to-curve25519.ts`) of I2OSP(len(domain), 4) ‖ domain ‖ x, with the
 * DST {@link PSI_HASH_DST}: a point on Curve25519 itself, given to X25519 as
 * its u-coordinate; the party's scalar is its X25519 private key.
 *
 * Why on the curve. Until v1 the hash was a raw SHA-256 read as a u, and
 * about half of all ids landed on the quadratic twist. X25519 maps curve to
 * curve and twist to twist, so every blinded value a·H(x) carried one bit
 * of H(x) (is u³ + A·u² + u a square?) that anyone could read: a peer could
 * test a guessed id's bit against a blinded value and halve its candidates
 * per value. With the Elligator 2 map every H(x), hence every blinded value,
 * is on the curve, and the bit is the constant 1
 * (`test/adversary/psi-twist.test.ts`).
 *
 * Cofactor. X25519 clamps its scalar to 8·k', so a·H(x) = k'·(8·H(x)) lies
 * in the prime-order subgroup (order ℓ ≈ 2^252) whatever small-order
 * component H(x) has; blinded values are elements of that group, where
 * (decisional) Diffie–Hellman is the standard assumption. Two ids whose
 * encodings differ by a point of order ≤ 8 would collide; finding such a
 * pair needs a SHA-512 pre-image search, so false matches are negligible.
 *
 * Why this commutes. X25519 computes x([k]·P) by a Montgomery ladder on the
 * u-coordinate alone, so x([a][b]P) = x([b][a]P) for any two scalars.
 *
 * Caveats, stated honestly:
 * - NU, not RO: the encoding is not indifferentiable from a random oracle
 *   (RFC 9380 §2.2.2); the classic proof of this PSI models H as one. The
 *   RO suite needs two square roots per id and would miss the speed budget;
 *   see `hash-to-curve25519.ts`.
 * - A party that deviates (semi-honest model only) can learn more, e.g. by
 *   not shuffling, or by re-blinding a guessed ID; the protocol also reveals
 *   both set sizes. A value that X25519 maps to zero (low-order input) is
 *   rejected with CRYPTO_ERROR.
 * - Nothing here is constant-time beyond OpenSSL's X25519, and secrets are not
 *   wiped from memory.
 *
 * Pure: no I/O; scalars and shuffles use the `node:crypto` CSPRNG.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { FedmartError } from '../errors.ts';
import { hashToCurve25519U, SUITE_ID } from './hash-to-curve25519.ts';

/** What {@link PsiParty.intersect} reveals: the shared IDs, or only how many there are. */
export type PsiMode = 'ids' | 'size';

/** Bytes per blinded value (an X25519 u-coordinate). */
export const PSI_ELEMENT_BYTES = 32;

/** Options of {@link PsiParty}. */
export interface PsiPartyOptions {
  /** "ids" (default): intersect returns the shared IDs. "size": blindOther shuffles, so the peer learns only the cardinality. Both parties must use the same mode. */
  readonly mode?: PsiMode;
  /** Domain separator mixed into the ID hash, e.g. `${federationId}/${sessionId}`; both parties must use the same. Default "". */
  readonly domain?: string;
  /** The 32-byte X25519 secret scalar. Only for known-answer tests; default fresh random. */
  readonly secretScalar?: Uint8Array;
  /**
   * How to run a batch of X25519 multiplications by this party's key; default
   * {@link x25519MultiplyAll} in this thread. Injected so a runtime can spread
   * the batch over threads (the CLI does, `cli/x25519-pool.ts`) while this
   * module stays free of threads and I/O. It must return, in order, exactly
   * `x25519Multiply(key, v)` for each v, and throw as it does.
   */
  readonly multiplyBatch?: (key: KeyObject, values: readonly Uint8Array[]) => Uint8Array[];
}

/** Result of {@link PsiParty.intersect}. `indices` and `ids` are present in mode "ids" only. */
export interface PsiResult {
  /** Number of IDs both parties hold. */
  readonly size: number;
  /** Positions of the shared IDs in the deduplicated input, ascending. */
  readonly indices?: number[];
  /** The shared IDs, in input order. */
  readonly ids?: string[];
}

// DER prefix of a PKCS#8 X25519 private key (RFC 8410 §7): the 32-byte scalar follows.
const PKCS8_X25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
/** RFC 9380 domain separation tag of the PSI hash (§3.1: application, version, suite). */
export const PSI_HASH_DST = `FEDMART-PSI-V2-${SUITE_ID}`;
const DST_BYTES = new TextEncoder().encode(PSI_HASH_DST);

function hashInput(id: string, domain: Uint8Array): Uint8Array {
  const idBytes = Buffer.from(id, 'utf8');
  const msg = new Uint8Array(4 + domain.length + idBytes.length);
  new DataView(msg.buffer).setUint32(0, domain.length);
  msg.set(domain, 4);
  msg.set(idBytes, 4 + domain.length);
  return msg;
}

/**
 * Hash IDs onto Curve25519 (see the module doc): RFC 9380 encode_to_curve
 * without the final cofactor doubling, which X25519's clamping performs.
 * @param ids - the IDs (any strings; hashed as UTF-8)
 * @param domain - domain separator shared by both parties
 * @returns one 32-byte little-endian u-coordinate per ID, each on Curve25519 (never its twist)
 * @throws TypeError if an ID is not a string
 */
export function hashIdsToU(ids: readonly string[], domain = ''): Uint8Array[] {
  const d = new TextEncoder().encode(domain);
  return hashToCurve25519U(
    ids.map((id, i) => {
      if (typeof id !== 'string') throw new TypeError(`hashIdsToU: ids[${i}] must be a string, got ${typeof id}`);
      return hashInput(id, d);
    }),
    DST_BYTES,
    false,
  );
}

/**
 * {@link hashIdsToU} for one ID.
 * @param id - the ID
 * @param domain - domain separator shared by both parties
 * @returns its 32-byte u-coordinate on Curve25519
 * @throws TypeError if the ID is not a string
 */
export function hashIdToU(id: string, domain = ''): Uint8Array {
  if (typeof id !== 'string') throw new TypeError(`hashIdToU: id must be a string, got ${typeof id}`);
  return hashIdsToU([id], domain)[0]!;
}

/**
 * Build an X25519 private KeyObject from a raw 32-byte scalar.
 * @param scalar - 32 bytes (clamped by X25519 itself)
 * @returns the KeyObject for `crypto.diffieHellman`
 */
export function x25519PrivateKeyObject(scalar: Uint8Array): KeyObject {
  if (!(scalar instanceof Uint8Array) || scalar.length !== 32) throw new TypeError('x25519PrivateKeyObject: scalar must be a 32-byte Uint8Array');
  const der = new Uint8Array(PKCS8_X25519_PREFIX.length + 32);
  der.set(PKCS8_X25519_PREFIX);
  der.set(scalar, PKCS8_X25519_PREFIX.length);
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/**
 * X25519(k, u) with k held in a KeyObject. Parsing the peer value as a JWK
 * is ~3× faster in Node 20 than as SPKI DER.
 * @param key - private KeyObject from {@link x25519PrivateKeyObject}
 * @param u - a 32-byte u-coordinate
 * @returns the 32-byte u-coordinate of [clamp(k)]·P
 * @throws FedmartError CRYPTO_ERROR when the result is zero (u of small order)
 */
export function x25519Multiply(key: KeyObject, u: Uint8Array): Uint8Array {
  const x = Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64url');
  try {
    const out = diffieHellman({ privateKey: key, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' }) });
    return new Uint8Array(out); // own, exact-size buffer: safe to send as `.buffer`
  } catch (err) {
    throw new FedmartError('CRYPTO_ERROR', `PSI: expected a 32-byte X25519 u-coordinate of large order, got one that multiplies to zero or does not parse (${String(err)}); the peer sent a malformed or malicious blinded value`, { cause: err });
  }
}

/**
 * {@link x25519Multiply} over a batch, in this thread.
 * @param key - the party's X25519 private key
 * @param values - 32-byte u-coordinates
 * @returns key·u for each, in order
 * @throws FedmartError CRYPTO_ERROR as x25519Multiply
 */
export function x25519MultiplyAll(key: KeyObject, values: readonly Uint8Array[]): Uint8Array[] {
  return values.map((v) => x25519Multiply(key, v));
}

function key32(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
}

function cryptoShuffle<T>(arr: T[]): T[] {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const t = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = t;
  }
  return arr;
}

function checkBlindedList(values: unknown, label: string, expectedLength?: number): asserts values is Uint8Array[] {
  if (!Array.isArray(values)) throw new FedmartError('INVALID_MESSAGE', `PSI ${label}: expected an array of ${PSI_ELEMENT_BYTES}-byte values, got ${values === null ? 'null' : typeof values}`);
  if (expectedLength !== undefined && values.length !== expectedLength) {
    throw new FedmartError('INVALID_MESSAGE', `PSI ${label}: expected ${expectedLength} values (one per own ID, as returned by the peer's blindOther), got ${values.length}`);
  }
  for (let i = 0; i < values.length; i++) {
    const v: unknown = values[i];
    if (!(v instanceof Uint8Array) || v.length !== PSI_ELEMENT_BYTES) {
      throw new FedmartError('INVALID_MESSAGE', `PSI ${label}: value ${i} must be a ${PSI_ELEMENT_BYTES}-byte Uint8Array, got ${v instanceof Uint8Array ? `${v.length} bytes` : typeof v}`);
    }
  }
}

/**
 * One party of the ECDH PSI. Holds its IDs and secret scalar; everything it
 * returns is safe to send to the peer.
 *
 * @example
 * const a = new PsiParty(myIds), b = new PsiParty(theirIds);     // on two machines
 * const aToB = a.blindOwn(), bToA = b.blindOwn();                 // exchange
 * const backToA = b.blindOther(aToB), backToB = a.blindOther(bToA); // exchange
 * const { ids } = a.intersect(backToA, backToB);                  // A's view
 */
export class PsiParty {
  /** The mode both parties agreed on. */
  readonly mode: PsiMode;
  /** Number of distinct IDs (duplicates in the input are collapsed: PSI works on sets). */
  readonly size: number;
  readonly #ids: string[];
  readonly #key: KeyObject;
  readonly #domain: string;
  readonly #multiply: (key: KeyObject, values: readonly Uint8Array[]) => Uint8Array[];
  #blinded: Uint8Array[] | undefined;
  /** #order[j] = index into #ids of the j-th value of blindOwn(). */
  #order: number[] | undefined;

  /**
   * @param ids - this party's IDs (e.g. customer emails, normalised by the caller)
   * @param opts - mode, domain separator, and (tests only) a fixed scalar
   * @throws TypeError if `ids` is not an array of strings
   */
  constructor(ids: readonly string[], opts: PsiPartyOptions = {}) {
    if (!Array.isArray(ids)) throw new TypeError(`PsiParty: ids must be an array of strings, got ${typeof ids}`);
    const mode = opts.mode ?? 'ids';
    if (mode !== 'ids' && mode !== 'size') throw new TypeError(`PsiParty: mode must be "ids" or "size", got ${String(mode)}`);
    const domain = opts.domain ?? '';
    if (typeof domain !== 'string') throw new TypeError('PsiParty: domain must be a string');
    const seen = new Set<string>();
    const unique: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id: unknown = ids[i];
      if (typeof id !== 'string') throw new TypeError(`PsiParty: ids[${i}] must be a string, got ${typeof id}`);
      if (!seen.has(id)) {
        seen.add(id);
        unique.push(id);
      }
    }
    const scalar = opts.secretScalar ?? new Uint8Array(randomBytes(32));
    this.mode = mode;
    this.size = unique.length;
    this.#ids = unique;
    this.#domain = domain;
    this.#key = x25519PrivateKeyObject(scalar);
    if (opts.multiplyBatch !== undefined && typeof opts.multiplyBatch !== 'function') throw new TypeError('PsiParty: multiplyBatch must be a function');
    this.#multiply = opts.multiplyBatch ?? x25519MultiplyAll;
  }

  /** The deduplicated IDs, in input order (what `indices` refer to). */
  get ids(): readonly string[] {
    return this.#ids;
  }

  /**
   * Hash and blind every own ID, in a random order. Computed once; later
   * calls return copies of the same list.
   * @returns one 32-byte value per distinct ID, shuffled — send to the peer
   */
  blindOwn(): Uint8Array[] {
    if (this.#blinded === undefined) {
      const order = cryptoShuffle(Array.from({ length: this.#ids.length }, (_, i) => i));
      const hashed = hashIdsToU(order.map((i) => this.#ids[i]!), this.#domain);
      this.#blinded = this.#multiply(this.#key, hashed);
      this.#order = order;
    }
    return this.#blinded.map((v) => v.slice());
  }

  /**
   * {@link blindOwn} in chunks of `chunk` IDs, awaiting `pause()` after each,
   * so that a runtime with an event loop can answer heartbeats while a large
   * set is hashed and blinded (the vertical parties pass a setImmediate).
   * The same values as blindOwn; computed once, shared with it.
   * @param pause - awaited between chunks
   * @param chunk - IDs per chunk (default 1024)
   */
  async blindOwnChunked(pause: () => Promise<void>, chunk = 1024): Promise<Uint8Array[]> {
    if (this.#blinded === undefined) {
      const order = cryptoShuffle(Array.from({ length: this.#ids.length }, (_, i) => i));
      const out: Uint8Array[] = [];
      for (let i = 0; i < order.length; i += chunk) {
        const hashed = hashIdsToU(order.slice(i, i + chunk).map((j) => this.#ids[j]!), this.#domain);
        for (const v of this.#multiply(this.#key, hashed)) out.push(v);
        await pause();
      }
      if (this.#blinded === undefined) {
        this.#blinded = out;
        this.#order = order;
      }
    }
    return this.#blinded.map((v) => v.slice());
  }

  /**
   * {@link blindOther} in chunks of `chunk` values, awaiting `pause()` after each.
   * @param values - the peer's blinded IDs
   * @param pause - awaited between chunks
   * @param chunk - values per chunk (default 1024)
   */
  async blindOtherChunked(values: readonly Uint8Array[], pause: () => Promise<void>, chunk = 1024): Promise<Uint8Array[]> {
    checkBlindedList(values, 'blindOther');
    const out: Uint8Array[] = [];
    for (let i = 0; i < values.length; i += chunk) {
      for (const v of this.#multiply(this.#key, values.slice(i, i + chunk))) out.push(v);
      await pause();
    }
    return this.mode === 'size' ? cryptoShuffle(out) : out;
  }

  /**
   * Re-blind the peer's blinded IDs with this party's scalar.
   * @param values - the peer's `blindOwn()` output
   * @returns the doubly-blinded values: in the same order (mode "ids") or shuffled (mode "size") — send back to the peer
   * @throws FedmartError INVALID_MESSAGE for malformed values; CRYPTO_ERROR for a small-order value
   */
  blindOther(values: readonly Uint8Array[]): Uint8Array[] {
    checkBlindedList(values, 'blindOther');
    const out = this.#multiply(this.#key, values);
    return this.mode === 'size' ? cryptoShuffle(out) : out;
  }

  /**
   * Compare doubly-blinded values.
   * @param myDoubleBlinded - the peer's `blindOther(this.blindOwn())`
   * @param theirDoubleBlinded - this party's `blindOther(peer.blindOwn())`
   * @returns the intersection size, plus its indices and IDs in mode "ids"
   * @throws FedmartError INVALID_MESSAGE for malformed input, or if called before blindOwn()
   */
  intersect(myDoubleBlinded: readonly Uint8Array[], theirDoubleBlinded: readonly Uint8Array[]): PsiResult {
    if (this.#order === undefined) throw new FedmartError('INVALID_MESSAGE', 'PSI intersect: expected blindOwn() to have been sent first, but it was never called on this party; run the protocol in order');
    checkBlindedList(myDoubleBlinded, 'intersect(myDoubleBlinded)', this.#ids.length);
    checkBlindedList(theirDoubleBlinded, 'intersect(theirDoubleBlinded)');
    const theirs = new Set<string>();
    for (const v of theirDoubleBlinded) theirs.add(key32(v));
    if (this.mode === 'size') {
      let size = 0;
      for (const v of myDoubleBlinded) if (theirs.has(key32(v))) size++;
      return { size };
    }
    const indices: number[] = [];
    for (let j = 0; j < myDoubleBlinded.length; j++) if (theirs.has(key32(myDoubleBlinded[j]!))) indices.push(this.#order[j]!);
    indices.sort((x, y) => x - y);
    return { size: indices.length, indices, ids: indices.map((i) => this.#ids[i]!) };
  }
}
