import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { backendName, initBackend } from './backend.ts';

// One process per test file (vitest forks pool), so the first initBackend
// call below is the one that decides for this file.
describe('initBackend', () => {
  it('prefers node, finds tfjs-node missing here, falls back to wasm and says why', async () => {
    // Arrange
    delete process.env.FEDMART_BACKEND;
    expect(backendName()).toBeNull();
    const listenersBefore = process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection');
    // Act
    const info = await initBackend('node');
    // Assert
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(backendName()).toBe('wasm');
    expect(info.detail).toMatch(/SIMD (on|off), threads (on|off)/);
    expect(info.detail).toMatch(/node unavailable \(package not installed\)/);
    // the wasm loader's rethrowing process listeners were removed again
    expect(process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection')).toBe(listenersBefore);
  });

  it('is idempotent: later calls return the cached choice', async () => {
    const first = await initBackend();
    const again = await initBackend('cpu');
    expect(again).toBe(first);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('runs real ops on the chosen backend', async () => {
    await initBackend();
    const product = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
    expect(Array.from(product.dataSync())).toEqual([19, 22, 43, 50]);
    product.dispose();
  });

  it('rejects an unknown preferred backend name', () => {
    expect(() => initBackend('gpu' as 'cpu')).toThrow(RangeError);
  });
});
