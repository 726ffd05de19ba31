/**
 * The releases strategy against real pm2: the demo app in cluster mode (2 instances) runs
 * `<dir>/current/server.cjs`; rolling back swaps `current` to releases/v1 and reloads, and the
 * old version must then answer on the app's port.
 */
import { tmpdir } from 'node:os';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { lstat, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strategySchema, type ReleasesStrategyConfig } from '../../src/config/schema.js';
import { RollbackError } from '../../src/errors.js';
import { createStrategy } from '../../src/strategies/index.js';
import { releasesStrategy } from '../../src/strategies/releases.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import {
  buildRelease,
  createPm2Sandbox,
  freePort,
  getJson,
  isAlive,
  pointCurrent,
  waitFor,
  type Pm2Sandbox,
} from '../helpers/pm2-sandbox.js';
import { systemClock } from '../../src/shell/clock.js';

const context = (to: string, progress: string[] = [], service = 'web'): RollbackContext => ({
  service,
  from: 'v2',
  to,
  signal: new AbortController().signal,
  progress: (message) => progress.push(message),
  dataDir: tmpdir(),
});

/** Versions reported by /health over several requests, so both cluster workers answer. */
async function servedVersions(port: number): Promise<Set<unknown>> {
  const versions = new Set<unknown>();
  for (let i = 0; i < 8; i += 1) {
    const { status, body } = await getJson(`http://127.0.0.1:${port}/health`);
    expect(status).toBe(200);
    versions.add((body as { version?: unknown }).version);
  }
  return versions;
}

