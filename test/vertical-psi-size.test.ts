/**
 * Issue 16 item 3, "the intersection (or only its size, by policy)": a vertical federation created with
 * psi "size" runs overlap checks between the three real party processes — a multi-party PSI cardinality
 * through the relay — that record only how many customers every party holds; nothing is trained, no model
 * version is committed, scoring is refused, and the relay refuses any ID-revealing or training message in
 * that federation's sessions. Creation refuses training settings under psi "size" (REST and CLI).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { VERTICAL_NAMESPACE } from '@fedmart/shared/protocol-vertical-relay';
import { VERTICAL_PROTOCOL_VERSION } from '@fedmart/shared/protocol-vertical';
import type { Ack } from '@fedmart/shared/protocol';
import { startVerticalDemo, type VerticalDemo } from '../cli/vertical-demo.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const HANG = 900_000;
let demo!: VerticalDemo;
let dir = '';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-vpsisize-'));
  demo = await startVerticalDemo({ dataDir: dir, model: 'lr', epochs: 1, rows: 2000, pingTimeoutMs: 180_000, specOverrides: { psi: 'size' } });
}, HANG);
afterAll(async () => {
  await demo?.stop();
  await rm(dir, { recursive: true, force: true });
}, HANG);

it('refuses training settings under psi "size" at creation (REST and CLI)', async () => {
  const op = ['--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken];
  const r = await cli(['federation', 'create', '--mode', 'vertical', '--name', 'x', ...op, '--label-holder', 'platform:age', '--label', 'y', '--parties', 'brand-a:housing', '--id', 'customer_id', '--model', 'lr', '--psi', 'size', '--batch-size', '512']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/psi "size" reveals only how many customers are shared, so no party knows which of its rows to train on: lr cannot train.*batchSize/);
  const bad = { ...demo.spec, model: 'splitnn', protections: { embeddingDp: { noiseMultiplier: 1 } } };
  await expect(demo.api.post('/api/v1/federations', { name: 'bad', config: { mode: 'vertical', vertical: bad, model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 } } }))
    .rejects.toThrow(/splitnn cannot train and rounds are overlap checks.*protections\.embeddingDp/);
  const ok = await cli(['federation', 'create', '--mode', 'vertical', '--name', 'y', ...op, '--label-holder', 'platform:age', '--label', 'y', '--parties', 'brand-a:housing', '--id', 'customer_id', '--model', 'splitnn', '--psi', 'size', '--json']);
  expect(ok.code, ok.stderr).toBe(0);
  expect((JSON.parse(ok.stdout) as { federation: { config: { vertical: { psi: string } } } }).federation.config.vertical.psi).toBe('size');
}, HANG);

it('an overlap check between the processes reports only the size, commits no model, and scoring is refused', async () => {
  const ids = await Promise.all(Object.values(demo.partyFiles).map(async (f) => new Set((await readTableFile(f)).rows.map((r) => r[0]!))));
  const all = [...ids[0]!].filter((id) => ids.every((s) => s.has(id))).length;
  expect(all).toBe(1600); // 80 % of 2,000 customers, every split
  const r = await demo.round();
  expect(r.phase, r.reason ?? '').toBe('checked');
  expect(r.metrics!.psi_intersection).toBe(all);
  expect(r.metrics!.psi_seconds).toBeGreaterThan(0);
  expect(r.metrics!['psi_pairwise_brand-a']).toBe([...ids[0]!].filter((id) => ids[1]!.has(id)).length);
  const models = (await demo.api.get<{ models: { spec: { kind?: string } }[] }>(`/api/v1/federations/${demo.federation}/models`)).models;
  expect(models.filter((m) => m.spec.kind === 'vertical')).toHaveLength(0);
  await expect(demo.api.post(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids: ['c000001'] })).rejects.toThrow(/reveals only the PSI size/);
  const show = await cli(['federation', 'show', '--federation', demo.federation, '--coordinator', demo.coordinator.url, '--token', demo.coordinator.operatorToken]);
  expect(show.stdout).toContain(`round ${r.number}: overlap check (PSI size only): ${all} customers held by every party`);
}, HANG);

it('the relay refuses ID-revealing PSI and alignment messages in a size-only federation', async () => {
  const { token } = await demo.api.post<{ token: string }>(`/api/v1/federations/${demo.federation}/enrollments`, { partner: 'prober' });
  const s = io(`${demo.coordinator.url}${VERTICAL_NAMESPACE}`, { auth: { token, session: 'probe' }, transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('welcome', () => resolve());
      s.once('connect_error', reject);
    });
    const send = (type: string, body: unknown) => s.timeout(60_000).emitWithAck('vmsg', { header: JSON.stringify({ v: VERTICAL_PROTOCOL_VERSION, session: `${demo.federation}/probe`, from: 'prober', to: 'platform', seq: 0, type, body }), parts: [new Uint8Array(60)] }) as Promise<Ack>;
    for (const [type, body] of [['psi.blinded', { set: 'train', stage: 'own', count: 1, mode: 'ids' }], ['align.select', { set: 'train', count: 1 }], ['snn.embedding', { step: 0, rows: 1, dim: 8 }]] as const) {
      const a = await send(type, body);
      expect(a.ok).toBe(false);
      expect(a.ok ? '' : `${a.error.code} ${a.error.message}`).toMatch(new RegExp(`FORBIDDEN .*reveals only the PSI size.*a ${type.replace('.', '\\.')} message`));
    }
    // PSI-cardinality traffic passes the policy (then fails only because nobody is listening in this session).
    const c = await send('psica.blinded', { set: 'overlap', origin: 'prober', hop: 1, count: 1 });
    expect(c.ok ? '' : c.error.code).toBe('UNAVAILABLE'); // platform is enrolled but not in this session
  } finally {
    s.close();
  }
}, HANG);
