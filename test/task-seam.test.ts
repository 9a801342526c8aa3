/**
 * The task seam (`client-node/src/task.ts`, `shared/src/task/layout.ts`): a
 * partner agent runs a task that is not the tabular classifier, through a
 * real coordinator on a real port, and the protection layers wrap its joint
 * parameters unchanged.
 *
 * The task here is the smallest honest one: federated estimation of the
 * means of the bank data's encoded columns. Its joint tensor is the mean
 * vector; each partner's update moves it to its own local mean, so one
 * FedAvg round lands exactly on the pooled mean.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent, type PartnerAgent, type PartnerTask } from '@fedmart/client-node/agent';
import { FedmartError } from '@fedmart/shared/errors';
import type { TensorLayoutSpec } from '@fedmart/shared/task/layout';
import { bankPartners, startFixture, waitFor } from './helpers.ts';

function meanTask(x: Float32Array, n: number, d: number, onLocalOnly: (v: Float32Array) => void): PartnerTask {
  const local = new Float32Array(d); // stays here: never part of an update
  return {
    id: 'column-means',
    numExamples: n,
    accept(model) {
      if (model.kind !== 'tensors' || model.tensors[0]?.shape[0] !== d) throw new FedmartError('DATA_ERROR', `column-means: the federation's layout does not have ${d} columns`);
    },
    round({ weights }) {
      return {
        plain: async () => {
          const delta = new Float32Array(d);
          for (let j = 0; j < d; j++) {
            let s = 0;
            let pos = 0;
            for (let i = 0; i < n; i++) {
              s += x[i * d + j]!;
              if (x[i * d + j]! > 0) pos++;
            }
            local[j] = pos;
            delta[j] = s / n - weights[j]!;
          }
          onLocalOnly(local);
          return { delta, metrics: { loss: 0 } };
        },
      };
    },
    async evaluate(weights) {
      let sq = 0;
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += x[i * d + j]!;
        sq += (s / n - weights[j]!) ** 2;
      }
      return { numExamples: n, metrics: { loss: sq / d } };
    },
  };
}

describe('the task seam: a scenario task runs in the unchanged agent and orchestrator', () => {
  for (const secure of [false, true]) {
    it(`one round of a non-tabular task commits the pooled mean${secure ? ' under secure aggregation' : ''}, and local tensors stay local`, async () => {
      const exp = await bankPartners();
      await using fx = await startFixture();
      const layout: TensorLayoutSpec = { kind: 'tensors', tensors: [{ name: 'mean', shape: [exp.d], init: { type: 'zeros' } }] };
      const fed = await fx.createFederation({ task: 'column-means', model: layout, taskSpec: { note: 'opaque to the coordinator' }, minClients: 3, ...(secure ? { secureAggregation: { clip: 4 } } : {}) });
      const kept: Float32Array[] = [];
      const agents: PartnerAgent[] = [];
      for (const p of exp.partners) {
        const task = meanTask(p.data.trainX, p.data.trainN, exp.d, (v) => kept.push(v.slice()));
        agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), task, reconnect: false }));
      }
      try {
        await Promise.all(agents.map((a) => a.ready));
        await waitFor(() => fx.coord.orchestrator.connectedClients(fed).length === 3, 120_000, 'partners connected');
        const outcome = await fx.coord.orchestrator.runRound(fed);
        expect(outcome.phase, outcome.reason).toBe('committed');
        const w = fx.coord.store.currentModel(fed).weights;
        let total = 0;
        const pooled = new Float64Array(exp.d);
        for (const p of exp.partners) {
          total += p.data.trainN;
          for (let i = 0; i < p.data.trainN; i++) for (let j = 0; j < exp.d; j++) pooled[j] += p.data.trainX[i * exp.d + j]!;
        }
        let maxErr = 0;
        for (let j = 0; j < exp.d; j++) maxErr = Math.max(maxErr, Math.abs(pooled[j]! / total - w[j]!));
        expect(maxErr).toBeLessThan(secure ? 1e-4 : 1e-5);
        // Each partner computed its local-only tensor; the committed vector has the layout's length only.
        expect(kept.length).toBe(3);
        expect(w.length).toBe(exp.d);
      } finally {
        await Promise.all(agents.map((a) => a.close()));
      }
    }, 300_000);
  }

  it('a partner running another task than the federation is refused at the welcome with the reason', async () => {
    const exp = await bankPartners();
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: exp.d, hidden: [] } });
    const p = exp.partners[0]!;
    const a = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), task: meanTask(p.data.trainX, p.data.trainN, exp.d, () => {}), reconnect: false });
    await expect(a.ready).rejects.toThrow(/runs task "binary" but this partner runs "column-means"/);
    await a.close();
  });
});
