/**
 * Issue 8, item 3, "go further": with multiparty CKKS (Mouchet et al.,
 * PoPETs 2021; `shared/src/he/multiparty.ts`) no partner holds the key that
 * decrypts. The coordinator holds every individual ciphertext; here it
 * colludes with partner B — and then with every partner but A — and tries
 * to decrypt partner A's individual update with everything the coalition
 * has: its members' own secret keys (as raw decryption c0 + c1·Σ s_i, no
 * smudging) and A's honest decryption shares of the round's aggregate.
 */
import { describe, expect, it } from 'vitest';
import { createMultipartyCkks } from '@fedmart/shared/he/multiparty';

const seed = new Uint8Array(32).fill(3);
const update = (party: number, length: number) => Float64Array.from({ length }, (_, j) => Math.cos(3 * party + 0.1 * j));

/** How close a decoded vector is to the target: max |difference|. */
const distance = (got: Float64Array, want: Float64Array) => Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]!)));

describe('issue 8 item 3: a coordinator colluding with partners cannot decrypt another partner’s CKKS update', () => {
  it('coordinator + B, and coordinator + every partner but A, get garbage for A’s ciphertext; all three partners together decrypt only the sum', async () => {
    // Arrange: three partners A, B, C make the collective key; each uploads one ciphertext; the coordinator sums
    const mp = await createMultipartyCkks({ parties: 3 });
    const [A, B, C] = [0, 1, 2].map(() => mp.createKeyShare(seed));
    const pk = mp.combinePublicKey(seed, [A!.publicShare, B!.publicShare, C!.publicShare]);
    const L = 256;
    const xs = [0, 1, 2].map((i) => update(i, L));
    const uploads = xs.map((x) => mp.encryptVector(pk, x));
    const aggregate = mp.addCiphertexts(uploads);
    const aShareOfAggregate = mp.decryptionShares(A!.secretKey, aggregate); // what honest A reveals in the round
    const ctA = uploads[0]!;
    // Act: the coalition's best decryptions of A's individual ciphertext
    const withB = mp.partialDecryptUnsafe(ctA, [mp.decryptionShares(B!.secretKey, ctA)], L);
    const withBC = mp.partialDecryptUnsafe(ctA, [mp.decryptionShares(B!.secretKey, ctA), mp.decryptionShares(C!.secretKey, ctA)], L);
    const withAggregateShare = mp.partialDecryptUnsafe(ctA, [aShareOfAggregate, mp.decryptionShares(B!.secretKey, ctA), mp.decryptionShares(C!.secretKey, ctA)], L);
    // Assert: nothing near A's update (its values are in [−1, 1]; garbage is ~1e9 and more)
    for (const attempt of [withB, withBC, withAggregateShare]) expect(distance(attempt, xs[0]!)).toBeGreaterThan(1e3);
    // Control (the fixture is not vacuous): with A's own share of ctA the three decrypt it, and the round's aggregate decrypts to the sum
    const all = mp.combineDecryption(ctA, [mp.decryptionShares(A!.secretKey, ctA), mp.decryptionShares(B!.secretKey, ctA), mp.decryptionShares(C!.secretKey, ctA)], L);
    expect(distance(all, xs[0]!)).toBeLessThan(1e-6);
    const sum = mp.combineDecryption(aggregate, [aShareOfAggregate, mp.decryptionShares(B!.secretKey, aggregate), mp.decryptionShares(C!.secretKey, aggregate)], L);
    expect(distance(sum, Float64Array.from({ length: L }, (_, j) => xs[0]![j]! + xs[1]![j]! + xs[2]![j]!))).toBeLessThan(1e-6);
    mp.dispose();
  });
});
