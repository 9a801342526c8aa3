// Worker-thread entry of the local trainer (worker-trainer.ts): registers tsx
// so the TypeScript sources run directly, then loads the worker body.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
