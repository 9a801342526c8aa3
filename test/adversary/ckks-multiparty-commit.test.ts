/**
 * Issue 8, item 3, the two attacks multiparty CKKS left open, both by a partner B colluding with the coordinator
 * (real coordinator, real agents, bank data; B runs the honest agent and the coordinator forges on B's behalf
 * with B's identity key, which is what a colluding B would hand it):
 *
 * 1. Rogue key: the coordinator holds B's key share back until it has A's and C's, then publishes for B
 *    p_B' = p_B − p_A − p_C (validly signed by B), so the "collective" key Σ p_i = p_B is decryptable by s_B alone.
 * 2. Malleable update: the coordinator holds B's update back until it has C's ciphertext, then uploads for B
 *    −c_C (validly signed by B), so the "aggregate" c_A + (−c_C) + c_C = c_A is partner A's update alone.
 *
 * Commit-then-reveal (protocol-secure.ts `multipartyCommitment`; Micali–Ohta–Reyzin 2001, Bonawitz et al. 2017):
 * every partner's commitment is fixed and distributed before anyone reveals, so a value chosen after seeing the
 * others' no longer matches B's commitment; honest partners refuse with that reason and nothing is decrypted.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import type { ClientLink, Orchestrator } from '@fedmart/coordinator/orchestrator';
import { partnerKeysPublished } from './multiparty-setup.ts';
import { createMultipartyCkks, MULTIPARTY_SCALE_BITS } from '@fedmart/shared/he/multiparty';
import { createCkksAggregator } from '@fedmart/shared/he/ckks-aggregator';
import { buildSealCkksRuntime, resolveCkksParams, type CkksParams } from '@fedmart/shared/he/ckks-params';
import { signEd25519 } from '@fedmart/shared/crypto/ed25519';
import { equalBytes } from '@fedmart/shared/crypto/bytes';
import { multipartyKeyId, multipartyKeyShareStatement, updateStatement, type HeAggregate, type HeSetup } from '@fedmart/shared/protocol-secure';
import { bankPartners, modelFor, startFixture, waitFor } from '../helpers.ts';

/** Hang guards only. */
const timeouts = { selectingMs: 120_000, trainingMs: 240_000, evaluatingMs: 60_000 };

/** A running 3-partner multiparty federation with hooks on every link; agent i is partner order[i]. */
async function multipartyFederation() {
  const exp = await bankPartners(3);
  const fx = await startFixture();
  const fedId = await fx.createFederation({ model: modelFor(exp), minClients: 3, encryption: 'ckks', he: { keys: 'multiparty' }, timeouts });
  const orch: Orchestrator = fx.coord.orchestrator;
  const order: string[] = [];
  const seen = { setup: null as HeSetup | null, crpSeed: null as Uint8Array | null, keyId: null as string | null, aggregates: [] as HeAggregate[] };
  const attach = orch.attachClient.bind(orch);
  orch.attachClient = (federationId: string, link: ClientLink) => {
    order.push(link.partnerId);
    const emit = link.emitSecure.bind(link) as (e: string, p: unknown) => void;
    link.emitSecure = ((event: string, payload: unknown) => {
      if (event === 'he-setup') seen.setup = payload as HeSetup;
      if (event === 'he-mp-keys') {
        const k = payload as { roundId: string; crpSeed: Uint8Array; shares: { partnerId: string; publicShare: Uint8Array }[] };
        seen.keyId = multipartyKeyId(k.roundId, k.crpSeed, k.shares);
      }
      if (event === 'he-aggregate') seen.aggregates.push(payload as HeAggregate);
      emit(event, payload);
    }) as ClientLink['emitSecure'];
    const sendTrain = link.sendTrain.bind(link);
    link.sendTrain = (t, w) => {
      if (t.multiparty) seen.crpSeed = new Uint8Array(t.multiparty.crpSeed);
      sendTrain(t, w);
    };
    attach(federationId, link);
  };
  const published = partnerKeysPublished(orch, 3);
  const identities = exp.partners.map(() => PartnerIdentity.ephemeral());
  const logs: string[][] = [];
  const secrets = new Map<number, Uint8Array>(); // agent → round secret s_i
  const agents: PartnerAgent[] = [];
  for (const [i, p] of exp.partners.entries()) {
    logs.push([]);
    agents.push(startPartnerAgent({
      coordinatorUrl: fx.url, token: await fx.enroll(fedId, p.id), data: p.data, seed: i, reconnect: false, identity: identities[i]!, log: (m) => logs[i]!.push(m),
      onMultiparty: { secretShare: ({ secretKey }) => secrets.set(i, secretKey) },
    }));
    await agents[i]!.ready; // in order, so agent i is order[i]
  }
  await published;
  const sharesFrom: string[] = [];
  const acceptShare = orch.acceptHeMpDecryptionShare.bind(orch);
  orch.acceptHeMpDecryptionShare = (federationId, partnerId, roundId, boxes) => {
    sharesFrom.push(partnerId);
    acceptShare(federationId, partnerId, roundId, boxes);
  };
  return {
    fedId, orch, order, seen, identities, logs, secrets, agents, sharesFrom,
    /** The federation's CKKS parameters (from the setup every partner took). */
    params: (): CkksParams => resolveCkksParams(seen.setup!.params),
    async [Symbol.asyncDispose]() {
      await Promise.all(agents.map((a) => a.close()));
      await fx[Symbol.asyncDispose]();
    },
  };
}

