/**
 * FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous
 * Networks", MLSys). The server side is FedAvg; the difference lives in the
 * clients' objective, which gains a proximal term
 *
 *   h_k(w) = F_k(w) + μ/2·‖w − w_global‖²,
 *
 * pulling local models back towards the global one so that partners with very
 * different data (non-IID) or different amounts of local work do not drift
 * apart. The coordinator only has to tell clients μ, through
 * {@link LocalTrainConfig.proximalMu}.
 *
 * Pure: no I/O.
 */
import { readOption } from './base.ts';
import { FedAvg } from './fedavg.ts';
import type { LocalTrainConfig, RoundContext, StrategyId, StrategyOptions } from './types.ts';

/** Default μ: the smallest non-zero value of Li et al.'s grid {0.001, 0.01, 0.1, 1}, safe for most tasks. */
export const DEFAULT_PROXIMAL_MU = 0.01;

/**
 * FedProx: FedAvg aggregation, with every client told to add μ/2·‖w − w_global‖²
 * to its local loss.
 *
 * @example
 * const s = new FedProx({ proximalMu: 0.1 });
 * s.configureTrain(ctx, base).proximalMu; // 0.1
 */
export class FedProx extends FedAvg {
  override readonly id: StrategyId = 'fedprox';
  /** Proximal coefficient μ sent to every client. */
  readonly proximalMu: number;

  /**
   * @param opts - `proximalMu` (μ ≥ 0, default 0.01; 0 degenerates to FedAvg)
   * @throws FedmartError CONFIG_ERROR when μ is negative or not finite
   */
  constructor(opts: StrategyOptions = {}) {
    super();
    this.proximalMu = readOption('fedprox', opts, 'proximalMu', DEFAULT_PROXIMAL_MU, { min: 0 });
  }

  /**
   * @param _ctx - the round being configured
   * @param base - the federation's default local config
   * @returns a copy of `base` with `proximalMu` set to this strategy's μ (overriding the base value)
   */
  override configureTrain(_ctx: RoundContext, base: LocalTrainConfig): LocalTrainConfig {
    return { ...base, proximalMu: this.proximalMu };
  }

  /** @returns one line naming the rule, μ and the paper */
  override summary(): string {
    return `FedProx(μ=${this.proximalMu}): FedAvg aggregation, clients minimise loss + μ/2·‖w − w_global‖² (Li et al. 2020)`;
  }
}
