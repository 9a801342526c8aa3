import { readFileSync } from 'node:fs';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { bytesToHex, hexToBytes } from './bytes.ts';
import { generateX25519KeyPair, getX25519PublicKey, x25519SharedSecret, x25519SharedSecrets } from './x25519.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/x25519/rfc7748.json', import.meta.url), 'utf8')) as {
  vectors: { aliceSecretKey: string; alicePublicKey: string; bobSecretKey: string; bobPublicKey: string; sharedSecret: string }[];
};

describe('x25519', () => {
  it.each(rfc.vectors)('matches RFC 7748 §6.1', (v) => {
    // Arrange
    const a = hexToBytes(v.aliceSecretKey);
    const b = hexToBytes(v.bobSecretKey);
    // Act
    const aPub = getX25519PublicKey(a);
    const bPub = getX25519PublicKey(b);
    const k1 = x25519SharedSecret(a, hexToBytes(v.bobPublicKey));
    const k2 = x25519SharedSecret(b, hexToBytes(v.alicePublicKey));
    // Assert
    expect(bytesToHex(aPub)).toBe(v.alicePublicKey);
    expect(bytesToHex(bPub)).toBe(v.bobPublicKey);
    expect(bytesToHex(k1)).toBe(v.sharedSecret);
    expect(bytesToHex(k2)).toBe(v.sharedSecret);
  });

  it('agrees with @noble/curves for random keys (both sides derive the same secret)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
        const aPub = getX25519PublicKey(a);
        const bPub = getX25519PublicKey(b);
        expect(aPub).toEqual(nobleX25519.getPublicKey(a));
        const k = x25519SharedSecret(a, bPub);
        expect(k).toEqual(x25519SharedSecret(b, aPub));
        expect(k).toEqual(nobleX25519.getSharedSecret(a, bPub));
      }),
      { numRuns: 25 },
    );
  });

  it('generates distinct CSPRNG key pairs whose public key matches the secret key', () => {
    const p1 = generateX25519KeyPair();
    const p2 = generateX25519KeyPair();
    expect(p1.secretKey).not.toEqual(p2.secretKey);
    expect(p1.publicKey).toEqual(getX25519PublicKey(p1.secretKey));
  });

  it('batch agreement equals one-by-one agreement', () => {
    const me = generateX25519KeyPair();
    const peers = [generateX25519KeyPair(), generateX25519KeyPair()];
    expect(x25519SharedSecrets(me.secretKey, peers.map((p) => p.publicKey))).toEqual(peers.map((p) => x25519SharedSecret(me.secretKey, p.publicKey)));
  });

  it('fails closed on small-order peer keys (all-zero shared secret)', () => {
    const me = generateX25519KeyPair();
    // u = 0 and u = 1 are small-order points (RFC 7748 §6.1 check).
    for (const u of [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)])]) {
      let caught: unknown;
      try {
        x25519SharedSecret(me.secretKey, u);
      } catch (e) {
        caught = e;
      }
      expect(isFedmartError(caught, 'CRYPTO_ERROR')).toBe(true);
    }
  });

  it('rejects wrong lengths with a labelled RangeError', () => {
    expect(() => x25519SharedSecret(new Uint8Array(31), new Uint8Array(32))).toThrow(/x25519SharedSecret: secretKey.*length 32/);
    expect(() => getX25519PublicKey(new Uint8Array(33))).toThrow(RangeError);
  });
});
