/**
 * Issue 8, item 7 — vertical training leaks. A malicious feature holder
 * plays the vertical LR protocol against the real label holder (real CKKS
 * through node-seal, real PSI, the in-memory hub that passes every message
 * through its wire form) and tries the review's two attacks:
 *
 * (a) solve the plain gradient X_kᵀd of a 12-row batch, with 16 columns of
 *     its own, for the residuals d = σ(z) − y, whose signs are the labels;
 * (b) send the label holder's encrypted residuals back as its "encrypted
 *     gradient" — as received, re-levelled to look like a gradient, with a
 *     forged scale, or asking for every slot — so that the label holder
 *     decrypts the residuals and hands them over.
 *
 * The feature holder's columns are independent of the labels (the labels
 * depend on the label holder's columns only), so anything it learns about
 * them comes from the protocol. What remains by design — the declared
 * width's worth of linear functions of the residuals per step — is shown
 * too, and bounded with label DP (`shared/src/vertical-leakage.ts`).
 */
import { describe, expect, it } from 'vitest';
import { createSeededRng } from '@fedmart/shared/data/rng';
import { FedmartError } from '@fedmart/shared/errors';
import { buildSealCkksRuntime, resolveCkksParams, type CkksParams } from '@fedmart/shared/he/ckks-params';
import { createVerticalCkksEvaluator, uniformMask, type VerticalCkksEvaluator } from '@fedmart/shared/he/ckks-ops';
import { parseVerticalMessage, readVector, vectorBytes, type VerticalMessage, type VerticalWireMessage } from '@fedmart/shared/protocol-vertical';
import { minimumVerticalBatch } from '@fedmart/shared/vertical-leakage';
import { createInMemoryVerticalHub, FeatureHolder, LabelHolder, type LabelledRows, type PartyRows, type VerticalChannel } from '@fedmart/client-node/vertical/index';

const FH_WIDTH = 16;

/** n customers; the label depends on the label holder's 2 columns only; the feature holder has FH_WIDTH label-free columns. */
function makeParties(n: number, seed: number) {
  const rng = createSeededRng(seed);
  const u = () => rng.nextFloat() * 2 - 1;
  const ids = Array.from({ length: n }, (_, i) => `c${i}-${seed}`);
  const xa = Float32Array.from({ length: n * 2 }, u);
  const xb = Float32Array.from({ length: n * FH_WIDTH }, u);
  const y = Float32Array.from({ length: n }, (_, i) => (rng.nextFloat() < 1 / (1 + Math.exp(-(2 * xa[2 * i]! - 2 * xa[2 * i + 1]!))) ? 1 : 0));
  const lh: LabelledRows = { ids, x: xa, d: 2, y };
  const fh: PartyRows = { ids, x: xb, d: FH_WIDTH };
  return { lh, fh, label: new Map(ids.map((id, i) => [id, y[i]!])) };
}

/** What the attacker holds after one training step. */
interface View {
  readonly step: number;
  /** The feature holder's own row indices of the batch, in batch order. */
  readonly rows: Int32Array;
  /** The label holder's reply with the attacker's mask removed (the unnormalised "gradient"). */
  readonly values: Float64Array;
}

/** How the attacker answers a residual message: the ciphertext to send, the slots it asks for, the mask to remove. */
type Craft = (c: { res: VerticalMessage<'vlr.residual'>; x: Float64Array; m: number; evaluator: VerticalCkksEvaluator; rt: Awaited<ReturnType<typeof buildSealCkksRuntime>> }) => { ct: Uint8Array; dims: number; mask: Float64Array };

