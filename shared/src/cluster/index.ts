/**
 * Customer segments by federated k-means: Lloyd iterations over partners
 * that send only per-cluster counts and sums (`lloyd.ts`), optionally
 * through secure aggregation (`secure-sum.ts`); an initialization that sends
 * only group means of ≥ m customers (`seeding.ts`); the partner and
 * coordinator halves (`federated.ts`); the encoding (`encode.ts`) and
 * readable profiles (`profile.ts`). Pure: no I/O.
 */
export * from './lloyd.ts';
export * from './seeding.ts';
export * from './secure-sum.ts';
export * from './federated.ts';
export * from './encode.ts';
export * from './profile.ts';
