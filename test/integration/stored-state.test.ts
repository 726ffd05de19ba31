/**
 * Issue 13 item 4: stored state is validated on load. The real daemon (`release-guard start`,
 * the CLI from source) refuses a corrupt or foreign state.json with one line naming the file and
 * its first problems, exits 1, and leaves the file as it was; the redis store refuses its state
 * key the same way (against the real throwaway Redis). A hostile version reported by the app is
 * never taken for a release: it never becomes a window, a path or an argument.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { versionApp } from '../../bench/chaos/redeploy-scenario.js';
import { parseConfigText } from '../../src/config/load.js';
import { initialState } from '../../src/core/transition.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { createLogger } from '../../src/log.js';
import { startDaemon } from '../../src/shell/daemon.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { redisConfig } from '../helpers/services.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function stateDirWith(state: unknown): Promise<{ dir: string; config: string; stateFile: string; text: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-stored-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  const stateFile = join(stateDir, 'state.json');
  const text = typeof state === 'string' ? state : JSON.stringify(state, null, 2);
  await writeFile(stateFile, text);
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    stringify({
      service: 'web',
      state_dir: stateDir,
      server: { port: 0 },
      probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:9/health', version_path: 'version' }],
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' } },
      rollback: { steps: [{ type: 'command', command: ['true'] }] },
      verification: { probe: 'health' },
    }),
  );
  return { dir, config, stateFile, text };
}

async function start(config: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', config], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // A token, so the only line on stderr is the refusal (no warning about a missing token).
    env: { ...process.env, NO_COLOR: '1', RELEASE_GUARD_TOKEN: 'test-token-0123456789abcdef' },
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { code, stderr };
}

const valid = { ...initialState(1_700_000_000_000), stable: 'v1', running: 'v1' };

describe('a stored state that is not a release-guard state is refused by the daemon', () => {
  it.each([
    ['a wrong type', { ...valid, phase: 42 }, /phase: Invalid option/],
    ['a foreign JSON (a package.json)', { name: 'left-pad', version: '1.3.0', dependencies: {} }, /schemaVersion: Invalid input: expected 1/],
    ['a hostile version that would become a path', { ...valid, phase: 'rolling_back', release: { version: '../../etc', previous: 'v1', startedAt: 1, deployedBy: 'x', source: 'manual' } }, /release\.version: version "\.\.\/\.\.\/etc" is not allowed/],
    ['a version that would become an option', { ...valid, stable: '--help' }, /stable: version "--help" is not allowed/],
  ])('%s: one line naming state.json and the problem, exit 1, the file left as it was', async (_name, state, problem) => {
    const { config, stateFile, text } = await stateDirWith(state);
    const { code, stderr } = await start(config);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`release-guard: cannot start: ${stateFile} is not a valid release-guard state (`);
    expect(lines[0]).toMatch(problem);
    expect(lines[0]).toMatch(/it was left untouched: move it aside to start fresh$/);
    expect(await readFile(stateFile, 'utf8')).toBe(text);
  });

  it('a state saved before windows had ids still loads, with the id its window would have had', async () => {
    const release = { version: 'v2', previous: 'v1', startedAt: Date.parse('2026-01-24T10:00:00.123Z'), deployedBy: 'ci', source: 'manual' };
    const { dir, config } = await stateDirWith({ ...valid, phase: 'guarding', running: 'v2', release });
    // The window's data under the old layout moves to the window: the guard still finds its backup.
    const legacy = join(dir, 'state', 'releases', 'v2', '1-command');
    await mkdir(legacy, { recursive: true });
    await writeFile(join(legacy, 'marker.json'), '{}');
    const parsed = parseConfigText(await readFile(config, 'utf8'), 'test');
    const logs = new PassThrough();
    const daemon = await startDaemon(parsed, { log: createLogger({ level: 'error', format: 'json', stream: logs }) });
    cleanups.push(() => daemon.stop());
    expect(daemon.guard.current.release).toMatchObject({ id: '2026-01-24T10-00-00-123Z_v2', version: 'v2' });
    expect(await readdir(join(dir, 'state', 'windows', '2026-01-24T10-00-00-123Z_v2', '1-command'))).toEqual(['marker.json']);
    expect(await readdir(join(dir, 'state'))).toContain('releases.old');
  });
});

describe('the redis store refuses a state key that is not a release-guard state', () => {
  it('names the key and the first problems, and leaves the key as it was', async () => {
    const info = redisConfig();
    const keyPrefix = `rg-test:${randomBytes(6).toString('hex')}:`;
    const admin = new Redis({ host: info.host, port: info.port, ...(info.password ? { password: info.password } : {}) });
    cleanups.push(async () => {
      const keys = await admin.keys(`${keyPrefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    });
    const store = await new RedisStore({ host: info.host, port: info.port, password: info.password, db: 0, keyPrefix, hostId: 'h1' }).open();
    cleanups.push(() => store.close());
    const envelope = JSON.stringify({ rev: 3, fence: 1, holder: 'x', savedAt: 1, state: { ...valid, history: [{ version: 'v1', at: 'yesterday', status: 'success', deployedBy: 'x' }] } });
    await admin.set(`${keyPrefix}h1:state`, envelope);
    await expect(store.loadState()).rejects.toThrow(
      new RegExp(`key ${keyPrefix}h1:state is not a valid release-guard state \\(history\\.0\\.at: Invalid input: expected number, received string\\); it was left untouched: rename it to start fresh`),
    );
    expect(await admin.get(`${keyPrefix}h1:state`)).toBe(envelope);
  });
});

describe('a hostile version reported by the app', () => {
  it.each([['--help'], ['../../etc'], ['v1;rm'], ['v1..2'], ['.hidden']])('%s is never taken for a release: no window, no path, no argument', async (hostile) => {
    const app = await versionApp();
    cleanups.push(() => app.close());
    const dir = await mkdtemp(join(tmpdir(), 'rg-hostile-version-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const marker = join(dir, 'ran.log');
    const yaml = stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      server: { port: 0 },
      probes: [{ name: 'health', type: 'http', url: app.url, version_path: 'version' }],
      schedule: { interval: '100ms', fast_interval: '100ms' },
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' } },
      // Would record {from} if a rollback ever ran with the hostile version.
      rollback: { steps: [{ type: 'command', command: [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], process.argv[2])", marker, '{from}'] }] },
      verification: { probe: 'health' },
    });
    const daemon = await startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'error', format: 'json', stream: new PassThrough() }) });
    cleanups.push(() => daemon.stop());
    const deadline = Date.now() + 10_000;
    while (daemon.guard.current.stable !== 'v1' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(daemon.guard.current.stable).toBe('v1');
    app.set(hostile);
    await new Promise((r) => setTimeout(r, 1500));
    expect(daemon.guard.current).toMatchObject({ phase: 'stable', running: 'v1', release: null });
    expect(JSON.stringify(daemon.guard.current)).not.toContain(hostile);
    expect(await readdir(join(dir, 'state', 'windows')).catch(() => [])).toEqual([]);
    expect(await readFile(marker, 'utf8').catch(() => '')).toBe('');
  });
});

describe('a version typed on the command line', () => {
  it.each([['../../etc'], ['v1;rm'], ['-rf']])('release %s: refused before anything is sent, one line, exit 2', async (hostile) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'release', '--url', 'http://127.0.0.1:9', '--', hostile], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', RELEASE_GUARD_TOKEN: 'test-token-0123456789abcdef' },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([`release-guard: version ${JSON.stringify(hostile)} is not allowed: use 1-128 letters, digits, ".", "_", "+" or "-", not starting with "-" or "." and without ".."`]);
  });
});
