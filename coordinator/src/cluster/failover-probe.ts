/**
 * Measure a cluster member's failover after `kill -9` (issue 15 part 3) with real processes: two
 * {@link ./node-process.ts} members on one PostgreSQL, a federation with a round mid-training; the
 * member leading it is SIGKILLed (no lease release, no goodbye); the time until the survivor's
 * `onAcquired` (its lease won and the interrupted round marked failed, under its lease) is the
 * failover time. With the default lease (TTL 6 s, renew 2 s) it lies between TTL − renew and
 * TTL + renew, depending on when the killed leader last renewed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateEd25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FederationConfigSchema } from '@fedmart/shared/protocol';
import { FedmartError } from '@fedmart/shared/errors';
import { PgStore } from '../db/store-pg.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');

interface Member { id: string; child: ChildProcess; lines: string[]; wait(re: RegExp, ms: number): Promise<{ line: string; at: number }> }

function startMember(url: string, id: string): Member {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'node-process.ts'), url, id], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (v: { line: string; at: number }) => void }[] = [];
  let buf = '', err = '';
  child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      const at = Date.now();
      for (const w of [...waiters]) if (w.re.test(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve({ line, at }); }
    }
  });
  return {
    id, child, lines,
    wait: (re, ms) => new Promise((resolve, reject) => {
      const seen = lines.find((l) => re.test(l));
      if (seen) return resolve({ line: seen, at: Date.now() });
      const t = setTimeout(() => reject(new FedmartError('UNAVAILABLE', `cluster member ${id}: no line matching ${re} within ${ms} ms; stderr: ${err.trim().split('\n').slice(-3).join(' | ')}`)), ms);
      waiters.push({ re, resolve: (v) => { clearTimeout(t); resolve(v); } });
    }),
  };
}

async function stop(m: Member, signal: NodeJS.Signals): Promise<void> {
  if (m.child.exitCode !== null || m.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => m.child.once('exit', () => r()));
  m.child.kill(signal);
  const t = setTimeout(() => m.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

export interface FailoverProbe {
  /** kill -9 of the leader → the survivor's onAcquired (lease won, interrupted round failed). */
  failoverSeconds: number;
  killed: string;
  survivor: string;
  /** Lease epochs before and after. */
  epochs: [number, number];
  /** What the survivor marked failed, and the interrupted round's phase read back from the database. */
  failedRounds: string[];
  interruptedRoundPhase: string;
}

/**
 * Run the probe on a migrated-or-empty PostgreSQL database (it creates its own federation).
 * @param url - the PostgreSQL URL
 * @param hangGuardMs - give up waiting for a step after this long
 */
export async function probeFailover(url: string, hangGuardMs = 120_000): Promise<FailoverProbe> {
  const store = await PgStore.open(url, generateEd25519KeyPair());
  const members: Member[] = [];
  try {
    const config = FederationConfigSchema.parse({ model: { kind: 'mlp', inputDim: 3, hidden: [] }, localTrain: { localEpochs: 1, batchSize: 8, learningRate: 0.1, proximalMu: 0 } });
    const { federation, model } = await store.createFederation(`failover-probe-${Date.now()}`, config, new Float32Array(4));
    const fed = federation.id;
    members.push(startMember(url, 'probe-a'), startMember(url, 'probe-b'));
    await Promise.all(members.map((m) => m.wait(/^listening /, hangGuardMs)));
    const acquired = new RegExp(`^acquired ${fed} `);
    const first = await Promise.race(members.map((m) => m.wait(acquired, hangGuardMs).then((v) => ({ m, ...v }))));
    const leader = first.m, survivor = members.find((m) => m !== leader)!;
    const epoch0 = Number(first.line.split(' ')[2]);
    // The leader is mid-round when it dies; let it renew at least once more first.
    const round = await store.createRound({ id: `r_probe_${fed}`, federationId: fed, number: 1, phase: 'training', strategy: 'fedavg', config: '{}', baseModelVersionId: model.id, startedAt: Date.now() });
    await new Promise((r) => setTimeout(r, 2500));
    const t0 = Date.now();
    await stop(leader, 'SIGKILL');
    const taken = await survivor.wait(acquired, hangGuardMs);
    const [, , epoch1, failed = ''] = taken.line.split(' ');
    return {
      failoverSeconds: Math.round((taken.at - t0) / 10) / 100, killed: leader.id, survivor: survivor.id, epochs: [epoch0, Number(epoch1)],
      failedRounds: failed === '' ? [] : failed.split(','), interruptedRoundPhase: (await store.getRound(round.id)).phase,
    };
  } finally {
    for (const m of members) await stop(m, 'SIGTERM');
    await store.close();
  }
}
