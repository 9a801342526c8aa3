import { describe, expect, it } from 'vitest';
import { encodeVerticalMessage, parseVerticalMessage, readVector, vectorBytes, VERTICAL_PROTOCOL_VERSION } from './protocol-vertical.ts';

const header = (type: string, body: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ v: VERTICAL_PROTOCOL_VERSION, session: 's', from: 'a', to: 'b', seq: 0, type, body, ...extra });

describe('vertical protocol', () => {
  it('round-trips a batch message with its binary part', () => {
    const wire = encodeVerticalMessage({ session: 's', from: 'a', to: 'b', seq: 3, type: 'batch', body: { set: 'train', step: 1, rows: 3, train: true }, parts: [vectorBytes(Uint32Array.of(4, 5, 6))] });
    const m = parseVerticalMessage(wire);
    expect(m.type).toBe('batch');
    expect([...readVector(m.parts[0]!, 'u32')]).toEqual([4, 5, 6]);
  });

  it.each([
    ['unknown type', header('steal', {}), []],
    ['bad party id', header('done', { reason: 'x' }, { from: 'a b' }), []],
    ['wrong version', header('done', { reason: 'x' }, { v: 99 }), []],
    ['extra body field', header('done', { reason: 'x', ids: ['alice'] }), []],
    ['part length does not match rows', header('vlr.partial', { step: 0, rows: 2 }), [new Uint8Array(8)]],
    ['missing part', header('batch', { set: 'train', step: 0, rows: 1, train: true }), []],
    ['PSI values not 32 bytes each', header('psi.blinded', { set: 't', stage: 'own', count: 2, mode: 'ids' }), [new Uint8Array(63)]],
    ['not JSON', '{', []],
    ['a width declaration with parts', header('vlr.declare', { dims: 3 }), [new Uint8Array(8)]],
    ['a width declaration of 0 columns', header('vlr.declare', { dims: 0 }), []],
  ])('rejects %s with INVALID_MESSAGE', (_name, h, parts) => {
    expect(() => parseVerticalMessage({ header: h, parts })).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
  });

  it('refuses to send an invalid message of our own (INTERNAL)', () => {
    expect(() => encodeVerticalMessage({ session: 's', from: 'a', to: 'b', seq: 0, type: 'vlr.partial', body: { step: 0, rows: 2 }, parts: [] })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('readVector rejects non-finite floats', () => {
    expect(() => readVector(vectorBytes(Float64Array.of(1, Number.NaN)), 'f64')).toThrow(/finite/);
  });
});
