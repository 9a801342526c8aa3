/**
 * Test fixtures: a real coordinator on an ephemeral port with in-memory
 * SQLite, torn down by `await using`; helpers to create federations and
 * enroll partners through the real REST API; real bank data partitions.
 */
import type { ChildProcess } from 'node:child_process';
import { io, type Socket } from 'socket.io-client';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '@fedmart/coordinator';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { startPartnerAgent, type LocalData, type PartnerAgent, type PartnerAgentOptions } from '@fedmart/client-node/agent';
import { FEDERATION_NAMESPACE, PROTOCOL_VERSION, type FederationConfigInput } from '@fedmart/shared/protocol';
import { ApiClient } from '../cli/api-client.ts';
import { bankMarketingPath } from '../cli/datasets.ts';
import { prepareExperiment, type PreparedExperiment } from '../cli/experiment.ts';

export interface Fixture extends AsyncDisposable {
  coord: Coordinator;
  api: ApiClient;
  url: string;
  createFederation(config: Partial<FederationConfigInput> & { model: FederationConfigInput['model'] }, name?: string): Promise<string>;
  enroll(federationId: string, partner: string): Promise<string>;
}

export async function startFixture(dataDir: string | null = null, coordOpts: Partial<CoordinatorOptions> = {}): Promise<Fixture> {
  const coord = await startCoordinator({ port: 0, dataDir, ...coordOpts });
  const api = new ApiClient(coord.url, coord.operatorToken);
  return {
    coord, api, url: coord.url,
    async createFederation(config, name = 'test federation') {
      const full: FederationConfigInput = {
        localTrain: { localEpochs: 1, batchSize: 32, learningRate: 0.01, proximalMu: 0 },
        minClients: 2,
        timeouts: { selectingMs: 10_000, trainingMs: 30_000, evaluatingMs: 10_000 },
        ...config,
      };
      const r = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name, config: full });
      return r.federation.id;
    },
    async enroll(federationId, partner) {
      const r = await api.post<{ token: string }>(`/api/v1/federations/${federationId}/enrollments`, { partner });
      return r.token;
    },
    [Symbol.asyncDispose]: () => coord.close(),
  };
}

let bankSmall: Promise<PreparedExperiment> | null = null;
/** The UCI bank data (4,521-row sample), split by job into 3 non-IID partners. Cached per test file. */
export function bankPartners(partners = 3): Promise<PreparedExperiment> {
  if (partners !== 3) return load(partners);
  return (bankSmall ??= load(3));
}
async function load(partners: number): Promise<PreparedExperiment> {
  const table = await readTableFile(bankMarketingPath('small'), { sep: ';' });
  return prepareExperiment({ table, label: 'y', positive: 'yes', partitionBy: 'job', partners, seed: 7, drop: ['duration'] });
}

/**
 * Enroll the bank partners of {@link bankPartners} in a federation and start a real agent for each.
 * @param opts - `extra`: more agent options per partner index; `onStart`: sees each agent before it connects (e.g. to record frames)
 * @returns the agents, once every one was welcomed
 */
export async function connectBankPartners(fx: Fixture, fed: string, opts: { extra?: (i: number) => Partial<PartnerAgentOptions>; onStart?: (a: PartnerAgent, i: number) => void } = {}): Promise<PartnerAgent[]> {
  const exp = await bankPartners();
  const agents: PartnerAgent[] = [];
  for (const [i, p] of exp.partners.entries()) {
    const a = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false, ...opts.extra?.(i) });
    opts.onStart?.(a, i);
    agents.push(a);
  }
  await Promise.all(agents.map((a) => a.ready));
  return agents;
}

export function modelFor(exp: PreparedExperiment) {
  return { kind: 'mlp' as const, inputDim: exp.d, hidden: [8] };
}

export type { LocalData };

/** A raw Socket.IO client for protocol-level tests (no agent logic). */
export async function rawClient(url: string, token: string): Promise<Socket> {
  const s = io(url + FEDERATION_NAMESPACE, { auth: { token }, transports: ['websocket'], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', (e) => reject(e));
  });
  return s;
}

/** Emit one envelope (+ optional attachment) and wait for the ack. */
export function emitMsg(s: Socket, envelope: unknown, attachment?: Uint8Array): Promise<{ ok: boolean; error?: { code: string; message: string } }> {
  return new Promise((resolve) => {
    if (attachment) s.emit('msg', envelope, attachment, resolve);
    else s.emit('msg', envelope, resolve);
  });
}

export const hello = (numExamples = 100, seq = 0) => ({ v: PROTOCOL_VERSION, seq, type: 'hello', payload: { numExamples, consent: true } });

/** Wait until `pred()` is true (polling), or fail after `ms`. */
export async function waitFor(pred: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolve with the first output line of a child process that matches `re` (hang guard `ms`). */
export function waitForLine(child: ChildProcess, re: RegExp, ms = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; got: ${buf}`)), ms);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
  });
}
