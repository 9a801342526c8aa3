/**
 * Watching a coordinator (issue 13, item 6) after real rounds on the UCI bank
 * data with record-level DP: Prometheus `/metrics` counters move, the
 * `fedmart federation watch` process prints a round while it runs, a partner
 * token's event stream carries only that partner's own events, and the pino
 * log has federation / round / phase / partner ids.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { initBackend } from '@fedmart/client-node/ml/backend';
import { wireParser } from '@fedmart/shared/wire-parser';
import type { FederationConfigInput } from '@fedmart/shared/protocol';
import { createLogger } from '@fedmart/coordinator/logger';
import { EVENTS_NAMESPACE, type StreamEvent } from '@fedmart/coordinator/events';
import { bankPartners, modelFor, startFixture, waitFor } from './helpers.ts';
import { startPartnerAgent } from '@fedmart/client-node/agent';

await initBackend();
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

/** One sample of the exposition text (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

it('after real rounds: /metrics counters move, federation watch shows the round live, partners see only their own events, logs carry the ids', async () => {
  // Arrange
  const exp = await bankPartners();
  const logLines: Record<string, unknown>[] = [];
  await using fx = await startFixture(null, { logger: createLogger('debug', { write: (s: string) => void logLines.push(JSON.parse(s)) }) });
  const dp = { level: 'record' as const, noiseMultiplier: 1.1, clip: 1, delta: 1e-5 };
  const fed = await fx.createFederation({ model: modelFor(exp), minClients: 3, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 }, dp } as Partial<FederationConfigInput> & { model: FederationConfigInput['model'] });
  const tokens: string[] = [];
  const agents = [];
  for (const p of exp.partners) {
    tokens.push(await fx.enroll(fed, p.id));
    agents.push(startPartnerAgent({ coordinatorUrl: fx.url, token: tokens.at(-1)!, data: p.data, reconnect: false }));
  }
  await Promise.all(agents.map((a) => a.ready));
  const me = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === exp.partners[0]!.id)!.partnerId;
  const scrape = async (token: string) => fetch(`${fx.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const before = await (await scrape(fx.coord.operatorToken)).text();

  // A partner's own event stream
  const partnerEvents: StreamEvent[] = [];
  const ps = io(fx.url + EVENTS_NAMESPACE, { auth: { token: tokens[0] }, transports: ['websocket'], parser: wireParser, reconnection: false });
  ps.on('event', (e: StreamEvent) => partnerEvents.push(e));
  await new Promise<void>((resolve, reject) => { ps.once('connect', () => resolve()); ps.once('connect_error', reject); });

  // The watch process, started before the rounds
  const watch = spawn(process.execPath, [BIN, 'federation', 'watch', '--coordinator', fx.url, '--token', fx.coord.operatorToken, '--federation', fed, '--rounds', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: { at: number; text: string }[] = [];
  let buf = '';
  watch.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const text of parts) lines.push({ at: Date.now(), text });
  });
  let watchErr = '';
  watch.stderr!.on('data', (d: Buffer) => (watchErr += d.toString()));
  const watchExit = new Promise<number | null>((resolve) => watch.once('exit', resolve));
  await waitFor(() => /watching federation/.test(watchErr), 120_000, 'the watch process to connect');
  const roundEnds: number[] = [];
  fx.coord.orchestrator.on('round-end', () => roundEnds.push(Date.now()));

  // Act: two real rounds
  const outcomes = await fx.coord.orchestrator.scheduleRounds(fed, 2).done;
  const watchCode = await watchExit;
  const after = await (await scrape(fx.coord.operatorToken)).text();
  const asPartner = await scrape(tokens[0]!);
  const anonymous = await fetch(`${fx.url}/metrics`);
  ps.close();

  // Assert: rounds ran
  expect(outcomes.map((o) => o.phase)).toEqual(['committed', 'committed']);

  // /metrics: counters moved
  expect(sample(before, 'fedmart_rounds_total', { federation: fed, outcome: 'committed' })).toBe(0);
  expect(sample(after, 'fedmart_rounds_total', { federation: fed, outcome: 'committed' })).toBe(2);
  expect(sample(after, 'fedmart_round_participants_count', { federation: fed })).toBe(2);
  expect(sample(after, 'fedmart_round_participants_sum', { federation: fed })).toBe(6);
  expect(sample(after, 'fedmart_round_phase_duration_seconds_count', { federation: fed, phase: 'training' })).toBe(2);
  expect(sample(after, 'fedmart_round_phase_duration_seconds_sum', { federation: fed, phase: 'training' })).toBeGreaterThan(0);
  expect(sample(after, 'fedmart_socket_bytes_received_total')).toBeGreaterThan(sample(before, 'fedmart_socket_bytes_received_total') + 2 * 3 * 4 * modelParams(exp.d));
  expect(sample(after, 'fedmart_socket_bytes_sent_total')).toBeGreaterThan(sample(before, 'fedmart_socket_bytes_sent_total'));
  expect(sample(after, 'fedmart_privacy_epsilon_spent', { federation: fed, scope: 'federation', level: 'record' })).toBeGreaterThan(0);
  expect(sample(before, 'fedmart_privacy_epsilon_spent', { federation: fed, scope: 'federation', level: 'record' })).toBe(0);
  expect(sample(after, 'fedmart_connected_partners', { federation: fed })).toBe(3);
  expect(asPartner.status).toBe(403);
  expect(anonymous.status).toBe(401);

  // federation watch: the round's phases printed before the round ended, then the outcome
  expect(watchCode, watchErr).toBe(0);
  const training = lines.find((l) => /^\S+ round 1 training \(selected 3/.test(l.text));
  expect(training, lines.map((l) => l.text).join('\n')).toBeDefined();
  expect(training!.at).toBeLessThan(roundEnds[0]!);
  expect(lines.some((l) => /^\S+ round 1 committed → model v1 \(.*eval_loss [\d.]+.*\), 3 participant\(s\)/.test(l.text))).toBe(true);
  expect(lines.some((l) => /^\S+ ledger: round 1 federation record-level ε [\d.]+ \(spent\)/.test(l.text))).toBe(true);
  expect(lines.filter((l) => /reported train/.test(l.text))).toHaveLength(6);

  // The partner's stream: its own federation, its own reports and ledger rows only; round-end without the others
  expect(partnerEvents.length).toBeGreaterThan(0);
  expect(partnerEvents.every((e) => e.federationId === fed)).toBe(true);
  expect(partnerEvents.every((e) => e.partnerId === undefined || e.partnerId === me)).toBe(true);
  expect(partnerEvents.filter((e) => e.type === 'report' && e.kind === 'train')).toHaveLength(2);
  const ends = partnerEvents.filter((e) => e.type === 'round-end');
  expect(ends).toHaveLength(2);
  for (const e of ends) expect(e.participants).toEqual([me]);
  expect(partnerEvents.filter((e) => e.type === 'ledger' && e.partnerId === me)).toHaveLength(2);

  // pino: JSON lines with the ids
  const phaseLog = logLines.find((l) => l.phase === 'training' && l.roundId === outcomes[0]!.roundId);
  expect(phaseLog).toMatchObject({ federationId: fed, round: 1, level: 30 });
  expect(logLines.some((l) => l.partnerId === me && l.roundId === outcomes[0]!.roundId && l.level === 20)).toBe(true);
  expect(logLines.some((l) => l.msg === 'round 2 committed' && l.federationId === fed)).toBe(true);
  await Promise.all(agents.map((a) => a.close()));
});

function modelParams(d: number): number {
  return d * 8 + 8 + 8 + 1;
}
