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
 *
 * Multiparty keys (`he: { keys: 'multiparty' }`, Mouchet et al., PoPETs 2021, §IV; `he/multiparty.ts`): there is
 * no federation key and no key holder. In each round every selected partner draws its own secret s_i, publishes
 * p_i = −a·s_i + e_i for the round's common reference seed with its identity signature, checks every other key
 * party's signature against its pins and combines the collective key (Σ p_i, a) itself; it encrypts under that
 * key; for the aggregate it sends h_i = c1·s_i + e_smg sealed to each other key party — only for an aggregate
 * that carries every key party's signed mask hash, whose masks sum to the aggregate's, once per round — and
 * decrypts when it holds all n shares. s_i is dropped when the round ends.
 *
 * Commit-then-reveal (`multipartyCommitment` in protocol-secure.ts): a partner first sends a signed commitment to
 * its key share, and reveals the share only once it holds every round partner's signed commitment; it combines
 * the collective key only if every revealed share matches its commitment (a rogue share p_B = −a·s_B + e − Σ p_j,
 * which needs the others' shares, cannot have been committed before they were revealed). Likewise it commits to
 * its encrypted update (its signed statement over the ciphertexts' c1 parts) and uploads the ciphertext only once
 * every key party's update commitment is in; it gives a decryption share only for an aggregate whose every
 * contributor's masks match that contributor's commitment (so no update can be −c_C of another partner's).
 */
import { randomBytes } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { generateX25519KeyPair, type X25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { createCkksContext, type CkksContext, type CkksSecretKey } from '@fedmart/shared/he/ckks';
import { unwrapSecretKey, wrapSecretKey } from '@fedmart/shared/he/key-custody';
import { keyWrapAssociatedData, multipartyCommitment, multipartyCommitStatement, multipartyKeyId, multipartyKeyShareStatement, multipartyShareAssociatedData, partnerKeyStatement, updateStatement, wrappedKeyStatement, type HeAggregate, type HeMpCommitsSchema, type HeMpKeysSchema, type MpCommitKind, type HeMpRoundSchema, type HeSetup } from '@fedmart/shared/protocol-secure';
import { createCkksAggregator, type CkksAggregator } from '@fedmart/shared/he/ckks-aggregator';
import { createMultipartyCkks, MULTIPARTY_MAX_PARTIES, MULTIPARTY_SCALE_BITS, type MultipartyCkks } from '@fedmart/shared/he/multiparty';
import type { z } from 'zod';
import { signEd25519, verifyEd25519 } from '@fedmart/shared/crypto/ed25519';
import { concatBytes, equalBytes } from '@fedmart/shared/crypto/bytes';
import type { PartnerIdentity } from '../identity.ts';
import { createStrategy } from '@fedmart/shared/strategy/registry';
import type { Strategy } from '@fedmart/shared/strategy/types';

/** How many plaintext model versions a partner keeps (to survive a round that fails after decryption). */
const KEEP_VERSIONS = 3;

/** Values a multiparty sum may reach in absolute value (he/multiparty.ts: 2^26 headroom at scale 2^112). */
const MULTIPARTY_VALUE_LIMIT = 2 ** 26;

/** This partner's state in one multiparty round. */
interface MultipartyRound {
  roundId: string;
  crpSeed: Uint8Array;
  /** Partners the coordinator asked to make the key (the selected set). */
  asked: readonly string[];
  /** This partner's s_i (SEAL SecretKey bytes); zeroed when the round ends. */
  secretKey: Uint8Array;
  publicShare: Uint8Array;
  /** Set once the collective key is checked and combined. */
  key: { publicKey: Uint8Array; keyId: string; parties: string[]; wrapKeys: Map<string, Uint8Array>; mp: MultipartyCkks } | null;
  keyWaiters: { resolve(): void; reject(e: Error): void }[];
  /** The aggregate this partner answered for (once per round) and every key party's decryption shares. */
  aggregate: HeAggregate | null;
  shares: Map<string, Uint8Array[]>;
  sharesWaiters: { resolve(): void; reject(e: Error): void }[];
  /** Every round partner's commitments this partner accepted (partner → commitment), per kind; null until then. */
  commits: Record<MpCommitKind, Map<string, Uint8Array> | null>;
  /** This partner's key share, revealed only once the key commitments are in. */
  keyReveal: { publicShare: Uint8Array; wrapKey: Uint8Array; signature: Uint8Array };
  /** This partner's own update commitment (set when it encrypts). */
  updateCommitment: Uint8Array | null;
  updateCommitWaiters: { resolve(): void; reject(e: Error): void }[];
  ended: Error | null;
}

/** A signed commitment to send (`he-mp-commit`). */
export interface MultipartyCommit {
  kind: MpCommitKind;
  commitment: Uint8Array;
  signature: Uint8Array;
}

/** Test hooks that see a multiparty partner's secrets (they stay in its process). */
export interface MultipartyObserver {
  /** This partner's round secret s_i. */
  secretShare?: (x: { roundId: string; partnerId: string; secretKey: Uint8Array }) => void;
  /** Decryption shares this partner received (unsealed) or made, per key party. */
  decryptionShares?: (x: { roundId: string; from: string; shares: Uint8Array[] }) => void;
}

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
  constructor(private readonly identity: PartnerIdentity, private readonly observeSecretKey?: (sk: Uint8Array) => void, private readonly observeMultiparty: MultipartyObserver = {}) {}

  /** Multiparty: the current round (one at a time), contexts per key-party count, the 2^112-scale mask aggregator. */
  private mpRound: MultipartyRound | null = null;
  private readonly mpContexts = new Map<number, Promise<MultipartyCkks>>();
  private mpMasks: Promise<CkksAggregator> | null = null;

  /** True when this federation uses multiparty keys. */
  get multiparty(): boolean {
    return this.setup?.keys === 'multiparty';
  }

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
    if (this.multiparty) return true; // no standing key: each round makes its own
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
    if (this.setup && (this.setup.keys ?? 'federation') !== (setup.keys ?? 'federation')) {
      throw new FedmartError('CONFIG_ERROR', `the coordinator changed this federation's CKKS key mode from '${this.setup.keys ?? 'federation'}' to '${setup.keys ?? 'federation'}'; refusing`);
    }
    this.setup = setup;
    this.strategy ??= createStrategy(setup.strategy, setup.strategyOptions);
    this.ctx ??= createCkksContext(setup.params);
    const ctx = await this.ctx;
    if (setup.keys === 'multiparty') return null;
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
    if (this.multiparty || this.setup.keyHolderId === undefined) throw new FedmartError('FORBIDDEN', 'received a wrapped federation key, but this federation uses multiparty keys (no partner may hold a decrypting key); refusing it');
    const { federationId, partnerId } = this.setup;
    const keyHolderId = this.setup.keyHolderId;
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
    if (this.multiparty) return this.encryptMultiparty(v, roundId);
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
  private async checkAggregate(agg: HeAggregate, minContributors: number, keyId: string | null = this.keyId): Promise<void> {
    const { federationId } = this.setup!;
    const ctx = await this.ctx!;
    if (agg.keyId !== keyId) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} is under federation key ${agg.keyId}, this partner holds ${this.keyId}; refusing to decrypt`);
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
    const masks = this.multiparty ? await this.mpMaskAggregator() : ctx;
    const expected = masks.sumMasks(agg.contributors.map((c) => c.masks));
    const actual = masks.maskParts(agg.chunks);
    if (!actual.every((m, i) => equalBytes(m, expected[i]!))) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} is not the sum of the listed contributors' ciphertexts (mask parts differ); refusing to decrypt`);
  }

  /**
   * Decrypt an encrypted aggregate and apply the strategy to the model it was trained from.
   * @returns the new model version and weights (also remembered)
   * @throws FedmartError CONFLICT when this partner does not hold the base version
   */
  async applyAggregate(agg: HeAggregate, minContributors: number): Promise<{ version: number; weights: Float32Array; totalWeight: number }> {
    if (!this.ready) throw new FedmartError('UNAVAILABLE', 'cannot decrypt: this partner does not hold the federation key yet');
    if (this.multiparty) throw new FedmartError('FORBIDDEN', 'this federation uses multiparty keys: an aggregate is decrypted only with every key party\'s share (multipartyDecryptionShares, then multipartyApply)');
    await this.checkAggregate(agg, minContributors);
    const base = this.baseFor(agg);
    const ctx = await this.ctx!;
    return this.applySum(agg, base, ctx.decryptVector(agg.chunks, this.sk!, agg.length));
  }

  /** The plaintext model an aggregate builds on. */
  private baseFor(agg: HeAggregate): Float32Array {
    const base = this.models.get(agg.modelVersion - 1);
    if (!base) throw new FedmartError('CONFLICT', `cannot apply the aggregate of round ${agg.round}: it builds on model version ${agg.modelVersion - 1}, which this partner does not hold (it holds ${[...this.models.keys()].join(', ') || 'none'})`);
    if (agg.length !== base.length + 1) throw new FedmartError('INVALID_MESSAGE', `encrypted aggregate holds ${agg.length} values, the model has ${base.length} parameters + 1 weight`);
    return base;
  }

  /** Example-weighted mean of a decrypted sum [Σ n·Δ, Σ n], through the strategy, remembered as the aggregate's version. */
  private applySum(agg: HeAggregate, base: Float32Array, sum: Float64Array): { version: number; weights: Float32Array; totalWeight: number } {
    const totalWeight = Math.round(sum[base.length]!);
    const mean = new Float64Array(base.length);
    if (totalWeight > 0) for (let i = 0; i < mean.length; i++) mean[i] = sum[i]! / totalWeight;
    const out = this.strategy!.aggregateMean!(agg.round, base, mean, { totalWeight, clients: 0, metrics: {} });
    const weights = out.weights ?? base;
    this.remember(agg.modelVersion, weights);
    return { version: agg.modelVersion, weights, totalWeight };
  }

  // ------------------------------------------------------------ multiparty keys

  private mpContext(parties: number): Promise<MultipartyCkks> {
    let ctx = this.mpContexts.get(parties);
    if (!ctx) this.mpContexts.set(parties, (ctx = createMultipartyCkks({ parties, params: this.setup!.params })));
    return ctx;
  }

  private mpMaskAggregator(): Promise<CkksAggregator> {
    return (this.mpMasks ??= createCkksAggregator(this.setup!.params, { scaleBits: MULTIPARTY_SCALE_BITS }));
  }

  private requireMpRound(roundId: string, what: string): MultipartyRound {
    const r = this.mpRound;
    if (!this.multiparty) throw new FedmartError('FORBIDDEN', `${what}: this federation does not use multiparty keys`);
    if (!r || r.roundId !== roundId) throw new FedmartError('CONFLICT', `${what}: round ${roundId} is not this partner's current multiparty round (${r?.roundId ?? 'none'})`);
    if (r.ended) throw r.ended;
    return r;
  }

  /**
   * Start a multiparty round: draw this partner's secret s_i and its public share for the round's seed.
   * @param minContributors - the pinned minimum participants
   * @returns the signed key share to send
   * @throws FedmartError CONFLICT when this partner is not among the asked parties or there are too few
   */
  async multipartyKeyShare(roundId: string, setup: z.infer<typeof HeMpRoundSchema>, minContributors: number): Promise<MultipartyCommit> {
    if (!this.multiparty || !this.setup) throw new FedmartError('FORBIDDEN', 'asked for a multiparty key share, but this federation does not use multiparty keys; refusing');
    const { federationId, partnerId } = this.setup;
    if (!setup.parties.includes(partnerId)) throw new FedmartError('CONFLICT', `round ${roundId}: the multiparty key parties do not include this partner`);
    if (new Set(setup.parties).size !== setup.parties.length) throw new FedmartError('CONFLICT', `round ${roundId}: the multiparty key parties list a partner twice`);
    if (setup.parties.length < minContributors) throw new FedmartError('CONFLICT', `round ${roundId}: ${setup.parties.length} key parties, the federation's terms require at least ${minContributors}; refusing`);
    if (this.mpRound) this.endMultipartyRound(this.mpRound.roundId, 'a newer round started');
    const mp = await this.mpContext(Math.max(2, Math.min(MULTIPARTY_MAX_PARTIES, setup.parties.length)));
    const share = mp.createKeyShare(setup.crpSeed);
    this.observeMultiparty.secretShare?.({ roundId, partnerId, secretKey: share.secretKey.slice() });
    const wrapKey = this.partnerKeys.publicKey;
    const statement = multipartyKeyShareStatement({ federationId, roundId, crpSeed: setup.crpSeed, partnerId, publicShare: share.publicShare, wrapKey });
    const keyReveal = { publicShare: share.publicShare, wrapKey, signature: signEd25519(this.identity.keyPair.secretKey, statement) };
    this.mpRound = { roundId, crpSeed: new Uint8Array(setup.crpSeed), asked: [...setup.parties], secretKey: share.secretKey, publicShare: share.publicShare, key: null, keyWaiters: [], aggregate: null, shares: new Map(), sharesWaiters: [], commits: { key: null, update: null }, keyReveal, updateCommitment: null, updateCommitWaiters: [], ended: null };
    return this.commit('key', roundId, statement);
  }

  /** Sign a commitment to `revealed` for this round. */
  private commit(kind: MpCommitKind, roundId: string, revealed: Uint8Array): MultipartyCommit {
    const { federationId, partnerId } = this.setup!;
    const commitment = multipartyCommitment({ kind, federationId, roundId, partnerId, revealed });
    return { kind, commitment, signature: signEd25519(this.identity.keyPair.secretKey, multipartyCommitStatement({ kind, federationId, roundId, partnerId, commitment })) };
  }

  /**
   * Every round partner's signed commitments of one kind. Checked: this partner's own commitment is there
   * unchanged, no partner twice, at least `minContributors`, only partners asked for the round's key (for
   * update commitments: exactly the round's key parties), each with a valid signature by its pinned identity.
   * Only after this does this partner reveal what it committed to.
   * @returns for key commitments, the key share to reveal now; for update commitments, null (the waiting upload goes)
   * @throws FedmartError FORBIDDEN naming what is wrong (this partner then reveals nothing)
   */
  acceptMultipartyCommits(msg: z.infer<typeof HeMpCommitsSchema>, minContributors: number): { publicShare: Uint8Array; wrapKey: Uint8Array; signature: Uint8Array } | null {
    const r = this.requireMpRound(msg.roundId, `${msg.kind} commitments`);
    const { federationId, partnerId } = this.setup!;
    const refuse = (why: string) => new FedmartError('FORBIDDEN', `round ${msg.roundId}: refusing the ${msg.kind} commitments: ${why}`);
    if (r.commits[msg.kind]) throw refuse('this partner already accepted a set of them for this round (a second set could follow a reveal)');
    const ids = msg.commits.map((c) => c.partnerId);
    if (new Set(ids).size !== ids.length) throw refuse('a partner is listed twice');
    if (ids.length < minContributors) throw refuse(`${ids.length} partners committed, the federation's terms require at least ${minContributors}`);
    const own = msg.kind === 'key' ? this.keyCommitmentOf(r) : r.updateCommitment;
    if (!own) throw refuse('this partner has not committed yet');
    const mine = msg.commits.find((c) => c.partnerId === partnerId);
    if (!mine || !equalBytes(mine.commitment, own)) throw refuse('this partner\'s own commitment is missing or altered');
    if (msg.kind === 'update') {
      if (!r.key) throw refuse('they came before the collective key');
      if ([...ids].sort().join('\u0000') !== r.key.parties.join('\u0000')) throw refuse(`they are from ${[...ids].sort().join(', ')}, not exactly the round's key parties ${r.key.parties.join(', ')}`);
    }
    const commits = new Map<string, Uint8Array>();
    for (const c of msg.commits) {
      if (!r.asked.includes(c.partnerId)) throw refuse(`partner ${c.partnerId} was not asked to make this round's key`);
      if (c.partnerId !== partnerId) this.identity.checkPeer(federationId, c.partnerId, c.identityKey); // pin on first use; a changed key is refused
      const key = this.identityOf(c.partnerId, `${msg.kind} commitments`);
      if (!verifyEd25519(key, multipartyCommitStatement({ kind: msg.kind, federationId, roundId: msg.roundId, partnerId: c.partnerId, commitment: c.commitment }), c.signature)) {
        throw refuse(`the commitment of ${c.partnerId} lacks a valid signature by its pinned identity (the coordinator may have substituted it)`);
      }
      commits.set(c.partnerId, new Uint8Array(c.commitment));
    }
    r.commits[msg.kind] = commits;
    if (msg.kind === 'key') return r.keyReveal;
    for (const w of r.updateCommitWaiters.splice(0)) w.resolve();
    return null;
  }

  private keyCommitmentOf(r: MultipartyRound): Uint8Array {
    const { federationId, partnerId } = this.setup!;
    return multipartyCommitment({ kind: 'key', federationId, roundId: r.roundId, partnerId, revealed: multipartyKeyShareStatement({ federationId, roundId: r.roundId, crpSeed: r.crpSeed, partnerId, publicShare: r.keyReveal.publicShare, wrapKey: r.keyReveal.wrapKey }) });
  }

  /** This partner's signed commitment to its encrypted update of `roundId` (after {@link encryptUpdate}). */
  multipartyUpdateCommit(roundId: string, update: { chunks: Uint8Array[]; length: number }): Promise<MultipartyCommit> {
    return this.mpMaskAggregator().then((masks) => {
      const r = this.requireMpRound(roundId, 'update commitment');
      const revealed = updateStatement({ federationId: this.setup!.federationId, roundId, keyId: r.key!.keyId, length: update.length, masks: masks.maskParts(update.chunks) });
      const c = this.commit('update', roundId, revealed);
      r.updateCommitment = c.commitment;
      return c;
    });
  }

  /** Resolves once every key party's update commitment is accepted here: only then may the ciphertext leave. */
  multipartyUpdateCommitsReady(roundId: string): Promise<void> {
    const r = this.requireMpRound(roundId, 'update commitments');
    if (r.commits.update) return Promise.resolve();
    return new Promise((resolve, reject) => r.updateCommitWaiters.push({ resolve, reject }));
  }

  /**
   * The coordinator's broadcast of every key party's share: each must carry a valid signature by its pinned
   * identity over this round and seed, this partner's own share must be there unchanged, every party must have
   * been asked, and there must be at least `minContributors`; then this partner combines (Σ p_i, a) itself.
   * @returns the round's key id
   * @throws FedmartError FORBIDDEN naming what is wrong (the round's key is then never made here)
   */
  async acceptMultipartyKeys(keys: z.infer<typeof HeMpKeysSchema>, minContributors: number): Promise<string> {
    const r = this.requireMpRound(keys.roundId, 'collective key');
    const { federationId, partnerId } = this.setup!;
    const refuse = (why: string) => new FedmartError('FORBIDDEN', `round ${keys.roundId}: refusing the collective key: ${why}`);
    if (!equalBytes(keys.crpSeed, r.crpSeed)) throw refuse('it is for another common reference seed than the round\'s');
    const ids = keys.shares.map((x) => x.partnerId);
    if (new Set(ids).size !== ids.length) throw refuse('a key party is listed twice');
    if (ids.length < minContributors) throw refuse(`${ids.length} key parties, the federation's terms require at least ${minContributors}`);
    if (ids.length > MULTIPARTY_MAX_PARTIES) throw refuse(`${ids.length} key parties, multiparty CKKS is analysed for at most ${MULTIPARTY_MAX_PARTIES}`);
    const committed = r.commits.key;
    if (!committed) throw refuse('it came before every key party\'s commitment (a share revealed before the commitments could be a rogue key)');
    if ([...ids].sort().join('\u0000') !== [...committed.keys()].sort().join('\u0000')) throw refuse(`its key parties ${[...ids].sort().join(', ')} are not exactly the partners that committed (${[...committed.keys()].sort().join(', ')})`);
    const mine = keys.shares.find((x) => x.partnerId === partnerId);
    if (!mine || !equalBytes(mine.publicShare, r.publicShare) || !equalBytes(mine.wrapKey, this.partnerKeys.publicKey)) throw refuse('this partner\'s own key share is missing or altered');
    const wrapKeys = new Map<string, Uint8Array>();
    for (const x of keys.shares) {
      if (!r.asked.includes(x.partnerId)) throw refuse(`partner ${x.partnerId} was not asked to make this round's key`);
      if (x.partnerId !== partnerId) this.identity.checkPeer(federationId, x.partnerId, x.identityKey); // pin on first use; a changed key is refused
      const key = this.identityOf(x.partnerId, 'collective key');
      const statement = multipartyKeyShareStatement({ federationId, roundId: keys.roundId, crpSeed: keys.crpSeed, partnerId: x.partnerId, publicShare: x.publicShare, wrapKey: x.wrapKey });
      if (!verifyEd25519(key, statement, x.signature)) {
        throw refuse(`the share of ${x.partnerId} lacks a valid signature by its pinned identity (the coordinator may have substituted it)`);
      }
      if (!equalBytes(multipartyCommitment({ kind: 'key', federationId, roundId: keys.roundId, partnerId: x.partnerId, revealed: statement }), committed.get(x.partnerId)!)) {
        throw refuse(`the share of ${x.partnerId} does not match the commitment it made before any share was revealed (a share chosen after seeing the others', e.g. a rogue key cancelling them)`);
      }
      wrapKeys.set(x.partnerId, new Uint8Array(x.wrapKey));
    }
    const sorted = [...keys.shares].sort((a, b) => (a.partnerId < b.partnerId ? -1 : a.partnerId > b.partnerId ? 1 : 0));
    const mp = await this.mpContext(sorted.length);
    if (r.ended) throw r.ended;
    const publicKey = mp.combinePublicKey(keys.crpSeed, sorted.map((x) => x.publicShare));
    const keyId = multipartyKeyId(keys.roundId, keys.crpSeed, sorted);
    r.key = { publicKey, keyId, parties: sorted.map((x) => x.partnerId), wrapKeys, mp };
    for (const w of r.keyWaiters.splice(0)) w.resolve();
    return keyId;
  }

  /** Resolves once this round's collective key is combined (rejects when the round ends first). */
  multipartyKeyReady(roundId: string): Promise<void> {
    const r = this.requireMpRound(roundId, 'collective key');
    if (r.key) return Promise.resolve();
    return new Promise((resolve, reject) => r.keyWaiters.push({ resolve, reject }));
  }

  private async encryptMultiparty(v: Float64Array, roundId: string): Promise<{ chunks: Uint8Array[]; length: number; signature: Uint8Array }> {
    await this.multipartyKeyReady(roundId);
    const r = this.requireMpRound(roundId, 'encrypt');
    const key = r.key!;
    // The sum over the key parties must stay below 2^26 (he/multiparty.ts): each partner keeps its own part below 2^26 / n.
    const limit = MULTIPARTY_VALUE_LIMIT / key.parties.length;
    for (let i = 0; i < v.length; i++) {
      if (!(Math.abs(v[i]!) < limit)) throw new FedmartError('INVALID_UPDATE', `multiparty CKKS: the weighted update reaches ${Math.abs(v[i]!).toPrecision(4)} at coordinate ${i}, above 2^26 / ${key.parties.length} key parties = ${limit.toPrecision(4)}, so the sum could wrap; use partner-level DP (weight 1) or fewer examples per partner`);
    }
    const chunks = key.mp.encryptVector(key.publicKey, v);
    const masks = (await this.mpMaskAggregator()).maskParts(chunks);
    const statement = updateStatement({ federationId: this.setup!.federationId, roundId, keyId: key.keyId, length: v.length, masks });
    return { chunks, length: v.length, signature: signEd25519(this.identity.keyPair.secretKey, statement) };
  }

  /**
   * This partner's decryption shares of the round's aggregate, sealed to each other key party — only for an
   * aggregate under this round's collective key that lists every key party (and only them) with valid signatures,
   * whose masks sum to the aggregate's (the deployed check, {@link checkAggregate}), and only once per round: two
   * different sums of the same round would reveal their difference.
   * @returns one sealed box per other key party
   * @throws FedmartError FORBIDDEN naming what is wrong
   */
  async multipartyDecryptionShares(agg: HeAggregate, minContributors: number): Promise<{ to: string; sealed: Uint8Array }[]> {
    const r = this.requireMpRound(agg.roundId, 'decryption share');
    if (!r.key) throw new FedmartError('FORBIDDEN', `round ${agg.round}: asked for a decryption share before the collective key was made; refusing`);
    if (r.aggregate) throw new FedmartError('FORBIDDEN', `round ${agg.round}: this partner already gave its decryption share for this round; refusing a second aggregate (two sums would reveal their difference)`);
    if (agg.keyId !== r.key.keyId) throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} is under key ${agg.keyId}, not this round's collective key ${r.key.keyId}; refusing a decryption share`);
    try {
      await this.checkAggregate(agg, minContributors, r.key.keyId);
    } catch (err) {
      throw new FedmartError('FORBIDDEN', toMessage(err).replace(/refusing to decrypt/g, 'refusing a decryption share'));
    }
    const listed = agg.contributors.map((c) => c.partnerId).sort();
    if (listed.join('\u0000') !== r.key.parties.join('\u0000')) {
      throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round} lists contributors ${listed.join(', ')}, not exactly the round's key parties ${r.key.parties.join(', ')}; refusing a decryption share`);
    }
    const committed = r.commits.update;
    if (!committed) throw new FedmartError('FORBIDDEN', `round ${agg.round}: the aggregate came before every key party's update commitment; refusing a decryption share`);
    for (const c of agg.contributors) {
      const revealed = updateStatement({ federationId: this.setup!.federationId, roundId: agg.roundId, keyId: agg.keyId, length: agg.length, masks: c.masks });
      if (!equalBytes(multipartyCommitment({ kind: 'update', federationId: this.setup!.federationId, roundId: agg.roundId, partnerId: c.partnerId, revealed }), committed.get(c.partnerId)!)) {
        throw new FedmartError('FORBIDDEN', `the aggregate of round ${agg.round}: the update of ${c.partnerId} does not match the commitment it made before any ciphertext was uploaded (an update chosen after seeing another partner's, e.g. −c of it); refusing a decryption share`);
      }
    }
    this.baseFor(agg);
    r.aggregate = agg;
    const shares = r.key.mp.decryptionShares(r.secretKey, agg.chunks);
    const { federationId, partnerId } = this.setup!;
    r.shares.set(partnerId, shares);
    this.observeMultiparty.decryptionShares?.({ roundId: agg.roundId, from: partnerId, shares });
    const packed = concatBytes(...shares);
    const key = r.key;
    const boxes = key.parties.filter((p) => p !== partnerId).map((to) => ({ to, sealed: wrapSecretKey(packed, key.wrapKeys.get(to)!, this.partnerKeys, multipartyShareAssociatedData(federationId, agg.roundId, partnerId, to)) }));
    packed.fill(0);
    this.notifyShares(r);
    return boxes;
  }

  /**
   * Another key party's sealed decryption shares (X25519 between the two signed partner keys + ChaCha20-Poly1305,
   * `he/key-custody.ts`: only that party or this one could have sealed them, so the coordinator cannot substitute them).
   * @throws FedmartError CRYPTO_ERROR when the box does not open; FORBIDDEN from a non-key party
   */
  acceptMultipartyShare(share: { roundId: string; from: string; sealed: Uint8Array }): void {
    const r = this.requireMpRound(share.roundId, 'decryption share');
    const senderKey = r.key?.wrapKeys.get(share.from);
    if (!r.key || !senderKey || share.from === this.setup!.partnerId) throw new FedmartError('FORBIDDEN', `round ${share.roundId}: a decryption share from ${share.from}, which is not another key party of this round; ignored`);
    const bytes = unwrapSecretKey(share.sealed, this.partnerKeys, senderKey, multipartyShareAssociatedData(this.setup!.federationId, share.roundId, share.from, this.setup!.partnerId));
    const p = this.setup!.params;
    const chunkBytes = 12 + 8 * p.polyModulusDegree * Math.max(1, p.coeffModulusBits.length - 1); // "FMDS" header + N·data primes words
    if (bytes.byteLength === 0 || bytes.byteLength % chunkBytes !== 0) throw new FedmartError('INVALID_MESSAGE', `round ${share.roundId}: the decryption shares of ${share.from} are ${bytes.byteLength} bytes, not a multiple of ${chunkBytes}`);
    const shares: Uint8Array[] = [];
    for (let off = 0; off < bytes.byteLength; off += chunkBytes) shares.push(bytes.slice(off, off + chunkBytes));
    r.shares.set(share.from, shares);
    this.observeMultiparty.decryptionShares?.({ roundId: share.roundId, from: share.from, shares });
    this.notifyShares(r);
  }

  private notifyShares(r: MultipartyRound): void {
    if (r.aggregate && r.key && r.key.parties.every((p) => r.shares.has(p))) for (const w of r.sharesWaiters.splice(0)) w.resolve();
  }

  /**
   * Wait for every key party's decryption share, combine c0 + Σ h_i and apply the strategy.
   * @returns the new model version and weights (also remembered)
   * @throws FedmartError ROUND_FAILED when the round ends first (a key party dropped: n-out-of-n)
   */
  async multipartyApply(roundId: string): Promise<{ version: number; weights: Float32Array; totalWeight: number }> {
    const r = this.requireMpRound(roundId, 'decrypt');
    if (!r.aggregate || !r.key) throw new FedmartError('CONFLICT', `round ${roundId}: no aggregate answered yet`);
    if (!r.key.parties.every((p) => r.shares.has(p))) await new Promise<void>((resolve, reject) => r.sharesWaiters.push({ resolve, reject }));
    const agg = r.aggregate;
    const sum = r.key.mp.combineDecryption(agg.chunks, r.key.parties.map((p) => r.shares.get(p)!), agg.length);
    const out = this.applySum(agg, this.baseFor(agg), sum);
    this.endMultipartyRound(roundId, 'decrypted');
    return out;
  }

  /** The round ended (committed, failed, or superseded; null: whichever is current): drop s_i and fail whoever still waits. */
  endMultipartyRound(roundId: string | null, why: string): void {
    const r = this.mpRound;
    if (!r || (roundId !== null && r.roundId !== roundId) || r.ended) return;
    r.ended = new FedmartError('ROUND_FAILED', `multiparty round ${roundId} ended (${why}); every key party's share is needed (n-out-of-n), this partner's round secret is dropped`);
    r.secretKey.fill(0);
    for (const w of [...r.keyWaiters.splice(0), ...r.sharesWaiters.splice(0), ...r.updateCommitWaiters.splice(0)]) w.reject(r.ended);
  }
}

function toMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
