/** Time for the shell, injected so loops can be driven by tests. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * A signal that aborts (with a TimeoutError) `ms` from now on this clock. Optional: without it,
   * `timeoutSignal` builds one from `sleep`, which is what a test's fake clock wants.
   */
  timeout?(ms: number): AbortSignal;
}

/**
 * A signal that aborts with a TimeoutError `ms` from now on `clock`, unless `until` aborts first
 * (then it never does): a step's time budget, on the injected clock.
 */
export function timeoutSignal(clock: Clock, ms: number, until: AbortSignal): AbortSignal {
  if (clock.timeout) return clock.timeout(ms);
  const controller = new AbortController();
  void clock.sleep(ms, until).then(() => {
    if (!until.aborted) controller.abort(new DOMException('The operation timed out.', 'TimeoutError'));
  });
  return controller.signal;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // Its timer does not keep the process alive.
  timeout: (ms) => AbortSignal.timeout(ms),
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
