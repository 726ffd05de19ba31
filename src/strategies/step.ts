/**
 * Step plumbing shared by the strategies: the version check, a timeout-and-abort scope for one
 * step, and waiting for pm2 to report an app online.
 */
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { timeoutSignal, type Clock } from '../clock.js';

/**
 * The second line of defence: versions become directory names, pm2 app names and program
 * arguments, so a strategy checks them again with the one rule (core/versions.ts), which refuses
 * a leading `-` (an option to the program) as well as `.`/`..` (a path outside the releases dir).
 */
export { versionProblem } from '../core/versions.js';

/** How often pm2 is asked whether an app is online yet. */
const ONLINE_POLL_MS = 200;

/** The time and cancellation budget of one strategy step. */
export interface StepScope {
  /** Aborts when the caller cancels or the step's timeout passes. */
  readonly signal: AbortSignal;
  readonly caller: AbortSignal;
  readonly timeoutMs: number;
  readonly progress: (message: string) => void;
  /** The injected clock: polling and deadlines inside the step read it. */
  readonly clock: Clock;
}

/** A step's scope: cancelled with `ctx.signal`, or when `timeoutMs` has passed on `clock`. */
export function stepScope(ctx: { signal: AbortSignal; progress(message: string): void }, timeoutMs: number, clock: Clock): StepScope {
  return {
    signal: AbortSignal.any([ctx.signal, timeoutSignal(clock, timeoutMs, ctx.signal)]),
    caller: ctx.signal,
    timeoutMs,
    progress: (message) => ctx.progress(message),
    clock,
  };
}

function stoppedError(scope: StepScope, step: string, what: string, detail?: string): RollbackError {
  const why = scope.caller.aborted ? 'was cancelled' : `timed out after ${scope.timeoutMs} ms`;
  return new RollbackError(`${what} ${why}${detail ? ` (${detail})` : ''}`, step, {
    cause: scope.caller.aborted ? scope.caller.reason : scope.signal.reason,
  });
}

/**
 * Runs one call within the scope: a RollbackError naming `what` when it fails, is cancelled or
 * runs out of time. A call that is given up on cannot be cancelled in pm2; its late outcome
 * is reported as progress.
 */
export async function within<T>(scope: StepScope, step: string, what: string, run: () => Promise<T>): Promise<T> {
  if (scope.signal.aborted) throw stoppedError(scope, step, what);
  const work = run();
  let onAbort = (): void => undefined;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => {
      work.then(
        () => scope.progress(`${what} finished after the step gave up on it`),
        (error: unknown) => scope.progress(`${what} failed after the step gave up on it: ${errorMessage(error)}`),
      );
      reject(stoppedError(scope, step, what));
    };
    scope.signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stopped]);
  } catch (error) {
    if (error instanceof RollbackError) throw error;
    throw new RollbackError(`${what} failed: ${errorMessage(error)}`, step, { cause: error });
  } finally {
    scope.signal.removeEventListener('abort', onAbort);
  }
}

function summarize(instances: readonly Pm2ProcessInfo[]): string {
  if (instances.length === 0) return 'pm2 lists no instances';
  return instances.map((i) => `instance ${i.pmId} ${i.status}`).join(', ');
}

/**
 * Waits until pm2 lists `app` with every instance online, seen twice in a row with the same pids
 * (a process that dies at once is back in `launching` or has a new pid by the second look).
 * Fails at once when pm2 has given up on an instance (`errored`: it kept exiting).
 * `listened`: a cluster-mode reload has just replaced every instance, which pm2 does only once
 * each new worker listens (or its listen_timeout ran out): a first look with every instance
 * online is proof enough, and saves the second look's 200 ms on every cluster rollback.
 */
export async function waitUntilOnline(
  pm2: Pm2Client,
  app: string,
  scope: StepScope,
  step: string,
  listened = false,
): Promise<Pm2ProcessInfo[]> {
  let previous = '';
  let last: Pm2ProcessInfo[] = [];
  let looks = 0;
  for (;;) {
    if (scope.signal.aborted) throw stoppedError(scope, step, `waiting for ${app} to be online`, summarize(last));
    last = await within(scope, step, `pm2 describe ${app}`, () => pm2.describe(app));
    looks += 1;
    const errored = last.filter((i) => i.status === 'errored');
    if (errored.length > 0) {
      throw new RollbackError(
        `${app} did not come up: pm2 stopped restarting ${errored.map((i) => `instance ${i.pmId}`).join(', ')} ` +
          `(status errored: it kept exiting; see its logs)`,
        step,
      );
    }
    if (last.length > 0 && last.every((i) => i.status === 'online')) {
      const pids = last.map((i) => `${i.pmId}:${i.pid}`).join(',');
      if (pids === previous || (listened && looks === 1 && last.every((i) => i.execMode === 'cluster_mode'))) {
        scope.progress(`${app}: ${last.length}/${last.length} instance${last.length === 1 ? '' : 's'} online`);
        return last;
      }
      previous = pids;
    } else {
      previous = '';
    }
    await scope.clock.sleep(ONLINE_POLL_MS, scope.signal);
  }
}

