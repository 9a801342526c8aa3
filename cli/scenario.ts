/**
 * `fedmart scenario <name> <verb> …`: one entry for every scenario module;
 * each scenario's own command parses the rest.
 */
import { FedmartError } from '@fedmart/shared/errors';

type Command = (argv: string[]) => Promise<number>;

/** Scenario name → its command (called with the arguments after `scenario`, name first). */
const SCENARIOS: Record<string, { about: string; load: () => Promise<Command> }> = {
  recommendation: { about: 'cross-brand recommendation (Wide & Deep; user embeddings stay at each brand)', load: async () => (await import('./recommendation.ts')).scenarioCommand },
  pricing: { about: 'dynamic pricing from a jointly estimated demand model (exact federated least squares)', load: async () => (await import('./pricing.ts')).scenarioCommand },
  text: { about: 'federated text classification (fastText-style), for service triage and copy checks', load: async () => (await import('./text.ts')).scenarioCommand },
};

const usage = () => `fedmart scenario <name> <verb> [flags]

Scenarios:
${Object.entries(SCENARIOS).map(([name, s]) => `  ${name.padEnd(16)}${s.about}`).join('\n')}

e.g. fedmart scenario pricing simulate --help
`;

/**
 * Run `fedmart scenario`.
 * @param argv - arguments after `scenario`
 * @returns the exit code
 */
export async function scenarioCommand(argv: string[]): Promise<number> {
  const name = argv[0];
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const s = SCENARIOS[name];
  if (!s) throw new FedmartError('CONFIG_ERROR', `scenario: unknown scenario "${name}"; scenarios are: ${Object.keys(SCENARIOS).join(', ')} (fedmart scenario --help)`);
  return (await s.load())(argv);
}
