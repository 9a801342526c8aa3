import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateX25519KeyPair } from '../crypto/x25519.ts';
import { NOT_BYTES } from '../crypto/wrong-typed-inputs.ts';
import { isFedmartError } from '../errors.ts';
import { unwrapSecretKey, wrapSecretKey } from './key-custody.ts';

const kat = JSON.parse(readFileSync(new URL('../../../test/vectors/he/sk-wrap.json', import.meta.url), 'utf8')) as {
  senderPrivate: string;
  senderPublic: string;
  recipientPrivate: string;
  recipientPublic: string;
  salt: string;
  aadUtf8: string;
  secret: string;
  wrapped: string;
};

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('wrapSecretKey / unwrapSecretKey', () => {
  const sender = { secretKey: hex(kat.senderPrivate), publicKey: hex(kat.senderPublic) };
  const recipient = { secretKey: hex(kat.recipientPrivate), publicKey: hex(kat.recipientPublic) };
  const aad = utf8(kat.aadUtf8);

  it('matches the known-answer vector computed with OpenSSL primitives', () => {
    // Arrange
    const secret = hex(kat.secret);
    // Act
    const wrapped = wrapSecretKey(secret, recipient.publicKey, sender, aad, { salt: hex(kat.salt) });
    // Assert
    expect(toHex(wrapped)).toBe(kat.wrapped);
    expect(toHex(unwrapSecretKey(hex(kat.wrapped), recipient, sender.publicKey, aad))).toBe(kat.secret);
  });

  it('round-trips any secret and aad, with a fresh salt each time', () => {
    const alice = generateX25519KeyPair();
    const bob = generateX25519KeyPair();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 512 }), fc.uint8Array({ maxLength: 64 }), (secret, ad) => {
        // Act
        const w1 = wrapSecretKey(secret, bob.publicKey, alice, ad);
        const w2 = wrapSecretKey(secret, bob.publicKey, alice, ad);
        // Assert
        expect(toHex(unwrapSecretKey(w1, bob, alice.publicKey, ad))).toBe(toHex(secret));
        expect(toHex(w1)).not.toBe(toHex(w2));
        expect(w1.length).toBe(secret.length + 1 + 32 + 16);
      }),
      { numRuns: 40 },
    );
  });

  it('cannot be unwrapped with a wrong key, sender, aad or a flipped bit (CRYPTO_ERROR)', () => {
    // Arrange
    const alice = generateX25519KeyPair();
    const bob = generateX25519KeyPair();
    const eve = generateX25519KeyPair();
    const secret = crypto.getRandomValues(new Uint8Array(300));
    const wrapped = wrapSecretKey(secret, bob.publicKey, alice, aad);
    const flipped = wrapped.slice();
    flipped[100]! ^= 1;
    const flippedSalt = wrapped.slice();
    flippedSalt[5]! ^= 1;
    // Act
    const errors = [
      catchError(() => unwrapSecretKey(wrapped, eve, alice.publicKey, aad)),
      catchError(() => unwrapSecretKey(wrapped, { secretKey: eve.secretKey, publicKey: bob.publicKey }, alice.publicKey, aad)),
      catchError(() => unwrapSecretKey(wrapped, bob, eve.publicKey, aad)),
      catchError(() => unwrapSecretKey(wrapped, bob, alice.publicKey, utf8('fed-2|v1|bob'))),
      catchError(() => unwrapSecretKey(flipped, bob, alice.publicKey, aad)),
      catchError(() => unwrapSecretKey(flippedSalt, bob, alice.publicKey, aad)),
      catchError(() => unwrapSecretKey(wrapped.subarray(0, 40), bob, alice.publicKey, aad)),
      catchError(() => unwrapSecretKey(Uint8Array.of(2, ...wrapped.subarray(1)), bob, alice.publicKey, aad)),
    ];
    // Assert
    for (const e of errors) expect(isFedmartError(e, 'CRYPTO_ERROR'), String(e)).toBe(true);
    expect(toHex(unwrapSecretKey(wrapped, bob, alice.publicKey, aad))).toBe(toHex(secret));
  });

  it('the wrapped bytes do not contain the secret', () => {
    // Arrange
    const alice = generateX25519KeyPair();
    const bob = generateX25519KeyPair();
    const secret = new Uint8Array(256).fill(0xab);
    // Act
    const wrapped = wrapSecretKey(secret, bob.publicKey, alice, aad);
    // Assert
    expect(Buffer.from(wrapped).includes(Buffer.from(secret.subarray(0, 16)))).toBe(false);
  });

  it('rejects a low-order recipient key with CRYPTO_ERROR', () => {
    // Arrange: u = 0 and u = 1 are of small order (RFC 7748 §6.1 all-zero check).
    const alice = generateX25519KeyPair();
    // Act
    const e0 = catchError(() => wrapSecretKey(Uint8Array.of(1), new Uint8Array(32), alice, aad));
    const e1 = catchError(() => wrapSecretKey(Uint8Array.of(1), Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0)), alice, aad));
    // Assert
    expect(isFedmartError(e0, 'CRYPTO_ERROR')).toBe(true);
    expect(isFedmartError(e1, 'CRYPTO_ERROR')).toBe(true);
  });

  it('rejects wrong-typed arguments with TypeError or RangeError', () => {
    // Arrange
    const alice = generateX25519KeyPair();
    const bob = generateX25519KeyPair();
    const secret = Uint8Array.of(1, 2, 3);
    const wrapped = wrapSecretKey(secret, bob.publicKey, alice, aad);
    const isArgError = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError;
    for (const bad of NOT_BYTES) {
      // Act + Assert
      expect(isArgError(catchError(() => wrapSecretKey(bad as Uint8Array, bob.publicKey, alice, aad)))).toBe(true);
      expect(isArgError(catchError(() => wrapSecretKey(secret, bad as Uint8Array, alice, aad)))).toBe(true);
      expect(isArgError(catchError(() => wrapSecretKey(secret, bob.publicKey, { secretKey: bad as Uint8Array, publicKey: alice.publicKey }, aad)))).toBe(true);
      expect(isArgError(catchError(() => wrapSecretKey(secret, bob.publicKey, alice, bad as Uint8Array)))).toBe(true);
      expect(isArgError(catchError(() => unwrapSecretKey(bad as Uint8Array, bob, alice.publicKey, aad)))).toBe(true);
      expect(isArgError(catchError(() => unwrapSecretKey(wrapped, bob, bad as Uint8Array, aad)))).toBe(true);
      expect(isArgError(catchError(() => unwrapSecretKey(wrapped, bob, alice.publicKey, bad as Uint8Array)))).toBe(true);
    }
    expect(isArgError(catchError(() => wrapSecretKey(new Uint8Array(0), bob.publicKey, alice, aad)))).toBe(true);
    expect(isArgError(catchError(() => wrapSecretKey(secret, new Uint8Array(31), alice, aad)))).toBe(true);
    expect(isArgError(catchError(() => wrapSecretKey(secret, bob.publicKey, null as never, aad)))).toBe(true);
  });
});
