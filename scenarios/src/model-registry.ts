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

/** Load published models by federation and version (`'latest'` = the current one). */
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
   * @param version - a version number, or `'latest'` for the federation's current model
   * @returns the spec, verified weights and lineage
   * @throws FedmartError NOT_FOUND / UNAUTHENTICATED / FORBIDDEN as the coordinator answers; UNPROCESSABLE for unreadable metadata, an encrypted model, or weights whose SHA-256 does not match
   */
  async load(federationId: string, version: number | 'latest'): Promise<PublishedModel> {
    let v = version;
    if (v === 'latest') {
      const list = (await (await this.get(`/api/v1/federations/${encodeURIComponent(federationId)}/models`)).json()) as { currentModelVersionId: string; models: { id: string; version: number }[] };
      const cur = list.models.find((m) => m.id === list.currentModelVersionId);
      if (!cur) throw new FedmartError('NOT_FOUND', `federation ${federationId} has no published model yet`);
      v = cur.version;
    }
    const metaRaw = (await (await this.get(`/api/v1/federations/${encodeURIComponent(federationId)}/models/${v}`)).json()) as { model: unknown };
    const meta = ModelMetaSchema.safeParse(metaRaw.model);
    if (!meta.success) throw new FedmartError('UNPROCESSABLE', `model registry: version ${v} of ${federationId} has unreadable metadata`);
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
