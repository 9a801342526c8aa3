/**
 * `fedmart partner` in a recommendation federation (the federation's `task`
 * is "recommendation"): the brand's interaction file becomes the
 * recommendation PartnerTask over the federation's catalogue (taskSpec), and
 * with `--serve PORT` the node serves its own users from the published
 * model (cli/recommend-serve.ts).
 */
import { createHash } from 'node:crypto';
import type { Table } from '@fedmart/shared/data/table';
import { HttpModelRegistry } from '@fedmart/scenarios';
import { brandTask, parseRecFederationSpec } from '@fedmart/scenarios/recommendation/federation';
import { historyLookup, RecommendationService } from '@fedmart/scenarios/recommendation/recommend';
import { gramReleaseRegistry } from '@fedmart/scenarios/recommendation/gram-serve';
import type { PartnerTask } from '@fedmart/shared/task/types';
import { serveRecommendations } from './recommend-serve.ts';

/** The node's task, and (with --serve) a starter for its endpoint once the agent is welcomed. */
export interface RecommendationNode {
  task: PartnerTask;
  /** Start the endpoint (when --serve was given); `invalidate` when a round commits a new model. */
  serve(): Promise<{ url: string; invalidate(): void; close(): void } | null>;
}

/**
 * @param o - the coordinator, the partner token, the federation and its taskSpec, the brand's table, --serve
 * @throws FedmartError CONFIG_ERROR / DATA_ERROR naming what does not fit the federation
 */
export function recommendationNode(o: { url: string; token: string; federation: string; taskSpec: unknown; table: Table; source: string; seed: number; serve: number | undefined; log: (m: string) => void }): RecommendationNode {
  const spec = parseRecFederationSpec(o.taskSpec, o.federation);
  const brand = brandTask(o.table, spec, o.seed + 1, o.source);
  o.log(`recommendation${spec.gram ? ' (item-Gram DP release, two rounds)' : ''}: ${brand.users.length} customers with ≥ 3 catalogue items (${brand.interactions} ${spec.gram ? 'interactions released under DP' : 'training interactions'}), ${brand.histories.size} servable; ${brand.unknownItems} row(s) with items outside the ${spec.catalogue.items.length}-item catalogue ignored`);
  return {
    task: brand.task,
    async serve() {
      if (o.serve === undefined) return null;
      const http = new HttpModelRegistry(o.url, o.token, fetch, (b) => createHash('sha256').update(b).digest('hex'));
      // Under --dp record the coordinator publishes the releases; the served item model is their post-processing.
      const registry = spec.gram ? gramReleaseRegistry(http, spec.gram, spec.sigma!) : http;
      const service = new RecommendationService(registry, o.federation, spec.catalogue, spec.gram ? 'gram' : spec.model, historyLookup(brand.histories, spec.columns.user));
      const { server, url } = await serveRecommendations(service, o.serve);
      return { url, invalidate: () => service.invalidate(), close: () => server.close() };
    },
  };
}
