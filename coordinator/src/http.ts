/**
 * REST API under `/api/v1` (express 5). Bearer JWT on every call except
 * `GET /healthz`; roles `operator`, `partner`, `compliance`. Bodies are parsed
 * with zod; errors are `{ error: { code, message } }` with the matching status.
 */
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { identityFingerprint } from '@fedmart/shared/crypto/ed25519';
import express, { type NextFunction, type Request, type Response } from 'express';
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';
import {
  CreateEnrollmentBodySchema, CreateFederationBodySchema, CreateTokenBodySchema, MAX_JSON_BODY_BYTES, PROTOCOL_VERSION, StartRoundsBodySchema, formatIssues, type Role,
} from '@fedmart/shared/protocol';
import { initJointWeights, jointParameterCount } from '@fedmart/shared/task/layout';
import type { z } from 'zod';
import type { Principal, TokenAuthority } from './auth.ts';
import { verifiedWeightBytes } from './db/store.ts';
import type { AsyncStore } from './db/store-api.ts';
import type { Orchestrator } from './orchestrator.ts';
import type { VerticalRounds } from './vertical-rounds.ts';
import { VerticalPredictBodySchema } from '@fedmart/shared/protocol-vertical-relay';
import type { FederationRow, ModelVersionRow, RoundRow } from './db/schema.ts';
import type { FederationView, ModelVersionView, RoundView } from '@fedmart/shared/api-views';
import { createComplianceRouter } from './compliance-routes.ts';
import { DEFAULT_PORTAL_DIR, portalRouter } from './portal.ts';
import { createScheduleRouter } from './schedule-routes.ts';
import type { CoordinatorMetrics } from './metrics.ts';
import { createAuditRouter } from './audit-routes.ts';
import { createConsentRouter } from './consent-routes.ts';
import { createModelRouter } from './model-routes.ts';
import { createFederationRouter, validateFederationConfig } from './federation-routes.ts';
import { purposeRefusal } from '@fedmart/shared/consent';
import { redactPartnerNames } from '@fedmart/shared/audit-log';

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

export interface HttpDeps {
  /** The coordinator's database (SQLite or PostgreSQL) behind the async store API. */
  store: AsyncStore;
  authority: TokenAuthority;
  orchestrator: Orchestrator;
  /** Rounds and scoring of vertical federations with parties (absent: those routes answer 503). */
  verticalRounds?: VerticalRounds;
  /** Close the live sockets of a revoked token; returns how many. */
  disconnectToken: (jti: string) => number;
  version: string;
  log?: (msg: string) => void;
  /** The built partner portal served at `/` (default `partner-portal/dist`; null: off). */
  portalDir?: string | null;
  /** Prometheus metrics served at GET /metrics to operator and compliance tokens (metrics.ts). */
  metrics?: CoordinatorMetrics;
}

function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new FedmartError('BAD_REQUEST', `invalid request body: ${formatIssues(r.error.issues)}`);
  return r.data;
}

const json = (s: string | null) => (s === null ? null : JSON.parse(s));

function federationView(f: FederationRow): FederationView {
  return { id: f.id, name: f.name, status: f.status, config: JSON.parse(f.config), currentModelVersionId: f.currentModelVersionId, createdAt: new Date(f.createdAt).toISOString() };
}
/** A round as the API shows it; `hide`: ids and names a partner viewer must not read in the reason (the other partners'). */
function roundView(r: RoundRow, hide: readonly string[] = []): RoundView {
  return { id: r.id, federationId: r.federationId, number: r.number, phase: r.phase, reason: r.reason === null ? null : redactPartnerNames(r.reason, hide), strategy: r.strategy, config: json(r.config), metrics: json(r.metrics), baseModelVersionId: r.baseModelVersionId, startedAt: new Date(r.startedAt).toISOString(), endedAt: r.endedAt ? new Date(r.endedAt).toISOString() : null };
}
function modelView(m: Omit<ModelVersionRow, 'weights'>, viewer?: Principal): ModelVersionView {
  return { id: m.id, federationId: m.federationId, version: m.version, roundId: m.roundId, parentId: m.parentId, strategy: m.strategy, participants: ownParticipation(viewer, JSON.parse(m.participants) as string[]), metrics: JSON.parse(m.metrics), spec: JSON.parse(m.spec), paramCount: m.paramCount, sha256: m.sha256, encrypted: m.encrypted, createdAt: new Date(m.createdAt).toISOString(), releaseStatus: m.releaseStatus, publishRequestedBy: m.publishRequestedBy, approvedBy: m.approvedBy, publishedAt: m.publishedAt === null ? null : new Date(m.publishedAt).toISOString() };
}