/** A feature holder that follows the message flow but answers residuals with `craft`, and keeps every reply. */
async function serveMaliciously(ch: VerticalChannel, own: PartyRows, aligned: Int32Array, declare: number, craft: Craft): Promise<{ views: View[]; refusal?: string }> {
  const views: View[] = [];
  let evaluator: VerticalCkksEvaluator | undefined;
  let rt: Awaited<ReturnType<typeof buildSealCkksRuntime>> | undefined;
  try {
    for (;;) {
      const msg = await ch.receiveAny('platform');
      if (msg.type === 'done') return { views };
      if (msg.type === 'vlr.setup') {
        const setup = msg as VerticalMessage<'vlr.setup'>;
        evaluator = await createVerticalCkksEvaluator(setup.body.params, setup.parts[0]!);
        rt = await buildSealCkksRuntime(resolveCkksParams(setup.body.params as CkksParams));
        await ch.send('platform', 'vlr.declare', { dims: declare });
        continue;
      }
      const batch = msg as VerticalMessage<'batch'>;
      const m = batch.body.rows;
      const rows = Int32Array.from(readVector(batch.parts[0]!, 'u32'), (i) => aligned[i]!);
      await ch.send('platform', 'vlr.partial', { step: batch.body.step, rows: m }, [vectorBytes(new Float64Array(m))]);
      if (!batch.body.train) continue;
      const res = await ch.receive('platform', 'vlr.residual');
      const x = new Float64Array(m * own.d);
      rows.forEach((r, i) => x.set(own.x.subarray(r * own.d, (r + 1) * own.d), i * own.d));
      const { ct, dims, mask } = craft({ res, x, m, evaluator: evaluator!, rt: rt! });
      await ch.send('platform', 'vlr.maskedGradient', { step: batch.body.step, dims }, [ct]);
      const dec = await ch.receive('platform', 'vlr.decrypted');
      const got = readVector(dec.parts[0]!, 'f64');
      views.push({ step: batch.body.step, rows, values: got.map((v, j) => v - mask[j]!) });
    }
  } catch (err) {
    if (err instanceof FedmartError) return { views, refusal: err.message };
    throw err;
  } finally {
    evaluator?.dispose();
    rt?.context.delete();
  }
}

/** Run vertical LR between the honest label holder and the malicious feature holder. */
async function attack(o: { n: number; batchSize: number; epochs: number; declare?: number; craft: Craft; labelDp?: { epsilon: number; delta: number }; floodStd?: number }) {
  const p = makeParties(o.n, 3);
  const wire: VerticalWireMessage[] = [];
  const hub = createInMemoryVerticalHub({ session: 'adv', tap: (w) => wire.push(w) });
  const lh = new LabelHolder(hub.channel('platform'), { featureHolders: ['brand'], sets: { train: p.lh }, session: 'adv' });
  const fh = new FeatureHolder(hub.channel('brand'), { labelHolder: 'platform', sets: { train: p.fh }, session: 'adv' });
  const [, b] = await Promise.all([lh.align('train'), fh.align('train')]);
  const serving = serveMaliciously(hub.channel('brand'), p.fh, b.rows!, o.declare ?? FH_WIDTH, o.craft);
  let lhError: FedmartError | undefined;
  try {
    await lh.trainLr({ epochs: o.epochs, batchSize: o.batchSize, learningRate: 0.1, seed: 9, ...(o.labelDp ? { labelDp: o.labelDp } : {}), ...(o.floodStd !== undefined ? { floodStd: o.floodStd } : {}) });
    await lh.finish();
  } catch (err) {
    lhError = err as FedmartError;
    await lh.abort(err);
  }
  const served = await serving;
  const sent = wire.map((w) => parseVerticalMessage(w));
  const labelOf = (row: number) => p.label.get(p.fh.ids[row]!)!;
  const ownRows = (rows: Int32Array): Float64Array => {
    const out = new Float64Array(rows.length * FH_WIDTH);
    rows.forEach((r, i) => out.set(p.fh.x.subarray(r * FH_WIDTH, (r + 1) * FH_WIDTH), i * FH_WIDTH));
    return out;
  };
  return { ...served, lhError, sent, labelOf, ownRows };
}

