/**
 * A throwaway PostgreSQL cluster for tests and `fedmart bench scale`: `initdb` into a fresh temp
 * dir, `pg_ctl start` on a free loopback port (Unix socket in the same dir), `pg_ctl stop -m fast`
 * and the dir removed on {@link PgCluster.stop}. PostgreSQL refuses to run as root, so when this
 * process is root the dir is handed to the `postgres` system user (Debian's package creates it)
 * and every server binary runs through `runuser -u postgres --`; a non-root caller runs them as
 * itself. Authentication is `trust` on loopback only: the cluster lives as long as the test.
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { FedmartError } from '@fedmart/shared/errors';

const run = promisify(execFile);

/**
 * Where PostgreSQL's server binaries are: $FEDMART_PG_BIN, else Debian's /usr/lib/postgresql/15/bin,
 * else the newest /usr/lib/postgresql/<v>/bin holding initdb.
 * @returns the bin dir, or null when no PostgreSQL server is installed
 */
export function findPgBin(): string | null {
  const env = process.env.FEDMART_PG_BIN;
  if (env) return existsSync(path.join(env, 'initdb')) ? env : null;
  if (existsSync('/usr/lib/postgresql/15/bin/initdb')) return '/usr/lib/postgresql/15/bin';
  if (!existsSync('/usr/lib/postgresql')) return null;
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? `/usr/lib/postgresql/${versions[0]}/bin` : null;
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Fast shutdown, then the data dir is removed. Idempotent. */
  stop(): Promise<void>;
}

/** uid/gid of a system user, read from /etc/passwd (null when absent). */
async function systemUser(name: string): Promise<{ uid: number; gid: number } | null> {
  try {
    const { stdout } = await run('id', ['-u', name]);
    const { stdout: g } = await run('id', ['-g', name]);
    return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
  } catch {
    return null;
  }
}

/**
 * Start a throwaway cluster.
 * @param opts.bin - PostgreSQL bin dir (default {@link findPgBin})
 * @param opts.parent - where the temp dir goes (default the OS temp dir)
 * @returns the running cluster
 * @throws FedmartError CONFIG_ERROR when no PostgreSQL binaries exist, or when running as root without a `postgres` user
 */
export async function startPgCluster(opts: { bin?: string; parent?: string } = {}): Promise<PgCluster> {
  const bin = opts.bin ?? findPgBin();
  if (!bin) throw new FedmartError('CONFIG_ERROR', 'no PostgreSQL server binaries found (looked in $FEDMART_PG_BIN and /usr/lib/postgresql/*/bin); install them with: apt-get install -y postgresql');
  const dir = await mkdtemp(path.join(opts.parent ?? tmpdir(), 'fedmart-pg-'));
  const asRoot = process.getuid?.() === 0;
  let prefix: string[] = [];
  if (asRoot) {
    const pgUser = await systemUser('postgres');
    if (!pgUser) {
      await rm(dir, { recursive: true, force: true });
      throw new FedmartError('CONFIG_ERROR', 'PostgreSQL will not run as root and this machine has no "postgres" user; run as a non-root user or install Debian\'s postgresql package (it creates the user)');
    }
    await chown(dir, pgUser.uid, pgUser.gid);
    prefix = ['runuser', '-u', 'postgres', '--'];
  }
  const exec = (cmd: string, args: string[]) => (prefix.length ? run(prefix[0]!, [...prefix.slice(1), path.join(bin, cmd), ...args]) : run(path.join(bin, cmd), args));
  const data = path.join(dir, 'data');
  const port = await freePort();
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    // Small and quiet: few connections, no fsync (throwaway), socket in the temp dir, loopback only.
    const o = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB`;
    await exec('pg_ctl', ['-D', data, '-o', o, '-l', path.join(dir, 'server.log'), '-w', '-t', '120', 'start']);
    started = true;
  } catch (err) {
    await stop();
    const e = err as { stderr?: string; message: string };
    throw new FedmartError('UNAVAILABLE', `could not start a throwaway PostgreSQL cluster in ${dir}: ${(e.stderr || e.message).trim().split('\n').slice(-1)[0]}`);
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dir, stop };
}
