/**
 * One party of a vertical federation between real partners (issue 16), as
 * `fedmart partner` runs it when the federation's config has a vertical
 * spec: checks the local file against the party's declared columns, encodes
 * its own columns with statistics of its own training rows (nothing about
 * another party's columns is needed), holds a control connection to the
 * coordinator (`coordinator/src/vertical-rounds.ts`) and, per round, aligns
 * by PSI and trains over a fresh relay session, then keeps its own model
 * part on its disk. Per scoring request it computes its part for the asked
 * IDs (a feature holder sends partial logits or embeddings, sealed, to the
 * label holder; the label holder combines them and answers the coordinator).
 *
 * The held-out split: a customer is a test customer iff the first 32 bits of
 * SHA-256(federation id ‖ 0 ‖ normalised ID) / 2^32 < testFraction, so every
 * party holds out the same customers without exchanging anything.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { io, type Socket } from 'socket.io-client';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import { encodeTable, type DatasetSchema, type Table } from '@fedmart/shared/data/index';
import { rocAuc } from '@fedmart/shared/metrics';
import { readVector, vectorBytes } from '@fedmart/shared/protocol-vertical';
import { VERTICAL_NAMESPACE, type VerticalPredictResult, type VerticalStatus } from '@fedmart/shared/protocol-vertical-relay';
import { normaliseId, verticalParties, type VerticalSpec } from '@fedmart/shared/vertical-spec';
import { clipRowsInPlace, embeddingDpCharge, embeddingNoiseStd } from '@fedmart/shared/vertical-embedding-dp';
import { gaussianNoise } from '@fedmart/shared/dp/gaussian';
import type { Ack } from '@fedmart/shared/protocol';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { psiCardinality } from '@fedmart/client-node/vertical/align';
import { connectVerticalChannel, FeatureHolder, LabelHolder, sigmoid, type LabelledRows, type PartyRows, type SocketVerticalChannel } from '@fedmart/client-node/vertical/index';
import { DenseStack, gatherRows, matVec } from '@fedmart/client-node/vertical/models';
import type { FeatureHolderPart } from '@fedmart/client-node/vertical/feature-holder';
import type { LabelHolderPart } from '@fedmart/client-node/vertical/label-holder';
import { partySchema } from './vertical.ts';
import { X25519Pool } from './x25519-pool.ts';
import { chargePartyRelease, partyLedgerPath, scoringSteps } from './vertical-dp-ledger.ts';

/** A party's encoded rows: every row (for scoring), and the train / test sets by the ID hash. */
export interface VerticalPartyData {
  readonly party: string;
  readonly role: 'label-holder' | 'feature-holder';
  readonly columns: readonly string[];
  readonly schema: DatasetSchema;
  readonly all: LabelledRows | PartyRows;
  readonly train: LabelledRows | PartyRows;
  readonly test: LabelledRows | PartyRows;
  /** The own columns as read (normalised IDs first), to re-encode with an older part's schema after the file changed. */
  readonly source: Table;
}

/** What a party keeps on its disk per committed round. */
export interface VerticalPartFile {
  readonly federation: string;
  readonly round: number;
  readonly party: string;
  readonly role: 'label-holder' | 'feature-holder';
  readonly model: 'lr' | 'splitnn';
  readonly columns: readonly string[];
  readonly schema: DatasetSchema;
  readonly part: LabelHolderPart | FeatureHolderPart;
}

/** Whether a normalised ID is a held-out (test) customer of the federation. */
export function isTestId(federation: string, id: string, testFraction: number): boolean {
  const h = createHash('sha256').update(federation).update('\0').update(id).digest();
  return h.readUInt32BE(0) / 2 ** 32 < testFraction;
}

