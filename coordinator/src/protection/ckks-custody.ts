/**
 * Coordinator side of CKKS encrypted aggregation: relays the federation
 * secret key, wrapped by the key-holder partner to each other partner's
 * X25519 public key (`he/key-custody.ts`), and sums ciphertexts with an
 * aggregator built from the public parameters alone.
 *
 * What the coordinator holds: the public CKKS parameters, partners' X25519
 * public keys, the key id, and ciphertexts. It never receives the secret
 * key in the clear (wrapped copies pass through and are not stored), never
 * sees one partner's update, and never sees the joint model.
 */
import type { CkksParams } from '@fedmart/shared/he/ckks-params';
import { createCkksAggregator, type CkksAggregator } from '@fedmart/shared/he/ckks-aggregator';
import { FedmartError } from '@fedmart/shared/errors';
import { MULTIPARTY_SCALE_BITS } from '@fedmart/shared/he/multiparty';

/** What the custody needs to reach a partner. */
export interface CustodyLink {
  partnerId: string;
  /** The partner's bound Ed25519 identity key (partners pin it on first use). */
  identityKey?: Uint8Array;
  emitSecure(event: 'he-wrap' | 'he-key', payload: unknown): void;
}

/** Per-federation key-custody relay state. */
export class CkksCustody {
  /** Partners' X25519 public keys (public), each with its owner's identity signature (checked by the key holder). */
  private readonly partnerKeys = new Map<string, { publicKey: Uint8Array; signature: Uint8Array }>();
  /** Partners that hold the current federation key. */
  private readonly ready = new Set<string>();
  private keyId: string | null = null;
  private aggregator: Promise<CkksAggregator> | null = null;

  /** Multiparty keys: partners that took the setup (and published their signed X25519 key). */
  private readonly configured = new Set<string>();

  /**
   * @param federationId - the federation
   * @param params - public CKKS parameters
   * @param holderId - partner id of the key holder (null: multiparty keys, there is none)
   */
  constructor(readonly federationId: string, readonly params: CkksParams, readonly holderId: string | null) {}

  /** True under `he: { keys: 'multiparty' }`: no federation key, each round makes a collective one. */
  get multiparty(): boolean {
    return this.holderId === null;
  }

  /** The public-parameter aggregator (built once; at the multiparty scale 2^112 under multiparty keys). */
  getAggregator(): Promise<CkksAggregator> {
    return (this.aggregator ??= createCkksAggregator(this.params, this.multiparty ? { scaleBits: MULTIPARTY_SCALE_BITS } : {}));
  }

  /** The current federation key id (null before the key holder made one). */
  get currentKeyId(): string | null {
    return this.keyId;
  }

  /** True once a partner holds the current federation key. */
  isReady(partnerId: string): boolean {
    if (this.multiparty) return this.configured.has(partnerId);
    return this.keyId !== null && this.ready.has(partnerId);
  }

  /** Forget readiness on disconnect (a reconnecting partner says again that it holds the key). */
  forget(partnerId: string): void {
    this.ready.delete(partnerId);
    this.configured.delete(partnerId);
  }

  /** A partner's X25519 public key arrived. */
  partnerKey(partnerId: string, publicKey: Uint8Array, signature: Uint8Array, links: ReadonlyMap<string, CustodyLink>): void {
    this.partnerKeys.set(partnerId, { publicKey: new Uint8Array(publicKey), signature: new Uint8Array(signature) });
    if (this.multiparty) {
      this.configured.add(partnerId);
      return;
    }
    if (partnerId !== this.holderId && this.keyId !== null && !this.ready.has(partnerId)) this.requestWrap(partnerId, links);
  }

