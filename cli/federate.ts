/**
 * Run a real federation in this process: a coordinator on an ephemeral
 * port with in-memory SQLite, one Socket.IO partner agent per partner, all
 * set up through the REST API exactly as an operator and partners would.
 */
import { startCoordinator, type RoundOutcome } from '@fedmart/coordinator';
import { startPartnerAgent, type PartnerAgent, type PartnerAgentOptions, type LocalData, type PartnerTask } from '@fedmart/client-node/agent';
import { weightsOf } from '@fedmart/coordinator/db/store';
import { FedmartError } from '@fedmart/shared/errors';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { ApiClient } from './api-client.ts';
import { privacyReport, type PrivacyReport } from '@fedmart/coordinator/privacy';

export interface FederateOptions {
  config: FederationConfigInput;
  /** Each partner runs the tabular task over `data`, or the scenario task it is given (`task`, the seam of `client-node/src/task.ts`). */
  partners: ({ id: string; dropAtStage?: PartnerAgentOptions['dropAtStage'] } & ({ data: LocalData; task?: undefined } | { task: PartnerTask; data?: undefined }))[];
  /** CKKS: the coordinator holds only ciphertexts, so the final model is read from a partner. */
  modelFromPartner?: boolean;
  /** Start each round only once every partner is connected (simulated dropouts reconnect between rounds). */
  waitForAllPartners?: boolean;
  rounds: number;
  seed: number;
  onProgress?: (line: string) => void;
}

/** One committed round as the harness sees it: the aggregated validation metrics of its model. */
export interface RoundValidation {
  round: number;
  modelVersion: number;
  /** The coordinator's example-weighted mean of the partners' validation log losses (NaN if none reported). */
  evalLoss: number;
  /** The example-weighted mean of the partners' validation AUCs (NaN if none). */
  evalAuc: number;
  /** Every aggregated metric of the round (`eval_<name>` for each metric the tasks report, `train_<name>`…). */
  metrics: Record<string, number>;
}

export interface FederateResult {
  /** The last committed model. */
  weights: Float32Array;
  /** The committed round whose model had the lowest aggregated validation loss, with its weights. */
  best: (RoundValidation & { weights: Float32Array }) | null;
  /** Every committed round's aggregated validation metrics, in order. */
  history: RoundValidation[];
  outcomes: RoundOutcome[];
  committed: number;
  /** The privacy ledger's report (federations with dp only), read before the coordinator closes. */
  privacy?: PrivacyReport;
}

/** CKKS: the joint model exists in plaintext only at the partners; the newest one any partner holds. */
function newestPartnerModel(agents: readonly PartnerAgent[]): { version: number; weights: Float32Array } | undefined {
  return agents.map((a) => a.currentModel()).filter((m) => m !== null).sort((a, b) => b.version - a.version)[0];
}

export async function runFederation(o: FederateOptions): Promise<FederateResult> {
  const say = o.onProgress ?? (() => {});
  await using coord = await startCoordinator({ port: 0, dataDir: null });
  const api = new ApiClient(coord.url, coord.operatorToken);
  const { federation } = await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'simulation', config: o.config });
  const agents: PartnerAgent[] = [];
  try {
    for (const [i, p] of o.partners.entries()) {
      const { token } = await api.post<{ token: string }>(`/api/v1/federations/${federation.id}/enrollments`, { partner: p.id });
      agents.push(startPartnerAgent({ coordinatorUrl: coord.url, token, ...(p.task ? { task: p.task } : { data: p.data }), seed: o.seed + i, reconnect: false, log: (m) => say(`  [${p.id}] ${m}`), ...(p.dropAtStage ? { dropAtStage: p.dropAtStage } : {}) }));
    }
    await Promise.all(agents.map((a) => a.ready));
    say(`federation ${federation.id}: ${agents.length} partners connected`);
    const history: RoundValidation[] = [];
    let best: FederateResult['best'] = null;
    coord.orchestrator.on('round-end', (e) => {
      if (e.phase !== 'committed' || e.modelVersion === undefined || e.federationId !== federation.id) return;
      const v: RoundValidation = { round: e.round, modelVersion: e.modelVersion, evalLoss: e.metrics.eval_loss ?? Number.NaN, evalAuc: e.metrics.eval_auc ?? Number.NaN, metrics: { ...e.metrics } };
      history.push(v);
      // Early stopping on federated validation: keep the weights of the best round so far (ties: the earlier round).
      if (Number.isFinite(v.evalLoss) && (best === null || v.evalLoss < best.evalLoss)) {
        const weights = o.modelFromPartner ? newestPartnerModel(agents)?.weights : weightsOf(coord.store.getModelByNumber(federation.id, e.modelVersion));
        if (weights) best = { ...v, weights: Float32Array.from(weights) };
      }
    });
    coord.orchestrator.on('round-end', (e) => {
      const m = e.metrics;
      say(`round ${e.round} ${e.phase}${e.reason ? ` (${e.reason})` : ''}: ${e.participants.length} clients, ${e.seconds.toFixed(1)} s` + (m.eval_auc !== undefined ? `, eval auc ${m.eval_auc.toFixed(4)}` : '') + (m.train_loss !== undefined ? `, train loss ${m.train_loss.toFixed(4)}` : ''));
    });
    let outcomes: RoundOutcome[] = [];
    if (o.waitForAllPartners) {
      for (let i = 0; i < o.rounds; i++) {
        for (let waited = 0; coord.orchestrator.connectedClients(federation.id).length < agents.length && waited < 30_000; waited += 20) await new Promise((res) => setTimeout(res, 20));
        outcomes.push(...(await coord.orchestrator.scheduleRounds(federation.id, 1).done));
      }
    } else outcomes = await coord.orchestrator.scheduleRounds(federation.id, o.rounds).done;
    const committed = outcomes.filter((x) => x.phase === 'committed').length;
    if (committed === 0) throw new FedmartError('ROUND_FAILED', `no round committed: ${outcomes.map((x) => x.reason).join('; ')}`);
    const privacy = o.config.dp ? { privacy: await (await coord.orchestrator.flushWrites(), privacyReport(coord.store, federation.id)) } : {};
    if (o.modelFromPartner) {
      // The joint model exists in plaintext only at the partners (CKKS): take the newest one a partner holds.
      const held = newestPartnerModel(agents);
      if (!held) throw new FedmartError('ROUND_FAILED', 'no partner holds a decrypted model');
      return { weights: held.weights, best, history, outcomes, committed, ...privacy };
    }
    const { row } = coord.store.currentModel(federation.id);
    return { weights: weightsOf(row), best, history, outcomes, committed, ...privacy };
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
}
