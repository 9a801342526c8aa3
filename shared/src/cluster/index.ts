/**
 * Customer segments by federated k-means: Lloyd iterations over partners
 * that send only per-cluster counts and sums (`lloyd.ts`), optionally
 * through secure aggregation (`secure-sum.ts`); an initialization that sends
 * only group means of ≥ m customers (`seeding.ts`); the partner and
 * coordinator halves (`federated.ts`); the encoding (`encode.ts`) and
 * readable profiles (`profile.ts`). Pure: no I/O.
 *
 * Threat model (honest-but-curious coordinator and partners). Every party
 * learns the published centroids of each iteration and the final segment
 * profiles (means over all partners' customers in a segment, sizes, positive
 * counts). The coordinator also learns, from the preparation, each partner's
 * row count and (count, Σx, Σx²) per numeric column, and from the
 * initialization each partner's ≤ 2k group means of ≥ m customers with their
 * sizes (neither is under secure aggregation). Per Lloyd iteration it learns
 * each partner's per-segment counts, sums and inertia share without secure
 * aggregation, and only their sum over partners with it — unless it colludes
 * with t or more partners (the SecAgg threshold), who can then unmask the
 * others. Each partner's assignments of its own customers never leave it.
 * Nothing here is differentially private.
 */
export * from './lloyd.ts';
export * from './seeding.ts';
export * from './secure-sum.ts';
export * from './federated.ts';
export * from './encode.ts';
export * from './profile.ts';
