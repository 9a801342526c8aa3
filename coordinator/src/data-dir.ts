/**
 * The coordinator's data dir holds secrets (the token signing key, the
 * operator token, every partner's enrollment record): it is made private to
 * the user running the coordinator at every start, not only when first
 * created, so a copy restored from a backup with loose permissions, or a
 * umask of 022, never leaves them world-readable.
 */
import { chmod, mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { missingDirLevels, isAlreadyExists } from '@fedmart/shared/dir-levels';

/** Mode of the data dir: owner only. */
export const DATA_DIR_MODE = 0o700;
/** Mode of the database, key and token files: owner read/write only. */
export const SECRET_FILE_MODE = 0o600;

/**
 * Create the data dir (0700) or tighten an existing one to 0700.
 * @param dir - the data dir
 * @throws FedmartError CONFIG_ERROR when it cannot be created or is not a directory
 */
export async function prepareDataDir(dir: string): Promise<void> {
  try {
    await makeDirs(dir, DATA_DIR_MODE);
    if (!(await stat(dir)).isDirectory()) throw new Error('it exists and is not a directory');
    await chmod(dir, DATA_DIR_MODE);
  } catch (err) {
    throw new FedmartError('CONFIG_ERROR', `cannot create data dir ${dir}: ${(err as Error).message}; pass --data-dir with a writable directory`, { cause: err });
  }
}

/**
 * Create `dir` and its missing parents one level at a time (see missingDirLevels: Node's recursive mkdir hangs
 * under a parent such as /proc).
 * @param dir - the directory to create (an existing one is fine)
 * @param mode - mode of the directories created
 * @throws the first mkdir error other than EEXIST
 */
export async function makeDirs(dir: string, mode: number = DATA_DIR_MODE): Promise<void> {
  for (const level of missingDirLevels(dir, existsSync)) {
    await mkdir(level, { mode }).catch((err: unknown) => { if (!isAlreadyExists(err)) throw err; });
  }
}

/**
 * chmod 0600 the named files of the data dir that exist (missing ones are skipped).
 * @param dir - the data dir
 * @param names - file names inside it
 * @throws FedmartError CONFIG_ERROR when a file exists but cannot be restricted
 */
export async function restrictFiles(dir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      await chmod(file, SECRET_FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new FedmartError('CONFIG_ERROR', `cannot make ${file} private (chmod 600): ${(err as Error).message}; fix its owner or permissions`, { cause: err });
    }
  }
}
