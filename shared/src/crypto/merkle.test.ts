import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from './bytes.ts';
import {
  MerkleFrontier, consistencyProof, emptyRoot, inclusionProof, merkleLeafHash, merkleNodeHash, merkleRoot, rootFromInclusionProof, verifyConsistency, verifyInclusion,
} from './merkle.ts';

// RFC 6962 vectors from the Certificate Transparency reference implementation (source in the JSON).
const v = JSON.parse(readFileSync(new URL('../../../test/vectors/merkle/rfc6962.json', import.meta.url), 'utf8')) as {
  hasher: { emptyRoot: string; emptyLeaf: string; leaf: { input: string; hash: string }; node: { left: string; right: string; hash: string } };
  leaves: string[];
  roots: string[];
  inclusion: { leaf: number; size: number; proof: string[] }[];
  consistency: { size1: number; size2: number; proof: string[] }[];
};
const leafHashes = v.leaves.map((l) => merkleLeafHash(hexToBytes(l)));
const hx = (xs: Uint8Array[]) => xs.map(bytesToHex);
const flip = (b: Uint8Array, bit = 3) => { const c = b.slice(); c[0]! ^= 1 << bit; return c; };

describe('RFC 6962 Merkle tree: known answers', () => {
  it('hashes leaves and nodes with the 0x00 / 0x01 domain separation', () => {
    expect(bytesToHex(emptyRoot())).toBe(v.hasher.emptyRoot);
    expect(bytesToHex(merkleLeafHash(new Uint8Array(0)))).toBe(v.hasher.emptyLeaf);
    expect(bytesToHex(merkleLeafHash(hexToBytes(v.hasher.leaf.input)))).toBe(v.hasher.leaf.hash);
    expect(bytesToHex(merkleNodeHash(hexToBytes(v.hasher.node.left), hexToBytes(v.hasher.node.right)))).toBe(v.hasher.node.hash);
  });

  it('computes the root of every prefix of the 8-leaf tree, including the non-power-of-two sizes', () => {
    for (let n = 1; n <= 8; n++) expect(bytesToHex(merkleRoot(leafHashes, n)), `size ${n}`).toBe(v.roots[n - 1]);
    expect(bytesToHex(merkleRoot([], 0))).toBe(v.hasher.emptyRoot);
  });

  it.each(v.inclusion)('builds and verifies the inclusion proof of leaf $leaf in the tree of $size', ({ leaf, size, proof }) => {
    const index = leaf - 1;
    const built = inclusionProof(leafHashes, index, size);
    expect(hx(built)).toEqual(proof);
    const root = hexToBytes(v.roots[size - 1]!);
    expect(verifyInclusion(index, size, leafHashes[index]!, built, root)).toBe(true);
    // Corruptions (the reference test's probes): each must be refused.
    const probes: [number, number, Uint8Array, Uint8Array[], Uint8Array][] = [
      [index + 1, size, leafHashes[index]!, built, root],
      [index ^ 2, size, leafHashes[index]!, built, root],
      [index, size * 2, leafHashes[index]!, built, root],
      [index, Math.floor(size / 2), leafHashes[index]!, built, root],
      [index, size, merkleLeafHash(new TextEncoder().encode('WrongLeaf')), built, root],
      [index, size, leafHashes[index]!, built, emptyRoot()],
      [index, size, leafHashes[index]!, [...built, root], root],
      [index, size, leafHashes[index]!, [root, ...built], root],
      ...built.map((_, i): [number, number, Uint8Array, Uint8Array[], Uint8Array] => [index, size, leafHashes[index]!, built.map((p, j) => (j === i ? flip(p) : p)), root]),
      ...(built.length > 0 ? [[index, size, leafHashes[index]!, built.slice(0, -1), root] as [number, number, Uint8Array, Uint8Array[], Uint8Array]] : []),
    ];
    if (index > 0) probes.push([index - 1, size, leafHashes[index]!, built, root]);
    for (const [i, s, l, p, r] of probes) expect(verifyInclusion(i, s, l, p, r), `index ${i} size ${s} proof ${p.length}`).toBe(false);
  });

  it.each(v.consistency)('builds and verifies the consistency proof from $size1 to $size2', ({ size1, size2, proof }) => {
    const built = consistencyProof(leafHashes, size1, size2);
    expect(hx(built)).toEqual(proof);
    const r1 = hexToBytes(v.roots[size1 - 1]!);
    const r2 = hexToBytes(v.roots[size2 - 1]!);
    expect(verifyConsistency(size1, size2, r1, r2, built)).toBe(true);
    if (built.length === 0) return;
    const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
      [size1 - 1, size2, r1, r2, built], [size1 + 1, size2, r1, r2, built], [size1 ^ 2, size2, r1, r2, built],
      [size1, size2 * 2, r1, r2, built], [size1, Math.floor(size2 / 2), r1, r2, built],
      [size1, size2, r2, r1, built], [size1, size2, emptyRoot(), r2, built], [size1, size2, r1, emptyRoot(), built],
      [size1, size2, r1, r2, []], [size1, size2, r1, r2, [...built, r1]], [size1, size2, r1, r2, [...built, r2]],
      [size1, size2, r1, r2, [r1, ...built]], [size1, size2, r1, r2, [r2, ...built]], [size1, size2, r1, r2, [built[0]!, ...built]],
      [size1, size2, r1, r2, built.slice(0, -1)],
      ...built.map((_, i): [number, number, Uint8Array, Uint8Array, Uint8Array[]] => [size1, size2, r1, r2, built.map((p, j) => (j === i ? flip(p, 4) : p))]),
    ];
    for (const [a, b, x, y, p] of probes) expect(verifyConsistency(a, b, x, y, p), `${a}→${b} proof ${p.length}`).toBe(false);
  });

  it('accepts the always-consistent cases and refuses time travel (reference TestVerifyConsistency)', () => {
    const r = emptyRoot();
    const other = merkleLeafHash(Uint8Array.of(1));
    expect(verifyConsistency(0, 0, r, r, [])).toBe(true);
    expect(verifyConsistency(0, 1, r, other, [])).toBe(true);
    expect(verifyConsistency(1, 1, other, other, [])).toBe(true);
    expect(verifyConsistency(1, 0, r, other, [])).toBe(false);
    expect(verifyConsistency(2, 1, r, other, [])).toBe(false);
    expect(verifyConsistency(1, 2, r, other, [])).toBe(false);
    expect(verifyConsistency(1, 1, r, other, [])).toBe(false);
    expect(verifyConsistency(0, 1, r, r, [r])).toBe(false);
  });
});

