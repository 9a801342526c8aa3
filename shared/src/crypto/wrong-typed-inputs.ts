/**
 * One shared list of wrong-typed values that every crypto export must reject
 * where it expects bytes or an integer (the idea of noble's `test/utils.ts`).
 * Test support only: not exported from `crypto/index.ts`.
 */

/** Values that are not a `Uint8Array`, including near misses. */
export const NOT_BYTES: readonly unknown[] = [
  undefined,
  null,
  0,
  1,
  -1,
  1.5,
  0n,
  true,
  '',
  '00',
  'deadbeef',
  [],
  [1, 2, 3],
  {},
  { length: 32 },
  new ArrayBuffer(32),
  new DataView(new ArrayBuffer(32)),
  new Uint8ClampedArray(32),
  new Uint16Array(16),
  new Int8Array(32),
  new Uint32Array(8),
  new Float32Array(8),
  () => new Uint8Array(32),
  Symbol('bytes'),
];

/** Values that are not a non-negative safe integer. */
export const NOT_INTEGER: readonly unknown[] = [undefined, null, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1n, '1', true, [], {}, new Uint8Array(1)];
