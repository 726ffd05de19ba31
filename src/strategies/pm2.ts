/**
 * pm2 strategy: put the previous version back through pm2 alone.
 *   restart | reload   restart or reload `pm2_app` (for apps whose release is swapped outside
 *                      pm2, e.g. a package reinstalled in place), then wait until it is online;
 *   start_previous     stop `pm2_app` and start the app `<app_prefix><to>` that runs the previous
 *                      version (restarting it when pm2 knows it but it is not online, else
 *                      starting it from the `ecosystem` file), then wait until it is online.
 * Every action converges when run again: a stopped app stays stopped, a known previous app is
 * restarted rather than started twice.
 */
import { access } from 'node:fs/promises';
import type { Pm2StrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2Client } from '../pm2/client.js';
import { reloadOrRestart, stepScope, versionProblem, waitUntilOnline, within, type StepScope } from './step.js';
import type { RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** Problems that stop any pm2 action: pm2 unreachable, or `app` unknown to it. */
async function appProblems(pm2: Pm2Client, app: string, what: string): Promise<string[]> {
  try {
    const instances = await pm2.describe(app);
    return instances.length === 0 ? [`pm2 does not know ${what} "${app}"`] : [];
  } catch (error) {
    return [`could not ask pm2 about ${what} "${app}": ${errorMessage(error)}`];
  }
}

/** The pm2 strategy for one config entry: one app, restarted, reloaded or replaced by its previous version. */
class Pm2Strategy implements RollbackStrategy {
  readonly type = 'pm2';

  constructor(
    private readonly config: Pm2StrategyConfig,
    private readonly deps: StrategyDeps,
  ) {}

  describe({ to }: Pick<RollbackContext, 'from' | 'to'>): string {
    const { config } = this;
    if (config.action !== 'start_previous') return `pm2: ${config.action} ${config.pm2_app}`;
    const from = config.ecosystem ? ` (from ${config.ecosystem} if pm2 does not know it)` : '';
    return `pm2: stop ${config.pm2_app}, start ${this.previousApp(to)}${from}`;
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    return this.problems(ctx);
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const { config } = this;
    const scope = stepScope(ctx, config.timeout, this.deps.clock);
    if (config.action === 'start_previous') {
      const issue = versionProblem(ctx.to);
      if (issue) throw new RollbackError(issue, 'validate');
    }
    const found = await within(scope, 'check', 'checking the pm2 apps', () => this.problems(ctx));
    if (found.length > 0) throw new RollbackError(`cannot roll back with pm2: ${found.join('; ')}`, 'check');

    if (config.action === 'start_previous') return this.startPrevious(ctx, scope);
    await reloadOrRestart(this.deps.pm2, config.pm2_app, config.action, scope);
  }

  /** The pm2 app that runs version `to`. */
  private previousApp(to: string): string {
    return `${this.config.app_prefix ?? ''}${to}`;
  }

  /** Everything that would make `execute` fail before it changes anything. */
  private async problems(ctx: RollbackContext): Promise<string[]> {
    const { config, deps } = this;
    const app = config.pm2_app;
    const found = await appProblems(deps.pm2, app, 'app');
    if (config.action !== 'start_previous') return found;

    const versionIssue = versionProblem(ctx.to);
    if (versionIssue) return [...found, versionIssue];
    const target = this.previousApp(ctx.to);
    if (target === app) {
      return [...found, `start_previous would stop and start the same app "${app}"; set app_prefix so versions run as their own apps`];
    }
    let known: boolean;
    try {
      known = (await deps.pm2.describe(target)).length > 0;
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

  private async startPrevious(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const { pm2 } = this.deps;
    const app = this.config.pm2_app;
    const target = this.previousApp(ctx.to);
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
    } else if (this.config.ecosystem) {
      const ecosystem = this.config.ecosystem;
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
}

export const pm2Strategy: StrategyFactory<Pm2StrategyConfig> = (config, deps) => new Pm2Strategy(config, deps);
