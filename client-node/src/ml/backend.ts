/**
 * The one place that chooses the TensorFlow.js backend for this process.
 *
 * Order of preference: `@tensorflow/tfjs-node` (native TensorFlow, an
 * optional dependency that may not install) → `@tensorflow/tfjs-backend-wasm`
 * (XNNPACK compiled to WebAssembly, SIMD when the runtime has it) → the pure
 * JavaScript `@tensorflow/tfjs-backend-cpu`. The choice is made once and
 * cached: tensors live on a backend, so switching mid-run would silently copy
 * every tensor between memory spaces.
 *
 * Ops come from `@tensorflow/tfjs-core` rather than the `@tensorflow/tfjs`
 * umbrella, which also loads -converter, -data and -webgl. But the Node
 * (CommonJS) build of tfjs-core registers no gradient functions; only the
 * bundles of tfjs-layers and of the umbrella do. So we load tfjs-layers for
 * that side effect (≈150 ms) and fall back to the umbrella (≈300 ms),
 * measured on a 2-core box: core alone ≈150 ms, core + umbrella ≈450 ms.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { FedmartError } from '@fedmart/shared/errors';

/** Backends fedmart can run on, fastest first. */
export const BACKEND_NAMES = ['node', 'wasm', 'cpu'] as const;
/** A backend fedmart can run on. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What {@link initBackend} chose, and why. */
export interface BackendInfo {
  /** The live backend. */
  name: BackendName;
  /** Human-readable detail: capabilities (wasm SIMD/threads) and why faster backends were skipped. */
  detail: string;
}

/** Environment variable that forces a backend (`node`, `wasm` or `cpu`). */
export const BACKEND_ENV_VAR = 'FEDMART_BACKEND';

// A variable, not a literal, so TypeScript does not try to resolve the
// optional package's types when it is not installed.
const TFJS_NODE_PACKAGE = '@tensorflow/tfjs-node';
const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';
const CPU_PACKAGE = '@tensorflow/tfjs-backend-cpu';
const GRADIENTS_PACKAGES = ['@tensorflow/tfjs-layers', '@tensorflow/tfjs'];

let pending: Promise<BackendInfo> | undefined;
let live: BackendInfo | undefined;

function errorText(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' ? 'package not installed' : err.message.split('\n')[0];
  return String(err);
}

/** tfjs logs its own warnings on a failed init; we report the reason ourselves in `detail`. */
async function activate(tfName: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(tfName);
    if (ok) await tf.ready();
    return ok && tf.getBackend() === tfName;
  } catch {
    return false;
  }
}

/** Load a bundle that registers tfjs-core's gradient functions (needed by `tf.variableGrads`). */
async function registerGradients(): Promise<void> {
  const failures: string[] = [];
  for (const pkg of GRADIENTS_PACKAGES) {
    try {
      await import(pkg);
      return;
    } catch (err) {
      failures.push(`${pkg}: ${errorText(err)}`);
    }
  }
  throw new FedmartError('UNAVAILABLE', `cannot register TensorFlow.js gradients (${failures.join('; ')}); reinstall dependencies with npm ci`);
}

/**
 * Emscripten's Node glue (inside the wasm backend) installs process-wide
 * `uncaughtException`/`unhandledRejection` listeners that just rethrow, which
 * makes any later crash print the whole minified wasm loader. Remove the
 * listeners it added so Node's default reporting stays intact.
 */
async function withoutEmscriptenListeners<T>(fn: () => Promise<T>): Promise<T> {
  const emitter: NodeJS.EventEmitter = process;
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((e) => new Set(emitter.listeners(e)));
  try {
    return await fn();
  } finally {
    events.forEach((e, i) => {
      for (const listener of emitter.listeners(e)) if (!before[i].has(listener)) emitter.removeListener(e, listener as (...args: unknown[]) => void);
    });
  }
}

async function tryNode(): Promise<string> {
  await import(TFJS_NODE_PACKAGE); // registers the 'tensorflow' backend with tfjs-core
  if (!(await activate('tensorflow'))) throw new Error('tfjs-node loaded but the "tensorflow" backend failed to initialise');
  return 'native TensorFlow via @tensorflow/tfjs-node';
}

