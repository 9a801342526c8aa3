/**
 * Hashing identifiers onto Curve25519 itself (never its twist):
 * `encode_to_curve` of RFC 9380 ("Hashing to Elliptic Curves", Faz-Hernández
 * et al. 2023) for the suite `curve25519_XMD:SHA-512_ELL2_NU_` (§8.5):
 * expand_message_xmd with SHA-512 (§5.3.1), hash_to_field with L = 48 (§5.2),
 * the Elligator 2 map of Bernstein, Hamburg, Krasnova & Lange (ACM CCS 2013)
 * in the form of §6.7.1 with Z = 2, and clear_cofactor with h_eff = 8 (§7).
 * Known-answer vectors: RFC 9380 Appendix J.7.2, in
 * `test/vectors/psi/curve25519-xmd-sha512-ell2-nu.json`.
 *
 * Only the Montgomery u-coordinate is computed: X25519 needs nothing else,
 * so the map never takes a square root. The one branch of Elligator 2 (is
 * g(x1) a square?) is decided with a Jacobi symbol (binary algorithm), and
 * every projective denominator of a batch is inverted at once (Montgomery's
 * trick), so an identifier costs one Jacobi symbol and 10 to 25 field
 * multiplications besides two SHA-512 calls.
 *
 * Why the NU suite and not `_RO_` (hash_to_curve). RO adds two independent
 * maps and so needs both points' y-coordinates: two square roots per id. On
 * this machine @noble/curves' RO hash costs about six native X25519
 * multiplications per id (this NU encoding about a third of one), which
 * would put `fedmart bench psi --size 100000` far over its 30 s budget.
 * NU's outputs are distinguishable from uniform points (the map reaches
 * about half of the curve; RFC 9380 §2.2.2 and §3 call it a nonuniform
 * encoding), but they are on the curve, deterministic, collision-resistant
 * given SHA-512, and nobody knows their discrete logarithms. The textbook
 * proof of DH-based PSI models H as a random oracle onto the group, which
 * NU only approximates: a documented gap, not a hidden one. Swapping in RO
 * changes only {@link hashToCurve25519U}.
 *
 * Cofactor. The map's output Q lies in the full group E(GF(p)) of order
 * 8·ℓ; clear_cofactor multiplies by 8 (three x-only doublings), so P = 8·Q
 * lies in the order-ℓ subgroup, exactly as RFC 9380 specifies. X25519's
 * clamped scalars are multiples of 8 (RFC 7748 §5: k = 8·k'), so
 * X25519(k, Q) = x([k']·(8·Q)): the blinding clears the cofactor by itself,
 * and the PSI skips the doublings. Both forms are checked against the RFC's
 * Q and P vectors.
 *
 * Threat model. This module only computes a public function of an id; it
 * has no secret of its own. The Jacobi symbol and BigInt arithmetic are not
 * constant-time: a process that can time this party's hashing learns timing
 * information about hashes of this party's own ids. That is the same
 * exposure as the ids themselves on that machine and is out of scope (see
 * README "Security notes").
 *
 * Pure: no I/O; SHA-512 from `node:crypto`.
 */
import * as nodeCrypto from 'node:crypto';

/**
 * SHA-512 of one buffer. `crypto.hash` (Node ≥ 20.12) is a one-shot call,
 * about twice as fast as createHash().update().digest() on short inputs;
 * older Nodes take the streaming path. Same digest either way.
 */
const sha512: (data: Uint8Array) => Uint8Array =
  typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
    ? (data) => (nodeCrypto as unknown as { hash(alg: string, data: Uint8Array, enc: 'buffer'): Buffer }).hash('sha512', data, 'buffer')
    : (data) => nodeCrypto.createHash('sha512').update(data).digest();
import { FedmartError } from '../errors.ts';

