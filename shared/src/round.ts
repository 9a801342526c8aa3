/**
 * A horizontal round as a pure state machine: `transition(state, event)`
 * makes every move and returns the effects the orchestrator must carry out.
 * Socket handlers and timers only produce events (the shape of Flower's
 * staged workflows, where a stage out of order aborts).
 *
 * ```
 * scheduled → selecting → training → aggregating → evaluating → committed
 * any phase → failed(reason)
 * ```
 * Pure: no I/O, no timers, no clocks.
 */

/** Every phase a round can be in. */
export const ROUND_PHASES = ['scheduled', 'selecting', 'training', 'aggregating', 'evaluating', 'committed', 'failed'] as const;
export type RoundPhase = (typeof ROUND_PHASES)[number];

/** Phases a round never leaves. */
export const TERMINAL_PHASES: ReadonlySet<RoundPhase> = new Set(['committed', 'failed']);

/** Phases that carry a timeout. */
export type TimedPhase = 'selecting' | 'training' | 'evaluating';

/** State of one round. */
export interface RoundState {
  roundId: string;
  round: number;
  phase: RoundPhase;
  minClients: number;
  /** Clients asked to train. */
  selected: string[];
  /** Clients whose training result was accepted. */
  trained: string[];
  /** Clients asked to evaluate. */
  evaluators: string[];
  /** Clients whose evaluation arrived. */
  evaluated: string[];
  /** Clients that failed, with why (training or evaluation). */
  failures: Record<string, string>;
  /** Set when phase is 'failed'. */
  reason?: string;
}

/** Inputs to the machine. */
export type RoundEvent =
  | { type: 'select'; available: readonly string[]; sampleFraction: number; rand: () => number }
  | { type: 'train-result'; nodeId: string }
  | { type: 'train-failed'; nodeId: string; reason: string }
  | { type: 'client-left'; nodeId: string }
  | { type: 'timeout'; phase: TimedPhase }
  | { type: 'aggregated'; ok: true; evaluators: readonly string[] }
  | { type: 'aggregated'; ok: false; reason: string }
  | { type: 'evaluate-result'; nodeId: string }
  | { type: 'evaluate-failed'; nodeId: string; reason: string }
  | { type: 'abort'; reason: string };

/** What the orchestrator must do after a transition. */
export type RoundEffect =
  | { type: 'send-train'; nodeIds: string[] }
  | { type: 'aggregate' }
  | { type: 'send-evaluate'; nodeIds: string[] }
  | { type: 'commit' }
  | { type: 'fail'; reason: string }
  | { type: 'start-timer'; phase: TimedPhase };

/** Result of a transition. `rejected` explains an event that changed nothing. */
export interface TransitionResult {
  state: RoundState;
  effects: RoundEffect[];
  rejected?: string;
}

/**
 * A fresh round in phase `scheduled`.
 * @param roundId - unique id
 * @param round - 1-based number within the federation
 * @param minClients - fewest clients the round may train and aggregate with
 */
export function createRound(roundId: string, round: number, minClients: number): RoundState {
  if (!Number.isInteger(minClients) || minClients < 1) throw new RangeError(`minClients must be an integer ≥ 1, got ${minClients}`);
  return { roundId, round, phase: 'scheduled', minClients, selected: [], trained: [], evaluators: [], evaluated: [], failures: {} };
}

function fail(state: RoundState, reason: string): TransitionResult {
  return { state: { ...state, phase: 'failed', reason }, effects: [{ type: 'fail', reason }] };
}

function reject(state: RoundState, why: string): TransitionResult {
  return { state, effects: [], rejected: why };
}

/**
 * Sample `max(minClients, ceil(fraction·n))` of the available clients
 * (Fisher–Yates with the caller's non-secret `rand`), sorted for stable logs.
 */
export function sampleClients(available: readonly string[], fraction: number, minClients: number, rand: () => number): string[] {
  const pool = [...new Set(available)];
  const k = Math.min(pool.length, Math.max(minClients, Math.ceil(fraction * pool.length)));
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k).sort();
}

function afterTrainingProgress(state: RoundState): TransitionResult {
  const pending = state.selected.filter((n) => !state.trained.includes(n) && !(n in state.failures));
  const possible = state.trained.length + pending.length;
  if (possible < state.minClients) {
    return fail(state, `too few clients: ${state.trained.length} of ${state.selected.length} selected reported and ${pending.length} still pending, minimum is ${state.minClients}`);
  }
  if (pending.length === 0) {
    return { state: { ...state, phase: 'aggregating' }, effects: [{ type: 'aggregate' }] };
  }
  return { state, effects: [] };
}

function afterEvaluationProgress(state: RoundState): TransitionResult {
  const pending = state.evaluators.filter((n) => !state.evaluated.includes(n) && !(n in state.failures));
  if (pending.length === 0) return { state: { ...state, phase: 'committed' }, effects: [{ type: 'commit' }] };
  return { state, effects: [] };
}

