/**
 * The partner's data dir, created 0700 one level at a time (Node's recursive mkdir hangs under a parent such as
 * /proc; see shared/dir-levels).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { FedmartError } from '@fedmart/shared/errors';
import { missingDirLevels, isAlreadyExists } from '@fedmart/shared/dir-levels';

/**
 * Create `dir` and its missing parents.
 * @param dir - the directory (an existing one is fine)
 * @param mode - mode of the directories created
 * @throws FedmartError CONFIG_ERROR naming the directory when a level cannot be created
 */
export function makeDirsSync(dir: string, mode: number): void {
  for (const level of missingDirLevels(dir, existsSync)) {
    try {
      mkdirSync(level, { mode });
    } catch (err) {
      if (isAlreadyExists(err)) continue;
      throw new FedmartError('CONFIG_ERROR', `cannot create data dir ${dir}: ${(err as Error).message}; pass --data-dir with a writable directory`, { cause: err });
    }
  }
}