/** The field prime p = 2^255 − 19. */
export const P25519 = (1n << 255n) - 19n;
/** The Montgomery coefficient A of Curve25519 (v² = u³ + A·u² + u), RFC 7748 §4.1. */
export const A25519 = 486662n;
const A24 = (A25519 + 2n) / 4n; // 121666, RFC 7748 §5
/** The RFC 9380 suite identifier this module implements. */
export const SUITE_ID = 'curve25519_XMD:SHA-512_ELL2_NU_';

const B_IN_BYTES = 64; // SHA-512 output
const R_IN_BYTES = 128; // SHA-512 block
const L = 48; // ceil((ceil(log2(p)) + k) / 8), k = 128 (RFC 9380 §8.5)

const mod = (x: bigint): bigint => {
  const r = x % P25519;
  return r < 0n ? r + P25519 : r;
};

/**
 * expand_message_xmd with SHA-512 (RFC 9380 §5.3.1).
 * @param msg - the message
 * @param dst - domain separation tag, 1..255 bytes
 * @param lenInBytes - output length, 1..255·64
 * @returns `lenInBytes` uniform bytes
 * @throws RangeError for a DST or length out of range
 */
export function expandMessageXmdSha512(msg: Uint8Array, dst: Uint8Array, lenInBytes: number): Uint8Array {
  if (!(msg instanceof Uint8Array) || !(dst instanceof Uint8Array)) throw new TypeError('expandMessageXmdSha512: msg and dst must be Uint8Arrays');
  if (dst.length < 1 || dst.length > 255) throw new RangeError(`expandMessageXmdSha512: DST must be 1..255 bytes, got ${dst.length}`);
  const ell = Math.ceil(lenInBytes / B_IN_BYTES);
  if (!Number.isInteger(lenInBytes) || lenInBytes < 1 || ell > 255 || lenInBytes > 65535) throw new RangeError(`expandMessageXmdSha512: length must be 1..${255 * B_IN_BYTES}, got ${lenInBytes}`);
  // One buffer per digest: each `update` call crosses into C++, and two calls cost about as much as the hash itself.
  const tail = dst.length + 1;
  const first = new Uint8Array(R_IN_BYTES + msg.length + 3 + tail);
  first.set(msg, R_IN_BYTES);
  let o = R_IN_BYTES + msg.length;
  first[o++] = lenInBytes >> 8;
  first[o++] = lenInBytes & 0xff;
  first[o++] = 0;
  first.set(dst, o);
  first[o + dst.length] = dst.length;
  const b0 = sha512(first);
  const next = new Uint8Array(B_IN_BYTES + 1 + tail);
  next.set(dst, B_IN_BYTES + 1);
  next[B_IN_BYTES + 1 + dst.length] = dst.length;
  const out = new Uint8Array(ell * B_IN_BYTES);
  let prev: Uint8Array = b0;
  for (let i = 1; i <= ell; i++) {
    for (let j = 0; j < B_IN_BYTES; j++) next[j] = i === 1 ? b0[j]! : b0[j]! ^ prev[j]!;
    next[B_IN_BYTES] = i;
    prev = sha512(next);
    out.set(prev, (i - 1) * B_IN_BYTES);
  }
  return out.subarray(0, lenInBytes);
}

/**
 * hash_to_field with count = 1 for the suite (RFC 9380 §5.2): OS2IP of 48
 * uniform bytes, reduced mod p.
 * @param msg - the message
 * @param dst - domain separation tag
 * @returns u ∈ GF(p)
 */
export function hashToField25519(msg: Uint8Array, dst: Uint8Array): bigint {
  const bytes = expandMessageXmdSha512(msg, dst, L);
  return BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')) % P25519;
}

/**
 * Jacobi symbol (a/n) for odd n > 0, by the binary algorithm (Cohen, "A
 * Course in Computational Algebraic Number Theory", Alg. 1.4.10). For n = p
 * prime it is the Legendre symbol: 1 for a non-zero square, −1 for a
 * non-square, 0 for a ≡ 0. Not constant-time.
 * @param a - any integer
 * @param n - odd positive modulus
 * @returns −1, 0 or 1
 */
