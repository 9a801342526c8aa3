/**
 * Embedding DP at the feature holder (shared/src/vertical-embedding-dp.ts): the feature holder clips every
 * embedding row it releases to the pinned norm and noises it whatever the label holder's setup says, and it
 * refuses a label holder that asks for more training passes than the pinned terms account for.
 */
import { describe, expect, it } from 'vitest';
import { createSeededRng } from '@fedmart/shared/data/rng';
import { parseVerticalMessage, readVector, type VerticalWireMessage } from '@fedmart/shared/protocol-vertical';
import { createInMemoryVerticalHub, FeatureHolder, LabelHolder, type LabelledRows, type PartyRows } from './index.ts';

function parties(n: number) {
  const rng = createSeededRng(3);
  const ids = Array.from({ length: n }, (_, i) => `c${i}`);
  const lh: LabelledRows = { ids, x: new Float32Array(n * 2).map(() => rng.nextFloat()), d: 2, y: Float32Array.from(ids, () => (rng.nextFloat() < 0.5 ? 1 : 0)) };
  // Large features: unclipped embeddings would have norms far above the clip.
  const fh: PartyRows = { ids, x: new Float32Array(n * 3).map(() => 50 + 50 * rng.nextFloat()), d: 3 };
  return { lh, fh };
}

async function run(epochs: number, maxTrainReleases: number, noiseMultiplier: number) {
  const wire: VerticalWireMessage[] = [];
  const hub = createInMemoryVerticalHub({ session: 'dp', tap: (w) => wire.push(w) });
  const { lh: lhRows, fh: fhRows } = parties(200);
  const lh = new LabelHolder(hub.channel('platform'), { featureHolders: ['brand'], sets: { train: lhRows }, session: 'dp' });
  const fh = new FeatureHolder(hub.channel('brand'), { labelHolder: 'platform', sets: { train: fhRows }, session: 'dp', embeddingDp: { noiseMultiplier, clip: 1, gradientClip: 1, delta: 1e-5, maxTrainReleases } });
  await Promise.all([lh.align('train'), fh.align('train')]);
  const serving = fh.serve().catch((e: Error) => {
    hub.close(e);
    throw e;
  });
  const training = lh.trainSplitNn({ epochs, seed: 1, batchSize: 50, noiseStd: 0 }).then(() => lh.finish());
  const [s, t] = await Promise.allSettled([serving, training]);
  const embeddings = wire.map((w) => parseVerticalMessage(w)).filter((m) => m.type === 'snn.embedding').map((m) => readVector(m.parts[0]!, 'f32'));
  return { s, t, embeddings };
}

describe('feature holder under embedding DP', () => {
  it('releases clipped rows (plus noise) and trains within the pinned number of passes', async () => {
    const { s, t, embeddings } = await run(2, 2, 0.05);
    expect(s.status, s.status === 'rejected' ? String(s.reason) : '').toBe('fulfilled');
    expect(t.status).toBe('fulfilled');
    expect(embeddings).toHaveLength(8); // 2 epochs × 4 batches
    // Noise std 0.05·2·1 = 0.1 per coordinate over 8 dims: a clipped row's norm stays well below 1 + 6·0.1·√8.
    let maxNorm = 0;
    for (const e of embeddings) for (let o = 0; o < e.length; o += 8) maxNorm = Math.max(maxNorm, Math.hypot(...e.subarray(o, o + 8)));
    expect(maxNorm).toBeLessThan(1 + 6 * 0.1 * Math.sqrt(8));
    expect(maxNorm).toBeGreaterThan(0.5);
  });

  it('refuses a label holder that asks for more epochs than the terms account for', async () => {
    const { s, embeddings } = await run(3, 2, 1);
    expect(s.status).toBe('rejected');
    expect(String((s as PromiseRejectedResult).reason)).toMatch(/be release 3 of a row of set "train", more than the 2 release\(s\) the federation's DP terms account for/);
    expect(embeddings).toHaveLength(8);
  });
});
