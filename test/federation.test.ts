/**
 * End-to-end: a real coordinator (express + Socket.IO + SQLite) on an
 * ephemeral port, real partner agents over real sockets, real bank data.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { PROTOCOL_VERSION } from '@fedmart/shared/protocol';
import { encodeFloat32 } from '@fedmart/shared/codec';
import { parameterCount } from '@fedmart/shared/model';
import { bankPartners, emitMsg, hello, modelFor, rawClient, startFixture, waitFor } from './helpers.ts';

await initBackend();

describe('a horizontal federation over real sockets', () => {
  it('runs FedAvg rounds end to end and stores model versions with lineage', async () => {
    // Arrange
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3 });
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const p of exp.partners) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false }));
    await Promise.all(agents.map((a) => a.ready));

    // Act
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 3).done;

    // Assert
    expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed', 'committed']);
    const { models } = await fx.api.get<{ models: { version: number; roundId: string | null; parentId: string | null; participants: string[]; metrics: Record<string, number>; strategy: string }[] }>(`/api/v1/federations/${fed}/models`);
    expect(models.map((m) => m.version)).toEqual([0, 1, 2, 3]);
    for (let v = 1; v <= 3; v++) {
      expect(models[v]!.participants).toHaveLength(3);
      expect(models[v]!.strategy).toBe('fedavg');
      expect(models[v]!.metrics.eval_numExamples).toBeGreaterThan(0);
    }
    // Learning happened: validation AUC after round 3 is well above chance and above round 1's.
    expect(models[3]!.metrics.eval_auc).toBeGreaterThan(0.65);
    expect(models[3]!.metrics.eval_loss).toBeLessThan(models[1]!.metrics.eval_loss!);
    expect(models[2]!.parentId).toBeTruthy();
    const { rounds } = await fx.api.get<{ rounds: { phase: string; number: number }[] }>(`/api/v1/federations/${fed}/rounds`);
    expect(rounds.map((r) => r.phase)).toEqual(['committed', 'committed', 'committed']);
    expect(agents.every((a) => a.roundsTrained() === 3)).toBe(true);
    expect(fx.coord.store.verifyAudit().ok).toBe(true);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('goes on without a client that disconnects mid-round, and fails with a reason when too few remain', async () => {
    // Arrange: 3 partners, minClients 2
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2 });
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const p of exp.partners) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false }));
    await Promise.all(agents.map((a) => a.ready));
    // partner-3 drops the moment it is asked to train
    agents[2]!.socket.on('train', () => agents[2]!.socket.disconnect());

    // Act
    const [round1] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert: committed with the two survivors, the dropout recorded
    expect(round1!.phase).toBe('committed');
    expect(round1!.participants).toHaveLength(2);
    expect(Object.values(round1!.failures).join()).toMatch(/disconnected/);

    // Act: another drops → only 1 live client < minClients 2
    agents[1]!.socket.on('train', () => agents[1]!.socket.disconnect());
    const [round2] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    // Assert: failed with a stated reason; the current model is still version 1
    expect(round2!.phase).toBe('failed');
    expect(round2!.reason).toMatch(/too few clients/);
    const { models, currentModelVersionId } = await fx.api.get<{ models: { id: string; version: number }[]; currentModelVersionId: string }>(`/api/v1/federations/${fed}/models`);
    expect(models.find((m) => m.id === currentModelVersionId)!.version).toBe(1);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('times out a straggler instead of stalling', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 2, timeouts: { selectingMs: 5_000, trainingMs: 3_000, evaluatingMs: 3_000 } });
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const p of exp.partners.slice(0, 2)) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false }));
    await Promise.all(agents.map((a) => a.ready));
    // A third partner that says hello and then never answers.
    const silent = await rawClient(fx.url, await fx.enroll(fed, 'silent'));
    expect((await emitMsg(silent, hello(50))).ok).toBe(true);

    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;

    expect(outcome!.phase).toBe('committed');
    expect(outcome!.participants).toHaveLength(2);
    expect(Object.values(outcome!.failures)).toContain('timed out during training');
    silent.disconnect();
    await Promise.all(agents.map((a) => a.close()));
  });
});

describe('the socket protocol refuses bad input and changes no state', () => {
  it('rejects invalid envelopes, NaN updates and wrong shapes with a code, and the round goes on', async () => {
    // Arrange: one honest agent + one raw client we drive by hand
    const exp = await bankPartners();
    await using fx = await startFixture();
    const spec = modelFor(exp);
    const fed = await fx.createFederation({ model: spec, minClients: 1, timeouts: { selectingMs: 5_000, trainingMs: 8_000, evaluatingMs: 5_000 } });
    const honest = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, 'honest'), data: exp.partners[0]!.data, reconnect: false });
    await honest.ready;
    const raw = await rawClient(fx.url, await fx.enroll(fed, 'raw'));

    // Act + Assert: garbage before hello
    const notHello = await emitMsg(raw, { v: PROTOCOL_VERSION, seq: 0, type: 'train-result', roundId: 'r', payload: { numExamples: 1, metrics: {}, length: 1 } }, new Uint8Array(4));
    expect(notHello).toMatchObject({ ok: false, error: { code: 'INVALID_MESSAGE' } });
    expect((await emitMsg(raw, { hello: 'world' })).error?.code).toBe('INVALID_MESSAGE');
    expect((await emitMsg(raw, { ...hello(), v: 99 })).error?.code).toBe('PROTOCOL_MISMATCH');
    expect((await emitMsg(raw, { ...hello(), payload: { numExamples: -1, consent: true } })).error?.message).toMatch(/numExamples/);
    expect((await emitMsg(raw, hello(200, 1))).ok).toBe(true);

    // Drive a round; capture the raw client's train instruction.
    const train = new Promise<{ roundId: string; length: number }>((resolve) => raw.once('train', (t: { roundId: string; length: number }) => resolve(t)));
    const done = fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    const t = await train;
    const n = parameterCount(spec);
    expect(t.length).toBe(n);
    const envelope = (extra: object) => ({ v: PROTOCOL_VERSION, seq: 2, type: 'train-result', roundId: t.roundId, payload: { numExamples: 200, metrics: { loss: 0.5 }, length: n, ...extra } });

    const withNaN = new Float32Array(n);
    withNaN[3] = Number.NaN;
    const nanAck = await emitMsg(raw, envelope({}), encodeFloat32(withNaN));
    expect(nanAck).toMatchObject({ ok: false, error: { code: 'INVALID_UPDATE' } });
    expect(nanAck.error!.message).toMatch(/index 3 is NaN/);
    const inf = new Float32Array(n);
    inf[0] = Number.POSITIVE_INFINITY;
    expect((await emitMsg(raw, envelope({}), encodeFloat32(inf))).error?.code).toBe('INVALID_UPDATE');
    const short = await emitMsg(raw, envelope({}), encodeFloat32(new Float32Array(n - 1)));
    expect(short.error?.message).toMatch(/wrong shape/);
    const lying = await emitMsg(raw, envelope({ length: n + 1 }), encodeFloat32(new Float32Array(n + 1)));
    expect(lying.error?.message).toMatch(/wrong shape/);
    const asJson = await emitMsg(raw, { ...envelope({}), payload: { numExamples: 200, metrics: {}, length: n } }, [1, 2, 3] as unknown as Uint8Array);
    expect(asJson.error?.message).toMatch(/binary attachment/);
    const wrongRound = await emitMsg(raw, { ...envelope({}), roundId: 'r_nope' }, encodeFloat32(new Float32Array(n)));
    expect(wrongRound.error?.code).toBe('CONFLICT');

    // The raw client never sends a valid update: it times out and the round commits with the honest one.
    const [outcome] = await done;
    expect(outcome!.phase).toBe('committed');
    expect(outcome!.participants).toEqual([expect.stringMatching(/^p_/)]);
    const participants = fx.coord.store.listParticipants(outcome!.roundId);
    expect(participants.find((p) => p.status === 'trained')).toBeTruthy();
    raw.disconnect();
    await honest.close();
  });

  it('refuses a handshake with no token, a forged token, or an operator token', async () => {
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: 3, hidden: [] } });
    const token = await fx.enroll(fed, 'acme');
    const refusal = async (t: unknown) => {
      try {
        const s = await rawClient(fx.url, t as string);
        s.disconnect();
        return null;
      } catch (e) {
        return (e as Error & { data?: { code: string; message: string } }).data;
      }
    };
    expect(await refusal(undefined)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/missing token/) });
    const parts = token.split('.');
    const forged = `${parts[0]}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()), fed: 'f_other' })).toString('base64url')}.${parts[2]}`;
    expect(await refusal(forged)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/signature/) });
    expect(await refusal(fx.coord.operatorToken)).toMatchObject({ code: 'FORBIDDEN' });
    expect(await refusal(token)).toBeNull();
    // Re-issuing the enrollment replaces the old token.
    await fx.enroll(fed, 'acme');
    expect(await refusal(token)).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/no longer valid/) });
  });
});
