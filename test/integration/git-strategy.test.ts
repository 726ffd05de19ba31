/**
 * The git strategy against real git repositories in temp directories: tags v1 and v2 of an app
 * whose build (build.cjs, also its package.json `build` script) writes dist/version.txt; install
 * and build run as `node …` (fast, no network) instead of npm. One test restarts a real pm2 app
 * (the demo app, which reports the version from the checked-out release.json).
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type GitStrategyConfig } from '../../src/config/schema.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { gitStrategy } from '../../src/strategies/git.js';
import { createStrategy } from '../../src/strategies/index.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import { createPm2Sandbox, DEMO_APP, freePort, getJson, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { rejection } from '../helpers/rejection.js';
import { systemClock } from '../../src/shell/clock.js';

const node = process.execPath;
const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Release Guard Test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'Release Guard Test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
};
/** Writes which version was installed: shows `{to}` expansion and that install ran in dir. */
const INSTALL = [node, '-e', 'require("fs").writeFileSync("installed.txt", process.argv[1])', '{to}'];
const BUILD = [node, 'build.cjs'];
const BUILD_SCRIPT = `const fs = require('node:fs');
const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8'));
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/version.txt', version);
console.log('built ' + version);
`;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Commits the app at `version` (package.json, release.json for the demo app) and tags it. */
async function release(repo: string, tag: string, semver: string): Promise<void> {
  await writeFile(
    path.join(repo, 'package.json'),
    `${JSON.stringify({ name: 'app', version: semver, private: true, scripts: { build: 'node build.cjs' } }, null, 2)}\n`,
  );
  await writeFile(path.join(repo, 'release.json'), `${JSON.stringify({ version: tag })}\n`);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', `release ${tag}`);
  git(repo, 'tag', '-a', tag, '-m', tag);
}

/** A repository with v1 and v2 tagged, checked out at v2 (branch main). */
async function createRepo(parent: string): Promise<string> {
  const repo = path.join(parent, 'app');
  git(parent, 'init', '-q', '-b', 'main', repo);
  await writeFile(path.join(repo, '.gitignore'), 'dist/\ninstalled.txt\n');
  await writeFile(path.join(repo, 'build.cjs'), BUILD_SCRIPT);
  await copyFile(DEMO_APP, path.join(repo, 'server.cjs'));
  await release(repo, 'v1', '1.0.0');
  await release(repo, 'v2', '2.0.0');
  return repo;
}

const configOf = (input: Record<string, unknown>): GitStrategyConfig => {
  const parsed = strategySchema.parse({ type: 'git', install: INSTALL, build: BUILD, timeout: '60s', ...input });
  if (parsed.type !== 'git') throw new Error('schema returned the wrong strategy type');
  return parsed;
};

/** Strategies without pm2_app never call pm2. */
const deps = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };

function context(overrides: Partial<RollbackContext> = {}): RollbackContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    service: 'app',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => lines.push(message),
    dataDir: os.tmpdir(),
    lines,
    ...overrides,
  };
}

