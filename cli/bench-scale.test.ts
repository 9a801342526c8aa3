/**
 * `fedmart bench scale` small (issue 15 acceptance, the bench itself): the real CLI, a SQLite coordinator
 * process and 2 `fedmart coordinator --cluster` processes on a throwaway PostgreSQL 15, 6 partners, a
 * kill -9 of the leader mid-round. The JSON must carry measured figures for both arms, not nulls.
 * Skips with a printed reason only when no PostgreSQL binaries exist.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { findPgBin } from '@fedmart/coordinator/db/pg-cluster';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/fedmart.js');
const pgBin = findPgBin();
if (!pgBin) console.warn('bench scale: skipping: no PostgreSQL server binaries (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with apt-get install -y postgresql');

describe.skipIf(pgBin === null)('fedmart bench scale', () => {
  it('measures 2 cluster coordinators beside the SQLite one, and the kill -9 failover, with real numbers', async () => {
    // Act
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'bench', 'scale', '--coordinators', '2', '--partners', '6', '--params', '20000', '--rounds', '2', '--json'], { maxBuffer: 1 << 24 });
    const r = JSON.parse(stdout);

    // Assert: both arms measured, the failover observed from PostgreSQL and the round after it committed
    expect(r.baseline.singleRoundMs).toBeGreaterThan(0);
    expect(r.baseline.multiRoundMs).toBeGreaterThan(0);
    expect(r.singleRoundMs).toBeGreaterThan(0);
    expect(r.multiRoundMs).toBeGreaterThan(0);
    expect(r.ratio).toBeGreaterThan(0);
    expect(r.memory).toHaveLength(2);
    for (const m of r.memory) expect(m.peakRssMb).toBeGreaterThan(0);
    expect(r.redirectedPartners).toBe(3);
    expect(r.failoverSeconds).toBeGreaterThan(0);
    expect(r.recoverySeconds).toBeGreaterThanOrEqual(r.failoverSeconds);
    expect(r.failover).toMatchObject({ interruptedRound: { phase: 'failed', modelVersions: 0 }, nextRound: { phase: 'committed' } });
    expect(r.failover.survivor).not.toBe(r.failover.killed);
  }, 300_000);
});