function subset<T extends PartyRows>(rows: T, idx: readonly number[], y: boolean): T {
  const d = rows.d;
  const x = new Float32Array(idx.length * d);
  idx.forEach((r, i) => x.set(rows.x.subarray(r * d, (r + 1) * d), i * d));
  const ids = idx.map((r) => rows.ids[r]!);
  return (y ? { ids, x, d, y: Float32Array.from(idx, (r) => (rows as unknown as LabelledRows).y[r]!) } : { ids, x, d }) as unknown as T;
}

/**
 * Check a party's table against the spec and encode its own columns.
 * @param table - the party's file
 * @param spec - the federation's vertical spec
 * @param party - this party's name
 * @param federation - the federation id (salt of the held-out split)
 * @param source - the file name, for messages
 */
export function prepareVerticalParty(table: Table, spec: VerticalSpec, party: string, federation: string, source: string): VerticalPartyData {
  const isLh = party === spec.labelHolder.party;
  const fh = spec.featureHolders.find((f) => f.party === party);
  if (!isLh && fh === undefined) throw new FedmartError('CONFIG_ERROR', `partner ${party} is not a party of this vertical federation (parties: ${[spec.labelHolder.party, ...spec.featureHolders.map((f) => f.party)].join(', ')})`);
  const columns = isLh ? spec.labelHolder.columns : fh!.columns;
  const need = [spec.idColumn, ...columns, ...(isLh ? [spec.labelHolder.label] : [])];
  const missing = need.filter((c) => !table.columns.includes(c));
  if (missing.length) throw new FedmartError('DATA_ERROR', `${source}: missing column(s) ${missing.join(', ')} that the federation declares for ${party} (declared: ${need.join(', ')}; the file has: ${table.columns.join(', ')})`);
  const idx = need.map((c) => table.columns.indexOf(c));
  const seen = new Set<string>();
  const rows = table.rows.map((r, i) => {
    const out = idx.map((k) => r[k]!);
    const id = normaliseId(out[0]!, spec.idNormalisation);
    if (id === '') throw new FedmartError('DATA_ERROR', `${source}: row ${i + 2} has an empty ${spec.idColumn}; every row needs a customer ID`);
    if (seen.has(id)) throw new FedmartError('DATA_ERROR', `${source}: customer ID "${id}" appears twice in ${spec.idColumn}; IDs must be unique per party`);
    seen.add(id);
    out[0] = id;
    return out;
  });
  const projected: Table = { columns: need, rows };
  const testIdx: number[] = [];
  const trainIdx: number[] = [];
  rows.forEach((r, i) => (isTestId(federation, r[0]!, spec.testFraction) ? testIdx : trainIdx).push(i));
  if (trainIdx.length === 0) throw new FedmartError('DATA_ERROR', `${source}: no training rows (all ${rows.length} customers fall in the held-out split)`);
  const trainTable: Table = { columns: need, rows: trainIdx.map((i) => rows[i]!) };
  // Own columns only, standardised with own training rows.
  const schema = partySchema(trainTable, isLh ? spec.labelHolder.label : undefined, isLh ? spec.labelHolder.positive : undefined, spec.idColumn, party);
  const enc = encodeTable(projected, schema, { requireLabel: isLh, source });
  const all = (isLh ? { ids: rows.map((r) => r[0]!), x: enc.x, d: enc.d, y: enc.y } : { ids: rows.map((r) => r[0]!), x: enc.x, d: enc.d }) as LabelledRows | PartyRows;
  return { party, role: isLh ? 'label-holder' : 'feature-holder', columns, schema, all, train: subset(all, trainIdx, isLh), test: subset(all, testIdx, isLh), source: projected };
}

/** A party's rows encoded as a saved part expects: the current encoding, or (after the file changed) the current rows re-encoded with the part's schema. */
function rowsForPart(data: VerticalPartyData, file: VerticalPartFile): PartyRows {
  if (JSON.stringify(file.schema) === JSON.stringify(data.schema)) return data.all;
  const enc = encodeTable(data.source, file.schema, { requireLabel: false, source: data.party });
  return { ids: data.all.ids, x: enc.x, d: enc.d };
}