describe('git strategy (real git)', () => {
  let parent: string;
  let repo: string;

  beforeEach(async () => {
    parent = await mkdtemp(path.join(os.tmpdir(), 'rg-git-'));
    repo = await createRepo(parent);
  });

  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  const read = (file: string) => readFile(path.join(repo, file), 'utf8');
  const commitOf = (ref: string) => git(repo, 'rev-parse', `${ref}^{commit}`);

  it('checks out v1, installs, builds, and converges when run again', async () => {
    const strategy = await createStrategy(configOf({ dir: repo }), deps);
    expect(strategy.describe({ from: 'v2', to: 'v1' })).toBe(
      `git: git checkout v1 in ${repo}, ${node} -e ${JSON.stringify(INSTALL[2])} v1, ${node} build.cjs`,
    );
    expect(await strategy.checkReadiness(context())).toEqual([]);

    const first = context();
    await strategy.execute(first);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v1'));
    expect(JSON.parse(await read('package.json')).version).toBe('1.0.0');
    expect(await read('dist/version.txt')).toBe('1.0.0');
    expect(await read('installed.txt')).toBe('v1');
    expect(first.lines).toContain('working tree clean');
    expect(first.lines).toContain('no remote: git fetch skipped, using the tags in the working tree');
    expect(first.lines).toContain(`$ git -C ${repo} checkout --force refs/tags/v1`);
    expect(first.lines).toContain(`HEAD is now ${commitOf('v1')} (v1)`);
    expect(first.lines).toContain('  built 1.0.0');

    const second = context();
    await strategy.execute(second);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v1'));
    expect(await read('dist/version.txt')).toBe('1.0.0');
    expect(second.lines).toContain(`already at v1 (${commitOf('v1')}) with no tracked changes; checkout skipped`);
    expect(git(repo, 'status', '--porcelain')).toBe('');
  });

  it('records what --force discards, then discards tracked changes and keeps untracked files', async () => {
    await writeFile(path.join(repo, 'package.json'), '{"hotfix": true}\n');
    await writeFile(path.join(repo, 'notes.txt'), 'kept\n');
    const ctx = context();
    await gitStrategy(configOf({ dir: repo, install: null, build: null }), deps).execute(ctx);

    const before = ctx.lines.indexOf('working tree changes before checkout (tracked ones are discarded by --force; untracked files stay):');
    expect(before).toBeGreaterThanOrEqual(0);
    expect(ctx.lines.slice(before + 1, before + 3)).toEqual(['   M package.json', '  ?? notes.txt']);
    expect(ctx.lines.indexOf(`HEAD was ${commitOf('v2')}`)).toBeGreaterThan(before);
    expect(JSON.parse(await read('package.json')).version).toBe('1.0.0');
    expect(await read('notes.txt')).toBe('kept\n');
    // install and build are off: nothing ran them.
    await expect(stat(path.join(repo, 'dist'))).rejects.toThrow(/ENOENT/);
  });

  it('checks out the tag, never a branch that shares its name', async () => {
    git(repo, 'branch', 'v1', 'v2');
    await gitStrategy(configOf({ dir: repo, install: null, build: null }), deps).execute(context());
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('refs/tags/v1'));
    expect(commitOf('refs/tags/v1')).not.toBe(commitOf('refs/heads/v1'));
  });

  it('applies tag_prefix', async () => {
    git(repo, 'tag', 'release/v1', 'v1');
    const ctx = context();
    await gitStrategy(configOf({ dir: repo, tag_prefix: 'release/', install: null, build: null }), deps).execute(ctx);
    expect(ctx.lines).toContain(`$ git -C ${repo} checkout --force refs/tags/release/v1`);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v1'));
  });

  it('lists a missing tag in check and fails execute with a RollbackError, changing nothing', async () => {
    const strategy = gitStrategy(configOf({ dir: repo }), deps);
    expect(await strategy.checkReadiness(context({ to: 'v9' }))).toEqual([
      `tag v9 does not exist in ${repo}, which has no remote to fetch it from`,
    ]);
    const error = await rejection(strategy.execute(context({ to: 'v9' })));
    expect(error.step).toBe('checkout');
    expect(error.message).toContain(`tag v9 does not exist in ${repo}`);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v2'));
    await expect(stat(path.join(repo, 'installed.txt'))).rejects.toThrow(/ENOENT/);
  });

  it('fetches tags from the remote first, and finds them in check without fetching', async () => {
    const origin = path.join(parent, 'origin.git');
    git(parent, 'clone', '-q', '--bare', repo, origin);
    const work = path.join(parent, 'work');
    git(parent, 'clone', '-q', origin, work);
    // v3 exists only on the remote.
    await release(repo, 'v3', '3.0.0');
    git(repo, 'push', '-q', origin, 'main', 'v3');

    const strategy = gitStrategy(configOf({ dir: work }), deps);
    await expect(stat(path.join(work, '.git', 'refs', 'tags', 'v3'))).rejects.toThrow(/ENOENT/);
    expect(await strategy.checkReadiness(context({ to: 'v3' }))).toEqual([]);
    expect(git(work, 'tag', '--list', 'v3')).toBe(''); // check did not fetch

    const ctx = context({ to: 'v3' });
    await strategy.execute(ctx);
    expect(ctx.lines).toContain(`$ git -C ${work} fetch --all --tags`);
    expect(git(work, 'rev-parse', 'HEAD')).toBe(git(work, 'rev-parse', 'v3^{commit}'));
    expect(await readFile(path.join(work, 'dist', 'version.txt'), 'utf8')).toBe('3.0.0');

    expect(await strategy.checkReadiness(context({ to: 'v7' }))).toEqual([
      `tag v7 exists neither in ${work} nor on its remotes (origin)`,
    ]);
  });

  it('rolls back with the local tags when the fetch fails', async () => {
    git(repo, 'remote', 'add', 'origin', path.join(parent, 'gone.git'));
    const ctx = context();
    await gitStrategy(configOf({ dir: repo }), deps).execute(ctx);
    expect(ctx.lines.some((l) => l.startsWith('git fetch failed, using the tags already in the working tree:'))).toBe(true);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v1'));
  });

  it('fails a broken build with a RollbackError carrying its stderr tail', async () => {
    const build = [node, '-e', 'console.error("Module not found: ./missing"); process.exit(1)'];
    const error = await rejection(gitStrategy(configOf({ dir: repo, build }), deps).execute(context()));
    expect(error.step).toBe('build');
    expect(error.message).toContain('exited with code 1');
    expect(error.message).toContain('Module not found: ./missing');
  });

  it('checks git, the work tree, and the install and build programs', async () => {
    const plain = await mkdtemp(path.join(parent, 'plain-'));
    expect(await gitStrategy(configOf({ dir: plain }), deps).checkReadiness(context())).toEqual([
      expect.stringMatching(new RegExp(`^${plain} is not a git work tree \\(.*not a git repository`)),
    ]);
    expect(
      await gitStrategy(configOf({ dir: repo, install: ['release-guard-no-npm', 'ci'], build: ['./scripts/build.sh'] }), deps).checkReadiness(
        context(),
      ),
    ).toEqual([
      'install program release-guard-no-npm is not installed (not found or not executable)',
      'build program ./scripts/build.sh is not installed (not found or not executable)',
    ]);
    expect(await gitStrategy(configOf({ dir: path.join(parent, 'missing') }), deps).checkReadiness(context())).toEqual([
      expect.stringContaining(`${path.join(parent, 'missing')} cannot be used`),
    ]);
  });

  it('refuses a version like "v1;rm -rf /" before running git', async () => {
    const strategy = gitStrategy(configOf({ dir: repo }), deps);
    expect(await strategy.checkReadiness(context({ to: 'v1;rm -rf /' }))).toEqual([expect.stringContaining('is not allowed')]);
    const error = await rejection(strategy.execute(context({ to: 'v1;rm -rf /' })));
    expect(error.step).toBe('validate');
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(commitOf('v2'));
  });
});

