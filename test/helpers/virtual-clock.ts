/**
 * A clock on virtual time for unit tests: `sleep` sets a timer, and whenever the process has
 * nothing else to do (the next setImmediate), time jumps to the earliest timer and fires it. Code
 * whose every wait is on this clock runs its seconds of polling and time budgets in no real time,
 * and a test asserts how much time passed by `now()`, never by the wall clock. Not for code that
 * also waits on real I/O: time would jump while the I/O is under way.
 */
import type { Clock } from '../../src/shell/clock.js';

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
}

export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];
  #scheduled = false;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fire: () => done() };
      const done = () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      signal?.addEventListener('abort', done, { once: true });
      this.#timers.push(timer);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const next = this.#timers.reduce<Timer | undefined>((a, t) => (a === undefined || t.at < a.at || (t.at === a.at && t.seq < a.seq) ? t : a), undefined);
      if (next === undefined) return;
      this.#now = Math.max(this.#now, next.at);
      next.fire();
      if (this.#timers.length > 0) this.#schedule();
    });
  }
}
