/**
 * `fedmart demo --mode vertical`: a vertical federation between real
 * processes on the UCI Bank Marketing data split by columns. Starts a
 * coordinator (SQLite under the data dir), writes one CSV per party holding
 * only its own columns and its own customers (80 % of customers shared by
 * all, the rest dealt to one party each), creates the federation, enrolls
 * the platform (label holder, `y`) and two brands (feature holders), starts
 * each as its own `fedmart partner` OS process, runs a coordinator-driven
 * round (PSI over the relay, then training), scores shared held-out
 * customers with `predict` through the parties, and compares with the label
 * holder alone and with a centralized model on every column (pooled in this
 * process, which is only possible because the demo holds the whole file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedmartError } from '@fedmart/shared/errors';
import { createSeededRng, shuffleInPlace, type Table } from '@fedmart/shared/data/index';
import { rocAuc } from '@fedmart/shared/metrics';
import { VerticalSpecSchema, type VerticalSpec } from '@fedmart/shared/vertical-spec';
import { startCoordinator, type Coordinator } from '@fedmart/coordinator';
import { readTableFile, writeCsv } from '@fedmart/client-node/data/connectors';
import type { LabelledRows } from '@fedmart/client-node/vertical/index';
import { joinPartyRows, trainCentralizedReference } from '@fedmart/client-node/vertical/centralized';
import type { LabelHolderPart } from '@fedmart/client-node/vertical/label-holder';
import { ApiClient } from './api-client.ts';
import { bankMarketingPath, BANK_LEAKY_COLUMNS } from './datasets.ts';
import { combineAtLabelHolder, encodeWithPart, isTestId, partContribution, partPath, prepareVerticalParty, verticalTrainOptions, type VerticalPartFile } from './vertical-party.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

/** The bank columns per party: the platform holds the label and customer profile; brand A the contact history, brand B the campaign history. */
export const BANK_VERTICAL_PARTIES = {
  labelHolder: { party: 'platform', columns: ['age', 'job', 'marital', 'education', 'default', 'balance'] },
  featureHolders: [
    { party: 'brand-a', columns: ['housing', 'loan', 'contact', 'day', 'month'] },
    { party: 'brand-b', columns: ['campaign', 'pdays', 'previous', 'poutcome'] },
  ],
} as const;
export const BANK_ID_COLUMN = 'customer_id';

/** Options of {@link startVerticalDemo}. */
export interface VerticalDemoOptions {
  readonly dataDir: string;
  readonly model: 'lr' | 'splitnn';
  readonly epochs: number;
  /** Customers taken from the bank data (seeded sample; default all 45,211). */
  readonly rows?: number;
  readonly overlap?: number;
  readonly batchSize?: number;
  readonly learningRate?: number;
  readonly seed?: number;
  readonly port?: number;
  /**
   * The coordinator's Socket.IO ping timeout (default Socket.IO's 20 s). Tests that run the coordinator and
   * three parties on one heavily loaded machine raise it as a hang guard: a starved process can miss a
   * heartbeat however short its synchronous steps are. PSI itself no longer blocks (align.ts).
   */
  readonly pingTimeoutMs?: number;
  readonly log?: (m: string) => void;
  /** Spec fields to set on top of the demo's (e.g. `psi: 'size'`, `protections: { embeddingDp: … }`); checked by the schema. */
  readonly specOverrides?: Readonly<Record<string, unknown>>;
  /** Extra `fedmart partner` flags per party (e.g. `{ 'brand-a': ['--max-epsilon', '5'] }`). */
  readonly partyArgs?: Readonly<Record<string, readonly string[]>>;
}

