/**
 * Key derivations shared by the secure-aggregation client and server, so
 * that both sides derive byte-identical keys. Every derivation binds the
 * protocol, its purpose, the round and the (unordered) pair of clients, so a
 * key is never valid in another role, round or pair (Bonawitz et al. 2017,
 * §4: KA.agree followed by a KDF; RFC 5869 HKDF-SHA256 as the KDF).
 */
import { concatBytes, lengthPrefixed, u32be } from '../crypto/bytes.ts';
import { signedMessage } from '../crypto/ed25519.ts';
import { hkdfSha256 } from '../crypto/kdf.ts';
import { ADVERTISE_SIGNATURE_PURPOSE, SURVIVORS_SIGNATURE_PURPOSE } from './messages.ts';

/** HKDF purpose label for the AEAD key protecting share bundles. */
export const SHARE_KEY_PURPOSE = 'fedmart/secagg/v1/share-encryption';
/** HKDF purpose label for pairwise mask seeds. */
export const PAIRWISE_MASK_PURPOSE = 'fedmart/secagg/v1/pairwise-mask';
/** AEAD associated-data purpose for share bundles. */
export const SHARE_BOX_PURPOSE = 'fedmart/secagg/v1/share-box';

/** lengthPrefixed(purpose) ‖ lengthPrefixed(roundId), cached: the server derives hundreds of pair seeds per round. */
const infoPrefixes = new Map<string, Uint8Array>();
function infoPrefix(purpose: string, roundId: string): Uint8Array {
  const key = `${purpose}\u0000${roundId}`;
  let prefix = infoPrefixes.get(key);
  if (!prefix) {
    if (infoPrefixes.size >= 64) infoPrefixes.clear();
    infoPrefixes.set(key, (prefix = concatBytes(lengthPrefixed(purpose), lengthPrefixed(roundId))));
  }
  return prefix;
}

function pairInfo(purpose: string, roundId: string, a: number, b: number): Uint8Array {
  return concatBytes(infoPrefix(purpose, roundId), u32be(Math.min(a, b)), u32be(Math.max(a, b)));
}

/**
 * Symmetric key for the share bundles between clients a and b.
 * @param sharedSecret - X25519(c_sk(a), c_pk(b)) = X25519(c_sk(b), c_pk(a))
 * @param roundId - round identifier
 * @param a - one client id
 * @param b - the other client id
 * @returns 32-byte AEAD key
 */
export function deriveShareKey(sharedSecret: Uint8Array, roundId: string, a: number, b: number): Uint8Array {
  return hkdfSha256(sharedSecret, new Uint8Array(0), pairInfo(SHARE_KEY_PURPOSE, roundId, a, b), 32);
}

/**
 * PRG seed of the pairwise mask between clients a and b.
 * @param sharedSecret - X25519(s_sk(a), s_pk(b)) = X25519(s_sk(b), s_pk(a))
 * @param roundId - round identifier
 * @param a - one client id
 * @param b - the other client id
 * @returns 32-byte seed
 */
export function derivePairwiseSeed(sharedSecret: Uint8Array, roundId: string, a: number, b: number): Uint8Array {
  return hkdfSha256(sharedSecret, new Uint8Array(0), pairInfo(PAIRWISE_MASK_PURPOSE, roundId, a, b), 32);
}

/**
 * Sign with which `self` applies its pairwise mask with `peer`: the lower id
 * adds, the higher id subtracts, so each pair cancels in the sum.
 * @param self - the client applying the mask
 * @param peer - its neighbour
 * @returns 1 or -1
 */
export function pairwiseSign(self: number, peer: number): 1 | -1 {
  return self < peer ? 1 : -1;
}

/**
 * Bytes a client signs when it advertises its keys (Bonawitz et al. 2017,
 * §6, round 0: σ_u = SIG.sign(d_u^SK, c_u^PK ‖ s_u^PK)), bound to the protocol
 * version, the round and the client id so a signature is never valid in
 * another round or for another client.
 * @param roundId - round identifier
 * @param clientId - the advertising client
 * @param encryptionPublicKey - c_pk
 * @param maskingPublicKey - s_pk
 * @returns the message to sign
 */
export function advertiseSignedMessage(roundId: string, clientId: number, encryptionPublicKey: Uint8Array, maskingPublicKey: Uint8Array): Uint8Array {
  return signedMessage(ADVERTISE_SIGNATURE_PURPOSE, [roundId, u32be(clientId), encryptionPublicKey, maskingPublicKey]);
}

/**
 * Bytes a survivor signs in the consistency check (Bonawitz et al. 2017, §6,
 * round 3: SIG.sign(d_u^SK, U3)), bound to the round.
 * @param roundId - round identifier
 * @param survivors - U3, ascending
 * @returns the message to sign
 */
export function survivorsSignedMessage(roundId: string, survivors: readonly number[]): Uint8Array {
  return signedMessage(SURVIVORS_SIGNATURE_PURPOSE, [roundId, concatBytes(...survivors.map(u32be))]);
}
