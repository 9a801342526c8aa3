/**
 * PSI at a party leaves the event loop free: no more than one chunk of IDs is
 * hashed and blinded between two turns of the loop, so a party's Socket.IO
 * heartbeats are answered during a long alignment (issue 16).
 */
import { expect, it } from 'vitest';
import { x25519MultiplyAll } from '@fedmart/shared/psi/ecdh-psi';
import type { KeyObject } from 'node:crypto';
import { createInMemoryVerticalHub, PSI_CHUNK, psiWithPeer } from './index.ts';

it('PSI blinds at most about one chunk of IDs between two turns of the event loop, and still finds the intersection', async () => {
  const n = 6 * PSI_CHUNK;
  const a = Array.from({ length: n }, (_, i) => `a${i}`);
  const b = Array.from({ length: n }, (_, i) => (i % 2 ? `a${i}` : `b${i}`));
  // Count multiplications since the last turn of the loop (a self-rescheduling setImmediate), and keep the most.
  let sinceTurn = 0;
  let most = 0;
  let turns = 0;
  let running = true;
  const tick = () => {
    turns++;
    sinceTurn = 0;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const counting = (key: KeyObject, values: readonly Uint8Array[]) => {
    sinceTurn += values.length;
    most = Math.max(most, sinceTurn);
    return x25519MultiplyAll(key, values);
  };
  const hub = createInMemoryVerticalHub({ session: 's' });
  try {
    const [ra, rb] = await Promise.all([
      psiWithPeer(hub.channel('a'), 'b', a, { set: 'train', session: 's', multiplyBatch: counting }),
      psiWithPeer(hub.channel('b'), 'a', b, { set: 'train', session: 's', multiplyBatch: counting }),
    ]);
    expect(ra.size).toBe(n / 2);
    expect(rb.ids).toEqual(ra.ids);
  } finally {
    running = false;
  }
  // Two parties in one process: at most one chunk of each between turns (a chunk may straddle the counter's reset).
  expect(most).toBeLessThanOrEqual(4 * PSI_CHUNK);
  expect(turns).toBeGreaterThan(n / PSI_CHUNK);
}, 300_000);
