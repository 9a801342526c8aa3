/**
 * How scenarios get joint models: through a `ModelRegistry` (load by
 * federation + version), never through coordinator internals — the seam
 * tfjs uses for model IO (`tfjs-core/src/io/types.ts`), minus its global
 * singleton: registries are passed in.
 */
import { createHash } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { JointModelSpecSchema, jointParameterCount, type JointModelSpec } from '@fedmart/shared/task/layout';
import { decodeFloat32 } from '@fedmart/shared/codec';
import { z } from 'zod';
import { MODEL_EXPORT_FORMAT, ModelExportManifestSchema, tfjsModelJson } from '@fedmart/shared/model-export';

/** A published model: its spec, weights and lineage. */
export interface PublishedModel {
  federationId: string;
  version: number;
  /** The joint model's layout: the tabular MLP spec, or a scenario task's tensor layout. */
  spec: JointModelSpec;
  weights: Float32Array;
  sha256: string;
  metrics: Record<string, number>;
  participants: string[];
}

/** Load published models by federation and version (`'latest'` = the published one). */
export interface ModelRegistry {
  load(federationId: string, version: number | 'latest'): Promise<PublishedModel>;
}

const ModelMetaSchema = z.object({
  version: z.number().int().min(0),
  spec: JointModelSpecSchema,
  paramCount: z.number().int().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  metrics: z.record(z.string(), z.number()),
  participants: z.array(z.string()),
  encrypted: z.boolean().optional(),
  /** Release state (issue 13); absent from coordinators before model release. */
  releaseStatus: z.enum(['candidate', 'approved', 'published', 'retired']).optional(),
});

/** Minimal HTTP client surface (global `fetch` fits). */
export type Fetch = (url: string, init?: { headers?: Record<string, string> }) => Promise<{ ok: boolean; status: number; json(): Promise<unknown>; arrayBuffer(): Promise<ArrayBuffer> }>;

/** SHA-256 of the weight bytes, lower-case hex, as the coordinator stores it. */
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Reads published models from a coordinator's REST API. The weights'
 * SHA-256 is always checked against the version's metadata before they are
 * returned: a proxy, cache or disk that altered them makes `load` fail
 * instead of handing a scenario a silently different model.
 * @example
 * const registry = new HttpModelRegistry('http://127.0.0.1:7300', token, fetch);
 * const model = await registry.load('f_123', 'latest');
 */
export class HttpModelRegistry implements ModelRegistry {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly fetchImpl: Fetch,
    /** Computes the weights' SHA-256 (hex); default `node:crypto`. Verification itself is not optional. */
    private readonly sha256: (bytes: Uint8Array) => string = sha256Hex,
  ) {}

  private async get(path: string): Promise<{ json(): Promise<unknown>; arrayBuffer(): Promise<ArrayBuffer> }> {
    const res = await this.fetchImpl(this.baseUrl.replace(/\/+$/, '') + path, { headers: { authorization: `Bearer ${this.token}` } });
    if (!res.ok) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new FedmartError(res.status === 404 ? 'NOT_FOUND' : res.status === 401 ? 'UNAUTHENTICATED' : res.status === 403 ? 'FORBIDDEN' : 'UNAVAILABLE', `model registry: GET ${path} answered ${res.status}: ${body?.error?.message ?? 'no details'}`);
    }
    return res;
  }

  /**
   * Load one published model version.
   * @param federationId - the federation
   * @param version - a version number (one that was published), or `'latest'` for the federation's published version
   * @returns the spec, verified weights and lineage
   * @throws FedmartError NOT_FOUND / UNAUTHENTICATED / FORBIDDEN as the coordinator answers; UNPROCESSABLE for unreadable metadata, an encrypted model, or weights whose SHA-256 does not match
   */
  async load(federationId: string, version: number | 'latest'): Promise<PublishedModel> {
    let v = version;
    if (v === 'latest') {
      // The published version (issue 13: scenarios read published versions only, never a fresh candidate).
      const pub = (await (await this.get(`/api/v1/federations/${encodeURIComponent(federationId)}/models/published`)).json()) as { version?: unknown };
      if (typeof pub.version !== 'number') throw new FedmartError('NOT_FOUND', `federation ${federationId} has no published model yet`);
      v = pub.version;
    }
    const metaRaw = (await (await this.get(`/api/v1/federations/${encodeURIComponent(federationId)}/models/${v}`)).json()) as { model: unknown };
    const meta = ModelMetaSchema.safeParse(metaRaw.model);
    if (!meta.success) throw new FedmartError('UNPROCESSABLE', `model registry: version ${v} of ${federationId} has unreadable metadata`);
    // Never a version that was not released: candidates and approved-but-unpublished versions are refused (a
    // retired version was published once and may still be pinned by number; 'latest' is the published one).
    if (meta.data.releaseStatus === 'candidate' || meta.data.releaseStatus === 'approved') throw new FedmartError('FORBIDDEN', `model registry: version ${v} of ${federationId} is ${meta.data.releaseStatus}, not published; scenarios read published versions only (an operator publishes it with fedmart model publish)`);
    if (meta.data.encrypted) throw new FedmartError('UNPROCESSABLE', `model registry: version ${v} of ${federationId} is CKKS-encrypted (the coordinator never sees the joint model); load it from a partner that holds the key`);
    if (jointParameterCount(meta.data.spec) !== meta.data.paramCount) throw new FedmartError('UNPROCESSABLE', `model registry: spec and parameter count of version ${v} disagree`);
    const bytes = new Uint8Array(await (await this.get(`/api/v1/federations/${encodeURIComponent(federationId)}/models/${v}/weights`)).arrayBuffer());
    const got = this.sha256(bytes);
    if (got !== meta.data.sha256) {
      throw new FedmartError('UNPROCESSABLE', `model registry: weights of version ${v} of ${federationId} do not match their SHA-256 (expected ${meta.data.sha256.slice(0, 12)}…, got ${String(got).slice(0, 12)}…); refusing to use them — they were altered between the coordinator's store and here, load again or check the path`, { details: { expected: meta.data.sha256, got } });
    }
    return { federationId, version: meta.data.version, spec: meta.data.spec, weights: decodeFloat32(bytes, meta.data.paramCount), sha256: meta.data.sha256, metrics: meta.data.metrics, participants: meta.data.participants };
  }
}

