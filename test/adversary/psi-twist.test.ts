/**
 * Issue 8, item 8: PSI without the twist bit.
 *
 * The attack. X25519 maps a point on Curve25519 to the curve and a point on
 * the quadratic twist to the twist. If H(id) can land on either, every
 * blinded value a·H(id) a party sends tells its peer one bit of H(id) —
 * "is u³ + A·u² + u a square mod p?" — which the peer can compute for any
 * id it guesses. With the old mapping (SHA-256 read as a u-coordinate)
 * about half of all H(id) were on the twist.
 *
 * The game, precisely. For each of 10,000 trials the challenger draws two
 * fresh ids x, y that the adversary's own set does not contain, flips a fair
 * coin c, and puts z = (x if c else y) into party A's set. A runs the real
 * protocol with the adversary B, whose 10,000 ids are disjoint from A's (the
 * intersection is empty), and B receives A's blinded values. The
 * distinguisher gets the blinded value of z together with (x, y) and
 * guesses which: if the twist bits of H(x) and H(y) differ it picks the one
 * whose bit equals the blinded value's, otherwise it guesses x. Its success
 * rate is 1/2 + P(bits differ)/2: about 0.75 against the old mapping, and
 * exactly chance if every H(id) is on the curve (the bit is constant and
 * carries nothing). The test requires every blinded value on the curve and
 * a success rate within 0.5 ± 0.025 (5 standard deviations of a fair coin
 * over 10,000 trials), so it fails on the old mapping by ~50σ.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashIdsToU, PsiParty, x25519Multiply, x25519PrivateKeyObject } from '@fedmart/shared/psi/ecdh-psi';
import { isOnCurve25519 } from '@fedmart/shared/psi/hash-to-curve25519';

const TRIALS = 10_000;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('adversary: the on-curve/on-twist bit of blinded PSI values (issue 8, item 8)', () => {
  it('gives a distinguisher no advantage on 10,000 non-shared ids: every blinded value is on the curve', () => {
    // Arrange: candidate pairs, the coin, A's set of chosen ids, B's disjoint set.
    const xs = Array.from({ length: TRIALS }, (_, i) => `x-${i}-${randomBytes(6).toString('hex')}@shop.example`);
    const ys = Array.from({ length: TRIALS }, (_, i) => `y-${i}-${randomBytes(6).toString('hex')}@shop.example`);
    const coins = Array.from(randomBytes(TRIALS), (b) => (b & 1) === 1);
    const chosen = coins.map((c, i) => (c ? xs[i]! : ys[i]!));
    const bIds = Array.from({ length: TRIALS }, (_, i) => `b-${i}@brand.example`);
    const scalarA = new Uint8Array(randomBytes(32)); // known to the challenger only, to pair values with trials
    const a = new PsiParty(chosen, { secretScalar: scalarA });
    const b = new PsiParty(bIds);

    // Act: the real exchange; B ends up holding A's blinded values.
    const aToB = a.blindOwn();
    const bToA = b.blindOwn();
    const result = a.intersect(b.blindOther(aToB), a.blindOther(bToA));
    // The challenger recomputes a·H(z) per trial to hand the distinguisher the right value (shuffling hid the order, not the values).
    const keyA = x25519PrivateKeyObject(scalarA);
    const blinded = hashIdsToU(chosen).map((u) => x25519Multiply(keyA, u));
    const sent = new Set(aToB.map(hex));
    const bitX = hashIdsToU(xs).map(isOnCurve25519);
    const bitY = hashIdsToU(ys).map(isOnCurve25519);
    let wins = 0;
    let onCurve = 0;
    for (let i = 0; i < TRIALS; i++) {
      const bit = isOnCurve25519(blinded[i]!);
      if (bit) onCurve++;
      const guessX = bitX[i] !== bitY[i] ? bitX[i] === bit : true;
      if (guessX === coins[i]) wins++;
    }

    // Assert
    expect(result.size).toBe(0); // the ids really are non-shared
    expect(blinded.every((v) => sent.has(hex(v)))).toBe(true); // the distinguisher saw what A actually sent
    expect(Math.abs(wins / TRIALS - 0.5), `distinguisher success rate ${wins / TRIALS}`).toBeLessThan(0.025);
    expect(onCurve).toBe(TRIALS); // the bit is constant: on the curve, never the twist
  });
});
