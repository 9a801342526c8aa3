import { generateEd25519KeyPair } from '../crypto/ed25519.ts';
import { describe, expect, it } from 'vitest';
import { SecAggClient } from './client.ts';
import { quantizeWeightedUpdate, resolveQuantization, type QuantizationConfig } from './quantize.ts';
import { SecAggServer } from './server.ts';

const L = 50_000;
const quantization: QuantizationConfig = { clip: 1, maxClients: 4, maxWeight: 1, rounding: 'deterministic' };

/** Pearson chi-square statistic of byte frequencies against uniform. */
function chiSquareBytes(words: Uint32Array): number {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const expected = bytes.length / 256;
  let chi2 = 0;
  for (const c of counts) chi2 += (c - expected) ** 2 / expected;
  return chi2;
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) (ma += a[i]!, mb += b[i]!);
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** χ²(255) critical value at p = 0.001. */
const CHI2_255_P001 = 330.5;

describe('a masked update looks uniformly random to the coordinator', () => {
  it('its bytes pass a chi-square uniformity test and are uncorrelated with the plaintext', () => {
    // Arrange: a highly structured update (a ramp) from client 1 in a real 4-client round
    const ids = [1, 2, 3, 4];
    const keys = new Map(ids.map((id) => [id, generateEd25519KeyPair()]));
    const server = new SecAggServer({ roundId: 'uniformity', participants: ids, vectorLength: L, quantization, graphSeed: new Uint8Array(32), identities: ids.map((id) => ({ id, publicKey: keys.get(id)!.publicKey })) });
    const clients = new Map(ids.map((id) => [id, new SecAggClient(id, keys.get(id)!)]));
    const ramp = Float32Array.from({ length: L }, (_, j) => (j % 1000) / 1000 - 0.5);
    for (const req of server.advertiseKeysRequests()) server.receiveAdvertiseKeys(clients.get(req.clientId)!.advertiseKeys(req));
    for (const req of server.closeAdvertiseKeys()) server.receiveShareKeys(clients.get(req.clientId)!.shareKeys(req));
    const req = server.closeShareKeys().find((r) => r.clientId === 1)!;
    // Act
    const masked = clients.get(1)!.maskInput(req, ramp, 1).masked.subarray(0, L);
    const plain = quantizeWeightedUpdate(ramp, 1, resolveQuantization(quantization)).subarray(0, L);
    // Assert: the control (plaintext) is far from uniform, so the test can fail…
    expect(chiSquareBytes(plain)).toBeGreaterThan(10 * CHI2_255_P001);
    // …and the masked vector is not.
    expect(chiSquareBytes(masked)).toBeLessThan(CHI2_255_P001);
    const signedPlain = Int32Array.from(plain);
    expect(Math.abs(pearson(masked, signedPlain))).toBeLessThan(5 / Math.sqrt(L));
    expect(Math.abs(pearson(masked, ramp))).toBeLessThan(5 / Math.sqrt(L));
  });
});
