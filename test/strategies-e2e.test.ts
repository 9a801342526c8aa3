/**
 * Every strategy runs real rounds over real sockets on real data.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { STRATEGY_IDS } from '@fedmart/shared/strategy/types';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

await initBackend();

describe.each(STRATEGY_IDS)('strategy %s in a real federation', (strategy) => {
  it('commits rounds whose model improves on the initial one', async () => {
    // Arrange: 5 partners (Krum with f = 1 needs n ≥ 2f + 3)
    const exp = await bankPartners(5);
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: modelFor(exp), minClients: 5, strategy, strategyOptions: strategy === 'fedprox' ? { proximalMu: 0.1 } : strategy === 'fedadam' || strategy === 'fedyogi' ? { serverLearningRate: 0.1 } : {} });
    const seenMu: number[] = [];
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const p of exp.partners) {
      const a = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false });
      a.socket.on('train', (t: { config: { proximalMu: number } }) => seenMu.push(t.config.proximalMu));
      agents.push(a);
    }
    await Promise.all(agents.map((a) => a.ready));

    // Act
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 3).done;

    // Assert
    expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed', 'committed']);
    const { models } = await fx.api.get<{ models: { version: number; strategy: string; metrics: Record<string, number> }[] }>(`/api/v1/federations/${fed}/models`);
    expect(models.at(-1)!.strategy).toBe(strategy);
    expect(models.at(-1)!.metrics.eval_auc).toBeGreaterThan(0.6);
    if (strategy === 'fedprox') expect(new Set(seenMu)).toEqual(new Set([0.1]));
    else expect(new Set(seenMu)).toEqual(new Set([0]));
    await Promise.all(agents.map((a) => a.close()));
  });
});