/** The honest computation: [[X_kᵀd + r]] on the feature holder's own columns. */
const honestGradient: Craft = ({ res, x, m, evaluator }) => {
  const mask = uniformMask(evaluator.slotCount);
  return { ct: evaluator.maskedColumnSums(res.parts, x, m, FH_WIDTH, mask), dims: FH_WIDTH, mask };
};

/** [[d]] · 1 then one rescale: the level and scale of an honest gradient, with the residuals in its slots (optionally a forged scale). */
const reLevelled = (o: { scale?: number; dims: (m: number) => number }): Craft => ({ res, m, rt }) => {
  const { seal, context } = rt;
  const ct = seal.CipherText();
  const pt = seal.PlainText();
  const encoder = seal.CKKSEncoder(context);
  const ev = seal.Evaluator(context);
  try {
    ct.loadArray(context, res.parts[0]!);
    encoder.encode(new Float64Array(rt.slotCount).fill(1), rt.scale, pt);
    ev.multiplyPlain(ct, pt, ct);
    ev.rescaleToNext(ct, ct);
    if (o.scale !== undefined) ct.setScale(o.scale);
    return { ct: ct.saveArray(rt.compression as never), dims: o.dims(m), mask: new Float64Array(o.dims(m)) };
  } finally {
    for (const obj of [ct, pt, encoder, ev]) obj.delete();
  }
};

/** Least-squares residuals from g = Xᵀd (X: m × k row-major): exact when m ≤ k, minimum-norm otherwise. */
function solveResiduals(x: Float64Array, m: number, k: number, g: Float64Array): Float64Array {
  if (m <= k) {
    // (X Xᵀ) d = X g
    const a = Array.from({ length: m }, (_, i) => Array.from({ length: m }, (_, j) => dot(x, i, j, k)));
    const rhs = Array.from({ length: m }, (_, i) => { let s = 0; for (let c = 0; c < k; c++) s += x[i * k + c]! * g[c]!; return s; });
    return Float64Array.from(gauss(a, rhs));
  }
  // d = X (XᵀX)⁻¹ g
  const a = Array.from({ length: k }, (_, c1) => Array.from({ length: k }, (_, c2) => { let s = 0; for (let i = 0; i < m; i++) s += x[i * k + c1]! * x[i * k + c2]!; return s; }));
  const beta = gauss(a, Array.from(g));
  return Float64Array.from({ length: m }, (_, i) => { let s = 0; for (let c = 0; c < k; c++) s += x[i * k + c]! * beta[c]!; return s; });
}
function dot(x: Float64Array, i: number, j: number, k: number): number {
  let s = 0;
  for (let c = 0; c < k; c++) s += x[i * k + c]! * x[j * k + c]!;
  return s;
}
function gauss(a: number[][], b: number[]): number[] {
  const n = b.length;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    [b[c], b[p]] = [b[p]!, b[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k < n; k++) a[r]![k]! -= f * a[c]![k]!;
      b[r]! -= f * b[c]!;
    }
  }
  const out = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let k = r + 1; k < n; k++) s -= a[r]![k]! * out[k]!;
    out[r] = s / a[r]![r]!;
  }
  return out;
}

/** Share of rows whose label the attacker gets right by the sign of its residual estimate (d < 0 ⇔ y = 1). */
function labelAccuracy(guesses: { value: number; row: number }[], labelOf: (row: number) => number): number {
  let right = 0;
  for (const g of guesses) if ((g.value < 0 ? 1 : 0) === labelOf(g.row)) right++;
  return right / guesses.length;
}

