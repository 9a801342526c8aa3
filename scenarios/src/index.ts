export { HttpModelRegistry, ExportModelRegistry, sha256Hex, type ModelRegistry, type PublishedModel, type Fetch } from './model-registry.ts';
/** Scenario tasks by id (the task seam): a new scenario adds a folder and a line here. */
export { pricingTask } from './pricing/task.ts';
export { loadPricingModel, price } from './pricing/consumer.ts';
export { priceSku, backtest } from './pricing/policy.ts';