/**
 * A registry over one exported model directory (`fedmart model export`, format in `@fedmart/shared/model-export`):
 * the manifest, `model.json` and `weights.bin` as read from disk. The weights' SHA-256 and their count are
 * checked against the manifest and the TF.js weights manifest before anything is returned.
 * @example
 * const registry = new ExportModelRegistry({ manifest, modelJson, weights });
 * const model = await registry.load(manifest.federationId, 'latest');
 */
export class ExportModelRegistry implements ModelRegistry {
  constructor(private readonly files: { manifest: unknown; modelJson: unknown; weights: Uint8Array }, private readonly sha256: (bytes: Uint8Array) => string = sha256Hex) {}

  async load(federationId: string, version: number | 'latest'): Promise<PublishedModel> {
    const m = ModelExportManifestSchema.safeParse(this.files.manifest);
    if (!m.success) throw new FedmartError('DATA_ERROR', `model export: manifest.json is not a ${MODEL_EXPORT_FORMAT} manifest; export the model again with fedmart model export`);
    const man = m.data;
    if (federationId !== man.federationId || (version !== 'latest' && version !== man.version)) throw new FedmartError('NOT_FOUND', `the export holds ${man.federationId}/${man.version}, not ${federationId}/${version}`);
    if (this.sha256(this.files.weights) !== man.sha256) throw new FedmartError('UNPROCESSABLE', 'model export: weights.bin does not match the SHA-256 in manifest.json; the files were altered — export them again');
    const expected = tfjsModelJson(man.spec, 'check').weightsManifest[0]!.weights;
    const listed = ((this.files.modelJson as { weightsManifest?: { weights?: { name: string; shape: number[] }[] }[] })?.weightsManifest ?? []).flatMap((g) => g.weights ?? []);
    if (JSON.stringify(listed.map((w) => [w.name, w.shape])) !== JSON.stringify(expected.map((w) => [w.name, w.shape]))) throw new FedmartError('DATA_ERROR', 'model export: model.json\'s weights manifest does not match the spec in manifest.json; export the model again');
    if (jointParameterCount(man.spec) !== man.paramCount || this.files.weights.byteLength !== man.paramCount * 4) throw new FedmartError('DATA_ERROR', `model export: weights.bin holds ${this.files.weights.byteLength / 4} values, the spec needs ${jointParameterCount(man.spec)}`);
    return { federationId: man.federationId, version: man.version, spec: man.spec, weights: decodeFloat32(this.files.weights, man.paramCount), sha256: man.sha256, metrics: man.metrics, participants: man.lineage.participants };
  }
}
