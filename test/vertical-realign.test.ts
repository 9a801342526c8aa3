/**
 * Issue 16, "re-alignment when a party's data changes": a feature holder's
 * file changes while its `fedmart partner` process keeps running; at the next
 * round the party notices (SHA-256 of the file), re-reads and re-encodes it,
 * the round's PSI aligns the new rows, and the lineage of the new model
 * version records the new aligned size. Scoring after the change still
 * matches the in-process model.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readTableFile, writeCsv } from '@fedmart/client-node/data/connectors';
import { startVerticalDemo, type VerticalDemo } from '../cli/vertical-demo.ts';
import { isTestId } from '../cli/vertical-party.ts';

/** Heartbeat guard against a starved process on the shared 2-core machine (cli/vertical-demo.ts). */
const LOAD_GUARD = 180_000;
const HANG = 1_200_000;
let demo!: VerticalDemo;
let dir = '';
let ok = false;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-vrealign-'));
  demo = await startVerticalDemo({ dataDir: dir, model: 'lr', epochs: 3, rows: 3000, batchSize: 512, learningRate: 0.1, pingTimeoutMs: LOAD_GUARD });
}, HANG);
afterAll(async () => {
  await demo?.stop();
  if (ok) await rm(dir, { recursive: true, force: true });
  else console.error(`vertical re-align test: party logs kept in ${dir}/parties/*.log`);
}, HANG);

it('a party whose file changed is re-read at the next round, which aligns again and records the new size', async () => {
  const r1 = await demo.round();
  expect(r1.phase, r1.reason ?? '').toBe('committed');
  const psi1 = r1.metrics!.psi_intersection!;

  // brand-a loses 150 customers shared by everyone (training split) while its process runs.
  const file = demo.partyFiles['brand-a']!;
  const t = await readTableFile(file);
  const shared = new Set(demo.sharedTestIds());
  const all = new Set((await readTableFile(demo.partyFiles.platform!)).rows.map((r) => r[0]!));
  const other = new Set((await readTableFile(demo.partyFiles['brand-b']!)).rows.map((r) => r[0]!));
  const drop = new Set(t.rows.map((r) => r[0]!).filter((id) => all.has(id) && other.has(id) && !shared.has(id) && !isTestId(demo.federation, id, demo.spec.testFraction)).slice(0, 150));
  expect(drop.size).toBe(150);
  await writeCsv(file, { columns: t.columns, rows: t.rows.filter((r) => !drop.has(r[0]!)) });

  const r2 = await demo.round();
  expect(r2.phase, r2.reason ?? '').toBe('committed');
  expect(r2.metrics!.psi_intersection).toBe(psi1 - 150);
  const models = (await demo.api.get<{ models: { version: number; metrics: Record<string, number> }[] }>(`/api/v1/federations/${demo.federation}/models`)).models;
  expect(models.slice(-2).map((m) => m.metrics.psi_intersection)).toEqual([psi1, psi1 - 150]);
  expect(await readFile(path.join(dir, 'parties', 'brand-a.log'), 'utf8')).toMatch(/round 2: the data file changed; re-read \d+ customers/);

  // Scoring through the parties after the change equals the in-process model on the new files.
  const ids = demo.sharedTestIds().slice(0, 20);
  const served = await demo.api.post<{ p: number[] }>(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids });
  const local = await demo.inProcessScores(r2.number, ids);
  expect(Math.max(...served.p.map((p, i) => Math.abs(p - local[i]!)))).toBeLessThan(1e-6);
  ok = true;
}, HANG);
