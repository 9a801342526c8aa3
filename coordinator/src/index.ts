export { startCoordinator, COORDINATOR_VERSION, type Coordinator, type CoordinatorOptions } from './server.ts';
export { Orchestrator, type RoundOutcome, type ClientLink } from './orchestrator.ts';
export { Store } from './db/store.ts';
export { TokenAuthority, type Principal } from './auth.ts';
