/**
 * A horizontal round as a pure state machine: `transition(state, event)`
 * makes every move and returns the effects the orchestrator must carry out.
 * Socket handlers and timers only produce events (the shape of Flower's
 * staged workflows, where a stage out of order aborts).
 *
 * ```
 * scheduled → selecting → training → aggregating → evaluating → committed
 * with secure aggregation (Bonawitz et al. 2017, rounds 0–3), training is
 * replaced by its stages:
 *   selecting → advertise-keys → share-keys → masked-input → consistency-check → unmasking → aggregating → …
 * any phase → failed(reason)
 * ```
 * Each secure-aggregation stage has its own timeout; a client that misses
 * one is dropped from the round (the cryptography recovers from it). The
 * orchestrator closes a stage with the SecAgg server core and reports the
 * clients it keeps with `stage-closed`; a `stage-closed` for any stage other
 * than the current one aborts the round.
 *
 * Pure: no I/O, no timers, no clocks.
 */

/** Every phase a round can be in. */
export const ROUND_PHASES = ['scheduled', 'selecting', 'training', 'advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmasking', 'aggregating', 'evaluating', 'committed', 'failed'] as const;
export type RoundPhase = (typeof ROUND_PHASES)[number];

/** Phases a round never leaves. */
export const TERMINAL_PHASES: ReadonlySet<RoundPhase> = new Set(['committed', 'failed']);

/** The secure-aggregation stages, in order (they replace 'training'). */
export const SECAGG_PHASES = ['advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmasking'] as const;
/** One secure-aggregation stage of a round. */
export type SecAggPhase = (typeof SECAGG_PHASES)[number];

/** Phases that carry a timeout. */
export type TimedPhase = 'selecting' | 'training' | 'evaluating' | SecAggPhase;

/** Progress of the current secure-aggregation stage. */
export interface StageProgress {
  /** Clients asked at this stage. */
  members: string[];
  /** Clients whose reply to this stage was accepted. */
  replied: string[];
}

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
  /** True when training runs as secure-aggregation stages. */
  secureAggregation: boolean;
  /** The current secure-aggregation stage's progress (secure aggregation only). */
  stage?: StageProgress;
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
  | { type: 'abort'; reason: string }
  /** A client's reply to a secure-aggregation stage was accepted by the SecAgg server core. */
  | { type: 'stage-reply'; stage: SecAggPhase; nodeId: string }
  /** The orchestrator closed `stage`; `next` are the clients the next stage goes to (for 'unmasking': ignored). */
  | { type: 'stage-closed'; stage: SecAggPhase; next: readonly string[] };

/** What the orchestrator must do after a transition. */
export type RoundEffect =
  | { type: 'send-train'; nodeIds: string[] }
  | { type: 'aggregate' }
  | { type: 'send-evaluate'; nodeIds: string[] }
  | { type: 'commit' }
  | { type: 'fail'; reason: string }
  | { type: 'start-timer'; phase: TimedPhase }
  /** Close the current secure-aggregation stage with the SecAgg server core. */
  | { type: 'close-stage'; stage: SecAggPhase }
  /** Send the requests of `stage` (computed when the previous stage closed). */
  | { type: 'send-stage'; stage: SecAggPhase; nodeIds: string[] };

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
export function createRound(roundId: string, round: number, minClients: number, opts: { secureAggregation?: boolean } = {}): RoundState {
  if (!Number.isInteger(minClients) || minClients < 1) throw new RangeError(`minClients must be an integer ≥ 1, got ${minClients}`);
  return { roundId, round, phase: 'scheduled', minClients, selected: [], trained: [], evaluators: [], evaluated: [], failures: {}, secureAggregation: opts.secureAggregation === true };
}

/** True when `phase` is a secure-aggregation stage. */
export function isSecAggPhase(phase: RoundPhase): phase is SecAggPhase {
  return (SECAGG_PHASES as readonly string[]).includes(phase);
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
    case 'advertise-keys':
    case 'share-keys':
    case 'masked-input':
    case 'consistency-check':
    case 'unmasking':
      return stageTransition(state, state.phase, event);
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
  if (state.secureAggregation) {
    // The train instruction goes out with the stage-0 request: clients advertise keys at once and train meanwhile.
    return {
      state: { ...state, phase: 'advertise-keys', selected, stage: { members: selected, replied: [] } },
      effects: [{ type: 'send-train', nodeIds: selected }, { type: 'start-timer', phase: 'advertise-keys' }],
    };
  }
  return {
    state: { ...state, phase: 'training', selected },
    effects: [{ type: 'send-train', nodeIds: selected }, { type: 'start-timer', phase: 'training' }],
  };
}

const NEXT_STAGE: Readonly<Record<SecAggPhase, SecAggPhase | null>> = { 'advertise-keys': 'share-keys', 'share-keys': 'masked-input', 'masked-input': 'consistency-check', 'consistency-check': 'unmasking', unmasking: null };

