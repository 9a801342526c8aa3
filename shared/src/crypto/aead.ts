/**
 * ChaCha20-Poly1305 AEAD (RFC 8439 §2.8), wrapping `@noble/ciphers`.
 *
 * Sealed boxes are `nonce (12) ‖ ciphertext ‖ tag (16)` with a fresh random
 * nonce per message. Random 96-bit nonces are safe here because every key
 * encrypts only a handful of messages (one Shamir share bundle per peer per
 * round); with 2^32 messages under one key the collision risk would matter.
 *
 * Associated data binds who sent the box to whom in which round
 * ({@link encodeAssociatedData}), so a relaying coordinator cannot replay a
 * share to another receiver, swap senders, or carry it into another round.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { randomBytes } from 'node:crypto';
import { FedmartError } from '../errors.ts';
import { assertBytes, assertInteger, concatBytes, describeValue, lengthPrefixed, u32be } from './bytes.ts';

/** Key length in bytes. */
export const AEAD_KEY_BYTES = 32;
/** Nonce length in bytes (RFC 8439 96-bit nonce). */
export const AEAD_NONCE_BYTES = 12;
/** Poly1305 tag length in bytes. */
export const AEAD_TAG_BYTES = 16;
/** Bytes a sealed box adds to its plaintext. */
export const AEAD_OVERHEAD_BYTES = AEAD_NONCE_BYTES + AEAD_TAG_BYTES;

/** Who sent a sealed box to whom, in which round. */
export interface AeadContext {
  /** protocol purpose, e.g. "fedmart/secagg/v1/share" */
  purpose: string;
  /** round identifier */
  round: string;
  /** sender id (uint32) */
  sender: number;
  /** receiver id (uint32) */
  receiver: number;
}

/**
 * Canonical, unambiguous associated-data encoding of an {@link AeadContext}:
 * length-prefixed purpose and round, then sender and receiver as uint32 BE.
 * @param ctx - the context to bind
 * @returns associated data bytes
 * @throws TypeError/RangeError on a malformed context
 */
export function encodeAssociatedData(ctx: AeadContext): Uint8Array {
  if (typeof ctx !== 'object' || ctx === null) throw new TypeError(`encodeAssociatedData: ctx: expected an object, got ${describeValue(ctx)}`);
  if (typeof ctx.purpose !== 'string' || ctx.purpose.length === 0) throw new TypeError('encodeAssociatedData: ctx.purpose: expected a non-empty string');
  if (typeof ctx.round !== 'string') throw new TypeError(`encodeAssociatedData: ctx.round: expected a string, got ${describeValue(ctx.round)}`);
  assertInteger('encodeAssociatedData: ctx.sender', ctx.sender, 0, 0xffffffff);
  assertInteger('encodeAssociatedData: ctx.receiver', ctx.receiver, 0, 0xffffffff);
  return concatBytes(lengthPrefixed(ctx.purpose), lengthPrefixed(ctx.round), u32be(ctx.sender), u32be(ctx.receiver));
}

/**
 * Encrypt and authenticate with a fresh random nonce.
 * @param key - 32-byte key (derive it with HKDF; never reuse a DH output directly)
 * @param plaintext - bytes to protect
 * @param associatedData - authenticated but unencrypted context (see {@link encodeAssociatedData})
 * @returns `nonce ‖ ciphertext ‖ tag`
 * @throws TypeError/RangeError on wrong-typed arguments
 * @example
 * const box = aeadSeal(key, share, encodeAssociatedData({ purpose, round, sender: 3, receiver: 7 }));
 */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  assertBytes('aeadSeal: key', key, AEAD_KEY_BYTES);
  assertBytes('aeadSeal: plaintext', plaintext);
  assertBytes('aeadSeal: associatedData', associatedData);
  return aeadSealWithNonceUnsafe(key, new Uint8Array(randomBytes(AEAD_NONCE_BYTES)), plaintext, associatedData);
}

/**
 * Seal with a caller-chosen nonce. Unsafe: reusing a nonce under one key
 * reveals the XOR of plaintexts and lets anyone forge tags (RFC 8439 §4).
 * Exists for the RFC 8439 §2.8.2 known-answer test; use {@link aeadSeal}.
 * @param key - 32-byte key
 * @param nonce - 12-byte nonce, never reused with this key
 * @param plaintext - bytes to protect
 * @param associatedData - authenticated context
 * @returns `nonce ‖ ciphertext ‖ tag`
 * @throws TypeError/RangeError on wrong-typed arguments
 */
export function aeadSealWithNonceUnsafe(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  assertBytes('aeadSealWithNonceUnsafe: key', key, AEAD_KEY_BYTES);
  assertBytes('aeadSealWithNonceUnsafe: nonce', nonce, AEAD_NONCE_BYTES);
  assertBytes('aeadSealWithNonceUnsafe: plaintext', plaintext);
  assertBytes('aeadSealWithNonceUnsafe: associatedData', associatedData);
  const sealed = chacha20poly1305(key, nonce, associatedData).encrypt(plaintext);
  return concatBytes(nonce, sealed);
}

/**
 * Check and decrypt a box made by {@link aeadSeal}.
 * @param key - 32-byte key
 * @param box - `nonce ‖ ciphertext ‖ tag`
 * @param associatedData - must equal the sender's associated data byte for byte
 * @returns the plaintext
 * @throws TypeError/RangeError on wrong-typed arguments or a box shorter than 28 bytes
 * @throws FedmartError CRYPTO_ERROR when the tag does not verify (wrong key, wrong context, or tampering)
 */
export function aeadOpen(key: Uint8Array, box: Uint8Array, associatedData: Uint8Array): Uint8Array {
  assertBytes('aeadOpen: key', key, AEAD_KEY_BYTES);
  assertBytes('aeadOpen: box', box);
  assertBytes('aeadOpen: associatedData', associatedData);
  if (box.length < AEAD_OVERHEAD_BYTES) throw new RangeError(`aeadOpen: box: expected at least ${AEAD_OVERHEAD_BYTES} bytes (nonce + tag), got ${box.length}`);
  const nonce = box.subarray(0, AEAD_NONCE_BYTES);
  try {
    return chacha20poly1305(key, nonce, associatedData).decrypt(box.subarray(AEAD_NONCE_BYTES));
  } catch (cause) {
    throw new FedmartError('CRYPTO_ERROR', 'AEAD authentication failed: expected a box sealed under this key for this sender, receiver and round, got one that does not verify; discard it and treat the sender as faulty', { cause });
  }
}
