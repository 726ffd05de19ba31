/** Time for the shell, injected so loops can be driven by tests. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/**
 * A deadline in the clock's time (what AbortSignal.timeout is in the system's): `signal` aborts
 * with a TimeoutError once `ms` have passed on `clock`. Call clear() when the work ends, so no
 * timer outlives it (a system-clock sleep, unlike AbortSignal.timeout, keeps the process alive).
 */
export function clockTimeout(clock: Clock, ms: number): { signal: AbortSignal; clear(): void } {
  const deadline = new AbortController();
  const cleared = new AbortController();
  void clock.sleep(ms, cleared.signal).then(() => {
    if (!cleared.signal.aborted) deadline.abort(new DOMException(`timed out after ${ms}ms`, 'TimeoutError'));
  });
  return { signal: deadline.signal, clear: () => cleared.abort() };
}
