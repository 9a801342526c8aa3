import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initWeights, type ModelSpec } from '@fedmart/shared/model';
import { encodeFloat32 } from '@fedmart/shared/codec';
import type { DatasetSchema } from '@fedmart/shared/data/index';
import { readModelFile, writeModelFile } from './model-file.ts';

const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-model-file-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const schema: DatasetSchema = { label: 'y', positive: ['yes'], features: [{ name: 'age', type: 'numeric', mean: 40, std: 10 }, { name: 'contact', type: 'categorical', categories: ['cellular', 'unknown'] }] };
const spec: ModelSpec = { kind: 'mlp', inputDim: 3, hidden: [4] };

describe('fedmart-model/1 files', () => {
  it('round-trip spec, schema, weights (bit for bit), baseline and metadata, hashing the weights as the coordinator does', async () => {
    // Arrange
    const weights = initWeights(spec, 5);
    const file = path.join(dir, 'sub', 'm.json');
    // Act
    const sha = await writeModelFile(file, { spec, weights, dataSchema: schema, baseline: [0, 0.7, 0.3], metadata: { federation: 'f_1', version: 3, metrics: { auc: 0.78 } } });
    const back = await readModelFile(file);
    // Assert
    expect(sha).toBe(createHash('sha256').update(encodeFloat32(weights)).digest('hex'));
    expect(back.sha256).toBe(sha);
    expect(back.weights).toEqual(weights);
    expect(back.spec).toEqual(spec);
    expect(back.dataSchema).toEqual(schema);
    expect(back.baseline).toEqual([0, 0.7, 0.3]);
    expect(back.metadata).toMatchObject({ federation: 'f_1', version: 3, metrics: { auc: 0.78 } });
    expect(JSON.parse(await readFile(file, 'utf8')).format).toBe('fedmart-model/1');
  });

  it('refuse parts that do not fit together, on write and on read', async () => {
    const file = path.join(dir, 'bad.json');
    await expect(writeModelFile(file, { spec, weights: new Float32Array(3), dataSchema: schema })).rejects.toThrow(/needs 21 weights, the file has 3/);
    await expect(writeModelFile(file, { spec: { ...spec, inputDim: 4 }, weights: initWeights({ ...spec, inputDim: 4 }, 1), dataSchema: schema })).rejects.toThrow(/encodes 3 columns but the model takes 4/);
    const good = path.join(dir, 'good.json');
    await writeModelFile(good, { spec, weights: initWeights(spec, 1), dataSchema: schema });
    const doc = JSON.parse(await readFile(good, 'utf8'));
    await writeFile(file, JSON.stringify({ ...doc, spec: { ...spec, hidden: [5] } }));
    await expect(readModelFile(file)).rejects.toThrow(/needs 26 weights \(104 bytes\), the file holds 84 bytes/);
    await writeFile(file, JSON.stringify({ ...doc, sha256: 'x' }));
    await expect(readModelFile(file)).rejects.toThrow(/sha256: sha256 must be 64 lowercase hex digits/);
    await writeFile(file, '{ not json');
    await expect(readModelFile(file)).rejects.toThrow(/not valid JSON/);
  });
});
