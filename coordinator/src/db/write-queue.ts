/**
 * Ordered writes of an event-driven caller (the round engine) on an {@link AsyncStore}: socket
 * messages and timers move a round synchronously in memory, and each move's row (phase,
 * participant) must reach the database in the order the moves happened. On PostgreSQL two
 * un-awaited statements may take two pool connections and land in either order, so writes go
 * through one queue: each starts when the previous one settled. An idle queue starts the write at
 * once (SQLite's store then completes it synchronously, as before the store was async).
 *
 * A failed fire-and-forget write is reported to `onError` and does not stop the queue; callers that
 * need the result (a commit) await {@link WriteQueue.run}.
 */
export class WriteQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(private readonly onError: (err: unknown) => void) {}

  /**
   * Run `fn` after every write queued before it.
   * @returns its result (rejects with its error)
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#pending === 0 ? fn() : this.#tail.then(fn, fn);
    this.#pending++;
    const settled = p.then(() => undefined, () => undefined).finally(() => this.#pending--);
    this.#tail = settled;
    return p;
  }

  /** Queue a write nobody awaits: its error goes to `onError`. */
  fire(fn: () => Promise<unknown>): void {
    this.run(fn).catch(this.onError);
  }

  /** Settles when every write queued so far has. */
  drain(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
