import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addMask } from './mask-prg.ts';
import { generateX25519KeyPair, x25519SharedSecret } from '../crypto/x25519.ts';
import { derivePairwiseSeed, pairwiseSign } from './keys.ts';

describe('pairwise masks (Bonawitz et al. 2017, §4)', () => {
  it('cancel in the sum over every client: Σ_u Σ_{v≠u} sign(u,v)·PRG(s_uv) = 0 mod 2^32', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 1000 }), { minLength: 2, maxLength: 6 }), fc.integer({ min: 1, max: 3000 }), (ids, length) => {
        // Arrange: each client derives its masks from its own secret key and the others' public keys
        const keys = new Map(ids.map((id) => [id, generateX25519KeyPair()]));
        const total = new Uint32Array(length);
        // Act
        for (const u of ids) {
          const masked = new Uint32Array(length);
          for (const v of ids) {
            if (v === u) continue;
            const seed = derivePairwiseSeed(x25519SharedSecret(keys.get(u)!.secretKey, keys.get(v)!.publicKey), 'round-1', u, v);
            addMask(masked, seed, pairwiseSign(u, v));
          }
          for (let j = 0; j < length; j++) total[j] = (total[j]! + masked[j]!) >>> 0;
        }
        // Assert
        expect(total.every((x) => x === 0)).toBe(true);
      }),
      { numRuns: 15 },
    );
  });

  it('do not cancel across rounds or pairs (seeds are bound to round and pair)', () => {
    const secret = new Uint8Array(32).fill(3);
    expect(derivePairwiseSeed(secret, 'r1', 1, 2)).toEqual(derivePairwiseSeed(secret, 'r1', 2, 1));
    expect(derivePairwiseSeed(secret, 'r1', 1, 2)).not.toEqual(derivePairwiseSeed(secret, 'r2', 1, 2));
    expect(derivePairwiseSeed(secret, 'r1', 1, 2)).not.toEqual(derivePairwiseSeed(secret, 'r1', 1, 3));
  });
});
