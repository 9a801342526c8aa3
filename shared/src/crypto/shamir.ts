/**
 * t-of-n Shamir secret sharing (Shamir, "How to share a secret", CACM 1979)
 * over the prime field GF(p), p = 2^521 − 1 (the Mersenne prime of NIST P-521).
 *
 * Why this field: a 256-bit secret (an X25519 key or a mask seed) fits in one
 * field element with room to spare, so one polynomial shares the whole
 * secret; the modular arithmetic is `@noble/curves`' audited `Field`, not
 * ours. Shares cost 68 bytes each, which is negligible next to a model.
 *
 * Encoding: a secret of L bytes (1 ≤ L ≤ 64) becomes the field element
 * m = L · 2^512 + int_be(secret) < 65 · 2^512 < p, so leading zero bytes
 * survive the round trip. f(x) = m + a_1 x + … + a_{t−1} x^{t−1} with
 * coefficients uniform in [0, p) from the CSPRNG; share i is (i, f(i)) for
 * i = 1..n. Any t shares recover m by Lagrange interpolation at 0; any t−1
 * shares are uniformly distributed whatever the secret (perfect secrecy).
 *
 * A share travels as 68 bytes: index (uint16 BE) ‖ f(index) (66 bytes BE).
 * Reconstruction fails closed when the interpolated value is not a valid
 * encoding (a random-looking result passes with probability about 2^−9, so
 * too few or inconsistent shares are usually caught; it is not an integrity
 * check).
 */
import { Field } from '@noble/curves/abstract/modular.js';
import { randomBytes } from 'node:crypto';
import { FedmartError } from '../errors.ts';
import { assertBytes, assertInteger, describeValue } from './bytes.ts';

/** The field modulus p = 2^521 − 1. */
export const SHAMIR_PRIME = 2n ** 521n - 1n;
/** Bytes of one field element (big-endian). */
export const SHAMIR_ELEMENT_BYTES = 66;
/** Bytes of one encoded share: 2-byte index + field element. */
export const SHAMIR_SHARE_BYTES = 2 + SHAMIR_ELEMENT_BYTES;
/** Largest secret, in bytes. */
export const SHAMIR_MAX_SECRET_BYTES = 64;
/** Largest number of shares (indices are uint16, 0 is the secret itself). */
export const SHAMIR_MAX_SHARES = 0xffff;

const Fp = Field(SHAMIR_PRIME);
const LENGTH_SHIFT = 512n;

/** One share: the evaluation point and the polynomial's value there. */
export interface ShamirShare {
  /** evaluation point, 1..65535 */
  index: number;
  /** f(index), 66 bytes big-endian, < p */
  value: Uint8Array;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  // Via hex: one native parse instead of 66 BigInt shift-and-or steps (the server parses every revealed share).
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'));
}

