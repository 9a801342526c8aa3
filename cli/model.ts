/**
 * `fedmart model list|show|export|publish|approve|rollback|retire`: model
 * release (issue 13, item 3) against a running coordinator, and the portable
 * export (`@fedmart/shared/model-export`: TF.js layers `model.json` +
 * `weights.bin` + `manifest.json`) that loads back in the registry
 * (`ExportModelRegistry`) and in plain TensorFlow.js.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { EXPORT_FILES, MODEL_EXPORT_FORMAT, tfjsModelJson, type ModelExportManifest } from '@fedmart/shared/model-export';
import { ExportModelRegistry, HttpModelRegistry, sha256Hex } from '@fedmart/scenarios/model-registry';
import { parseFlags, requireString } from './args.ts';
import { operatorApi } from './federation.ts';

const USAGE = `fedmart model <list|show|export|publish|approve|rollback|retire> --federation ID [flags]

Versions move candidate → approved → published → retired. Scenarios and
fedmart predict/recommend/price read the published version. With the
federation policy release: { requiresApproval: true }, publishing needs an
operator's request (publish) and a compliance officer's approval (approve,
with a compliance token), in either order, by two different people.

  list     --federation ID                           versions with their release state
  show     --federation ID --version N               one version's metadata and lineage
  export   --federation ID [--version N] --out DIR   model.json + weights.bin (TF.js layers format) + manifest.json
                                                     (default: the published version)
  publish  --federation ID --version N               operator: publish, or ask to publish
  approve  --federation ID --version N               compliance: approve (publishes when already asked)
  rollback --federation ID [--to N]                  operator: re-publish an earlier published version
  retire   --federation ID --version N               operator

Common: --coordinator URL, --token T (else FEDMART_OPERATOR_TOKEN or <--data-dir>/operator.token), --json

Example:
  fedmart model publish --federation f_123 --version 4
  FEDMART_OPERATOR_TOKEN=$COMPLIANCE_TOKEN fedmart model approve --federation f_123 --version 4
  fedmart model export --federation f_123 --out ./bank-model`;

interface ModelMeta {
  id: string; version: number; roundId: string | null; parentId: string | null; strategy: string; participants: string[]; metrics: Record<string, number>;
  spec: ModelExportManifest['spec']; paramCount: number; sha256: string; encrypted: boolean; createdAt: string; releaseStatus?: string; publishRequestedBy?: string | null; approvedBy?: string | null; publishedAt?: string | null;
}

function versionFlag(values: Record<string, unknown>, name = 'version'): number {
  const raw = values[name];
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0) throw new FedmartError('CONFIG_ERROR', `model: --${name} must be a version number (0, 1, …; see fedmart model list), got "${String(raw)}"`);
  return n;
}

/**
 * Read an export directory back (for the registry or a test).
 * @param dir - the directory written by `fedmart model export`
 * @returns the three files, parsed
 */
export async function readModelExport(dir: string): Promise<{ manifest: ModelExportManifest; modelJson: ReturnType<typeof tfjsModelJson>; weights: Uint8Array }> {
  try {
    const [m, j, w] = await Promise.all([readFile(path.join(dir, EXPORT_FILES.manifest), 'utf8'), readFile(path.join(dir, EXPORT_FILES.model), 'utf8'), readFile(path.join(dir, EXPORT_FILES.weights))]);
    return { manifest: JSON.parse(m) as ModelExportManifest, modelJson: JSON.parse(j) as ReturnType<typeof tfjsModelJson>, weights: new Uint8Array(w.buffer, w.byteOffset, w.byteLength) };
  } catch (err) {
    throw new FedmartError('DATA_ERROR', `cannot read the model export in ${dir}: ${(err as Error).message}; pass a directory written by fedmart model export`, { cause: err });
  }
}

