/**
 * Run a real federation in this process: a coordinator on an ephemeral
 * port with in-memory SQLite, one Socket.IO partner agent per partner, all
 * set up through the REST API exactly as an operator and partners would.
 */
import { startCoordinator, type RoundOutcome } from '@fedmart/coordinator';
import { startPartnerAgent, type PartnerAgent, type PartnerAgentOptions, type LocalData } from '@fedmart/client-node/agent';
import { weightsOf } from '@fedmart/coordinator/db/store';
import { FedmartError } from '@fedmart/shared/errors';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { ApiClient } from './api-client.ts';
import { privacyReport, type PrivacyReport } from '@fedmart/coordinator/privacy';

export interface FederateOptions {
  config: FederationConfigInput;
  partners: { id: string; data: LocalData; dropAtStage?: PartnerAgentOptions['dropAtStage'] }[];
  /** CKKS: the coordinator holds only ciphertexts, so the final model is read from a partner. */
  modelFromPartner?: boolean;
  /** Start each round only once every partner is connected (simulated dropouts reconnect between rounds). */
  waitForAllPartners?: boolean;
  rounds: number;
  seed: number;
  onProgress?: (line: string) => void;
}

export interface FederateResult {
  weights: Float32Array;
  outcomes: RoundOutcome[];
  committed: number;
  /** The privacy ledger's report (federations with dp only), read before the coordinator closes. */
  privacy?: PrivacyReport;
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
      agents.push(startPartnerAgent({ coordinatorUrl: coord.url, token, data: p.data, seed: o.seed + i, reconnect: false, log: (m) => say(`  [${p.id}] ${m}`), ...(p.dropAtStage ? { dropAtStage: p.dropAtStage } : {}) }));
    }
    await Promise.all(agents.map((a) => a.ready));
    say(`federation ${federation.id}: ${agents.length} partners connected`);
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
    const privacy = o.config.dp ? { privacy: privacyReport(coord.store, federation.id) } : {};
    if (o.modelFromPartner) {
      // The joint model exists in plaintext only at the partners (CKKS): take the newest one a partner holds.
      const held = agents.map((a) => a.currentModel()).filter((m) => m !== null).sort((a, b) => b.version - a.version)[0];
      if (!held) throw new FedmartError('ROUND_FAILED', 'no partner holds a decrypted model');
      return { weights: held.weights, outcomes, committed, ...privacy };
    }
    const { row } = coord.store.currentModel(federation.id);
    return { weights: weightsOf(row), outcomes, committed, ...privacy };
  } finally {
    await Promise.all(agents.map((a) => a.close()));
  }
}
