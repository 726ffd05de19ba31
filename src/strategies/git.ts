/**
 * Git strategy (the runbook's slow path, 代码回滚): put the working tree back on the previous
 * release's tag, reinstall, rebuild and restart.
 *   1. record `git status --porcelain` and HEAD as progress (what `--force` is about to discard);
 *   2. `git fetch --all --tags` when the tree has a remote (a failed fetch is reported and the
 *      local tags are used: a rollback must not depend on the network if the tag is already here);
 *   3. `git checkout --force refs/tags/<tag_prefix><to>` — the full ref, so a branch that happens
 *      to share the tag's name can never be picked instead; skipped when HEAD is already there
 *      and the tree is clean; HEAD is then checked against the tag's commit;
 *   4. `install` and `build` (argument vectors, `{from}`/`{to}` expanded) run in `dir`;
 *   5. `pm2 restart <pm2_app>` and wait until every instance is online.
 * Idempotent: every step converges — a second checkout of the same tag changes nothing, install
 * and build rebuild the same tree, and a restart of a running app is harmless. Untracked files
 * (build output, node_modules, .env) are left alone, never `git clean`ed; install and build
 * overwrite what they produce.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { GitStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { CommandResult } from './command-runner.js';
import { commandLine, reportOutput, runProgram, type RunProgramOptions } from './command.js';
import { expandArgs } from './placeholders.js';
import { stepScope, versionProblem, waitUntilOnline, within, type StepScope } from './step.js';
import type { RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** A fetch that hangs (unreachable remote) must not use up the whole step. */
const FETCH_TIMEOUT_MS = 120_000;
/** Budget of each read-only git call made by `check`. */
const CHECK_TIMEOUT_MS = 30_000;
/** git must never stop to ask for credentials: there is nobody to answer. */
const NO_PROMPT = { GIT_TERMINAL_PROMPT: '0' };

type Outcome = { ok: true; result: CommandResult } | { ok: false; error: unknown };

async function attempt(work: () => Promise<CommandResult>): Promise<Outcome> {
  try {
    return { ok: true, result: await work() };
  } catch (error) {
    return { ok: false, error };
  }
}

class GitStrategy implements RollbackStrategy {
  readonly type = 'git';
  private readonly dir: string;

