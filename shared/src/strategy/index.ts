/**
 * Federated optimisation strategies as plug-ins: the {@link Strategy}
 * interface, the built-in rules (FedAvg, FedProx, FedAdam, FedYogi,
 * coordinate median, trimmed mean, Krum) and the registry that creates them by id.
 */
export * from './types.ts';
export { BaseStrategy, assertFiniteAggregate, assertUpdates, findNonFinite, weightedMetricMeans } from './base.ts';
export * from './fedavg.ts';
export * from './fedprox.ts';
export * from './fedopt.ts';
export * from './robust.ts';
export * from './registry.ts';
