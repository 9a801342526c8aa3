/**
 * A partner node's long-term identity (issue 8, "Identity first"): an
 * Ed25519 key pair generated once and kept in the node's data dir (mode
 * 0600), the identity keys of its peers pinned on first use, and the
 * federation terms pinned at consent.
 *
 * Trust on first use, as SSH's known_hosts: the first key seen for a peer
 * partner is pinned; a different key later is refused until this partner
 * explicitly accepts the new fingerprint (after the operator re-enrolled
 * that peer and the two compared fingerprints out of band). The coordinator
 * is the one that could lie at first use; fingerprints are shown to the
 * operator and to partners (`fedmart federation show`) so they can compare.
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { makeDirsSync } from './dirs.ts';
import { join } from 'node:path';
import { bytesToHex, equalBytes, hexToBytes } from '@fedmart/shared/crypto/bytes';
import { generateEd25519KeyPair, getEd25519PublicKey, identityFingerprint, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FedmartError } from '@fedmart/shared/errors';

const KEY_FILE = 'identity-key.json';
const PINS_FILE = 'pins.json';

interface PinsFile {
  /** federation id → partner id → hex identity key */
  peers: Record<string, Record<string, string>>;
  /** federation id → hex terms hash consented to */
  terms: Record<string, string>;
}

/** A partner's identity and pins, persisted in a data dir or held in memory. */
export class PartnerIdentity {
  readonly keyPair: Ed25519KeyPair;
  #pins: PinsFile;
  #dir: string | null;
  /** partner id → fingerprint this partner agreed to accept in place of the pinned key */
  #accept: Map<string, string>;

  private constructor(keyPair: Ed25519KeyPair, pins: PinsFile, dir: string | null, accept: Record<string, string>) {
    this.keyPair = keyPair;
    this.#pins = pins;
    this.#dir = dir;
    this.#accept = new Map(Object.entries(accept));
  }

  /**
   * Load the identity from `dir`, creating the key (0600) on first use.
   * @param dir - the partner's data dir (created 0700 if missing)
   * @param acceptChanges - partner id → new fingerprint this partner re-confirms
   * @returns the identity
   * @throws FedmartError CONFIG_ERROR on an unreadable or corrupt key file (never overwritten)
   */
  static open(dir: string, acceptChanges: Record<string, string> = {}): PartnerIdentity {
    makeDirsSync(dir, 0o700);
    const keyPath = join(dir, KEY_FILE);
    let keyPair: Ed25519KeyPair;
    if (existsSync(keyPath)) {
      try {
        const raw = JSON.parse(readFileSync(keyPath, 'utf8')) as { secretKey?: string };
        const secretKey = hexToBytes(String(raw.secretKey));
        keyPair = { secretKey, publicKey: getEd25519PublicKey(secretKey) };
      } catch (cause) {
        throw new FedmartError('CONFIG_ERROR', `partner identity key ${keyPath} is unreadable or corrupt; restore it from backup (a new key means re-enrollment by the operator)`, { cause });
      }
      chmodSync(keyPath, 0o600);
    } else {
      keyPair = generateEd25519KeyPair();
      writeFileSync(keyPath, JSON.stringify({ algorithm: 'Ed25519', secretKey: bytesToHex(keyPair.secretKey), publicKey: bytesToHex(keyPair.publicKey) }) + '\n', { mode: 0o600, flag: 'wx' });
    }
    const pinsPath = join(dir, PINS_FILE);
    let pins: PinsFile = { peers: {}, terms: {} };
    if (existsSync(pinsPath)) {
      try {
        pins = JSON.parse(readFileSync(pinsPath, 'utf8')) as PinsFile;
        pins.peers ??= {};
        pins.terms ??= {};
      } catch (cause) {
        throw new FedmartError('CONFIG_ERROR', `pinned identities ${pinsPath} are corrupt; restore the file (deleting it re-trusts every peer on first use)`, { cause });
      }
    }
    return new PartnerIdentity(keyPair, pins, dir, acceptChanges);
  }

  /**
   * An identity held only in memory (tests, in-process simulations).
   * @param acceptChanges - as {@link open}
   */
  static ephemeral(acceptChanges: Record<string, string> = {}): PartnerIdentity {
    return new PartnerIdentity(generateEd25519KeyPair(), { peers: {}, terms: {} }, null, acceptChanges);
  }

  /** Fingerprint of this partner's own key. */
  get fingerprint(): string {
    return identityFingerprint(this.keyPair.publicKey);
  }

  /**
   * Check a peer's identity key against the pin, pinning it on first use.
   * @param federationId - the federation
   * @param partnerId - the peer partner
   * @param publicKey - the key the coordinator presents for it
   * @throws FedmartError CRYPTO_ERROR when it differs from the pinned key and this partner has not accepted the new fingerprint
   */
  checkPeer(federationId: string, partnerId: string, publicKey: Uint8Array): void {
    const fed = (this.#pins.peers[federationId] ??= {});
    const pinned = fed[partnerId];
    if (pinned !== undefined && equalBytes(hexToBytes(pinned), publicKey)) return;
    const fingerprint = identityFingerprint(publicKey);
    if (pinned !== undefined && this.#accept.get(partnerId) !== fingerprint) {
      throw new FedmartError(
        'CRYPTO_ERROR',
        `the identity key of partner ${partnerId} changed (pinned ${identityFingerprint(hexToBytes(pinned))}, now ${fingerprint}); refusing it. If the operator re-enrolled ${partnerId}, compare the fingerprint with them and restart with --accept-identity ${partnerId}=${fingerprint}`,
        { details: { partnerId, pinned: identityFingerprint(hexToBytes(pinned)), presented: fingerprint } },
      );
    }
    fed[partnerId] = bytesToHex(publicKey);
    this.#save();
  }

  /**
   * The pinned identity key of a peer (or this partner's own key for its own id).
   * @param federationId - the federation
   * @param partnerId - the peer partner
   * @returns the pinned key, or null when none is pinned (the peer was never listed in a welcome)
   */
  peerKey(federationId: string, partnerId: string): Uint8Array | null {
    const pinned = this.#pins.peers[federationId]?.[partnerId];
    return pinned === undefined ? null : hexToBytes(pinned);
  }

  /**
   * Pin the federation terms at consent, or check them against the pin.
   * @param federationId - the federation
   * @param termsHash - hash of the terms the coordinator presents
   * @throws FedmartError CONFLICT when they differ from the terms this partner consented to
   */
  checkTerms(federationId: string, termsHash: string): void {
    const pinned = this.#pins.terms[federationId];
    if (pinned === termsHash) return;
    if (pinned !== undefined) {
      throw new FedmartError('CONFLICT', `federation ${federationId} now presents different terms (hash ${termsHash.slice(0, 16)}…) from those this partner consented to (${pinned.slice(0, 16)}…); refusing to take part — the operator changed the strategy, protection, DP policy or minimum participants`);
    }
    this.#pins.terms[federationId] = termsHash;
    this.#save();
  }

  #save(): void {
    if (!this.#dir) return;
    const path = join(this.#dir, PINS_FILE);
    const tmp = path + '.tmp';
    writeFileSync(tmp, JSON.stringify(this.#pins, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, path);
  }
}