/**
 * What one partner may learn about the others (issue 8, item 10): aggregate
 * results only. A partner token sees its own row of a round and its own
 * membership in a model's participant list, never another partner's example
 * count, metrics or participation (a rival's data volume and local
 * validation AUC are commercially sensitive, and per-partner metrics are not
 * covered by any DP guarantee). Operators and compliance see everything.
 * @param viewer - the caller (undefined: internal use, nothing filtered)
 * @param partnerIds - partner ids in the record
 * @returns the ids the caller may see
 */
function ownParticipation(viewer: Principal | undefined, partnerIds: string[]): string[] {
  return viewer?.role === 'partner' ? partnerIds.filter((id) => id === viewer.sub) : partnerIds;
}

/**
 * Build the express app.
 * @returns an express application (not yet listening)
 */
export function createHttpApp(deps: HttpDeps): express.Express {
  const { store, authority, orchestrator } = deps;
  /** For a partner viewer, the other partners' ids and names (hidden in free-text reasons); nothing for other roles. */
  const otherPartnerNames = async (p: Principal | undefined, fed: string) => (p?.role === 'partner' ? (await store.listEnrollments(fed)).filter((e) => e.partnerId !== p.sub).flatMap((e) => [e.partnerId, e.partnerName]) : []);
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: deps.version, protocolVersion: PROTOCOL_VERSION });
  });

  const api = express.Router();
  api.use(express.json({ limit: MAX_JSON_BODY_BYTES, strict: true, type: () => true }));

  const auth = (...roles: Role[]) => async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return next(new FedmartError('UNAUTHENTICATED', 'missing or malformed Authorization header; send "Authorization: Bearer <token>"'));
    try {
      const p = await authority.verify(m[1]);
      if (p.role === 'partner' && p.jti) {
        const e = await store.findEnrollmentByToken(p.jti);
        if (!e || e.status === 'revoked') throw new FedmartError('UNAUTHENTICATED', 'enrollment token is no longer valid; ask the operator for a new one');
      }
      if (!roles.includes(p.role)) throw new FedmartError('FORBIDDEN', `this call needs role ${roles.join(' or ')}; your token has role ${p.role}`);
      req.principal = p;
      next();
    } catch (err) {
      next(err);
    }
  };

  /** A partner may only see its own federation. */
  const sameFederation = (req: Request, federationId: string) => {
    const p = req.principal!;
    if (p.role === 'partner' && p.fed !== federationId) throw new FedmartError('FORBIDDEN', 'a partner token can only read its own federation');
  };

  api.use(createFederationRouter({ store, orchestrator, auth }));
  api.post('/tokens', auth('operator'), async (req, res) => {
    const body = parseBody(CreateTokenBodySchema, req.body);
    const t = await authority.issue({ sub: body.subject, role: body.role }, body.expiresInSeconds);
    await store.audit(req.principal!.sub, 'token.issued', body.subject, { role: body.role, jti: t.jti });
    res.status(201).json({ token: t.token, jti: t.jti, role: body.role, subject: body.subject, expiresAt: new Date(t.expiresAt).toISOString() });
  });

  // Revoke any token by its id (the jti returned when it was issued, or found in the audit log).
  api.delete('/tokens/:jti', auth('operator'), async (req, res) => {
    const jti = param(req, 'jti');
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(jti)) throw new FedmartError('BAD_REQUEST', `"${jti}" is not a token id; pass the jti (a UUID) returned when the token was issued or shown in the audit log`);
    if (jti === req.principal!.jti) throw new FedmartError('CONFLICT', 'refusing to revoke the token making this call; revoke it with another operator token, or restart the coordinator with --rotate-operator-token');
    const fresh = await store.revokeToken(jti, req.principal!.sub, 'revoked by an operator');
    const disconnected = deps.disconnectToken(jti);
    if (fresh) await store.audit(req.principal!.sub, 'token.revoked', jti, { disconnected });
    res.json({ revoked: jti, disconnected });
  });

  api.get('/federations', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const p = req.principal!;
    const rows = (await store.listFederations()).filter((f) => p.role !== 'partner' || f.id === p.fed);
    res.json({ federations: rows.map(federationView) });
  });

  api.post('/federations', auth('operator'), async (req, res) => {
    const body = parseBody(CreateFederationBodySchema, req.body);
    validateFederationConfig(body.config);
    const spec = body.config.model;
    const weights = initJointWeights(spec, body.config.seed, body.config.initialOutputBias ?? 0);
    if (weights.length !== jointParameterCount(spec)) throw new FedmartError('INTERNAL', 'initial model has the wrong size');
    const { federation, model } = await store.createFederation(body.name, body.config, weights, { actor: req.principal!.sub, action: 'federation.created', subject: null, data: { name: body.name, strategy: body.config.strategy, params: weights.length } });
    res.status(201).json({ federation: federationView(federation), model: modelView(model) });
  });

  api.get('/federations/:id', auth('operator', 'compliance', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    const f = await store.getFederation(param(req, 'id'));
    const p = req.principal!;
    // Partners see who is connected (names are public within a federation), but only their own example count.
    const connected = orchestrator.connectedClients(f.id).map((c) => ({ partnerId: c.partnerId, partnerName: c.partnerName, ...(p.role !== 'partner' || c.partnerId === p.sub ? { numExamples: c.numExamples } : {}) }));
    // Identity fingerprints of every bound partner: the operator and the partners compare them out of band.
    const identities = (await store.listEnrollments(f.id)).filter((e) => e.identityKey !== null).map((e) => ({ partnerId: e.partnerId, partnerName: e.partnerName, identityFingerprint: identityFingerprint(hexToBytes(e.identityKey!)) }));
    res.json({ federation: federationView(f), connected, identities });
  });

  api.post('/federations/:id/enrollments', auth('operator'), async (req, res) => {
    const f = await store.getFederation(param(req, 'id'));
    const body = parseBody(CreateEnrollmentBodySchema, req.body);
    const refusal = body.purposes ? purposeRefusal(body.purposes, store.federationConfig(f).purpose) : null;
    if (refusal) throw new FedmartError('CONFLICT', `cannot enroll ${body.partner} in ${f.id}: ${refusal}; enroll it in a federation its consent covers, or record the purposes it agreed to`);
    const partner = await store.ensurePartner(body.partner);
    const t = await authority.issue({ sub: partner.id, role: 'partner', fed: f.id }, body.expiresInSeconds);
    // The enrollment, its purposes and its audit entry in one transaction (a re-issue revokes the old token: never unaudited).
    const audit = { actor: req.principal!.sub, action: 'enrollment.issued', subject: null, data: { federationId: f.id, partner: partner.name, expiresAt: t.expiresAt, ...(body.maxExamples !== undefined ? { maxExamples: body.maxExamples } : {}), ...(body.purposes ? { purposes: body.purposes } : {}) } };
    const e = await store.createEnrollment(f.id, partner.id, t.jti, t.expiresAt, body.maxExamples ?? null, { purposes: body.purposes, audit });
    res.status(201).json({ enrollment: { id: e.id, federationId: f.id, partnerId: partner.id, partnerName: partner.name, expiresAt: new Date(t.expiresAt).toISOString(), maxExamples: e.maxExamples }, token: t.token });
  });

  api.get('/federations/:id/enrollments', auth('operator', 'compliance'), async (req, res) => {
    await store.getFederation(param(req, 'id'));
    res.json({ enrollments: (await store.listEnrollments(param(req, 'id'))).map(({ tokenId: _t, ...e }) => ({ ...e, expiresAt: new Date(e.expiresAt).toISOString(), identityFingerprint: e.identityKey === null ? null : identityFingerprint(hexToBytes(e.identityKey)) })) });
  });

  api.delete('/federations/:id/enrollments/:enrollmentId', auth('operator'), async (req, res) => {
    const list = await store.listEnrollments(param(req, 'id'));
    const e = list.find((x) => x.id === req.params.enrollmentId);
    if (!e) throw new FedmartError('NOT_FOUND', `enrollment ${req.params.enrollmentId} not found in federation ${req.params.id}`);
    await store.revokeEnrollment(e.id, { actor: req.principal!.sub, action: 'enrollment.revoked', subject: e.id, data: { federationId: req.params.id } });
    for (const c of orchestrator.connectedClients(param(req, 'id'))) if (c.partnerId === e.partnerId) c.disconnect('enrollment revoked by the operator');
    res.json({ revoked: e.id });
  });

  api.get('/partners', auth('operator', 'compliance'), async (_req, res) => {
    res.json({ partners: (await store.listPartners()).map((p) => ({ ...p, createdAt: new Date(p.createdAt).toISOString() })) });
  });

  api.post('/federations/:id/rounds', auth('operator'), async (req, res) => {
    const f = await store.getFederation(param(req, 'id'));
    const body = parseBody(StartRoundsBodySchema, req.body);
    await orchestrator.assertLeader?.(f.id); // cluster mode: 409 naming the leader's URL (not forwarded)
    const schedule = await orchestrator.scheduleRounds(f.id, body.count, req.principal!.sub).created;
    res.status(202).json({ scheduleId: schedule.id, federationId: f.id, rounds: body.count });
  });

  const vertical = (): VerticalRounds => {
    if (deps.verticalRounds === undefined) throw new FedmartError('UNAVAILABLE', 'this coordinator does not run vertical rounds');
    return deps.verticalRounds;
  };
  api.get('/federations/:id/vertical', auth('operator', 'compliance', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    const spec = await vertical().spec(param(req, 'id'));
    res.json({ spec, connected: vertical().connected(param(req, 'id')) });
  });
  api.post('/federations/:id/vertical/rounds', auth('operator'), async (req, res) => {
    const r = await vertical().startRound(param(req, 'id'));
    await store.audit(req.principal!.sub, 'vertical.round.requested', r.roundId, {});
    res.status(202).json(r);
  });
  api.post('/federations/:id/vertical/predict', auth('operator'), async (req, res) => {
    const body = parseBody(VerticalPredictBodySchema, req.body);
    const fed = param(req, 'id');
    const version = (await store.currentModelRow(fed)).version;
    const r = await vertical().predict(fed, body.ids, body.explain);
    await store.audit(req.principal!.sub, 'vertical.predict', fed, { ids: body.ids.length, version });
    res.json({ federationId: fed, version, ids: body.ids, p: r.p, ...(r.contributions ? { contributions: r.contributions } : {}) });
  });

  api.get('/federations/:id/rounds', auth('operator', 'compliance', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    await store.getFederation(param(req, 'id'));
    const hide = await otherPartnerNames(req.principal, param(req, 'id'));
    res.json({ rounds: (await store.listRounds(param(req, 'id'))).map((r) => roundView(r, hide)) });
  });

  api.get('/rounds/:id', auth('operator', 'compliance', 'partner'), async (req, res) => {
    const r = await store.getRound(param(req, 'id'));
    sameFederation(req, r.federationId);
    const rows = await store.listParticipants(r.id);
    const visible = new Set(ownParticipation(req.principal, rows.map((p) => p.partnerId)));
    const participants = rows.filter((p) => visible.has(p.partnerId)).map((p) => ({ ...p, trainMetrics: json(p.trainMetrics), evalMetrics: json(p.evalMetrics) }));
    res.json({ round: roundView(r, await otherPartnerNames(req.principal, r.federationId)), participants });
  });

  api.use(createModelRouter({ store, auth }));
  api.get('/federations/:id/models', auth('operator', 'compliance', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    const f = await store.getFederation(param(req, 'id'));
    res.json({ currentModelVersionId: f.currentModelVersionId, models: (await store.listModelVersions(f.id)).map((m) => modelView(m, req.principal)) });
  });

  api.get('/federations/:id/models/:version', auth('operator', 'compliance', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    const m = await store.getModelByNumber(param(req, 'id'), parseVersion(param(req, 'version')));
    const { weights: _w, ...meta } = m;
    res.json({ model: modelView(meta, req.principal) });
  });

  api.get('/federations/:id/models/:version/weights', auth('operator', 'partner'), async (req, res) => {
    sameFederation(req, param(req, 'id'));
    const m = await store.getModelByNumber(param(req, 'id'), parseVersion(param(req, 'version')));
    const bytes = verifiedWeightBytes(m); // a blob that no longer matches its SHA-256 is an error, never served
    res.set('content-type', 'application/octet-stream');
    res.set('x-fedmart-param-count', String(m.paramCount));
    res.set('x-fedmart-sha256', m.sha256);
    // CKKS federations: the blob is the encrypted aggregate; only partners can decrypt it.
    res.set('x-fedmart-encrypted', m.encrypted ? 'true' : 'false');
    res.send(bytes);
  });

  api.get('/audit', auth('operator', 'compliance'), async (req, res) => {
    const after = Number(req.query.after ?? 0);
    const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 200)));
    if (!Number.isInteger(after) || !Number.isFinite(limit)) throw new FedmartError('BAD_REQUEST', 'query "after" and "limit" must be integers');
    res.json({ chain: await store.verifyAudit(), entries: (await store.listAudit(limit, after)).map((e) => ({ ...e, data: json(e.data) })) });
  });

  api.use(createComplianceRouter({ store, auth }));
  api.use(createScheduleRouter({ store, auth, scheduler: orchestrator.scheduler }));
  api.use(createAuditRouter({ store, auth }));
  api.use(createConsentRouter({ store, auth }));
  app.use('/api/v1', api);
  app.get('/metrics', auth('operator', 'compliance'), async (_req, res) => {
    if (!deps.metrics) throw new FedmartError('UNAVAILABLE', 'this coordinator does not collect metrics');
    res.set('content-type', deps.metrics.registry.contentType).send(await deps.metrics.render());
  });
  app.use(portalRouter(deps.portalDir === undefined ? DEFAULT_PORTAL_DIR : deps.portalDir));

  app.use((req, _res, next) => next(new FedmartError('NOT_FOUND', `no route ${req.method} ${req.path}; see the README for the API`)));

  // The transport edge: normalise every error to { error: { code, message } }.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let e: FedmartError;
    const anyErr = err as { type?: string; status?: number; message?: string };
    if (anyErr?.type === 'entity.too.large') e = new FedmartError('PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_JSON_BODY_BYTES} bytes`);
    else if (anyErr?.type === 'entity.parse.failed') e = new FedmartError('BAD_REQUEST', `request body is not valid JSON: ${anyErr.message}`);
    else e = toFedmartError(err);
    if (e.code === 'INTERNAL') deps.log?.(`internal error: ${(e.cause as Error)?.stack ?? e.message}`);
    res.status(e.status).json(e.code === 'INTERNAL' ? { error: { code: 'INTERNAL', message: 'internal error; see the coordinator log' } } : e.toBody());
  });

  return app;
}

function param(req: Request, name: string): string {
  const v = (req.params as Record<string, string | string[] | undefined>)[name];
  if (typeof v !== 'string' || v.length === 0) throw new FedmartError('BAD_REQUEST', `missing path parameter "${name}"`);
  return v;
}

function parseVersion(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new FedmartError('BAD_REQUEST', `model version must be a non-negative integer, got "${s}"`);
  return n;
}
