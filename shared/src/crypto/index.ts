/**
 * Small crypto interfaces used by secure aggregation, each wrapping an
 * audited implementation (`@noble/*` or node:crypto/OpenSSL) and tested
 * against its RFC's known-answer vectors:
 *
 * | module | primitive | reference |
 * |---|---|---|
 * | `x25519.ts` | X25519 key agreement | RFC 7748 |
 * | `ed25519.ts` | Ed25519 signatures (partner identity) | RFC 8032 |
 * | `kdf.ts` | HKDF-SHA256 | RFC 5869 |
 * | `aead.ts` | ChaCha20-Poly1305, random nonce prepended | RFC 8439 §2.8 |
 * | `prg.ts` | ChaCha20 keystream as a seed-expanding PRG | RFC 8439 §2.4 |
 * | `shamir.ts` | t-of-n Shamir sharing over GF(2^521 − 1) | Shamir 1979 |
 *
 * Every export checks its arguments first (labelled TypeError/RangeError)
 * and fails closed: an authentication failure, a small-order public key or
 * an inconsistent share set throws `FedmartError('CRYPTO_ERROR')`; nothing
 * returns a partial or default result.
 *
 * ## What we don't guarantee
 *
 * - **Timing.** The OpenSSL paths (X25519, ChaCha20) are constant-time; the
 *   JavaScript paths are not. Shamir arithmetic uses JS `bigint`, whose
 *   operations take time that depends on operand values, and byte
 *   comparisons are only "no early exit". An attacker who can time a single
 *   process very precisely may learn something about shares; in secure
 *   aggregation that process is the client's own machine.
 * - **Wiping.** JavaScript cannot reliably erase memory: the GC may copy
 *   objects, Node pools small Buffers, and strings are immutable. We zero
 *   secret arrays we own when a protocol stage is done (best effort), but
 *   copies may survive until the memory is reused.
 * - **Randomness.** Keys, nonces and Shamir coefficients come from the
 *   operating system CSPRNG via node:crypto; a broken OS RNG breaks us too.
 * - **Misuse.** Functions suffixed `Unsafe` take caller-chosen nonces or
 *   coefficients for known-answer tests; they are unsafe with repeated or
 *   predictable inputs.
 */
export { X25519_KEY_BYTES, generateX25519KeyPair, getX25519PublicKey, x25519SharedSecret, x25519SharedSecrets, type X25519KeyPair } from './x25519.ts';
export { ED25519_KEY_BYTES, ED25519_SIGNATURE_BYTES, generateEd25519KeyPair, getEd25519PublicKey, identityFingerprint, signEd25519, signedMessage, verifyEd25519, type Ed25519KeyPair } from './ed25519.ts';
export { HKDF_SHA256_MAX_LENGTH, hkdfSha256 } from './kdf.ts';
export {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_OVERHEAD_BYTES,
  AEAD_TAG_BYTES,
  aeadOpen,
  aeadSeal,
  aeadSealWithNonceUnsafe,
  encodeAssociatedData,
  type AeadContext,
} from './aead.ts';
export { PRG_MAX_WORDS, PRG_NONCE_BYTES, PRG_SEED_BYTES, addExpandedSeed, addExpandedSeeds, expandSeed, type PrgOptions, type SignedSeed } from './prg.ts';
export {
  SHAMIR_ELEMENT_BYTES,
  SHAMIR_MAX_SECRET_BYTES,
  SHAMIR_MAX_SHARES,
  SHAMIR_PRIME,
  SHAMIR_SHARE_BYTES,
  combineShares,
  decodeShare,
  encodeShare,
  splitSecret,
  splitSecretWithCoefficientsUnsafe,
  type ShamirShare,
} from './shamir.ts';
export { bytesToHex, concatBytes, equalBytes, hexToBytes, isBytes, lengthPrefixed, wipeBytes } from './bytes.ts';
