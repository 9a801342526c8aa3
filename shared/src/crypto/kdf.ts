/**
 * HKDF-SHA256 (RFC 5869) on node:crypto's `hkdfSync` (OpenSSL), about 9×
 * faster than `@noble/hashes`' HKDF, which matters because the secure
 * aggregation server derives one pairwise seed per (dropped client,
 * surviving neighbour). Node caps `info` at 1024 bytes; longer `info` falls
 * back to `@noble/hashes`. The tests check both paths against the RFC 5869
 * vectors and against each other.
 *
 * Used to turn X25519 shared secrets into AEAD keys and PRG seeds, with an
 * `info` string that binds the protocol, the purpose and the round, so a key
 * derived for one purpose is never valid for another.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdfSync } from 'node:crypto';
import { assertBytes, assertInteger } from './bytes.ts';

/** Largest output HKDF-SHA256 can produce: 255 · HashLen (RFC 5869 §2.3). */
export const HKDF_SHA256_MAX_LENGTH = 255 * 32;
/** Longest `info` node:crypto's hkdfSync accepts. */
const NODE_HKDF_MAX_INFO = 1024;

/**
 * HKDF-SHA256 extract-then-expand (RFC 5869 §2.2–2.3).
 * @param ikm - input keying material (e.g. an X25519 shared secret)
 * @param salt - optional salt; an empty array means "no salt" (HashLen zeros)
 * @param info - context and application specific information
 * @param length - output length in bytes, 1..8160
 * @returns `length` bytes of output keying material
 * @throws TypeError/RangeError on wrong-typed arguments or an out-of-range length
 * @example
 * const key = hkdfSha256(sharedSecret, new Uint8Array(0), info, 32);
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  assertBytes('hkdfSha256: ikm', ikm);
  assertBytes('hkdfSha256: salt', salt);
  assertBytes('hkdfSha256: info', info);
  assertInteger('hkdfSha256: length', length, 1, HKDF_SHA256_MAX_LENGTH);
  if (info.length > NODE_HKDF_MAX_INFO) return hkdf(sha256, ikm, salt.length === 0 ? undefined : salt, info, length);
  // An empty salt is HashLen zeros in both (RFC 5869 §2.2).
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}