/**
 * `pm2 reload` or `pm2 restart` of `app`, done when every instance is online again.
 * Instances pm2 is already starting are let finish first (see letLaunchesFinish).
 *
 * A cluster-mode reload is done once every new worker listens: pm2 then stops the process it
 * replaced, which a hung one survives until pm2's kill_timeout, and pm2 answers only after that.
 * The new workers take every new connection meanwhile, so verification need not wait for the
 * answer; the reload finishes in the background (the pm2 client holds pm2's reload lock until
 * then, so a next reload waits its turn). "Online" alone is not enough: a new worker is online
 * a moment before it listens, and until then the old release still answers. Without the
 * daemon's word on each instance (fork mode, or a daemon that keeps its log off the bus) the
 * step waits for pm2's answer.
 */
export async function reloadOrRestart(
  pm2: Pm2Client,
  app: string,
  mode: 'reload' | 'restart',
  scope: StepScope,
): Promise<Pm2ProcessInfo[]> {
  const instances = await letLaunchesFinish(pm2, app, scope, mode);
  scope.progress(`pm2 ${mode} ${app}`);
  if (mode === 'restart') {
    await within(scope, mode, `pm2 restart ${app}`, () => pm2.restart(app));
    return waitUntilOnline(pm2, app, scope, 'wait-online');
  }
  const waiting = new Set(instances.filter((i) => i.execMode === 'cluster_mode').map((i) => i.pmId));
  const cluster = instances.length > 0 && waiting.size === instances.length;
  let replacedAll = (): void => undefined;
  const replaced = new Promise<'replaced'>((resolve) => (replacedAll = () => resolve('replaced')));
  const reloading = pm2.reload(
    app,
    cluster
      ? {
          onReplacing: (pmId) => {
            waiting.delete(pmId);
            if (waiting.size === 0) replacedAll();
          },
        }
      : {},
  );
  const first = await within(scope, mode, `pm2 reload ${app}`, () =>
    Promise.race([reloading.then(() => 'answered' as const), replaced]),
  );
  if (first === 'replaced') {
    // pm2 signals the replaced worker right after saying so; the worker leaves the cluster's
    // round robin (and closes its idle keep-alive connections) once it has handled that signal.
    await scope.clock.sleep(REPLACED_SETTLE_MS, scope.signal);
    scope.progress(`${app}: every new worker listens; pm2 is stopping the replaced ones`);
    reloading.then(
      () => scope.progress(`pm2 reload ${app} finished: the replaced workers have exited`),
      (error: unknown) => scope.progress(`pm2 reload ${app} failed after every new worker listened: ${errorMessage(error)}`),
    );
  }
  return waitUntilOnline(pm2, app, scope, 'wait-online', true);
}

/**
 * How long a cluster reload lets the replaced workers handle pm2's stop signal before the step
 * ends (see reloadOrRestart): a few ms normally, longer on a busy box.
 */
const REPLACED_SETTLE_MS = 100;

/** How long a reload waits for instances pm2 is already starting, and how often it looks. */
const LAUNCH_WAIT_MS = 5000;
const LAUNCH_POLL_MS = 25;

/**
 * When pm2 is already starting an instance (it restarts a crashed one at once), lets that start
 * finish before reloading. After a symlink swap the restarted process most likely runs the
 * target already; a reload issued while it is still launching kills it and starts another, so
 * users wait for two start-ups instead of one (measured on a crash loop under pm2 cluster mode:
 * the first v1 answer came ~0.4 s later). Bounded: after LAUNCH_WAIT_MS the reload goes ahead.
 * Returns pm2's last description of the app.
 */
async function letLaunchesFinish(pm2: Pm2Client, app: string, scope: StepScope, mode: string): Promise<Pm2ProcessInfo[]> {
  const deadline = scope.clock.now() + LAUNCH_WAIT_MS;
  let told = false;
  for (;;) {
    const instances = await within(scope, mode, `pm2 describe ${app}`, () => pm2.describe(app));
    const launching = instances.filter((i) => i.status === 'launching');
    if (launching.length === 0 || scope.clock.now() >= deadline || scope.signal.aborted) return instances;
    if (!told) {
      scope.progress(`pm2 is starting ${launching.map((i) => `instance ${i.pmId}`).join(', ')} of ${app} already; letting it finish first`);
      told = true;
    }
    await scope.clock.sleep(LAUNCH_POLL_MS, scope.signal);
  }
}
