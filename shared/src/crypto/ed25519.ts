/**
 * Ed25519 signatures (RFC 8032 §5.1, "PureEdDSA" over edwards25519): the
 * long-term identity of a partner node, and the signatures secure
 * aggregation and CKKS key custody add against a lying coordinator
 * (Bonawitz et al., CCS 2017, §6 "active adversary" variant).
 *
 * Signing and verification run on node:crypto (OpenSSL), as `x25519.ts`
 * does for key agreement: a client in a SecAgg+ round verifies on the order
 * of n/2 survivor-set signatures, and OpenSSL verifies ~20× faster than a
 * pure-JS ladder here. The tests check both against the RFC 8032 §7.1
 * vectors and cross-check random keys against `@noble/curves`' `ed25519`.
 * OpenSSL's verifier is RFC 8032 strict (rejects non-canonical S).
 *
 * Fails closed: {@link verifyEd25519} returns false for every malformed
 * signature or key (never throws on attacker-controlled bytes of the right
 * type); wrong-typed arguments are programming errors and throw.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { assertBytes, bytesToHex, concatBytes, lengthPrefixed, u32be } from './bytes.ts';

/** Length in bytes of an Ed25519 secret key (seed) and public key. */
export const ED25519_KEY_BYTES = 32;
/** Length in bytes of an Ed25519 signature. */
export const ED25519_SIGNATURE_BYTES = 64;

/** DER prefixes wrapping a raw 32-byte Ed25519 key as PKCS#8 / SPKI (RFC 8410). */
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** An Ed25519 key pair, both halves raw 32-byte strings (RFC 8032 encoding). */
export interface Ed25519KeyPair {
  /** 32-byte seed; keep private. */
  secretKey: Uint8Array;
  /** 32-byte encoded point A. */
  publicKey: Uint8Array;
}

function der(prefix: Uint8Array, key: Uint8Array): Buffer {
  return Buffer.from(concatBytes(prefix, key));
}

// Parsed public keys, cached by content (identity keys are verified many times a round, by
// every client, from their own copies). Bounded: cleared when full.
const PUBLIC_KEY_CACHE_SIZE = 4096;
const publicKeys = new Map<string, KeyObject>();
function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const hex = bytesToHex(publicKey);
  let key = publicKeys.get(hex);
  if (!key) {
    if (publicKeys.size >= PUBLIC_KEY_CACHE_SIZE) publicKeys.clear();
    publicKeys.set(hex, (key = createPublicKey({ key: der(SPKI_PREFIX, publicKey), format: 'der', type: 'spki' })));
  }
  return key;
}
// Secret keys are parsed per call: caching them would keep secrets alive in a global.
function privateKeyObject(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: der(PKCS8_PREFIX, secretKey), format: 'der', type: 'pkcs8' });
}

/**
 * Derive the public key of a secret key (RFC 8032 §5.1.5).
 * @param secretKey - 32-byte seed
 * @returns 32-byte public key
 * @throws TypeError/RangeError on a wrong-typed or wrong-length key
 */
export function getEd25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertBytes('getEd25519PublicKey: secretKey', secretKey, ED25519_KEY_BYTES);
  const spki = createPublicKey(privateKeyObject(secretKey)).export({ type: 'spki', format: 'der' });
  return new Uint8Array(spki.subarray(spki.length - ED25519_KEY_BYTES));
}

/**
 * A fresh key pair from the OS CSPRNG.
 * @returns the pair
 */
export function generateEd25519KeyPair(): Ed25519KeyPair {
  const secretKey = new Uint8Array(randomBytes(ED25519_KEY_BYTES));
  return { secretKey, publicKey: getEd25519PublicKey(secretKey) };
}

/**
 * Sign a message (RFC 8032 §5.1.6; deterministic, no randomness needed).
 * @param secretKey - 32-byte seed
 * @param message - bytes to sign (callers sign a domain-separated encoding, see {@link signedMessage})
 * @returns 64-byte signature
 * @throws TypeError/RangeError on wrong-typed arguments
 * @example
 * const sig = signEd25519(identity.secretKey, signedMessage('fedmart/example/v1', [bytes]));
 */
export function signEd25519(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  assertBytes('signEd25519: secretKey', secretKey, ED25519_KEY_BYTES);
  assertBytes('signEd25519: message', message);
  return new Uint8Array(sign(null, message, privateKeyObject(secretKey)));
}

/**
 * Verify a signature (RFC 8032 §5.1.7, cofactorless, canonical S required).
 * @param publicKey - 32-byte public key
 * @param message - the signed bytes
 * @param signature - 64-byte signature
 * @returns true only for a valid signature; false for any invalid signature, key or length
 * @throws TypeError when an argument is not a Uint8Array
 */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  assertBytes('verifyEd25519: publicKey', publicKey);
  assertBytes('verifyEd25519: message', message);
  assertBytes('verifyEd25519: signature', signature);
  if (publicKey.length !== ED25519_KEY_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

const TAG_TEXT = Uint8Array.of(1);
const TAG_BYTES = Uint8Array.of(2);

/**
 * Domain-separated message to sign: length-prefixed purpose label, then each
 * part type-tagged and length-prefixed, so no two (purpose, parts) lists encode alike and a
 * signature made for one protocol step is never valid for another.
 * @param purpose - a versioned label, e.g. 'fedmart/secagg/v2/advertise-keys'
 * @param parts - the fields, in a fixed order
 * @returns the bytes to sign
 */
export function signedMessage(purpose: string, parts: readonly (Uint8Array | string)[]): Uint8Array {
  const out: Uint8Array[] = [lengthPrefixed(purpose)];
  for (const p of parts) {
    // A tag byte keeps a string and the bytes of its UTF-8 encoding apart.
    if (typeof p === 'string') out.push(TAG_TEXT, lengthPrefixed(p));
    else out.push(TAG_BYTES, u32be(p.length), p);
  }
  return concatBytes(...out);
}

/**
 * Fingerprint of an identity public key, for people to compare out of band:
 * the first 128 bits of SHA-256(public key), hex, in groups of four.
 * @param publicKey - 32-byte Ed25519 public key
 * @returns e.g. 'a1b2:c3d4:…' (8 groups)
 * @throws TypeError/RangeError on a wrong key
 */
export function identityFingerprint(publicKey: Uint8Array): string {
  assertBytes('identityFingerprint: publicKey', publicKey, ED25519_KEY_BYTES);
  return bytesToHex(sha256(publicKey).subarray(0, 16)).match(/.{4}/g)!.join(':');
}
