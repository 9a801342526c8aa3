/**
 * A new user's mistakes with `fedmart`: bad flags, missing and malformed files, a wrong token, an
 * unreachable coordinator. Each must end with ONE line on stderr, "fedmart <subcommand>: <problem>;
 * <what to do>", a non-zero exit and no stack trace. Real processes, a real coordinator for the
 * wrong-token and unknown-federation cases.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCoordinator, type Coordinator } from '@fedmart/coordinator';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fedmart.js');
let dir = '';
let coord: Coordinator;

function fedmart(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 120_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stderr });
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'fedmart-cli-errors-'));
  await writeFile(path.join(dir, 'ok.csv'), 'a,b,y\n1,2,yes\n3,4,no\n5,6,yes\n');
  await writeFile(path.join(dir, 'ragged.csv'), 'a,b,y\n1,2,yes\n3,4\n');
  await writeFile(path.join(dir, 'empty.csv'), '');
  await writeFile(path.join(dir, 'header-only.csv'), 'a,b,y\n');
  await writeFile(path.join(dir, 'bad.json'), '{not json');
  coord = await startCoordinator({ port: 0, dataDir: path.join(dir, 'coord'), log: () => {} });
});
afterAll(async () => {
  await coord?.close();
  await rm(dir, { recursive: true, force: true });
});

it('each mistake gets one line naming the problem and what to do, a non-zero exit, no stack trace', async () => {
  const url = coord.url;
  const op = coord.operatorToken;
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const forged = `${b64({ alg: 'EdDSA' })}.${b64({ sub: 'x', role: 'operator' })}.c2ln`;
  const forgedPartner = `${b64({ alg: 'EdDSA' })}.${b64({ sub: 'brand-a', role: 'partner', fed: 'f_1' })}.c2ln`;
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /^fedmart: unknown command "frobnicate"; commands are: .*\(fedmart --help\)$/],
    [['demo', '--rounds', 'abc'], /^fedmart demo: --rounds must be an integer from 1 to 1000, got "abc"$/],
    [['demo', '--bogus'], /^fedmart demo: Unknown option '--bogus'; run "fedmart demo --help" for the flags$/],
    [['coordinator', '--port', '99999'], /^fedmart coordinator: --port must be an integer from 0 to 65535, got "99999"$/],
    [['coordinator', '--port', '0', '--data-dir', 'ok.csv'], /^fedmart coordinator: cannot create data dir .*ok\.csv: .*; pass --data-dir with a writable directory$/],
    // Node's recursive mkdir never returns under /proc (ENOENT on an existing parent): these hung before.
    [['coordinator', '--port', '0', '--data-dir', '/proc/fedmart-nope'], /^fedmart coordinator: cannot create data dir \/proc\/fedmart-nope: ENOENT.*; pass --data-dir with a writable directory$/],
    [['demo', '--exit', '--data-dir', '/proc/fedmart-nope'], /^fedmart demo: cannot create data dir \/proc\/fedmart-nope: ENOENT.*; pass --data-dir with a writable directory$/],
    [['schema', 'infer', '--csv', 'ok.csv'], /^fedmart schema infer: missing --label/],
    [['schema', 'infer', '--csv', 'missing.csv', '--label', 'y'], /^fedmart schema infer: cannot read missing\.csv: no such file; check the --csv path$/],
    [['schema', 'infer', '--csv', 'ragged.csv', '--label', 'y'], /^fedmart schema infer: ragged\.csv: line 3 has 2 fields, the header has 3; check --sep/],
    [['schema', 'infer', '--csv', 'empty.csv', '--label', 'y'], /^fedmart schema infer: cannot read empty\.csv: the file is empty; expected a header line and data rows$/],
    [['schema', 'infer', '--csv', 'header-only.csv', '--label', 'a'], /^fedmart schema infer: no data rows in header-only\.csv/],
    [['schema', 'infer', '--csv', 'ok.csv', '--label', 'nolabel'], /^fedmart schema infer: column "nolabel" not found in ok\.csv; available columns: a, b, y; pass --label/],
    [['predict', '--model', 'missing.json', '--csv', 'ok.csv'], /^fedmart predict: cannot read missing\.json: no such file; check the --model path$/],
    [['predict', '--model', 'bad.json', '--csv', 'ok.csv'], /^fedmart predict: cannot read model file bad\.json: not valid JSON .*; pass a file written by "fedmart simulate --save-model"$/],
    [['privacy', 'epsilon', '--q', '2', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], /^fedmart privacy epsilon: --q must be a sampling rate in \(0, 1\], got "2"$/],
    [['federation', 'list', '--coordinator', 'http://127.0.0.1:1', '--token', op], /^fedmart federation list: cannot reach the coordinator at http:\/\/127\.0\.0\.1:1: .*; check the URL and that it is running$/],
    [['federation', 'list', '--coordinator', 'notaurl', '--token', op], /^fedmart federation list: --coordinator must be an http\(s\) URL/],
    [['federation', 'list', '--coordinator', url, '--token', forged], /^fedmart federation list: token signature is invalid .*; ask this coordinator's operator for a token$/],
    [['federation', 'round', '--coordinator', url, '--token', op], /^fedmart federation: unknown subcommand "round"; choose one of: create, enroll, rounds, show, watch, list, archive, delete$/],
    [['partner', '--coordinator', url, '--token', 'abc', '--data', 'ok.csv'], /^fedmart partner: the token is not a JWT .*; pass the enrollment token exactly as issued$/],
    [['partner', '--coordinator', url, '--token', op, '--data', 'ok.csv'], /^fedmart partner: the token names no federation; pass the enrollment token exactly as issued$/],
    [['partner', '--coordinator', url, '--token', forgedPartner, '--data', 'ok.csv'], /^fedmart partner: token signature is invalid .*; ask this coordinator's operator for a token$/],
    [['partner', '--coordinator', `${url},coord2:7300`, '--token', op, '--data', 'ok.csv'], /^fedmart partner: --coordinator must be an http\(s\) URL such as http:\/\/127\.0\.0\.1:7300 \(several separated by commas\), got "coord2:7300"$/],
    [['partner', '--coordinator', url, '--token', forgedPartner, '--data', 'ok.csv', '--max-epsilon', 'lots'], /^fedmart partner: --max-epsilon must be a positive number, got "lots"$/],
    [['audit', 'verify', '--coordinator', url, '--token', op, '--from-head', 'missing.json'], /^fedmart audit verify: cannot read --from-head missing\.json: no such file; check the --from-head path$/],
    [['audit', 'verify', '--coordinator', url, '--token', op, '--from-head', 'bad.json'], /^fedmart audit verify: --from-head bad\.json is not JSON \(.*\); pass a file written by fedmart audit head or a partner's audit-head\.json$/],
  ];
  // A few at a time: each is a real process on a shared machine.
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4);
    const results = await Promise.all(batch.map(([args]) => fedmart(args)));
    results.forEach((r, k) => {
      const [args, want] = batch[k]!;
      const label = `fedmart ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, label).not.toBe(0);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, label).toHaveLength(1);
      expect(lines[0], label).toMatch(want);
      expect(r.stderr, label).not.toMatch(/\n\s+at .+:\d+:\d+/);
    });
  }
}, 600_000);
