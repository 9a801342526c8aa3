import path from 'node:path';
import { expect, it } from 'vitest';
import { missingDirLevels, isAlreadyExists } from './dir-levels.ts';

it('lists the missing levels outermost first and nothing for an existing dir', () => {
  const have = new Set(['/', '/srv']);
  expect(missingDirLevels('/srv/a/b', (p) => have.has(p))).toEqual(['/srv/a', '/srv/a/b']);
  expect(missingDirLevels('/srv', (p) => have.has(p))).toEqual([]);
  expect(missingDirLevels('rel', () => false)[0]).toBe(path.parse(path.resolve('rel')).root);
  expect(isAlreadyExists(Object.assign(new Error('x'), { code: 'EEXIST' }))).toBe(true);
  expect(isAlreadyExists(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
});
