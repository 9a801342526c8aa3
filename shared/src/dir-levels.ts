/**
 * Which levels of a directory path are missing, outermost first: the caller
 * creates each one without `recursive`. Node's `mkdir(dir, { recursive: true })`
 * (sync and async) never returns when a parent exists but answers ENOENT to
 * mkdir (for example `/proc/nope`: it creates the parent, gets EEXIST, retries
 * the child, forever); one level at a time surfaces that ENOENT as an error.
 * Pure: the existence test is the caller's.
 * @param dir - the directory to create
 * @param exists - whether a path exists (e.g. `existsSync`)
 * @returns absolute paths to create, parents before children (empty when `dir` exists)
 */
import path from 'node:path';

export function missingDirLevels(dir: string, exists: (p: string) => boolean): string[] {
  const missing: string[] = [];
  for (let cur = path.resolve(dir); !exists(cur); ) {
    missing.push(cur);
    const parent = path.dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  return missing.reverse();
}

/**
 * Whether a mkdir error only says the level already exists (created meanwhile).
 * @param err - the thrown error
 */
export function isAlreadyExists(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'EEXIST';
}
