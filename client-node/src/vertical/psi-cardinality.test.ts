/**
 * Multi-party PSI cardinality (align.ts `psiCardinality`, psi policy "size"): the label holder learns how
 * many customers all parties share and its pairwise overlaps; feature holders learn no count; no message
 * but `psica.blinded` travels, and none carries an ID or a position.
 */
import { describe, expect, it } from 'vitest';
import { parseVerticalMessage, type VerticalWireMessage } from '@fedmart/shared/protocol-vertical';
import { createInMemoryVerticalHub } from './channel.ts';
import { psiCardinality } from './align.ts';

describe('psiCardinality', () => {
  it('counts the customers of every party, reveals no ID, and the feature holders no count', async () => {
    const wire: VerticalWireMessage[] = [];
    const hub = createInMemoryVerticalHub({ session: 's', tap: (w) => wire.push(w) });
    const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => `cust-${a + i}`);
    const sets: Record<string, string[]> = { platform: range(0, 300), 'brand-a': range(100, 500), 'brand-b': [...range(150, 260), ...range(900, 950)] };
    const parties = ['platform', 'brand-a', 'brand-b'];
    const [lh, a, b] = await Promise.all(parties.map((p) => psiCardinality(hub.channel(p), p, parties, sets[p]!, { set: 'overlap', session: 's' })));
    expect(lh!.size).toBe(110); // 150..259
    expect(lh!.pairwise).toEqual({ 'brand-a': 200, 'brand-b': 110 });
    expect([a!.size, b!.size]).toEqual([-1, -1]);
    expect(a!.pairwise).toEqual({});
    const msgs = wire.map((w) => parseVerticalMessage(w));
    expect(new Set(msgs.map((m) => m.type))).toEqual(new Set(['psica.blinded']));
    // the label holder's values make 3 hops (out and back), each feature holder's 2; no header or part carries an ID.
    expect(msgs).toHaveLength(7);
    for (const w of wire) {
      expect(w.header).not.toMatch(/cust-/);
      for (const p of w.parts) expect(Buffer.from(p).toString('latin1')).not.toMatch(/cust-/);
    }
  });

  it('works with one feature holder', async () => {
    const hub = createInMemoryVerticalHub({ session: 't' });
    const parties = ['lh', 'fh'];
    const [r] = await Promise.all([psiCardinality(hub.channel('lh'), 'lh', parties, ['a', 'b', 'c'], { set: 'x' }), psiCardinality(hub.channel('fh'), 'fh', parties, ['b', 'c', 'd', 'e'], { set: 'x' })]);
    expect(r!.size).toBe(2);
  });
});