/** A running vertical demo: the coordinator in this process, the parties as child processes. */
export interface VerticalDemo {
  readonly coordinator: Coordinator;
  readonly api: ApiClient;
  readonly federation: string;
  readonly spec: VerticalSpec;
  readonly table: Table;
  readonly partyFiles: Record<string, string>;
  readonly partyDirs: Record<string, string>;
  readonly processes: Map<string, ChildProcess>;
  /** (Re)start a party's `fedmart partner` process and wait until it is connected. */
  startParty(party: string): Promise<ChildProcess>;
  /** Kill a party's process with SIGKILL (no goodbye). */
  kill9(party: string): Promise<void>;
  /** Start a round and wait until it commits, fails or (size-only) is checked; `onPhase` sees each phase. */
  round(onPhase?: (phase: string) => void | Promise<void>): Promise<{ id: string; number: number; phase: string; reason: string | null; metrics: Record<string, number> | null }>;
  /** IDs held by every party that fall in the held-out split. */
  sharedTestIds(): string[];
  /** The in-process model: each party's saved part applied to its own file, combined as the label holder would. */
  inProcessScores(round: number, ids: readonly string[]): Promise<number[]>;
  /** A centralized model on every column (pooled training customers), scored on `ids`. */
  centralizedAuc(ids: readonly string[]): Promise<number>;
  stop(): Promise<void>;
}

function project(t: Table, cols: readonly string[], rows: readonly number[]): Table {
  const idx = cols.map((c) => t.columns.indexOf(c));
  return { columns: [...cols], rows: rows.map((r) => idx.map((i) => t.rows[r]![i]!)) };
}

/**
 * Set up the demo: data split by columns, coordinator, federation, enrollments, party processes.
 * @param o - data dir, model, epochs, sample size
 */
