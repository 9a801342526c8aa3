/**
 * A lying coordinator for adversary tests: the real coordinator, with a hook
 * on each connected partner's link that rewrites what it sends (train
 * instructions, secure-aggregation requests) before it reaches the socket.
 * The partner agents on the other side are the real ones.
 */
import type { Fixture } from '../helpers.ts';
import type { ClientLink } from '@fedmart/coordinator/orchestrator';
import type { SecureTrainInstruction } from '@fedmart/shared/protocol-secure';

/** Rewrites applied to outgoing messages (identity by default); set the fields between rounds. */
export interface Tamper {
  train: (t: SecureTrainInstruction) => SecureTrainInstruction;
  secagg: (request: Record<string, unknown>) => Record<string, unknown>;
  /** Every train instruction as it left (after rewriting). */
  sent: SecureTrainInstruction[];
}

/**
 * Install the hook on a fixture's orchestrator (before partners connect).
 * @param fx - the fixture
 * @returns the rewrites in force (mutable)
 */
export function lyingCoordinator(fx: Fixture): Tamper {
  const tamper: Tamper = { train: (t) => t, secagg: (r) => r, sent: [] };
  const orch = fx.coord.orchestrator;
  const attach = orch.attachClient.bind(orch);
  orch.attachClient = (federationId: string, link: ClientLink) => {
    const sendTrain = link.sendTrain.bind(link);
    const emitSecure = link.emitSecure.bind(link);
    link.sendTrain = (t, w) => {
      const out = tamper.train(structuredClone(t));
      tamper.sent.push(out);
      sendTrain(out, w);
    };
    link.emitSecure = ((event: string, payload: unknown) => (emitSecure as (e: string, p: unknown) => void)(event, event === 'secagg' ? tamper.secagg({ ...(payload as Record<string, unknown>) }) : payload)) as ClientLink['emitSecure'];
    attach(federationId, link);
  };
  return tamper;
}