  /**
   * A partner says it holds key `keyId`. From the holder this (re)defines the
   * federation key; from anyone else it must name the current key.
   * @returns true when the partner is now ready
   */
  partnerReady(partnerId: string, keyId: string, links: ReadonlyMap<string, CustodyLink>): boolean {
    if (this.multiparty) throw new FedmartError('FORBIDDEN', 'this federation uses multiparty keys: there is no federation key to hold');
    if (partnerId === this.holderId) {
      if (!this.partnerKeys.has(partnerId)) throw new FedmartError('INVALID_MESSAGE', 'key holder: send "he-partner-key" before "he-ready"');
      if (keyId !== this.keyId) {
        // A new federation key: every other partner needs a fresh wrap.
        this.keyId = keyId;
        this.ready.clear();
        this.ready.add(partnerId);
        for (const p of this.partnerKeys.keys()) if (p !== partnerId) this.requestWrap(p, links);
      } else this.ready.add(partnerId);
      return true;
    }
    if (this.keyId === null || keyId !== this.keyId) {
      throw new FedmartError('CONFLICT', `partner holds federation key ${keyId}, the current key is ${this.keyId ?? '(none yet)'}; wait for the wrapped key`);
    }
    this.ready.add(partnerId);
    return true;
  }

  /** The holder wrapped the key for `to`: relay it (the bytes are not kept). */
  relayWrapped(from: string, to: string, keyId: string, wrapped: Uint8Array, signature: Uint8Array, links: ReadonlyMap<string, CustodyLink>): void {
    if (this.multiparty || from !== this.holderId) throw new FedmartError('FORBIDDEN', `only the key holder may hand out the federation key; partner ${from} is not it`);
    if (keyId !== this.keyId) throw new FedmartError('CONFLICT', `wrapped key ${keyId} is not the current federation key ${this.keyId ?? '(none)'}`);
    const link = links.get(to);
    if (!link || this.holderId === null) return; // gone: it will ask again on reconnect
    const recipient = this.partnerKeys.get(to);
    const holderIdentity = links.get(this.holderId)?.identityKey;
    if (!recipient || !holderIdentity) return;
    link.emitSecure('he-key', { keyId, holderPublicKey: this.partnerKeys.get(this.holderId)!.publicKey, holderIdentityKey: holderIdentity, recipientPublicKey: recipient.publicKey, wrapped, signature });
  }

  private requestWrap(partnerId: string, links: ReadonlyMap<string, CustodyLink>): void {
    if (this.holderId === null) return;
    const holder = links.get(this.holderId);
    const pk = this.partnerKeys.get(partnerId);
    const identityKey = links.get(partnerId)?.identityKey;
    if (!holder || !pk || !identityKey) return;
    holder.emitSecure('he-wrap', { to: partnerId, identityKey, publicKey: pk.publicKey, signature: pk.signature });
  }

  /** Release the aggregator. */
  async dispose(): Promise<void> {
    if (this.aggregator) (await this.aggregator.catch(() => null))?.dispose();
    this.aggregator = null;
  }
}

/**
 * Pack ciphertext chunks into one blob: u32 count, then per chunk u32 length ‖ bytes (big-endian).
 * @param chunks - serialised ciphertexts
 * @returns the blob
 */
export function packChunks(chunks: readonly Uint8Array[]): Uint8Array {
  const total = 4 + chunks.reduce((a, c) => a + 4 + c.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, chunks.length);
  let off = 4;
  for (const c of chunks) {
    view.setUint32(off, c.byteLength);
    out.set(c, off + 4);
    off += 4 + c.byteLength;
  }
  return out;
}

/**
 * Inverse of {@link packChunks}.
 * @throws FedmartError DATA_ERROR on a malformed blob
 */
export function unpackChunks(blob: Uint8Array): Uint8Array[] {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const bad = () => new FedmartError('DATA_ERROR', 'stored encrypted model is malformed (chunk framing); it cannot be served');
  if (blob.byteLength < 4) throw bad();
  const n = view.getUint32(0);
  const out: Uint8Array[] = [];
  let off = 4;
  for (let i = 0; i < n; i++) {
    if (off + 4 > blob.byteLength) throw bad();
    const len = view.getUint32(off);
    if (off + 4 + len > blob.byteLength) throw bad();
    out.push(blob.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}