export async function modelCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE + '\n');
    return sub ? 0 : 2;
  }
  const { values } = parseFlags(`model ${sub}`, rest, {
    coordinator: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' },
    federation: { type: 'string' }, version: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' },
  });
  const fed = requireString(`model ${sub}`, values, 'federation', 'the federation id (fedmart federation list)');
  const api = await operatorApi(values);
  const base = `/api/v1/federations/${encodeURIComponent(fed)}/models`;
  const print = (json: unknown, text: string) => process.stdout.write(values.json ? JSON.stringify(json) + '\n' : text + '\n');
  switch (sub) {
    case 'list': {
      const r = await api.get<{ models: ModelMeta[] }>(base);
      print(r, r.models.map((m) => `v${m.version}  ${(m.releaseStatus ?? '?').padEnd(9)}  ${m.strategy.padEnd(8)}  ${m.createdAt}${m.roundId ? `  round ${m.roundId}` : '  (initial)'}`).join('\n') || 'no versions');
      return 0;
    }
    case 'show': {
      const r = await api.get<{ model: ModelMeta }>(`${base}/${versionFlag(values)}`);
      print(r, JSON.stringify(r.model, null, 2));
      return 0;
    }
    case 'publish':
    case 'approve':
    case 'retire': {
      const r = await api.post<{ version: number; status: string; awaiting?: string }>(`${base}/${versionFlag(values)}/${sub}`, {});
      print(r, `version ${r.version}: ${r.status}${r.awaiting ? ` (awaiting ${r.awaiting === 'approval' ? "a compliance officer's approval: fedmart model approve" : "an operator's publish request: fedmart model publish"})` : ''}`);
      return 0;
    }
    case 'rollback': {
      const r = await api.post<{ version: number; status: string }>(`${base}/rollback`, values.to === undefined ? {} : { to: versionFlag(values, 'to') });
      print(r, `rolled back: version ${r.version} is published`);
      return 0;
    }
    case 'export': {
      const out = requireString('model export', values, 'out', 'the directory to write model.json, weights.bin and manifest.json into');
      const version = values.version === undefined ? (await api.get<{ version: number }>(`${base}/published`)).version : versionFlag(values);
      const { model: meta } = await api.get<{ model: ModelMeta }>(`${base}/${version}`);
      if (meta.encrypted) throw new FedmartError('UNPROCESSABLE', `model export: version ${version} of ${fed} is CKKS-encrypted; only the partners hold the plaintext model`);
      // The registry checks the weights' SHA-256 against the version's metadata (and refuses unreleased versions).
      const published = await new HttpModelRegistry(api.baseUrl, api.token, fetch).load(fed, version);
      const { federation } = await api.get<{ federation: { config: { task?: string; dataSchema?: unknown } } }>(`/api/v1/federations/${encodeURIComponent(fed)}`);
      const privacy = await api.get<{ totals?: unknown }>(`/api/v1/federations/${encodeURIComponent(fed)}/privacy`).then((r) => r.totals ?? null, () => null);
      const bytes = new Uint8Array(published.weights.buffer, published.weights.byteOffset, published.weights.byteLength);
      const manifest: ModelExportManifest = {
        format: MODEL_EXPORT_FORMAT, federationId: fed, version, task: federation.config.task ?? 'binary', spec: published.spec, paramCount: published.weights.length, sha256: sha256Hex(bytes),
        ...(federation.config.dataSchema !== undefined ? { dataSchema: federation.config.dataSchema } : {}), metrics: published.metrics,
        lineage: { modelVersionId: meta.id, roundId: meta.roundId, parentId: meta.parentId, strategy: meta.strategy, participants: meta.participants, createdAt: meta.createdAt, releaseStatus: meta.releaseStatus, publishRequestedBy: meta.publishRequestedBy ?? null, approvedBy: meta.approvedBy ?? null },
        privacy, exportedAt: new Date().toISOString(), files: { model: EXPORT_FILES.model, weights: EXPORT_FILES.weights },
      };
      await mkdir(out, { recursive: true });
      await writeFile(path.join(out, EXPORT_FILES.weights), bytes);
      await writeFile(path.join(out, EXPORT_FILES.model), JSON.stringify(tfjsModelJson(published.spec, 'fedmart 0.1.0'), null, 1) + '\n');
      await writeFile(path.join(out, EXPORT_FILES.manifest), JSON.stringify(manifest, null, 2) + '\n');
      // Read it back through the registry before reporting success.
      await new ExportModelRegistry(await readModelExport(out)).load(fed, version);
      print({ out, version, sha256: manifest.sha256 }, `exported ${fed} v${version} to ${out} (model.json + weights.bin, TF.js layers format; manifest.json)`);
      return 0;
    }
    default:
      throw new FedmartError('CONFIG_ERROR', `model: unknown subcommand "${sub}"; use list, show, export, publish, approve, rollback or retire (fedmart model --help)`);
  }
}
