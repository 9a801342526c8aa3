/**
 * `fedmart predict`: score rows with a published joint model (a model file,
 * or a federation's version on a coordinator) and, with `--explain`, list
 * each row's top contributions in the original feature names and values.
 *
 * Scoring runs the float64 forward pass of `shared/src/explain/mlp.ts`, the
 * same one the explanations use, so a row's contributions add up to the
 * logit printed beside them; no tensor backend is started.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { FedmartError } from '@fedmart/shared/errors';
import { DatasetSchemaSchema, encodeTable, type DatasetSchema } from '@fedmart/shared/data/index';
import { denseModel, featureGroups, assertSchemaFitsModel, baselineFromValues, explainRow, forwardLogit, sigmoid, type Contribution } from '@fedmart/shared/explain/index';
import { rocAuc, logLoss } from '@fedmart/shared/metrics';
import type { ModelSpec } from '@fedmart/shared/model';
import { HttpModelRegistry } from '@fedmart/scenarios';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { parseFlags, requireString, intFlag } from './args.ts';
import { ApiClient } from './api-client.ts';
import { readModelFile } from './model-file.ts';
import { readFile } from 'node:fs/promises';
import { operatorApi } from './federation.ts';

export const PREDICT_USAGE = `fedmart predict --model <FILE | FEDERATION/VERSION> --csv ROWS.csv [options]

Scores rows with a published model. --model is a model file (written by
"fedmart simulate --save-model FILE") or a federation's model on a
coordinator: f_abc/3 (version 3) or f_abc/latest. Rows are encoded with the
model's data schema (the file's, or the federation's dataSchema); extra
columns are ignored and the label column is optional — when it is there,
AUC and log loss are printed too.

  --model FILE|ID/VER   the model
  --csv FILE            rows to score (CSV or .jsonl with a header row)
  --sep CHAR            field separator (default: detected from the header)
  --explain             add each row's top contributions (logit units): exact for
                        logistic regression, Integrated Gradients for an MLP, with the
                        completeness error (Σ contributions vs logit − baseline logit)
  --top K               contributions listed per row (default 5)
  --coordinator URL     for FEDERATION/VERSION (default http://127.0.0.1:7300)
  --token T             partner or operator token (or FEDMART_TOKEN, FEDMART_OPERATOR_TOKEN)
  --json                print one JSON object on stdout

Vertical federations (every party computes its part; combined at the label holder):
  fedmart predict --federation F --id ID [--id ID2 …] [--ids FILE] [--explain] [--json]
  --ids FILE            one customer ID per line (batch scoring)
  (operator token: --token, FEDMART_OPERATOR_TOKEN or <--data-dir>/operator.token)

Example:
  fedmart predict --model bank-model.json --csv customers.csv --sep ';' --explain --top 3 --json
  FEDMART_TOKEN=… fedmart predict --model f_abc/latest --coordinator http://platform:7300 --csv customers.csv --explain`;

/** A model ready to score: spec, weights, schema, baseline values and where it came from. */
interface LoadedModel {
  spec: ModelSpec;
  weights: Float32Array;
  schema: DatasetSchema;
  baseline?: number[];
  source: Record<string, unknown>;
}

const REGISTRY_REF = /^([A-Za-z0-9_.-]+)\/(\d+|latest)$/;

