/**
 * `npm start` prints a compliance sign-in link. The token in it is stored in
 * the data dir and reused by the next start on the same data dir, so a link
 * the user saved keeps working; a token close to expiry is replaced and the
 * old one revoked. Real coordinator, real SQLite, two starts on one data dir.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { startCoordinator } from '@fedmart/coordinator';
import { ApiClient } from '../cli/api-client.ts';
import { printPortalLinks } from '../cli/demo.ts';

async function start(dataDir: string): Promise<{ lines: string[]; token: string; close: () => Promise<void>; url: string; api: ApiClient }> {
  const coord = await startCoordinator({ port: 0, dataDir, log: () => {} });
  const lines: string[] = [];
  const api = new ApiClient(coord.url, coord.operatorToken);
  await printPortalLinks((s) => lines.push(s), coord, api, dataDir, 'partner-1', 'partner-token');
  const m = /compliance:\s+\S+#token=(\S+)/.exec(lines.join('\n'));
  expect(m, lines.join('\n')).toBeTruthy();
  return { lines, token: m![1]!, close: () => coord.close(), url: coord.url, api };
}

async function status(url: string, token: string): Promise<number> {
  return (await fetch(`${url}/api/v1/federations`, { headers: { authorization: `Bearer ${token}` } })).status;
}

it('a second start on the same data dir reuses the stored compliance token; a stale one is replaced and revoked', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fedmart-compliance-'));
  try {
    const first = await start(dataDir);
    const file = path.join(dataDir, 'compliance.token');
    expect(first.lines.join('\n')).toContain(`issued; stored in ${file}`);
    expect((await readFile(file, 'utf8')).trim()).toBe(first.token);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await first.close();

    const second = await start(dataDir);
    expect(second.token).toBe(first.token);
    expect(second.lines.join('\n')).toContain(`reused; stored in ${file}`);
    expect(await status(second.url, first.token)).toBe(200);

    // A token near expiry (1 h left) in the file: replaced, and the replaced one is revoked.
    const { token: stale } = await second.api.post<{ token: string }>('/api/v1/tokens', { subject: 'compliance-officer', role: 'compliance', expiresInSeconds: 3600 });
    await writeFile(file, stale + '\n');
    await second.close();
    const third = await start(dataDir);
    expect(third.token).not.toBe(stale);
    expect(third.lines.join('\n')).toContain('renewed; the old one is revoked');
    expect(await status(third.url, stale)).toBe(401);
    expect(await status(third.url, third.token)).toBe(200);
    await third.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