describe('adversary: vertical training leaks (issue 8, item 7)', () => {
  it('(a) a feature holder cannot solve a batch for its residuals: a 12-row batch is refused, and at the minimum batch the system stays underdetermined', async () => {
    // Arrange: the attacker's solver works — on a 12-row batch with its 16 columns, X_kᵀd pins d down exactly
    const rng = createSeededRng(1);
    const x12 = Float64Array.from({ length: 12 * FH_WIDTH }, () => rng.nextFloat() * 2 - 1);
    const d12 = Float64Array.from({ length: 12 }, () => (rng.nextFloat() < 0.5 ? 0.5 : -0.5));
    const g12 = Float64Array.from({ length: FH_WIDTH }, (_, c) => { let s = 0; for (let i = 0; i < 12; i++) s += x12[i * FH_WIDTH + c]! * d12[i]!; return s; });
    const solved = solveResiduals(x12, 12, FH_WIDTH, g12);
    for (let i = 0; i < 12; i++) expect(Math.abs(solved[i]! - d12[i]!)).toBeLessThan(1e-9);

    // Act 1: the label holder is configured with the review's 12-row batches
    const small = await attack({ n: 512, batchSize: 12, epochs: 2, craft: honestGradient });

    // Assert 1: refused before any residual left the label holder; the attacker holds nothing
    expect(small.lhError?.code).toBe('CONFIG_ERROR');
    expect(small.lhError?.message).toMatch(/batch size 12 is below the minimum 128 = max\(64, 4 × 2 epochs × widest feature holder 16\)/);
    expect(small.refusal).toMatch(/batch size 12 is below the minimum/);
    expect(small.sent.filter((m) => m.type === 'vlr.residual')).toHaveLength(0);
    expect(small.views).toHaveLength(0);

    // Act 2: the smallest batch allowed, max(64, 4·E·d_max) = 128 rows, on 4·128 + 100 rows (the 100-row remainder must not form a batch)
    const min = minimumVerticalBatch(2, [FH_WIDTH]);
    const atMin = await attack({ n: 4 * min + 100, batchSize: min, epochs: 2, craft: honestGradient });

    // Assert 2: training ran; every training batch has at least the minimum (the 100-row remainder joined a batch)
    expect(atMin.lhError).toBeUndefined();
    const batches = atMin.sent.filter((m) => m.type === 'batch') as VerticalMessage<'batch'>[];
    expect(batches).toHaveLength(8);
    for (const b of batches) expect(b.body.rows).toBeGreaterThanOrEqual(min);
    expect(batches.reduce((s, b) => s + b.body.rows, 0)).toBe(2 * (4 * min + 100));

    // Assert 3: the attacker's least-squares residuals are far from the truth. At step 0 the model is zero, so d = ½ − y exactly:
    // the minimum-norm solution keeps only the 16-dimensional projection (≈ 16/128 of ‖d‖²), so the relative error stays near 1.
    const first = atMin.views[0]!;
    const est = solveResiduals(atMin.ownRows(first.rows), first.rows.length, FH_WIDTH, first.values);
    const truth = Float64Array.from(first.rows, (r) => 0.5 - atMin.labelOf(r));
    expect(relativeError(est, truth)).toBeGreaterThan(0.8);
    // and across every step the sign of the estimate is a poor label guess (vs 100 % on 12-row batches)
    const guesses = atMin.views.flatMap((v) => {
      const e = solveResiduals(atMin.ownRows(v.rows), v.rows.length, FH_WIDTH, v.values);
      return Array.from(v.rows, (row, i) => ({ row, value: e[i]! }));
    });
    expect(labelAccuracy(guesses, atMin.labelOf)).toBeLessThan(0.7);
  });

  it('(b) echoing the encrypted residuals back as a "gradient" — as received, re-scaled, or asking for every slot — is refused and decrypts nothing', async () => {
    // Arrange: the three forgeries, each against a fresh label holder
    const asReceived: Craft = ({ res }) => ({ ct: res.parts[0]!, dims: FH_WIDTH, mask: new Float64Array(FH_WIDTH) });
    const cases = [
      { name: 'the fresh residual ciphertext', craft: asReceived, refusal: /got 2 parts, NTT form, 3 prime\(s\) \(another level\).*refusing to decrypt it/ },
      { name: 'a re-levelled echo declaring a smaller scale', craft: reLevelled({ scale: 2 ** 20, dims: () => FH_WIDTH }), refusal: /2 prime\(s\), scale 2\^20.0000; refusing to decrypt it/ },
      { name: 'a re-levelled echo asking for the whole batch', craft: reLevelled({ dims: (m) => m }), refusal: /asked for 128 decrypted values at step 0 but declared a width of 16/ },
    ];
    for (const c of cases) {
      // Act
      const r = await attack({ n: 256, batchSize: 128, epochs: 2, craft: c.craft });
      // Assert: the label holder stops with a clear error, nothing is decrypted, the attacker holds no value
      expect(r.lhError?.code, c.name).toBe('INVALID_MESSAGE');
      expect(r.lhError?.message, c.name).toMatch(c.refusal);
      expect(r.refusal, c.name).toMatch(/INVALID_MESSAGE/);
      expect(r.sent.filter((m) => m.type === 'vlr.decrypted'), c.name).toHaveLength(0);
      expect(r.views, c.name).toHaveLength(0);
    }
  });

  it('(b) an echo shaped like an honest gradient gets back only the declared width per step, and with label DP those values are noise', async () => {
    // Arrange: the echo a label holder cannot tell from an honest gradient — it equals X_kᵀd for indicator "features" of the first 16 rows
    const narrowEcho = reLevelled({ dims: () => FH_WIDTH });
    const guessesOf = (views: View[]) => views.flatMap((v) => Array.from(v.values, (value, i) => ({ value, row: v.rows[i]! })));

    // Act
    const plain = await attack({ n: 1024, batchSize: 256, epochs: 4, craft: narrowEcho });
    const dp = await attack({ n: 1024, batchSize: 256, epochs: 4, craft: narrowEcho, labelDp: { epsilon: 1, delta: 1e-5 } });

    // Assert: each reply holds exactly the declared 16 values — never the other 240 residuals of the 256-row batch
    for (const r of [plain, dp]) {
      expect(r.lhError).toBeUndefined();
      expect(r.views).toHaveLength(16);
      for (const v of r.views) expect(v.values).toHaveLength(FH_WIDTH);
    }
    // Without noise those 16 residuals give their labels (the leakage hetero-LR has for any claimed features, bounded by the width) …
    expect(labelAccuracy(guessesOf(plain.views), plain.labelOf)).toBe(1);
    // … with (1, 1e-5) label DP no attacker guesses a label with probability above e^ε/(1+e^ε) + δ ≈ 0.731; the sign guess is near chance
    const acc = labelAccuracy(guessesOf(dp.views), dp.labelOf);
    expect(acc).toBeLessThan(Math.E / (1 + Math.E));
  });

  it('(b) no decrypted residual is ever exactly known, so amplified echoes cannot read the encryption error (key hints)', async () => {
    // Arrange: the narrow echo of step 0 with the label holder's flooding switched off, so the test sees the message itself
    const r = await attack({ n: 256, batchSize: 128, epochs: 2, craft: reLevelled({ dims: () => FH_WIDTH }), floodStd: 0 });
    // Act: how far step 0's residuals are from ½ − y, the value they would have with zero initial weights
    const first = r.views[0]!;
    const gaps = Array.from(first.values, (v, i) => Math.abs(v - (0.5 - r.labelOf(first.rows[i]!)))).sort((a, b) => a - b);
    // Assert: a secret offset far above the CKKS error of the echo (≈ 1e-9) and far below anything that moves training
    expect(gaps[Math.floor(gaps.length / 2)]!).toBeGreaterThan(1e-7);
    expect(gaps.at(-1)!).toBeLessThan(1e-3);
  });
});

function relativeError(est: Float64Array, truth: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < truth.length; i++) {
    num += (est[i]! - truth[i]!) ** 2;
    den += truth[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
