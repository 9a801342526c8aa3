/**
 * `fedmart federation …` and `fedmart schema infer`: the operator's side of
 * running a federation across machines without hand-written HTTP calls.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { STRATEGY_IDS } from '@fedmart/shared/strategy/types';
import { inferSchema, computeNumericStats, applyNumericStats, featureDim } from '@fedmart/shared/data/index';
import { readSchemaFile, readTableFile, writeSchemaFile } from '@fedmart/client-node/data/connectors';
import { DEFAULT_LOCAL_TRAIN, DEFAULT_MODEL_HIDDEN } from '@fedmart/client-node/ml/defaults';
import { parseFlags, requireString, intFlag, progress } from './args.ts';
import { ApiClient } from './api-client.ts';
import { VerticalSpecSchema, parsePartiesFlag } from '@fedmart/shared/vertical-spec';
import { formatIssues } from '@fedmart/shared/protocol';
import type { PrivacyReport } from '@fedmart/shared/api-views';
import { waitForSchedule } from './schedule.ts';
import { watchFederation } from './watch.ts';

const USAGE = `fedmart federation <create|enroll|rounds|show|watch|list|archive|delete> [flags]

Operator commands against a running coordinator. The operator token is read
from --token, else FEDMART_OPERATOR_TOKEN, else <--data-dir>/operator.token
(default ./.fedmart/operator.token).

  create  --name NAME --schema FILE.json [--strategy fedavg] [--min-clients 2]
          [--hidden 32] [--local-epochs 1] [--learning-rate 0.01] [--batch-size 256]
          [--purpose purchase-prediction|recommendation|pricing|service|content|segments]
          [--requires-approval (publishing a model version needs a compliance officer's approval)]
  create  --mode vertical --name NAME --label-holder NAME:col,col --label COL [--positive V]
          --parties "NAME:col,col;NAME:col" --id COL [--id-rule trim|exact|trim-lower]
          --model lr|splitnn [--epochs 20] [--batch-size B] [--learning-rate R]
          [--noise S (split NN embedding noise, unaccounted)] [--test-fraction 0.2] [--round-timeout 3600]
          [--embedding-dp Z [--embedding-clip 1] [--gradient-clip 1] [--delta 1e-5]]
              (split NN: clipped, noised embeddings + DP-SGD bottom models, ε charged to the privacy ledger)
          [--psi ids|size] (size: rounds are overlap checks that reveal only how many customers all share)
          (vertical rounds: fedmart federation rounds; scoring: fedmart predict --federation)
  enroll  --federation ID --partner NAME [--expires-in SECONDS] [--max-examples N]   → prints the partner's token
          (--max-examples: the most examples this partner is weighted by, as agreed with it)
          [--purposes a,b] the purposes the partner agreed its data may serve (refused if they exclude the federation's)
  rounds  --federation ID --count R [--wait]                      → schedules R rounds (--wait: exit 1 if any failed)
  show    --federation ID                                         → federation, rounds, models
  watch   --federation ID [--rounds N] [--json]                   → live events: phases, reports, dropouts, ledger
          (any token: --token with a partner's enrollment token shows only that partner's events)
  list                                                            → every federation with its status
  archive --federation ID     no more rounds or enrollments, tokens revoked; everything is kept
  delete  --federation ID     deletes model weights and per-partner records; keeps the audit log,
                              the privacy ledger, the config, round outcomes and model lineage

Common: --coordinator URL (default http://127.0.0.1:7300), --json

Example:
  fedmart schema infer --csv sample.csv --label y --drop duration --out schema.json
  fedmart federation create --name "bank marketing" --schema schema.json
  fedmart federation enroll --federation f_123 --partner brand-a
  fedmart federation rounds --federation f_123 --count 10 --wait`;

const SCHEMA_USAGE = `fedmart schema infer --csv FILE --label COL [--positive VALUE] [--sep CHAR] [--drop COLS] [--out FILE.json]

Infers the data schema partners agree on (feature types, categories, label)
from a CSV, with standardisation statistics computed from that file (use a
representative sample, or let partners compute and combine their own sums).

Example:
  fedmart schema infer --csv bank.csv --sep ';' --label y --drop duration --out schema.json`;

export async function operatorApi(values: Record<string, unknown>): Promise<ApiClient> {
  const url = (values.coordinator as string | undefined) ?? 'http://127.0.0.1:7300';
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FedmartError('CONFIG_ERROR', `--coordinator must be an http(s) URL such as http://127.0.0.1:7300, got "${url}"`);
  let token = (values.token as string | undefined) ?? process.env.FEDMART_OPERATOR_TOKEN;
  if (!token) {
    const file = path.join(path.resolve((values['data-dir'] as string | undefined) ?? '.fedmart'), 'operator.token');
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch {
      throw new FedmartError('CONFIG_ERROR', `no operator token: pass --token, set FEDMART_OPERATOR_TOKEN, or run where ${file} exists (the coordinator writes it on start)`);
    }
  }
  return new ApiClient(url, token);
}

const out = (values: Record<string, unknown>, json: unknown, text: string) => process.stdout.write(values.json ? JSON.stringify(json) + '\n' : text + '\n');

export async function federationCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE + '\n');
    return sub ? 0 : 2;
  }
  const { values } = parseFlags(`federation ${sub}`, rest, {
    coordinator: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' },
    name: { type: 'string' }, schema: { type: 'string' }, strategy: { type: 'string' }, 'min-clients': { type: 'string' }, hidden: { type: 'string' },
    purpose: { type: 'string' }, purposes: { type: 'string' }, 'requires-approval': { type: 'boolean' },
    'local-epochs': { type: 'string' }, 'learning-rate': { type: 'string' }, 'batch-size': { type: 'string' },
    mode: { type: 'string' }, 'label-holder': { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, parties: { type: 'string' }, id: { type: 'string' },
    'id-rule': { type: 'string' }, model: { type: 'string' }, epochs: { type: 'string' }, noise: { type: 'string' }, 'test-fraction': { type: 'string' }, 'round-timeout': { type: 'string' }, seed: { type: 'string' },
    psi: { type: 'string' }, 'embedding-dp': { type: 'string' }, 'embedding-clip': { type: 'string' }, 'gradient-clip': { type: 'string' }, delta: { type: 'string' },
    federation: { type: 'string' }, partner: { type: 'string' }, 'expires-in': { type: 'string' }, 'max-examples': { type: 'string' }, count: { type: 'string' }, wait: { type: 'boolean' }, rounds: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const cmd = `federation ${sub}`;
  switch (sub) {
    case 'create': {
      if (values.mode === 'vertical') return createVertical(cmd, values);
      if (values.mode !== undefined && values.mode !== 'horizontal') throw new FedmartError('CONFIG_ERROR', `${cmd}: --mode must be horizontal or vertical, got "${String(values.mode)}"`);
      const name = requireString(cmd, values, 'name', 'a name for the federation');
      const schema = await readSchemaFile(requireString(cmd, values, 'schema', 'the agreed data schema, e.g. from "fedmart schema infer"'));
      const strategy = (values.strategy as string | undefined) ?? 'fedavg';
      if (!(STRATEGY_IDS as readonly string[]).includes(strategy)) throw new FedmartError('CONFIG_ERROR', `${cmd}: unknown strategy "${strategy}"; choose one of: ${STRATEGY_IDS.join(', ')}`);
      const hidden = typeof values.hidden === 'string' ? values.hidden.split(',').filter(Boolean).map((h) => Number(h)) : [...DEFAULT_MODEL_HIDDEN];
      if (hidden.some((h) => !Number.isInteger(h) || h < 1 || h > 4096)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --hidden must be comma-separated layer sizes from 1 to 4096 (or "" for logistic regression), got "${String(values.hidden)}"`);
      const lr = values['learning-rate'] === undefined ? DEFAULT_LOCAL_TRAIN.learningRate : Number(values['learning-rate']);
      if (!(lr > 0 && lr <= 10)) throw new FedmartError('CONFIG_ERROR', `${cmd}: --learning-rate must be a number in (0, 10], got "${String(values['learning-rate'])}"`);
      const config = {
        model: { kind: 'mlp', inputDim: featureDim(schema), hidden },
        strategy,
        localTrain: { ...DEFAULT_LOCAL_TRAIN, localEpochs: intFlag(cmd, values, 'local-epochs', 1, 1, 1000), batchSize: intFlag(cmd, values, 'batch-size', DEFAULT_LOCAL_TRAIN.batchSize, 1, 65536), learningRate: lr },
        minClients: intFlag(cmd, values, 'min-clients', 2, 1, 100_000),
        dataSchema: schema,
        ...(values.purpose !== undefined ? { purpose: values.purpose } : {}),
        ...(values['requires-approval'] ? { release: { requiresApproval: true } } : {}),
      };
      const api = await operatorApi(values);
      const r = await api.post<{ federation: { id: string }; model: { paramCount: number } }>('/api/v1/federations', { name, config });
      out(values, r, `created federation ${r.federation.id} ("${name}"): ${strategy}, model mlp ${config.model.inputDim}→${hidden.join('→')}${hidden.length ? '→' : ''}1 (${r.model.paramCount} parameters)`);
      return 0;
    }
    case 'enroll': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const partner = requireString(cmd, values, 'partner', "the partner's name");
      const expiresInSeconds = intFlag(cmd, values, 'expires-in', 7 * 86_400, 60, 365 * 86_400);
      const maxExamples = values['max-examples'] === undefined ? undefined : intFlag(cmd, values, 'max-examples', 1, 1, 2 ** 31 - 1);
      const api = await operatorApi(values);
      const r = await api.post<{ token: string; enrollment: { expiresAt: string } }>(`/api/v1/federations/${encodeURIComponent(fed)}/enrollments`, { partner, expiresInSeconds, ...(maxExamples !== undefined ? { maxExamples } : {}), ...(typeof values.purposes === 'string' ? { purposes: values.purposes.split(',').map((x) => x.trim()).filter(Boolean) } : {}) });
      if (values.json) out(values, r, '');
      else {
        progress(`enrolled ${partner} in ${fed}; the token expires ${r.enrollment.expiresAt}. Give it to the partner privately; they run:`);
        progress(`  FEDMART_TOKEN=<token> fedmart partner --coordinator ${api.baseUrl} --data their-data.csv`);
        process.stdout.write(r.token + '\n');
      }
      return 0;
    }
    case 'rounds': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const count = intFlag(cmd, values, 'count', 1, 1, 10_000);
      const api = await operatorApi(values);
      const fv = await api.get<{ federation: { config: { mode?: string } } }>(`/api/v1/federations/${encodeURIComponent(fed)}`);
      if (fv.federation.config.mode === 'vertical') return verticalRounds(api, fed, count, values);
      const before = (await api.get<{ rounds: { number: number }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`)).rounds.length;
      const r = await api.post<{ scheduleId: string }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`, { count });
      if (!values.wait) {
        out(values, r, `scheduled ${count} round(s) (schedule ${r.scheduleId}); follow them with: fedmart federation show --federation ${fed}`);
        return 0;
      }
      return waitForSchedule(api, r.scheduleId, values, before);
    }
    case 'watch': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const api = await operatorApi(values);
      return watchFederation(api, fed, { json: values.json === true, ...(values.rounds !== undefined ? { rounds: intFlag(cmd, values, 'rounds', 1, 1, 1_000_000) } : {}) });
    }
    case 'list': {
      const api = await operatorApi(values);
      const r = await api.get<{ federations: { id: string; name: string; status: string; createdAt: string; config: { task?: string; strategy: string; purpose?: string } }[] }>('/api/v1/federations');
      out(values, r, r.federations.map((f) => `${f.id}  ${f.status.padEnd(8)}  ${(f.config.task ?? 'binary').padEnd(14)}  ${f.config.strategy.padEnd(8)}  ${(f.config.purpose ?? '-').padEnd(19)}  ${f.createdAt}  "${f.name}"`).join('\n') || 'no federations');
      return 0;
    }
    case 'archive':
    case 'delete': {
      const fed = requireString(cmd, values, 'federation', 'the federation id (fedmart federation list)');
      const api = await operatorApi(values);
      const r = await api.request<{ status: string; retention: { kept: string[]; deleted: string[] } }>(sub === 'archive' ? 'POST' : 'DELETE', `/api/v1/federations/${encodeURIComponent(fed)}${sub === 'archive' ? '/archive' : ''}`, sub === 'archive' ? {} : undefined);
      out(values, r, `${fed}: ${r.status}\n  kept: ${r.retention.kept.join('; ')}${r.retention.deleted.length ? `\n  deleted: ${r.retention.deleted.join('; ')}` : ''}`);
      return 0;
    }
    case 'show': {
      const fed = requireString(cmd, values, 'federation', 'the federation id');
      const api = await operatorApi(values);
      const f = await api.get<{ federation: { id: string; name: string; config: { strategy: string } }; connected: { partnerName: string }[]; identities?: { partnerName: string; identityFingerprint: string }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}`);
      const rounds = await api.get<{ rounds: { number: number; phase: string; reason: string | null }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`);
      const models = await api.get<{ models: { version: number; participants: string[]; metrics: Record<string, number> }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/models`);
      const text = [
        `${f.federation.id} "${f.federation.name}" (${f.federation.config.strategy}); connected: ${f.connected.map((c) => c.partnerName).join(', ') || 'none'}`,
        ...(f.identities ?? []).map((x) => `  identity ${x.partnerName}: ${x.identityFingerprint}`),
        ...rounds.rounds.map((x) => `  round ${x.number}: ${x.phase}${x.reason ? ` (${x.reason})` : ''}`),
        ...models.models.map((m) => `  model v${m.version}: ${m.participants.length} participants${m.metrics.eval_auc !== undefined ? `, validation AUC ${m.metrics.eval_auc.toFixed(4)}` : ''}`),
      ].join('\n');
      const isVertical = (f.federation.config as { mode?: string }).mode === 'vertical';
      const vertical = isVertical ? await api.get<{ spec: unknown; connected: string[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/vertical`).catch(() => undefined) : undefined;
      const vtext = vertical === undefined ? '' : `\n  vertical parties connected: ${vertical.connected.join(', ') || 'none'}` + rounds.rounds.map((x) => {
        const m = (x as { metrics?: Record<string, number> | null }).metrics;
        if (m?.psi_intersection === undefined) return '';
        if (x.phase === 'checked') return `\n  round ${x.number}: overlap check (PSI size only): ${m.psi_intersection} customers held by every party, in ${m.psi_seconds} s`;
        return `\n  round ${x.number}: PSI ${m.psi_intersection} shared customers in ${m.psi_seconds} s, test AUC ${m.auc?.toFixed(4)} (label holder alone ${m.label_holder_only_auc?.toFixed(4)})`;
      }).join('');
      const privacy = vertical === undefined ? undefined : await api.get<PrivacyReport>(`/api/v1/federations/${encodeURIComponent(fed)}/privacy`).catch(() => undefined);
      const ptext = (privacy?.totals ?? []).filter((x) => x.rounds > 0).map((x) => `\n  privacy (${x.level} level) ${x.scope === 'federation' ? 'federation' : x.partnerName}: epsilon ${x.epsilon.toFixed(4)} (delta ${x.delta}) over ${x.rounds} charge(s)${x.cap !== null ? `, cap ${x.cap}` : ''}`).join('');
      out(values, { ...f, rounds: rounds.rounds, models: models.models, ...(vertical ? { vertical } : {}), ...(privacy ? { privacy: privacy.totals } : {}) }, text + vtext + ptext);
      return 0;
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `federation: unknown subcommand "${sub}"; choose one of: create, enroll, rounds, show, watch, list, archive, delete`);
  }
}

export async function schemaCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'infer') {
    process.stdout.write(SCHEMA_USAGE + '\n');
    return sub === '--help' || sub === '-h' ? 0 : 2;
  }
  const { values } = parseFlags('schema infer', rest, { csv: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, sep: { type: 'string' }, drop: { type: 'string' }, out: { type: 'string' } });
  if (values.help) {
    process.stdout.write(SCHEMA_USAGE + '\n');
    return 0;
  }
  const csv = requireString('schema infer', values, 'csv', 'a CSV with the columns partners will use');
  const label = requireString('schema infer', values, 'label', 'the binary label column');
  const table = await readTableFile(csv, { flag: '--csv', ...(typeof values.sep === 'string' ? { sep: values.sep } : {}) });
  const drop = typeof values.drop === 'string' ? values.drop.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const schema0 = inferSchema(table, { label, ...(typeof values.positive === 'string' ? { positive: values.positive } : {}), drop, source: csv, highCardinality: 'top' });
  const schema = applyNumericStats(schema0, computeNumericStats(table, schema0));
  if (typeof values.out === 'string') {
    await writeSchemaFile(values.out, schema);
    progress(`wrote ${values.out}: ${schema.features.length} features (${featureDim(schema)} encoded), label ${schema.label} = ${schema.positive.join('|')}`);
  } else process.stdout.write(JSON.stringify(schema, null, 2) + '\n');
  return 0;
}

/** `federation create --mode vertical`: parties, their declared columns, the ID column and the model; validated by the coordinator too. */
async function createVertical(cmd: string, values: Record<string, unknown>): Promise<number> {
  const name = requireString(cmd, values, 'name', 'a name for the federation');
  const lhSpec = requireString(cmd, values, 'label-holder', 'the label holder and its columns, e.g. platform:age,balance');
  const [lh] = parsePartiesFlag(lhSpec);
  if (lh === undefined || lh.party === '' || lh.columns.length === 0) throw new FedmartError('CONFIG_ERROR', `${cmd}: --label-holder must be NAME:col,col (the label holder's party name and its feature columns), got "${lhSpec}"`);
  const fhSpec = requireString(cmd, values, 'parties', 'the feature holders and their columns, e.g. "brand-a:job,education;brand-b:loan"');
  const fhs = parsePartiesFlag(fhSpec);
  const bad = fhs.find((f) => f.party === '' || f.columns.length === 0);
  if (fhs.length === 0 || bad) throw new FedmartError('CONFIG_ERROR', `${cmd}: --parties must be "NAME:col,col;NAME:col,..." (each feature holder and its columns), got "${fhSpec}"`);
  const model = (values.model as string | undefined) ?? 'lr';
  if (model !== 'lr' && model !== 'splitnn') throw new FedmartError('CONFIG_ERROR', `${cmd}: --model must be lr or splitnn, got "${model}"`);
  const num = (flag: string) => (values[flag] === undefined ? undefined : Number(values[flag]));
  for (const f of ['embedding-clip', 'gradient-clip', 'delta']) if (values[f] !== undefined && values['embedding-dp'] === undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --${f} is a term of --embedding-dp; pass --embedding-dp Z too`);
  const embeddingDp = () => ({ noiseMultiplier: num('embedding-dp'), ...(values['embedding-clip'] !== undefined ? { clip: num('embedding-clip') } : {}), ...(values['gradient-clip'] !== undefined ? { gradientClip: num('gradient-clip') } : {}), ...(values.delta !== undefined ? { delta: num('delta') } : {}) });
  const vertical = {
    labelHolder: { party: lh.party, label: requireString(cmd, values, 'label', 'the binary label column the label holder holds'), ...(typeof values.positive === 'string' ? { positive: values.positive } : {}), columns: lh.columns },
    featureHolders: fhs,
    idColumn: requireString(cmd, values, 'id', 'the customer-ID column every party holds'),
    ...(values['id-rule'] !== undefined ? { idNormalisation: values['id-rule'] } : {}),
    model,
    epochs: intFlag(cmd, values, 'epochs', 20, 1, 1000),
    ...(values['batch-size'] !== undefined ? { batchSize: intFlag(cmd, values, 'batch-size', 256, 16, 1_000_000) } : {}),
    ...(values['learning-rate'] !== undefined ? { learningRate: num('learning-rate') } : {}),
    ...(values['test-fraction'] !== undefined ? { testFraction: num('test-fraction') } : {}),
    ...(values['round-timeout'] !== undefined ? { roundTimeoutSeconds: intFlag(cmd, values, 'round-timeout', 3600, 10, 86_400) } : {}),
    ...(values.seed !== undefined ? { seed: intFlag(cmd, values, 'seed', 42, 0, 2 ** 31 - 1) } : {}),
    ...(values.psi !== undefined ? { psi: values.psi } : {}),
    protections: model === 'lr' ? { ckks: true, ...(values['embedding-dp'] !== undefined ? { embeddingDp: embeddingDp() } : {}) } : values['embedding-dp'] !== undefined ? { embeddingDp: embeddingDp(), ...(values.noise !== undefined ? { embeddingNoise: num('noise') } : {}) } : { embeddingNoise: num('noise') ?? 0 },
  };
  if (model === 'lr' && values.noise !== undefined) throw new FedmartError('CONFIG_ERROR', `${cmd}: --noise adds Gaussian noise to split NN embeddings; vertical LR is protected by CKKS (use --model splitnn)`);
  const parsed = VerticalSpecSchema.safeParse(vertical);
  if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `${cmd}: ${formatIssues(parsed.error.issues)}`);
  // The coordinator's model field is nominal for a vertical federation: the parts live with the parties.
  const config = { mode: 'vertical', vertical: parsed.data, model: { kind: 'mlp', inputDim: 1, hidden: [] }, localTrain: { ...DEFAULT_LOCAL_TRAIN } };
  const api = await operatorApi(values);
  const r = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name, config });
  out(values, r, `created vertical federation ${r.federation.id} ("${name}"): ${model}, label holder ${lh.party}, feature holders ${fhs.map((f) => f.party).join(', ')}; enroll each party with fedmart federation enroll --federation ${r.federation.id} --partner NAME`);
  return 0;
}

/** `federation rounds` on a vertical federation: one coordinator-driven round after another, each waited for (commit or fail). */
async function verticalRounds(api: ApiClient, fed: string, count: number, values: Record<string, unknown>): Promise<number> {
  type Round = { id: string; number: number; phase: string; reason: string | null; metrics: Record<string, number> | null };
  const done: Round[] = [];
  for (let k = 0; k < count; k++) {
    const r = await api.post<{ roundId: string; number: number }>(`/api/v1/federations/${encodeURIComponent(fed)}/vertical/rounds`, {});
    progress(`round ${r.number} started`);
    let last = '';
    for (;;) {
      const x = (await api.get<{ round: Round }>(`/api/v1/rounds/${encodeURIComponent(r.roundId)}`)).round;
      if (x.phase !== last) progress(`round ${x.number}: ${(last = x.phase)}${x.reason ? ` (${x.reason})` : ''}`);
      if (x.phase === 'committed' || x.phase === 'failed' || x.phase === 'checked') {
        done.push(x);
        break;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    if (done.at(-1)!.phase === 'failed') break;
  }
  const ok = done.filter((x) => x.phase === 'committed' || x.phase === 'checked').length;
  out(values, { rounds: done }, `${ok} of ${count} vertical round(s) ${done.some((x) => x.phase === 'checked') ? `checked (overlap: ${done.at(-1)?.metrics?.psi_intersection} customers held by every party)` : 'committed'}${done.at(-1)?.metrics?.auc !== undefined ? `; test AUC ${done.at(-1)!.metrics!.auc!.toFixed(4)}` : ''}`);
  return ok === count ? 0 : 1;
}