describe('releases strategy (real pm2, cluster mode)', () => {
  let sandbox: Pm2Sandbox;
  let port: number;
  let config: ReleasesStrategyConfig;

  beforeAll(async () => {
    sandbox = await createPm2Sandbox();
    port = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    await buildRelease(sandbox.dir, 'v2');
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.start({
      name: 'web',
      script: path.join(sandbox.dir, 'current', 'server.cjs'),
      execMode: 'cluster',
      instances: 2,
      env: { PORT: String(port) },
    });
    await waitFor(async () => (await servedVersions(port)).has('v2'), 15_000);
    const parsed = strategySchema.parse({ type: 'releases', dir: sandbox.dir, pm2_app: 'web', timeout: '30s' });
    if (parsed.type !== 'releases') throw new Error('schema returned the wrong strategy type');
    config = parsed;
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  it('runs v2 through the current symlink before the rollback', async () => {
    const instances = await sandbox.client.describe('web');
    expect(instances).toHaveLength(2);
    // pm2 keeps the script path as given, through the symlink: that is what lets a reload move.
    for (const instance of instances) {
      expect(instance.execPath).toBe(path.join(sandbox.dir, 'current', 'server.cjs'));
      expect(instance.execMode).toBe('cluster_mode');
    }
    expect(await servedVersions(port)).toEqual(new Set(['v2']));
  });

  it('describes itself in one line', () => {
    expect(releasesStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).describe({ from: 'v2', to: 'v1' })).toBe(
      `releases: ${path.join(sandbox.dir, 'current')} -> releases/v1, pm2 reload web`,
    );
  });

  it('rolls back to v1: swaps the symlink, reloads, and v1 answers', async () => {
    const strategy = await createStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    expect(strategy.type).toBe('releases');
    expect(await strategy.checkReadiness(context('v1'))).toEqual([]);

    const progress: string[] = [];
    await strategy.execute(context('v1', progress));

    const link = path.join(sandbox.dir, 'current');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('releases/v1');
    expect(progress.some((line) => line.includes('-> releases/v1 (was releases/v2)'))).toBe(true);
    expect(progress).toContain('pm2 reload web');

    const instances = await sandbox.client.describe('web');
    expect(instances).toHaveLength(2);
    expect(instances.every((i) => i.status === 'online')).toBe(true);
    expect(await servedVersions(port)).toEqual(new Set(['v1']));
  });

  it('is idempotent: a second execute keeps v1 and skips the swap', async () => {
    const strategy = releasesStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    const progress: string[] = [];
    await strategy.execute(context('v1', progress));

    expect(await readlink(path.join(sandbox.dir, 'current'))).toBe('releases/v1');
    expect(progress.some((line) => line.includes('no swap needed'))).toBe(true);
    expect(progress).toContain('pm2 reload web');
    expect(await servedVersions(port)).toEqual(new Set(['v1']));
  });

  it('lists a missing release as a problem and refuses to execute it', async () => {
    const strategy = releasesStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    const problems = await strategy.checkReadiness(context('v9'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(path.join(sandbox.dir, 'releases', 'v9'));
    expect(problems[0]).toContain('does not exist');

    const error = await strategy.execute(context('v9')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).step).toBe('check');
    expect((error as RollbackError).message).toContain('v9');
    expect(await readlink(path.join(sandbox.dir, 'current'))).toBe('releases/v1');
  });

  it.each(['../etc', '..', '.', 'v1/../../etc', '/etc', 'v1 v2', ''])('refuses the version %j', async (version) => {
    const strategy = releasesStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    const problems = await strategy.checkReadiness(context(version));
    expect(problems.join('\n')).toMatch(/is not allowed/);

    const error = await strategy.execute(context(version)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).step).toBe('validate');
    expect(await readlink(path.join(sandbox.dir, 'current'))).toBe('releases/v1');
  });

  it('lists an unknown pm2 app and a current that is not a symlink as problems', async () => {
    const strategy = releasesStrategy(
      { ...config, pm2_app: 'no-such-app', current: 'releases' },
      { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock },
    );
    const problems = await strategy.checkReadiness(context('v1'));
    expect(problems).toEqual([
      expect.stringContaining('is not a symlink'),
      expect.stringContaining('pm2 does not know app "no-such-app"'),
    ]);
  });

  it('lists an app started from a resolved release path (a swap would not move it)', async () => {
    const name = 'pinned';
    await sandbox.client.start({
      name,
      script: path.join(sandbox.dir, 'releases', 'v1', 'server.cjs'),
      execMode: 'fork',
      env: { PORT: String(await freePort()) },
    });
    try {
      const problems = await releasesStrategy({ ...config, pm2_app: name }, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).checkReadiness(
        context('v1'),
      );
      expect(problems).toEqual([expect.stringContaining('not a path through')]);
    } finally {
      await sandbox.client.delete(name);
    }
  });
});

describe('releases strategy: replacing workers that take long to exit (real pm2, cluster mode)', () => {
  const APP = 'slow-exit';
  // Long enough that "still alive when the step returned" cannot be a matter of luck.
  const KILL_TIMEOUT_MS = 3000;
  let sandbox: Pm2Sandbox;
  let port: number;
  let config: ReleasesStrategyConfig;

  beforeAll(async () => {
    sandbox = await createPm2Sandbox();
    port = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    const v2 = await buildRelease(sandbox.dir, 'v2');
    // v2 stops taking connections on SIGINT but does not exit (as an app waiting for hung
    // requests or draining work does): pm2 kills it at kill_timeout, and answers the reload then.
    await writeFile(
      path.join(v2, 'server.cjs'),
      [
        "const server = require('node:http').createServer((req, res) => res.end(JSON.stringify({ status: 'ok', version: 'v2' })));",
        "server.listen(Number(process.env.PORT), '127.0.0.1');",
        // The interval stands for the work being drained: it keeps the process alive.
        "process.on('SIGINT', () => { server.close(); setInterval(() => undefined, 1000); });",
      ].join('\n'),
    );
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.start({
      name: APP,
      script: path.join(sandbox.dir, 'current', 'server.cjs'),
      execMode: 'cluster',
      instances: 1,
      killTimeoutMs: KILL_TIMEOUT_MS,
      env: { PORT: String(port) },
    });
    await waitFor(async () => (await servedVersions(port)).has('v2'), 15_000);
    const parsed = strategySchema.parse({ type: 'releases', dir: sandbox.dir, pm2_app: APP, timeout: '30s' });
    if (parsed.type !== 'releases') throw new Error('schema returned the wrong strategy type');
    config = parsed;
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  it('is done once the new workers listen, while pm2 still waits for the old ones; the reload finishes behind it', async () => {
    const replaced = (await sandbox.client.describe(APP)).map((i) => i.pid);
    expect(replaced).toHaveLength(1);

    const progress: string[] = [];
    await releasesStrategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).execute(context('v1', progress, APP));

    expect(progress).toContain(`${APP}: every new worker listens; pm2 is stopping the replaced ones`);
    // pm2 answers only once the replaced worker has exited, at its kill_timeout: it is still there.
    expect(replaced.filter(isAlive)).toEqual(replaced);
    // Listening, not merely online: no request reaches v2 any more.
    expect(await servedVersions(port)).toEqual(new Set(['v1']));

    // The reload ends in the background and a next one waits its turn instead of being refused.
    await sandbox.client.reload(APP);
    expect(progress).toContain(`pm2 reload ${APP} finished: the replaced workers have exited`);
    expect(replaced.filter(isAlive)).toEqual([]);
    expect(await servedVersions(port)).toEqual(new Set(['v1']));
  });
});
