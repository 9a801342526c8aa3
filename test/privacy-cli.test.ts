/**
 * `fedmart privacy` as a user runs it: a real process, the documented JSON
 * shapes, CONFIG_ERROR exit code 2 with a one-line message for bad flags,
 * and the ledger report read from a coordinator's data dir (JSON and CSV).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { computeEpsilon, computeSigma } from '@fedmart/shared/dp/rdp';
import { ApiClient } from '../cli/api-client.ts';
import { startFixture } from './helpers.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

describe('fedmart privacy', () => {
  it('epsilon and sigma print the documented JSON, equal to the accountant', async () => {
    const [e, s] = await Promise.all([
      run(['privacy', 'epsilon', '--q', '0.01', '--sigma', '1.1', '--steps', '1000', '--delta', '1e-5', '--json']),
      run(['privacy', 'sigma', '--q', '0.01', '--steps', '1000', '--delta', '1e-5', '--epsilon', '1', '--json']),
    ]);
    expect(e.code).toBe(0);
    const ej = JSON.parse(e.stdout);
    const ref = computeEpsilon({ q: 0.01, sigma: 1.1, steps: 1000, delta: 1e-5 });
    expect(ej).toEqual({ epsilon: ref.epsilon, order: ref.order, accountant: 'rdp' });
    expect(s.code).toBe(0);
    const sj = JSON.parse(s.stdout);
    expect(sj).toEqual({ ...computeSigma({ q: 0.01, steps: 1000, delta: 1e-5, epsilon: 1 }), accountant: 'rdp' });
    expect(sj.epsilon).toBeLessThanOrEqual(1);
  });

  it('rejects bad flags with one clear line and exit code 2', async () => {
    const cases = await Promise.all([
      run(['privacy', 'epsilon', '--q', '1.5', '--sigma', '1', '--steps', '10', '--delta', '1e-5']),
      run(['privacy', 'sigma', '--q', '0.1', '--steps', '10', '--delta', '1e-5']),
      run(['privacy', 'report', '--federation', 'f_x', '--format', 'xml']),
    ]);
    expect(cases.map((c) => c.code)).toEqual([2, 2, 2]);
    expect(cases[0]!.stderr).toMatch(/--q must be a sampling rate in \(0, 1\], got "1.5"/);
    expect(cases[1]!.stderr).toMatch(/missing --epsilon/);
    expect(cases[2]!.stderr).toMatch(/--format must be json or csv/);
    for (const c of cases) expect(c.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('report reads the ledger and caps from a data dir, as JSON and CSV', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'fedmart-privacy-cli-'));
    try {
      let fed: string;
      {
        await using fx = await startFixture(dir);
        fed = await fx.createFederation({ model: { kind: 'mlp', inputDim: 4, hidden: [] }, dp: { level: 'partner', noiseMultiplier: 1, clip: 1, delta: 1e-6 } } as never);
        const { token } = await fx.api.post<{ token: string }>('/api/v1/tokens', { role: 'compliance', subject: 'officer' });
        await new ApiClient(fx.url, token).request('PUT', `/api/v1/federations/${fed}/privacy/caps`, { level: 'partner', epsilon: 4 });
      }
      const [json, csv] = await Promise.all([
        run(['privacy', 'report', '--federation', fed, '--data-dir', dir]),
        run(['privacy', 'report', '--federation', fed, '--format', 'csv', '--data-dir', dir]),
      ]);
      expect(json.code).toBe(0);
      const report = JSON.parse(json.stdout);
      expect(report).toMatchObject({ federationId: fed, accountant: 'rdp', dp: { level: 'partner', delta: 1e-6 }, caps: [{ level: 'partner', epsilon: 4, partnerId: null }] });
      expect(report.totals.find((t: { scope: string }) => t.scope === 'federation')).toMatchObject({ epsilon: 0, rounds: 0, cap: 4 });
      expect(csv.code).toBe(0);
      expect(csv.stdout.split('\r\n')[0]).toBe('id,createdAt,round,roundId,modelVersion,level,kind,committed,scope,partnerId,partnerName,epsilon,delta,sigma,updateSigma,countStd,q,steps,clip,reason');
      const missing = await run(['privacy', 'report', '--federation', 'f_nope', '--data-dir', dir]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/federation "f_nope" not found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