export function jacobi(a: bigint, n: bigint): -1 | 0 | 1 {
  if (n <= 0n || (n & 1n) === 0n) throw new RangeError('jacobi: n must be odd and positive');
  a %= n;
  if (a < 0n) a += n;
  let t: -1 | 1 = 1;
  // Low 32 bits of n, kept as a Number: BigInt operations dominate the cost, so each is done once per step.
  let nLow = Number(BigInt.asUintN(32, n));
  while (a !== 0n) {
    if (a <= MAX_EXACT && n <= MAX_EXACT) return (t * jacobiSmall(Number(a), Number(n))) as -1 | 0 | 1;
    let low = Number(BigInt.asUintN(32, a));
    let z = 0;
    while (low === 0) {
      a >>= 32n;
      z += 32;
      low = Number(BigInt.asUintN(32, a));
    }
    const tz = 31 - Math.clz32(low & -low);
    if (tz > 0) {
      a >>= BigInt(tz);
      low = Number(BigInt.asUintN(32, a));
    }
    z += tz;
    const n8 = nLow & 7;
    if (z & 1 && (n8 === 3 || n8 === 5)) t = t === 1 ? -1 : 1; // (2/n) = −1 for n ≡ ±3 (mod 8)
    if ((low & nLow & 3) === 3) t = t === 1 ? -1 : 1; // quadratic reciprocity
    const m = a;
    a = n % m;
    n = m;
    nLow = low;
  }
  return n === 1n ? t : 0;
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** {@link jacobi} on safe integers (n odd), the tail of the BigInt loop. */
function jacobiSmall(a: number, n: number): -1 | 0 | 1 {
  let t: -1 | 1 = 1;
  while (a !== 0) {
    while (a % 2 === 0) {
      a /= 2;
      const r = n % 8;
      if (r === 3 || r === 5) t = t === 1 ? -1 : 1;
    }
    const m = a;
    a = n % m;
    if (m % 4 === 3 && n % 4 === 3) t = t === 1 ? -1 : 1;
    n = m;
  }
  return n === 1 ? t : 0;
}

/**
 * map_to_curve_elligator2 (RFC 9380 §6.7.1, Z = 2, J = A, K = 1), optionally
 * followed by clear_cofactor (×8), x-only and projective: returns (X : Z)
 * with u = X/Z of map_to_curve(u) or clear_cofactor(map_to_curve(u)).
 *
 * With d = 1 + 2u², x1 = −A/d and g(x1)·d⁴ = −A·d·(d² − A²·d + A²), so
 * is_square(g(x1)) is a Jacobi symbol of a polynomial in d and no inversion
 * is needed; x2 = −x1 − A = A·(1 − d)/d.
 */
function mapToCurveX(u: bigint, clearCofactor: boolean): [bigint, bigint] {
  const d = mod(1n + 2n * ((u * u) % P25519));
  let X: bigint;
  let Z: bigint;
  if (d === 0n) {
    // inv0(0) = 0 ⇒ x1 = −A (step 2). Unreachable for p ≡ 5 (mod 8), where −1/2 is not a square; kept for the letter of the RFC.
    const x1 = P25519 - A25519;
    const gx1 = mod(x1 * x1 * x1 + A25519 * x1 * x1 + x1);
    X = jacobi(gx1, P25519) >= 0 ? x1 : mod(-x1 - A25519);
    Z = 1n;
  } else {
    const g = mod(-A25519 * d * ((d * d - A25519 * A25519 * d + A25519 * A25519) % P25519));
    X = jacobi(g, P25519) >= 0 ? P25519 - A25519 : mod(A25519 * (1n - d));
    Z = d;
  }
  // clear_cofactor: three x-only doublings (RFC 7748 §5 ladder formulas).
  for (let i = 0; clearCofactor && i < 3; i++) {
    const s = X + Z;
    const t = X - Z;
    const xx = (s * s) % P25519;
    const zz = (t * t) % P25519;
    const e = xx - zz;
    X = (xx * zz) % P25519;
    Z = mod(e * ((zz + A24 * e) % P25519));
  }
  return [X, Z];
}

/**
 * b^e mod p by square-and-multiply (not constant-time).
 * @param b - base, any integer
 * @param e - exponent ≥ 0
 * @returns b^e mod p in [0, p)
 */
export function powMod25519(b: bigint, e: bigint): bigint {
  let r = 1n;
  b = mod(b);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P25519;
    b = (b * b) % P25519;
    e >>= 1n;
  }
  return r;
}

