import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_BYTES } from '../crypto/wrong-typed-inputs.ts';
import { isFedmartError } from '../errors.ts';
import { buildSealCkksRuntime } from './ckks-params.ts';
import { createCkksAggregator, createCkksContext, DEFAULT_CKKS_PARAMS, resolveCkksParams, type CkksAggregator, type CkksContext, type CkksKeyBytes, type CkksSecretKey } from './ckks.ts';

/**
 * Tolerance for sums of a few fresh ciphertexts at scale 2^40. The expected
 * error is ≈ σ·√N / 2^40 ≈ 3e-10 per slot (see DEFAULT_CKKS_PARAMS); 1e-7
 * leaves a wide margin while still catching any mis-scaling or lost chunk.
 */
const TOL = 1e-7;

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function uniformVector(n: number, seed: number): Float64Array {
  // Small deterministic LCG: test data only.
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

describe('CKKS (node-seal)', () => {
  let ckks: CkksContext;
  let keys: CkksKeyBytes;
  let sk: CkksSecretKey;
  let coordinator: CkksAggregator;

  beforeAll(async () => {
    ckks = await createCkksContext();
    keys = ckks.keygen();
    sk = ckks.loadSecretKey(keys.secretKey);
    // The coordinator only ever sees the parameters, as JSON over the wire.
    coordinator = await createCkksAggregator(JSON.parse(JSON.stringify(ckks.params)));
  });

  afterAll(() => {
    sk.dispose();
    coordinator.dispose();
    ckks.dispose();
  });

  it('uses the documented defaults', () => {
    expect(ckks.params).toEqual({ polyModulusDegree: 8192, coeffModulusBits: [60, 40, 40, 60], scaleBits: 40, securityLevel: 128, compression: 'zstd' });
    expect(ckks.slotCount).toBe(4096);
    expect(DEFAULT_CKKS_PARAMS.coeffModulusBits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(218);
  });

  it('round-trips a multi-chunk vector within tolerance (secret-key encryption)', () => {
    // Arrange: 2.5 chunks, so the zero-padded tail is exercised.
    const values = uniformVector(10_240, 7);
    // Act
    const chunks = ckks.encryptVector(values, sk);
    const back = ckks.decryptVector(chunks, sk, values.length);
    // Assert
    expect(chunks).toHaveLength(3);
    expect(maxAbsDiff(back, values)).toBeLessThan(TOL);
  });

  it('round-trips with public-key encryption and Float32Array input', () => {
    // Arrange
    const pk = ckks.loadPublicKey(keys.publicKey);
    const values = Float32Array.from(uniformVector(100, 3));
    // Act
    const chunks = ckks.encryptVector(values, pk);
    const back = ckks.decryptVector(chunks, sk, values.length);
    pk.dispose();
    // Assert
    expect(maxAbsDiff(back, values)).toBeLessThan(TOL);
  });

  it('symmetric ciphertexts are about half the size of public-key ones (seed compression)', () => {
    // Arrange
    const pk = ckks.loadPublicKey(keys.publicKey);
    const values = uniformVector(4096, 1);
    // Act
    const sym = ckks.encryptVector(values, sk)[0]!.byteLength;
    const asym = ckks.encryptVector(values, pk)[0]!.byteLength;
    pk.dispose();
    // Assert
    expect(sym).toBeLessThan(asym * 0.6);
  });

  it('homomorphic sum equals the plain sum within tolerance (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((clients) =>
          fc.integer({ min: 0, max: 40 }).chain((len) => fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: len, maxLength: len }), { minLength: clients, maxLength: clients })),
        ),
        (vectors) => {
          // Arrange
          const len = vectors[0]!.length;
          const plain = new Float64Array(len);
          for (const v of vectors) for (let i = 0; i < len; i++) plain[i] += v[i]!;
          // Act
          const uploads = vectors.map((v) => ckks.encryptVector(Float64Array.from(v), sk));
          const sum = coordinator.addCiphertexts(uploads);
          const decrypted = ckks.decryptVector(sum, sk, len);
          // Assert
          expect(maxAbsDiff(decrypted, plain)).toBeLessThan(TOL);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('the mask parts of a sum are the sum of the mask parts; one forwarded ciphertext does not match (issue 8, item 3)', () => {
    // Arrange: three clients' updates, two chunks each
    const updates = [1, 2, 3].map((k) => Float64Array.from({ length: 5000 }, (_, i) => Math.sin(k * i)));
    const uploads = updates.map((u) => ckks.encryptVector(u, sk));
    // Act
    const sum = coordinator.addCiphertexts(uploads);
    const perClient = uploads.map((u) => coordinator.maskParts(u));
    const expected = ckks.sumMasks(perClient);
    const actual = coordinator.maskParts(sum);
    // Assert: c1 of the sum = Σ c1 (mod each prime), byte for byte; N·L uint64 per chunk
    expect(actual.map((m) => m.byteLength)).toEqual([8192 * 3 * 8, 8192 * 3 * 8]);
    expect(actual.every((m, i) => Buffer.from(m).equals(Buffer.from(expected[i]!)))).toBe(true);
    // A single upload, or a sum of two, is not the sum of all three masks
    const one = coordinator.maskParts(uploads[0]!);
    const two = coordinator.maskParts(coordinator.addCiphertexts(uploads.slice(0, 2)));
    expect(Buffer.from(one[0]!).equals(Buffer.from(expected[0]!))).toBe(false);
    expect(Buffer.from(two[0]!).equals(Buffer.from(expected[0]!))).toBe(false);
    // Masks are public randomness: encrypting the same vector twice gives different masks
    expect(Buffer.from(coordinator.maskParts(ckks.encryptVector(updates[0]!, sk))[0]!).equals(Buffer.from(one[0]!))).toBe(false);
  });

  it('a sum whose partial sum cancels to zero (one upload the negation of another) does not depend on the upload order', async () => {
    // Arrange: A, C and the negation of C's ciphertext (what a coordinator forging B's upload would send)
    const a = Float64Array.from({ length: 300 }, (_, i) => Math.cos(i));
    const c = Float64Array.from({ length: 300 }, (_, i) => Math.sin(i));
    const upA = ckks.encryptVector(a, sk);
    const upC = ckks.encryptVector(c, sk);
    const rt = await buildSealCkksRuntime(ckks.params);
    const evaluator = rt.seal.Evaluator(rt.context);
    const ct = rt.seal.CipherText();
    let negC: Uint8Array[];
    try {
      negC = upC.map((bytes) => {
        ct.loadArray(rt.context, bytes);
        evaluator.negate(ct, ct);
        return ct.saveArray(rt.seal.ComprModeType.none as never);
      });
    } finally {
      ct.delete();
      evaluator.delete();
    }
    // Act: every order, including C then −C first (SEAL's transparent partial sum)
    const orders = [[upA, upC, negC], [upC, negC, upA], [negC, upC, upA], [upC, upA, negC]];
    // Assert: each order decrypts to A; only cancelling uploads alone are refused, with INVALID_UPDATE
    for (const order of orders) expect(maxAbsDiff(ckks.decryptVector(coordinator.addCiphertexts(order), sk, a.length), a)).toBeLessThan(TOL);
    const err = catchError(() => coordinator.addCiphertexts([upC, negC]));
    expect(isFedmartError(err) && err.code === 'INVALID_UPDATE' && /cancelling uploads/.test(err.message)).toBe(true);
  });

  it('ciphertext bytes reveal nothing recognisable of the plaintext and differ across encryptions', () => {
    // Arrange: a distinctive pattern repeated over a whole chunk.
    const values = new Float64Array(4096).fill(0.123456789);
    const f64 = Buffer.from(new Float64Array([0.123456789]).buffer);
    const f32 = Buffer.from(new Float32Array([0.123456789]).buffer);
    // Act
    const a = Buffer.from(ckks.encryptVector(values, sk)[0]!);
    const b = Buffer.from(ckks.encryptVector(values, sk)[0]!);
    // Assert
    expect(a.includes(f64)).toBe(false);
    expect(a.includes(f32)).toBe(false);
    expect(a.equals(b)).toBe(false);
    expect(a.byteLength).toBeGreaterThan(values.byteLength);
  });

  it('decrypting with another secret key gives garbage, not the sum', () => {
    // Arrange
    const other = ckks.loadSecretKey(ckks.keygen().secretKey);
    const values = uniformVector(64, 11);
    // Act
    const back = ckks.decryptVector(ckks.encryptVector(values, sk), other, values.length);
    other.dispose();
    // Assert
    expect(maxAbsDiff(back, values)).toBeGreaterThan(1);
  });

  it('the coordinator side holds no secret-key material and cannot decrypt', async () => {
    // Arrange: walk everything reachable from the aggregator's own properties.
    const seen = new Set<unknown>();
    const keyNames: string[] = [];
    const byteBlobs: Uint8Array[] = [];
    const walk = (x: unknown): void => {
      if (x === null || (typeof x !== 'object' && typeof x !== 'function') || seen.has(x)) return;
      seen.add(x);
      if (x instanceof Uint8Array) byteBlobs.push(x);
      for (const k of Reflect.ownKeys(x as object)) {
        if (typeof k === 'string') keyNames.push(k);
        walk((x as Record<PropertyKey, unknown>)[k]);
      }
    };
    // Act
    walk(coordinator);
    const serialised = JSON.stringify(coordinator);
    const agg2 = await createCkksAggregator(resolveCkksParams());
    // Assert
    expect(Object.keys(coordinator).sort()).toEqual(['addCiphertexts', 'dispose', 'maskParts', 'params', 'slotCount', 'sumMasks']);
    expect(keyNames.filter((k) => /secret|decrypt|keygen|sk\b/i.test(k))).toEqual([]);
    expect(byteBlobs).toEqual([]);
    expect(serialised).toBe(JSON.stringify({ params: ckks.params, slotCount: 4096 }));
    expect(JSON.stringify(sk)).toBe('{"kind":"ckks-secret-key"}');
    // @ts-expect-error the aggregator type has no way to decrypt
    expect(coordinator.decryptVector).toBeUndefined();
    agg2.dispose();
  });

  it('rejects mismatched chunk counts and foreign or garbage ciphertexts with INVALID_UPDATE', async () => {
    // Arrange
    const a = ckks.encryptVector(uniformVector(5000, 1), sk); // 2 chunks
    const b = ckks.encryptVector(uniformVector(100, 2), sk); // 1 chunk
    const other = await createCkksContext({ coeffModulusBits: [60, 40, 60] });
    const foreign = other.encryptVector(uniformVector(100, 3), other.loadSecretKey(other.keygen().secretKey));
    other.dispose();
    // Act
    const errors = [
      catchError(() => coordinator.addCiphertexts([a, b])),
      catchError(() => coordinator.addCiphertexts([b, foreign])),
      catchError(() => coordinator.addCiphertexts([b, [crypto.getRandomValues(new Uint8Array(1000))]])),
      catchError(() => coordinator.addCiphertexts([b, [b[0]!.subarray(0, b[0]!.length - 10)]])),
      catchError(() => ckks.decryptVector(a, sk, 100)),
      catchError(() => ckks.decryptVector(foreign, sk, 100)),
    ];
    // Assert
    for (const e of errors) expect(isFedmartError(e, 'INVALID_UPDATE'), String(e)).toBe(true);
  });

  it('rejects non-finite values with INVALID_UPDATE and bad key bytes with CRYPTO_ERROR', () => {
    // Act
    const nan = catchError(() => ckks.encryptVector(Float64Array.of(0, Number.NaN), sk));
    const inf = catchError(() => ckks.encryptVector(Float32Array.of(Number.POSITIVE_INFINITY), sk));
    const badSk = catchError(() => ckks.loadSecretKey(crypto.getRandomValues(new Uint8Array(64))));
    const pkAsSk = catchError(() => ckks.loadSecretKey(keys.publicKey));
    const badPk = catchError(() => ckks.loadPublicKey(new Uint8Array(10)));
    const badRk = catchError(() => ckks.loadRelinKeys(keys.secretKey));
    // Assert
    expect(isFedmartError(nan, 'INVALID_UPDATE')).toBe(true);
    expect(isFedmartError(inf, 'INVALID_UPDATE')).toBe(true);
    for (const e of [badSk, pkAsSk, badPk, badRk]) expect(isFedmartError(e, 'CRYPTO_ERROR'), String(e)).toBe(true);
  });

  it('rejects wrong-typed arguments with TypeError or RangeError', () => {
    const isArgError = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError;
    const good = ckks.encryptVector(Float64Array.of(1), sk);
    for (const bad of NOT_BYTES) {
      if (bad instanceof Float32Array) continue; // a valid vector, not bytes
      expect(isArgError(catchError(() => ckks.loadSecretKey(bad as Uint8Array))), String(bad)).toBe(true);
      expect(isArgError(catchError(() => ckks.loadPublicKey(bad as Uint8Array))), String(bad)).toBe(true);
      expect(isArgError(catchError(() => ckks.encryptVector(bad as Float64Array, sk))), String(bad)).toBe(true);
      expect(isArgError(catchError(() => ckks.encryptVector(Float64Array.of(1), bad as CkksSecretKey))), String(bad)).toBe(true);
      expect(isArgError(catchError(() => ckks.decryptVector([bad as Uint8Array], sk, 1))), String(bad)).toBe(true);
      expect(isArgError(catchError(() => coordinator.addCiphertexts([good, [bad as Uint8Array]]))), String(bad)).toBe(true);
    }
    expect(isArgError(catchError(() => coordinator.addCiphertexts([])))).toBe(true);
    expect(isArgError(catchError(() => ckks.decryptVector(good, sk, -1)))).toBe(true);
    expect(isArgError(catchError(() => ckks.decryptVector(good, sk, 1.5)))).toBe(true);
    expect(isArgError(catchError(() => ckks.decryptVector(good, { kind: 'ckks-secret-key', dispose() {} }, 1)))).toBe(true);
  });

  it('rejects a disposed key and a key from another context', async () => {
    // Arrange
    const disposed = ckks.loadSecretKey(keys.secretKey);
    disposed.dispose();
    const other = await createCkksContext();
    const foreignHandle = other.loadSecretKey(keys.secretKey);
    // Act
    const e1 = catchError(() => ckks.encryptVector(Float64Array.of(1), disposed));
    const e2 = catchError(() => ckks.encryptVector(Float64Array.of(1), foreignHandle));
    other.dispose();
    // Assert
    expect(e1).toBeInstanceOf(TypeError);
    expect(e2).toBeInstanceOf(TypeError);
  });

  it('refuses parameter sets beyond the security budget or malformed (CONFIG_ERROR)', async () => {
    // 60+50+50+60 = 220 bits > 218 allowed for N = 8192 at 128-bit security.
    await expect(createCkksContext({ coeffModulusBits: [60, 50, 50, 60], scaleBits: 50 })).rejects.toSatisfy((e) => isFedmartError(e, 'CONFIG_ERROR'));
    await expect(createCkksAggregator({ polyModulusDegree: 5000 })).rejects.toSatisfy((e) => isFedmartError(e, 'CONFIG_ERROR'));
    await expect(createCkksAggregator({ scaleBits: 60, coeffModulusBits: [40, 60] })).rejects.toSatisfy((e) => isFedmartError(e, 'CONFIG_ERROR'));
    expect(isFedmartError(catchError(() => resolveCkksParams({ compression: 'gzip' as never })), 'CONFIG_ERROR')).toBe(true);
  });

  it('can create relinearization keys on request', () => {
    // Act
    const withRk = ckks.keygen({ relinKeys: true });
    const rk = ckks.loadRelinKeys(withRk.relinKeys!);
    rk.dispose();
    // Assert
    expect(withRk.relinKeys!.byteLength).toBeGreaterThan(0);
    expect(keys.relinKeys).toBeUndefined();
  });
});
