/**
 * `fedmart partner`: run a partner node over a local CSV/JSONL file.
 * The data schema comes from --schema or from the federation's agreed schema.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { DatasetSchemaSchema, encodeTable, validateTableAgainstSchema, type DatasetSchema } from '@fedmart/shared/data/index';
import { formatIssues } from '@fedmart/shared/protocol';
import { readSchemaFile, readTableFile } from '@fedmart/client-node/data/connectors';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { AuditHeadStore } from '@fedmart/client-node/audit-head';
import { PURPOSES, PurposesSchema, type Purpose } from '@fedmart/shared/consent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parseFlags, requireString, intFlag, progress } from './args.ts';
import { ApiClient, peekClaims } from './api-client.ts';
import { splitLocal } from './experiment.ts';
import { VerticalSpecSchema } from '@fedmart/shared/vertical-spec';
import { partyFileSource, prepareVerticalParty, runVerticalParty } from './vertical-party.ts';
import { RECOMMENDATION_TASK } from '@fedmart/scenarios/recommendation/task';
import { recommendationNode, type RecommendationNode } from './recommendation-partner.ts';

const USAGE = `fedmart partner --coordinator URL[,URL…] --token TOKEN --data FILE [--schema FILE.json] [--sep CHAR]

Runs a partner node: trains on FILE locally and sends only model updates.
To read the federation's terms and consent first: fedmart partner consent --help

  --coordinator URL   coordinator base URL, e.g. http://127.0.0.1:7300; several coordinators without a
                      load balancer: list them all, comma-separated (reconnection tries each in turn)
  --token TOKEN       enrollment token issued by the operator (or env FEDMART_TOKEN)
  --data FILE         local data, .csv or .jsonl
  --schema FILE       data schema JSON (default: the federation's agreed schema)
  --sep CHAR          CSV separator (default: detected)
  --seed S            local shuffling seed (default 0)
  --id COL            vertical federations: your customer-ID column (must be the federation's ID column)
  --max-epsilon E     vertical split NN with embedding DP, feature holders: refuse a scoring request that
                      would take your customers past epsilon E on your own ledger
                      (<data-dir>/vertical/<federation>/embedding-dp-ledger.json; every release is charged there)
  --data-dir DIR      where this node keeps its Ed25519 identity key (0600) and the identity keys
                      and federation terms it pinned, and the newest audit tree head it saw
                      (checked at every connection; default ./.fedmart-partner/<partner>)
  --purposes LIST     the purposes your data may serve, comma-separated (${PURPOSES.join(', ')});
                      a federation declaring another purpose is refused (default: not stated)
  --serve PORT        recommendation federations: serve GET http://127.0.0.1:PORT/recommend?user=ID&k=10
                      for your own customers from the published model (0: any free port)
  --accept-identity PARTNER=FINGERPRINT
                      accept a peer's new identity key after the operator re-enrolled it and you
                      compared its fingerprint with them (repeat the flag per partner)

Example:
  fedmart partner --coordinator http://127.0.0.1:7300 --token $TOKEN --data brand-a.csv --schema schema.json`;

export async function partnerCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'consent') return (await import('./partner-consent.ts')).partnerConsentCommand(argv.slice(1));
  const { values } = parseFlags('partner', argv, {
    coordinator: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' }, schema: { type: 'string' }, sep: { type: 'string' }, seed: { type: 'string' }, name: { type: 'string' },
    'data-dir': { type: 'string' }, purposes: { type: 'string' }, 'accept-identity': { type: 'string', multiple: true }, id: { type: 'string' }, serve: { type: 'string' }, 'max-epsilon': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const urls = requireString('partner', values, 'coordinator', 'the coordinator URL, e.g. http://127.0.0.1:7300').split(',').map((u) => u.trim());
  for (const u of urls) if (!/^https?:\/\/[^\s/]+/.test(u)) throw new FedmartError('CONFIG_ERROR', `partner: --coordinator must be an http(s) URL such as http://127.0.0.1:7300 (several separated by commas), got "${u}"`);
  const url = urls[0]!;
  const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN;
  if (!token) throw new FedmartError('CONFIG_ERROR', 'partner: missing --token (the enrollment token the operator issued; or set FEDMART_TOKEN)');
  const dataPath = requireString('partner', values, 'data', 'your local data file, .csv or .jsonl');
  const seed = intFlag('partner', values, 'seed', 0, 0, 2 ** 31 - 1);
  maxEpsilonFlag(values['max-epsilon']); // checked before connecting; used by vertical parties
  const claims = peekClaims(token);
  let name = (values.name as string | undefined) ?? String(claims.sub ?? 'partner');
  const log = (m: string) => progress(`[${name}] ${m}`);

  let schema: DatasetSchema;
  type FedView = { federation: { config: { dataSchema?: unknown; mode?: string; vertical?: unknown; task?: string; taskSpec?: unknown } } };
  let view: FedView | undefined;
  if (typeof claims.fed === 'string') {
    const fetched = new ApiClient(url, token).get<FedView>(`/api/v1/federations/${claims.fed}`);
    view = typeof values.schema === 'string' ? await fetched.catch(() => undefined) : await fetched;
  }
  if (view?.federation.config.mode === 'vertical') return verticalPartner(url, token, String(claims.fed), name, view.federation.config.vertical, values, dataPath);
  if (values.id !== undefined) throw new FedmartError('CONFIG_ERROR', 'partner: --id names the customer-ID column of a vertical federation; this federation is horizontal');
  const servePort = values.serve === undefined ? undefined : intFlag('partner', values, 'serve', 0, 0, 65535);
  // A recommendation federation: the task comes from the federation's task id and taskSpec (cli/recommendation-partner.ts).
  const rec = view?.federation.config.task === RECOMMENDATION_TASK
    ? recommendationNode({ url, token, federation: String(claims.fed), taskSpec: view.federation.config.taskSpec, table: await readTableFile(dataPath, typeof values.sep === 'string' ? { sep: values.sep } : {}), source: dataPath, seed, serve: servePort, log })
    : null;
  if (!rec && servePort !== undefined) throw new FedmartError('CONFIG_ERROR', `partner: --serve serves recommendations, but this federation runs task "${view?.federation.config.task ?? 'binary'}"`);
  const node = rec ? { task: rec.task } : { data: await tabularData() };
  async function tabularData() {
    if (typeof values.schema === 'string') schema = await readSchemaFile(values.schema);
    else {
      if (typeof claims.fed !== 'string') throw new FedmartError('UNAUTHENTICATED', 'partner: the token names no federation; pass the enrollment token exactly as issued');
      const { federation } = view!;
      const parsed = DatasetSchemaSchema.safeParse(federation.config.dataSchema);
      if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `partner: the federation has no usable data schema (${formatIssues(parsed.error.issues)}); pass --schema FILE.json`);
      schema = parsed.data;
    }
    const table = await readTableFile(dataPath, typeof values.sep === 'string' ? { sep: values.sep } : {});
    validateTableAgainstSchema(table, schema, { source: dataPath });
    const enc = encodeTable(table, schema, { source: dataPath });
    const data = splitLocal(enc, 0.1, seed + 1);
    const backend = await initBackend();
    log(`backend ${backend.name}; ${enc.n} rows (${data.trainN} train / ${data.valN} validation), ${enc.d} features`);
    return data;
  }

  const accept: Record<string, string> = {};
  for (const item of (values['accept-identity'] as string[] | undefined) ?? []) {
    const m = /^([^=]+)=((?:[0-9a-f]{4}:){7}[0-9a-f]{4})$/.exec(item);
    if (!m) throw new FedmartError('CONFIG_ERROR', `partner: --accept-identity expects PARTNER=FINGERPRINT (8 groups of 4 hex digits, as fedmart federation show prints), got "${item}"`);
    accept[m[1]!] = m[2]!;
  }
  const dataDir = (values['data-dir'] as string | undefined) ?? path.join('.fedmart-partner', String(claims.sub ?? 'partner'));
  const identity = PartnerIdentity.open(dataDir, accept);
  log(`identity ${identity.fingerprint} (key in ${dataDir})`);
  let served: Awaited<ReturnType<RecommendationNode['serve']>> = null;
  const agent = startPartnerAgent({
    coordinatorUrl: url, ...(urls.length > 1 ? { fallbackCoordinatorUrls: urls.slice(1) } : {}), token, ...node, seed, log, identity, trainInWorker: true, auditHeads: AuditHeadStore.open(dataDir), ...purposesFlag(values.purposes),
    onStatus: (s) => {
      log(`round ${s.round}: ${s.phase}${s.reason ? ` (${s.reason})` : ''}`);
      if (s.phase === 'committed') served?.invalidate();
    },
  });
  const w = await agent.ready;
  served = (await rec?.serve()) ?? null;
  if (served) log(`serving recommendations for this brand's customers on ${served.url}?user=ID&k=10`);
  if (values.name === undefined) name = w.partnerName;
  log(`joined federation ${w.federationId} as ${w.partnerName}; waiting for rounds (Ctrl-C to leave)`);
  await new Promise<void>((resolve) => {
    // A signal stops training at its next yield (within ~100 ms of work): nothing half-trained is sent, nothing half-written stays.
    const stop = (signal: string) => {
      log(`${signal}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    agent.socket.on('disconnect', (reason) => {
      if (reason === 'io server disconnect') {
        log('the coordinator closed our connection');
        resolve();
      }
    });
  });
  served?.close();
  await agent.close();
  log(`left after training in ${agent.roundsTrained()} round(s)`);
  return 0;
}

/** `fedmart partner` in a vertical federation: own columns only, rounds and scoring over the relay (cli/vertical-party.ts). */
async function verticalPartner(url: string, token: string, federation: string, name: string, rawSpec: unknown, values: Record<string, unknown>, dataPath: string): Promise<number> {
  const spec = VerticalSpecSchema.safeParse(rawSpec);
  if (!spec.success) throw new FedmartError('CONFIG_ERROR', `partner: federation ${federation} is vertical but has no party spec (${formatIssues(spec.error.issues)}); the operator creates it with fedmart federation create --mode vertical --label-holder ... --parties ...`);
  const id = values.id as string | undefined;
  if (id !== undefined && id !== spec.data.idColumn) throw new FedmartError('CONFIG_ERROR', `partner: --id ${id} is not the federation's customer-ID column "${spec.data.idColumn}"; rename your column or pass --id ${spec.data.idColumn}`);
  const file = await partyFileSource({ read: () => readTableFile(dataPath, typeof values.sep === 'string' ? { sep: values.sep } : {}), bytes: () => readFile(dataPath), spec: spec.data, federation, source: dataPath });
  let log = (m: string) => progress(`[${name}] ${m}`);
  const { socket, closed, data, dataDir } = await runVerticalParty({
    url, token, federation, spec: spec.data, log: (party, m) => progress(`[${party}] ${m}`), ...file,
    dataDir: (party) => (values['data-dir'] as string | undefined) ?? path.join('.fedmart-partner', party),
    ...maxEpsilonFlag(values['max-epsilon']),
  });
  log = (m: string) => progress(`[${data.party}] ${m}`);
  log(`vertical ${data.role}: ${data.all.ids.length} customers (${data.train.ids.length} train / ${data.test.ids.length} held out by ID hash), ${data.columns.length} own columns → ${data.all.d} encoded`);
  log(`joined vertical federation ${federation}; model parts go to ${path.join(dataDir, 'vertical', federation)}; waiting for rounds (Ctrl-C to leave)`);
  const why = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('interrupted'));
    process.once('SIGTERM', () => resolve('terminated'));
    void closed.then((r) => resolve(`the coordinator closed our connection (${r})`));
  });
  socket.close();
  log(`left: ${why}`);
  return why.startsWith('the coordinator') ? 1 : 0;
}

/** `--max-epsilon E` → the vertical party's own embedding-DP limit. */
function maxEpsilonFlag(raw: unknown): { maxEpsilon?: number } {
  if (raw === undefined) return {};
  const e = Number(raw);
  if (!(Number.isFinite(e) && e > 0)) throw new FedmartError('CONFIG_ERROR', `partner: --max-epsilon must be a positive number, got "${String(raw)}"`);
  return { maxEpsilon: e };
}

/** `--purposes a,b` → the agent's consent option (issue 13, item 5). */
function purposesFlag(raw: unknown): { purposes?: Purpose[] } {
  if (raw === undefined) return {};
  const parsed = PurposesSchema.safeParse(String(raw).split(',').map((x) => x.trim()).filter(Boolean));
  if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `partner: --purposes must list purposes from ${PURPOSES.join(', ')} (comma-separated, no repeats), got "${String(raw)}"`);
  return { purposes: parsed.data };
}
