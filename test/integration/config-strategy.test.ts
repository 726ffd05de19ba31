/**
 * The config strategy with real files: `prepare` snapshots the config as a release window opens,
 * the "release" changes it (content, mode, a new file), and `execute` puts it back, keeping the
 * failed versions. One test restarts a real pm2 app (the demo app, which reads its release.json
 * at start) and sees it serve the restored config.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type ConfigFilesStrategyConfig } from '../../src/config/schema.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { configFilesStrategy, type SnapshotManifest } from '../../src/strategies/config-files.js';
import { createStrategy } from '../../src/strategies/index.js';
import type { ReleaseContext, RollbackContext } from '../../src/strategies/types.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { rejection } from '../helpers/rejection.js';
import { systemClock } from '../../src/shell/clock.js';

const GOOD_ENV = 'API_URL=https://api.example.com\nFEATURE_NEW_PLAYER=off\n';
const BAD_ENV = 'API_URL=https://api.example.con\nFEATURE_NEW_PLAYER=on\n';
const GOOD_NEXT = 'export default { reactStrictMode: true };\n';
const BAD_NEXT = 'export default { reactStrictMode: true, output: "export" };\n';
const FILES = ['.env.local', 'next.config.mjs', 'release.json', 'config/flags.json'];

const configOf = (input: Record<string, unknown>): ConfigFilesStrategyConfig => {
  const parsed = strategySchema.parse({ type: 'config', files: FILES, timeout: '30s', ...input });
  if (parsed.type !== 'config') throw new Error('schema returned the wrong strategy type');
  return parsed;
};

/** Strategies without pm2_app never call pm2. */
const noPm2 = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };

function releaseContext(dataDir: string, lines: string[] = []): ReleaseContext {
  return { service: 'web', version: 'v2', previous: 'v1', signal: new AbortController().signal, progress: (m) => lines.push(m), dataDir };
}

function context(dataDir: string, overrides: Partial<RollbackContext> = {}): RollbackContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    service: 'web',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => lines.push(message),
    dataDir,
    lines,
    ...overrides,
  };
}

const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

/** The config as the good release has it. */
async function writeGoodConfig(dir: string): Promise<void> {
  await writeFile(path.join(dir, '.env.local'), GOOD_ENV);
  await chmod(path.join(dir, '.env.local'), 0o600);
  await writeFile(path.join(dir, 'next.config.mjs'), GOOD_NEXT);
  await chmod(path.join(dir, 'next.config.mjs'), 0o644);
}

/** What the bad release does to it. */
async function applyBadRelease(dir: string): Promise<void> {
  await writeFile(path.join(dir, '.env.local'), BAD_ENV);
  await chmod(path.join(dir, '.env.local'), 0o644);
  await writeFile(path.join(dir, 'next.config.mjs'), BAD_NEXT);
  await writeFile(path.join(dir, 'release.json'), JSON.stringify({ version: 'v2-bad' }));
  await mkdir(path.join(dir, 'config'), { recursive: true });
  await writeFile(path.join(dir, 'config', 'flags.json'), '{"newPlayer":true}\n');
}

