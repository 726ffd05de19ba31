/** The system clock; the Clock interface and deadlines on any clock are in ../clock.ts. */
import type { Clock } from '../clock.js';

export { clockTimeout, timeoutSignal, type Clock } from '../clock.js';

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
