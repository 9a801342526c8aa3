/**
 * Vertical FL through the coordinator's `/vertical` relay: the same model as
 * the in-memory hub, every binary part sealed end to end (the coordinator
 * sees no ID, label, feature value, logit or gradient), and the relay
 * refuses bad tokens, spoofed senders, malformed headers and unknown
 * recipients without changing anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '@fedmart/coordinator';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { connectVerticalChannel, openVerticalParts, verticalPairKey } from '@fedmart/client-node/vertical/index';
import { generateX25519KeyPair, type X25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { encodeVerticalMessage, parseVerticalMessage, VERTICAL_PROTOCOL_VERSION } from '@fedmart/shared/protocol-vertical';
import { VERTICAL_NAMESPACE } from '@fedmart/shared/protocol-vertical-relay';
import type { Table } from '@fedmart/shared/data/index';
import { FedmartError } from '@fedmart/shared/errors';
import type { Ack } from '@fedmart/shared/protocol';
import { ApiClient } from '../cli/api-client.ts';
import { bankMarketingPath } from '../cli/datasets.ts';
import { runVerticalExperiment } from '../cli/vertical.ts';

const LH_COLS = ['age', 'balance', 'housing', 'loan', 'contact', 'day', 'month', 'campaign', 'pdays', 'previous', 'poutcome'];
const FH_COLS = ['job', 'marital', 'education', 'default'];
const TINY_MODEL = { kind: 'mlp', inputDim: 1, hidden: [] };
const LOCAL = { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 };
// Socket timeouts stay at the client's 60 s default: a refusal arrives at once, and a short budget only turns load into false failures.

interface Frame {
  party: string;
  event: string;
  args: unknown[];
}

let coord: Coordinator;
let api: ApiClient;
let table: Table;

beforeAll(async () => {
  coord = await startCoordinator({ port: 0, dataDir: null });
  api = new ApiClient(coord.url, coord.operatorToken);
  table = await readTableFile(bankMarketingPath('small'), { sep: ';' });
});
afterAll(async () => {
  await coord?.close();
});

async function createJob(mode: 'vertical' | 'horizontal' = 'vertical'): Promise<string> {
  const r = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: `relay test ${mode}`, config: { mode, model: TINY_MODEL, localTrain: LOCAL } });
  return r.federation.id;
}
async function enroll(job: string, partner: string): Promise<string> {
  return (await api.post<{ token: string }>(`/api/v1/federations/${job}/enrollments`, { partner })).token;
}
function rawSocket(token: string): Promise<{ s: Socket; inbox: unknown[] }> {
  const s = io(`${coord.url}${VERTICAL_NAMESPACE}`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
  const inbox: unknown[] = [];
  s.on('vmsg', (f: unknown) => inbox.push(f));
  return new Promise((resolve, reject) => {
    s.once('welcome', () => resolve({ s, inbox }));
    s.once('connect_error', reject);
  });
}

describe('vertical FL through the coordinator relay (bank.csv)', () => {
  it('trains the same vertical LR as the in-memory hub, and the relay sees only sealed parts', async () => {
    // Arrange: capture every frame the /vertical namespace receives; fixed key pairs so the test can check the sealing
    const frames: Frame[] = [];
    coord.io.of(VERTICAL_NAMESPACE).on('connection', (s) => {
      const party = (s.data as { party: string }).party;
      s.onAny((event: string, ...args: unknown[]) => frames.push({ party, event, args: args.filter((a) => typeof a !== 'function') }));
    });
    const keyPairs: Record<string, X25519KeyPair> = { 'label-holder': generateX25519KeyPair(), 'feature-holder-1': generateX25519KeyPair() };
    let job = '';
    const common = { table, label: 'y', positive: 'yes', parties: [LH_COLS, FH_COLS], drop: ['duration'], model: 'lr' as const, overlap: 0.8, seed: 42, epochs: 2 };
    let memP: Float32Array | undefined;
    let relP: Float32Array | undefined;

    // Act
    const mem = await runVerticalExperiment({ ...common, relay: 'memory', relayHooks: { skipBaselines: true, onPredictions: (p) => (memP = p) } });
    const rel = await runVerticalExperiment({
      ...common, relay: 'coordinator',
      relayHooks: { skipBaselines: true, coordinator: { url: coord.url, operatorToken: coord.operatorToken }, keyPairs, onJob: (j) => (job = j), onPredictions: (p) => (relP = p) },
    });

    // Assert: same alignment and same predictions within CKKS/flooding noise
    expect(rel.relay).toBe('coordinator');
    expect(mem.relay).toBe('memory');
    expect(rel.psi.intersection).toBe(mem.psi.intersection);
    expect(relP!.length).toBe(memP!.length);
    let maxDiff = 0;
    for (let i = 0; i < relP!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(relP![i]! - memP![i]!));
    expect(maxDiff).toBeLessThan(1e-3);
    expect(Math.abs(rel.vertical.auc - mem.vertical.auc)).toBeLessThan(1e-3);
    expect(rel.vertical.auc).toBeGreaterThan(0.55);

    // Assert: the relay saw key announcements and many messages of every phase
    const msgs = frames.filter((f) => f.event === 'vmsg');
    expect(frames.filter((f) => f.event === 'key')).toHaveLength(2);
    const types = new Set(msgs.map((f) => (JSON.parse((f.args[0] as { header: string }).header) as { type: string }).type));
    for (const t of ['psi.blinded', 'align.select', 'vlr.setup', 'batch', 'vlr.partial', 'vlr.residual', 'vlr.maskedGradient', 'vlr.decrypted', 'done']) expect(types).toContain(t);

    // Assert: no ID, label or feature value in any frame, header or part
    // (runVerticalExperiment generates the customer IDs `cust-<row>`)
    const fhValues = new Set<string>();
    const lhValues = new Set<string>();
    for (const r of table.rows.slice(0, 300)) {
      for (const c of FH_COLS) fhValues.add(r[table.columns.indexOf(c)]!);
      for (const c of ['contact', 'month', 'poutcome']) lhValues.add(r[table.columns.indexOf(c)]!);
    }
    const needles = ['cust-', '"yes"', '"no"', ...[...fhValues, ...lhValues].filter((v) => v.length >= 5 && v !== 'other')];
    for (const f of frames) {
      const text = f.args.map((a) => (a instanceof Uint8Array ? Buffer.from(a).toString('latin1') : JSON.stringify(a, (_k, v) => (v instanceof Uint8Array || (v && v.type === 'Buffer') ? Buffer.from(v.data ?? v).toString('latin1') : v)))).join('\n');
      for (const n of needles) expect(text.includes(n), `frame ${f.event} from ${f.party} contains "${n}"`).toBe(false);
    }

    // Assert: every binary part is a ChaCha20-Poly1305 box of the sender's message — it opens under the pair key to a valid
    // message, differs from that plaintext, and fails under a key the parties do not hold
    const key = verticalPairKey(keyPairs['label-holder']!.secretKey, keyPairs['feature-holder-1']!.publicKey, job, 'label-holder', 'feature-holder-1');
    const outsider = generateX25519KeyPair();
    const wrongKey = verticalPairKey(outsider.secretKey, keyPairs['feature-holder-1']!.publicKey, job, 'label-holder', 'feature-holder-1');
    let checkedParts = 0;
    for (const f of msgs) {
      const { header, parts } = f.args[0] as { header: string; parts: Uint8Array[] };
      const plain = openVerticalParts(key, header, parts);
      const m = parseVerticalMessage({ header, parts: plain });
      expect(m.from).toBe(f.party);
      expect(m.session).toBe(job);
      for (const [i, p] of parts.entries()) {
        expect(p.byteLength).toBe(plain[i]!.byteLength + 28);
        if (plain[i]!.byteLength >= 16) expect(Buffer.from(p).includes(Buffer.from(plain[i]!.subarray(0, 16)))).toBe(false);
        checkedParts++;
      }
      if (parts.length > 0) expect(() => openVerticalParts(wrongKey, header, parts)).toThrow(FedmartError);
    }
    expect(checkedParts).toBeGreaterThan(10);

    // Assert: job start and end are in the audit log (polled until written; no wall-clock budget — a loaded machine only makes it slower)
    let actions: string[] = [];
    for (;;) {
      actions = coord.store.listAudit(1000).filter((e) => e.subject === job).map((e) => e.action);
      if (actions.includes('vertical.job.ended')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(actions).toContain('vertical.job.started');
    expect(actions).toContain('vertical.job.ended');
  }, 600_000); // a hang guard, not a speed budget: two trainings through the relay take minutes on a loaded 2-core machine
});

describe('vertical relay: refusals', () => {
  it('refuses a bad token and a token of a horizontal federation', async () => {
    // Arrange
    const horizontal = await createJob('horizontal');
    const hToken = await enroll(horizontal, 'some-party');
    // Act + Assert
    await expect(connectVerticalChannel({ url: coord.url, token: 'not-a-token' })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(connectVerticalChannel({ url: coord.url, token: coord.operatorToken })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(connectVerticalChannel({ url: coord.url, token: hToken })).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('answers an unknown recipient, a spoofed sender and a malformed header with an error and delivers nothing', async () => {
    // Arrange: two parties of one job
    const job = await createJob();
    const a = await rawSocket(await enroll(job, 'alice'));
    const b = await rawSocket(await enroll(job, 'bob'));
    const sealedLike = new Uint8Array(40).fill(7);
    const frame = (from: string, to: string) => {
      const w = encodeVerticalMessage({ session: job, from, to, seq: 0, type: 'vlr.decrypted', body: { step: 0, dims: 5 }, parts: [new Uint8Array(40)] });
      return { header: w.header, parts: [sealedLike] };
    };
    const send = (f: unknown) => a.s.timeout(60_000).emitWithAck('vmsg', f) as Promise<Ack>;
    try {
      // Act
      const unknown = await send(frame('alice', 'carol'));
      const spoofed = await send(frame('bob', 'bob'));
      const badHeader = await send({ header: '{"v":1,"type":"nonsense"}', parts: [] });
      const badBody = await send({ header: JSON.stringify({ v: VERTICAL_PROTOCOL_VERSION, session: job, from: 'alice', to: 'bob', seq: 0, type: 'batch', body: { rows: -1 } }), parts: [sealedLike] });
      const plainPart = await send({ header: frame('alice', 'bob').header, parts: [new Uint8Array(4)] });
      await new Promise((r) => setTimeout(r, 100));
      const inboxBefore = b.inbox.length;
      const ok = await send(frame('alice', 'bob'));
      await new Promise((r) => setTimeout(r, 100));

      // Assert
      expect(unknown).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
      expect(spoofed).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
      expect(badHeader).toMatchObject({ ok: false, error: { code: 'INVALID_MESSAGE' } });
      expect(badBody).toMatchObject({ ok: false, error: { code: 'INVALID_MESSAGE' } });
      expect(plainPart).toMatchObject({ ok: false, error: { code: 'INVALID_MESSAGE' } });
      expect(inboxBefore).toBe(0);
      expect(ok).toEqual({ ok: true });
      expect(b.inbox).toHaveLength(1);
      expect((b.inbox[0] as { from: string }).from).toBe('alice');
    } finally {
      a.s.close();
      b.s.close();
    }
  });
});
