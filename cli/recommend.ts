/**
 * `fedmart recommend`: top-k items for one of a brand's users from a
 * published recommendation model, read through a ModelRegistry (a model
 * file written by `simulate --save`, or FEDERATION/VERSION on a
 * coordinator with --catalogue).
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readTableFile } from '@fedmart/client-node/data/connectors';
import { FedmartError } from '@fedmart/shared/errors';
import { HttpModelRegistry, type ModelRegistry } from '@fedmart/scenarios';
import { FileModelRegistry, historiesOf, historyLookup, parseAnyModelFile, parseModelFile, RecommendationService, type Catalogue } from '@fedmart/scenarios/recommendation/recommend';
import { parseRecFederationSpec } from '@fedmart/scenarios/recommendation/federation';
import { gramReleaseRegistry } from '@fedmart/scenarios/recommendation/gram-serve';
import type { RecModelSpec } from '@fedmart/scenarios/recommendation/model';
import { ApiClient } from './api-client.ts';
import { intFlag, parseFlags, requireString } from './args.ts';

const USAGE = `fedmart recommend --model <FILE | FEDERATION/VERSION> --data PARTNER.csv --user ID [--k 10] [--json]

Top-k items the user has not interacted with, with scores and reasons (wide
and deep contributions, the history items most like each one). The user's
local embedding is recomputed from their history in PARTNER.csv (fold-in):
user parameters are never published.

  --model FILE|ID/VER   model.json from "fedmart scenario recommendation simulate --save DIR"
                        (Wide & Deep, or with --dp record the item-Gram DP model: the score is
                        its factor part, "because of" the history items with the largest share),
                        or a federation's version on a coordinator (f_abc/3, f_abc/latest)
  --catalogue FILE      with ID/VER: a model file holding the catalogue (default: the federation's own,
                        for federations made with fedmart scenario recommendation create)
  --coordinator URL     with ID/VER (default http://127.0.0.1:7300); --token T (or FEDMART_TOKEN)
  --data FILE           the brand's interactions
  --user-column COL, --item-column COL   (default: the columns the model was trained with)
  --user ID             the customer
  --k K                 how many (default 10)`;

export async function recommendCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('recommend', argv, {
    model: { type: 'string' }, catalogue: { type: 'string' }, coordinator: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' },
    'user-column': { type: 'string' }, 'item-column': { type: 'string' }, user: { type: 'string' }, k: { type: 'string' }, json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const ref = requireString('recommend', values, 'model', 'a model.json or FEDERATION/VERSION');
  const dataPath = requireString('recommend', values, 'data', "the brand's interaction CSV");
  const user = requireString('recommend', values, 'user', 'the customer id');
  const k = intFlag('recommend', values, 'k', 10, 1, 1000);
  const byId = /^[A-Za-z0-9_-]+\/(\d+|latest)$/.test(ref) && !ref.endsWith('.json');
  let registry: ModelRegistry;
  let federation: string;
  let version: number | 'latest';
  let catalogue: Catalogue;
  let model: RecModelSpec | 'gram';
  let trained: { user: string; item: string };
  if (byId) {
    const [fed, ver] = ref.split('/') as [string, string];
    const url = (values.coordinator as string | undefined) ?? 'http://127.0.0.1:7300';
    const token = (values.token as string | undefined) ?? process.env.FEDMART_TOKEN ?? process.env.FEDMART_OPERATOR_TOKEN;
    if (!token) throw new FedmartError('CONFIG_ERROR', `recommend: --model ${ref} is read from a coordinator, which needs a token: pass --token or set FEDMART_TOKEN`);
    registry = new HttpModelRegistry(url, token, fetch, (b) => createHash('sha256').update(b).digest('hex'));
    federation = fed;
    version = ver === 'latest' ? 'latest' : Number(ver);
    if (typeof values.catalogue === 'string') {
      const file = parseModelFile(readText(values.catalogue), values.catalogue);
      ({ catalogue, model } = file);
      trained = file.columns;
    } else {
      // A federation created with its catalogue (fedmart scenario recommendation create) carries it in its taskSpec.
      const view = await new ApiClient(url, token).get<{ federation: { config: { taskSpec?: unknown } } }>(`/api/v1/federations/${encodeURIComponent(fed)}`);
      const spec = parseRecFederationSpec(view.federation.config.taskSpec, fed);
      ({ catalogue, model } = spec);
      trained = spec.columns;
      // Under --dp record the coordinator publishes the releases; the served item model is their post-processing.
      if (spec.gram) {
        registry = gramReleaseRegistry(registry, spec.gram, spec.sigma!);
        model = 'gram';
      }
    }
  } else {
    const file = parseAnyModelFile(readText(ref), ref);
    registry = new FileModelRegistry(file);
    ({ federationId: federation, version, catalogue } = file);
    model = 'gram' in file ? 'gram' : file.model;
    trained = file.columns;
  }
  const data = await readTableFile(dataPath);
  const columns = { user: (values['user-column'] as string | undefined) ?? trained.user, item: (values['item-column'] as string | undefined) ?? trained.item };
  const service = new RecommendationService(registry, federation, catalogue, model, historyLookup(historiesOf(data, columns), columns.user));
  const out = await service.answer(user, k, version);
  if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
  else for (const [n, r] of out.recommendations.entries()) process.stdout.write(`${n + 1}. ${r.item}  score ${r.score} (wide ${r.reason.wide}, deep ${r.reason.deep})  because of ${r.reason.becauseOf.join(', ')}\n`);
  return 0;
}

function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    throw new FedmartError('DATA_ERROR', `cannot read ${p}; pass the model.json written by "fedmart scenario recommendation simulate --save DIR"`);
  }
}
