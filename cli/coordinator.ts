/**
 * `fedmart coordinator`: start the coordinator and serve until interrupted.
 */
import path from 'node:path';
import { startCoordinator } from '@fedmart/coordinator';
import { FedmartError } from '@fedmart/shared/errors';
import { LOG_LEVELS, createLogger, type LogLevel } from '@fedmart/coordinator/logger';
import { parseFlags, intFlag, progress } from './args.ts';
import { clusterFlags, coordinatorDatabaseStep, databaseUrl, redactUrl } from './coordinator-database.ts';

const USAGE = `fedmart coordinator [--port 7300] [--host 127.0.0.1] [--data-dir ./.fedmart] [--rotate-operator-token] [--ping-timeout S] [--log-level info]
                   [--database postgres://… | $FEDMART_DATABASE_URL] [--migrate-only] [--cluster --advertise-url URL [--coordinator-id ID]]

Starts the coordinator: REST API under /api/v1, Socket.IO namespace /federation,
SQLite database and signing key in the data dir (made 0700, its files 0600).
The operator token lives in <data-dir>/operator.token: a restart reuses it while
it is valid; --rotate-operator-token mints a new one and revokes the old one.
--host 0.0.0.0 binds every interface (put a TLS-terminating proxy in front; see
the README). --ping-timeout S: how long a silent client counts as connected (default
20; raise it for vertical federations with large PSI on busy machines, e.g. 300).
--log-level trace|debug|info|warn|error|fatal|silent (default info): structured JSON
logs (pino) on stderr with federationId, roundId, phase and partnerId fields.
Prometheus metrics: GET /metrics with an operator or compliance Bearer token.
Live events: Socket.IO namespace /events (fedmart federation watch).
--migrate-only: bring the database to the newest schema and exit (deploy pipelines):
the SQLite file in --data-dir, or the PostgreSQL database of --database /
FEDMART_DATABASE_URL (there also the cluster tables and the shared secrets). --database
without --migrate-only serves from that PostgreSQL (migrated at start): the signing key,
audit log key and operator token live in it, one set for every coordinator on it (a
data dir's files are imported once; the data dir gets a copy of the operator token).
FEDMART_KEY_ENCRYPTION_KEY (32 bytes, hex or base64): store those secrets wrapped with
AES-256-GCM; --migrate-only with it set wraps secrets stored unwrapped.
--cluster (needs --database): one of several coordinators on that PostgreSQL, each
federation led by the holder of its lease (README "PostgreSQL: several coordinators"):
partners connecting here for a federation another one leads are redirected to it, and
rounds start only at the leader. --advertise-url (required with --cluster): the http(s)
origin partners reach this coordinator at. --coordinator-id names this one in the lease
table (default <hostname>-<pid>).

Example:
  fedmart coordinator --port 7300 --data-dir ./.fedmart`;

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('coordinator', argv, { port: { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' }, 'rotate-operator-token': { type: 'boolean' }, 'ping-timeout': { type: 'string' }, 'log-level': { type: 'string' }, database: { type: 'string' }, 'migrate-only': { type: 'boolean' }, cluster: { type: 'boolean' }, 'coordinator-id': { type: 'string' }, 'advertise-url': { type: 'string' } });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const port = intFlag('coordinator', values, 'port', 7300, 0, 65535);
  const level = (values['log-level'] as string | undefined) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new FedmartError('CONFIG_ERROR', `coordinator: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  const dataDir = path.resolve((values['data-dir'] as string | undefined) ?? '.fedmart');
  const url = databaseUrl(values.database as string | undefined);
  const cluster = clusterFlags({ cluster: values.cluster === true, coordinatorId: values['coordinator-id'] as string | undefined, advertiseUrl: values['advertise-url'] as string | undefined, url });
  const migrated = await coordinatorDatabaseStep({ url, migrateOnly: values['migrate-only'] === true, dataDir, out: (line) => process.stdout.write(line + '\n') });
  if (migrated !== null) return migrated;
  const coord = await startCoordinator({ ...(url !== null ? { databaseUrl: url } : {}), ...(cluster !== null ? { cluster } : {}), port, host: (values.host as string | undefined) ?? '127.0.0.1', dataDir, log: progress, logger: createLogger(level as LogLevel), rotateOperatorToken: values['rotate-operator-token'] === true, pingTimeoutMs: intFlag('coordinator', values, 'ping-timeout', 20, 5, 3600) * 1000 });
  if (coord.interruptedRounds.length) progress(`marked ${coord.interruptedRounds.length} interrupted round(s) failed; the last committed models stay current`);
  process.stdout.write(`fedmart coordinator listening on ${coord.url}\n  database: ${url !== null ? `${redactUrl(url)} (PostgreSQL)` : `${path.join(dataDir, 'fedmart.db')} (SQLite)`}\n${cluster !== null ? `  cluster: coordinator ${cluster.coordinatorId}, advertised at ${cluster.advertiseUrl}\n` : ''}  data dir: ${dataDir}\n  operator token: ${path.join(dataDir, 'operator.token')}\n  health: ${coord.url}/healthz\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  progress('shutting down…');
  await coord.close();
  return 0;
}
