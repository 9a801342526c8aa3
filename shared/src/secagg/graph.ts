/**
 * SecAgg+ neighbourhood graph (Bell, Bonawitz, Gascón, Lepoint, Raykova,
 * "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead",
 * CCS 2020, §3–4): each client agrees masks and shares secrets with k
 * neighbours instead of all n − 1 others, so client cost is O(k) and the
 * server's dropout recovery is O(k) per dropped client. k = O(log n) keeps
 * the masked sum secure and robust with high probability.
 *
 * Construction: the Harary graph H(k, n) — clients on a ring, each joined to
 * the k/2 nearest on either side — laid over a uniformly random permutation
 * of the clients. That is k-regular, connected, and a random relabelling
 * (the construction Bell et al. and Google's SecAgg+ implementation use).
 * The permutation comes from the ChaCha20 PRG under a public seed chosen by
 * the coordinator, so every client rebuilds the same graph and can check the
 * coordinator did not hand it different neighbours. With k ≥ n − 1 the graph
 * is complete: plain SecAgg (Bonawitz et al. 2017).
 */
import { assertBytes } from '../crypto/bytes.ts';
import { expandSeed } from '../crypto/prg.ts';

/** Length of the public graph seed in bytes. */
export const GRAPH_SEED_BYTES = 32;

/** The neighbourhood of every client. */
export interface NeighbourGraph {
  /** client ids, ascending */
  readonly ids: readonly number[];
  /** neighbours per client (k, or n − 1 when complete) */
  readonly degree: number;
  /** true when every client is every other's neighbour (plain SecAgg) */
  readonly complete: boolean;
  /** neighbours of each client, ascending, never including itself */
  readonly neighbours: ReadonlyMap<number, readonly number[]>;
}

/**
 * Default degree: ⌈2·log2 n⌉ rounded up to even, capped at n − 1 (complete
 * graph). For n = 100 that is 14, for n = 1000 it is 20.
 * @param n - number of clients, ≥ 1
 * @returns k
 * @throws RangeError if n is not a positive integer
 */
export function defaultNeighbourDegree(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`defaultNeighbourDegree: n: expected an integer ≥ 1, got ${n}`);
  let k = Math.ceil(2 * Math.log2(n));
  if (k % 2 === 1) k++;
  return Math.min(k, n - 1);
}

/** Uniform integers in [0, m) from the ChaCha20 stream, by rejection sampling (no modulo bias). */
function seededIntegers(seed: Uint8Array): (m: number) => number {
  const BLOCK = 1024;
  let buffer: Uint32Array = new Uint32Array(0);
  let pos = 0;
  let counter = 0;
  const next = (): number => {
    if (pos === buffer.length) {
      buffer = expandSeed(seed, BLOCK, { counter });
      counter += BLOCK / 16;
      pos = 0;
    }
    return buffer[pos++]!;
  };
  return (m: number) => {
    const limit = Math.floor(2 ** 32 / m) * m;
    for (;;) {
      const w = next();
      if (w < limit) return w % m;
    }
  };
}

/**
 * Build the SecAgg+ graph for a set of client ids.
 * @param ids - distinct client ids (positive uint32), any order
 * @param seed - 32-byte public seed chosen by the coordinator for this round
 * @param degree - k: even, ≥ 2; any k ≥ n − 1 gives the complete graph (default {@link defaultNeighbourDegree})
 * @returns the graph; the same inputs always give the same graph
 * @throws TypeError/RangeError on malformed ids, seed or degree
 * @example
 * const g = buildNeighbourGraph([1, 2, 3, 4, 5, 6], seed, 2);
 * g.neighbours.get(1); // two ids
 */
export function buildNeighbourGraph(ids: readonly number[], seed: Uint8Array, degree?: number): NeighbourGraph {
  if (!Array.isArray(ids)) throw new TypeError('buildNeighbourGraph: ids: expected an array of client ids');
  assertBytes('buildNeighbourGraph: seed', seed, GRAPH_SEED_BYTES);
  const sorted = [...ids].sort((a, b) => a - b);
  sorted.forEach((id, i) => {
    if (!Number.isSafeInteger(id) || id < 1 || id > 0xffffffff) throw new RangeError(`buildNeighbourGraph: ids: expected positive uint32 ids, got ${String(id)}`);
    if (i > 0 && sorted[i - 1] === id) throw new RangeError(`buildNeighbourGraph: ids: duplicate id ${id}`);
  });
  const n = sorted.length;
  const k = degree ?? defaultNeighbourDegree(Math.max(n, 1));
  if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`buildNeighbourGraph: degree: expected a non-negative integer, got ${String(k)}`);
  const neighbours = new Map<number, number[]>();
  if (k >= n - 1) {
    for (const id of sorted) neighbours.set(id, sorted.filter((x) => x !== id));
    return Object.freeze({ ids: sorted, degree: Math.max(n - 1, 0), complete: true, neighbours });
  }
  if (k % 2 !== 0 || k < 2) throw new RangeError(`buildNeighbourGraph: degree: expected an even k ≥ 2 (Harary graph) or k ≥ n − 1 = ${n - 1}, got ${k}`);
  // Fisher–Yates shuffle driven by the public seed.
  const order = sorted.slice();
  const randomBelow = seededIntegers(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = randomBelow(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const half = k / 2;
  for (let p = 0; p < n; p++) {
    const list: number[] = [];
    for (let d = 1; d <= half; d++) list.push(order[(p + d) % n]!, order[(p - d + n) % n]!);
    neighbours.set(order[p]!, list.sort((a, b) => a - b));
  }
  return Object.freeze({ ids: sorted, degree: k, complete: false, neighbours });
}
