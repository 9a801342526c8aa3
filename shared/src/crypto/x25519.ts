/**
 * X25519 Diffie–Hellman (RFC 7748 §5, §6.1).
 *
 * Key agreement runs on node:crypto (OpenSSL) because secure aggregation does
 * O(k) agreements per client and the server redoes them for every dropped
 * client; OpenSSL is 3–10× faster than a pure-JS ladder on our hardware. The
 * tests cross-check every result against `@noble/curves`' `x25519`, and both
 * against the RFC 7748 §6.1 vector. Secret keys are 32 CSPRNG bytes; the
 * RFC's clamping is applied inside the scalar multiplication, so any 32 bytes
 * are a valid secret key.
 *
 * Fails closed: a peer public key of small order (all-zero shared secret,
 * RFC 7748 §6.1 "check") is refused with CRYPTO_ERROR.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { FedmartError } from '../errors.ts';
import { assertBytes } from './bytes.ts';

/** Length in bytes of an X25519 secret key, public key and shared secret. */
export const X25519_KEY_BYTES = 32;

/** An X25519 key pair, both halves raw 32-byte strings (RFC 7748 encoding). */
export interface X25519KeyPair {
  /** 32 random bytes; keep private. */
  secretKey: Uint8Array;
  /** u-coordinate of secretKey·9, little-endian. */
  publicKey: Uint8Array;
}

const base64url = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64url');

/*
 * Raw keys enter OpenSSL as JWK (RFC 8037 OKP), not as PKCS#8/SPKI DER: in
 * Node 20 with OpenSSL 3 a DER import goes through the decoder framework and
 * costs 7–10× more (measured ~100 µs per public key, ~700 µs per private
 * key, against 12 µs and 100 µs), which is most of the server's key
 * agreement time when it unmasks dropped clients. Both paths end in
 * EVP_PKEY_new_raw_{public,private}_key on the same 32 bytes.
 *
 * For a private key Node reads only `d` and derives the public half itself;
 * `x` must be a string and is otherwise ignored (lib/internal/crypto/keys.js,
 * getKeyObjectHandleFromJwk → initEDRaw). We pass an empty `x` rather than
 * compute one: a Node that ever checked `x` would throw, failing closed, and
 * the RFC 7748 vectors in the tests would catch it.
 */
function privateKeyObject(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: base64url(secretKey), x: '' }, format: 'jwk' });
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: base64url(publicKey) }, format: 'jwk' });
}

/**
 * Derive the public key of a secret key (RFC 7748 §6.1: X25519(a, 9)).
 * @param secretKey - 32-byte secret key
 * @returns 32-byte public key
 * @throws TypeError/RangeError on a wrong-typed or wrong-length key
 * @example
 * const pk = getX25519PublicKey(secretKey);
 */
export function getX25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertBytes('getX25519PublicKey: secretKey', secretKey, X25519_KEY_BYTES);
  const { x } = createPublicKey(privateKeyObject(secretKey)).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(x!, 'base64url'));
}

/**
 * Generate a fresh key pair from the operating system CSPRNG.
 * @returns a new key pair
 * @example
 * const { secretKey, publicKey } = generateX25519KeyPair();
 */
export function generateX25519KeyPair(): X25519KeyPair {
  const secretKey = new Uint8Array(randomBytes(X25519_KEY_BYTES));
  return { secretKey, publicKey: getX25519PublicKey(secretKey) };
}

/**
 * X25519 shared secret between our secret key and a peer's public key
 * (RFC 7748 §6.1). Feed the result to HKDF, never use it as a key directly.
 * @param secretKey - our 32-byte secret key
 * @param peerPublicKey - the peer's 32-byte public key
 * @returns 32-byte shared secret
 * @throws TypeError/RangeError on wrong-typed or wrong-length keys
 * @throws FedmartError CRYPTO_ERROR when the peer key is of small order (all-zero output)
 * @example
 * const k = x25519SharedSecret(alice.secretKey, bob.publicKey); // same as bob's view
 */
export function x25519SharedSecret(secretKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  assertBytes('x25519SharedSecret: secretKey', secretKey, X25519_KEY_BYTES);
  assertBytes('x25519SharedSecret: peerPublicKey', peerPublicKey, X25519_KEY_BYTES);
  return x25519SharedSecretPrepared(privateKeyObject(secretKey), peerPublicKey);
}

/**
 * Key agreement with one secret key against many peer public keys, parsing
 * the secret key once (the server does this for every dropped client).
 * @param secretKey - our 32-byte secret key
 * @param peerPublicKeys - peer public keys, 32 bytes each
 * @returns one 32-byte shared secret per peer, in order
 * @throws as {@link x25519SharedSecret}
 */
export function x25519SharedSecrets(secretKey: Uint8Array, peerPublicKeys: readonly Uint8Array[]): Uint8Array[] {
  assertBytes('x25519SharedSecrets: secretKey', secretKey, X25519_KEY_BYTES);
  if (!Array.isArray(peerPublicKeys)) throw new TypeError('x25519SharedSecrets: peerPublicKeys: expected an array of Uint8Array');
  peerPublicKeys.forEach((pk, i) => assertBytes(`x25519SharedSecrets: peerPublicKeys[${i}]`, pk, X25519_KEY_BYTES));
  const priv = privateKeyObject(secretKey);
  return peerPublicKeys.map((pk) => x25519SharedSecretPrepared(priv, pk));
}

function x25519SharedSecretPrepared(priv: KeyObject, peerPublicKey: Uint8Array): Uint8Array {
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey: priv, publicKey: publicKeyObject(peerPublicKey) });
  } catch (cause) {
    // OpenSSL refuses an all-zero result (small-order peer key) with "failed during derivation".
    throw new FedmartError('CRYPTO_ERROR', 'X25519 key agreement failed: the peer public key is of small order or malformed (expected a valid 32-byte X25519 public key); reject this peer', { cause });
  }
  let acc = 0;
  for (const b of out) acc |= b;
  if (acc === 0) throw new FedmartError('CRYPTO_ERROR', 'X25519 key agreement produced an all-zero secret (small-order peer public key); reject this peer');
  return new Uint8Array(out);
}
