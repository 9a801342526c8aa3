import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { createMultipartyCkks, smudgingBits, MULTIPARTY_SCALE_BITS } from './multiparty.ts';

const seed = new Uint8Array(32).fill(9);
const vector = (party: number, length: number) => Float64Array.from({ length }, (_, j) => Math.sin(7 * party + j) * 2);

function expectCode(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(isFedmartError(error, code as never)).toBe(true);
    expect(String((error as Error).message)).toMatch(message);
    return;
  }
  throw new Error(`expected FedmartError ${code}`);
}

describe('multiparty CKKS (Mouchet et al. 2021, n-out-of-n)', () => {
  it('smudging bound: 2^40 · N · m·21·(2nN + 1), known values for N = 8192', () => {
    // 3 parties: log2(2^40 · 2^13 · 3·21·(2·3·8192 + 1)) = 53 + 21.5 → 75; 100 parties → 85
    expect(smudgingBits(3, 8192)).toBe(75);
    expect(smudgingBits(100, 8192)).toBe(85);
  });

  it('the collective key decrypts the homomorphic sum of three partners only with all three decryption shares, within the smudging precision', async () => {
    // Arrange
    const mp = await createMultipartyCkks({ parties: 3 });
    const keys = [0, 1, 2].map(() => mp.createKeyShare(seed));
    const pk = mp.combinePublicKey(seed, keys.map((k) => k.publicShare));
    const L = mp.slotCount + 100; // two chunks
    const xs = [0, 1, 2].map((i) => vector(i, L));
    const aggregate = mp.addCiphertexts(xs.map((x) => mp.encryptVector(pk, x)));
    // Act
    const shares = keys.map((k) => mp.decryptionShares(k.secretKey, aggregate));
    const sum = mp.combineDecryption(aggregate, shares, L);
    // Assert: error is the smudging noise, ≈ 2^75·√(3N/3)/2^112 ≈ 7e-10 per value — present (not ~1e-28) and small
    let maxErr = 0;
    for (let j = 0; j < L; j++) maxErr = Math.max(maxErr, Math.abs(sum[j]! - (xs[0]![j]! + xs[1]![j]! + xs[2]![j]!)));
    expect(maxErr).toBeLessThan(1e-6);
    expect(maxErr).toBeGreaterThan(1e-12);
    expectCode(() => mp.combineDecryption(aggregate, shares.slice(0, 2), L), 'ROUND_FAILED', /all 3 key parties.*dropped/);
    mp.dispose();
  });

  it('shares that arrive as Node Buffers at an odd offset in a shared pool (as Socket.IO delivers them) combine like fresh bytes', async () => {
    // Arrange: every public and decryption share copied into one pooled buffer at offsets ≢ 0 mod 8
    const mp = await createMultipartyCkks({ parties: 2 });
    const keys = [0, 1].map(() => mp.createKeyShare(seed));
    const pooled = (bytes: Uint8Array, offset: number) => {
      const pool = Buffer.alloc(bytes.byteLength + offset + 3);
      pool.set(bytes, offset);
      return pool.subarray(offset, offset + bytes.byteLength);
    };
    const pk = mp.combinePublicKey(seed, keys.map((k, i) => pooled(k.publicShare, 3 + i)));
    const xs = [0, 1].map((i) => vector(i, 50));
    const aggregate = mp.addCiphertexts(xs.map((x) => mp.encryptVector(pk, x)));
    const shares = keys.map((k, i) => mp.decryptionShares(k.secretKey, aggregate).map((h) => pooled(h, 5 + i)));
    // Act
    const sum = mp.combineDecryption(aggregate, shares, 50);
    // Assert
    for (let j = 0; j < 50; j++) expect(Math.abs(sum[j]! - xs[0]![j]! - xs[1]![j]!)).toBeLessThan(1e-6);
    mp.dispose();
  });

  it('decryption shares are randomised (fresh smudging noise from the CSPRNG each time) and checked on input', async () => {
    const mp = await createMultipartyCkks({ parties: 2 });
    const keys = [0, 1].map(() => mp.createKeyShare(seed));
    const ct = mp.encryptVector(mp.combinePublicKey(seed, keys.map((k) => k.publicShare)), vector(0, 10));
    const [h1] = mp.decryptionShares(keys[0]!.secretKey, ct);
    const [h2] = mp.decryptionShares(keys[0]!.secretKey, ct);
    expect(h1).not.toEqual(h2);
    const h0 = mp.decryptionShares(keys[1]!.secretKey, ct);
    expectCode(() => mp.combineDecryption(ct, [[h1!], [h1!.subarray(0, 100)]], 10), 'INVALID_MESSAGE', /expected .* bytes/);
    expectCode(() => mp.combineDecryption(ct, [[h1!], h0, h0], 10), 'ROUND_FAILED', /all 2 key parties/);
    expectCode(() => mp.combinePublicKey(seed, [keys[0]!.publicShare]), 'INVALID_MESSAGE', /exactly 2 public shares/);
    expect(mp.combineDecryption(ct, [[h1!], h0], 10)[3]).toBeCloseTo(vector(0, 10)[3]!, 6);
    mp.dispose();
  });

  it('the common reference polynomial is the seed’s: shares made under another seed do not form a working key', async () => {
    const mp = await createMultipartyCkks({ parties: 2 });
    const a = mp.createKeyShare(seed);
    const b = mp.createKeyShare(new Uint8Array(32).fill(10)); // another CRP
    const pk = mp.combinePublicKey(seed, [a.publicShare, b.publicShare]);
    const ct = mp.encryptVector(pk, vector(0, 10));
    const got = mp.combineDecryption(ct, [mp.decryptionShares(a.secretKey, ct), mp.decryptionShares(b.secretKey, ct)], 10);
    expect(Math.max(...Array.from(got, (v, i) => Math.abs(v - vector(0, 10)[i]!)))).toBeGreaterThan(1);
    expect(MULTIPARTY_SCALE_BITS).toBe(112);
    mp.dispose();
  });
});
