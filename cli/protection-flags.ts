/**
 * `fedmart simulate` flags for the protection layers: secure aggregation
 * (`--secure-agg [--neighbours K] [--dropout P]`) and CKKS encrypted
 * aggregation (`--he`). Kept apart from simulate.ts so each layer's flags
 * live with their own help text.
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { SECAGG_STAGES, type SecAggStage } from '@fedmart/shared/secagg/messages';
import { seededRandom } from '@fedmart/shared/model';
import { intFlag, numberFlag } from './args.ts';

/** parseArgs options for the protection flags. */
export const PROTECTION_FLAG_OPTIONS = {
  'secure-agg': { type: 'boolean' }, neighbours: { type: 'string' }, dropout: { type: 'string' }, he: { type: 'boolean' },
} as const;

/** Usage lines for the protection flags. */
export const PROTECTION_USAGE = `  --secure-agg          secure aggregation (SecAgg/SecAgg+): the coordinator sees only the sum
  --neighbours K        SecAgg+ neighbours per partner (even; default ⌈2·log2 n⌉, all pairs when ≥ n−1)
  --dropout P           with --secure-agg: that fraction of partners drops at a random stage of each round
  --he                  CKKS encrypted aggregation: the coordinator never sees an update or the model`;

/** What the protection flags ask of a simulation. */
export interface SimulationProtection {
  /** Merged into the federation config. */
  config: Partial<FederationConfigInput>;
  /** Fewest clients per round (lower than the partner count when partners drop). */
  minClients: number;
  /** Per-partner agent hook: the stage at which partner `index` drops in `round`, or null. */
  dropAtStage: ((index: number, round: number) => SecAggStage | null) | null;
  /** True when the model must be read from a partner (the coordinator holds only ciphertexts). */
  modelFromPartner: boolean;
  /** One line for the progress log. */
  summary: string;
}

/**
 * Read the protection flags.
 * @param values - parsed flags
 * @param partners - number of partners
 * @param seed - simulation seed (drives who drops when; non-secret)
 * @throws FedmartError CONFIG_ERROR on inconsistent flags
 */
export function protectionFromFlags(values: Record<string, unknown>, partners: number, seed: number): SimulationProtection {
  const secure = values['secure-agg'] === true;
  const he = values.he === true;
  if (secure && he) throw new FedmartError('CONFIG_ERROR', 'simulate: --secure-agg and --he cannot be combined (each already hides individual updates); pick one');
  if (!secure && (values.neighbours !== undefined || values.dropout !== undefined)) throw new FedmartError('CONFIG_ERROR', 'simulate: --neighbours and --dropout need --secure-agg');
  if (he) return { config: { encryption: 'ckks' }, minClients: partners, dropAtStage: null, modelFromPartner: true, summary: 'CKKS encrypted aggregation (partner-1 holds the key)' };
  if (!secure) return { config: {}, minClients: partners, dropAtStage: null, modelFromPartner: false, summary: '' };
  if (partners < 3) throw new FedmartError('CONFIG_ERROR', `simulate: --secure-agg needs at least 3 partners (the sum of 2 reveals each to the other), got ${partners}`);
  const neighbours = values.neighbours === undefined ? undefined : intFlag('simulate', values, 'neighbours', 2, 2, 100_000);
  const dropout = numberFlag('simulate', values, 'dropout', 0, 0, 0.9);
  const drops = Math.round(dropout * partners);
  const dropAtStage = drops === 0 ? null : (index: number, round: number): SecAggStage | null => {
    // Non-secret, reproducible choice of who drops at which stage in each round.
    const rand = seededRandom(seed * 7919 + round);
    const order = Array.from({ length: partners }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const stages = order.map(() => SECAGG_STAGES[Math.floor(rand() * SECAGG_STAGES.length)]!);
    const at = order.indexOf(index);
    return at < drops ? stages[at]! : null;
  };
  return {
    config: { secureAggregation: { ...(neighbours !== undefined ? { neighbours } : {}) } },
    // A dropped partner reconnects for the next round; allow rounds to start while it is still on its way back.
    minClients: Math.max(3, partners - 2 * drops),
    dropAtStage,
    modelFromPartner: false,
    summary: `secure aggregation${neighbours !== undefined ? ` (SecAgg+ k=${neighbours})` : ''}${drops ? `, ${drops} partner(s) drop per round at a random stage` : ''}`,
  };
}
