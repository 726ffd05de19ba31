/**
 * Time as the guard's code sees it: the injected Clock, and deadlines measured on it. The system
 * clock lives in shell/clock.ts; strategies and the core never import it (lint checks), so a test
 * drives all of their time with a fake clock.
 */

/** Time for the shell, injected so loops can be driven by tests. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * A signal that aborts (with a TimeoutError) `ms` from now on this clock. Optional: without it,
   * a deadline is built from `sleep`, which is what a test's fake clock wants.
   */
  timeout?(ms: number): AbortSignal;
}

/**
 * A deadline in the clock's time (what AbortSignal.timeout is in the system's): `signal` aborts
 * with a TimeoutError once `ms` have passed on `clock`. Call clear() when the work ends, so no
 * timer outlives it (a sleep on the system clock, unlike AbortSignal.timeout, keeps the process
 * alive).
 */
export function clockTimeout(clock: Clock, ms: number): { signal: AbortSignal; clear(): void } {
  const deadline = new AbortController();
  const cleared = new AbortController();
  void clock.sleep(ms, cleared.signal).then(() => {
    if (!cleared.signal.aborted) deadline.abort(new DOMException(`timed out after ${ms}ms`, 'TimeoutError'));
  });
  return { signal: deadline.signal, clear: () => cleared.abort() };
}

/**
 * A signal that aborts with a TimeoutError `ms` from now on `clock`, unless `until` aborts first
 * (then it never does, and its timer is gone): a step's time budget, on the injected clock.
 */
export function timeoutSignal(clock: Clock, ms: number, until: AbortSignal): AbortSignal {
  if (clock.timeout) return clock.timeout(ms);
  const deadline = clockTimeout(clock, ms);
  if (until.aborted) deadline.clear();
  else until.addEventListener('abort', () => deadline.clear(), { once: true });
  return deadline.signal;
}
