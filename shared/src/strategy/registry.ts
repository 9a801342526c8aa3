/**
 * The strategy registry: built-in strategies by id. A plain table, not a
 * mutable global: adding a strategy means adding a row here (and its id to
 * {@link STRATEGY_IDS}), so the set a federation can name is closed and known
 * at build time.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { describe } from './base.ts';
import { FedAvg } from './fedavg.ts';
import { FedAdam, FedYogi } from './fedopt.ts';
import { FedProx } from './fedprox.ts';
import { CoordinateMedian, Krum, TrimmedMean } from './robust.ts';
import { STRATEGY_IDS, type Strategy, type StrategyId, type StrategyOptions } from './types.ts';

/** What the CLI, REST API and portal show about a built-in strategy. */
export interface StrategyInfo {
  /** Registry id, as passed to {@link createStrategy}. */
  id: StrategyId;
  /** Human-readable name. */
  name: string;
  /** True when the strategy needs individual updates (incompatible with secure aggregation and HE). */
  needsIndividualUpdates: boolean;
  /** The {@link StrategyOptions} keys it reads. */
  options: readonly (keyof StrategyOptions)[];
  /** Paper the rule comes from. */
  reference: string;
}

interface Entry extends StrategyInfo {
  create(opts: StrategyOptions): Strategy;
}

const FEDOPT_OPTIONS = ['serverLearningRate', 'beta1', 'beta2', 'tau'] as const;

const ENTRIES: Readonly<Record<StrategyId, Entry>> = {
  fedavg: { id: 'fedavg', name: 'FedAvg', needsIndividualUpdates: false, options: [], reference: 'McMahan et al. 2017', create: () => new FedAvg() },
  fedprox: { id: 'fedprox', name: 'FedProx', needsIndividualUpdates: false, options: ['proximalMu'], reference: 'Li et al. 2020', create: (o) => new FedProx(o) },
  fedadam: { id: 'fedadam', name: 'FedAdam', needsIndividualUpdates: false, options: FEDOPT_OPTIONS, reference: 'Reddi et al. 2021', create: (o) => new FedAdam(o) },
  fedyogi: { id: 'fedyogi', name: 'FedYogi', needsIndividualUpdates: false, options: FEDOPT_OPTIONS, reference: 'Reddi et al. 2021', create: (o) => new FedYogi(o) },
  median: { id: 'median', name: 'Coordinate-wise median', needsIndividualUpdates: true, options: [], reference: 'Yin et al. 2018', create: () => new CoordinateMedian() },
  'trimmed-mean': { id: 'trimmed-mean', name: 'Trimmed mean', needsIndividualUpdates: true, options: ['trimBeta'], reference: 'Yin et al. 2018', create: (o) => new TrimmedMean(o) },
  krum: { id: 'krum', name: 'Krum / Multi-Krum', needsIndividualUpdates: true, options: ['krumF', 'krumM'], reference: 'Blanchard et al. 2017', create: (o) => new Krum(o) },
};

/**
 * True if `id` names a built-in strategy.
 * @param id - any value
 * @returns whether it is a {@link StrategyId}
 */
export function isStrategyId(id: unknown): id is StrategyId {
  return typeof id === 'string' && (STRATEGY_IDS as readonly string[]).includes(id);
}

/**
 * Create a fresh strategy instance (one per federation: server optimizers
 * keep state between rounds). Options a strategy does not read are ignored,
 * so one federation config can carry options for several strategies.
 *
 * @param id - registry id, e.g. from a federation's config
 * @param opts - hyper-parameters; each strategy validates the ones it reads
 * @returns a new strategy
 * @throws FedmartError CONFIG_ERROR for an unknown id or an out-of-range option
 * @example
 * const s = createStrategy('fedyogi', { serverLearningRate: 0.03 });
 */
export function createStrategy(id: StrategyId | string, opts: StrategyOptions = {}): Strategy {
  if (!isStrategyId(id)) {
    throw new FedmartError('CONFIG_ERROR', `unknown strategy ${typeof id === 'string' ? JSON.stringify(id) : describe(id)}; choose one of: ${STRATEGY_IDS.join(', ')}`, {
      details: { got: id, expected: STRATEGY_IDS },
    });
  }
  if (opts === null || typeof opts !== 'object') {
    throw new FedmartError('CONFIG_ERROR', `strategy options for "${id}" must be an object, got ${describe(opts)}; pass e.g. { proximalMu: 0.01 }`);
  }
  return ENTRIES[id].create(opts);
}

/**
 * @returns every built-in strategy, in {@link STRATEGY_IDS} order
 * @example
 * listStrategies().filter((s) => !s.needsIndividualUpdates); // usable with secure aggregation
 */
export function listStrategies(): StrategyInfo[] {
  return STRATEGY_IDS.map((id) => {
    const { create: _create, ...info } = ENTRIES[id];
    return { ...info, options: [...info.options] };
  });
}
