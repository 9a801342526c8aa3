import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedmartError } from '../errors.ts';
import { isOnCurve25519 } from './hash-to-curve25519.ts';
import { hashIdToU, hashIdsToU, PsiParty, x25519Multiply, x25519PrivateKeyObject, type PsiMode } from './ecdh-psi.ts';

const rfc = JSON.parse(readFileSync(new URL('../../../test/vectors/psi/x25519-rfc7748.json', import.meta.url), 'utf8')) as {
  scalarMult: { scalar: string; u: string; out: string }[];
  diffieHellman: { alicePrivate: string; bobPublic: string; shared: string };
};

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Run the whole two-party exchange; return what each learns and every byte that crossed the wire. */
function runProtocol(idsA: string[], idsB: string[], mode: PsiMode = 'ids', domain = '') {
  const a = new PsiParty(idsA, { mode, domain });
  const b = new PsiParty(idsB, { mode, domain });
  const aToB = a.blindOwn();
  const bToA = b.blindOwn();
  const doubledForA = b.blindOther(aToB);
  const doubledForB = a.blindOther(bToA);
  return { a: a.intersect(doubledForA, doubledForB), b: b.intersect(doubledForB, doubledForA), sent: [aToB, bToA, doubledForA, doubledForB] };
}

const onCurve = isOnCurve25519;

describe('X25519 through node:crypto', () => {
  it.each(rfc.scalarMult)('matches RFC 7748 §5.2 vector $out', (v) => {
    // Act
    const out = x25519Multiply(x25519PrivateKeyObject(hex(v.scalar)), hex(v.u));
    // Assert
    expect(toHex(out)).toBe(v.out);
  });

  it('matches the RFC 7748 §6.1 shared secret', () => {
    const out = x25519Multiply(x25519PrivateKeyObject(hex(rfc.diffieHellman.alicePrivate)), hex(rfc.diffieHellman.bobPublic));
    expect(toHex(out)).toBe(rfc.diffieHellman.shared);
  });

  it('commutes on random u-coordinates, on the curve and on its twist (property)', () => {
    let twist = 0;
    let curve = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b, u) => {
        // Arrange
        const ka = x25519PrivateKeyObject(a);
        const kb = x25519PrivateKeyObject(b);
        const masked = u.slice();
        masked[31]! &= 0x7f;
        if (onCurve(masked)) curve++;
        else twist++;
        // Act
        const ab = x25519Multiply(ka, x25519Multiply(kb, u));
        const ba = x25519Multiply(kb, x25519Multiply(ka, u));
        // Assert
        expect(toHex(ab)).toBe(toHex(ba));
      }),
      { numRuns: 200 },
    );
    // Both branches of the argument in the module doc were exercised.
    expect(curve).toBeGreaterThan(20);
    expect(twist).toBeGreaterThan(20);
  });

  it('commutes on hashed IDs, every one of which is on the curve, never the twist', () => {
    // Arrange
    const ka = x25519PrivateKeyObject(randomBytes(32));
    const kb = x25519PrivateKeyObject(randomBytes(32));
    const us = hashIdsToU(Array.from({ length: 400 }, (_, i) => `customer-${i}@shop.example`));
    // Act
    const ok = us.filter((u) => toHex(x25519Multiply(ka, x25519Multiply(kb, u))) === toHex(x25519Multiply(kb, x25519Multiply(ka, u)))).length;
    const twist = us.filter((u) => !onCurve(u)).length;
    // Assert
    expect(ok).toBe(us.length);
    expect(twist).toBe(0);
    expect(us.map((u, i) => toHex(u) === toHex(hashIdToU(`customer-${i}@shop.example`))).every(Boolean)).toBe(true);
  });

  it('rejects small-order inputs with CRYPTO_ERROR', () => {
    const k = x25519PrivateKeyObject(randomBytes(32));
    const zero = new Uint8Array(32);
    const one = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0));
    expect(isFedmartError(catchError(() => x25519Multiply(k, zero)), 'CRYPTO_ERROR')).toBe(true);
    expect(isFedmartError(catchError(() => x25519Multiply(k, one)), 'CRYPTO_ERROR')).toBe(true);
  });
});

