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

const USAGE = `fedmart federation <create|enroll|rounds|show> [flags]

Operator commands against a running coordinator. The operator token is read
from --token, else FEDMART_OPERATOR_TOKEN, else <--data-dir>/operator.token
(default ./.fedmart/operator.token).

  create  --name NAME --schema FILE.json [--strategy fedavg] [--min-clients 2]
          [--hidden 32] [--local-epochs 1] [--learning-rate 0.01] [--batch-size 256]
  enroll  --federation ID --partner NAME [--expires-in SECONDS] [--max-examples N]   → prints the partner's token
          (--max-examples: the most examples this partner is weighted by, as agreed with it)
  rounds  --federation ID --count R [--wait]                      → schedules R rounds
  show    --federation ID                                         → federation, rounds, models

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

async function operatorApi(values: Record<string, unknown>): Promise<ApiClient> {
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
    'local-epochs': { type: 'string' }, 'learning-rate': { type: 'string' }, 'batch-size': { type: 'string' },
    federation: { type: 'string' }, partner: { type: 'string' }, 'expires-in': { type: 'string' }, 'max-examples': { type: 'string' }, count: { type: 'string' }, wait: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const cmd = `federation ${sub}`;
  switch (sub) {
    case 'create': {
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
      const r = await api.post<{ token: string; enrollment: { expiresAt: string } }>(`/api/v1/federations/${encodeURIComponent(fed)}/enrollments`, { partner, expiresInSeconds, ...(maxExamples !== undefined ? { maxExamples } : {}) });
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
      const before = (await api.get<{ rounds: { number: number }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`)).rounds.length;
      const r = await api.post<{ scheduleId: string }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`, { count });
      if (!values.wait) {
        out(values, r, `scheduled ${count} round(s) (schedule ${r.scheduleId}); follow them with: fedmart federation show --federation ${fed}`);
        return 0;
      }
      type Round = { number: number; phase: string; reason: string | null; metrics: Record<string, number> | null };
      let rounds: Round[] = [];
      const seen = new Set<number>();
      for (;;) {
        rounds = (await api.get<{ rounds: Round[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/rounds`)).rounds.slice(before);
        for (const x of rounds) {
          if ((x.phase === 'committed' || x.phase === 'failed') && !seen.has(x.number)) {
            seen.add(x.number);
            progress(`round ${x.number} ${x.phase}${x.reason ? ` (${x.reason})` : ''}${x.metrics?.eval_auc !== undefined ? `, validation AUC ${x.metrics.eval_auc.toFixed(4)}` : ''}`);
          }
        }
        const schedule = (await api.get<{ schedules: { id: string; status: string; reason: string | null }[] }>(`/api/v1/federations/${encodeURIComponent(fed)}/schedules`)).schedules.find((s) => s.id === r.scheduleId);
        if (schedule && schedule.status !== 'pending' && schedule.status !== 'running') {
          out(values, { scheduleId: r.scheduleId, status: schedule.status, rounds }, `schedule ${schedule.status}${schedule.reason ? `: ${schedule.reason}` : ''}; ${rounds.filter((x) => x.phase === 'committed').length} of ${count} round(s) committed`);
          return schedule.status === 'done' ? 0 : 1;
        }
        await new Promise((res) => setTimeout(res, 500));
      }
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
      out(values, { ...f, rounds: rounds.rounds, models: models.models }, text);
      return 0;
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `federation: unknown subcommand "${sub}"; choose one of: create, enroll, rounds, show`);
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
  const table = await readTableFile(csv, typeof values.sep === 'string' ? { sep: values.sep } : {});
  const drop = typeof values.drop === 'string' ? values.drop.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const schema0 = inferSchema(table, { label, ...(typeof values.positive === 'string' ? { positive: values.positive } : {}), drop, source: csv, highCardinality: 'top' });
  const schema = applyNumericStats(schema0, computeNumericStats(table, schema0));
  if (typeof values.out === 'string') {
    await writeSchemaFile(values.out, schema);
    progress(`wrote ${values.out}: ${schema.features.length} features (${featureDim(schema)} encoded), label ${schema.label} = ${schema.positive.join('|')}`);
  } else process.stdout.write(JSON.stringify(schema, null, 2) + '\n');
  return 0;
}
