import { ctr } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hexToBytes } from '../crypto/bytes.ts';
import { createCipheriv } from 'node:crypto';
import { MaskedSum, addMask, addMasks, expandMask, releaseChunk } from './mask-prg.ts';

function wordsLE(bytes: Uint8Array): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(4 * i, true));
}

describe('mask PRG (AES-256-CTR, NIST SP 800-38A)', () => {
  it('matches NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt): keystream = ciphertext ⊕ plaintext', () => {
    // Arrange: the four blocks of F.5.5
    const key = hexToBytes('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
    const counter = hexToBytes('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
    const plaintext = hexToBytes('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710');
    const ciphertext = hexToBytes('601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6');
    // Act
    const words = expandMask(key, 16, counter);
    // Assert
    expect(words).toEqual(wordsLE(ciphertext.map((c, i) => c ^ plaintext[i]!)));
  });

  it('equals the independent @noble/ciphers AES-256-CTR keystream from the zero counter block, across chunk boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 0, max: 40_000 }), (seed, n) => {
        const expected = wordsLE(ctr(seed, new Uint8Array(16)).encrypt(new Uint8Array(n * 4)));
        expect(expandMask(seed, n)).toEqual(expected);
      }),
      { numRuns: 12 },
    );
  });

  it('adding then subtracting a mask is the identity mod 2^32, and add equals expand + add', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 500 }), (seed, xs) => {
        const target = Uint32Array.from(xs);
        const mask = expandMask(seed, xs.length);
        addMask(target, seed, 1);
        expect(target).toEqual(Uint32Array.from(xs, (x, i) => (x + mask[i]!) >>> 0));
        addMask(target, seed, -1);
        expect(target).toEqual(Uint32Array.from(xs));
      }),
      { numRuns: 30 },
    );
  });

  it('addMasks (blocked, four per pass) equals one addMask per mask, across chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ seed: fc.uint8Array({ minLength: 32, maxLength: 32 }), sign: fc.constantFrom(1 as const, -1 as const) }), { maxLength: 11 }),
        fc.integer({ min: 0, max: 36_000 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (masks, n, fill) => {
          // Arrange
          const expected = new Uint32Array(n).fill(fill);
          for (const m of masks) addMask(expected, m.seed, m.sign);
          // Act
          const got = addMasks(new Uint32Array(n).fill(fill), masks);
          // Assert
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('MaskedSum: the WebAssembly SIMD path and the JavaScript fallback agree word for word (sums, removals, masks)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20_000 }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.uint32Array({ minLength: n, maxLength: n }), { maxLength: 3 }))),
        fc.array(fc.record({ seed: fc.uint8Array({ minLength: 32, maxLength: 32 }), sign: fc.constantFrom(1 as const, -1 as const) }), { maxLength: 6 }),
        ([n, inputs], masks) => {
          const run = (simd: boolean) => {
            const sum = new MaskedSum(n, { simd });
            inputs.forEach((x, i) => sum.add(x, i % 2 === 0 ? 1 : -1));
            sum.addMasks(masks);
            return sum.read();
          };
          expect(run(true)).toEqual(run(false));
        },
      ),
      { numRuns: 15 },
    );
  });

  it('releaseChunk frees a keystream Buffer that owns its memory (detached at once) and never touches a shared slab', () => {
    // Arrange: a cipher.update chunk (owns its ArrayBuffer) and two views into one shared ArrayBuffer
    const chunk = createCipheriv('aes-256-ctr', new Uint8Array(32), new Uint8Array(16)).update(new Uint8Array(65_536));
    const slab = new ArrayBuffer(1024);
    const slice = new Uint8Array(slab, 512, 256);
    const head = new Uint8Array(slab, 0, 256);
    head.fill(7);
    // Act
    releaseChunk(chunk);
    releaseChunk(slice);
    releaseChunk(head);
    // Assert: the chunk's memory is gone (detached), the slab is intact
    expect(chunk.buffer.byteLength).toBe(0);
    expect(chunk.length).toBe(0);
    expect(slab.byteLength).toBe(1024);
    expect(head[0]).toBe(7);
  });

  it('rejects bad arguments', () => {
    expect(() => addMasks(new Uint32Array(2), [{ seed: new Uint8Array(32), sign: 0 as 1 }])).toThrow(/sign/);
    expect(() => addMasks(new Uint32Array(2), [{ seed: new Uint8Array(16), sign: 1 }])).toThrow(/seed/);
    expect(() => addMasks([1, 2] as unknown as Uint32Array, [])).toThrow(/target/);
    expect(() => expandMask(new Uint8Array(32), -1)).toThrow(/words/);
  });
});