/**
 * A party's data file as `runVerticalParty` reads it: `prepare` checks and encodes it; `reload` reads it
 * again when its bytes changed (SHA-256 of the file), so the next round aligns and trains on the new rows
 * without a restart.
 * @param read - reads and parses the file
 * @param bytes - reads the raw bytes (for the change check)
 */
export async function partyFileSource(o: { read: () => Promise<Table>; bytes: () => Promise<Uint8Array>; spec: VerticalSpec; federation: string; source: string }): Promise<Pick<VerticalPartyOptions, 'prepare' | 'reload'>> {
  const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  let seen = digest(await o.bytes());
  const table = await o.read();
  return {
    prepare: (party) => prepareVerticalParty(table, o.spec, party, o.federation, o.source),
    reload: async (party) => {
      const now = digest(await o.bytes());
      if (now === seen) return undefined;
      const data = prepareVerticalParty(await o.read(), o.spec, party, o.federation, o.source);
      seen = now;
      return data;
    },
  };
}

/** The training options a spec gives (the label holder's run and the centralized reference use the same). */
export function verticalTrainOptions(spec: VerticalSpec): { epochs: number; seed: number; batchSize?: number; learningRate?: number } {
  return { epochs: spec.epochs, seed: spec.seed, ...(spec.batchSize ? { batchSize: spec.batchSize } : {}), ...(spec.learningRate ? { learningRate: spec.learningRate } : {}) };
}

/** Encode rows of a party's table with a saved part's schema (scoring; tests use it for the in-process model). */
export function encodeWithPart(table: Table, file: VerticalPartFile, idColumn: string, rule: VerticalSpec['idNormalisation']): PartyRows {
  const need = [idColumn, ...file.columns];
  const idx = need.map((c) => table.columns.indexOf(c));
  const rows = table.rows.map((r) => idx.map((k) => r[k]!));
  const enc = encodeTable({ columns: need, rows }, file.schema, { requireLabel: false, source: file.party });
  return { ids: rows.map((r) => normaliseId(r[0]!, rule)), x: enc.x, d: enc.d };
}

/**
 * A party's contribution for some rows: LR partial logits (f64), or split-NN embeddings (f32, no noise at scoring).
 * @param part - the saved part
 * @param x - rows × d, row-major
 */
export function partContribution(part: LabelHolderPart | FeatureHolderPart, x: Float32Array, m: number, d: number): Float64Array | Float32Array {
  if (part.kind === 'lr') return matVec(x, Float64Array.from(part.w));
  const stack = new DenseStack(part.bottomWidths, 0, true);
  try {
    stack.importWeights(part.bottom);
    const e = tf.tidy(() => Float32Array.from(stack.apply(tf.tensor2d(x, [m, d])).dataSync() as Float32Array));
    // A part trained under embedding DP released clipped rows; its top model expects them.
    return 'embeddingDp' in part && part.embeddingDp ? clipRowsInPlace(e, part.embeddingDim, part.embeddingDp.clip) : e;
  } finally {
    stack.dispose();
  }
}

/**
 * Combine at the label holder: probabilities from its own rows and every feature holder's contribution.
 * @returns probabilities and, for LR, each party's additive logit contribution (the label holder's includes the bias)
 */
export function combineAtLabelHolder(part: LabelHolderPart, own: Float32Array, m: number, d: number, others: readonly (Float64Array | Float32Array)[]): { p: number[]; contributions?: number[][] } {
  if (part.kind === 'lr') {
    const z0 = matVec(own, Float64Array.from(part.w));
    const mine = Array.from(z0, (z) => z + part.bias);
    const p = mine.map((z, i) => sigmoid(others.reduce((s, u) => s + u[i]!, z)));
    return { p, contributions: [mine, ...others.map((u) => Array.from(u))] };
  }
  const bottom = new DenseStack(part.bottomWidths, 0, true);
  const top = new DenseStack(part.topWidths, 0, false);
  try {
    bottom.importWeights(part.bottom);
    top.importWeights(part.top);
    const probs = tf.tidy(() => {
      const parts = [bottom.apply(tf.tensor2d(own, [m, d])), ...others.map((e) => tf.tensor2d(Float32Array.from(e), [m, part.embeddingDim]))];
      return tf.sigmoid(tf.reshape(top.apply((parts.length > 1 ? tf.concat(parts, 1) : parts[0]!) as tf.Tensor2D), [-1])).dataSync() as Float32Array;
    });
    return { p: Array.from(probs) };
  } finally {
    bottom.dispose();
    top.dispose();
  }
}

