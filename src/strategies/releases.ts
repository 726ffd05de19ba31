/**
 * Releases strategy (Capistrano layout, the fast path): `<dir>/releases/<version>/` holds each
 * release and `<dir>/<current>` is a symlink to the live one. A rollback points the symlink at
 * `releases/<to>` atomically and reloads the pm2 app, whose script path must run through the
 * symlink (e.g. `<dir>/current/server.cjs`).
 *
 * Why a reload picks up the new release (checked against pm2 7): pm2 stores the script path as
 * given, without resolving symlinks (pm_exec_path stays `<dir>/current/server.cjs`), and each
 * new process loads it through Node, which resolves the symlink at that moment. So a reload or
 * restart after the swap runs the new target, in fork and cluster mode alike. An app started
 * with a resolved path (`releases/v2/server.cjs`) would not move; `check` reports that.
 */
import { randomBytes } from 'node:crypto';
import { lstat, open, readlink, realpath, rename, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import type { ReleasesStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { reloadOrRestart, stepScope, versionProblem, within } from './step.js';
import type { RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** The symlink is a plain name inside `dir`; anything else could replace a file elsewhere. */
const PLAIN_NAME = /^[A-Za-z0-9._-]+$/;

/**
 * One configured releases step. `dir`, the link and the app are resolved once, when the strategy
 * is created; every check and swap reads the disk afresh.
 */
class ReleasesStrategy implements RollbackStrategy {
  readonly type = 'releases';
  private readonly dir: string;
  private readonly link: string;
  private readonly app: string;
  private readonly pm2: Pm2Client;
  private readonly clock: Clock;

  constructor(
    private readonly config: ReleasesStrategyConfig,
    { pm2, clock }: StrategyDeps,
  ) {
    this.dir = path.resolve(config.dir);
    this.link = path.join(this.dir, config.current);
    this.app = config.pm2_app;
    this.pm2 = pm2;
    this.clock = clock;
  }

  describe({ to }: Pick<RollbackContext, 'from' | 'to'>): string {
    return `releases: ${this.link} -> ${linkTarget(to)}, pm2 ${this.config.restart_mode} ${this.app}`;
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    return this.problems(ctx.to);
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const invalid = this.nameProblems(ctx.to);
    if (invalid.length > 0) throw new RollbackError(`refusing to roll back: ${invalid.join('; ')}`, 'validate');
    const scope = stepScope(ctx, this.config.timeout, this.clock);

    const found = await within(scope, 'check', `checking ${this.link} and pm2 app ${this.app}`, () => this.problems(ctx.to));
    if (found.length > 0) throw new RollbackError(`cannot roll back to ${ctx.to}: ${found.join('; ')}`, 'check');

    await within(scope, 'swap', `pointing ${this.link} at ${linkTarget(ctx.to)}`, () => this.swap(ctx, ctx.to));

    // Reload even when no swap was needed: a resumed rollback may have swapped the link and
    // crashed before the app was reloaded.
    await reloadOrRestart(this.pm2, this.app, this.config.restart_mode, scope);
  }

  private nameProblems(to: string): string[] {
    const found: string[] = [];
    const { current } = this.config;
    if (!PLAIN_NAME.test(current) || current === '.' || current === '..') {
      found.push(`current "${current}" must be a plain file name inside ${this.dir}`);
    }
    const versionIssue = versionProblem(to);
    if (versionIssue) found.push(versionIssue);
    return found;
  }

  /** Everything that would make `execute` fail or have no effect; read-only. */
  private async problems(to: string): Promise<string[]> {
    const found = this.nameProblems(to);
    if (found.length > 0) return found;
    return [...(await this.releaseProblems(to)), ...(await this.linkProblems()), ...(await this.appProblems())];
  }

  private async releaseProblems(to: string): Promise<string[]> {
    const release = path.join(this.dir, linkTarget(to));
    try {
      return (await stat(release)).isDirectory() ? [] : [`release ${release} is not a directory`];
    } catch (error) {
      return [
        isMissing(error)
          ? `release ${release} does not exist (releases are kept in ${path.join(this.dir, 'releases')})`
          : `release ${release} cannot be read: ${errorMessage(error)}`,
      ];
    }
  }

  private async linkProblems(): Promise<string[]> {
    const { link } = this;
    try {
      return (await lstat(link)).isSymbolicLink()
        ? []
        : [`${link} is not a symlink; the releases strategy only swaps a symlink, never a real file or directory`];
    } catch (error) {
      return [
        isMissing(error)
          ? `${link} does not exist; expected a symlink to releases/<version>`
          : `${link} cannot be read: ${errorMessage(error)}`,
      ];
    }
  }

  /** The app must be known to pm2 and loaded through the link, or a swap changes nothing. */
  private async appProblems(): Promise<string[]> {
    const { app, link } = this;
    let instances: Pm2ProcessInfo[];
    try {
      instances = await this.pm2.describe(app);
    } catch (error) {
      return [`could not ask pm2 about app "${app}": ${errorMessage(error)}`];
    }
    if (instances.length === 0) return [`pm2 does not know app "${app}"`];
    // The symlink swap only changes what runs if pm2 loads the app through the symlink.
    const throughLink = await this.linkPrefixes();
    const outside = instances
      .map((i) => i.execPath)
      .filter((execPath): execPath is string => !!execPath && !throughLink.some((prefix) => execPath.startsWith(prefix)));
    if (outside.length === 0) return [];
    return [
      `pm2 app "${app}" runs ${outside[0]}, not a path through ${link}/; ` +
        `a symlink swap would not change what it runs (start it with its script under ${link}/)`,
    ];
  }

  /** `<dir>/<current>/`, also via `dir`'s real path, as pm2 may have been given either. */
  private async linkPrefixes(): Promise<string[]> {
    const prefixes = [`${this.link}${path.sep}`];
    try {
      const real = path.join(await realpath(this.dir), this.config.current) + path.sep;
      if (real !== prefixes[0]) prefixes.push(real);
    } catch (error) {
      // dir was readable a moment ago (the release check); if it is not now, the direct
      // prefix is the only one we can offer, and the release problem is already listed.
      if (!isMissing(error)) throw error;
    }
    return prefixes;
  }

  /** Points the symlink at `releases/<to>` with one rename, which POSIX makes atomic. */
  private async swap(ctx: RollbackContext, to: string): Promise<void> {
    const { dir, link } = this;
    const previous = await readlink(link);
    if (path.resolve(dir, previous) === path.join(dir, linkTarget(to))) {
      ctx.progress(`${link} already points at ${linkTarget(to)}; no swap needed`);
      return;
    }
    // Same directory, so the rename stays on one filesystem; a unique name, so two guards (or
    // a leftover from a crash) never collide.
    const temp = path.join(dir, `.${this.config.current}.rollback-${process.pid}-${randomBytes(6).toString('hex')}`);
    await symlink(linkTarget(to), temp);
    try {
      await rename(temp, link);
    } catch (error) {
      try {
        await unlink(temp);
      } catch (cleanupError) {
        throw new AggregateError([error, cleanupError], `could not swap ${link}, and ${temp} is left behind`, { cause: cleanupError });
      }
      throw error;
    }
    // Make the rename durable: a power cut must not bring the bad release back.
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    ctx.progress(`${link} -> ${linkTarget(to)} (was ${previous})`);
  }
}

export const releasesStrategy: StrategyFactory<ReleasesStrategyConfig> = (config, deps) => new ReleasesStrategy(config, deps);

/** Relative, so the deploy directory can be moved or mounted elsewhere. */
function linkTarget(version: string): string {
  return `releases/${version}`;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
