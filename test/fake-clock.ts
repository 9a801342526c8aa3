import type { ScheduleClock } from '@fedmart/coordinator/scheduler';

/** A manual clock: timers fire only when the test advances it. */
export class FakeClock implements ScheduleClock {
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Move to `t`, firing every timer due by then in time order. */
  advanceTo(t: number): void {
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.t = Math.max(this.t, due[1].at);
      this.timers.delete(due[0]);
      due[1].fn();
    }
    this.t = t;
  }
}
