/** Shared by the multiparty CKKS federation tests (issue 8, item 3). */
import type { Orchestrator } from '@fedmart/coordinator/orchestrator';

/** Resolves once `n` partners published their signed X25519 key (the multiparty setup is done: they can be selected). */
export function partnerKeysPublished(orch: Orchestrator, n: number): Promise<void> {
  const seen = new Set<string>();
  const accept = orch.acceptHePartnerKey.bind(orch);
  return new Promise((resolve) => {
    orch.acceptHePartnerKey = (federationId, partnerId, publicKey, signature) => {
      accept(federationId, partnerId, publicKey, signature);
      seen.add(partnerId);
      if (seen.size >= n) resolve();
    };
  });
}
