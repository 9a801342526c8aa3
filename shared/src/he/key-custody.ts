/**
 * Key custody for the federation's CKKS secret key: one partner generates it
 * and wraps a copy for each other partner; the coordinator relays the wrapped
 * copies and cannot read them.
 *
 * Construction (an authenticated "box", like NaCl's crypto_box but with
 * standard parts):
 * - shared = X25519(sender secret, recipient public)       — RFC 7748 §5/§6.1
 * - key ‖ nonce = HKDF-SHA256(shared, salt, info, 44)       — RFC 5869
 *   info = "fedmart/he/sk-wrap/v1" ‖ senderPublic ‖ recipientPublic
 * - ciphertext = ChaCha20-Poly1305(key, nonce, aad, sk)     — RFC 8439
 * - wire = 0x01 ‖ salt(32) ‖ ciphertext ‖ tag(16)
 *
 * A fresh random 32-byte salt per wrap gives a fresh key and nonce even for
 * the same sender/recipient pair, so nonce reuse cannot happen. Static-static
 * X25519 authenticates the sender to the recipient (only the two of them can
 * compute `shared`); binding both public keys into `info` stops a relay from
 * re-labelling a wrap for another pair. Callers put the federation id, key
 * version and recipient id in `aad`, so a wrap cannot be replayed across
 * federations or key rotations.
 *
 * Not guaranteed: forward secrecy (a later leak of either static key reveals
 * past wraps — rotate partner keys with the federation key), constant time
 * beyond what noble provides, or wiping secrets from memory.
 *
 * Partner key pairs are ordinary X25519 pairs: make them with
 * `generateX25519KeyPair` from `../crypto/x25519.ts`.
 *
 * Pure: no I/O; randomness from `crypto.getRandomValues`.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import type { X25519KeyPair } from '../crypto/x25519.ts';
import { FedmartError } from '../errors.ts';

const WRAP_VERSION = 0x01;
const SALT_LEN = 32;
const TAG_LEN = 16;
const HEADER_LEN = 1 + SALT_LEN;
const INFO_PREFIX = utf8ToBytes('fedmart/he/sk-wrap/v1');

function abytes(value: unknown, label: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${label} must be a Uint8Array, got ${value === null ? 'null' : typeof value}`);
  if (length !== undefined && value.length !== length) throw new RangeError(`${label} must be ${length} bytes, got ${value.length}`);
  return value;
}

function deriveKeyNonce(mySecret: Uint8Array, theirPublic: Uint8Array, senderPublic: Uint8Array, recipientPublic: Uint8Array, salt: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  let shared: Uint8Array;
  try {
    // noble rejects low-order public keys (all-zero shared secret).
    shared = x25519.getSharedSecret(mySecret, theirPublic);
  } catch (err) {
    throw new FedmartError('CRYPTO_ERROR', `expected a valid X25519 public key for the key-wrap peer, got one that yields no shared secret (${String(err)}); ask the peer to re-send its partner key`, { cause: err });
  }
  const okm = hkdf(sha256, shared, salt, concatBytes(INFO_PREFIX, senderPublic, recipientPublic), 44);
  shared.fill(0);
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32, 44) };
}

/**
 * Wrap a CKKS secret key for one recipient.
 *
 * @param skBytes - the serialised secret key (from `CkksContext.keygen().secretKey`)
 * @param recipientPublicKey - the recipient partner's X25519 public key (32 bytes)
 * @param senderKeys - the sender's X25519 key pair (authenticates the wrap)
 * @param aad - associated data both sides agree on, e.g. utf8(`${federationId}|${keyVersion}|${recipientId}`)
 * @param opts.salt - 32-byte salt; only for known-answer tests (default: fresh random)
 * @returns the wrapped key: 0x01 ‖ salt ‖ ciphertext ‖ tag
 * @throws TypeError/RangeError for malformed arguments; FedmartError CRYPTO_ERROR for a low-order recipient key
 * @example
 * const wrapped = wrapSecretKey(keys.secretKey, bob.publicKey, alice, utf8ToBytes('fed-1|v3|bob'));
 */
