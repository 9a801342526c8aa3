/**
 * A synchronous, multi-threaded batch of X25519 multiplications for the PSI
 * party (`PsiParty`'s `multiplyBatch` option, `shared/src/psi/ecdh-psi.ts`).
 *
 * DH-based PSI costs one X25519 multiplication per id and per blinding, and
 * every multiplication is independent, so a party spreads a batch over the
 * cores of its own machine: the calling thread takes one share and
 * `threads − 1` worker threads the others. The party's API stays
 * synchronous: the inputs and outputs live in SharedArrayBuffers and the
 * caller blocks on `Atomics.wait` until every worker has stored its share.
 * Each worker runs exactly the code of `x25519Multiply` (node:crypto,
 * OpenSSL X25519 on a JWK-imported u-coordinate); the key is handed to the
 * workers as a KeyObject (cloned within this process, never serialised to
 * bytes outside it). A share that fails in a worker is recomputed in the
 * calling thread, so the error a caller sees is the same FedmartError as
 * single-threaded.
 */
import { Worker } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { PSI_ELEMENT_BYTES, x25519MultiplyAll } from '@fedmart/shared/psi/ecdh-psi';

// Plain JS (an eval worker needs no TypeScript loader). Status words: 0 running, 1 done, 2 failed.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, diffieHellman } = require('node:crypto');
parentPort.on('message', ({ key, input, output, status, from, to }) => {
  const inp = new Uint8Array(input);
  const out = new Uint8Array(output);
  const st = new Int32Array(status);
  let state = 1;
  try {
    for (let i = from; i < to; i++) {
      const x = Buffer.from(inp.buffer, inp.byteOffset + i * 32, 32).toString('base64url');
      out.set(diffieHellman({ privateKey: key, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' }) }), i * 32);
    }
  } catch {
    state = 2;
  }
  Atomics.store(st, 0, state);
  Atomics.notify(st, 0);
});
`;

/** A pool of worker threads for {@link X25519Pool.multiplyBatch}. */
export class X25519Pool {
  readonly threads: number;
  readonly #workers: Worker[];

  /**
   * @param threads - total threads including the caller's, 1..64 (1: no workers)
   * @throws RangeError on a bad thread count
   */
  constructor(threads: number) {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RangeError(`X25519Pool: threads must be an integer in 1..64, got ${String(threads)}`);
    this.threads = threads;
    this.#workers = Array.from({ length: threads - 1 }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      return w;
    });
  }

  /**
   * key·v for every v, in order: the same values and errors as
   * `x25519MultiplyAll(key, values)`, computed on all threads.
   * @param key - the party's X25519 private key
   * @param values - 32-byte u-coordinates
   * @returns one fresh 32-byte array per value
   * @throws FedmartError CRYPTO_ERROR as x25519Multiply
   */
  multiplyBatch = (key: KeyObject, values: readonly Uint8Array[]): Uint8Array[] => {
    const n = values.length;
    const share = Math.ceil(n / this.threads);
    if (this.#workers.length === 0 || n < 2 * this.threads) return x25519MultiplyAll(key, values);
    const input = new SharedArrayBuffer(n * PSI_ELEMENT_BYTES);
    const output = new SharedArrayBuffer(n * PSI_ELEMENT_BYTES);
    const inp = new Uint8Array(input);
    values.forEach((v, i) => {
      if (!(v instanceof Uint8Array) || v.length !== PSI_ELEMENT_BYTES) throw new TypeError(`X25519Pool: values[${i}] must be a ${PSI_ELEMENT_BYTES}-byte Uint8Array`);
      inp.set(v, i * PSI_ELEMENT_BYTES);
    });
    const jobs = this.#workers.map((worker, w) => {
      const from = (w + 1) * share;
      const to = Math.min(n, from + share);
      const status = new Int32Array(new SharedArrayBuffer(4));
      if (from < to) worker.postMessage({ key, input, output, status: status.buffer, from, to });
      else status[0] = 1;
      return { status, from, to };
    });
    // Our own share, in this thread, while the workers run theirs.
    const mine = x25519MultiplyAll(key, values.slice(0, Math.min(share, n)));
    const out = new Uint8Array(output);
    const result: Uint8Array[] = mine;
    for (const job of jobs) {
      while (Atomics.load(job.status, 0) === 0) Atomics.wait(job.status, 0, 0);
      if (job.status[0] === 2) {
        result.push(...x25519MultiplyAll(key, values.slice(job.from, job.to))); // throws the caller's error
        continue;
      }
      for (let i = job.from; i < job.to; i++) result.push(out.slice(i * PSI_ELEMENT_BYTES, (i + 1) * PSI_ELEMENT_BYTES));
    }
    return result;
  };

  /** Stop the worker threads. */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
