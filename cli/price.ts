/**
 * `fedmart price --model <federation/version> --product P --cost C --current-price X …`:
 * price one SKU from a published pricing model, read through the
 * `ModelRegistry` (HTTP), within guardrails.
 */
import { createHash } from 'node:crypto';
import { FedmartError } from '@fedmart/shared/errors';
import { HttpModelRegistry } from '@fedmart/scenarios';
import { loadPricingModel, price } from '@fedmart/scenarios/pricing/consumer';
import { parseFlags, requireString, numberFlag } from './args.ts';

export const PRICE_USAGE = `fedmart price --model FEDERATION/VERSION --product P --cost C --current-price X
    [--competitor-price Y[,Y2…]] [--max-change 0.1] [--high-sensitivity-change 0.05] [--min-margin 0.15]
    [--min-price A] [--max-price B] [--threshold 2] [--policy margin-optimal|cost-plus] [--target-margin 0.3]
    [--base-units Q] [--coordinator URL] [--token T] [--json]

The margin-maximising price under the model's own-price elasticity e (p* = c·e/(1+e) for e < −1),
or the brief's cost-plus rule, then held within the guardrails; says which guardrail bound it.`;

const REF = /^([A-Za-z0-9_.-]+)\/(\d+|latest)$/;

/** Run `fedmart price`. */
export async function priceCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('price', argv, {
    model: { type: 'string' }, product: { type: 'string' }, cost: { type: 'string' }, 'current-price': { type: 'string' }, 'competitor-price': { type: 'string' },
    'max-change': { type: 'string' }, 'high-sensitivity-change': { type: 'string' }, 'min-margin': { type: 'string' }, 'min-price': { type: 'string' }, 'max-price': { type: 'string' },
    threshold: { type: 'string' }, policy: { type: 'string' }, 'target-margin': { type: 'string' }, 'base-units': { type: 'string' },
    coordinator: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) { process.stdout.write(PRICE_USAGE + '\n'); return 0; }
  const ref = requireString('price', values, 'model', 'the published pricing model, FEDERATION/VERSION or FEDERATION/latest');
  const m = REF.exec(ref);
  if (!m) throw new FedmartError('CONFIG_ERROR', `price: --model must be FEDERATION/VERSION (for example f_abc/3 or f_abc/latest), got "${ref}"`);
  const product = requireString('price', values, 'product', 'the product to price, as in the model');
  const num = (name: string, min: number, max: number): number | undefined => (values[name] === undefined ? undefined : numberFlag('price', values, name, Number.NaN, min, max));
  const cost = num('cost', 0, 1e12);
  const current = num('current-price', 1e-12, 1e12);
  if (cost === undefined) throw new FedmartError('CONFIG_ERROR', 'price: missing --cost (the unit cost)');
  if (current === undefined) throw new FedmartError('CONFIG_ERROR', 'price: missing --current-price (the price now)');
  const policy = (values.policy as string | undefined) ?? 'margin-optimal';
  if (policy !== 'margin-optimal' && policy !== 'cost-plus') throw new FedmartError('CONFIG_ERROR', `price: --policy must be margin-optimal or cost-plus, got "${policy}"`);
  const competitorPrices = typeof values['competitor-price'] === 'string' ? values['competitor-price'].split(',').map((s) => {
    const v = Number(s);
    if (!(v > 0)) throw new FedmartError('CONFIG_ERROR', `price: --competitor-price must be prices > 0 separated by commas, got "${s}"`);
    return v;
  }) : undefined;
  const url = (values.coordinator as string | undefined) ?? 'http://127.0.0.1:7300';
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new FedmartError('CONFIG_ERROR', `price: --coordinator must be an http(s) URL such as http://127.0.0.1:7300, got "${url}"`);
  const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN ?? process.env.FEDMART_OPERATOR_TOKEN;
  if (!token) throw new FedmartError('CONFIG_ERROR', 'price: the model is read from a coordinator, which needs a token: pass --token or set FEDMART_TOKEN');
  const registry = new HttpModelRegistry(url, token, fetch, (b) => createHash('sha256').update(b).digest('hex'));
  const model = await loadPricingModel(registry, m[1]!, m[2] === 'latest' ? 'latest' : Number(m[2]));
  const answer = price(model, product, {
    cost, currentPrice: current, competitorPrices, policy,
    maxChange: num('max-change', 1e-6, 0.999999), highSensitivityMaxChange: num('high-sensitivity-change', 1e-6, 0.999999), minMargin: num('min-margin', 0, 0.999999),
    minPrice: num('min-price', 0, 1e12), maxPrice: num('max-price', 1e-12, 1e12), threshold: num('threshold', 0, 100), targetMargin: num('target-margin', 0, 100), baseUnits: num('base-units', 1e-12, 1e15),
  });
  process.stdout.write(values.json ? JSON.stringify(answer) + '\n' : JSON.stringify(answer, null, 2) + '\n');
  return 0;
}
