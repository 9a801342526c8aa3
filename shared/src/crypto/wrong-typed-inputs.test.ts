import { describe, expect, it } from 'vitest';
import { aeadOpen, aeadSeal, aeadSealWithNonceUnsafe, encodeAssociatedData } from './aead.ts';
import { getEd25519PublicKey, identityFingerprint, signEd25519, verifyEd25519 } from './ed25519.ts';
import { hkdfSha256 } from './kdf.ts';
import { addExpandedSeed, expandSeed } from './prg.ts';
import { combineShares, decodeShare, encodeShare, splitSecret, splitSecretWithCoefficientsUnsafe } from './shamir.ts';
import { NOT_BYTES, NOT_INTEGER } from './wrong-typed-inputs.ts';
import { getX25519PublicKey, x25519SharedSecret, x25519SharedSecrets } from './x25519.ts';

const k32 = new Uint8Array(32).fill(1);
const pk = getX25519PublicKey(k32);
const n12 = new Uint8Array(12);
const ad = new Uint8Array(4);
const box = aeadSeal(k32, new Uint8Array(3), ad);
const share = splitSecret(k32, 1, 1)[0]!;

/** Every export that takes bytes, with the position of each bytes argument. */
const BYTES_CALLS: [string, (x: unknown) => unknown][] = [
  ['getEd25519PublicKey(sk)', (x) => getEd25519PublicKey(x as Uint8Array)],
  ['signEd25519(sk, ·)', (x) => signEd25519(x as Uint8Array, ad)],
  ['signEd25519(·, message)', (x) => signEd25519(k32, x as Uint8Array)],
  ['verifyEd25519(pk, ·, ·)', (x) => verifyEd25519(x as Uint8Array, ad, new Uint8Array(64))],
  ['verifyEd25519(·, message, ·)', (x) => verifyEd25519(k32, x as Uint8Array, new Uint8Array(64))],
  ['verifyEd25519(·, ·, signature)', (x) => verifyEd25519(k32, ad, x as Uint8Array)],
  ['identityFingerprint(pk)', (x) => identityFingerprint(x as Uint8Array)],
  ['getX25519PublicKey(sk)', (x) => getX25519PublicKey(x as Uint8Array)],
  ['x25519SharedSecret(sk, ·)', (x) => x25519SharedSecret(x as Uint8Array, pk)],
  ['x25519SharedSecret(·, pk)', (x) => x25519SharedSecret(k32, x as Uint8Array)],
  ['x25519SharedSecrets(sk, ·)', (x) => x25519SharedSecrets(x as Uint8Array, [pk])],
  ['x25519SharedSecrets(·, [pk])', (x) => x25519SharedSecrets(k32, [x as Uint8Array])],
  ['hkdfSha256(ikm)', (x) => hkdfSha256(x as Uint8Array, ad, ad, 32)],
  ['hkdfSha256(salt)', (x) => hkdfSha256(ad, x as Uint8Array, ad, 32)],
  ['hkdfSha256(info)', (x) => hkdfSha256(ad, ad, x as Uint8Array, 32)],
  ['aeadSeal(key)', (x) => aeadSeal(x as Uint8Array, ad, ad)],
  ['aeadSeal(plaintext)', (x) => aeadSeal(k32, x as Uint8Array, ad)],
  ['aeadSeal(ad)', (x) => aeadSeal(k32, ad, x as Uint8Array)],
  ['aeadSealWithNonceUnsafe(nonce)', (x) => aeadSealWithNonceUnsafe(k32, x as Uint8Array, ad, ad)],
  ['aeadOpen(key)', (x) => aeadOpen(x as Uint8Array, box, ad)],
  ['aeadOpen(box)', (x) => aeadOpen(k32, x as Uint8Array, ad)],
  ['aeadOpen(ad)', (x) => aeadOpen(k32, box, x as Uint8Array)],
  ['expandSeed(seed)', (x) => expandSeed(x as Uint8Array, 4)],
  ['expandSeed(opts.nonce)', (x) => expandSeed(k32, 4, { nonce: x as Uint8Array })],
  ['addExpandedSeed(seed)', (x) => addExpandedSeed(new Uint32Array(4), x as Uint8Array, 1)],
  ['splitSecret(secret)', (x) => splitSecret(x as Uint8Array, 1, 2)],
  ['splitSecretWithCoefficientsUnsafe(secret)', (x) => splitSecretWithCoefficientsUnsafe(x as Uint8Array, [], 2)],
  ['combineShares([{ value }])', (x) => combineShares([{ index: 1, value: x as Uint8Array }])],
  ['encodeShare({ value })', (x) => encodeShare({ index: 1, value: x as Uint8Array })],
  ['decodeShare(bytes)', (x) => decodeShare(x as Uint8Array)],
];

/** Every export that takes an integer. */
const INTEGER_CALLS: [string, (x: unknown) => unknown][] = [
  ['hkdfSha256(length)', (x) => hkdfSha256(ad, ad, ad, x as number)],
  ['expandSeed(words)', (x) => expandSeed(k32, x as number)],
  ['expandSeed(opts.counter)', (x) => expandSeed(k32, 4, { counter: x as number })],
  ['splitSecret(t)', (x) => splitSecret(k32, x as number, 3)],
  ['splitSecret(n)', (x) => splitSecret(k32, 1, x as number)],
  ['combineShares([{ index }])', (x) => combineShares([{ index: x as number, value: share.value }])],
  ['encodeAssociatedData(sender)', (x) => encodeAssociatedData({ purpose: 'p', round: 'r', sender: x as number, receiver: 1 })],
];

describe('every crypto export rejects wrong-typed input with a labelled TypeError/RangeError', () => {
  it.each(BYTES_CALLS)('%s rejects non-Uint8Array values', (label, call) => {
    // An optional option may legitimately be undefined (it means "default").
    for (const bad of NOT_BYTES.filter((b) => !(label.includes('opts.') && b === undefined))) {
      let caught: unknown;
      try {
        call(bad);
      } catch (e) {
        caught = e;
      }
      expect(caught, `${label} accepted ${String(bad)}`).toBeInstanceOf(TypeError);
      expect((caught as Error).message).toMatch(/: /); // labelled "fn: arg: …"
    }
  });

  it.each(INTEGER_CALLS)('%s rejects non-integers', (label, call) => {
    for (const bad of NOT_INTEGER.filter((b) => !(label.includes('opts.') && b === undefined))) {
      let caught: unknown;
      try {
        call(bad);
      } catch (e) {
        caught = e;
      }
      expect(caught instanceof TypeError || caught instanceof RangeError, `${label} accepted ${String(bad)}`).toBe(true);
    }
  });

  it('still accepts a Node Buffer (a Uint8Array subclass)', () => {
    expect(expandSeed(Buffer.alloc(32), 1)).toHaveLength(1);
  });
});
