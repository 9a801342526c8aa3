/**
 * `fedmart partner consent` as a partner runs it: real `fedmart` processes against a real coordinator
 * (port 0, real SQLite). The invitation shows the terms in words and the same hash a node pins; a
 * consent needs explicit purposes, is refused in one line for a stale hash or purposes that do not
 * cover the federation's, and is recorded exactly as the portal's (`partner.consent` audit entry).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ConsentView } from '@fedmart/shared/api-views';
import { federationTermsHash, type FederationTerms } from '@fedmart/shared/federation-terms';
import { federationTerms } from '@fedmart/shared/protocol';
import { bankPartners, modelFor, startFixture } from './helpers.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 240_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

describe('fedmart partner consent', () => {
  it('shows the terms and their hash, refuses stale hashes and uncovered purposes in words, records a consent like the portal', { timeout: 300_000 }, async () => {
    await using fx = await startFixture();
    const exp = await bankPartners();
    const fed = await fx.createFederation({ model: modelFor(exp), purpose: 'purchase-prediction' } as never, 'brand federation');
    const token = await fx.enroll(fed, 'brand-cli');
    const other = await fx.createFederation({ model: modelFor(exp) } as never, 'other');
    const hash = federationTermsHash(federationTerms(fx.coord.store.federationConfig(fx.coord.store.getFederation(fed))) as unknown as FederationTerms);
    const base = ['partner', 'consent', '--coordinator', fx.url, '--token', token];

    const show = await run([...base, '--show']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`terms hash: ${hash}`);
    expect(show.stdout).toMatch(/Purpose:\s+purchase-prediction/);
    expect(show.stdout).toMatch(/Differential privacy:\s+off/);
    expect(show.stdout).toMatch(/not yet consented/);

    const [uncovered, stale, badPurpose, noPurposes, foreign] = await Promise.all([
      run([...base, '--purposes', 'recommendation', '--terms-hash', hash]),
      run([...base, '--purposes', 'purchase-prediction', '--terms-hash', '0'.repeat(64)]),
      run([...base, '--purposes', 'magic']),
      run([...base, '--terms-hash', hash]),
      run([...base, '--federation', other, '--show']),
    ]);
    expect(uncovered.code).toBe(1);
    expect(uncovered.stderr).toMatch(/^fedmart partner consent: consent not recorded: .*does not cover.*purchase-prediction[^\n]*\n$/);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^fedmart partner consent: the federation's terms changed since they were shown .*run "fedmart partner consent --show" to read the new terms, then consent with --terms-hash <the new hash>\n$/);
    expect(badPurpose.code).toBe(2);
    expect(badPurpose.stderr).toMatch(/^fedmart partner consent: --purposes must be a comma-separated list of purchase-prediction, .*got "magic"/);
    expect(noPurposes.code).toBe(2);
    expect(noPurposes.stderr).toMatch(/give --purposes too/);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/^fedmart partner consent: a partner token can only read and consent to its own federation/);
    expect(fx.coord.store.auditLog.entries().filter((e) => e.action === 'partner.consent')).toHaveLength(0);

    const ok = await run([...base, '--purposes', 'purchase-prediction,segments', '--terms-hash', hash, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const lines = ok.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const view = JSON.parse(lines[0]!) as ConsentView;
    expect(view.enrollment).toMatchObject({ termsHash: hash, purposes: ['purchase-prediction', 'segments'], current: true });
    const row = fx.coord.store.listEnrollments(fed).find((e) => e.partnerName === 'brand-cli')!;
    expect(row.termsHash).toBe(hash);
    expect(JSON.parse(row.purposes!)).toEqual(['purchase-prediction', 'segments']);
    const entries = fx.coord.store.auditLog.entries().filter((e) => e.action === 'partner.consent');
    expect(entries).toHaveLength(1);
    expect(entries[0]!.actor).toBe(row.partnerId);
    expect(JSON.parse(entries[0]!.data!)).toEqual({ federationId: fed, purposes: ['purchase-prediction', 'segments'], previous: null, termsHash: hash });

    const after = await run([...base]);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/consented .* for purchase-prediction, segments \(to these terms\)/);
    expect(after.stdout).not.toContain(token);
  });
});