/**
 * Make one move. Never throws on a well-typed event: an event that does not
 * fit the phase is returned as `rejected` with the state unchanged.
 * @param state - current state (not mutated)
 * @param event - what happened
 * @returns next state, effects to perform, or a rejection reason
 */
export function transition(state: RoundState, event: RoundEvent): TransitionResult {
  if (TERMINAL_PHASES.has(state.phase)) return reject(state, `round ${state.round} is already ${state.phase}`);
  if (event.type === 'abort') return fail(state, event.reason);

  switch (state.phase) {
    case 'scheduled':
      if (event.type === 'select') {
        if (event.available.length < state.minClients) {
          // Wait in 'selecting' for more clients until the selecting timeout.
          return { state: { ...state, phase: 'selecting' }, effects: [{ type: 'start-timer', phase: 'selecting' }] };
        }
        return select(state, event);
      }
      break;
    case 'selecting':
      if (event.type === 'select') {
        if (event.available.length < state.minClients) return { state, effects: [] };
        return select(state, event);
      }
      if (event.type === 'timeout' && event.phase === 'selecting') {
        return fail(state, `too few clients: timed out waiting for ${state.minClients} live clients`);
      }
      if (event.type === 'client-left') return { state, effects: [] };
      break;
    case 'training':
      if (event.type === 'train-result') {
        if (!state.selected.includes(event.nodeId)) return reject(state, `node ${event.nodeId} was not selected for round ${state.round}`);
        if (state.trained.includes(event.nodeId)) return reject(state, `node ${event.nodeId} already sent its update for round ${state.round}`);
        if (event.nodeId in state.failures) return reject(state, `node ${event.nodeId} was already dropped from round ${state.round}: ${state.failures[event.nodeId]}`);
        return afterTrainingProgress({ ...state, trained: [...state.trained, event.nodeId] });
      }
      if (event.type === 'train-failed' || event.type === 'client-left') {
        if (!state.selected.includes(event.nodeId) || state.trained.includes(event.nodeId) || event.nodeId in state.failures) {
          return { state, effects: [] };
        }
        const reason = event.type === 'client-left' ? 'disconnected during training' : event.reason;
        return afterTrainingProgress({ ...state, failures: { ...state.failures, [event.nodeId]: reason } });
      }
      if (event.type === 'timeout' && event.phase === 'training') {
        const failures = { ...state.failures };
        for (const n of state.selected) if (!state.trained.includes(n) && !(n in failures)) failures[n] = 'timed out during training';
        const next = { ...state, failures };
        if (state.trained.length < state.minClients) {
          return fail(next, `too few clients: ${state.trained.length} of ${state.selected.length} selected reported before the training timeout, minimum is ${state.minClients}`);
        }
        return { state: { ...next, phase: 'aggregating' }, effects: [{ type: 'aggregate' }] };
      }
      break;
    case 'aggregating':
      if (event.type === 'aggregated') {
        if (!event.ok) return fail(state, event.reason);
        const evaluators = [...event.evaluators];
        if (evaluators.length === 0) return { state: { ...state, phase: 'committed' }, effects: [{ type: 'commit' }] };
        return {
          state: { ...state, phase: 'evaluating', evaluators },
          effects: [{ type: 'send-evaluate', nodeIds: evaluators }, { type: 'start-timer', phase: 'evaluating' }],
        };
      }
      if (event.type === 'client-left' || event.type === 'train-failed') return { state, effects: [] };
      break;
    case 'evaluating':
      if (event.type === 'evaluate-result') {
        if (!state.evaluators.includes(event.nodeId)) return reject(state, `node ${event.nodeId} was not asked to evaluate round ${state.round}`);
        if (state.evaluated.includes(event.nodeId)) return reject(state, `node ${event.nodeId} already sent its evaluation for round ${state.round}`);
        return afterEvaluationProgress({ ...state, evaluated: [...state.evaluated, event.nodeId] });
      }
      if (event.type === 'evaluate-failed' || event.type === 'client-left') {
        if (!state.evaluators.includes(event.nodeId) || state.evaluated.includes(event.nodeId) || event.nodeId in state.failures) return { state, effects: [] };
        const reason = event.type === 'client-left' ? 'disconnected during evaluation' : event.reason;
        return afterEvaluationProgress({ ...state, failures: { ...state.failures, [event.nodeId]: reason } });
      }
      if (event.type === 'timeout' && event.phase === 'evaluating') {
        // Evaluation is best effort: the aggregated model is committed with the metrics that arrived.
        return { state: { ...state, phase: 'committed' }, effects: [{ type: 'commit' }] };
      }
      break;
  }
  return reject(state, `event "${event.type}" is not accepted while round ${state.round} is ${state.phase}`);
}

function select(state: RoundState, event: Extract<RoundEvent, { type: 'select' }>): TransitionResult {
  const selected = sampleClients(event.available, event.sampleFraction, state.minClients, event.rand);
  return {
    state: { ...state, phase: 'training', selected },
    effects: [{ type: 'send-train', nodeIds: selected }, { type: 'start-timer', phase: 'training' }],
  };
}
