import { readFileSync } from 'node:fs';
import { Field } from '@noble/curves/abstract/modular.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { bytesToHex, hexToBytes } from './bytes.ts';
import {
  SHAMIR_ELEMENT_BYTES,
  SHAMIR_PRIME,
  combineShares,
  decodeShare,
  encodeShare,
  splitSecret,
  splitSecretWithCoefficientsUnsafe,
  type ShamirShare,
} from './shamir.ts';

const kat = JSON.parse(readFileSync(new URL('../../../test/vectors/shamir/fedmart-derived.json', import.meta.url), 'utf8')) as {
  vectors: { name: string; secret: string; t: number; n: number; coefficients: string[]; shares: { index: number; value: string }[] }[];
};

const Fp = Field(SHAMIR_PRIME);
const toBig = (b: Uint8Array) => BigInt('0x' + (bytesToHex(b) || '0'));
const toBytes66 = (x: bigint) => hexToBytes(x.toString(16).padStart(SHAMIR_ELEMENT_BYTES * 2, '0'));
/** The documented secret encoding m = L·2^512 + int_be(secret), re-derived here independently. */
const encode = (s: Uint8Array) => (BigInt(s.length) << 512n) | toBig(s);

/** Lagrange-evaluate the polynomial through `points` at x (test-side reference, not the code under test). */
function interpolateAt(points: [bigint, bigint][], x: bigint): bigint {
  let acc = 0n;
  for (const [xi, yi] of points) {
    let l = 1n;
    for (const [xj] of points) if (xj !== xi) l = Fp.mul(l, Fp.div(Fp.sub(x, xj), Fp.sub(xi, xj)));
    acc = Fp.add(acc, Fp.mul(yi, l));
  }
  return acc;
}

function subsets<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [head, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [head!, ...s]), ...subsets(rest, k)];
}

const secretArb = fc.uint8Array({ minLength: 1, maxLength: 64 });
const tnArb = fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(fc.integer({ min: 1, max: n }), fc.constant(n)));

describe('Shamir secret sharing over GF(2^521 − 1)', () => {
  it.each(kat.vectors)('known answer: $name', (v) => {
    // Arrange
    const secret = hexToBytes(v.secret);
    // Act
    const shares = splitSecretWithCoefficientsUnsafe(secret, v.coefficients.map((c) => BigInt(c)), v.n);
    // Assert
    expect(shares.map((s) => ({ index: s.index, value: bytesToHex(s.value) }))).toEqual(v.shares);
    const stored = v.shares.map((s) => ({ index: s.index, value: hexToBytes(s.value) }));
    expect(bytesToHex(combineShares(stored.slice(-v.t)))).toBe(v.secret);
  });

  it('every t-subset of n shares reconstructs the secret (leading zeros kept)', () => {
    fc.assert(
      fc.property(secretArb, tnArb, (secret, [t, n]) => {
        const shares = splitSecret(secret, t, n);
        expect(shares.map((s) => s.index)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        for (const subset of subsets(shares, t)) expect(combineShares(subset)).toEqual(secret);
        expect(combineShares(shares)).toEqual(secret); // more than t is fine too
      }),
      { numRuns: 40 },
    );
  });

  it('t−1 shares are consistent with any other secret (perfect secrecy)', () => {
    fc.assert(
      fc.property(secretArb, secretArb, fc.integer({ min: 2, max: 5 }), (s1, s2, t) => {
        // Arrange: t−1 shares of s1
        const known = splitSecret(s1, t, t + 1).slice(0, t - 1);
        // Act: the unique degree-(t−1) polynomial through (0, m(s2)) and the known shares exists…
        const points: [bigint, bigint][] = [[0n, encode(s2)], ...known.map((s) => [BigInt(s.index), toBig(s.value)] as [bigint, bigint])];
        const completing: ShamirShare = { index: t + 1, value: toBytes66(interpolateAt(points, BigInt(t + 1))) };
        // Assert: …so the same t−1 shares plus one more reconstruct s2 instead of s1.
        expect(combineShares([...known, completing])).toEqual(s2);
      }),
      { numRuns: 40 },
    );
  });

  it('a single share of a 2-of-n split is uniform: its low byte passes a chi-square test', () => {
    // Arrange
    const counts = new Array<number>(16).fill(0);
    const secret = new Uint8Array(32).fill(0xaa); // fixed secret: any bias would show
    // Act
    for (let i = 0; i < 1600; i++) counts[splitSecret(secret, 2, 2)[0]!.value[SHAMIR_ELEMENT_BYTES - 1]! & 15]!++;
    // Assert: 15 degrees of freedom, p = 0.001 critical value 37.70
    const chi2 = counts.reduce((acc, c) => acc + (c - 100) ** 2 / 100, 0);
    expect(chi2).toBeLessThan(37.7);
  });

  it('shares round-trip through their 68-byte encoding', () => {
    fc.assert(
      fc.property(secretArb, (secret) => {
        const shares = splitSecret(secret, 2, 3).map((s) => decodeShare(encodeShare(s)));
        expect(combineShares(shares.slice(1))).toEqual(secret);
      }),
      { numRuns: 20 },
    );
  });

  it('validates t, n, indices and values (labelled errors)', () => {
    const s = new Uint8Array(32);
    expect(() => splitSecret(s, 0, 3)).toThrow(/splitSecret: t/);
    expect(() => splitSecret(s, 4, 3)).toThrow(/1 ≤ t ≤ n/);
    expect(() => splitSecret(s, 1, 0)).toThrow(/splitSecret: n/);
    expect(() => splitSecret(new Uint8Array(0), 1, 1)).toThrow(/secret: expected 1..64 bytes/);
    expect(() => splitSecret(new Uint8Array(65), 1, 1)).toThrow(RangeError);
    const shares = splitSecret(s, 2, 3);
    expect(() => combineShares([shares[0]!, shares[0]!])).toThrow(/duplicate index 1/);
    expect(() => combineShares([])).toThrow(/at least one share/);
    expect(() => combineShares([{ index: 0, value: shares[0]!.value }])).toThrow(/index/);
    expect(() => combineShares([{ index: 1, value: new Uint8Array(66).fill(0xff) }])).toThrow(/field element/);
    expect(() => decodeShare(new Uint8Array(68))).toThrow(/index/);
  });

  it('fails closed (CRYPTO_ERROR) when too few shares interpolate to garbage', () => {
    // Arrange: 1 share of a 3-of-5 split decodes to f(i) itself, a random 521-bit value
    let failures = 0;
    for (let i = 0; i < 20; i++) {
      try {
        combineShares(splitSecret(new Uint8Array(32).fill(1), 3, 5).slice(0, 2));
      } catch (e) {
        if (isFedmartError(e, 'CRYPTO_ERROR')) failures++;
      }
    }
    // Assert: detection probability ≈ 1 − 2^−9 per attempt
    expect(failures).toBeGreaterThanOrEqual(19);
  });
});
