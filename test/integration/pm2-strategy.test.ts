/**
 * The pm2 strategy against real pm2: app-v2 runs the bad release; app-v1 is defined only in an
 * ecosystem file. start_previous must stop app-v2 and bring app-v1 up answering v1.
 */
import { tmpdir } from 'node:os';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strategySchema, type Pm2StrategyConfig } from '../../src/config/schema.js';
import { RollbackError } from '../../src/errors.js';
import { createStrategy } from '../../src/strategies/index.js';
import { pm2Strategy } from '../../src/strategies/pm2.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { systemClock } from '../../src/shell/clock.js';

describe('pm2 strategy (real pm2)', () => {
  let sandbox: Pm2Sandbox;
  let port: number;
  let ecosystem: string;

  const context = (to: string, progress: string[] = []): RollbackContext => ({
    service: 'app',
    from: 'v2',
    to,
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir: tmpdir(),
  });

  const configOf = (input: Record<string, unknown>): Pm2StrategyConfig => {
    const parsed = strategySchema.parse({ type: 'pm2', timeout: '30s', ...input });
    if (parsed.type !== 'pm2') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };

  const version = async () => ((await getJson(`http://127.0.0.1:${port}/health`)).body as { version?: unknown }).version;

  beforeAll(async () => {
    sandbox = await createPm2Sandbox();
    port = await freePort();
    const v1 = await buildRelease(sandbox.dir, 'v1');
    const v2 = await buildRelease(sandbox.dir, 'v2');
    ecosystem = path.join(sandbox.dir, 'ecosystem.config.cjs');
    await writeFile(
      ecosystem,
      `module.exports = ${JSON.stringify(
        { apps: [{ name: 'app-v1', script: path.join(v1, 'server.cjs'), env: { PORT: String(port) } }] },
        null,
        2,
      )};\n`,
    );
    await sandbox.client.start({
      name: 'app-v2',
      script: path.join(v2, 'server.cjs'),
      execMode: 'fork',
      env: { PORT: String(port) },
    });
    await waitFor(async () => (await version()) === 'v2', 15_000);
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  const startPrevious = () =>
    configOf({ action: 'start_previous', pm2_app: 'app-v2', app_prefix: 'app-', ecosystem });

  it('describes itself in one line', () => {
    expect(pm2Strategy(startPrevious(), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).describe({ from: 'v2', to: 'v1' })).toBe(
      `pm2: stop app-v2, start app-v1 (from ${ecosystem} if pm2 does not know it)`,
    );
    expect(pm2Strategy(configOf({ action: 'reload', pm2_app: 'web' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).describe({ from: 'v2', to: 'v1' })).toBe(
      'pm2: reload web',
    );
  });

  it('start_previous stops app-v2 and starts app-v1 from the ecosystem file; v1 answers', async () => {
    expect(await sandbox.client.describe('app-v1')).toEqual([]);
    const strategy = await createStrategy(startPrevious(), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    expect(await strategy.checkReadiness(context('v1'))).toEqual([]);

    const progress: string[] = [];
    await strategy.execute(context('v1', progress));

    expect((await sandbox.client.describe('app-v2')).map((i) => i.status)).toEqual(['stopped']);
    expect((await sandbox.client.describe('app-v1')).map((i) => i.status)).toEqual(['online']);
    expect(progress).toEqual(
      expect.arrayContaining(['pm2 stop app-v2', `pm2 start ${ecosystem} --only app-v1`, 'app-v1: 1/1 instance online']),
    );
    expect(await waitFor(async () => (await version()) === 'v1' && 'v1', 10_000)).toBe('v1');
  });

  it('start_previous is idempotent', async () => {
    const progress: string[] = [];
    await pm2Strategy(startPrevious(), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).execute(context('v1', progress));

    expect(progress).toEqual(expect.arrayContaining(['app-v2 is already stopped', 'app-v1 is already online']));
    expect((await sandbox.client.describe('app-v2')).map((i) => i.status)).toEqual(['stopped']);
    expect((await sandbox.client.describe('app-v1')).map((i) => i.status)).toEqual(['online']);
    expect(await version()).toBe('v1');
  });

  it('start_previous restarts a previous app pm2 knows but is not running', async () => {
    await sandbox.client.stop('app-v1');
    const progress: string[] = [];
    // No ecosystem: pm2 already knows app-v1.
    const config = configOf({ action: 'start_previous', pm2_app: 'app-v2', app_prefix: 'app-' });
    await pm2Strategy(config, { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).execute(context('v1', progress));

    expect(progress).toContain('pm2 restart app-v1');
    expect((await sandbox.client.describe('app-v1')).map((i) => i.status)).toEqual(['online']);
    expect(await waitFor(async () => (await version()) === 'v1' && 'v1', 10_000)).toBe('v1');
  });

  it('lists what is missing when the previous app is unknown and no ecosystem defines it', async () => {
    const strategy = pm2Strategy(configOf({ action: 'start_previous', pm2_app: 'app-v2', app_prefix: 'app-' }), {
      pm2: sandbox.client,
      run: new ProcessRunner(),
      clock: systemClock,
    });
    const problems = await strategy.checkReadiness(context('v0'));
    expect(problems).toEqual([expect.stringMatching(/pm2 does not know app "app-v0" and no ecosystem file/)]);

    const error = await strategy.execute(context('v0')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toContain('app-v0');
    // Refused before anything changed.
    expect((await sandbox.client.describe('app-v1')).map((i) => i.status)).toEqual(['online']);
  });

  it('refuses a version that is not a plain name', async () => {
    const strategy = pm2Strategy(startPrevious(), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
    expect((await strategy.checkReadiness(context('../v1'))).join('\n')).toMatch(/is not allowed/);
    const error = await strategy.execute(context('../v1')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).step).toBe('validate');
  });

  it('lists an unknown pm2 app for restart and reload', async () => {
    for (const action of ['restart', 'reload'] as const) {
      const strategy = pm2Strategy(configOf({ action, pm2_app: 'no-such-app' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock });
      expect(await strategy.checkReadiness(context('v1'))).toEqual(['pm2 does not know app "no-such-app"']);
      await expect(strategy.execute(context('v1'))).rejects.toBeInstanceOf(RollbackError);
    }
  });

  it('reload brings the app back online', async () => {
    const before = (await sandbox.client.describe('app-v1'))[0]!;
    const progress: string[] = [];
    await pm2Strategy(configOf({ action: 'reload', pm2_app: 'app-v1' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock }).execute(
      context('v1', progress),
    );
    const after = (await sandbox.client.describe('app-v1'))[0]!;
    expect(after.status).toBe('online');
    expect(after.pid).not.toBe(before.pid);
    expect(progress).toEqual(['pm2 reload app-v1', 'app-v1: 1/1 instance online']);
    expect(await waitFor(async () => (await version()) === 'v1' && 'v1', 10_000)).toBe('v1');
  });

  it('stops with a RollbackError when the caller cancels', async () => {
    const controller = new AbortController();
    controller.abort(new Error('operator cancelled'));
    const error = await pm2Strategy(configOf({ action: 'restart', pm2_app: 'app-v1' }), { pm2: sandbox.client, run: new ProcessRunner(), clock: systemClock })
      .execute({ ...context('v1'), signal: controller.signal })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toMatch(/was cancelled/);
  });

  it('gives up with a RollbackError when the step timeout passes', async () => {
    const error = await pm2Strategy(configOf({ action: 'restart', pm2_app: 'app-v1', timeout: '1ms' }), {
      pm2: sandbox.client,
      run: new ProcessRunner(),
      clock: systemClock,
    })
      .execute(context('v1'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toMatch(/timed out after 1 ms/);
    // Whatever pm2 call was under way when the step gave up, the app ends up online again.
    await waitFor(async () => (await sandbox.client.describe('app-v1'))[0]?.status === 'online', 10_000);
  });
});