describe('PsiParty', () => {
  it('finds exactly the plain set intersection, on both sides (property)', () => {
    const idArb = fc.array(fc.string({ minLength: 1, maxLength: 3, unit: fc.constantFrom('a', 'b', 'c', 'd', 'é', '1') }), { maxLength: 25 });
    fc.assert(
      fc.property(idArb, idArb, (idsA, idsB) => {
        // Arrange
        const setB = new Set(idsB);
        const expected = [...new Set(idsA)].filter((x) => setB.has(x));
        // Act
        const r = runProtocol(idsA, idsB);
        // Assert
        expect(r.a.size).toBe(expected.length);
        expect(r.a.ids).toEqual(expected); // input order of A, duplicates collapsed
        expect([...r.b.ids!].sort()).toEqual([...expected].sort());
        expect(r.a.indices).toHaveLength(expected.length);
      }),
      { numRuns: 30 },
    );
  });

  it('returns indices into the deduplicated input', () => {
    // Act
    const party = new PsiParty(['x', 'y', 'x', 'z']);
    const r = runProtocol(['x', 'y', 'x', 'z'], ['z', 'x', 'q']);
    // Assert
    expect(party.ids).toEqual(['x', 'y', 'z']);
    expect(party.size).toBe(3);
    expect(r.a).toEqual({ size: 2, indices: [0, 2], ids: ['x', 'z'] });
  });

  it('in size-only mode reveals the cardinality only, and the peer shuffles the returned values', () => {
    // Arrange
    const idsA = Array.from({ length: 60 }, (_, i) => `a${i}`);
    const idsB = [...idsA.slice(0, 25), ...Array.from({ length: 40 }, (_, i) => `b${i}`)];
    // Act
    const sizeOnly = runProtocol(idsA, idsB, 'size');
    const withIds = runProtocol(idsA, idsB, 'ids');
    // Assert
    expect(sizeOnly.a).toEqual({ size: 25 });
    expect(sizeOnly.b).toEqual({ size: 25 });
    expect(withIds.a.size).toBe(25);
    expect(withIds.a.ids).toHaveLength(25);
  });

  it('size mode destroys the positional link that ids mode keeps', () => {
    // Arrange: position j of what A sent is the only link to A's j-th ID.
    const ids = Array.from({ length: 50 }, (_, i) => `id-${i}`);
    const a = new PsiParty(ids, { mode: 'size' });
    const bIds = new PsiParty(ids, { mode: 'ids' });
    const bSize = new PsiParty(ids, { mode: 'size' });
    const sent = a.blindOwn();
    // Act
    const kept = bIds.blindOther(sent);
    const shuffled = bSize.blindOther(sent);
    const again = bSize.blindOther(sent);
    // Assert: re-blinding is deterministic per scalar, so two size-mode runs
    // hold the same values in different orders (50! orders: equal by chance ≈ 0).
    expect(again.map(toHex).sort()).toEqual(shuffled.map(toHex).sort());
    expect(again.map(toHex)).not.toEqual(shuffled.map(toHex));
    // ids mode is order-preserving: same input, same order.
    expect(bIds.blindOther(sent).map(toHex)).toEqual(kept.map(toHex));
  });

  it('never puts an ID, or its unblinded hash, in any sent byte', () => {
    // Arrange
    const idsA = Array.from({ length: 40 }, (_, i) => `alice.customer${i}@mail.example`);
    const idsB = [...idsA.slice(0, 15), ...Array.from({ length: 30 }, (_, i) => `bob.customer${i}@mail.example`)];
    // Act
    const r = runProtocol(idsA, idsB);
    const wire = Buffer.concat(r.sent.flat().map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)));
    const backing = Buffer.concat(r.sent.flat().map((v) => Buffer.from(v.buffer))); // whole backing stores, in case a view leaks a pool
    // Assert
    expect(r.sent.flat().every((v) => v.byteLength === 32 && v.buffer.byteLength === 32)).toBe(true);
    expect(wire.length).toBe(32 * 2 * (40 + 45));
    for (const id of [...idsA, ...idsB]) {
      expect(backing.includes(Buffer.from(id, 'utf8'))).toBe(false);
      expect(backing.includes(Buffer.from(hashIdToU(id)))).toBe(false);
      expect(backing.includes(Buffer.from(hashIdToU(id)).subarray(0, 8))).toBe(false);
    }
    expect(r.a.size).toBe(15);
  });

  it('keeps sessions with different domains apart', () => {
    // Arrange
    const a = new PsiParty(['x', 'y'], { domain: 'fed-1/s1' });
    const b = new PsiParty(['x', 'y'], { domain: 'fed-1/s2' });
    // Act
    const r = a.intersect(b.blindOther(a.blindOwn()), a.blindOther(b.blindOwn()));
    // Assert
    expect(r.size).toBe(0);
    expect(runProtocol(['x', 'y'], ['y'], 'ids', 'fed-1/s1').a.ids).toEqual(['y']);
  });

  it('rejects malformed messages and misuse', () => {
    // Arrange
    const a = new PsiParty(['x', 'y']);
    const good = a.blindOwn();
    // Act
    const errors = {
      notArray: catchError(() => a.blindOther('nope' as never)),
      short: catchError(() => a.blindOther([new Uint8Array(31)])),
      notBytes: catchError(() => a.blindOther([[1, 2, 3] as never])),
      wrongCount: catchError(() => a.intersect([good[0]!], good)),
      lowOrder: catchError(() => a.blindOther([new Uint8Array(32)])),
      early: catchError(() => new PsiParty(['z']).intersect([], [])),
    };
    // Assert
    expect(isFedmartError(errors.notArray, 'INVALID_MESSAGE')).toBe(true);
    expect(isFedmartError(errors.short, 'INVALID_MESSAGE')).toBe(true);
    expect(isFedmartError(errors.notBytes, 'INVALID_MESSAGE')).toBe(true);
    expect(isFedmartError(errors.wrongCount, 'INVALID_MESSAGE')).toBe(true);
    expect(isFedmartError(errors.lowOrder, 'CRYPTO_ERROR')).toBe(true);
    expect(isFedmartError(errors.early, 'INVALID_MESSAGE')).toBe(true);
    expect(() => new PsiParty('abc' as never)).toThrow(TypeError);
    expect(() => new PsiParty([1 as never])).toThrow(TypeError);
    expect(() => new PsiParty([], { mode: 'all' as never })).toThrow(TypeError);
    expect(() => new PsiParty([], { secretScalar: new Uint8Array(31) })).toThrow(TypeError);
  });

  it('exposes no secret through JSON serialisation', () => {
    const a = new PsiParty(['secret-id@x'], { secretScalar: new Uint8Array(32).fill(7) });
    expect(JSON.stringify(a)).toBe('{"mode":"ids","size":1}');
  });
});
