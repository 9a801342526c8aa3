/**
 * `fedmart` command-line entry. Every failure is printed as one clear line
 * (`fedmart: <message>`) with a non-zero exit — never a bare stack trace
 * (set FEDMART_DEBUG=1 to see one).
 */
import { FedmartError, toFedmartError } from '@fedmart/shared/errors';

const USAGE = `fedmart — federated learning for e-commerce partners

Usage: fedmart <command> [flags]     (fedmart <command> --help for details)

Commands:
  demo          run a real federation on the UCI Bank Marketing data, then keep serving
                  e.g. fedmart demo
  coordinator   start the coordinator (REST + Socket.IO, SQLite under --data-dir)
                  e.g. fedmart coordinator --port 7300 --data-dir ./.fedmart
  federation    operator commands: create a federation, enroll partners, run rounds, show
                  e.g. fedmart federation enroll --federation f_123 --partner brand-a
  schedule      schedules of rounds: now, cron (time zone), every, until converged; pause/resume/cancel
                  e.g. fedmart schedule create --federation f_123 --kind cron --cron "0 2 * * *" --timezone Europe/Paris
  schema        infer the agreed data schema from a CSV
                  e.g. fedmart schema infer --csv sample.csv --label y --out schema.json
  partner       run a partner node over local data; "partner consent" reads the terms and consents
                  e.g. fedmart partner --coordinator http://127.0.0.1:7300 --token $TOKEN --data my.csv
                  e.g. fedmart partner consent --coordinator http://127.0.0.1:7300 --token $TOKEN --show
  simulate      federated vs local-only vs centralized on your CSV, in one process
                  e.g. fedmart simulate --csv bank.csv --sep ';' --label y --partition-by job --json
                  vertical (same customers, different columns; PSI + CKKS LR or split NN):
                  e.g. fedmart simulate --mode vertical --csv bank.csv --sep ';' --label y --parties "age,balance|job,education" --json
  segments      customer segments by federated k-means, beside centralized k-means from the same start
                  e.g. fedmart segments --csv bank.csv --sep ';' --label y --drop duration --k 5 --partition-by job --json
  predict       score rows with a published model (file or federation/version), with --explain
                  e.g. fedmart predict --model bank-model.json --csv customers.csv --explain --json
  bench         speed figures beside a baseline from the same run: aggregate, secagg, he, psi, text, recommendation, scale, all
                  e.g. fedmart bench secagg --clients 50 --params 100000 --dropout 0.2 --json
  scenario      scenario modules: recommendation, dynamic pricing, federated text classification (fedmart scenario --help)
                  e.g. fedmart scenario recommendation simulate --csv movielens.csv --user userId --item movieId --time timestamp --item-features genres --json
                  e.g. fedmart scenario pricing simulate --csv oj.csv --log-quantity logmove --price price --product brand --controls deal,feat --fixed-effects store --partners 6 --json
                  e.g. fedmart scenario text simulate --csv reviews.jsonl --text text --label label --partners 4 --dirichlet 0.5 --json
  price         price a SKU within guardrails from a published pricing model
                  e.g. fedmart price --model f_abc/latest --coordinator http://platform:7300 --product 5 --cost 0.02 --current-price 0.035 --json
  datasets      fetch a real data set into a cache (R packages) and convert it: movielens, scotch, orangejuice, cheese
                  e.g. fedmart datasets fetch movielens
  service       customer-service triage with published text models (intent, sentiment, escalation)
                  e.g. fedmart service classify --model f_abc/latest --text "where is my parcel" --json
  content       advertising-law check of product copy (rules with sources, evasion-robust)
                  e.g. fedmart content check --text "全网最佳，根治失眠" --market cn --json
  recommend     top-k items for one of a brand's users from a published recommendation model
                  e.g. fedmart recommend --model out/model.json --data out/partner-1.csv --user 15 --k 10 --json
  model         model release (candidate → approved → published → retired) and portable export (TF.js layers format)
                  e.g. fedmart model export --federation f_123 --out ./bank-model
  audit         verify the coordinator's Merkle audit log (signed tree heads, consistency with a saved head)
                  e.g. fedmart audit verify --coordinator http://127.0.0.1:7300 --from-head head.json
  privacy       differential-privacy accountant and the privacy ledger report
                  e.g. fedmart privacy epsilon --q 0.01 --sigma 1.1 --steps 1000 --delta 1e-5 --json
`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  simulate: async () => (await import('./simulate.ts')).simulateCommand,
  demo: async () => (await import('./demo.ts')).demoCommand,
  coordinator: async () => (await import('./coordinator.ts')).coordinatorCommand,
  partner: async () => (await import('./partner.ts')).partnerCommand,
  bench: async () => (await import('./bench.ts')).benchCommand,
  federation: async () => (await import('./federation.ts')).federationCommand,
  schedule: async () => (await import('./schedule.ts')).scheduleCommand,
  schema: async () => (await import('./federation.ts')).schemaCommand,
  privacy: async () => (await import('./privacy.ts')).privacyCommand,
  segments: async () => (await import('./segments.ts')).segmentsCommand,
  predict: async () => (await import('./predict.ts')).predictCommand,
  scenario: async () => (await import('./scenario.ts')).scenarioCommand,
  price: async () => (await import('./price.ts')).priceCommand,
  datasets: async () => (await import('./datasets.ts')).datasetsCommand,
  service: async () => (await import('./service.ts')).serviceCommand,
  content: async () => (await import('./service.ts')).contentCommand,
  recommend: async () => (await import('./recommend.ts')).recommendCommand,
  audit: async () => (await import('./audit.ts')).auditCommand,
  model: async () => (await import('./model.ts')).modelCommand,
};

/** The subcommand words after the command (`scenario pricing simulate`: " pricing simulate"), up to the first flag. */
function typedSubcommand(rest: readonly string[]): string {
  const words: string[] = [];
  for (const w of rest.slice(0, 2)) {
    if (!/^[a-z][a-z-]*$/.test(w)) break;
    words.push(w);
  }
  return words.map((w) => ` ${w}`).join('');
}

/**
 * Run the CLI.
 * @param argv - arguments after the program name
 * @returns the process exit code
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 1;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write('fedmart 0.1.0\n');
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) {
    process.stderr.write(`fedmart: unknown command "${command}"; commands are: ${Object.keys(COMMANDS).join(', ')} (fedmart --help)\n`);
    return 2;
  }
  // Results go to stdout; anything libraries print goes to stderr so --json output stays one object.
  console.log = (...args: unknown[]) => process.stderr.write(args.map(String).join(' ') + '\n');
  console.info = console.log;
  try {
    return await (await load())(rest);
  } catch (err) {
    const e = toFedmartError(err);
    // Commands name themselves in their messages ("segments: …", "schedule create: …"): say it once,
    // with the subcommand when the message names one.
    // A message that names no subcommand (a library's "cannot read …") gets the words the user typed.
    const named = new RegExp(`^${command}((?: [a-z][a-z-]*){0,2}): `).exec(e.message);
    const message = named ? e.message.slice(named[0].length) : e.message;
    process.stderr.write(`fedmart ${command}${named?.[1] ?? typedSubcommand(rest)}: ${e.code === 'INTERNAL' ? 'unexpected error: ' : ''}${message}\n`);
    if (process.env.FEDMART_DEBUG || e.code === 'INTERNAL') process.stderr.write(`${(e.cause as Error)?.stack ?? e.stack}\n`);
    return e instanceof FedmartError && e.code === 'CONFIG_ERROR' ? 2 : 1;
  }
}
