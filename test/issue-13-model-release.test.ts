/**
 * Issue 13, item 3: model release and the portable export. A real coordinator (port 0, SQLite), real
 * partner agents on the bank data: a round's version is a candidate that scenarios cannot read;
 * publishing needs an operator's request and a compliance officer's approval (two different people),
 * every step audited; rollback re-publishes an earlier release; `fedmart model export` writes the
 * TF.js layers format, which loads back in the registry and in plain TensorFlow.js with the same
 * predictions within 1e-6.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ExportModelRegistry, HttpModelRegistry } from '@fedmart/scenarios/model-registry';
import { denseModel, forwardLogits, sigmoid } from '@fedmart/shared/explain/mlp';
import type { ModelSpec } from '@fedmart/shared/model';
import { ApiClient } from '../cli/api-client.ts';
import { modelCommand, readModelExport } from '../cli/model.ts';
import { bankPartners, connectBankPartners, modelFor, startFixture } from './helpers.ts';

describe('issue 13: model release', () => {
  it('needs two people to publish, audits each step, rolls back, and exports a model plain TF.js loads with the same predictions', { timeout: 600_000 }, async () => {
    await using fx = await startFixture();
    const exp = await bankPartners();
    const fed = await fx.createFederation({ model: modelFor(exp), release: { requiresApproval: true }, timeouts: { selectingMs: 20_000, trainingMs: 120_000, evaluatingMs: 60_000 } } as never);
    const agents = await connectBankPartners(fx, fed);
    const [round] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(round!.phase).toBe('committed');
    await Promise.all(agents.map((a) => a.close()));
    const base = `/api/v1/federations/${fed}/models`;
    const registry = new HttpModelRegistry(fx.url, fx.coord.operatorToken, fetch);

    // A fresh version is a candidate: scenarios cannot read it.
    const { models } = await fx.api.get<{ models: { version: number; releaseStatus: string }[] }>(base);
    expect(models.map((m) => [m.version, m.releaseStatus])).toEqual([[0, 'candidate'], [1, 'candidate']]);
    await expect(registry.load(fed, 'latest')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(registry.load(fed, 1)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/candidate, not published/) });

    const token = async (subject: string) => (await fx.api.post<{ token: string }>('/api/v1/tokens', { subject, role: 'compliance' })).token;
    const cora = new ApiClient(fx.url, await token('cora'));
    const sameOperator = new ApiClient(fx.url, await token('operator'));

    // The operator asks; the operator cannot approve; the same person with a compliance token cannot either.
    expect(await fx.api.post(`${base}/1/publish`)).toMatchObject({ version: 1, status: 'candidate', awaiting: 'approval' });
    await expect(fx.api.post(`${base}/1/approve`)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(sameOperator.post(`${base}/1/approve`)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/another person/) });
    expect(await cora.post(`${base}/1/approve`)).toMatchObject({ version: 1, status: 'published' });
    expect((await registry.load(fed, 'latest')).version).toBe(1);

    // Approval first, then the request: version 0 is published and version 1 retired.
    expect(await cora.post(`${base}/0/approve`)).toMatchObject({ status: 'approved', awaiting: 'publish-request' });
    expect(await fx.api.post(`${base}/0/publish`)).toMatchObject({ status: 'published' });
    expect((await registry.load(fed, 'latest')).version).toBe(0);
    // Rollback re-publishes the earlier release without a new approval.
    expect(await fx.api.post(`${base}/rollback`, {})).toMatchObject({ version: 1, status: 'published' });
    expect((await registry.load(fed, 'latest')).version).toBe(1);
    await expect(fx.api.post(`${base}/1/publish`)).rejects.toMatchObject({ code: 'CONFLICT' });

    const audit = fx.coord.store.auditLog.entries().filter((e) => e.action.startsWith('model.')).map((e) => [e.actor, e.action]);
    expect(audit).toEqual([
      ['operator', 'model.publish-requested'], ['cora', 'model.approved'], ['cora', 'model.published'],
      ['cora', 'model.approved'], ['operator', 'model.published'], ['operator', 'model.rolled-back'],
    ]);
    expect(fx.coord.store.verifyAudit().ok).toBe(true);

    // Export the published version and load it three ways.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fedmart-export-'));
    try {
      expect(await modelCommand(['export', '--federation', fed, '--out', dir, '--coordinator', fx.url, '--token', fx.coord.operatorToken, '--json'])).toBe(0);
      const files = await readModelExport(dir);
      expect(files.manifest).toMatchObject({ format: 'fedmart-model-export/1', version: 1, lineage: { roundId: round!.roundId, publishRequestedBy: 'operator', approvedBy: 'cora', releaseStatus: 'published' } });
      const fromExport = await new ExportModelRegistry(files).load(fed, 'latest');
      const fromCoordinator = await registry.load(fed, 'latest');
      expect(fromExport.sha256).toBe(fromCoordinator.sha256);

      // Plain TensorFlow.js: tf.loadLayersModel over a small IO handler reading the two files.
      const handler: tf.io.IOHandler = {
        load: async () => {
          const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
          const bin = await readFile(path.join(dir, 'weights.bin'));
          return { modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights), weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) };
        },
      };
      const model = await tf.loadLayersModel(handler);
      const x = exp.test.x;
      const n = exp.test.n;
      const tfP = (model.predict(tf.tensor2d(x, [n, exp.d])) as tf.Tensor).dataSync();
      const ours = forwardLogits(denseModel(fromExport.spec as ModelSpec, fromExport.weights), x, n);
      let maxDiff = 0;
      for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(tfP[i]! - sigmoid(ours[i]!)));
      expect(n).toBeGreaterThan(500);
      expect(maxDiff).toBeLessThan(1e-6);
      console.log(`model export round trip: ${n} test rows, max |p_tfjs − p_registry| = ${maxDiff.toExponential(2)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
