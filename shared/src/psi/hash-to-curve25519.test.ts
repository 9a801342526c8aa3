import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ed25519_hasher } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { expandMessageXmdSha512, hashToCurve25519U, hashToField25519, isOnCurve25519, jacobi, P25519, powMod25519 } from './hash-to-curve25519.ts';

interface Vector { msg: string; u0: string; Qx: string; Px: string }
const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/psi/curve25519-xmd-sha512-ell2-nu.json', import.meta.url), 'utf8')) as { dst: string; vectors: Vector[] };
const enc = new TextEncoder();
const DST = enc.encode(rfc.dst);
/** Big-endian hex of a little-endian u, as RFC 9380 prints field elements. */
const beHex = (u: Uint8Array): string => Buffer.from(u).reverse().toString('hex');

/** Euler's criterion, the slow independent definition of the Legendre symbol. */
const euler = (a: bigint): number => {
  const r = powMod25519(a, (P25519 - 1n) / 2n);
  return r === 0n ? 0 : r === 1n ? 1 : -1;
};

describe('encode_to_curve for curve25519_XMD:SHA-512_ELL2_NU_ (RFC 9380)', () => {
  it.each(rfc.vectors.map((v) => [v.msg.slice(0, 12) || '(empty)', v] as const))('matches Appendix J.7.2 for msg %s: u, Q and P = 8·Q', (_, v) => {
    // Act
    const u0 = hashToField25519(enc.encode(v.msg), DST);
    const [P] = hashToCurve25519U([enc.encode(v.msg)], DST);
    const [Q] = hashToCurve25519U([enc.encode(v.msg)], DST, false);
    // Assert
    expect(u0.toString(16).padStart(64, '0')).toBe(v.u0);
    expect(beHex(Q!)).toBe(v.Qx);
    expect(beHex(P!)).toBe(v.Px);
  });

  it('a batch gives the same points as one message at a time (one shared inversion)', () => {
    const msgs = rfc.vectors.map((v) => enc.encode(v.msg));
    expect(hashToCurve25519U(msgs, DST).map(beHex)).toEqual(rfc.vectors.map((v) => v.Px));
    expect(hashToCurve25519U([], DST)).toEqual([]);
  });

  it('agrees with @noble/curves (edwards25519 encodeToCurve mapped to Montgomery u = (1+y)/(1−y)) on random messages (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (msg) => {
        const { y } = ed25519_hasher.encodeToCurve(msg, { DST: rfc.dst }).toAffine();
        const u = ((1n + y) * powMod25519(1n - y, P25519 - 2n)) % P25519;
        expect(beHex(hashToCurve25519U([msg], DST)[0]!)).toBe(u.toString(16).padStart(64, '0'));
      }),
      { numRuns: 40 },
    );
  });

  it('puts every output on the curve, never on the twist, with or without the cofactor doubling (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 20 }), fc.boolean(), (msgs, clear) => {
        for (const u of hashToCurve25519U(msgs, DST, clear)) expect(isOnCurve25519(u)).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it('rejects a DST out of RFC 9380 range and wrong-typed input', () => {
    expect(() => expandMessageXmdSha512(new Uint8Array(1), new Uint8Array(0), 48)).toThrow(RangeError);
    expect(() => expandMessageXmdSha512(new Uint8Array(1), new Uint8Array(256), 48)).toThrow(RangeError);
    expect(() => expandMessageXmdSha512(new Uint8Array(1), DST, 0)).toThrow(RangeError);
    expect(() => expandMessageXmdSha512(new Uint8Array(1), DST, 255 * 64 + 1)).toThrow(RangeError);
    expect(() => expandMessageXmdSha512('abc' as unknown as Uint8Array, DST, 48)).toThrow(TypeError);
    expect(() => isOnCurve25519(new Uint8Array(31))).toThrow(TypeError);
  });

  it('expands to several SHA-512 blocks as §5.3.1 chains them', () => {
    // b_1 is the first 64 bytes of any longer output: the chain only appends.
    const short = expandMessageXmdSha512(enc.encode('abc'), DST, 64);
    const long = expandMessageXmdSha512(enc.encode('abc'), DST, 200);
    expect(long.length).toBe(200);
    expect(Buffer.from(long.subarray(0, 64)).equals(Buffer.from(short))).toBe(false); // ℓ-in-bytes is hashed into b_0
    expect(new Set(Array.from({ length: 3 }, (_, i) => Buffer.from(long.subarray(i * 64, i * 64 + 64)).toString('hex'))).size).toBe(3);
  });
});

describe('jacobi', () => {
  it('equals Euler\'s criterion mod p on random and edge values (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }), (a) => {
        expect(jacobi(a, P25519)).toBe(euler(a));
      }),
      { numRuns: 300 },
    );
    for (const a of [0n, 1n, 2n, P25519 - 1n, P25519, P25519 + 2n, 486662n, 2n ** 64n, 2n ** 200n]) expect(jacobi(a, P25519)).toBe(euler(a));
  });

  it('matches known symbols for small odd moduli and rejects even ones', () => {
    // (2/7) = 1, (3/7) = −1, (5/21) = (5/3)(5/7) = (−1)(−1) = 1, (6/9) = 0
    expect([jacobi(2n, 7n), jacobi(3n, 7n), jacobi(5n, 21n), jacobi(6n, 9n)]).toEqual([1, -1, 1, 0]);
    expect(() => jacobi(3n, 8n)).toThrow(RangeError);
  });
});
