/**
 * RFC 6962 Merkle hash trees (Certificate Transparency, §2.1), with the proof
 * verification algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
 * (consistency). Pure: SHA-256 from `@noble/hashes`, no I/O, so the portal
 * can verify proofs in the browser.
 *
 * - leaf hash  MTH({d}) = SHA-256(0x00 ‖ d)
 * - node hash  SHA-256(0x01 ‖ left ‖ right)
 * - MTH(D[n]) for n > 1 splits at k, the largest power of two smaller than n
 *   (so trees whose size is not a power of two are left-heavy), and
 *   MTH({}) = SHA-256("") for the empty tree.
 *
 * Functions that build proofs take the list of leaf hashes; verifiers need
 * only the sizes, the hashes and the proof. Verifiers fail closed: a malformed
 * proof (wrong length, wrong element size) returns false, never throws.
 * Timing: comparisons are not constant-time (every value here is public).
 */
import { sha256 } from '@noble/hashes/sha2.js';

/** Size of every hash in the tree (SHA-256). */
export const MERKLE_HASH_BYTES = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

function hashOf(prefix: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = sha256.create().update(prefix);
  for (const p of parts) h.update(p);
  return h.digest();
}

function assertBytes(label: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${label} must be a Uint8Array, got ${value === null ? 'null' : typeof value}`);
}

function assertSize(label: string, n: unknown): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`${label} must be a non-negative safe integer, got ${String(n)}`);
}

/** Root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1). */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * Leaf hash SHA-256(0x00 ‖ entry) (RFC 6962 §2.1).
 * @param entry - the leaf's data
 * @returns 32 bytes
 * @throws TypeError when entry is not a Uint8Array
 */
export function merkleLeafHash(entry: Uint8Array): Uint8Array {
  assertBytes('merkleLeafHash: entry', entry);
  return hashOf(LEAF_PREFIX, entry);
}

/**
 * Interior node hash SHA-256(0x01 ‖ left ‖ right) (RFC 6962 §2.1).
 * @throws TypeError when an argument is not a Uint8Array
 */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  assertBytes('merkleNodeHash: left', left);
  assertBytes('merkleNodeHash: right', right);
  return hashOf(NODE_PREFIX, left, right);
}

/** k: the largest power of two with k < n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkLeaves(label: string, leaves: readonly Uint8Array[]): void {
  if (!Array.isArray(leaves)) throw new TypeError(`${label}: leaves must be an array of 32-byte leaf hashes`);
}

/** MTH of leaves[lo, hi). */
function subtreeRoot(leaves: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 0) return emptyRoot();
  if (n === 1) return leaves[lo]!;
  const k = splitPoint(n);
  return merkleNodeHash(subtreeRoot(leaves, lo, lo + k), subtreeRoot(leaves, lo + k, hi));
}

/**
 * Merkle tree hash MTH(D[size]) of the first `size` leaves (RFC 6962 §2.1).
 * @param leafHashes - leaf hashes ({@link merkleLeafHash}) in log order
 * @param size - how many leaves (default: all)
 * @returns the root
 * @throws RangeError when size exceeds the number of leaves
 */
export function merkleRoot(leafHashes: readonly Uint8Array[], size: number = leafHashes.length): Uint8Array {
  checkLeaves('merkleRoot', leafHashes);
  assertSize('merkleRoot: size', size);
  if (size > leafHashes.length) throw new RangeError(`merkleRoot: size ${size} exceeds the ${leafHashes.length} leaves`);
  return subtreeRoot(leafHashes, 0, size);
}

function path(leaves: readonly Uint8Array[], m: number, lo: number, hi: number, out: Uint8Array[]): void {
  const n = hi - lo;
  if (n <= 1) return;
  const k = splitPoint(n);
  if (m < k) {
    path(leaves, m, lo, lo + k, out);
    out.push(subtreeRoot(leaves, lo + k, hi));
  } else {
    path(leaves, m - k, lo + k, hi, out);
    out.push(subtreeRoot(leaves, lo, lo + k));
  }
}

/**
 * Audit path PATH(index, D[size]) proving leaf `index` is in the tree of `size` leaves (RFC 6962 §2.1.1).
 * @param leafHashes - leaf hashes in log order
 * @param index - 0-based leaf index
 * @param size - tree size (index < size ≤ leaves)
 * @returns the sibling hashes, leaf to root
 * @throws RangeError on an index or size out of range
 */
export function inclusionProof(leafHashes: readonly Uint8Array[], index: number, size: number): Uint8Array[] {
  checkLeaves('inclusionProof', leafHashes);
  assertSize('inclusionProof: index', index);
  assertSize('inclusionProof: size', size);
  if (index >= size || size > leafHashes.length) throw new RangeError(`inclusionProof: need index < size ≤ ${leafHashes.length}, got index ${index}, size ${size}`);
  const out: Uint8Array[] = [];
  path(leafHashes, index, 0, size, out);
  return out;
}

function subproof(leaves: readonly Uint8Array[], m: number, lo: number, hi: number, complete: boolean, out: Uint8Array[]): void {
  const n = hi - lo;
  if (m === n) {
    if (!complete) out.push(subtreeRoot(leaves, lo, hi));
    return;
  }
  const k = splitPoint(n);
  if (m <= k) {
    subproof(leaves, m, lo, lo + k, complete, out);
    out.push(subtreeRoot(leaves, lo + k, hi));
  } else {
    subproof(leaves, m - k, lo + k, hi, false, out);
    out.push(subtreeRoot(leaves, lo, lo + k));
  }
}

/**
 * Consistency proof PROOF(m, D[n]) that the tree of `m` leaves is a prefix of the tree of `n` (RFC 6962 §2.1.2).
 * @param leafHashes - leaf hashes in log order
 * @param m - the older size (0 ≤ m ≤ n)
 * @param n - the newer size (≤ leaves)
 * @returns the proof (empty when m = 0 or m = n)
 * @throws RangeError on sizes out of range
 */
export function consistencyProof(leafHashes: readonly Uint8Array[], m: number, n: number): Uint8Array[] {
  checkLeaves('consistencyProof', leafHashes);
  assertSize('consistencyProof: m', m);
  assertSize('consistencyProof: n', n);
  if (m > n || n > leafHashes.length) throw new RangeError(`consistencyProof: need m ≤ n ≤ ${leafHashes.length}, got m ${m}, n ${n}`);
  if (m === 0 || m === n) return [];
  const out: Uint8Array[] = [];
  subproof(leafHashes, m, 0, n, true, out);
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function wellFormed(proof: readonly unknown[]): proof is Uint8Array[] {
  return Array.isArray(proof) && proof.every((p) => p instanceof Uint8Array && p.length === MERKLE_HASH_BYTES);
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or null when the proof cannot be for this index and size.
 * @param index - 0-based leaf index
 * @param size - tree size
 * @param leafHash - the leaf's hash
 * @param proof - the audit path
 */
export function rootFromInclusionProof(index: number, size: number, leafHash: Uint8Array, proof: readonly Uint8Array[]): Uint8Array | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  if (!(leafHash instanceof Uint8Array) || leafHash.length !== MERKLE_HASH_BYTES || !wellFormed(proof)) return null;
  // Numbers above 2^31 lose the bit operators: shift with arithmetic instead.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  const odd = (x: number) => x % 2 === 1;
  const half = (x: number) => Math.floor(x / 2);
  for (const p of proof) {
    if (sn === 0) return null;
    if (odd(fn) || fn === sn) {
      r = merkleNodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

/**
 * Verify an inclusion proof against a root (RFC 9162 §2.1.3.2).
 * @returns true only when the proof shows `leafHash` at `index` in the tree of `size` leaves with `root`
 */
export function verifyInclusion(index: number, size: number, leafHash: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const r = rootFromInclusionProof(index, size, leafHash, proof);
  return r !== null && root instanceof Uint8Array && equal(r, root);
}

/**
 * Verify a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
 * @param m - older tree size
 * @param n - newer tree size
 * @param rootM - older root
 * @param rootN - newer root
 * @param proof - PROOF(m, D[n])
 * @returns true only when the tree of `n` leaves with `rootN` extends the tree of `m` leaves with `rootM`
 */
export function verifyConsistency(m: number, n: number, rootM: Uint8Array, rootN: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false;
  if (!(rootM instanceof Uint8Array) || !(rootN instanceof Uint8Array) || !wellFormed(proof)) return false;
  if (m === n) return proof.length === 0 && equal(rootM, rootN);
  if (m === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const odd = (x: number) => x % 2 === 1;
  const half = (x: number) => Math.floor(x / 2);
  // Step 2: when m is a power of two the older root is itself the first node of the path.
  const isPow2 = Number.isInteger(Math.log2(m));
  const path = isPow2 ? [rootM, ...proof] : [...proof];
  let fn = m - 1;
  let sn = n - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = merkleNodeHash(c, fr);
      sr = merkleNodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = merkleNodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, rootM) && equal(sr, rootN);
}

/**
 * The right edge of a growing tree: the roots of its perfect subtrees, largest first (a "compact range" from
 * the left end). Appending is O(log n) and the root is the right-to-left fold of these roots, which equals
 * MTH because MTH's split at the largest power of two peels off exactly these subtrees.
 */
export class MerkleFrontier {
  #size = 0;
  /** Perfect-subtree roots with their heights, left to right. */
  #nodes: { height: number; hash: Uint8Array }[] = [];

  /** Number of leaves appended. */
  get size(): number {
    return this.#size;
  }

  /**
   * Append a leaf hash.
   * @throws TypeError/RangeError on a value that is not a 32-byte hash
   */
  append(leafHash: Uint8Array): void {
    assertBytes('MerkleFrontier.append: leafHash', leafHash);
    if (leafHash.length !== MERKLE_HASH_BYTES) throw new RangeError(`MerkleFrontier.append: leafHash must be ${MERKLE_HASH_BYTES} bytes, got ${leafHash.length}`);
    let node = { height: 0, hash: leafHash };
    while (this.#nodes.length > 0 && this.#nodes[this.#nodes.length - 1]!.height === node.height) {
      const left = this.#nodes.pop()!;
      node = { height: node.height + 1, hash: merkleNodeHash(left.hash, node.hash) };
    }
    this.#nodes.push(node);
    this.#size++;
  }

  /** MTH of every leaf appended so far. */
  root(): Uint8Array {
    if (this.#nodes.length === 0) return emptyRoot();
    let acc = this.#nodes[this.#nodes.length - 1]!.hash;
    for (let i = this.#nodes.length - 2; i >= 0; i--) acc = merkleNodeHash(this.#nodes[i]!.hash, acc);
    return acc;
  }
}
