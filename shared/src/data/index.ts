/**
 * Tabular data layer: parse partner files into tables, agree on a schema,
 * compute standardisation statistics federatedly, encode to float matrices,
 * and split reproducibly. Pure: file reading lives in client-node.
 */
export * from './table.ts';
export * from './schema.ts';
export * from './stats.ts';
export * from './encode.ts';
export * from './split.ts';
export * from './rng.ts';
