/**
 * pm2 strategy: put the previous version back through pm2 alone.
 *   restart | reload   restart or reload `pm2_app` (for apps whose release is swapped outside
 *                      pm2, e.g. a package reinstalled in place), then wait until it is online;
 *   start_previous     stop `pm2_app` and start the app `<app_prefix><to>` that runs the previous
 *                      version (restarting it when pm2 knows it but it is not online, else
 *                      starting it from the `ecosystem` file), then wait until it is online.
 * Every action converges when run again: a stopped app stays stopped, a known previous app is
 * restarted rather than started twice.
 *
 * This file also holds the step plumbing the releases strategy shares (a timeout-and-abort scope,
 * waiting for pm2 to report an app online, the version check), since both end in pm2 calls.
 */
import { access } from 'node:fs/promises';
import type { Pm2StrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { systemClock } from '../shell/clock.js';
import type { RollbackContext, RollbackStrategy, StrategyFactory } from './types.js';

/**
 * Versions become directory names and pm2 app names: letters, digits, `.`, `_`, `+`, `-` only,
 * and never `.` or `..`, so a version can never point outside the releases directory.
 */
const SAFE_VERSION = /^[A-Za-z0-9._+-]{1,128}$/;

/** The problem with `version` as a rollback target, or null when it is usable. */
export function versionProblem(version: string): string | null {
  if (!SAFE_VERSION.test(version) || version === '.' || version === '..') {
    return `version "${version}" is not allowed: use 1-128 letters, digits, ".", "_", "+" or "-" (and not "." or "..")`;
  }
  return null;
}

/** How often pm2 is asked whether an app is online yet. */
const ONLINE_POLL_MS = 200;

/** The time and cancellation budget of one strategy step. */
export interface StepScope {
  /** Aborts when the caller cancels or the step's timeout passes. */
  readonly signal: AbortSignal;
  readonly caller: AbortSignal;
  readonly timeoutMs: number;
  readonly progress: (message: string) => void;
}

export function stepScope(ctx: RollbackContext, timeoutMs: number): StepScope {
  return {
    signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]),
    caller: ctx.signal,
    timeoutMs,
    progress: (message) => ctx.progress(message),
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
 */
export async function waitUntilOnline(
  pm2: Pm2Client,
  app: string,
  scope: StepScope,
  step: string,
): Promise<Pm2ProcessInfo[]> {
  let previous = '';
  let last: Pm2ProcessInfo[] = [];
  for (;;) {
    if (scope.signal.aborted) throw stoppedError(scope, step, `waiting for ${app} to be online`, summarize(last));
    last = await within(scope, step, `pm2 describe ${app}`, () => pm2.describe(app));
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
      if (pids === previous) {
        scope.progress(`${app}: ${last.length}/${last.length} instance${last.length === 1 ? '' : 's'} online`);
        return last;
      }
      previous = pids;
    } else {
      previous = '';
    }
    await systemClock.sleep(ONLINE_POLL_MS, scope.signal);
  }
}

/** Problems that stop any pm2 action: pm2 unreachable, or `app` unknown to it. */
async function appProblems(pm2: Pm2Client, app: string, what: string): Promise<string[]> {
  try {
    const instances = await pm2.describe(app);
    return instances.length === 0 ? [`pm2 does not know ${what} "${app}"`] : [];
  } catch (error) {
    return [`could not ask pm2 about ${what} "${app}": ${errorMessage(error)}`];
  }
}

export const pm2Strategy: StrategyFactory<Pm2StrategyConfig> = (config, { pm2 }) => {
  const app = config.pm2_app;
  const previousApp = (to: string) => `${config.app_prefix ?? ''}${to}`;

  /** Everything that would make `execute` fail before it changes anything. */
  async function problems(ctx: RollbackContext): Promise<string[]> {
    const found = await appProblems(pm2, app, 'app');
    if (config.action !== 'start_previous') return found;

    const versionIssue = versionProblem(ctx.to);
    if (versionIssue) return [...found, versionIssue];
    const target = previousApp(ctx.to);
    if (target === app) {
      return [...found, `start_previous would stop and start the same app "${app}"; set app_prefix so versions run as their own apps`];
    }
    let known: boolean;
    try {
      known = (await pm2.describe(target)).length > 0;
    } catch (error) {
      return [...found, `could not ask pm2 about app "${target}": ${errorMessage(error)}`];
    }
    if (known) return found;
    if (!config.ecosystem) {
      return [
        ...found,
        `pm2 does not know app "${target}" and no ecosystem file is configured to define it; ` +
          `set ecosystem, or start "${target}" once so pm2 knows it`,
      ];
    }
    try {
      await access(config.ecosystem);
    } catch (error) {
      return [...found, `ecosystem file ${config.ecosystem} cannot be read: ${errorMessage(error)}`];
    }
    return found;
  }

  async function startPrevious(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const target = previousApp(ctx.to);
    const current = await within(scope, 'stop', `pm2 describe ${app}`, () => pm2.describe(app));
    if (current.every((i) => i.status === 'stopped')) {
      ctx.progress(`${app} is already stopped`);
    } else {
      ctx.progress(`pm2 stop ${app}`);
      await within(scope, 'stop', `pm2 stop ${app}`, () => pm2.stop(app));
    }

    const instances = await within(scope, 'start', `pm2 describe ${target}`, () => pm2.describe(target));
    if (instances.length > 0 && instances.every((i) => i.status === 'online')) {
      // Already running (a resumed plan): restarting it would only cost downtime.
      ctx.progress(`${target} is already online`);
    } else if (instances.length > 0) {
      ctx.progress(`pm2 restart ${target}`);
      await within(scope, 'start', `pm2 restart ${target}`, () => pm2.restart(target));
    } else if (config.ecosystem) {
      const ecosystem = config.ecosystem;
      ctx.progress(`pm2 start ${ecosystem} --only ${target}`);
      await within(scope, 'start', `pm2 start ${ecosystem} --only ${target}`, () =>
        pm2.startEcosystem(ecosystem, target),
      );
    } else {
      throw new RollbackError(
        `cannot start "${target}": pm2 does not know it and no ecosystem file is configured to define it`,
        'start',
      );
    }
    await waitUntilOnline(pm2, target, scope, 'wait-online');
  }

  return {
    type: 'pm2',

    describe({ to }) {
      if (config.action !== 'start_previous') return `pm2: ${config.action} ${app}`;
      const from = config.ecosystem ? ` (from ${config.ecosystem} if pm2 does not know it)` : '';
      return `pm2: stop ${app}, start ${previousApp(to)}${from}`;
    },

    async check(ctx) {
      if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
      return problems(ctx);
    },

    async execute(ctx) {
      const scope = stepScope(ctx, config.timeout);
      if (config.action === 'start_previous') {
        const issue = versionProblem(ctx.to);
        if (issue) throw new RollbackError(issue, 'validate');
      }
      const found = await within(scope, 'check', 'checking the pm2 apps', () => problems(ctx));
      if (found.length > 0) throw new RollbackError(`cannot roll back with pm2: ${found.join('; ')}`, 'check');

      if (config.action === 'start_previous') return startPrevious(ctx, scope);
      const action = config.action;
      ctx.progress(`pm2 ${action} ${app}`);
      await within(scope, action, `pm2 ${action} ${app}`, () => (action === 'reload' ? pm2.reload(app) : pm2.restart(app)));
      await waitUntilOnline(pm2, app, scope, 'wait-online');
    },
  };
};