async function loadModel(ref: string, values: Record<string, unknown>): Promise<LoadedModel> {
  const m = REGISTRY_REF.exec(ref);
  if (!m || existsSync(ref)) {
    const f = await readModelFile(ref);
    return { spec: f.spec, weights: f.weights, schema: f.dataSchema, ...(f.baseline ? { baseline: f.baseline } : {}), source: { file: ref, sha256: f.sha256, ...f.metadata } };
  }
  const [, federation, ver] = m as unknown as [string, string, string];
  const url = (values.coordinator as string | undefined) ?? 'http://127.0.0.1:7300';
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FedmartError('CONFIG_ERROR', `predict: --coordinator must be an http(s) URL such as http://127.0.0.1:7300, got "${url}"`);
  const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN ?? process.env.FEDMART_OPERATOR_TOKEN;
  if (!token) throw new FedmartError('CONFIG_ERROR', `predict: --model ${ref} is read from a coordinator, which needs a token: pass --token or set FEDMART_TOKEN (a partner's enrollment token or the operator token)`);
  const api = new ApiClient(url, token);
  const fed = await api.get<{ federation: { config: { dataSchema?: unknown } } }>(`/api/v1/federations/${encodeURIComponent(federation)}`);
  const raw = fed.federation.config.dataSchema;
  if (raw === undefined) {
    throw new FedmartError('CONFIG_ERROR', `predict: federation ${federation} has no dataSchema, so its rows cannot be encoded; create federations with "fedmart federation create --schema FILE.json", or score with a model file`);
  }
  const schema = DatasetSchemaSchema.safeParse(raw);
  if (!schema.success) throw new FedmartError('UNPROCESSABLE', `predict: the dataSchema of federation ${federation} is invalid (${schema.error.issues[0]?.message}); fix the federation's schema`);
  const registry = new HttpModelRegistry(url, token, fetch, (b) => createHash('sha256').update(b).digest('hex'));
  const model = await registry.load(federation, ver === 'latest' ? 'latest' : Number(ver));
  if (model.spec.kind !== 'mlp') throw new FedmartError('CONFIG_ERROR', `predict: federation ${federation} trains a scenario task's model (a tensor layout), not the tabular classifier; use that scenario's command (for example "fedmart recommend")`);
  return { spec: model.spec, weights: model.weights, schema: schema.data, source: { federation, version: model.version, sha256: model.sha256, metrics: model.metrics } };
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

function showValue(c: Contribution): string {
  return c.value === null ? `${c.feature}=(missing)` : `${c.feature}=${c.value}`;
}

/**
 * Run `fedmart predict`.
 * @param argv - arguments after `predict`
 * @returns exit code 0 on success
 * @throws FedmartError CONFIG_ERROR on bad flags, DATA_ERROR on unreadable or mismatched files
 */
export async function predictCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('predict', argv, {
    model: { type: 'string' }, csv: { type: 'string' }, sep: { type: 'string' }, explain: { type: 'boolean' }, top: { type: 'string' },
    coordinator: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' },
    federation: { type: 'string' }, id: { type: 'string', multiple: true }, ids: { type: 'string' }, 'data-dir': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(PREDICT_USAGE + '\n');
    return 0;
  }
  if (values.federation !== undefined) return predictVertical(values);
  const ref = requireString('predict', values, 'model', 'a model file or FEDERATION/VERSION such as f_abc/latest');
  const csv = requireString('predict', values, 'csv', 'the rows to score');
  const top = intFlag('predict', values, 'top', 5, 1, 10_000);
  const sep = values.sep as string | undefined;
  if (sep !== undefined && sep.length !== 1 && sep !== '\\t') throw new FedmartError('CONFIG_ERROR', `predict: --sep must be one character, got "${sep}"`);

  const loaded = await loadModel(ref, values);
  assertSchemaFitsModel(loaded.spec.inputDim, loaded.schema);
  const table = await readTableFile(csv, { flag: '--csv', ...(sep === undefined ? {} : { sep: sep === '\\t' ? '\t' : sep }) });
  const enc = encodeTable(table, loaded.schema, { requireLabel: false, source: csv });
  const model = denseModel(loaded.spec, loaded.weights);
  const groups = featureGroups(loaded.schema);
  const baseline = baselineFromValues(loaded.baseline, groups);
  const d = enc.d;

  const predictions: Record<string, unknown>[] = [];
  const logits = new Float64Array(enc.n);
  let maxError = 0;
  for (let r = 0; r < enc.n; r++) {
    if (values.explain) {
      const e = explainRow(model, groups, baseline, enc.x, r * d);
      logits[r] = e.logit;
      maxError = Math.max(maxError, e.completenessError);
      predictions.push({
        row: r + 1, probability: r6(e.probability), logit: r6(e.logit), baselineLogit: r6(e.baselineLogit),
        contributions: e.contributions.slice(0, top).map((c) => ({ feature: c.feature, value: c.value, contribution: r6(c.contribution) })),
        completenessError: Number(e.completenessError.toPrecision(3)),
      });
    } else {
      logits[r] = forwardLogit(model, enc.x, r * d);
      predictions.push({ row: r + 1, probability: r6(sigmoid(logits[r]!)), logit: r6(logits[r]!) });
    }
  }

  // Labels are optional; score only when every row has one and both classes occur.
  const labelCol = table.columns.indexOf(loaded.schema.label);
  let metrics: { auc: number; logloss: number } | undefined;
  if (labelCol !== -1 && enc.n > 0 && table.rows.every((row) => (row[labelCol] ?? '') !== '')) {
    const probs = Array.from(logits, sigmoid);
    const auc = rocAuc(probs, enc.y);
    if (Number.isFinite(auc)) metrics = { auc: r6(auc), logloss: r6(logLoss(probs, enc.y)) };
  }
  const method = loaded.spec.hidden.length === 0 ? 'linear-exact' : 'integrated-gradients';
  const result = {
    model: { ...loaded.source, spec: loaded.spec },
    rows: enc.n,
    ...(values.explain ? { method, baseline: baseline.kind, maxCompletenessError: Number(maxError.toPrecision(3)) } : {}),
    ...(metrics ? { label: loaded.schema.label, ...metrics } : {}),
    predictions,
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  }
  const lines = [`${enc.n} row(s) scored with ${ref}${metrics ? `; AUC ${metrics.auc.toFixed(4)}, log loss ${metrics.logloss.toFixed(4)} against "${loaded.schema.label}"` : ''}`];
  if (values.explain) lines.push(`contributions in logit units vs the ${baseline.kind} baseline (${method}; max completeness error ${maxError.toExponential(2)})`);
  lines.push(`${'row'.padStart(5)}  probability  ${'logit'.padStart(8)}${values.explain ? '  top contributions' : ''}`);
  for (const p of predictions) {
    const cs = (p.contributions as Contribution[] | undefined)?.map((c) => `${showValue(c)} ${c.contribution >= 0 ? '+' : ''}${c.contribution.toFixed(3)}`).join(', ');
    lines.push(`${String(p.row).padStart(5)}  ${(p.probability as number).toFixed(4).padStart(11)}  ${(p.logit as number).toFixed(3).padStart(8)}${cs ? `  ${cs}` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

/** `fedmart predict --federation F --id ID …`: the vertical inference protocol through the coordinator. */
async function predictVertical(values: Record<string, unknown>): Promise<number> {
  const fed = values.federation as string;
  const ids = [...((values.id as string[] | undefined) ?? [])];
  if (typeof values.ids === 'string') {
    const text = await readFile(values.ids, 'utf8').catch(() => {
      throw new FedmartError('CONFIG_ERROR', `predict: cannot read --ids ${String(values.ids)}; give a file with one customer ID per line`);
    });
    ids.push(...text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean));
  }
  if (ids.length === 0) throw new FedmartError('CONFIG_ERROR', 'predict --federation: name the customers to score with --id ID (repeatable) or --ids FILE');
  if (values.model !== undefined || values.csv !== undefined) throw new FedmartError('CONFIG_ERROR', 'predict --federation scores customers by ID through the parties; do not pass --model or --csv with it');
  const api = await operatorApi(values);
  const r = await api.post<{ version: number; ids: string[]; p: number[]; contributions?: Record<string, number[]> }>(`/api/v1/federations/${encodeURIComponent(fed)}/vertical/predict`, { ids, explain: values.explain === true });
  if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
  else {
    process.stdout.write(`model v${r.version} of ${fed}\n`);
    r.ids.forEach((id, i) => {
      const c = r.contributions ? '  ' + Object.entries(r.contributions).map(([q, v]) => `${q} ${v[i]! >= 0 ? '+' : ''}${v[i]!.toFixed(3)}`).join(', ') : '';
      process.stdout.write(`${id}\t${r.p[i]!.toFixed(6)}${c}\n`);
    });
  }
  return 0;
}