  constructor(
    private readonly config: GitStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {
    this.dir = path.resolve(config.dir);
  }

  describe({ from, to }: Pick<RollbackContext, 'from' | 'to'>): string {
    const steps = [`git checkout ${this.tagOf(to)} in ${this.dir}`];
    try {
      for (const { argv } of this.commands({ from, to })) steps.push(commandLine(argv[0] ?? '', argv.slice(1)));
    } catch {
      // An unusable version: describe stays informative; check and execute refuse it.
    }
    if (this.config.pm2_app) steps.push(`pm2 restart ${this.config.pm2_app}`);
    return `git: ${steps.join(', ')}`;
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    return this.problems(ctx);
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const { run, pm2, clock } = this.deps;
    const versionIssue = versionProblem(ctx.to);
    if (versionIssue) throw new RollbackError(`refusing to roll back: ${versionIssue}`, 'validate');
    const programs = this.commands(ctx);
    if ((await run.which('git')) === null) throw new RollbackError('git is not installed (not found on PATH)', 'check');
    const scope = stepScope(ctx, this.config.timeout, clock);

    await this.checkout(ctx, scope);
    for (const { name, argv } of programs) {
      const [program, ...args] = argv;
      if (program === undefined) continue;
      const result = await runProgram(run, scope, name, program, args, { cwd: this.dir });
      reportOutput(scope, result.stdoutTail);
    }

    if (this.config.pm2_app) {
      const app = this.config.pm2_app;
      ctx.progress(`pm2 restart ${app}`);
      await within(scope, 'restart', `pm2 restart ${app}`, () => pm2.restart(app));
      await waitUntilOnline(pm2, app, scope, 'wait-online');
    }
  }

  private tagOf(to: string): string {
    return `${this.config.tag_prefix}${to}`;
  }

  private refOf(to: string): string {
    return `refs/tags/${this.tagOf(to)}`;
  }

  /** `git -C dir <args>` inside the scope. */
  private git(scope: StepScope, step: string, args: readonly string[], options: RunProgramOptions = {}): Promise<CommandResult> {
    return runProgram(this.deps.run, scope, step, 'git', ['-C', this.dir, ...args], { env: NO_PROMPT, ...options });
  }

  /** The commit the tag of `to` points at, or null when there is no such tag in `dir`. */
  private async tagCommit(scope: StepScope, step: string, to: string, announce: boolean): Promise<string | null> {
    const found = await attempt(() =>
      this.git(scope, step, ['rev-parse', '--verify', '--quiet', `${this.refOf(to)}^{commit}`], { announce }),
    );
    if (!found.ok) {
      if (scope.signal.aborted) throw found.error;
      return null; // --quiet: exit 1 and no output is how rev-parse says "no such ref"
    }
    return found.result.stdoutTail[0]?.trim() ?? null;
  }

  private async remotes(scope: StepScope, step: string, announce: boolean): Promise<string[]> {
    const result = await this.git(scope, step, ['remote'], { announce });
    return result.stdoutTail.map((line) => line.trim()).filter(Boolean);
  }

  /** install and build, expanded; throws the `validate` RollbackError for an unusable version. */
  private commands(ctx: Pick<RollbackContext, 'from' | 'to'>): { name: 'install' | 'build'; argv: string[] }[] {
    const list: { name: 'install' | 'build'; argv: string[] }[] = [];
    if (this.config.install) list.push({ name: 'install', argv: expandArgs(this.config.install, ctx) });
    if (this.config.build) list.push({ name: 'build', argv: expandArgs(this.config.build, ctx) });
    return list;
  }

  /** Everything that would make `execute` fail; read-only (it asks remotes, never fetches). */
  private async problems(ctx: RollbackContext): Promise<string[]> {
    const { run, pm2, clock } = this.deps;
    const { config, dir } = this;
    const versionIssue = versionProblem(ctx.to);
    if (versionIssue) return [versionIssue];
    const found: string[] = [];
    let programs: { name: string; argv: string[] }[] = [];
    try {
      programs = this.commands(ctx);
    } catch (error) {
      found.push(errorMessage(error));
    }
    for (const { name, argv } of programs) {
      const [program] = argv;
      if (program === undefined) continue;
      // A relative program path (./scripts/build.sh) is resolved from dir, where it runs.
      if ((await run.which(program.includes('/') ? path.resolve(dir, program) : program)) === null) {
        found.push(`${name} program ${program} is not installed (not found or not executable)`);
      }
    }
    if (config.pm2_app) {
      try {
        if ((await pm2.describe(config.pm2_app)).length === 0) found.push(`pm2 does not know app "${config.pm2_app}"`);
      } catch (error) {
        found.push(`could not ask pm2 about app "${config.pm2_app}": ${errorMessage(error)}`);
      }
    }

    if ((await run.which('git')) === null) return [...found, 'git is not installed (not found on PATH)'];
    try {
      if (!(await stat(dir)).isDirectory()) return [...found, `${dir} is not a directory`];
    } catch (error) {
      return [...found, `${dir} cannot be used: ${errorMessage(error)}`];
    }
    const scope = stepScope(ctx, Math.min(CHECK_TIMEOUT_MS, config.timeout), clock);
    const inside = await attempt(() => this.git(scope, 'check', ['rev-parse', '--is-inside-work-tree'], { announce: false }));
    if (!inside.ok || inside.result.stdoutTail[0]?.trim() !== 'true') {
      const why = inside.ok ? 'it is a bare repository' : errorMessage(inside.error);
      return [...found, `${dir} is not a git work tree (${why})`];
    }
    if ((await this.tagCommit(scope, 'check', ctx.to, false)) !== null) return found;

    // Not here yet; execute fetches first, so a tag on a remote is fine.
    const tag = this.tagOf(ctx.to);
    const names = await this.remotes(scope, 'check', false);
    if (names.length === 0) return [...found, `tag ${tag} does not exist in ${dir}, which has no remote to fetch it from`];
    const unreachable: string[] = [];
    for (const remote of names) {
      const listed = await attempt(() =>
        this.git(scope, 'check', ['ls-remote', '--tags', remote, this.refOf(ctx.to)], { announce: false }),
      );
      if (listed.ok && listed.result.stdoutTail.length > 0) return found;
      if (!listed.ok) unreachable.push(`${remote} (${errorMessage(listed.error)})`);
    }
    const asked = unreachable.length > 0 ? `; could not ask ${unreachable.join(', ')}` : '';
    return [...found, `tag ${tag} exists neither in ${dir} nor on its remotes (${names.join(', ')})${asked}`];
  }

  private async checkout(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const dir = this.dir;
    const inside = await this.git(scope, 'check', ['rev-parse', '--is-inside-work-tree'], { announce: false });
    if (inside.stdoutTail[0]?.trim() !== 'true') throw new RollbackError(`${dir} is not a git work tree`, 'check');

    // What `checkout --force` is about to discard, kept in the record before it is gone.
    const status = await this.git(scope, 'status', ['status', '--porcelain']);
    if (status.stdoutTail.length === 0) ctx.progress('working tree clean');
    else {
      ctx.progress(`working tree changes before checkout (tracked ones are discarded by --force; untracked files stay):`);
      reportOutput(scope, status.stdoutTail);
    }
    const head = (await this.git(scope, 'status', ['rev-parse', 'HEAD'], { announce: false })).stdoutTail[0]?.trim() ?? '';
    ctx.progress(`HEAD was ${head}`);

    const names = await this.remotes(scope, 'fetch', false);
    if (names.length === 0) {
      ctx.progress('no remote: git fetch skipped, using the tags in the working tree');
    } else {
      const fetched = await attempt(() => this.git(scope, 'fetch', ['fetch', '--all', '--tags'], { timeoutMs: FETCH_TIMEOUT_MS }));
      if (!fetched.ok) {
        if (scope.signal.aborted) throw fetched.error;
        ctx.progress(`git fetch failed, using the tags already in the working tree: ${errorMessage(fetched.error)}`);
      }
    }

    const tag = this.tagOf(ctx.to);
    const target = await this.tagCommit(scope, 'checkout', ctx.to, true);
    if (target === null) {
      throw new RollbackError(
        `tag ${tag} does not exist in ${dir}${names.length > 0 ? ` (nor on ${names.join(', ')} after fetching)` : ''}; ` +
          `tag each release as ${this.config.tag_prefix}<version>`,
        'checkout',
      );
    }
    if (head === target && status.stdoutTail.every((line) => line.startsWith('??'))) {
      ctx.progress(`already at ${tag} (${target}) with no tracked changes; checkout skipped`);
      return;
    }
    await this.git(scope, 'checkout', ['checkout', '--force', this.refOf(ctx.to)]);
    const now = (await this.git(scope, 'checkout', ['rev-parse', 'HEAD'], { announce: false })).stdoutTail[0]?.trim();
    if (now !== target) {
      throw new RollbackError(`after checking out ${tag}, HEAD is ${now ?? 'unknown'}, not ${target}`, 'checkout');
    }
    ctx.progress(`HEAD is now ${target} (${tag})`);
  }
}

export const gitStrategy: StrategyFactory<GitStrategyConfig> = (config, deps) => new GitStrategy(config, deps);
