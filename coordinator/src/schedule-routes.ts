/**
 * Schedule API (under `/api/v1`, issue 13 item 1). Operators create and
 * steer schedules; compliance officers may read them. Partner tokens get 403.
 *
 * - POST /federations/:id/schedules        create (body: a ScheduleSpec, `@fedmart/shared/protocol-schedule`)
 * - GET  /federations/:id/schedules        list a federation's schedules
 * - GET  /schedules/:id                    one schedule
 * - POST /schedules/:id/pause | resume | cancel
 */
import express, { type Request, type RequestHandler } from 'express';
import { FedmartError } from '@fedmart/shared/errors';
import type { Role } from '@fedmart/shared/protocol';
import type { AsyncStore } from './db/store-api.ts';
import type { Scheduler } from './scheduler.ts';

export interface ScheduleRouteDeps {
  store: AsyncStore;
  scheduler: Scheduler;
  /** The app's auth middleware factory: allows the listed roles, 401/403 otherwise. */
  auth: (...roles: Role[]) => RequestHandler;
}

function id(req: Request, name: string): string {
  const v = (req.params as Record<string, string | undefined>)[name];
  if (typeof v !== 'string' || v.length === 0) throw new FedmartError('BAD_REQUEST', `missing path parameter "${name}"`);
  return v;
}

/**
 * Build the schedule router (mount it on the `/api/v1` router).
 * @returns an express router
 */
export function createScheduleRouter(deps: ScheduleRouteDeps): express.Router {
  const { store, scheduler, auth } = deps;
  const router = express.Router();
  router.post('/federations/:id/schedules', auth('operator'), async (req, res) => {
    // The scheduler's calls are awaited: the same code whether they return values or promises.
    const { schedule } = await scheduler.create(id(req, 'id'), req.body, req.principal!.sub);
    res.status(201).json({ schedule });
  });
  router.get('/federations/:id/schedules', auth('operator', 'compliance'), async (req, res) => {
    await store.getFederation(id(req, 'id'));
    res.json({ schedules: await scheduler.list(id(req, 'id')) });
  });
  router.get('/schedules/:id', auth('operator', 'compliance'), async (req, res) => {
    res.json({ schedule: await scheduler.get(id(req, 'id')) });
  });
  for (const action of ['pause', 'resume', 'cancel'] as const) {
    router.post(`/schedules/:id/${action}`, auth('operator'), async (req, res) => {
      res.json({ schedule: await scheduler[action](id(req, 'id'), req.principal!.sub) });
    });
  }
  return router;
}
