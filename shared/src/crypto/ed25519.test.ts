import { readFileSync } from 'node:fs';
import { ed25519 as nobleEd25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from './bytes.ts';
import { generateEd25519KeyPair, getEd25519PublicKey, identityFingerprint, signEd25519, signedMessage, verifyEd25519 } from './ed25519.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/ed25519/rfc8032.json', import.meta.url), 'utf8')) as {
  vectors: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
};

describe('ed25519', () => {
  it.each(rfc.vectors)('matches RFC 8032 §7.1 $name', (v) => {
    // Arrange
    const sk = hexToBytes(v.secretKey);
    const msg = hexToBytes(v.message);
    // Act
    const pk = getEd25519PublicKey(sk);
    const sig = signEd25519(sk, msg);
    // Assert
    expect(bytesToHex(pk)).toBe(v.publicKey);
    expect(bytesToHex(sig)).toBe(v.signature);
    expect(verifyEd25519(pk, msg, sig)).toBe(true);
  });

  it('agrees with @noble/curves on random keys and messages, and rejects any flipped bit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), fc.nat(), (sk, msg, flip) => {
        const pk = getEd25519PublicKey(sk);
        expect(pk).toEqual(nobleEd25519.getPublicKey(sk));
        const sig = signEd25519(sk, msg);
        expect(sig).toEqual(nobleEd25519.sign(msg, sk));
        expect(verifyEd25519(pk, msg, sig)).toBe(true);
        const bad = sig.slice();
        bad[flip % 64]! ^= 1 << (flip % 8);
        expect(verifyEd25519(pk, msg, bad)).toBe(false);
        if (msg.length > 0) {
          const m2 = msg.slice();
          m2[flip % m2.length]! ^= 1;
          expect(verifyEd25519(pk, m2, sig)).toBe(false);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('fails closed on wrong lengths and non-canonical S instead of throwing', () => {
    const { secretKey, publicKey } = generateEd25519KeyPair();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = signEd25519(secretKey, msg);
    expect(verifyEd25519(publicKey.subarray(0, 31), msg, sig)).toBe(false);
    expect(verifyEd25519(publicKey, msg, sig.subarray(0, 63))).toBe(false);
    expect(verifyEd25519(new Uint8Array(32).fill(0xff), msg, sig)).toBe(false);
    // S + L (the group order) is the same scalar but not canonical: RFC 8032 §5.1.7 step 1 rejects it.
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
    s += L;
    const malleable = sig.slice();
    for (let i = 32; i < 64; i++, s >>= 8n) malleable[i] = Number(s & 0xffn);
    expect(verifyEd25519(publicKey, msg, malleable)).toBe(false);
  });

  it('domain-separates signed messages: no two (purpose, parts) lists encode alike', () => {
    fc.assert(
      fc.property(fc.string(), fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 8 })), { maxLength: 4 }), fc.string(), fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 8 })), { maxLength: 4 }), (p1, a, p2, b) => {
        const same = p1 === p2 && a.length === b.length && a.every((x, i) => typeof x === typeof b[i] && (typeof x === 'string' ? x === b[i] : bytesToHex(x) === bytesToHex(b[i] as Uint8Array)));
        if (!same) expect(bytesToHex(signedMessage(p1, a))).not.toBe(bytesToHex(signedMessage(p2, b)));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a text part apart from the bytes of its encoding', () => {
    expect(bytesToHex(signedMessage('p', ['a']))).not.toBe(bytesToHex(signedMessage('p', [new TextEncoder().encode('a')])));
  });

  it('fingerprints are 8 groups of 4 hex digits and differ between keys', () => {
    const a = identityFingerprint(generateEd25519KeyPair().publicKey);
    const b = identityFingerprint(generateEd25519KeyPair().publicKey);
    expect(a).toMatch(/^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
    expect(a).not.toBe(b);
  });
});