describe('git strategy with a real pm2 restart', () => {
  let sandbox: Pm2Sandbox;

  beforeEach(async () => {
    sandbox = await createPm2Sandbox();
  });

  afterEach(async () => {
    await sandbox?.cleanup();
  });

  it('restarts the app after the build; it then serves the checked-out version', async () => {
    const repo = await createRepo(sandbox.dir);
    const port = await freePort();
    await sandbox.client.start({ name: 'git-web', script: path.join(repo, 'server.cjs'), execMode: 'fork', env: { PORT: String(port) } });
    const version = async () => ((await getJson(`http://127.0.0.1:${port}/health`)).body as { version?: unknown }).version;
    await waitFor(async () => (await version()) === 'v2', 15_000);
    const restartsBefore = (await sandbox.client.describe('git-web'))[0]?.restarts ?? 0;

    const strategy = gitStrategy(configOf({ dir: repo, pm2_app: 'git-web' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    expect(await strategy.checkReadiness(context())).toEqual([]);
    const ctx = context();
    await strategy.execute(ctx);

    expect(ctx.lines).toContain('pm2 restart git-web');
    expect(ctx.lines).toContain('git-web: 1/1 instance online');
    expect((await sandbox.client.describe('git-web'))[0]?.restarts).toBe(restartsBefore + 1);
    await waitFor(async () => (await version()) === 'v1', 15_000);
    expect(await readFile(path.join(repo, 'dist', 'version.txt'), 'utf8')).toBe('1.0.0');

    expect(await gitStrategy(configOf({ dir: repo, pm2_app: 'nope' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).checkReadiness(context())).toEqual([
      'pm2 does not know app "nope"',
    ]);
  });
});