/** x − Σ ys on "FMPK" public shares (12-byte header, then N words per key prime), modulo each prime. */
function subtractShares(x: Uint8Array, ys: Uint8Array[], primes: bigint[]): Uint8Array {
  const words = (b: Uint8Array) => { const c = new Uint8Array(b.byteLength - 12); c.set(b.subarray(12)); return new BigUint64Array(c.buffer); };
  const out = words(x);
  const N = out.length / primes.length;
  for (const y of ys.map(words)) {
    for (let k = 0; k < out.length; k++) {
      const q = primes[Math.floor(k / N)]!;
      out[k] = (out[k]! + q - y[k]!) % q;
    }
  }
  const bytes = new Uint8Array(x.byteLength);
  bytes.set(x.subarray(0, 12));
  bytes.set(new Uint8Array(out.buffer), 12);
  return bytes;
}

/** max |got − want| over `want`'s length. */
const distance = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
  return d;
};

describe('issue 8 item 3: commit-then-reveal closes the multiparty CKKS collusion attacks', () => {
  it('rogue key: a share chosen after seeing the others’ does not match its commitment, honest partners refuse the key and encrypt nothing', async () => {
    // Arrange: the coordinator holds B's key share until A's and C's are in, then publishes p_B − p_A − p_C signed by B
    await using f = await multipartyFederation();
    const [A, B, C] = [f.order[0]!, f.order[1]!, f.order[2]!];
    const shares = new Map<string, { publicShare: Uint8Array; wrapKey: Uint8Array; signature: Uint8Array }>();
    let rogue: Uint8Array | null = null;
    const acceptKeyShare = f.orch.acceptHeMpKeyShare.bind(f.orch);
    const params = f.params();
    const rt = await buildSealCkksRuntime(params);
    const keyPrimes = Array.from(rt.context.keyContextData.parms.coeffModulus as BigUint64Array, (q) => BigInt(q));
    let roundOf = '';
    const releaseRogue = () => {
      if (rogue || ![A, B, C].every((p) => shares.has(p))) return;
      const b = shares.get(B)!;
      rogue = subtractShares(b.publicShare, [shares.get(A)!.publicShare, shares.get(C)!.publicShare], keyPrimes);
      const signature = signEd25519(f.identities[1]!.keyPair.secretKey, multipartyKeyShareStatement({ federationId: f.fedId, roundId: roundOf, crpSeed: f.seen.crpSeed!, partnerId: B, publicShare: rogue, wrapKey: b.wrapKey }));
      acceptKeyShare(f.fedId, B, roundOf, { publicShare: rogue, wrapKey: b.wrapKey, signature });
    };
    f.orch.acceptHeMpKeyShare = (federationId, partnerId, roundId, share) => {
      roundOf = roundId;
      shares.set(partnerId, { publicShare: new Uint8Array(share.publicShare), wrapKey: new Uint8Array(share.wrapKey), signature: new Uint8Array(share.signature) });
      if (partnerId !== B) acceptKeyShare(federationId, partnerId, roundId, share);
      releaseRogue();
    };
    const uploadsFrom: string[] = [];
    const acceptUpload = f.orch.acceptHeTrainResult.bind(f.orch);
    f.orch.acceptHeTrainResult = (federationId, partnerId, roundId, length, chunks, metrics, signature) => {
      uploadsFrom.push(partnerId);
      acceptUpload(federationId, partnerId, roundId, length, chunks, metrics, signature);
    };

    // Act
    const [outcome] = await f.orch.scheduleRounds(f.fedId, 1).done;

    // Assert: the attack was mounted and would work (the rogue collective key is p_B: s_B alone decrypts under it)
    expect(rogue).not.toBeNull();
    const mp = await createMultipartyCkks({ parties: 3, params });
    try {
      const pk = mp.combinePublicKey(f.seen.crpSeed!, [shares.get(A)!.publicShare, rogue!, shares.get(C)!.publicShare]);
      const x = Float64Array.from({ length: 64 }, (_, j) => Math.sin(j));
      const ct = mp.encryptVector(pk, x);
      expect(distance(mp.partialDecryptUnsafe(ct, [mp.decryptionShares(f.secrets.get(1)!, ct)], x.length), x)).toBeLessThan(1e-3);
    } finally {
      mp.dispose();
      rt.context.delete?.();
    }
    // ... but honest A and C refuse the key, naming the commitment mismatch, and encrypt nothing under it.
    // The round fails on the first refusal; the other honest partner may see that failure before it gets
    // to the key (then it has nothing to refuse), so wait for its log only as long as a hang guard allows.
    const refusalOf = (i: number) => f.logs[i]!.find((m) => /collective key .*refused/.test(m));
    await waitFor(() => [0, 2].every((i) => refusalOf(i) !== undefined), 30_000, 'both refusals').catch(() => {});
    const refusals = [0, 2].map(refusalOf).filter((m): m is string => m !== undefined);
    expect(refusals.length, `agents 0 and 2 logged: ${[0, 2].map((i) => f.logs[i]!.join(' | ')).join(' || ')}`).toBeGreaterThan(0);
    for (const refusal of refusals) expect(refusal).toMatch(new RegExp(`the share of ${B} does not match the commitment it made before any share was revealed`));
    expect(uploadsFrom).toEqual([]);
    expect(f.sharesFrom).toEqual([]);
    expect(outcome!.phase).toBe('failed');
    expect(f.agents.map((a) => a.currentModel()?.version ?? 0)).toEqual([0, 0, 0]);
  }, 900_000); // hang guard only

  it('malleable update: −c_C uploaded after seeing C’s ciphertext does not match its commitment, honest partners give no decryption share', async () => {
    // Arrange: the coordinator holds B's upload until C's is in, then uploads −c_C for B, signed by B
    await using f = await multipartyFederation();
    const [A, B, C] = [f.order[0]!, f.order[1]!, f.order[2]!];
    const params = f.params();
    const rt = await buildSealCkksRuntime(params);
    const evaluator = rt.seal.Evaluator(rt.context);
    const masks = await createCkksAggregator(params, { scaleBits: MULTIPARTY_SCALE_BITS });
    const negate = (chunks: Uint8Array[]) => chunks.map((bytes) => {
      const ct = rt.seal.CipherText();
      try {
        ct.loadArray(rt.context, bytes);
        evaluator.negate(ct, ct);
        return ct.saveArray(rt.seal.ComprModeType.none as never);
      } finally {
        ct.delete();
      }
    });
    const uploads = new Map<string, { length: number; chunks: Uint8Array[]; metrics: Record<string, number>; roundId: string }>();
    let forged: Uint8Array[] | null = null;
    const acceptUpload = f.orch.acceptHeTrainResult.bind(f.orch);
    const releaseForged = () => {
      if (forged || !uploads.has(B) || !uploads.has(C)) return;
      const b = uploads.get(B)!;
      forged = negate(uploads.get(C)!.chunks);
      const signature = signEd25519(f.identities[1]!.keyPair.secretKey, updateStatement({ federationId: f.fedId, roundId: b.roundId, keyId: f.seen.keyId!, length: b.length, masks: masks.maskParts(forged) }));
      acceptUpload(f.fedId, B, b.roundId, b.length, forged, b.metrics, signature);
    };
    f.orch.acceptHeTrainResult = (federationId, partnerId, roundId, length, chunks, metrics, signature) => {
      uploads.set(partnerId, { length, chunks: chunks.map((c) => new Uint8Array(c)), metrics, roundId });
      if (partnerId !== B) acceptUpload(federationId, partnerId, roundId, length, chunks, metrics, signature);
      releaseForged();
    };

    // Act
    const [outcome] = await f.orch.scheduleRounds(f.fedId, 1).done;

    // Assert: the attack was mounted and real: the "aggregate" the partners were sent is A's ciphertext alone
    expect(forged).not.toBeNull();
    expect(f.seen.aggregates.length, `no aggregate went out: round ${outcome!.phase} (${outcome!.reason ?? ''}); logs: ${f.logs.flat().join(' | ')}`).toBeGreaterThan(0);
    const aggMasks = masks.maskParts(f.seen.aggregates[0]!.chunks);
    const aMasks = masks.maskParts(uploads.get(A)!.chunks);
    expect(aggMasks.every((m, i) => equalBytes(m, aMasks[i]!))).toBe(true);
    masks.dispose();
    evaluator.delete();
    // ... but honest A and C refuse their decryption share, naming B's commitment mismatch; nothing is decrypted
    for (const i of [0, 2]) {
      const refusal = f.logs[i]!.find((m) => /does not match the commitment/.test(m)) ?? `(agent ${i} logged: ${f.logs[i]!.join(' | ')})`;
      expect(refusal).toMatch(new RegExp(`the update of ${B} does not match the commitment it made before any ciphertext was uploaded.*refusing a decryption share`));
    }
    expect(f.sharesFrom).not.toContain(A);
    expect(f.sharesFrom).not.toContain(C);
    expect(outcome!.phase).toBe('failed');
    expect(f.agents.map((a) => a.currentModel()?.version ?? 0)).toEqual([0, 0, 0]);
  }, 900_000); // hang guard only
});
