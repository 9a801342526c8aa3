/**
 * Raw rows never leave a partner node: capture every frame a client sends
 * during a real round and check that no row, raw cell or encoded feature
 * vector appears in it — only model-sized deltas and aggregate metrics.
 */
import { describe, expect, it } from 'vitest';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { parameterCount } from '@fedmart/shared/model';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

await initBackend();

describe('raw rows never leave the node', () => {
  it('sends only deltas of the model size and metrics during a round', async () => {
    // Arrange
    const exp = await bankPartners();
    await using fx = await startFixture();
    const spec = modelFor(exp);
    const fed = await fx.createFederation({ model: spec, minClients: 2 });
    const watched = exp.partners[0]!;
    const frames: (string | Uint8Array)[] = [];
    const agents: ReturnType<typeof startPartnerAgent>[] = [];
    for (const [i, p] of exp.partners.entries()) {
      const a = startPartnerAgent({ coordinatorUrl: fx.url, token: await fx.enroll(fed, p.id), data: p.data, reconnect: false });
      if (i === 0) {
        a.socket.io.on('open', () => {
          a.socket.io.engine.on('packetCreate', (packet: { type: string; data?: unknown }) => {
            if (typeof packet.data === 'string') frames.push(packet.data);
            else if (packet.data instanceof Uint8Array || Buffer.isBuffer(packet.data)) frames.push(new Uint8Array(packet.data as Uint8Array));
            else if (packet.data instanceof ArrayBuffer) frames.push(new Uint8Array(packet.data));
          });
        });
      }
      agents.push(a);
    }
    await Promise.all(agents.map((a) => a.ready));

    // Act
    const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 2).done;
    expect(outcomes.every((o) => o.phase === 'committed')).toBe(true);

    // Assert: binary frames are exactly model-sized deltas
    const binary = frames.filter((f): f is Uint8Array => typeof f !== 'string');
    const text = frames.filter((f): f is string => typeof f === 'string');
    expect(binary.length).toBe(2);
    for (const b of binary) expect(b.byteLength).toBe(parameterCount(spec) * 4);

    // no encoded training row (its d float32 values) appears in any binary frame
    const d = exp.d;
    const all = Buffer.concat(binary.map((b) => Buffer.from(b)));
    for (let i = 0; i < watched.data.trainN; i += 7) {
      const row = Buffer.from(watched.data.trainX.buffer, watched.data.trainX.byteOffset + i * d * 4, d * 4);
      expect(all.indexOf(row)).toBe(-1);
    }

    // no raw cell value (categories, multi-digit numbers) appears in any text frame
    // Keys, signatures and tokens are long base64url/hex runs: random text in which a short cell such as
    // "-221" turns up by chance; they carry no row data (they are generated, not derived from rows).
    // Timings, timestamps and ports are measured by the process, not derived from rows ("elapsedMs":7727 under load
    // once matched a 4-digit cell), so their values are masked too.
    const joined = text.join('\n').replace(/[A-Za-z0-9_-]{40,}/g, '<key>').replace(/"(\w*(?:Ms|ms|At|at|Seconds|seconds|[Pp]ort|[Tt]ime|[Dd]eadline))":\s*[0-9.]+/g, '"$1":<t>');
    const cells = new Set<string>();
    for (const r of watched.table.rows) for (const c of r) if (c.length >= 4 && !/^(true|false|null)$/.test(c)) cells.add(c);
    const leaked = [...cells].filter((c) => new RegExp(`(^|[^0-9.])${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^0-9]|$)`).test(joined));
    expect(leaked).toEqual([]);

    // and every text frame is one of the protocol's envelopes
    const types: string[] = [];
    for (const t of text) {
      const m = /^\d*(\/federation,)?\d*(\[.*\])$/s.exec(t.replace(/^\d+-/, ''));
      if (!m) continue;
      const [, envelope] = JSON.parse(m[2]!) as [string, { type?: string }];
      types.push(String(envelope.type));
    }
    expect(types.sort()).toEqual(['evaluate-result', 'evaluate-result', 'hello', 'train-result', 'train-result']);
    await Promise.all(agents.map((a) => a.close()));
  });
});
