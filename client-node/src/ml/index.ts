/** The client's ML engine: backend choice, local trainer, defaults. */
export { BACKEND_ENV_VAR, BACKEND_NAMES, backendName, initBackend, type BackendInfo, type BackendName } from './backend.ts';
export { DEFAULT_LOCAL_TRAIN, DEFAULT_MODEL_HIDDEN, DEFAULT_OPTIMIZER, type OptimizerKind } from './defaults.ts';
export { evaluate, predict, PREDICT_BATCH_ROWS, trainLocal, type EvaluateResult, type TrainLocalArgs, type TrainLocalResult } from './trainer.ts';
