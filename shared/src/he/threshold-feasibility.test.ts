/**
 * Evidence for the README's threshold-CKKS note (issue 8, item 3, "go
 * further"; Mouchet et al., PoPETs 2021): node-seal 6.0.3 can carry n-out-of-n
 * decryption through its uncompressed serialisations, whose tails are the
 * raw RNS coefficients in NTT form (where products are pointwise mod q).
 * s = s1 + s2 is built from two SEAL secret keys; a ciphertext under s is
 * decrypted by party 1 adding its share c1·s1 to c0 and party 2 decrypting
 * with s2 alone. Not a protocol (no collective key phase, no smudging
 * noise): it only shows the building block works on this library.
 */
import { describe, expect, it } from 'vitest';
import { buildSealCkksRuntime, resolveCkksParams } from './ckks-params.ts';

describe('threshold CKKS building block on node-seal', () => {
  it('n-out-of-n decryption from raw NTT coefficients: share of party 1 + secret of party 2 decrypts; party 2 alone does not', async () => {
    // Arrange
    const p = resolveCkksParams();
    const { seal, context } = await buildSealCkksRuntime(p);
    const N = p.polyModulusDegree;
    const L = p.coeffModulusBits.length - 1; // data primes
    const none = seal.ComprModeType.none as never;
    const q = Array.from(context.keyContextData.parms.coeffModulus as BigUint64Array);
    const K = N * q.length;
    const raw1 = seal.KeyGenerator(context).secretKey().saveArray(none);
    const raw2 = seal.KeyGenerator(context).secretKey().saveArray(none);
    const tail = (r: Uint8Array, words: number) => new DataView(r.buffer, r.byteOffset + r.byteLength - words * 8, words * 8);
    const s1 = tail(raw1, K);
    const s2 = tail(raw2, K);
    const rawSum = raw1.slice();
    const sv = tail(rawSum, K);
    for (let j = 0; j < q.length; j++) for (let i = j * N; i < (j + 1) * N; i++) sv.setBigUint64(i * 8, (s1.getBigUint64(i * 8, true) + s2.getBigUint64(i * 8, true)) % q[j]!, true);
    const sk = seal.SecretKey();
    sk.loadArray(context, rawSum);
    const encryptor = seal.Encryptor(context, seal.KeyGenerator(context, sk).createPublicKey(), sk);
    const encoder = seal.CKKSEncoder(context);
    const pt = seal.PlainText();
    encoder.encode(Float64Array.from([1.5, -2.25, 3]), 2 ** p.scaleBits, pt);
    const ct = seal.CipherText();
    encryptor.encryptSymmetric(pt, ct);
    // Act: party 1's decryption share c1·s1 (pointwise in the NTT domain) added to c0
    const raw = ct.saveArray(none);
    const c = tail(raw, 2 * N * L);
    const shared = raw.slice();
    const out = tail(shared, 2 * N * L);
    for (let j = 0; j < L; j++) for (let i = j * N; i < (j + 1) * N; i++) out.setBigUint64(i * 8, (c.getBigUint64(i * 8, true) + c.getBigUint64((N * L + i) * 8, true) * s1.getBigUint64(i * 8, true)) % q[j]!, true);
    const ct2 = seal.CipherText();
    ct2.loadArray(context, shared);
    const sk2 = seal.SecretKey();
    sk2.loadArray(context, raw2);
    const decode = (x: ReturnType<typeof seal.CipherText>) => {
      const d = seal.PlainText();
      seal.Decryptor(context, sk2).decrypt(x, d);
      return Array.from(encoder.decode(d).slice(0, 3));
    };
    // Assert
    const joint = decode(ct2);
    [1.5, -2.25, 3].forEach((v, i) => expect(Math.abs(joint[i]! - v)).toBeLessThan(1e-6));
    expect(Math.max(...decode(ct).map(Math.abs))).toBeGreaterThan(1e6); // s2 alone: garbage
  });
});