/** Modular inverse by Fermat (p prime): used once per batch. */
const invert = (x: bigint): bigint => powMod25519(x, P25519 - 2n);

function encodeU(u: bigint): Uint8Array {
  const out = new Uint8Array(Buffer.from(u.toString(16).padStart(64, '0'), 'hex').reverse());
  return out;
}

/**
 * encode_to_curve for `curve25519_XMD:SHA-512_ELL2_NU_` (RFC 9380 §3, §8.5),
 * for many messages at once, returning each point's Montgomery
 * u-coordinate as 32 little-endian bytes (RFC 7748 encoding). Every output
 * is on Curve25519 and in its prime-order subgroup.
 *
 * With `clearCofactor: false` the result is map_to_curve's point Q (RFC
 * 9380's "Q" vectors) instead of P = 8·Q: still on Curve25519, possibly
 * with a small-order component, which any X25519 scalar (clamped to a
 * multiple of 8, RFC 7748 §5) removes. The PSI uses that form: the three
 * doublings would be done twice.
 *
 * @param msgs - the messages
 * @param dst - domain separation tag (RFC 9380 §3.1), 1..255 bytes
 * @param clearCofactor - multiply by the cofactor 8 (default true: exactly encode_to_curve)
 * @returns one 32-byte u per message, in order
 * @throws FedmartError CRYPTO_ERROR if a message encodes to a point of order ≤ 2 (probability ≈ 2^-254)
 */
export function hashToCurve25519U(msgs: readonly Uint8Array[], dst: Uint8Array, clearCofactor = true): Uint8Array[] {
  const n = msgs.length;
  const xs = new Array<bigint>(n);
  const zs = new Array<bigint>(n);
  for (let i = 0; i < n; i++) {
    const [X, Z] = mapToCurveX(hashToField25519(msgs[i]!, dst), clearCofactor);
    if (Z === 0n || X === 0n) throw new FedmartError('CRYPTO_ERROR', `hash to curve: message ${i} encodes to a point of order at most 2 (probability about 2^-254); use another domain separator`);
    xs[i] = X;
    zs[i] = Z;
  }
  // Montgomery's trick: one inversion for the whole batch.
  const prefix = new Array<bigint>(n);
  let acc = 1n;
  for (let i = 0; i < n; i++) {
    prefix[i] = acc;
    acc = (acc * zs[i]!) % P25519;
  }
  let inv = n > 0 ? invert(acc) : 1n;
  const out = new Array<Uint8Array>(n);
  for (let i = n - 1; i >= 0; i--) {
    const zInv = (inv * prefix[i]!) % P25519;
    inv = (inv * zs[i]!) % P25519;
    out[i] = encodeU((xs[i]! * zInv) % P25519);
  }
  return out;
}

/**
 * Whether a u-coordinate is on Curve25519 rather than its quadratic twist:
 * u³ + A·u² + u is a square in GF(p) (zero counts as on the curve). This is
 * the distinguisher the PSI must not offer; tests use it to check that every
 * blinded value is on the curve, so the bit carries no information.
 * @param u - 32 bytes, little-endian (bit 255 ignored, as in RFC 7748)
 * @returns true when on the curve
 */
export function isOnCurve25519(u: Uint8Array): boolean {
  if (!(u instanceof Uint8Array) || u.length !== 32) throw new TypeError('isOnCurve25519: u must be 32 bytes');
  const b = Buffer.from(u).reverse();
  b[0]! &= 0x7f;
  const x = BigInt('0x' + b.toString('hex')) % P25519;
  return jacobi(mod(x * x * x + A25519 * x * x + x), P25519) >= 0;
}
