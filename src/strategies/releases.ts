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
import type { ReleasesStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { reloadOrRestart, stepScope, versionProblem, within } from './step.js';
import type { RollbackContext, StrategyFactory } from './types.js';

/** The symlink is a plain name inside `dir`; anything else could replace a file elsewhere. */
const PLAIN_NAME = /^[A-Za-z0-9._-]+$/;

export const releasesStrategy: StrategyFactory<ReleasesStrategyConfig> = (config, { pm2, clock }) => {
  const dir = path.resolve(config.dir);
  const link = path.join(dir, config.current);
  const app = config.pm2_app;
  /** Relative, so the deploy directory can be moved or mounted elsewhere. */
  const linkTarget = (version: string) => `releases/${version}`;

  function nameProblems(to: string): string[] {
    const found: string[] = [];
    if (!PLAIN_NAME.test(config.current) || config.current === '.' || config.current === '..') {
      found.push(`current "${config.current}" must be a plain file name inside ${dir}`);
    }
    const versionIssue = versionProblem(to);
    if (versionIssue) found.push(versionIssue);
    return found;
  }

  /** Everything that would make `execute` fail or have no effect; read-only. */
  async function problems(to: string): Promise<string[]> {
    const found = nameProblems(to);
    if (found.length > 0) return found;

    const release = path.join(dir, linkTarget(to));
    try {
      if (!(await stat(release)).isDirectory()) found.push(`release ${release} is not a directory`);
    } catch (error) {
      found.push(
        isMissing(error)
          ? `release ${release} does not exist (releases are kept in ${path.join(dir, 'releases')})`
          : `release ${release} cannot be read: ${errorMessage(error)}`,
      );
    }

    try {
      if (!(await lstat(link)).isSymbolicLink()) {
        found.push(`${link} is not a symlink; the releases strategy only swaps a symlink, never a real file or directory`);
      }
    } catch (error) {
      found.push(
        isMissing(error)
          ? `${link} does not exist; expected a symlink to releases/<version>`
          : `${link} cannot be read: ${errorMessage(error)}`,
      );
    }

    let instances: Pm2ProcessInfo[];
    try {
      instances = await pm2.describe(app);
    } catch (error) {
      found.push(`could not ask pm2 about app "${app}": ${errorMessage(error)}`);
      return found;
    }
    if (instances.length === 0) {
      found.push(`pm2 does not know app "${app}"`);
      return found;
    }
    // The symlink swap only changes what runs if pm2 loads the app through the symlink.
    const throughLink = await linkPrefixes();
    const outside = instances
      .map((i) => i.execPath)
      .filter((execPath): execPath is string => !!execPath && !throughLink.some((prefix) => execPath.startsWith(prefix)));
    if (outside.length > 0) {
      found.push(
        `pm2 app "${app}" runs ${outside[0]}, not a path through ${link}/; ` +
          `a symlink swap would not change what it runs (start it with its script under ${link}/)`,
      );
    }
    return found;
  }

  /** `<dir>/<current>/`, also via `dir`'s real path, as pm2 may have been given either. */
  async function linkPrefixes(): Promise<string[]> {
    const prefixes = [`${link}${path.sep}`];
    try {
      const real = path.join(await realpath(dir), config.current) + path.sep;
      if (real !== prefixes[0]) prefixes.push(real);
    } catch (error) {
      // dir was readable a moment ago (the release check); if it is not now, the direct
      // prefix is the only one we can offer, and the release problem is already listed.
      if (!isMissing(error)) throw error;
    }
    return prefixes;
  }

  /** Points the symlink at `releases/<to>` with one rename, which POSIX makes atomic. */
  async function swap(ctx: RollbackContext, to: string): Promise<void> {
    const previous = await readlink(link);
    if (path.resolve(dir, previous) === path.join(dir, linkTarget(to))) {
      ctx.progress(`${link} already points at ${linkTarget(to)}; no swap needed`);
      return;
    }
    // Same directory, so the rename stays on one filesystem; a unique name, so two guards (or
    // a leftover from a crash) never collide.
    const temp = path.join(dir, `.${config.current}.rollback-${process.pid}-${randomBytes(6).toString('hex')}`);
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

  return {
    type: 'releases',

    describe({ to }) {
      return `releases: ${link} -> ${linkTarget(to)}, pm2 ${config.restart_mode} ${app}`;
    },

    async checkReadiness(ctx) {
      if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
      return problems(ctx.to);
    },

    async execute(ctx) {
      const invalid = nameProblems(ctx.to);
      if (invalid.length > 0) throw new RollbackError(`refusing to roll back: ${invalid.join('; ')}`, 'validate');
      const scope = stepScope(ctx, config.timeout, clock);

      const found = await within(scope, 'check', `checking ${link} and pm2 app ${app}`, () => problems(ctx.to));
      if (found.length > 0) throw new RollbackError(`cannot roll back to ${ctx.to}: ${found.join('; ')}`, 'check');

      await within(scope, 'swap', `pointing ${link} at ${linkTarget(ctx.to)}`, () => swap(ctx, ctx.to));

      // Reload even when no swap was needed: a resumed rollback may have swapped the link and
      // crashed before the app was reloaded.
      await reloadOrRestart(pm2, app, config.restart_mode, scope);
    },
  };
};

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