/** Where a party keeps its part of round N. */
export function partPath(dataDir: string, federation: string, round: number): string {
  return path.join(dataDir, 'vertical', federation, `part-r${round}.json`);
}

/** Options of {@link runVerticalParty}. */
export interface VerticalPartyOptions {
  readonly url: string;
  readonly token: string;
  readonly federation: string;
  readonly spec: VerticalSpec;
  /** Check and encode the local file once the coordinator has said which party this token is. */
  readonly prepare: (party: string) => VerticalPartyData;
  /**
   * Called at the start of every round: the party's data again if its file changed since it was last
   * read (then this round's PSI aligns the new rows), else undefined. See {@link partyFileSource}.
   */
  readonly reload?: (party: string) => Promise<VerticalPartyData | undefined>;
  /** This party's data dir (model parts go under `vertical/<federation>/`), from its name. */
  readonly dataDir: (party: string) => string;
  readonly log: (party: string, m: string) => void;
  /** A feature holder's own embedding-DP limit: scoring requests past it are refused (cli/vertical-dp-ledger.ts). */
  readonly maxEpsilon?: number;
}

/**
 * Connect the control connection and serve rounds and scoring requests until the connection ends.
 * @returns when the coordinator closes the connection or `stop` is called
 */
export async function runVerticalParty(o: VerticalPartyOptions): Promise<{ socket: Socket; closed: Promise<string>; data: VerticalPartyData; dataDir: string }> {
  const { spec } = o;
  // Load the ML backend before joining, so that a round never starts on a half-ready party.
  if (spec.model === 'splitnn') await initBackend();
  const socket: Socket = io(`${o.url}${VERTICAL_NAMESPACE}`, { auth: { token: o.token, control: true }, transports: ['websocket'], reconnection: false, forceNew: true });
  const party = await new Promise<string>((resolve, reject) => {
    socket.once('welcome', (w: { party: string }) => resolve(w.party));
    socket.once('connect_error', (err: Error & { data?: { message?: string } }) => {
      socket.close();
      reject(new FedmartError('UNAVAILABLE', `vertical federation ${o.federation} refused the connection: ${err.data?.message ?? err.message}`));
    });
  });
  let data: VerticalPartyData;
  try {
    data = o.prepare(party);
  } catch (err) {
    socket.close();
    throw err;
  }
  const log = (m: string) => o.log(party, m);
  const dataDir = o.dataDir(party);
  // PSI spreads each chunk's X25519 multiplications over this machine's cores (align.ts yields between chunks).
  const pool = new X25519Pool(Math.min(availableParallelism(), 8));
  const fhs = spec.featureHolders.map((f) => f.party);
  const lhName = spec.labelHolder.party;
  type Current = { round: number; ch?: SocketVerticalChannel; aborted?: string };
  let current: Current | undefined;
  const status = async (s: VerticalStatus) => {
    const a = (await socket.timeout(60_000).emitWithAck('vstatus', s)) as Ack;
    if (!a.ok && s.phase !== 'failed') throw new FedmartError('CONFLICT', `coordinator refused the ${s.phase} report: ${a.error.message}`);
  };

  const runRound = async (round: number, session: string) => {
    const me: Current = { round };
    current = me;
    try {
      const fresh = await o.reload?.(data.party);
      if (fresh !== undefined) {
        data = fresh;
        log(`round ${round}: the data file changed; re-read ${data.all.ids.length} customers (${data.train.ids.length} train / ${data.test.ids.length} held out), aligning again`);
      }
      const ch = await connectVerticalChannel({ url: o.url, token: o.token, session, timeoutMs: 120_000 });
      me.ch = ch;
      if (me.aborted) throw new FedmartError('UNAVAILABLE', me.aborted);
      let file: VerticalPartFile;
      let metrics: Record<string, number> | undefined;
      if (spec.psi === 'size') {
        // Overlap check: PSI cardinality over every customer of the file; no ID of the intersection reaches anyone.
        const all = verticalParties(spec);
        await ch.waitForPeers(all.filter((p) => p !== data.party));
        const r = await psiCardinality(ch, data.party, all, data.all.ids, { set: 'overlap', session: ch.job, multiplyBatch: pool.multiplyBatch });
        ch.close();
        if (data.role === 'label-holder') {
          log(`round ${round}: overlap check: ${r.size} customers held by every party (${Object.entries(r.pairwise).map(([p, n]) => `${n} with ${p}`).join(', ')}) in ${r.seconds.toFixed(2)} s`);
          await status({ round, phase: 'checked', psi: { intersection: r.size, seconds: Math.round(r.seconds * 1000) / 1000 }, metrics: Object.fromEntries(Object.entries(r.pairwise).map(([p, n]) => [`psi_pairwise_${p}`, n])) });
        } else log(`round ${round}: overlap check done in ${r.seconds.toFixed(2)} s (the label holder learns the count)`);
        return;
      }
      if (data.role === 'label-holder') {
        await ch.waitForPeers(fhs);
        const lh = new LabelHolder(ch, { featureHolders: fhs, sets: { train: data.train as LabelledRows, test: data.test as LabelledRows }, session: ch.job, multiplyBatch: pool.multiplyBatch });
        const psi = await lh.align('train');
        log(`round ${round}: PSI ${psi.size} shared training customers in ${psi.seconds.toFixed(2)} s`);
        await status({ round, phase: 'aligned', psi: { intersection: psi.size, seconds: Math.round(psi.seconds * 1000) / 1000 } });
        const psiTest = await lh.align('test');
        const onEpoch = (e: number, l: number) => log(`round ${round}: epoch ${e} loss ${l.toFixed(4)}`);
        const train = async (h: LabelHolder) => (spec.model === 'lr' ? h.trainLr({ ...verticalTrainOptions(spec), onEpoch }) : h.trainSplitNn({ ...verticalTrainOptions(spec), noiseStd: spec.protections.embeddingNoise ?? 0, onEpoch }));
        const rep = await train(lh);
        const pred = await lh.predict('test');
        const part = lh.exportPart();
        await lh.finish();
        ch.close();
        // The label holder alone: all its own training customers, its own columns, scored on the same shared test customers.
        const sharedTest = new Set(psiTest.ids);
        const own = data.test as LabelledRows;
        const aloneTest = subset(own, own.ids.flatMap((id, i) => (sharedTest.has(id) ? [i] : [])), true);
        const alone = new LabelHolder(null, { featureHolders: [], sets: { train: data.train as LabelledRows, test: aloneTest } });
        await alone.align('train');
        await alone.align('test');
        await train(alone);
        const pa = await alone.predict('test');
        await alone.finish();
        metrics = { auc: rocAuc(pred.p, pred.y), label_holder_only_auc: rocAuc(pa.p, pa.y), loss: rep.loss, steps: rep.steps, train_seconds: Math.round(rep.seconds * 10) / 10, test_rows: pred.p.length, ...(rep.minBatch !== undefined ? { min_batch: rep.minBatch } : {}) };
        file = { federation: o.federation, round, party: data.party, role: data.role, model: spec.model, columns: data.columns, schema: data.schema, part };
        log(`round ${round}: vertical test AUC ${metrics.auc!.toFixed(4)}, label holder alone ${metrics.label_holder_only_auc!.toFixed(4)} (${pred.p.length} shared test customers)`);
      } else {
        await ch.waitForPeers([lhName]);
        const dp = spec.model === 'splitnn' ? spec.protections.embeddingDp : undefined;
        const fh = new FeatureHolder(ch, { labelHolder: lhName, sets: { train: data.train, test: data.test }, session: ch.job, multiplyBatch: pool.multiplyBatch, ...(dp ? { embeddingDp: { ...dp, maxTrainReleases: spec.epochs } } : {}) });
        await fh.align('train');
        await fh.align('test');
        const rep = await fh.serve();
        ch.close();
        const part = fh.lastPart();
        if (part === undefined) throw new FedmartError('INVALID_MESSAGE', `the label holder ended round ${round} (${rep.reason}) without training`);
        file = { federation: o.federation, round, party: data.party, role: data.role, model: spec.model, columns: data.columns, schema: data.schema, part };
        log(`round ${round}: served ${rep.steps} steps`);
        if (dp) {
          // The same charge the coordinator's ledger makes for the round, on this party's own accountant.
          const c = await chargePartyRelease({ file: partyLedgerPath(dataDir, o.federation), federation: o.federation, terms: dp, kind: 'train', round, steps: embeddingDpCharge(spec.epochs).steps, rows: data.train.ids.length });
          log(`round ${round}: embedding-DP epsilon ${c.epsilon.toFixed(4)} (delta ${dp.delta}) after ${c.steps} Gaussian step(s) (ledger ${partyLedgerPath(dataDir, o.federation)})`);
        }
      }
      const bytes = Buffer.from(JSON.stringify(file));
      const target = partPath(dataDir, o.federation, round);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(`${target}.tmp`, bytes, { mode: 0o600 });
      await rename(`${target}.tmp`, target);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      log(`round ${round}: model part saved to ${target} (sha256 ${sha256.slice(0, 16)}…)`);
      await status({ round, phase: 'done', sha256, ...(metrics ? { metrics } : {}) });
    } catch (err) {
      const e = toFedmartError(err);
      me.ch?.close();
      log(`round ${round} failed: ${me.aborted ?? e.message}`);
      if (!me.aborted) await status({ round, phase: 'failed', reason: e.message.slice(0, 2000) }).catch(() => undefined);
    } finally {
      if (current === me) current = undefined;
    }
  };

  const partCache = new Map<number, VerticalPartFile>();
  const loadPart = async (round: number): Promise<VerticalPartFile> => {
    let f = partCache.get(round);
    if (f === undefined) {
      const p = partPath(dataDir, o.federation, round);
      try {
        f = JSON.parse(await readFile(p, 'utf8')) as VerticalPartFile;
      } catch {
        throw new FedmartError('NOT_FOUND', `${data.party} has no model part of round ${round} at ${p}; run it with the same --data-dir as in training`);
      }
      partCache.set(round, f);
    }
    return f;
  };

  const runPredict = async (req: { request: string; session: string; round: number; ids: string[]; explain: boolean }) => {
    const reply = (r: VerticalPredictResult) => socket.timeout(60_000).emitWithAck('vpredict-result', r).catch(() => undefined);
    let ch: SocketVerticalChannel | undefined;
    try {
      const file = await loadPart(req.round);
      const all = rowsForPart(data, file);
      const pos = new Map(all.ids.map((id, i) => [id, i]));
      const rows = req.ids.map((raw) => {
        const r = pos.get(normaliseId(raw, spec.idNormalisation));
        if (r === undefined) throw new FedmartError('NOT_FOUND', `${data.party} holds no customer with ID "${raw}"`);
        return r;
      });
      const m = rows.length;
      const x = gatherRows(all.x, all.d, Int32Array.from(rows));
      ch = await connectVerticalChannel({ url: o.url, token: o.token, session: req.session, timeoutMs: 120_000 });
      if (data.role === 'feature-holder') {
        await ch.waitForPeers([lhName]);
        const c = partContribution(file.part, x, m, all.d);
        const dp = file.part.kind === 'splitnn' && 'embeddingDp' in file.part ? file.part.embeddingDp : undefined;
        if (dp !== undefined && c instanceof Float32Array) {
          // Scoring is one more release of these customers' embeddings: noised like training, and charged to
          // this party's ledger first (refused there when it would pass --max-epsilon).
          const ledger = partyLedgerPath(dataDir, o.federation);
          const charged = await chargePartyRelease({ file: ledger, federation: o.federation, terms: dp, kind: 'predict', round: req.round, steps: scoringSteps(rows), rows: new Set(rows).size, ...(o.maxEpsilon !== undefined ? { maxEpsilon: o.maxEpsilon } : {}) });
          log(`scoring with round ${req.round}: released noised embeddings of ${new Set(rows).size} customer(s); embedding-DP epsilon now ${charged.epsilon.toFixed(4)} (delta ${dp.delta}) after ${charged.steps} Gaussian step(s) (ledger ${ledger})`);
          const noise = gaussianNoise(c.length, embeddingNoiseStd(dp));
          for (let i = 0; i < c.length; i++) c[i]! += noise[i]!;
        }
        if (c instanceof Float64Array) await ch.send(lhName, 'vlr.partial', { step: 0, rows: m }, [vectorBytes(c)]);
        else await ch.send(lhName, 'snn.embedding', { step: 0, rows: m, dim: (file.part as { embeddingDim: number }).embeddingDim }, [vectorBytes(c)]);
        await ch.receive(lhName, 'done');
        return;
      }
      await ch.waitForPeers(fhs);
      const others: (Float64Array | Float32Array)[] = [];
      for (const fh of fhs) {
        if (file.part.kind === 'lr') {
          const msg = await ch.receive(fh, 'vlr.partial');
          if (msg.body.rows !== m) throw new FedmartError('INVALID_MESSAGE', `${fh} sent ${msg.body.rows} partial logits for ${m} IDs`);
          others.push(readVector(msg.parts[0]!, 'f64'));
        } else {
          const msg = await ch.receive(fh, 'snn.embedding');
          if (msg.body.rows !== m || msg.body.dim !== file.part.embeddingDim) throw new FedmartError('INVALID_MESSAGE', `${fh} sent ${msg.body.rows}×${msg.body.dim} embeddings for ${m} IDs`);
          others.push(readVector(msg.parts[0]!, 'f32'));
        }
      }
      for (const fh of fhs) await ch.send(fh, 'done', { reason: 'scored' });
      const r = combineAtLabelHolder(file.part as LabelHolderPart, x, m, all.d, others);
      await reply({ request: req.request, p: r.p, ...(req.explain && r.contributions ? { contributions: Object.fromEntries([lhName, ...fhs].map((q, k) => [q, r.contributions![k]!])) } : {}) });
    } catch (err) {
      await reply({ request: req.request, error: toFedmartError(err).message.slice(0, 2000) });
    } finally {
      ch?.close();
    }
  };

  socket.on('vround', (m: { round: number; session: string }) => {
    log(`round ${m.round}: started by the coordinator`);
    void runRound(m.round, m.session);
  });
  socket.on('vabort', (m: { round: number; reason: string }) => {
    if (current?.round === m.round) {
      current.aborted = `round ${m.round} aborted by the coordinator: ${m.reason}`;
      current.ch?.close();
    }
  });
  socket.on('vpredict', (m: { request: string; session: string; round: number; ids: string[]; explain: boolean }) => void runPredict(m));
  const closed = new Promise<string>((resolve) => socket.on('disconnect', (reason) => {
    void pool.close();
    resolve(String(reason));
  }));
  return { socket, closed, data, dataDir };
}
