/**
 * Coordinator side of secure aggregation inside one round (Bonawitz et al.,
 * CCS 2017; SecAgg+ of Bell et al., CCS 2020): wraps the pure
 * {@link SecAggServer} core with the mapping between partner ids and the
 * protocol's uint32 client ids, and converts wire replies into core replies.
 *
 * The coordinator relays sealed share bundles it cannot open, adds up masked
 * vectors that look uniform on their own, and at the end learns only
 * Σ w_i·clip(Δ_i) and Σ w_i over the surviving partners.
 */
import { randomBytes } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { SecAggServer, type SecAggResult } from '@fedmart/shared/secagg/server';
import type { SecAggReply, SecAggRequest, SecAggStage } from '@fedmart/shared/secagg/messages';
import { quantizationErrorBound } from '@fedmart/shared/secagg/quantize';
import type { SecAggReplyEnvelope } from '@fedmart/shared/protocol-secure';
import type { SecureAggregationConfig } from '@fedmart/shared/protocol';
import type { SecAggPhase } from '@fedmart/shared/round';

/** Round phase of each SecAgg core stage. */
export const PHASE_OF_STAGE: Readonly<Record<SecAggStage, SecAggPhase>> = { 'advertise-keys': 'advertise-keys', 'share-keys': 'share-keys', 'masked-input': 'masked-input', 'consistency-check': 'consistency-check', unmask: 'unmasking' };

/** One round's secure aggregation, as the orchestrator drives it. */
export class SecAggRound {
  readonly server: SecAggServer;
  /** partner id → protocol client id */
  readonly idOf = new Map<string, number>();
  /** protocol client id → partner id */
  readonly partnerOf = new Map<number, string>();
  /** Requests of the next stage, computed when the previous one closed. */
  private pending = new Map<string, SecAggRequest>();
  /** Plaintext training metrics that came with the masked inputs. */
  readonly metrics = new Map<string, Record<string, number>>();
  result: SecAggResult | null = null;

  /**
   * @param roundId - the round
   * @param selected - partner ids of the selected clients
   * @param vectorLength - model parameter count
   * @param weights - each selected partner's declared example count (its weight)
   * @param config - the federation's secure-aggregation settings
   * @param identityKeys - each selected partner's bound Ed25519 identity key (clients check the signatures under it)
   * @param declared - the weight each selected partner's client will fold in as it computes it (its hello count, or 1 under partner-level DP), before capping at maxWeight; snapshotted now because a partner that drops later leaves the orchestrator's client list
   * @throws FedmartError CONFIG_ERROR when the settings do not fit this round (e.g. fewer than 3 clients, or a partner without an identity key)
   */
  constructor(roundId: string, selected: readonly string[], vectorLength: number, weights: ReadonlyMap<string, number>, config: SecureAggregationConfig, identityKeys: ReadonlyMap<string, Uint8Array | undefined>, private readonly declared: ReadonlyMap<string, number> = weights) {
    const sorted = [...selected].sort();
    sorted.forEach((p, i) => {
      this.idOf.set(p, i + 1);
      this.partnerOf.set(i + 1, p);
    });
    const maxWeight = Math.max(1, ...sorted.map((p) => Math.floor(weights.get(p) ?? 1)));
    const n = sorted.length;
    this.server = new SecAggServer({
      roundId,
      participants: sorted.map((p) => this.idOf.get(p)!),
      vectorLength,
      quantization: { clip: config.clip, maxClients: n, maxWeight, bits: config.bits, rounding: 'stochastic' },
      // A configured degree at or above n − 1 means every pair masks (plain SecAgg).
      ...(config.neighbours !== undefined ? { neighbourDegree: config.neighbours >= n - 1 ? n - 1 : config.neighbours } : {}),
      ...(config.threshold !== undefined ? { threshold: config.threshold } : {}),
      ...(config.corruptedFraction !== undefined ? { corruptedFraction: config.corruptedFraction } : {}),
      ...(config.dropoutRate !== undefined ? { dropoutRate: config.dropoutRate } : {}),
      graphSeed: new Uint8Array(randomBytes(32)),
      identities: sorted.map((p) => {
        const publicKey = identityKeys.get(p);
        if (!publicKey) throw new FedmartError('CONFIG_ERROR', `secure aggregation: partner ${p} presented no identity key; partners must run a fedmart client that signs its messages (upgrade it)`);
        return { id: this.idOf.get(p)!, publicKey };
      }),
    });
    for (const req of this.server.advertiseKeysRequests()) {
      const partnerId = this.partnerOf.get(req.clientId)!;
      // Partners pin identities by partner id: tell each which partner every client id is.
      this.pending.set(partnerId, { ...req, identities: req.identities.map((e) => ({ ...e, partnerId: this.partnerOf.get(e.id)! })) } as SecAggRequest);
    }
  }

