import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { isFedmartError } from '@fedmart/shared/errors';
import { backendName, initBackend } from './backend.ts';

// Separate file = separate process: FEDMART_BACKEND is read by the first
// initBackend call of this process.
describe('FEDMART_BACKEND', () => {
  it('rejects an unknown value with CONFIG_ERROR, and a later call may retry', async () => {
    // Arrange
    process.env.FEDMART_BACKEND = 'tpu';
    // Act
    const err = await initBackend().catch((e: unknown) => e);
    // Assert
    expect(isFedmartError(err, 'CONFIG_ERROR')).toBe(true);
    expect((err as Error).message).toMatch(/FEDMART_BACKEND must be one of node, wasm, cpu; got "tpu"/);
    expect(backendName()).toBeNull();
  });

  it('forces the cpu backend over the argument', async () => {
    process.env.FEDMART_BACKEND = 'cpu';
    try {
      const info = await initBackend('wasm');
      expect(info.name).toBe('cpu');
      expect(tf.getBackend()).toBe('cpu');
      expect(info.detail).toMatch(/forced by FEDMART_BACKEND=cpu/);
    } finally {
      delete process.env.FEDMART_BACKEND;
    }
  });
});