export async function startVerticalDemo(o: VerticalDemoOptions): Promise<VerticalDemo> {
  const log = o.log ?? (() => undefined);
  const seed = o.seed ?? 42;
  const raw = await readTableFile(bankMarketingPath('full'), { sep: ';' });
  const order = shuffleInPlace(Array.from(raw.rows.keys()), createSeededRng(seed));
  const take = order.slice(0, Math.min(o.rows ?? raw.rows.length, raw.rows.length)).sort((a, b) => a - b);
  const keep = raw.columns.filter((c) => !BANK_LEAKY_COLUMNS.includes(c));
  const table: Table = { columns: [BANK_ID_COLUMN, ...keep], rows: take.map((r, i) => [`c${String(i).padStart(6, '0')}`, ...keep.map((c) => raw.rows[r]![raw.columns.indexOf(c)]!)]) };

  await mkdir(o.dataDir, { recursive: true });
  const coordinator = await startCoordinator({ port: o.port ?? 0, dataDir: path.join(o.dataDir, 'coordinator'), log: () => undefined, ...(o.pingTimeoutMs !== undefined ? { pingTimeoutMs: o.pingTimeoutMs } : {}) });
  const api = new ApiClient(coordinator.url, coordinator.operatorToken);
  const processes = new Map<string, ChildProcess>();
  try {
    const spec = VerticalSpecSchema.parse({
      labelHolder: { ...BANK_VERTICAL_PARTIES.labelHolder, label: 'y', positive: 'yes', columns: [...BANK_VERTICAL_PARTIES.labelHolder.columns] },
      featureHolders: BANK_VERTICAL_PARTIES.featureHolders.map((f) => ({ party: f.party, columns: [...f.columns] })),
      idColumn: BANK_ID_COLUMN, model: o.model, epochs: o.epochs, seed,
      ...(o.batchSize ? { batchSize: o.batchSize } : {}), ...(o.learningRate ? { learningRate: o.learningRate } : {}),
      protections: o.model === 'lr' ? { ckks: true } : { embeddingNoise: 0 },
      ...o.specOverrides,
    });
    const { federation } = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: `vertical bank ${o.model}`, config: { mode: 'vertical', vertical: spec, model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 } } });
    const fed = federation.id;

    // Customers: a fraction `overlap` is shared by all three parties, the rest dealt round-robin (each party's own customers).
    const parties = [spec.labelHolder.party, ...spec.featureHolders.map((f) => f.party)];
    const ids = shuffleInPlace(Array.from(table.rows.keys()), createSeededRng(seed + 1));
    const nShared = Math.round((o.overlap ?? 0.8) * ids.length);
    const held: number[][] = parties.map(() => ids.slice(0, nShared));
    for (let k = nShared; k < ids.length; k++) held[(k - nShared) % parties.length]!.push(ids[k]!);
    const partyFiles: Record<string, string> = {};
    const partyDirs: Record<string, string> = {};
    const tokens: Record<string, string> = {};
    for (const [k, p] of parties.entries()) {
      const cols = k === 0 ? [BANK_ID_COLUMN, ...spec.labelHolder.columns, 'y'] : [BANK_ID_COLUMN, ...spec.featureHolders[k - 1]!.columns];
      partyFiles[p] = path.join(o.dataDir, 'parties', `${p}.csv`);
      partyDirs[p] = path.join(o.dataDir, 'parties', p);
      await writeCsv(partyFiles[p]!, project(table, cols, held[k]!.sort((a, b) => a - b)));
      tokens[p] = (await api.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: p })).token;
    }
    const shared = new Set(ids.slice(0, nShared).map((r) => table.rows[r]![0]!));
    log(`federation ${fed}: ${parties.join(', ')}; ${table.rows.length} customers, ${nShared} shared by all`);

    const connected = async (p: string, want: boolean) => {
      for (;;) {
        const v = await api.get<{ connected: string[] }>(`/api/v1/federations/${fed}/vertical`);
        if (v.connected.includes(p) === want) return;
        const c = processes.get(p);
        if (want && c && c.exitCode !== null) throw new FedmartError('UNAVAILABLE', `party ${p} exited with code ${c.exitCode} before joining; see ${partyDirs[p]}.log`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const startParty = async (p: string) => {
      const child = spawn(process.execPath, [BIN, 'partner', '--coordinator', coordinator.url, '--token', tokens[p]!, '--data', partyFiles[p]!, '--id', BANK_ID_COLUMN, '--data-dir', partyDirs[p]!, ...(o.partyArgs?.[p] ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.pipe(createWriteStream(`${partyDirs[p]}.log`, { flags: 'a' }));
      processes.set(p, child);
      await connected(p, true);
      log(`party ${p} joined (pid ${child.pid})`);
      return child;
    };
    await Promise.all(parties.map(startParty));

    const loadParts = async (round: number) => Promise.all(parties.map(async (p) => JSON.parse(await readFile(partPath(partyDirs[p]!, fed, round), 'utf8')) as VerticalPartFile));
    const tables = new Map<string, Table>();
    const partyTable = async (p: string) => {
      let t = tables.get(p);
      if (!t) tables.set(p, (t = await readTableFile(partyFiles[p]!)));
      return t;
    };
    return {
      coordinator, api, federation: fed, spec, table, partyFiles, partyDirs, processes, startParty,
      async kill9(p) {
        const c = processes.get(p);
        if (!c || c.exitCode !== null) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
        await connected(p, false);
      },
      async round(onPhase) {
        const r = await api.post<{ roundId: string }>(`/api/v1/federations/${fed}/vertical/rounds`, {});
        let last = '';
        for (;;) {
          const x = (await api.get<{ round: { id: string; number: number; phase: string; reason: string | null; metrics: Record<string, number> | null } }>(`/api/v1/rounds/${r.roundId}`)).round;
          if (x.phase !== last) {
            last = x.phase;
            log(`round ${x.number}: ${x.phase}${x.reason ? ` (${x.reason})` : ''}`);
            await onPhase?.(x.phase);
          }
          if (x.phase === 'committed' || x.phase === 'failed' || x.phase === 'checked') return x;
          await new Promise((res) => setTimeout(res, 250));
        }
      },
      sharedTestIds() {
        return [...shared].filter((id) => isTestId(fed, id, spec.testFraction)).sort();
      },
      async inProcessScores(round, want) {
        const files = await loadParts(round);
        const rows = await Promise.all(files.map(async (f) => {
          const enc = encodeWithPart(await partyTable(f.party), f, spec.idColumn, spec.idNormalisation);
          const pos = new Map(enc.ids.map((id, i) => [id, i]));
          const x = new Float32Array(want.length * enc.d);
          want.forEach((id, i) => x.set(enc.x.subarray(pos.get(id)! * enc.d, (pos.get(id)! + 1) * enc.d), i * enc.d));
          return { x, d: enc.d, part: f.part };
        }));
        const others = rows.slice(1).map((r) => partContribution(r.part, r.x, want.length, r.d));
        return combineAtLabelHolder(rows[0]!.part as LabelHolderPart, rows[0]!.x, want.length, rows[0]!.d, others).p;
      },
      async centralizedAuc(testIds) {
        // The same algorithm on the joined columns of the shared training customers (client-node/src/vertical/centralized.ts):
        // each party's columns encoded as that party encodes them, the same seed, batches, learning rate and epochs.
        const data = await Promise.all(parties.map(async (p) => prepareVerticalParty(await partyTable(p), spec, p, fed, partyFiles[p]!)));
        const train = joinPartyRows(data[0]!.train as LabelledRows, data.slice(1).map((d) => d.train));
        const test = joinPartyRows(data[0]!.test as LabelledRows, data.slice(1).map((d) => d.test), testIds);
        const p = await trainCentralizedReference(spec.model, train, test, verticalTrainOptions(spec));
        return rocAuc(p.p, p.y);
      },
      async stop() {
        for (const c of processes.values()) if (c.exitCode === null) c.kill('SIGTERM');
        await Promise.all([...processes.values()].map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
        await coordinator.close();
      },
    };
  } catch (err) {
    for (const c of processes.values()) c.kill('SIGKILL');
    await coordinator.close();
    throw err;
  }
}

/** The demo's JSON result. */
export interface VerticalDemoResult {
  processes: number;
  federation: string;
  model: 'lr' | 'splitnn';
  psi: { intersection: number; seconds: number };
  vertical: { auc: number };
  labelHolderOnly: { auc: number };
  centralized: { auc: number };
  predict: { ids: number; maxAbsDiff: number };
  round: { number: number; seconds: number; version: number };
}

/**
 * Run the whole demo once: set up, one round, scoring, baselines.
 * @param o - demo options
 */
export async function runVerticalDemo(o: VerticalDemoOptions & { predictIds?: number }): Promise<VerticalDemoResult> {
  const demo = await startVerticalDemo(o);
  try {
    const r = await demo.round();
    if (r.phase !== 'committed') throw new FedmartError('UNAVAILABLE', `vertical round ${r.number} failed: ${r.reason}`);
    const m = r.metrics!;
    const testIds = demo.sharedTestIds();
    const ids = testIds.slice(0, o.predictIds ?? 100);
    const served = await demo.api.post<{ p: number[]; version: number }>(`/api/v1/federations/${demo.federation}/vertical/predict`, { ids });
    const local = await demo.inProcessScores(r.number, ids);
    const maxAbsDiff = Math.max(...served.p.map((p, i) => Math.abs(p - local[i]!)));
    const centralized = await demo.centralizedAuc(testIds);
    const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
    return {
      processes: demo.processes.size, federation: demo.federation, model: o.model,
      psi: { intersection: m.psi_intersection!, seconds: m.psi_seconds! },
      vertical: { auc: r4(m.auc!) }, labelHolderOnly: { auc: r4(m.label_holder_only_auc!) }, centralized: { auc: r4(centralized) },
      predict: { ids: ids.length, maxAbsDiff },
      round: { number: r.number, seconds: m.seconds!, version: served.version },
    };
  } finally {
    await demo.stop();
  }
}