export function wrapSecretKey(skBytes: Uint8Array, recipientPublicKey: Uint8Array, senderKeys: X25519KeyPair, aad: Uint8Array, opts: { salt?: Uint8Array } = {}): Uint8Array {
  abytes(skBytes, 'wrapSecretKey: skBytes');
  if (skBytes.length === 0) throw new RangeError('wrapSecretKey: skBytes must not be empty');
  abytes(recipientPublicKey, 'wrapSecretKey: recipientPublicKey', 32);
  if (senderKeys === null || typeof senderKeys !== 'object') throw new TypeError('wrapSecretKey: senderKeys must be { secretKey, publicKey }');
  abytes(senderKeys.secretKey, 'wrapSecretKey: senderKeys.secretKey', 32);
  abytes(senderKeys.publicKey, 'wrapSecretKey: senderKeys.publicKey', 32);
  abytes(aad, 'wrapSecretKey: aad');
  const salt = opts.salt === undefined ? crypto.getRandomValues(new Uint8Array(SALT_LEN)) : abytes(opts.salt, 'wrapSecretKey: opts.salt', SALT_LEN);
  const { key, nonce } = deriveKeyNonce(senderKeys.secretKey, recipientPublicKey, senderKeys.publicKey, recipientPublicKey, salt);
  const sealed = chacha20poly1305(key, nonce, aad).encrypt(skBytes);
  key.fill(0);
  const out = new Uint8Array(HEADER_LEN + sealed.length);
  out[0] = WRAP_VERSION;
  out.set(salt, 1);
  out.set(sealed, HEADER_LEN);
  return out;
}

/**
 * Unwrap a CKKS secret key wrapped by {@link wrapSecretKey}.
 *
 * @param wrapped - the wrapped key as relayed by the coordinator
 * @param recipientKeys - this partner's X25519 key pair
 * @param senderPublicKey - the X25519 public key of the partner who wrapped it
 * @param aad - the same associated data the sender used
 * @returns the serialised secret key
 * @throws TypeError/RangeError for malformed arguments; FedmartError CRYPTO_ERROR if the wrap is malformed, was made for another key pair or aad, or was tampered with
 */
export function unwrapSecretKey(wrapped: Uint8Array, recipientKeys: X25519KeyPair, senderPublicKey: Uint8Array, aad: Uint8Array): Uint8Array {
  abytes(wrapped, 'unwrapSecretKey: wrapped');
  if (recipientKeys === null || typeof recipientKeys !== 'object') throw new TypeError('unwrapSecretKey: recipientKeys must be { secretKey, publicKey }');
  abytes(recipientKeys.secretKey, 'unwrapSecretKey: recipientKeys.secretKey', 32);
  abytes(recipientKeys.publicKey, 'unwrapSecretKey: recipientKeys.publicKey', 32);
  abytes(senderPublicKey, 'unwrapSecretKey: senderPublicKey', 32);
  abytes(aad, 'unwrapSecretKey: aad');
  if (wrapped.length < HEADER_LEN + TAG_LEN + 1 || wrapped[0] !== WRAP_VERSION) {
    throw new FedmartError('CRYPTO_ERROR', `expected a wrapped key (version 0x01, at least ${HEADER_LEN + TAG_LEN + 1} bytes), got ${wrapped.length} bytes starting 0x${(wrapped[0] ?? 0).toString(16).padStart(2, '0')}; ask the sender to wrap the key again`);
  }
  const salt = wrapped.subarray(1, HEADER_LEN);
  const { key, nonce } = deriveKeyNonce(recipientKeys.secretKey, senderPublicKey, senderPublicKey, recipientKeys.publicKey, salt);
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(wrapped.subarray(HEADER_LEN));
  } catch (err) {
    throw new FedmartError('CRYPTO_ERROR', 'could not unwrap the federation secret key: authentication failed; expected a key wrapped for this partner key with the same sender and aad (federation, key version, recipient); ask the sender to re-wrap it for your current partner key', { cause: err });
  } finally {
    key.fill(0);
  }
}
