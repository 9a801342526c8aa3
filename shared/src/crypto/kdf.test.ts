import { readFileSync } from 'node:fs';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from './bytes.ts';
import { HKDF_SHA256_MAX_LENGTH, hkdfSha256 } from './kdf.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/hkdf/rfc5869.json', import.meta.url), 'utf8')) as {
  vectors: { name: string; ikm: string; salt: string; info: string; length: number; okm: string }[];
};

describe('hkdfSha256', () => {
  it.each(rfc.vectors)('matches RFC 5869 $name', (v) => {
    // Act
    const okm = hkdfSha256(hexToBytes(v.ikm), hexToBytes(v.salt), hexToBytes(v.info), v.length);
    // Assert
    expect(bytesToHex(okm)).toBe(v.okm);
  });

  it('agrees with @noble/hashes HKDF on both paths (info ≤ 1024 bytes: node:crypto; longer: noble), and the empty salt means HashLen zeros', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 40 }), fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 1020, maxLength: 1100 })), fc.integer({ min: 1, max: 200 }), (ikm, salt, info, len) => {
        const expected = hkdf(sha256, ikm, salt.length === 0 ? undefined : salt, info, len);
        expect(hkdfSha256(ikm, salt, info, len)).toEqual(expected);
      }),
      { numRuns: 50 },
    );
    expect(hkdfSha256(new Uint8Array(8), new Uint8Array(0), new Uint8Array(0), 32)).toEqual(hkdfSha256(new Uint8Array(8), new Uint8Array(32), new Uint8Array(0), 32));
  });

  it('rejects lengths outside 1..255·HashLen', () => {
    const z = new Uint8Array(1);
    expect(() => hkdfSha256(z, z, z, 0)).toThrow(/hkdfSha256: length/);
    expect(() => hkdfSha256(z, z, z, HKDF_SHA256_MAX_LENGTH + 1)).toThrow(RangeError);
  });
});