describe('config strategy (real files)', () => {
  let root: string;
  let dir: string;
  let dataDir: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'rg-config-'));
    dir = path.join(root, 'app');
    dataDir = path.join(root, 'state', 'releases', 'v2', '1-config');
    await mkdir(dir, { recursive: true });
    await mkdir(dataDir, { recursive: true });
    await writeGoodConfig(dir);
    await writeFile(path.join(dir, 'release.json'), JSON.stringify({ version: 'v1' }));
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('snapshots each file with a manifest, once per release', async () => {
    const strategy = configFilesStrategy(configOf({ dir }), noPm2);
    const lines: string[] = [];
    await strategy.prepare!(releaseContext(dataDir, lines));

    const manifest = JSON.parse(await readFile(path.join(dataDir, 'manifest.json'), 'utf8')) as SnapshotManifest;
    expect(manifest).toMatchObject({ schemaVersion: 1, version: 'v2', dir });
    expect(manifest.files).toEqual([
      { path: '.env.local', existed: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), size: GOOD_ENV.length, mode: 0o600 },
      { path: 'next.config.mjs', existed: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), size: GOOD_NEXT.length, mode: 0o644 },
      { path: 'release.json', existed: true, sha256: expect.any(String), size: expect.any(Number), mode: expect.any(Number) },
      { path: 'config/flags.json', existed: false },
    ]);
    expect(await readFile(path.join(dataDir, 'files', '.env.local'), 'utf8')).toBe(GOOD_ENV);
    expect(await modeOf(path.join(dataDir, 'files', 'next.config.mjs'))).toBe(0o600); // copies are private
    expect(lines.at(-1)).toBe(`config snapshot for v2: 3 file(s) saved in ${dataDir}; absent (removed on rollback if they appear): config/flags.json`);

    // Taken again in the same window (a guard restart), it keeps the pre-release snapshot.
    await applyBadRelease(dir);
    const again: string[] = [];
    await strategy.prepare!(releaseContext(dataDir, again));
    expect(again).toEqual([`config snapshot for v2 already taken at ${manifest.takenAt}; kept`]);
    expect(await readFile(path.join(dataDir, 'files', '.env.local'), 'utf8')).toBe(GOOD_ENV);
    // No temp files left behind by the atomic writes.
    expect((await readdir(dataDir)).sort()).toEqual(['files', 'manifest.json']);
  });

  it('restores content and modes, removes added files, keeps the failed copies, and converges', async () => {
    const strategy = await createStrategy(configOf({ dir }), noPm2);
    await strategy.prepare!(releaseContext(dataDir));
    await applyBadRelease(dir);
    expect(await strategy.checkReadiness(context(dataDir))).toEqual([]);

    const first = context(dataDir);
    await strategy.execute(first);
    expect(await readFile(path.join(dir, '.env.local'), 'utf8')).toBe(GOOD_ENV);
    expect(await modeOf(path.join(dir, '.env.local'))).toBe(0o600);
    expect(await readFile(path.join(dir, 'next.config.mjs'), 'utf8')).toBe(GOOD_NEXT);
    expect(JSON.parse(await readFile(path.join(dir, 'release.json'), 'utf8'))).toEqual({ version: 'v1' });
    await expect(stat(path.join(dir, 'config', 'flags.json'))).rejects.toThrow(/ENOENT/);

    const failed = path.join(dataDir, 'failed');
    expect(await readFile(path.join(failed, '.env.local'), 'utf8')).toBe(BAD_ENV);
    expect(await readFile(path.join(failed, 'next.config.mjs'), 'utf8')).toBe(BAD_NEXT);
    expect(await readFile(path.join(failed, 'config', 'flags.json'), 'utf8')).toBe('{"newPlayer":true}\n');
    const failedManifest = JSON.parse(await readFile(path.join(failed, 'manifest.json'), 'utf8')) as SnapshotManifest;
    expect(failedManifest.files.find((f) => f.path === '.env.local')).toMatchObject({ existed: true, mode: 0o644 });
    expect(first.lines).toEqual(
      expect.arrayContaining([
        `saved the failed versions of 4 file(s) in ${failed}`,
        '.env.local: restored (' + GOOD_ENV.length + ' bytes, mode 0600)',
        'config/flags.json: removed (added by the release)',
      ]),
    );

    // Run again (a resumed plan): nothing to change, and the failed copies are not overwritten
    // with the restored files.
    const second = context(dataDir);
    await strategy.execute(second);
    expect(second.lines).toEqual([
      `failed copies already saved in ${failed}`,
      '.env.local: already as snapshot',
      'next.config.mjs: already as snapshot',
      'release.json: already as snapshot',
      'config/flags.json: absent before the release, still absent',
    ]);
    expect(await readFile(path.join(failed, '.env.local'), 'utf8')).toBe(BAD_ENV);
    expect((await readdir(dir)).sort()).toEqual(['.env.local', 'config', 'next.config.mjs', 'release.json']);
  });

  it('fixes a mode-only change', async () => {
    const strategy = configFilesStrategy(configOf({ dir, files: ['.env.local'] }), noPm2);
    await strategy.prepare!(releaseContext(dataDir));
    await chmod(path.join(dir, '.env.local'), 0o666);
    const ctx = context(dataDir);
    await strategy.execute(ctx);
    expect(await modeOf(path.join(dir, '.env.local'))).toBe(0o600);
    expect(ctx.lines).toContain(`.env.local: restored (${GOOD_ENV.length} bytes, mode 0600)`);
  });

  it('has check name a missing or damaged snapshot, and execute refuse it without touching anything', async () => {
    const strategy = configFilesStrategy(configOf({ dir }), noPm2);
    expect(await strategy.checkReadiness(context(dataDir))).toEqual([
      expect.stringContaining(`no config snapshot for release v2 in ${dataDir}`),
    ]);

    await strategy.prepare!(releaseContext(dataDir));
    await applyBadRelease(dir);
    await writeFile(path.join(dataDir, 'files', '.env.local'), 'tampered\n');
    expect(await strategy.checkReadiness(context(dataDir))).toEqual([
      expect.stringContaining(`${path.join(dataDir, 'files', '.env.local')} does not match its sha256 in the manifest`),
    ]);
    const error = await rejection(strategy.execute(context(dataDir)));
    expect(error.step).toBe('snapshot');
    expect(await readFile(path.join(dir, '.env.local'), 'utf8')).toBe(BAD_ENV);
    await expect(stat(path.join(dataDir, 'failed'))).rejects.toThrow(/ENOENT/);

    // A snapshot of another release is not used either.
    expect(await strategy.checkReadiness(context(dataDir, { from: 'v3' }))).toEqual([
      expect.stringContaining(`is for release v2, not v3`),
    ]);
  });

  it('reports files listed after the snapshot was taken', async () => {
    await configFilesStrategy(configOf({ dir, files: ['.env.local'] }), noPm2).prepare!(releaseContext(dataDir));
    const grown = configFilesStrategy(configOf({ dir, files: ['.env.local', 'next.config.mjs'] }), noPm2);
    expect(await grown.checkReadiness(context(dataDir))).toEqual([expect.stringContaining('does not hold next.config.mjs')]);
    const ctx = context(dataDir);
    await grown.execute(ctx);
    expect(ctx.lines[0]).toBe('not in the snapshot (listed after it was taken), left as they are: next.config.mjs');
  });

  it.each([
    ['../outside.env', 'is outside'],
    ['config/../../outside.env', 'is outside'],
    ['/etc/passwd', 'is outside'],
    ['.', 'is outside'],
  ])('refuses %j', async (file, message) => {
    const strategy = configFilesStrategy(configOf({ dir, files: ['.env.local', file] }), noPm2);
    const error = await rejection(strategy.prepare!(releaseContext(dataDir)));
    expect(error.step).toBe('prepare');
    expect(error.message).toContain(message);
    await expect(stat(path.join(dataDir, 'manifest.json'))).rejects.toThrow(/ENOENT/);
  });

  it('accepts an absolute path inside dir', async () => {
    const strategy = configFilesStrategy(configOf({ dir, files: [path.join(dir, '.env.local')] }), noPm2);
    await strategy.prepare!(releaseContext(dataDir));
    const manifest = JSON.parse(await readFile(path.join(dataDir, 'manifest.json'), 'utf8')) as SnapshotManifest;
    expect(manifest.files.map((f) => f.path)).toEqual(['.env.local']);
  });

  it('refuses a directory symlinked out of dir, and a symlinked file', async () => {
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secrets.env'), 'X=1\n');
    await symlink(outside, path.join(dir, 'shared'));
    const throughLink = configFilesStrategy(configOf({ dir, files: ['shared/secrets.env'] }), noPm2);
    expect((await rejection(throughLink.prepare!(releaseContext(dataDir)))).message).toContain('through a symlink');

    await symlink(path.join(outside, 'secrets.env'), path.join(dir, 'linked.env'));
    const linkedFile = configFilesStrategy(configOf({ dir, files: ['linked.env'] }), noPm2);
    expect((await rejection(linkedFile.prepare!(releaseContext(dataDir)))).message).toContain('is a symlink');
  });

  it('does not write through a directory the release replaced with a symlink', async () => {
    await mkdir(path.join(dir, 'config'));
    await writeFile(path.join(dir, 'config', 'app.json'), '{"good":true}\n');
    const strategy = configFilesStrategy(configOf({ dir, files: ['config/app.json'] }), noPm2);
    await strategy.prepare!(releaseContext(dataDir));

    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await rm(path.join(dir, 'config'), { recursive: true });
    await symlink(outside, path.join(dir, 'config'));
    const error = await rejection(strategy.execute(context(dataDir)));
    expect(error.message).toContain('through a symlink');
    await expect(stat(path.join(outside, 'app.json'))).rejects.toThrow(/ENOENT/);
  });
});

