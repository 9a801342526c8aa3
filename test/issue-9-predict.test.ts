/**
 * Issue 9, item 4: `fedmart predict` as a user runs it — a real process over
 * a model file, and against a real coordinator (port 0, in-memory SQLite)
 * serving a federation's model versions; rows from the real bank data.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCsv, selectRows, type Table } from '@fedmart/shared/data/index';
import { initWeights, type ModelSpec } from '@fedmart/shared/model';
import { denseModel, forwardLogit } from '@fedmart/shared/explain/index';
import { rocAuc } from '@fedmart/shared/metrics';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { predict, trainLocal } from '@fedmart/client-node/ml/trainer';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { encodeTable } from '@fedmart/shared/data/encode';
import { bankMarketingPath } from '../cli/datasets.ts';
import { explainFederatedModel } from '../cli/explain.ts';
import { readModelFile, writeModelFile } from '../cli/model-file.ts';
import { bankPartners, startFixture } from './helpers.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 280_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

interface Prediction { row: number; probability: number; logit: number; baselineLogit?: number; contributions?: { feature: string; value: unknown; contribution: number }[]; completenessError?: number }

await initBackend();
const exp = await bankPartners();
let dir: string;
let rows: Table;
const model: Record<'lr' | 'mlp', { spec: ModelSpec; weights: Float32Array; file: string }> = {} as never;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-predict-'));
  const bank = await readTableFile(bankMarketingPath('small'), { sep: ';' });
  rows = selectRows(bank, Array.from({ length: 40 }, (_, i) => i * 97));
  await writeFile(path.join(dir, 'rows.csv'), formatCsv(rows, ';'));
  const noLabel = { columns: rows.columns.filter((c) => c !== 'y'), rows: rows.rows.map((r) => r.filter((_, k) => rows.columns[k] !== 'y')) };
  await writeFile(path.join(dir, 'unlabelled.csv'), formatCsv(noLabel, ';'));
  for (const [name, hidden] of [['lr', []], ['mlp', [8]]] as const) {
    const spec: ModelSpec = { kind: 'mlp', inputDim: exp.d, hidden: [...hidden] };
    const { weights } = await trainLocal({ spec, weights: initWeights(spec, 3), x: exp.central.x, y: exp.central.y, n: exp.central.n, config: { localEpochs: 3, batchSize: 64, learningRate: 0.01, proximalMu: 0 }, seed: 3 });
    const { baseline } = explainFederatedModel({ spec, weights, schema: exp.schema, partners: exp.partners.map((p) => p.data), seed: 1, repeats: 1, checkRows: 1 });
    const file = path.join(dir, `${name}.json`);
    await writeModelFile(file, { spec, weights, dataSchema: exp.schema, baseline, metadata: { source: 'test', metrics: { auc: 0.7 } } });
    model[name] = { spec, weights, file };
  }
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Generous limits: each case starts real processes, and the suite must pass on a loaded machine.
describe('issue 9: fedmart predict', { timeout: 300_000 }, () => {
  it('scores a model file like the trainer does and explains each row in original features; LR contributions sum to the logit', async () => {
    // Act
    const r = await run(['predict', '--model', model.lr.file, '--csv', path.join(dir, 'rows.csv'), '--sep', ';', '--explain', '--top', '100', '--json']);
    // Assert
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { rows: number; method: string; baseline: string; auc: number; predictions: Prediction[]; model: { sha256: string; source: string } };
    expect(out.rows).toBe(40);
    expect(out.method).toBe('linear-exact');
    expect(out.baseline).toBe('training-mean');
    expect(out.model.source).toBe('test');
    const enc = encodeTable(rows, exp.schema);
    const tfProbs = await predict(model.lr.spec, model.lr.weights, enc.x, enc.n);
    expect(out.auc).toBeCloseTo(rocAuc(tfProbs, enc.y), 6);
    const jobCol = rows.columns.indexOf('job');
    out.predictions.forEach((p, i) => {
      expect(p.probability).toBeCloseTo(tfProbs[i]!, 5);
      const sum = p.contributions!.reduce((s, c) => s + c.contribution, 0);
      expect(Math.abs(sum + p.baselineLogit! - p.logit)).toBeLessThan(1e-4); // each figure is rounded to 1e-6
      expect(p.contributions!.map((c) => c.feature).sort()).toEqual(exp.schema.features.map((f) => f.name).sort());
      expect(p.contributions!.find((c) => c.feature === 'job')!.value).toBe(rows.rows[i]![jobCol]);
      const mags = p.contributions!.map((c) => Math.abs(c.contribution));
      expect(mags).toEqual([...mags].sort((a, b) => b - a));
    });
  });

  it('explains an MLP with Integrated Gradients within 1% completeness, and scores rows without a label', async () => {
    const [explained, plain, table] = await Promise.all([
      run(['predict', '--model', model.mlp.file, '--csv', path.join(dir, 'unlabelled.csv'), '--sep', ';', '--explain', '--top', '3', '--json']),
      run(['predict', '--model', model.mlp.file, '--csv', path.join(dir, 'unlabelled.csv'), '--sep', ';', '--json']),
      run(['predict', '--model', model.mlp.file, '--csv', path.join(dir, 'rows.csv'), '--sep', ';', '--explain', '--top', '2']),
    ]);
    expect(explained.code, explained.stderr).toBe(0);
    const out = JSON.parse(explained.stdout) as { method: string; auc?: number; maxCompletenessError: number; predictions: Prediction[] };
    expect(out.method).toBe('integrated-gradients');
    expect(out.auc).toBeUndefined();
    expect(out.maxCompletenessError).toBeLessThanOrEqual(0.01);
    for (const p of out.predictions) {
      expect(p.contributions).toHaveLength(3);
      expect(p.completenessError).toBeLessThanOrEqual(0.01);
    }
    const dm = denseModel(model.mlp.spec, model.mlp.weights);
    const enc = encodeTable(rows, exp.schema);
    const noExplain = JSON.parse(plain.stdout) as { predictions: Prediction[] };
    noExplain.predictions.forEach((p, i) => {
      expect(p.logit).toBeCloseTo(forwardLogit(dm, enc.x, i * enc.d), 5);
      expect(p.contributions).toBeUndefined();
    });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/40 row\(s\) scored .* AUC \d\.\d{4}/);
    expect(table.stdout).toMatch(/^\s+1\s+0\.\d{4}\s+-?\d+\.\d{3}\s+\w+=\S+ [+-]\d\.\d{3}, \w+=/m);
  });

  it('refuses a model file whose weights do not match their SHA-256, and other bad input, with one clear line', async () => {
    // Arrange: flip one weight in the stored base64
    const doc = JSON.parse(await readFile(model.lr.file, 'utf8'));
    const w = Buffer.from(doc.weights, 'base64');
    w[5] ^= 0x40;
    await writeFile(path.join(dir, 'tampered.json'), JSON.stringify({ ...doc, weights: w.toString('base64') }));
    await writeFile(path.join(dir, 'other.json'), JSON.stringify({ ...doc, format: 'fedmart-model/9' }));
    // Act
    const results = await Promise.all([
      run(['predict', '--model', path.join(dir, 'tampered.json'), '--csv', path.join(dir, 'rows.csv'), '--sep', ';']),
      run(['predict', '--model', path.join(dir, 'other.json'), '--csv', path.join(dir, 'rows.csv'), '--sep', ';']),
      run(['predict', '--model', path.join(dir, 'nope.json'), '--csv', path.join(dir, 'rows.csv')]),
      run(['predict', '--model', model.lr.file]),
      run(['predict', '--model', 'f_abc/latest', '--csv', path.join(dir, 'rows.csv')], { FEDMART_TOKEN: '', FEDMART_OPERATOR_TOKEN: '' }),
      run(['predict', '--help']),
    ]);
    // Assert
    const expected = [/weights hash to [0-9a-f]{64} but the file records [0-9a-f]{64}.*refusing/, /format "fedmart-model\/9", expected "fedmart-model\/1"/, /cannot read .*nope\.json: no such file/, /missing --csv/, /needs a token: pass --token or set FEDMART_TOKEN/];
    expected.forEach((re, i) => {
      expect(results[i]!.code).not.toBe(0);
      expect(results[i]!.stderr).toMatch(re);
      expect(results[i]!.stderr.trim().split('\n')).toHaveLength(1);
    });
    expect(results[5]!.stdout).toMatch(/Example:\n\s+fedmart predict --model/);
    await expect(readModelFile(path.join(dir, 'tampered.json'))).rejects.toMatchObject({ code: 'DATA_ERROR' });
  });

  it('scores with a federation\'s published model from a real coordinator, using its dataSchema', async () => {
    // Arrange: a federation with the agreed schema, 1 round by 2 real partner agents
    await using fx = await startFixture();
    const spec: ModelSpec = { kind: 'mlp', inputDim: exp.d, hidden: [] };
    const fed = await fx.createFederation({ model: spec, dataSchema: exp.schema, minClients: 2 });
    const bare = await fx.createFederation({ model: spec, minClients: 2 }, 'no schema');
    const agents = [];
    for (const p of exp.partners.slice(0, 2)) agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false }));
    await Promise.all(agents.map((a) => a.ready));
    await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    const partnerToken = await fx.enroll(fed, 'brand-reader');
    // Act
    const common = ['--csv', path.join(dir, 'rows.csv'), '--sep', ';', '--coordinator', fx.url];
    const [latest, v0, noSchema] = await Promise.all([
      run(['predict', '--model', `${fed}/latest`, ...common, '--explain', '--top', '100', '--json'], { FEDMART_TOKEN: partnerToken }),
      run(['predict', '--model', `${fed}/0`, ...common, '--token', fx.coord.operatorToken, '--json']),
      run(['predict', '--model', `${bare}/latest`, ...common, '--token', fx.coord.operatorToken]),
    ]);
    await Promise.all(agents.map((a) => a.close()));
    // Assert
    expect(latest.code, latest.stderr).toBe(0);
    const out = JSON.parse(latest.stdout) as { model: { federation: string; version: number; sha256: string }; baseline: string; predictions: Prediction[] };
    expect(out.model).toMatchObject({ federation: fed, version: 1, sha256: fx.coord.store.currentModel(fed).row.sha256 });
    expect(out.baseline).toBe('zero-categories'); // the coordinator stores no category base rates
    const current = denseModel(spec, fx.coord.store.currentModel(fed).weights);
    const enc = encodeTable(rows, exp.schema);
    out.predictions.forEach((p, i) => {
      expect(p.logit).toBeCloseTo(forwardLogit(current, enc.x, i * enc.d), 5);
      const sum = p.contributions!.reduce((s, c) => s + c.contribution, 0);
      expect(Math.abs(sum + p.baselineLogit! - p.logit)).toBeLessThan(1e-4);
    });
    expect(v0.code, v0.stderr).toBe(0);
    const initial = denseModel(spec, initWeights(spec, 42));
    (JSON.parse(v0.stdout) as { predictions: Prediction[] }).predictions.forEach((p, i) => expect(p.logit).toBeCloseTo(forwardLogit(initial, enc.x, i * enc.d), 5));
    expect(noSchema.code).not.toBe(0);
    expect(noSchema.stderr).toMatch(/federation f_\S+ has no dataSchema.*--schema/);
  });
});