/**
 * Fewest clients a stage may close with. Up to masked input this is the
 * round's minimum (they are the contributors); the consistency check and
 * unmasking need only enough signatures and shares, which the SecAgg server
 * core checks against its thresholds.
 */
function stageMinimum(state: RoundState, stage: SecAggPhase): number {
  return stage === 'unmasking' || stage === 'consistency-check' ? 1 : state.minClients;
}

function afterStageProgress(state: RoundState, stage: SecAggPhase): TransitionResult {
  const p = state.stage!;
  const pending = p.members.filter((n) => !p.replied.includes(n) && !(n in state.failures));
  const min = stageMinimum(state, stage);
  if (p.replied.length + pending.length < min) {
    return fail(state, `too few clients at secure-aggregation stage ${stage}: ${p.replied.length} of ${p.members.length} replied and ${pending.length} still pending, minimum is ${min}`);
  }
  if (pending.length === 0) return { state, effects: [{ type: 'close-stage', stage }] };
  return { state, effects: [] };
}

function stageTransition(state: RoundState, stage: SecAggPhase, event: RoundEvent): TransitionResult {
  const p = state.stage ?? { members: [], replied: [] };
  switch (event.type) {
    case 'stage-reply': {
      if (event.stage !== stage) return reject(state, `a ${event.stage} reply arrived while round ${state.round} is at stage ${stage}; it was ignored (late or out of order)`);
      if (!p.members.includes(event.nodeId)) return reject(state, `node ${event.nodeId} is not part of stage ${stage} of round ${state.round}`);
      if (p.replied.includes(event.nodeId)) return reject(state, `node ${event.nodeId} already replied to stage ${stage} of round ${state.round}`);
      if (event.nodeId in state.failures) return reject(state, `node ${event.nodeId} was already dropped from round ${state.round}: ${state.failures[event.nodeId]}`);
      return afterStageProgress({ ...state, stage: { ...p, replied: [...p.replied, event.nodeId] } }, stage);
    }
    case 'client-left':
    case 'train-failed': {
      if (!p.members.includes(event.nodeId) || p.replied.includes(event.nodeId) || event.nodeId in state.failures) return { state, effects: [] };
      const reason = event.type === 'client-left' ? `disconnected at secure-aggregation stage ${stage}` : event.reason;
      return afterStageProgress({ ...state, failures: { ...state.failures, [event.nodeId]: reason } }, stage);
    }
    case 'timeout': {
      if (event.phase !== stage) return reject(state, `a ${event.phase} timeout fired while round ${state.round} is at stage ${stage}`);
      const failures = { ...state.failures };
      for (const n of p.members) if (!p.replied.includes(n) && !(n in failures)) failures[n] = `timed out at secure-aggregation stage ${stage}`;
      const next = { ...state, failures };
      const min = stageMinimum(state, stage);
      if (p.replied.length < min) return fail(next, `too few clients at secure-aggregation stage ${stage}: ${p.replied.length} of ${p.members.length} replied before the timeout, minimum is ${min}`);
      return { state: next, effects: [{ type: 'close-stage', stage }] };
    }
    case 'stage-closed': {
      if (event.stage !== stage) return fail(state, `secure-aggregation stage out of order: asked to close ${event.stage} while the round is at ${stage}; round aborted`);
      // Clients the SecAgg core left out (too few live neighbours) are dropped here.
      const failures = { ...state.failures };
      const nextMembers = [...event.next];
      if (stage !== 'unmasking' && stage !== 'consistency-check') {
        for (const n of p.replied) if (!nextMembers.includes(n) && !(n in failures)) failures[n] = `left out after stage ${stage}: too few live neighbours hold its shares`;
      }
      const trained = stage === 'masked-input' ? p.replied.filter((n) => nextMembers.includes(n)) : state.trained;
      const following = NEXT_STAGE[stage];
      if (following === null) {
        return { state: { ...state, failures, trained, phase: 'aggregating', stage: { members: p.members, replied: p.replied } }, effects: [{ type: 'aggregate' }] };
      }
      if (nextMembers.length < stageMinimum(state, following)) {
        return fail({ ...state, failures }, `too few clients left for secure-aggregation stage ${following}: ${nextMembers.length}, minimum is ${state.minClients}`);
      }
      return {
        state: { ...state, failures, trained, phase: following, stage: { members: nextMembers, replied: [] } },
        effects: [{ type: 'send-stage', stage: following, nodeIds: nextMembers }, { type: 'start-timer', phase: following }],
      };
    }
    case 'train-result':
      return reject(state, `round ${state.round} uses secure aggregation: plaintext updates are refused; send the masked input when asked`);
    default:
      return reject(state, `event "${event.type}" is not accepted while round ${state.round} is at secure-aggregation stage ${stage}`);
  }
}
