/**
 * Issue 9, item 5: `fedmart segments` on the real UCI bank data (the 4,521-row
 * UCI sample that ships with npm; the full 45,211 rows are the acceptance run
 * in the README), k = 5, six partners by job: the federated inertia is within
 * 2 % of centralized k-means from the same initial centroids, with and
 * without secure aggregation; profiles are in original units; each partner
 * gets its own customers' assignments.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bankMarketingPath } from '../cli/datasets.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
const BANK = bankMarketingPath('small');
const BASE = ['segments', '--csv', BANK, '--sep', ';', '--label', 'y', '--positive', 'yes', '--drop', 'duration', '--k', '5', '--partition-by', 'job', '--partners', '6', '--seed', '1'];

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 540_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

interface Report {
  k: number;
  rows: number;
  secureAggregation: boolean;
  partners: { id: string; rows: number; values: string[]; segmentSizes: number[] }[];
  segments: { segment: number; size: number; share: number; positiveRate: number; profile: Record<string, number | { value: string; share: number }[]> }[];
  inertia: { federated: number; centralized: number; relativeGap: number; centralizedKMeansPlusPlus: number };
  secureRounds?: number;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-segments-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectSegmentsReport(r: Report): void {
  expect(r.k).toBe(5);
  expect(r.rows).toBe(4521);
  expect(r.segments).toHaveLength(5);
  // federated within 2 % of centralized k-means from the same start
  expect(Math.abs(r.inertia.federated - r.inertia.centralized) / r.inertia.centralized).toBeLessThanOrEqual(0.02);
  expect(r.inertia.relativeGap).toBeCloseTo((r.inertia.federated - r.inertia.centralized) / r.inertia.centralized, 6);
  // segments: largest first, sizes add up, profiles readable in original units
  expect(r.segments.reduce((a, s) => a + s.size, 0)).toBe(4521);
  for (let i = 1; i < 5; i++) expect(r.segments[i]!.size).toBeLessThanOrEqual(r.segments[i - 1]!.size);
  for (const s of r.segments) {
    expect(s.positiveRate).toBeGreaterThanOrEqual(0);
    expect(s.positiveRate).toBeLessThanOrEqual(1);
    expect(s.profile.age).toBeGreaterThan(18);
    expect(s.profile.age).toBeLessThan(95); // years, not standard deviations
    const jobs = s.profile.job as { value: string; share: number }[];
    expect(jobs.length).toBeGreaterThan(0);
    expect(jobs[0]!.share).toBeGreaterThan(0);
    expect(Object.keys(s.profile)).not.toContain('y');
    expect(Object.keys(s.profile)).not.toContain('duration');
  }
  // every partner's own assignments add up to its rows, and over partners to the segment sizes
  expect(r.partners).toHaveLength(6);
  for (const p of r.partners) expect(p.segmentSizes.reduce((a, v) => a + v, 0)).toBe(p.rows);
  r.segments.forEach((s, j) => expect(r.partners.reduce((a, p) => a + p.segmentSizes[j]!, 0)).toBe(s.size));
}

// Each test spawns real CLI processes; on a loaded CI machine that takes minutes, not seconds.
describe('issue 9: fedmart segments on the bank data, k = 5', { timeout: 600_000 }, () => {
  it('plain aggregation: within 2 % of centralized, readable profiles, per-partner assignment files', async () => {
    // Act
    const r = await run([...BASE, '--json', '--assignments-dir', dir]);
    // Assert
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1); // one JSON object, progress on stderr
    const report = JSON.parse(r.stdout) as Report;
    expect(report.secureAggregation).toBe(false);
    expectSegmentsReport(report);
    const first = report.partners[0]!;
    const csv = (await readFile(path.join(dir, `${first.id}.csv`), 'utf8')).trim().split('\n');
    expect(csv[0]).toBe('row,segment');
    expect(csv).toHaveLength(first.rows + 1);
    const counts = new Array<number>(5).fill(0);
    for (const line of csv.slice(1)) counts[Number(line.split(',')[1]) - 1]!++;
    expect(counts).toEqual(first.segmentSizes);
  });

  it('secure aggregation: every Lloyd iteration summed by SecAgg, still within 2 % of centralized', async () => {
    const r = await run([...BASE, '--json', '--secure-agg']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.secureAggregation).toBe(true);
    expect(report.secureRounds).toBeGreaterThan(1);
    expectSegmentsReport(report);
  });

  it('prints readable profiles without --json', async () => {
    const r = await run(BASE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^5 segments of 4,521 customers across 6 partners/);
    expect(r.stdout).toMatch(/segment 1: [\d,]+ customers \([\d.]+%\), positive rate [\d.]+%/);
    expect(r.stdout).toMatch(/\n  stands out: [a-z]+(=[a-z.-]+)? [\d.,]+%? \(all [\d.,]+%?\)/);
    expect(r.stdout).toMatch(/\n  age [\d.]+ · balance/);
    expect(r.stdout).toMatch(/\n  job: [a-z.-]+ [\d.]+%/);
  });

  it('explains bad flags in one line and exits non-zero', async () => {
    const base = ['segments', '--csv', BANK, '--sep', ';'];
    const cases: [string[], RegExp][] = [
      [[...base, '--k', '1', '--partners', '3'], /--k must be an integer from 2 to 1000000, got "1"/],
      [[...base, '--k', '5000', '--partners', '3'], /--k 5000 is more than the 4521 rows/],
      [[...base, '--partners', '3'], /missing --k/],
      [[...base, '--k', '3'], /--partition-by COL .* or --partners N/],
      [[...base, '--k', '3', '--partition-by', 'nope'], /--partition-by column "nope" not found/],
      [[...base, '--k', '3', '--partners', '3', '--label', 'nope'], /column "nope" not found.*--label/],
      [[...base, '--k', '3', '--partners', '3', '--drop', 'nope'], /--drop names "nope", not found/],
      [[...base, '--k', '3', '--partners', '2', '--secure-agg'], /--secure-agg needs at least 3 partners/],
      [[...base, '--k', '3', '--partners', '3', '--positive', 'yes'], /--positive needs --label/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(cases[i]![1]);
      const lines = r.stderr.trim().split('\n');
      expect(lines.filter((l) => l.startsWith('fedmart segments: '))).toHaveLength(1); // one error line (progress may precede it)
      expect(lines.at(-1)).toMatch(cases[i]![1]);
      expect(r.stderr).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/); // no stack trace
    });
  });
});
