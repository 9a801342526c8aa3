import { describe, expect, it } from 'vitest';
import { splitBinaryParts, wireByteLength, type MaskedInputReply, type ShareKeysReply } from './messages.ts';

describe('secure-aggregation messages on the wire', () => {
  it('split into a small JSON part and binary attachments (no number arrays in JSON)', () => {
    // Arrange
    const masked = new Uint32Array(100_001).fill(0xdeadbeef);
    const reply: MaskedInputReply = { stage: 'masked-input', roundId: 'r1', clientId: 4, masked };
    // Act
    const { json, binary } = splitBinaryParts(reply);
    // Assert
    expect(JSON.parse(json)).toEqual({ stage: 'masked-input', roundId: 'r1', clientId: 4, masked: { _bin: 0 } });
    expect(binary).toHaveLength(1);
    expect(binary[0]!.byteLength).toBe(4 * 100_001);
    expect(binary[0]!.buffer).toBe(masked.buffer); // a view, not a copy
    expect(wireByteLength(reply)).toBe(new TextEncoder().encode(json).length + 4 * 100_001);
  });

  it('nested binary fields (sealed bundles) become numbered placeholders in order', () => {
    const reply: ShareKeysReply = {
      stage: 'share-keys',
      roundId: 'r1',
      clientId: 1,
      sealed: [
        { from: 1, to: 2, box: new Uint8Array(172) },
        { from: 1, to: 3, box: new Uint8Array(172).fill(1) },
      ],
    };
    const { json, binary } = splitBinaryParts(reply);
    expect(JSON.parse(json).sealed).toEqual([
      { from: 1, to: 2, box: { _bin: 0 } },
      { from: 1, to: 3, box: { _bin: 1 } },
    ]);
    expect(binary[1]![0]).toBe(1);
  });
});
