/**
 * The pricing consumer: reads a published demand model ONLY through a
 * `ModelRegistry`, solves it (the statistics are public to whoever may read
 * the model), and prices SKUs within guardrails (`policy.ts`).
 */
import { FedmartError } from '@fedmart/shared/errors';
import type { ModelRegistry } from '../model-registry.ts';
import { solveCommitted } from './task.ts';
import { readLayout } from './wire.ts';
import { priceSku, type PriceAnswer, type PriceRequest } from './policy.ts';
import type { ProductFit } from './demand.ts';

export interface PricingModel {
  federationId: string;
  version: number;
  regressors: string[];
  products: Map<string, ProductFit | { error: string }>;
}

/**
 * Load and solve a published pricing model.
 * @param registry - where published models come from
 * @param federationId - the federation
 * @param version - a version or 'latest'
 * @throws FedmartError UNPROCESSABLE when the model is not a pricing model
 */
export async function loadPricingModel(registry: ModelRegistry, federationId: string, version: number | 'latest'): Promise<PricingModel> {
  const m = await registry.load(federationId, version);
  if (m.spec.kind !== 'tensors') throw new FedmartError('UNPROCESSABLE', `price: ${federationId}/${m.version} is a tabular model, not a pricing demand model`);
  const meta = readLayout(m.spec);
  return { federationId, version: m.version, regressors: meta.regressors, products: solveCommitted(m.spec, m.weights, m.participants.length) };
}

/**
 * Price one SKU of a product with the model's elasticity.
 * @param model - a loaded pricing model
 * @param product - the product (as in the model)
 * @param request - cost, current price, guardrails…
 * @throws FedmartError NOT_FOUND for an unknown product; UNPROCESSABLE when its elasticity could not be estimated
 */
export function price(model: PricingModel, product: string, request: Omit<PriceRequest, 'elasticity'>): PriceAnswer & { product: string; se: number; model: string } {
  const fit = model.products.get(product);
  if (!fit) throw new FedmartError('NOT_FOUND', `price: the model ${model.federationId}/${model.version} has no product "${product}" (it has ${[...model.products.keys()].slice(0, 12).join(', ')})`);
  if ('error' in fit) throw new FedmartError('UNPROCESSABLE', `price: product "${product}" has no elasticity in this model: ${fit.error}`);
  return { product, model: `${model.federationId}/${model.version}`, se: fit.se, ...priceSku({ ...request, elasticity: fit.elasticity }) };
}