async function tryWasm(): Promise<string> {
  const wasm = await import(WASM_PACKAGE);
  // Point the loader at the package's own dist folder explicitly, so it still
  // finds the .wasm binaries when this module is bundled or run from elsewhere.
  const distDir = dirname(createRequire(import.meta.url).resolve(WASM_PACKAGE));
  if (!existsSync(join(distDir, 'tfjs-backend-wasm.wasm'))) throw new Error(`tfjs-backend-wasm.wasm not found in ${distDir}`);
  try {
    wasm.setWasmPaths(distDir + sep);
  } catch {
    // Throws only if the wasm backend was already initialised: its path is set.
  }
  if (!(await withoutEmscriptenListeners(() => activate('wasm')))) throw new Error('the wasm backend failed to initialise (see the tfjs warning above)');
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  const threads = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  return `WebAssembly (XNNPACK), SIMD ${simd ? 'on' : 'off'}, threads ${threads ? `on (${wasm.getThreadsCount()})` : 'off'}`;
}

async function tryCpu(): Promise<string> {
  await import(CPU_PACKAGE);
  if (!(await activate('cpu'))) throw new Error('the cpu backend failed to initialise');
  return 'plain JavaScript (slowest)';
}

const ATTEMPTS: Record<BackendName, () => Promise<string>> = { node: tryNode, wasm: tryWasm, cpu: tryCpu };

function parseForced(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new FedmartError('CONFIG_ERROR', `${BACKEND_ENV_VAR} must be one of ${BACKEND_NAMES.join(', ')}; got "${value}". Unset it to pick the fastest available backend.`);
}

async function choose(preferred: BackendName | undefined): Promise<BackendInfo> {
  const forced = parseForced(process.env[BACKEND_ENV_VAR]);
  const start = forced ?? preferred ?? 'node';
  const why = forced ? `forced by ${BACKEND_ENV_VAR}=${forced}` : preferred ? `preferred ${preferred}` : '';
  await registerGradients();
  const skipped: string[] = [];
  for (const name of BACKEND_NAMES.slice(BACKEND_NAMES.indexOf(start))) {
    try {
      const capability = await ATTEMPTS[name]();
      const parts = [capability];
      if (why) parts.push(why);
      if (skipped.length) parts.push(`fell back: ${skipped.join('; ')}`);
      return { name, detail: parts.join('; ') };
    } catch (err) {
      skipped.push(`${name} unavailable (${errorText(err)})`);
    }
  }
  throw new FedmartError('UNAVAILABLE', `no TensorFlow.js backend could be initialised: ${skipped.join('; ')}. Reinstall dependencies (npm ci) so that @tensorflow/tfjs-backend-cpu is present.`);
}

/**
 * Choose and initialise the TensorFlow.js backend (once per process).
 *
 * The first call decides; later calls return the same result whatever they
 * ask for. `FEDMART_BACKEND` (if set) overrides `preferred`. When the
 * requested backend is unavailable the next one in node → wasm → cpu order
 * is used and `detail` says why.
 *
 * @param preferred - backend to try first (default: `node`, i.e. fastest available)
 * @returns the live backend and a detail line (wasm: SIMD/threads availability)
 * @throws FedmartError `CONFIG_ERROR` if `FEDMART_BACKEND` is not node|wasm|cpu
 * @throws FedmartError `UNAVAILABLE` if no backend at all can start
 * @example
 * const { name, detail } = await initBackend(); // { name: 'wasm', detail: 'WebAssembly (XNNPACK), SIMD on, threads off; …' }
 */
export function initBackend(preferred?: BackendName): Promise<BackendInfo> {
  if (preferred !== undefined && !(BACKEND_NAMES as readonly string[]).includes(preferred)) {
    throw new RangeError(`initBackend: preferred must be one of ${BACKEND_NAMES.join(', ')}, got ${String(preferred)}`);
  }
  if (!pending) {
    pending = choose(preferred).then(
      (info) => {
        live = info;
        return info;
      },
      (err: unknown) => {
        pending = undefined; // let a later call retry after the operator fixes the cause
        throw err;
      },
    );
  }
  return pending;
}

/**
 * @returns the live backend's name, or `null` before {@link initBackend} has resolved
 */
export function backendName(): BackendName | null {
  return live?.name ?? null;
}
