import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { createSeededRandomSource } from '../dp/gaussian.ts';
import { createVerticalCkksEvaluator, createVerticalCkksKeyHolder, uniformMask, type VerticalCkksEvaluator, type VerticalCkksKeyHolder, type VerticalCkksSecretKey } from './ckks-ops.ts';

// Plain Σ_i d_i·X[i, j].
function plainColumnSums(d: Float64Array, x: Float32Array, rows: number, dims: number): Float64Array {
  const g = new Float64Array(dims);
  for (let i = 0; i < rows; i++) for (let j = 0; j < dims; j++) g[j]! += d[i]! * x[i * dims + j]!;
  return g;
}

describe('vertical CKKS ops (encrypted residuals × plaintext columns, masked)', () => {
  let kh: VerticalCkksKeyHolder;
  let ev: VerticalCkksEvaluator;
  let sk: VerticalCkksSecretKey;
  beforeAll(async () => {
    kh = await createVerticalCkksKeyHolder();
    const keys = kh.keygen();
    sk = kh.loadSecretKey(keys.secretKey);
    ev = await createVerticalCkksEvaluator(kh.params, keys.galoisKeys);
  });
  afterAll(() => {
    sk.dispose();
    kh.dispose();
    ev.dispose();
  });

  it.each([
    [300, 7],
    [5000, 5], // two residual chunks
    [4096, 21],
    [100, 1],
  ])('decrypt(maskedColumnSums) − mask = Xᵀd within 1e-5 for %i rows × %i columns', (rows, dims) => {
    // Arrange
    const rnd = createSeededRandomSource(new Uint8Array(32).fill(rows % 251));
    const d = uniformMask(rows, 1, rnd);
    const x = Float32Array.from(uniformMask(rows * dims, 3, rnd));
    const mask = uniformMask(ev.slotCount);
    // Act
    const ct = ev.maskedColumnSums(kh.encrypt(d, sk), x, rows, dims, mask);
    const dec = kh.decryptMasked(ct, sk, dims, 0);
    // Assert
    const want = plainColumnSums(d, x, rows, dims);
    for (let j = 0; j < dims; j++) expect(Math.abs(dec[j]! - mask[j]! - want[j]!)).toBeLessThan(1e-5);
  });

  it('the key holder sees only masked values: they differ from the gradient by the (uniform, large) mask', () => {
    const rows = 500;
    const dims = 4;
    const d = uniformMask(rows, 0.5);
    const x = Float32Array.from(uniformMask(rows * dims, 1));
    const mask = uniformMask(ev.slotCount);
    const seen = kh.decryptMasked(ev.maskedColumnSums(kh.encrypt(d, sk), x, rows, dims, mask), sk, dims);
    const want = plainColumnSums(d, x, rows, dims);
    for (let j = 0; j < dims; j++) expect(Math.abs(seen[j]! - want[j]!)).toBeGreaterThan(1e3);
  });

  it('flooding noise is added on decryption (std as requested)', () => {
    const rows = 64;
    const d = new Float64Array(rows).fill(0.25);
    const x = new Float32Array(rows).fill(1);
    const mask = new Float64Array(ev.slotCount);
    const ct = ev.maskedColumnSums(kh.encrypt(d, sk), x, rows, 1, mask);
    const a = kh.decryptMasked(ct, sk, 1, 0.5);
    const b = kh.decryptMasked(ct, sk, 1, 0);
    expect(Math.abs(b[0]! - 16)).toBeLessThan(1e-5);
    expect(a[0]).not.toBe(b[0]);
  });

  it('rejects malformed ciphertexts and mismatched sizes with clear errors', () => {
    const mask = uniformMask(ev.slotCount);
    expect(() => ev.maskedColumnSums([new Uint8Array(40)], new Float32Array(2), 2, 1, mask)).toThrow(/SEAL|ciphertext/);
    const enc = kh.encrypt(new Float64Array(10), sk);
    expect(() => ev.maskedColumnSums(enc, new Float32Array(9000), 9000, 1, mask)).toThrow(/residual chunks/);
    expect(() => ev.maskedColumnSums(enc, new Float32Array(10), 10, 1, new Float64Array(3))).toThrow(RangeError);
    expect(() => kh.decryptMasked(new Uint8Array(16), sk, 1)).toThrow(/ciphertext/);
    expect(() => kh.encrypt(Float64Array.of(Number.NaN), sk)).toThrow(/finite/);
  });

  it('uniformMask stays in [−bound, bound) and is not constant', () => {
    const m = uniformMask(10_000, 8);
    expect(Math.min(...m)).toBeGreaterThanOrEqual(-8);
    expect(Math.max(...m)).toBeLessThan(8);
    expect(new Set(m).size).toBeGreaterThan(9_990);
  });
});
