/**
 * Partner side of CKKS encrypted aggregation (Cheon et al., ASIACRYPT 2017,
 * via node-seal) with the key custody of `@fedmart/shared/he/key-custody`:
 *
 * - every partner makes an X25519 "partner key" and publishes its public half;
 * - the key-holder partner generates the federation CKKS key pair and wraps
 *   the secret key to each other partner's public key (X25519 + HKDF +
 *   ChaCha20-Poly1305, bound to federation, key id and recipient);
 * - each partner encrypts [n·clip(Δ), n] with the secret key (symmetric,
 *   seed-compressed), and decrypts the coordinator's encrypted sum, from
 *   which it computes the example-weighted mean and applies the federation's
 *   strategy to the model it holds.
 *
 * The plaintext joint model exists only at the partners: each keeps the
 * versions it produced (the coordinator stores only encrypted aggregates).
 */
import { randomBytes } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { generateX25519KeyPair, type X25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { createCkksContext, type CkksContext, type CkksSecretKey } from '@fedmart/shared/he/ckks';
import { unwrapSecretKey, wrapSecretKey } from '@fedmart/shared/he/key-custody';
import { keyWrapAssociatedData, partnerKeyStatement, updateStatement, wrappedKeyStatement, type HeAggregate, type HeSetup } from '@fedmart/shared/protocol-secure';
import { signEd25519, verifyEd25519 } from '@fedmart/shared/crypto/ed25519';
import { equalBytes } from '@fedmart/shared/crypto/bytes';
import type { PartnerIdentity } from '../identity.ts';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import type { Strategy } from '@fedmart/shared/strategy/types';

/** How many plaintext model versions a partner keeps (to survive a round that fails after decryption). */
const KEEP_VERSIONS = 3;

/** One partner's CKKS state, across reconnects. */
export class CkksPartner {
  /** This partner's X25519 key pair for receiving the wrapped federation key. */
  readonly partnerKeys: X25519KeyPair = generateX25519KeyPair();
  setup: HeSetup | null = null;
  keyId: string | null = null;
  private ctx: Promise<CkksContext> | null = null;
  private sk: CkksSecretKey | null = null;
  /** Only at the key holder: the serialised secret key, to wrap for the others. */
  private skBytes: Uint8Array | null = null;
  private strategy: Strategy | null = null;
  private readonly models = new Map<number, Float32Array>();

  /**
   * @param observeSecretKey - test hook: sees the serialised federation secret key when this partner
   *   generates or unwraps it (it stays in this process; tests use it to prove it never reaches the coordinator)
   */
  constructor(private readonly identity: PartnerIdentity, private readonly observeSecretKey?: (sk: Uint8Array) => void) {}

  /** The X25519 wrapping key with this partner's identity signature (so no relay can substitute its own). */
  signedPartnerKey(): { publicKey: Uint8Array; signature: Uint8Array } {
    if (!this.setup) throw new FedmartError('UNAVAILABLE', 'cannot publish the partner key before the CKKS setup');
    const publicKey = this.partnerKeys.publicKey;
    return { publicKey, signature: signEd25519(this.identity.keyPair.secretKey, partnerKeyStatement(this.setup.federationId, this.setup.partnerId, publicKey)) };
  }

  /** The pinned identity key of partner `partnerId` (own key for this partner). */
  private identityOf(partnerId: string, what: string): Uint8Array {
    if (partnerId === this.setup!.partnerId) return this.identity.keyPair.publicKey;
    const key = this.identity.peerKey(this.setup!.federationId, partnerId);
    if (!key) throw new FedmartError('CRYPTO_ERROR', `${what}: partner ${partnerId} has no pinned identity key (it was never listed in a welcome); refusing`);
    return key;
  }

  /** True once this partner can encrypt and decrypt. */
  get ready(): boolean {
    return this.sk !== null && this.keyId !== null;
  }

  /**
   * Accept the federation's CKKS setup.
   * @returns the key id if this partner is (or now becomes) ready: as key holder it generates the federation key here
   */
  async configure(setup: HeSetup): Promise<string | null> {
    if (this.setup && JSON.stringify(this.setup.params) !== JSON.stringify(setup.params)) {
      throw new FedmartError('CONFIG_ERROR', 'the coordinator changed the CKKS parameters of this federation; restart the partner');
    }
    this.setup = setup;
    this.strategy ??= createStrategy(setup.strategy, setup.strategyOptions);
    this.ctx ??= createCkksContext(setup.params);
    const ctx = await this.ctx;
    if (setup.keyHolderId === setup.partnerId && this.sk === null) {
      const keys = ctx.keygen();
      this.skBytes = keys.secretKey;
      this.observeSecretKey?.(keys.secretKey.slice());
      this.sk = ctx.loadSecretKey(keys.secretKey);
      this.keyId = randomBytes(16).toString('hex');
    }
    return this.ready ? this.keyId : null;
  }

  /**
   * Key holder: wrap the federation secret key for partner `to`, only to a wrapping key `to` signed with its
   * (pinned) identity, and sign the wrap with this partner's identity.
   * @throws FedmartError FORBIDDEN when this partner is not the key holder; CRYPTO_ERROR for a key `to` did not sign
   */
  wrapFor(to: string, recipientIdentityKey: Uint8Array, recipientPublicKey: Uint8Array, keySignature: Uint8Array): { to: string; keyId: string; wrapped: Uint8Array; signature: Uint8Array } {
    if (!this.setup || this.skBytes === null || this.keyId === null) throw new FedmartError('FORBIDDEN', 'asked to wrap the federation key, but this partner is not the key holder');
    const federationId = this.setup.federationId;
    this.identity.checkPeer(federationId, to, recipientIdentityKey); // pin on first use; a changed key is refused
    // Only to a wrapping key its owner signed with its pinned identity: the coordinator cannot slip in its own.
    if (!verifyEd25519(this.identityOf(to, 'wrap the federation key'), partnerKeyStatement(federationId, to, recipientPublicKey), keySignature)) {
      throw new FedmartError('CRYPTO_ERROR', `asked to wrap the federation key for partner ${to} to a key without a valid signature by ${to}'s pinned identity; refusing (the coordinator may have substituted its own key)`);
    }
    const aad = keyWrapAssociatedData(federationId, this.keyId, to);
    const wrapped = wrapSecretKey(this.skBytes, recipientPublicKey, this.partnerKeys, aad);
    const signature = signEd25519(this.identity.keyPair.secretKey, wrappedKeyStatement({ federationId, recipientId: to, keyId: this.keyId, recipientPublicKey, holderPublicKey: this.partnerKeys.publicKey, wrapped }));
    return { to, keyId: this.keyId, wrapped, signature };
  }

  /**
   * Unwrap and load the federation key relayed by the coordinator, only if the pinned identity of the
   * federation's key holder signed this wrap (recipient, federation, key id, both wrapping keys, wrap hash).
   * @returns the key id
   * @throws FedmartError CRYPTO_ERROR when the signature or the wrap does not authenticate
   */
  async acceptKey(key: { keyId: string; holderPublicKey: Uint8Array; holderIdentityKey: Uint8Array; recipientPublicKey: Uint8Array; wrapped: Uint8Array; signature: Uint8Array }): Promise<string> {
    if (!this.setup || !this.ctx) throw new FedmartError('UNAVAILABLE', 'received the federation key before the CKKS setup');
    const { federationId, partnerId, keyHolderId } = this.setup;
    if (keyHolderId !== partnerId) this.identity.checkPeer(federationId, keyHolderId, key.holderIdentityKey); // pin on first use; a changed key is refused
    if (!equalBytes(key.recipientPublicKey, this.partnerKeys.publicKey)) throw new FedmartError('CRYPTO_ERROR', 'received a federation key wrapped to another partner key than this partner\'s; refusing');
    const statement = wrappedKeyStatement({ federationId, recipientId: partnerId, keyId: key.keyId, recipientPublicKey: key.recipientPublicKey, holderPublicKey: key.holderPublicKey, wrapped: key.wrapped });
    if (!verifyEd25519(this.identityOf(keyHolderId, 'accept the federation key'), statement, key.signature)) {
      throw new FedmartError('CRYPTO_ERROR', `received a federation key without a valid signature by the pinned identity of the key holder ${keyHolderId}; refusing it (the coordinator may have re-wrapped or replaced it)`);
    }
    const ctx = await this.ctx;
    const skBytes = unwrapSecretKey(key.wrapped, this.partnerKeys, key.holderPublicKey, keyWrapAssociatedData(this.setup.federationId, key.keyId, this.setup.partnerId));
    this.observeSecretKey?.(skBytes.slice());
    const sk = ctx.loadSecretKey(skBytes);
    skBytes.fill(0);
    this.sk?.dispose();
    this.sk = sk;
    this.keyId = key.keyId;
    return key.keyId;
  }

  /** Remember a plaintext model version (version 0 arrives in the clear; later ones are decrypted here). */
  remember(version: number, weights: Float32Array): void {
    this.models.set(version, weights);
    for (const v of [...this.models.keys()].sort((a, b) => a - b).slice(0, Math.max(0, this.models.size - KEEP_VERSIONS))) this.models.delete(v);
  }

  /** The plaintext model of `version`, if held. */
  model(version: number): Float32Array | undefined {
    return this.models.get(version);
  }

  /** The newest plaintext model this partner holds. */
  latest(): { version: number; weights: Float32Array } | null {
    const versions = [...this.models.keys()];
    if (versions.length === 0) return null;
    const version = Math.max(...versions);
    return { version, weights: this.models.get(version)! };
  }

  /**
   * Encrypt [n·clip(Δ), n].
   * @param delta - the local update
   * @param numExamples - the weight n
   * @returns ciphertext chunks and the plaintext length
   */
  async encryptUpdate(delta: Float32Array, numExamples: number, roundId: string): Promise<{ chunks: Uint8Array[]; length: number; signature: Uint8Array }> {
    if (!this.ready || !this.setup) throw new FedmartError('UNAVAILABLE', 'cannot encrypt: this partner does not hold the federation key yet');
    const ctx = await this.ctx!;
    const c = this.setup.clip;
    const v = new Float64Array(delta.length + 1);
    for (let i = 0; i < delta.length; i++) {
      const x = delta[i]!;
      v[i] = numExamples * (x > c ? c : x < -c ? -c : x);
    }
    v[delta.length] = numExamples;
    const chunks = ctx.encryptVector(v, this.sk!);
    const statement = updateStatement({ federationId: this.setup.federationId, roundId, keyId: this.keyId!, length: v.length, masks: ctx.maskParts(chunks) });
    return { chunks, length: v.length, signature: signEd25519(this.identity.keyPair.secretKey, statement) };
  }

  /**
   * Before decrypting anything: the aggregate must list at least `minContributors` distinct partners, each
   * with a valid signature by its pinned identity over its update's mask hash for this round and key, and
   * the aggregate's mask parts must equal the sum of the listed masks (so it is the sum of exactly those
   * ciphertexts; one forwarded ciphertext, or a sum of fewer partners, is refused).
   * @throws FedmartError FORBIDDEN naming what is wrong
   */
  private async checkAggregate(agg: HeAggregate, minContributors: number): Promise<void> {
    const { federationId } = this.setup!;
    const ctx = await this.ctx!;
    if (agg.keyId !== this.keyId) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} is under federation key ${agg.keyId}, this partner holds ${this.keyId}; refusing to decrypt`);
    const ids = new Set(agg.contributors.map((c) => c.partnerId));
    if (ids.size !== agg.contributors.length) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} lists a contributor twice; refusing to decrypt`);
    if (ids.size < minContributors) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} carries ${ids.size} distinct contributor${ids.size === 1 ? '' : 's'}, the federation's terms require at least ${minContributors}; refusing to decrypt (it could be one partner's own update)`);
    for (const c of agg.contributors) {
      if (c.partnerId === this.setup!.partnerId) {
        if (!equalBytes(c.identityKey, this.identity.keyPair.publicKey)) throw new FedmartError('FORBIDDEN', 'the aggregate lists this partner under another identity key; refusing to decrypt');
      } else this.identity.checkPeer(federationId, c.partnerId, c.identityKey); // pin on first use; a changed key is refused
      if (c.masks.length !== agg.chunks.length) throw new FedmartError('FORBIDDEN', `contributor ${c.partnerId} lists ${c.masks.length} mask parts for ${agg.chunks.length} chunks; refusing to decrypt`);
      const statement = updateStatement({ federationId, roundId: agg.roundId, keyId: agg.keyId, length: agg.length, masks: c.masks });
      if (!verifyEd25519(c.identityKey, statement, c.signature)) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} lists contributor ${c.partnerId} without its valid signature; refusing to decrypt`);
    }
    const expected = ctx.sumMasks(agg.contributors.map((c) => c.masks));
    const actual = ctx.maskParts(agg.chunks);
    if (!actual.every((m, i) => equalBytes(m, expected[i]!))) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} is not the sum of the listed contributors' ciphertexts (mask parts differ); refusing to decrypt`);
  }

  /**
   * Decrypt an encrypted aggregate and apply the strategy to the model it was trained from.
   * @returns the new model version and weights (also remembered)
   * @throws FedmartError CONFLICT when this partner does not hold the base version
   */
  async applyAggregate(agg: HeAggregate, minContributors: number): Promise<{ version: number; weights: Float32Array; totalWeight: number }> {
    if (!this.ready) throw new FedmartError('UNAVAILABLE', 'cannot decrypt: this partner does not hold the federation key yet');
    await this.checkAggregate(agg, minContributors);
    const base = this.models.get(agg.modelVersion - 1);
    if (!base) throw new FedmartError('CONFLICT', `cannot apply the aggregate of round ${agg.round}: it builds on model version ${agg.modelVersion - 1}, which this partner does not hold (it holds ${[...this.models.keys()].join(', ') || 'none'})`);
    if (agg.length !== base.length + 1) throw new FedmartError('INVALID_MESSAGE', `encrypted aggregate holds ${agg.length} values, the model has ${base.length} parameters + 1 weight`);
    const ctx = await this.ctx!;
    const sum = ctx.decryptVector(agg.chunks, this.sk!, agg.length);
    const totalWeight = Math.round(sum[base.length]!);
    const mean = new Float64Array(base.length);
    if (totalWeight > 0) for (let i = 0; i < mean.length; i++) mean[i] = sum[i]! / totalWeight;
    const out = this.strategy!.aggregateMean!(agg.round, base, mean, { totalWeight, clients: 0, metrics: {} });
    const weights = out.weights ?? base;
    this.remember(agg.modelVersion, weights);
    return { version: agg.modelVersion, weights, totalWeight };
  }
}
