import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { isFedmartError } from '@fedmart/shared/errors';
import { hashIdsToU, PsiParty, x25519MultiplyAll, x25519PrivateKeyObject } from '@fedmart/shared/psi/ecdh-psi';
import { X25519Pool } from './x25519-pool.ts';

const pool = new X25519Pool(3);
afterAll(() => pool.close());

describe('X25519Pool (PSI multiplications on several threads)', () => {
  it('returns exactly x25519MultiplyAll, in order, for batches that split unevenly over the threads', () => {
    // Arrange
    const key = x25519PrivateKeyObject(new Uint8Array(randomBytes(32)));
    for (const n of [0, 5, 6, 301]) {
      const values = hashIdsToU(Array.from({ length: n }, (_, i) => `id-${i}-${n}`));
      // Act
      const got = pool.multiplyBatch(key, values);
      // Assert
      expect(got).toEqual(x25519MultiplyAll(key, values));
    }
  });

  it('fails as the single-threaded path does on a small-order value in a worker share', () => {
    // Arrange: the all-zero u-coordinate (order 1) at the end, in the last worker's share
    const key = x25519PrivateKeyObject(new Uint8Array(randomBytes(32)));
    const values = [...hashIdsToU(Array.from({ length: 40 }, (_, i) => `z-${i}`)), new Uint8Array(32)];
    // Act
    let error: unknown;
    try {
      pool.multiplyBatch(key, values);
    } catch (e) {
      error = e;
    }
    // Assert
    expect(isFedmartError(error, 'CRYPTO_ERROR')).toBe(true);
  });

  it('gives PsiParty the same intersection as one thread', () => {
    // Arrange
    const a = Array.from({ length: 200 }, (_, i) => `c${i}@x`);
    const b = Array.from({ length: 200 }, (_, i) => `c${i + 120}@x`);
    const pa = new PsiParty(a, { multiplyBatch: pool.multiplyBatch });
    const pb = new PsiParty(b, { multiplyBatch: pool.multiplyBatch });
    // Act
    const aToB = pa.blindOwn();
    const bToA = pb.blindOwn();
    const res = pa.intersect(pb.blindOther(aToB), pa.blindOther(bToA));
    // Assert
    expect(res.size).toBe(80);
    expect(res.ids).toEqual(a.slice(120));
  });
});
