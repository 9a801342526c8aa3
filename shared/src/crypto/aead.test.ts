import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { AEAD_OVERHEAD_BYTES, aeadOpen, aeadSeal, aeadSealWithNonceUnsafe, encodeAssociatedData } from './aead.ts';
import { bytesToHex, hexToBytes } from './bytes.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/chacha20poly1305/rfc8439.json', import.meta.url), 'utf8')) as {
  vectors: { key: string; nonce: string; aad: string; plaintext: string; ciphertext: string; tag: string }[];
};

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

const ctx = { purpose: 'fedmart/secagg/v1/share', round: 'r1', sender: 3, receiver: 7 };

describe('ChaCha20-Poly1305', () => {
  it.each(rfc.vectors)('matches RFC 8439 §2.8.2 and opens back', (v) => {
    // Arrange
    const key = hexToBytes(v.key);
    const aad = hexToBytes(v.aad);
    // Act
    const box = aeadSealWithNonceUnsafe(key, hexToBytes(v.nonce), hexToBytes(v.plaintext), aad);
    // Assert
    expect(bytesToHex(box)).toBe(v.nonce + v.ciphertext + v.tag);
    expect(bytesToHex(aeadOpen(key, box, aad))).toBe(v.plaintext);
  });

  it('round-trips any plaintext and uses a fresh nonce each time', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (key, pt) => {
        const ad = encodeAssociatedData(ctx);
        const a = aeadSeal(key, pt, ad);
        const b = aeadSeal(key, pt, ad);
        expect(a.length).toBe(pt.length + AEAD_OVERHEAD_BYTES);
        expect(a.subarray(0, 12)).not.toEqual(b.subarray(0, 12));
        expect(aeadOpen(key, a, ad)).toEqual(pt);
      }),
      { numRuns: 50 },
    );
  });

  it('fails closed when sender, receiver, round or any byte changes', () => {
    // Arrange
    const key = new Uint8Array(32).fill(9);
    const box = aeadSeal(key, new Uint8Array([1, 2, 3]), encodeAssociatedData(ctx));
    const variants = [{ ...ctx, sender: 4 }, { ...ctx, receiver: 3, sender: 7 }, { ...ctx, round: 'r2' }, { ...ctx, purpose: 'other' }];
    // Act + Assert
    for (const v of variants) expect(isFedmartError(catchError(() => aeadOpen(key, box, encodeAssociatedData(v))), 'CRYPTO_ERROR')).toBe(true);
    for (let i = 0; i < box.length; i++) {
      const tampered = box.slice();
      tampered[i]! ^= 1;
      expect(isFedmartError(catchError(() => aeadOpen(key, tampered, encodeAssociatedData(ctx))), 'CRYPTO_ERROR')).toBe(true);
    }
    expect(() => aeadOpen(key, box.subarray(0, 27), encodeAssociatedData(ctx))).toThrow(RangeError);
  });

  it('associated data is unambiguous (length-prefixed fields)', () => {
    const a = encodeAssociatedData({ purpose: 'ab', round: 'c', sender: 1, receiver: 2 });
    const b = encodeAssociatedData({ purpose: 'a', round: 'bc', sender: 1, receiver: 2 });
    expect(a).not.toEqual(b);
    expect(() => encodeAssociatedData({ ...ctx, sender: -1 })).toThrow(/ctx.sender/);
  });
});
