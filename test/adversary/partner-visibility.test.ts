/**
 * Issue 8, item 10: what partners see of each other. A partner token sees
 * aggregate round results and its own participation, never another
 * partner's example count or metrics — neither through REST nor through
 * anything the coordinator pushes over Socket.IO.
 */
import { describe, expect, it } from 'vitest';
import { startFixture } from '../helpers.ts';
import { startScriptedPartner } from './scripted-partner.ts';

// Distinctive numbers: if any of rival's figures shows up in what brand-a can read, the test finds it.
const RIVAL_EXAMPLES = 7919;
const RIVAL_TRAIN_LOSS = 0.271828;
const RIVAL_EVAL_AUC = 0.914159;
const OWN_EXAMPLES = 3001;

describe('issue 8 item 10: partner visibility', () => {
  it("a partner's REST reads and socket events never carry another partner's example count or metrics", async () => {
    // Arrange: two scripted partners run one real round
    await using fx = await startFixture();
    const fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, minClients: 2 });
    const tokenA = await fx.enroll(fed, 'brand-a');
    const tokenB = await fx.enroll(fed, 'rival');
    const a = await startScriptedPartner(fx.url, tokenA, {
      helloExamples: OWN_EXAMPLES, trainMetrics: { loss: 0.5 },
      update: (g) => new Float32Array(g.length).fill(0.01),
      evaluate: () => ({ numExamples: 300, metrics: { auc: 0.6, loss: 0.5 } }),
    });
    const b = await startScriptedPartner(fx.url, tokenB, {
      helloExamples: RIVAL_EXAMPLES, trainMetrics: { loss: RIVAL_TRAIN_LOSS },
      update: (g) => new Float32Array(g.length).fill(-0.02),
      evaluate: () => ({ numExamples: RIVAL_EXAMPLES - 1, metrics: { auc: RIVAL_EVAL_AUC, loss: 0.3 } }),
    });
    const [outcome] = await fx.coord.orchestrator.scheduleRounds(fed, 1).done;
    expect(outcome!.phase).toBe('committed');
    const partnerA = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'brand-a')!.partnerId;
    const partnerB = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'rival')!.partnerId;

    // Act: brand-a reads everything a partner token may read
    const get = async (p: string, token: string) => {
      const res = await fetch(fx.url + p, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, p).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const paths = [`/api/v1/rounds/${outcome!.roundId}`, `/api/v1/federations/${fed}`, `/api/v1/federations/${fed}/rounds`, `/api/v1/federations/${fed}/models`, `/api/v1/federations/${fed}/models/1`, '/api/v1/federations'];
    const seen = await Promise.all(paths.map((p) => get(p, tokenA)));

    // Assert: none of rival's figures, while brand-a still sees its own participation and the aggregate
    const leaks = (text: string) => [String(RIVAL_EXAMPLES), String(RIVAL_EXAMPLES - 1), String(RIVAL_TRAIN_LOSS), String(RIVAL_EVAL_AUC)].filter((s) => text.includes(s));
    seen.forEach((body, i) => expect(leaks(JSON.stringify(body)), paths[i]).toEqual([]));
    const round = seen[0] as { round: { metrics: Record<string, number> }; participants: { partnerId: string; numExamples: number }[] };
    expect(round.participants).toEqual([expect.objectContaining({ partnerId: partnerA, numExamples: OWN_EXAMPLES })]);
    expect(round.round.metrics.clients).toBe(2);
    const fedView = seen[1] as { connected: { partnerId: string; numExamples?: number }[] };
    expect(fedView.connected.find((c) => c.partnerId === partnerA)?.numExamples).toBe(OWN_EXAMPLES);
    expect(fedView.connected.find((c) => c.partnerId === partnerB)).not.toHaveProperty('numExamples');
    // ...and the operator still sees everything.
    const asOperator = await get(`/api/v1/rounds/${outcome!.roundId}`, fx.coord.operatorToken);
    expect(leaks(JSON.stringify(asOperator))).toContain(String(RIVAL_EXAMPLES));

    // Assert: nothing pushed to brand-a over Socket.IO carries rival's figures either
    expect(a.received.map((r) => r.event)).toEqual(expect.arrayContaining(['welcome', 'train', 'evaluate', 'round-status']));
    expect(leaks(JSON.stringify(a.received))).toEqual([]);
    a.close();
    b.close();
  });
});