describe('RFC 6962 Merkle tree: properties', () => {
  const tree = fc.array(fc.uint8Array({ maxLength: 8 }), { minLength: 1, maxLength: 70 }).map((xs) => xs.map(merkleLeafHash));

  it('every inclusion proof of every leaf verifies, and a proof for one leaf never verifies another', () => {
    fc.assert(fc.property(tree, fc.nat(), fc.nat(), (leaves, a, b) => {
      const size = 1 + (a % leaves.length);
      const i = b % size;
      const root = merkleRoot(leaves, size);
      const p = inclusionProof(leaves, i, size);
      expect(rootFromInclusionProof(i, size, leaves[i]!, p)).toEqual(root);
      const j = (i + 1) % size;
      if (j !== i && bytesToHex(leaves[j]!) !== bytesToHex(leaves[i]!)) expect(verifyInclusion(j, size, leaves[j]!, p, root)).toBe(false);
    }), { numRuns: 200 });
  });

  it('every consistency proof between two prefixes verifies, and fails once any leaf of the older prefix changes', () => {
    fc.assert(fc.property(tree, fc.nat(), fc.nat(), fc.nat(), (leaves, a, b, c) => {
      const n = 1 + (a % leaves.length);
      const m = 1 + (b % n);
      const p = consistencyProof(leaves, m, n);
      expect(verifyConsistency(m, n, merkleRoot(leaves, m), merkleRoot(leaves, n), p)).toBe(true);
      // Rewrite one leaf: the new tree's proof no longer links the old root to the new one.
      const k = c % m; // a leaf the older head covers (leaves after it are new, not rewritten)
      const rewritten = leaves.map((l, i) => (i === k ? merkleLeafHash(Uint8Array.of(0xff, ...l)) : l));
      if (m < n) expect(verifyConsistency(m, n, merkleRoot(leaves, m), merkleRoot(rewritten, n), consistencyProof(rewritten, m, n))).toBe(false);
    }), { numRuns: 200 });
  });

  it('the frontier root equals MTH at every size', () => {
    fc.assert(fc.property(tree, (leaves) => {
      const f = new MerkleFrontier();
      for (let i = 0; i < leaves.length; i++) {
        f.append(leaves[i]!);
        expect(bytesToHex(f.root())).toBe(bytesToHex(merkleRoot(leaves, i + 1)));
      }
    }), { numRuns: 50 });
  });

  it('rejects wrong-typed and malformed inputs', () => {
    expect(() => merkleLeafHash('x' as never)).toThrow(TypeError);
    expect(() => merkleRoot(leafHashes, 9)).toThrow(RangeError);
    expect(() => inclusionProof(leafHashes, 3, 3)).toThrow(RangeError);
    expect(() => consistencyProof(leafHashes, 5, 4)).toThrow(RangeError);
    expect(verifyInclusion(0, 8, leafHashes[0]!, [new Uint8Array(31)] as never, hexToBytes(v.roots[7]!))).toBe(false);
    expect(verifyConsistency(1, 8, leafHashes[0]!, hexToBytes(v.roots[7]!), ['ab' as never])).toBe(false);
  });
});
