/**
 * Issue 13, item 4: the verifiable audit log. A real coordinator on a real SQLite file, real partner
 * agents over the bank data: round outcomes and REST actions are entries with their actor, every entry
 * is followed by a signed tree head, and 1,000 single-byte edits, deletions and reorderings of the
 * stored rows are each detected both by `fedmart audit verify` (data dir and API) and by a partner
 * holding an older tree head — which then refuses to train, with the reason.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from '@fedmart/coordinator';
import { startPartnerAgent } from '@fedmart/client-node/agent';
import { PartnerIdentity } from '@fedmart/client-node/identity';
import { AuditHeadStore, checkCoordinatorAuditLog, AUDIT_HEAD_FILE } from '@fedmart/client-node/audit-head';
import { seededRandom } from '@fedmart/shared/model';
import { verifyInclusion } from '@fedmart/shared/crypto/merkle';
import { hexToBytes } from '@fedmart/shared/crypto/bytes';
import { auditLeafHash, verifyTreeHead, type AuditEntry, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { ApiClient } from '../cli/api-client.ts';
import { verifyAudit } from '../cli/audit.ts';
import { bankPartners, modelFor } from './helpers.ts';

const BIN = path.resolve(import.meta.dirname, '../bin/fedmart.js');
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 240_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

const config = (d: number) => ({
  model: { ...modelFor({ d } as never) }, localTrain: { localEpochs: 1, batchSize: 64, learningRate: 0.01, proximalMu: 0 }, minClients: 2,
  timeouts: { selectingMs: 20_000, trainingMs: 120_000, evaluatingMs: 60_000 },
});

describe('issue 13: verifiable audit log', () => {
  it('records actions and round outcomes with their actor, signs a head after each, and detects 1,000 tampered logs', { timeout: 600_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fedmart-audit-'));
    const partnerDir = path.join(dir, 'partner-a');
    try {
      const coord = await startCoordinator({ port: 0, dataDir: dir });
      try {
        const api = new ApiClient(coord.url, coord.operatorToken);
        const exp = await bankPartners();
        const fed = (await api.post<{ federation: { id: string } }>('/api/v1/federations', { name: 'audit', config: config(exp.d) })).federation.id;
        const tokens: string[] = [];
        for (const p of exp.partners.slice(0, 2)) tokens.push((await api.post<{ token: string }>(`/api/v1/federations/${fed}/enrollments`, { partner: p.id })).token);
        const heldByA = AuditHeadStore.open(partnerDir);
        const identityA = PartnerIdentity.open(partnerDir);
        const agents = exp.partners.slice(0, 2).map((p, i) => startPartnerAgent({ coordinatorUrl: coord.url, token: tokens[i]!, data: p.data, reconnect: false, ...(i === 0 ? { auditHeads: heldByA, identity: identityA } : {}) }));
        await Promise.all(agents.map((a) => a.ready));
        // Partner A keeps the head it checked at connection in its data dir.
        const older = agents[0]!.auditHead()!;
        expect(older.size).toBeGreaterThan(0);
        expect(existsSync(path.join(partnerDir, AUDIT_HEAD_FILE))).toBe(true);
        const [outcome] = await coord.orchestrator.scheduleRounds(fed, 1).done;
        expect(outcome!.phase).toBe('committed');
        await api.post('/api/v1/tokens', { subject: 'cora', role: 'compliance', expiresInSeconds: 3600 });
        await Promise.all(agents.map((a) => a.close()));

        // Arrange: the log as stored, with an entry and a signed head for each action
        const entries = coord.store.auditLog.entries();
        const heads = coord.store.auditLog.listHeads(0, 100_000);
        expect(heads.map((h) => h.size)).toEqual(entries.map((e) => e.seq));
        expect(heads.every((h) => verifyTreeHead(h))).toBe(true);
        const byAction = (a: string) => entries.filter((e) => e.action === a);
        expect(byAction('federation.created')[0]!.actor).toBe('operator');
        expect(byAction('enrollment.issued')).toHaveLength(2);
        expect(byAction('token.issued').at(-1)!.actor).toBe('operator');
        expect(byAction('round.committed')).toHaveLength(1);
        expect(byAction('schedule.created')).toHaveLength(1);
        const n = entries.length;
        expect(older.size).toBeLessThan(n);

        // The API proves inclusion of the round's outcome in the newest head.
        const committed = byAction('round.committed')[0]!;
        const inc = await api.get<{ entry: AuditEntry; leafIndex: number; treeSize: number; proof: string[] }>(`/api/v1/audit/entries/${committed.seq}/proof`);
        const sth = (await api.get<{ head: SignedTreeHead }>('/api/v1/audit/sth')).head;
        expect(verifyInclusion(inc.leafIndex, inc.treeSize, auditLeafHash(inc.entry), inc.proof.map(hexToBytes), hexToBytes(sth.root))).toBe(true);

        // The intact log verifies every way.
        expect(await verifyAudit({ 'data-dir': dir })).toMatchObject({ ok: true, entries: n, firstBad: null });
        expect(await verifyAudit({ coordinator: coord.url, token: coord.operatorToken })).toMatchObject({ ok: true, entries: n });
        const headFile = path.join(dir, 'older-head.json');
        await writeFile(headFile, JSON.stringify(older));
        expect(await verifyAudit({ 'data-dir': dir, 'from-head': headFile })).toMatchObject({ ok: true });
        const intact = await cli(['audit', 'verify', '--data-dir', dir, '--from-head', headFile]);
        expect(intact.code, intact.stderr).toBe(0);
        expect(intact.stdout).toMatch(/audit log verifies/);

        // Act: the attacker has write access to the database (it can drop the append-only triggers).
        const sqlite = coord.db.$client;
        sqlite.exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;');
        const restore = sqlite.transaction(() => {
          sqlite.prepare('DELETE FROM audit_log').run();
          const ins = sqlite.prepare('INSERT INTO audit_log (seq, at, actor, action, subject, data) VALUES (@seq, @at, @actor, @action, @subject, @data)');
          for (const e of entries) ins.run(e);
        });
        const rand = seededRandom(13);
        const pick = (k: number) => Math.floor(rand() * k);
        const partnerView = AuditHeadStore.ephemeral();
        const kinds = { edit: 0, delete: 0, reorder: 0 };
        let cliChecks = 0;
        for (let trial = 0; trial < 1000; trial++) {
          const kind = (['edit', 'delete', 'reorder'] as const)[trial % 3]!;
          let expectedSeq: number;
          sqlite.transaction(() => {
            if (kind === 'edit') {
              const e = entries[pick(n)]!;
              const cols = (['at', 'actor', 'action', 'subject', 'data'] as const).filter((c) => e[c] !== null);
              const col = cols[pick(cols.length)]!;
              const text = String(e[col]);
              const at = pick(text.length);
              let ch: string;
              do ch = col === 'at' ? String(at === 0 ? 1 + pick(9) : pick(10)) : String.fromCharCode(32 + pick(95));
              while (ch === text[at]);
              const edited = text.slice(0, at) + ch + text.slice(at + 1);
              sqlite.prepare(`UPDATE audit_log SET ${col} = ? WHERE seq = ?`).run(col === 'at' ? Number(edited) : edited, e.seq);
              expectedSeq = e.seq;
            } else if (kind === 'delete') {
              const e = entries[pick(n)]!;
              sqlite.prepare('DELETE FROM audit_log WHERE seq = ?').run(e.seq);
              expectedSeq = e.seq;
            } else {
              // Reorder: two entries swap places (their contents trade sequence numbers).
              const i = pick(n - 1);
              const j = i + 1 + pick(n - 1 - i);
              const a = entries[i]!, b = entries[j]!;
              const set = sqlite.prepare('UPDATE audit_log SET at = @at, actor = @actor, action = @action, subject = @subject, data = @data WHERE seq = @target');
              set.run({ ...b, target: a.seq });
              set.run({ ...a, target: b.seq });
              expectedSeq = a.seq;
            }
          }).immediate();
          // Assert: `fedmart audit verify` names the first bad entry …
          const v = await verifyAudit({ 'data-dir': dir });
          expect(v.ok, `trial ${trial} (${kind})`).toBe(false);
          expect(v.firstBad!.seq, `trial ${trial} (${kind}): ${v.firstBad!.reason}`).toBe(expectedSeq!);
          if (trial % 50 === 0) {
            expect((await verifyAudit({ coordinator: coord.url, token: coord.operatorToken })).firstBad?.seq).toBe(expectedSeq!);
            if (cliChecks++ < 2) {
              const r = await cli(['audit', 'verify', '--data-dir', dir]);
              expect(r.code).toBe(1);
              expect(r.stdout).toMatch(new RegExp(`first bad entry ${expectedSeq!}:`));
            }
          }
          // … and a partner holding the older head refuses, keeping its head.
          partnerView.save(older);
          await expect(checkCoordinatorAuditLog({ coordinatorUrl: coord.url, token: tokens[0]!, store: partnerView }), `trial ${trial} (${kind})`).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/^refusing to train: /) });
          expect(partnerView.head).toEqual(older);
          kinds[kind]++;
          restore.immediate();
        }
        expect(kinds).toEqual({ edit: 334, delete: 333, reorder: 333 });
        expect(await verifyAudit({ 'data-dir': dir })).toMatchObject({ ok: true });

        // A real agent holding the older head refuses to join a rewritten log, and says why.
        sqlite.prepare("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").run();
        const logs: string[] = [];
        const again = startPartnerAgent({ coordinatorUrl: coord.url, token: tokens[0]!, data: exp.partners[0]!.data, reconnect: false, identity: identityA, auditHeads: AuditHeadStore.open(partnerDir), log: (m) => logs.push(m) });
        await expect(again.ready).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/history was rewritten/) });
        expect(logs.join('\n')).toMatch(/cannot join: refusing to train/);
        await again.close();
        // Restored, the same partner accepts the log again and advances its head.
        restore.immediate();
        const back = startPartnerAgent({ coordinatorUrl: coord.url, token: tokens[0]!, data: exp.partners[0]!.data, reconnect: false, identity: identityA, auditHeads: AuditHeadStore.open(partnerDir) });
        await back.ready;
        expect(back.auditHead()!.size).toBeGreaterThanOrEqual(n);
        await back.close();
      } finally {
        await coord.close();
      }
      // A coordinator refuses to start on a rewritten log (it would sign heads over it).
      const Database = (await import('better-sqlite3')).default;
      const raw = new Database(path.join(dir, 'fedmart.db'));
      raw.exec('DROP TRIGGER IF EXISTS audit_log_no_update');
      raw.prepare("UPDATE audit_log SET action = 'nothing.happened' WHERE seq = 3").run();
      raw.close();
      await expect(startCoordinator({ port: 0, dataDir: dir })).rejects.toMatchObject({ code: 'CONFIG_ERROR', message: expect.stringMatching(/entry 3: entry 3 was altered/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