function bigIntToBytes(x: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** Uniform field element by rejection sampling 521-bit strings (rejects only p itself). */
function randomFieldElement(): bigint {
  for (;;) {
    const bytes = new Uint8Array(randomBytes(SHAMIR_ELEMENT_BYTES));
    bytes[0]! &= 0x01; // 66 bytes = 528 bits; keep 521
    const x = bytesToBigInt(bytes);
    if (x < SHAMIR_PRIME) return x;
  }
}

function encodeSecret(secret: Uint8Array): bigint {
  return (BigInt(secret.length) << LENGTH_SHIFT) | bytesToBigInt(secret);
}

function evaluate(coefficients: readonly bigint[], x: bigint): bigint {
  let acc = 0n;
  for (let i = coefficients.length - 1; i >= 0; i--) acc = Fp.add(Fp.mul(acc, x), coefficients[i]!);
  return acc;
}

function checkSplitArgs(label: string, secret: unknown, t: unknown, n: unknown): void {
  assertBytes(`${label}: secret`, secret);
  if ((secret as Uint8Array).length < 1 || (secret as Uint8Array).length > SHAMIR_MAX_SECRET_BYTES) {
    throw new RangeError(`${label}: secret: expected 1..${SHAMIR_MAX_SECRET_BYTES} bytes, got ${(secret as Uint8Array).length}`);
  }
  assertInteger(`${label}: n`, n, 1, SHAMIR_MAX_SHARES);
  assertInteger(`${label}: t`, t, 1, SHAMIR_MAX_SHARES);
  if ((t as number) > (n as number)) throw new RangeError(`${label}: t: expected 1 ≤ t ≤ n = ${n as number}, got t = ${t as number}`);
}

/**
 * Split a secret into n shares, any t of which reconstruct it.
 * @param secret - 1..64 bytes (e.g. a 32-byte X25519 secret key or PRG seed)
 * @param t - threshold, 1 ≤ t ≤ n
 * @param n - number of shares, ≤ 65535; share indices are 1..n
 * @returns n shares, share i−1 has index i
 * @throws TypeError/RangeError on wrong-typed arguments, t > n, or bad lengths
 * @example
 * const shares = splitSecret(seed, 3, 5);
 * combineShares([shares[0], shares[2], shares[4]]); // → seed
 */
export function splitSecret(secret: Uint8Array, t: number, n: number): ShamirShare[] {
  checkSplitArgs('splitSecret', secret, t, n);
  const coefficients = [encodeSecret(secret)];
  for (let i = 1; i < t; i++) coefficients.push(randomFieldElement());
  return evaluateShares(coefficients, n);
}

/**
 * Split with caller-chosen coefficients a_1..a_{t−1}. Unsafe: predictable
 * coefficients reveal the secret from fewer than t shares. Exists for
 * known-answer tests only; use {@link splitSecret}.
 * @param secret - 1..64 bytes
 * @param coefficients - a_1..a_{t−1}, each in [0, p); t = coefficients.length + 1
 * @param n - number of shares
 * @returns n shares with indices 1..n
 * @throws TypeError/RangeError on wrong-typed arguments
 */
export function splitSecretWithCoefficientsUnsafe(secret: Uint8Array, coefficients: readonly bigint[], n: number): ShamirShare[] {
  if (!Array.isArray(coefficients)) throw new TypeError(`splitSecretWithCoefficientsUnsafe: coefficients: expected bigint[], got ${describeValue(coefficients)}`);
  checkSplitArgs('splitSecretWithCoefficientsUnsafe', secret, coefficients.length + 1, n);
  coefficients.forEach((c, i) => {
    if (typeof c !== 'bigint' || c < 0n || c >= SHAMIR_PRIME) throw new RangeError(`splitSecretWithCoefficientsUnsafe: coefficients[${i}]: expected a bigint in [0, p)`);
  });
  return evaluateShares([encodeSecret(secret), ...coefficients], n);
}

function evaluateShares(coefficients: readonly bigint[], n: number): ShamirShare[] {
  const shares: ShamirShare[] = [];
  for (let i = 1; i <= n; i++) shares.push({ index: i, value: bigIntToBytes(evaluate(coefficients, BigInt(i)), SHAMIR_ELEMENT_BYTES) });
  return shares;
}

function checkShare(label: string, share: unknown): ShamirShare {
  if (typeof share !== 'object' || share === null || Array.isArray(share) || ArrayBuffer.isView(share)) {
    throw new TypeError(`${label}: expected { index, value }, got ${describeValue(share)}`);
  }
  const s = share as ShamirShare;
  assertInteger(`${label}.index`, s.index, 1, SHAMIR_MAX_SHARES);
  assertBytes(`${label}.value`, s.value, SHAMIR_ELEMENT_BYTES);
  if (bytesToBigInt(s.value) >= SHAMIR_PRIME) throw new RangeError(`${label}.value: expected a field element < 2^521 − 1`);
  return s;
}

/**
 * Reconstruct a secret from t or more shares by Lagrange interpolation at 0.
 * Giving fewer than t shares yields a wrong value; that is caught with
 * probability ≈ 1 − 2^−9 only (see module notes), so pass at least t.
 * @param shares - distinct-index shares of one secret
 * @returns the secret bytes
 * @throws TypeError/RangeError on malformed shares, an empty list or duplicate indices
 * @throws FedmartError CRYPTO_ERROR when the shares do not interpolate to a valid secret
 */
export function combineShares(shares: readonly ShamirShare[]): Uint8Array {
  if (!Array.isArray(shares)) throw new TypeError(`combineShares: shares: expected an array of shares, got ${describeValue(shares)}`);
  if (shares.length === 0) throw new RangeError('combineShares: shares: expected at least one share, got none');
  const seen = new Set<number>();
  const xs: bigint[] = [];
  const ys: bigint[] = [];
  shares.forEach((share, i) => {
    const s = checkShare(`combineShares: shares[${i}]`, share);
    if (seen.has(s.index)) throw new RangeError(`combineShares: shares[${i}].index: duplicate index ${s.index}; each share must come from a different holder`);
    seen.add(s.index);
    xs.push(BigInt(s.index));
    ys.push(bytesToBigInt(s.value));
  });
  // L_i(0) = Π_{j≠i} x_j / (x_j − x_i); one batched inversion for all denominators. The x_j are
  // small integers, so the products are formed in plain BigInt and reduced only when they outgrow p,
  // and Σ y_i·L_i(0) is reduced once at the end (a Mersenne modulus keeps that cheap).
  const numerators: bigint[] = [];
  const denominators: bigint[] = [];
  for (let i = 0; i < xs.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < xs.length; j++) {
      if (j === i) continue;
      num *= xs[j]!;
      den *= xs[j]! - xs[i]!;
      if (num > SHAMIR_PRIME) num %= SHAMIR_PRIME;
      if (den > SHAMIR_PRIME || -den > SHAMIR_PRIME) den %= SHAMIR_PRIME;
    }
    numerators.push(num);
    denominators.push(Fp.create(den));
  }
  const inverses = Fp.invertBatch(denominators);
  let acc = 0n;
  for (let i = 0; i < xs.length; i++) acc += ys[i]! * Fp.mul(numerators[i]!, inverses[i]!);
  const m = Fp.create(acc);
  const length = Number(m >> LENGTH_SHIFT);
  if (length < 1 || length > SHAMIR_MAX_SECRET_BYTES) {
    throw new FedmartError('CRYPTO_ERROR', `Shamir reconstruction failed: expected at least t consistent shares of one secret, got ${shares.length} share(s) that do not interpolate to a valid secret; collect more shares or discard forged ones`);
  }
  const body = m & ((1n << LENGTH_SHIFT) - 1n);
  if (body >> BigInt(8 * length) !== 0n) {
    throw new FedmartError('CRYPTO_ERROR', `Shamir reconstruction failed: the ${shares.length} share(s) interpolate to a value longer than its ${length}-byte header; collect at least t consistent shares`);
  }
  return bigIntToBytes(body, length);
}

/**
 * Serialise a share for transport: index (uint16 BE) ‖ value (66 bytes).
 * @param share - a share from {@link splitSecret}
 * @returns 68 bytes
 * @throws TypeError/RangeError on a malformed share
 */
export function encodeShare(share: ShamirShare): Uint8Array {
  const s = checkShare('encodeShare: share', share);
  const out = new Uint8Array(SHAMIR_SHARE_BYTES);
  out[0] = s.index >>> 8;
  out[1] = s.index & 0xff;
  out.set(s.value, 2);
  return out;
}

/**
 * Parse a share serialised by {@link encodeShare}.
 * @param bytes - 68 bytes
 * @returns the share (value copied)
 * @throws TypeError/RangeError on wrong length, index 0 or a value ≥ p
 */
export function decodeShare(bytes: Uint8Array): ShamirShare {
  assertBytes('decodeShare: bytes', bytes, SHAMIR_SHARE_BYTES);
  const share = { index: (bytes[0]! << 8) | bytes[1]!, value: bytes.slice(2) };
  return checkShare('decodeShare: bytes', share);
}