  /** The request for `partnerId` at the stage about to be sent. */
  requestFor(partnerId: string): SecAggRequest | undefined {
    return this.pending.get(partnerId);
  }

  /**
   * Hand a parsed wire reply to the core (which checks it fully and changes nothing when it refuses).
   * @throws FedmartError INVALID_MESSAGE when the reply claims another client's id, or whatever the core throws
   */
  receive(partnerId: string, payload: SecAggReplyEnvelope['payload'], roundId: string): void {
    const clientId = this.idOf.get(partnerId);
    if (clientId === undefined || payload.clientId !== clientId) {
      throw new FedmartError('INVALID_MESSAGE', `secure aggregation: partner ${partnerId} is client ${String(clientId)} in round ${roundId}, but its reply claims client ${payload.clientId}`);
    }
    let reply: SecAggReply;
    switch (payload.stage) {
      case 'advertise-keys':
        reply = { stage: 'advertise-keys', roundId, clientId, encryptionPublicKey: payload.encryptionPublicKey, maskingPublicKey: payload.maskingPublicKey, signature: payload.signature };
        this.server.receiveAdvertiseKeys(reply);
        return;
      case 'share-keys':
        reply = { stage: 'share-keys', roundId, clientId, sealed: payload.sealed };
        this.server.receiveShareKeys(reply);
        return;
      case 'masked-input': {
        const b = payload.masked;
        const words = new Uint32Array(b.byteLength / 4);
        new Uint8Array(words.buffer).set(b);
        this.server.receiveMaskedInput({ stage: 'masked-input', roundId, clientId, masked: words });
        this.metrics.set(partnerId, payload.metrics);
        return;
      }
      case 'consistency-check':
        this.server.receiveConsistencyCheck({ stage: 'consistency-check', roundId, clientId, signature: payload.signature });
        return;
      case 'unmask':
        this.server.receiveUnmask({ stage: 'unmask', roundId, clientId, shares: payload.shares });
        return;
    }
  }

  /**
   * Close a stage with the core.
   * @returns the partner ids the next stage goes to (empty after unmasking, when {@link result} is set)
   * @throws FedmartError ROUND_FAILED (too few clients / shares) or CRYPTO_ERROR from the core
   */
  close(stage: SecAggPhase): string[] {
    let requests: SecAggRequest[];
    switch (stage) {
      case 'advertise-keys':
        requests = this.server.closeAdvertiseKeys();
        break;
      case 'share-keys':
        requests = this.server.closeShareKeys();
        break;
      case 'masked-input':
        requests = this.server.closeMaskedInput();
        break;
      case 'consistency-check':
        requests = this.server.closeConsistencyCheck();
        break;
      case 'unmasking':
        this.result = this.server.closeUnmask();
        this.pending.clear();
        return [];
    }
    this.pending = new Map(requests.map((r) => [this.partnerOf.get(r.clientId)!, r]));
    return [...this.pending.keys()];
  }

  /**
   * Check the unmasked sum against what honest clients can produce (issue 8:
   * bound what can be bounded when updates are hidden). An honest client folds
   * in weight min(declared, maxWeight) — 1 under partner-level DP — and
   * coordinates clipped to ±clip, so the survivors' total weight is at most
   * the sum of those, and every coordinate of the weighted sum is within
   * ±(total weight · clip) plus the rounding error. A partner that folds in
   * more weight than it declared, or masks an out-of-range vector, fails
   * this check; one that stays in range cannot be told apart from an honest
   * one without zero-knowledge range proofs (out of scope; see the README).
   * @param result - the unmasked result
   * @returns null when in range, otherwise what is out of range
   */
  checkSumRange(result: SecAggResult): string | null {
    const q = this.server.params.quantization;
    let expected = 0;
    for (const id of result.survivors) expected += Math.min(Math.floor(this.declared.get(this.partnerOf.get(id)!) ?? 0), q.maxWeight);
    if (result.totalWeight > expected) return `the survivors' total weight ${result.totalWeight} exceeds the ${expected} they declared`;
    const limit = result.totalWeight * q.clip + quantizationErrorBound(q, result.survivors.length);
    for (let j = 0; j < result.weightedSum.length; j++) {
      const v = result.weightedSum[j]!;
      if (!(Math.abs(v) <= limit)) return `coordinate ${j} of the weighted sum is ${v.toPrecision(4)}, beyond ±${limit.toPrecision(4)} (total weight × clip)`;
    }
    return null;
  }

  /** Drop all state (idempotent). */
  abort(): void {
    if (this.server.state !== 'done' && this.server.state !== 'aborted') this.server.abort();
    this.pending.clear();
  }
}