describe('config strategy with a real pm2 app', () => {
  let sandbox: Pm2Sandbox;

  beforeEach(async () => {
    sandbox = await createPm2Sandbox();
  });

  afterEach(async () => {
    await sandbox?.cleanup();
  });

  it('restores the config and restarts the app, which then serves it', async () => {
    const release = await buildRelease(sandbox.dir, 'v1');
    await writeGoodConfig(release);
    const dataDir = path.join(sandbox.dir, 'state', 'releases', 'v2', '1-config');
    await mkdir(dataDir, { recursive: true });
    const port = await freePort();
    await sandbox.client.start({ name: 'cfg-web', script: path.join(release, 'server.cjs'), execMode: 'fork', env: { PORT: String(port) } });
    const version = async () => ((await getJson(`http://127.0.0.1:${port}/health`)).body as { version?: unknown }).version;
    await waitFor(async () => (await version()) === 'v1', 15_000);

    const strategy = configFilesStrategy(configOf({ dir: release, pm2_app: 'cfg-web' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    await strategy.prepare!(releaseContext(dataDir));
    // The release ships a bad config and restarts the app on it.
    await applyBadRelease(release);
    await sandbox.client.restart('cfg-web');
    await waitFor(async () => (await version()) === 'v2-bad', 15_000);
    const restartsBefore = (await sandbox.client.describe('cfg-web'))[0]?.restarts ?? 0;

    expect(await strategy.checkReadiness(context(dataDir))).toEqual([]);
    const ctx = context(dataDir);
    await strategy.execute(ctx);

    expect(ctx.lines).toContain('pm2 restart cfg-web');
    expect(ctx.lines).toContain('cfg-web: 1/1 instance online');
    expect((await sandbox.client.describe('cfg-web'))[0]?.restarts).toBe(restartsBefore + 1);
    // The app read the restored release.json at start.
    await waitFor(async () => (await version()) === 'v1', 15_000);
    expect(await readFile(path.join(release, '.env.local'), 'utf8')).toBe(GOOD_ENV);
  });
});
