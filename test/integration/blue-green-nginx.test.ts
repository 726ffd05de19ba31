/**
 * The blue_green strategy in nginx mode against a real nginx on loopback (installed from Debian
 * when missing and we are root), proxying to two demo app processes: blue runs v1, green runs v2
 * (the bad release, active at the start). nginx runs in the foreground as this process's child
 * with everything in a temp dir: `-p <dir> -c <dir>/nginx.conf -e <dir>/error.log`, the same
 * arguments the strategy gets as nginx_args, so its `nginx -t` and `nginx -s reload` act on this
 * instance (found through the pid file in <dir>).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strategySchema, type BlueGreenStrategyConfig } from '../../src/config/schema.js';
import { freePort } from '../fixtures/demo-app/releases.js';
import { writeNginxConf } from '../../bench/nginx.js';
import { startLoad } from '../../demo/load.js';
import { RollbackError } from '../../src/errors.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { BLUE_GREEN_STATE, blueGreenStrategy } from '../../src/strategies/blue-green.js';
import { createStrategy } from '../../src/strategies/index.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import { ensureDebianPackage } from '../helpers/apt.js';
import { getJson, waitFor } from '../helpers/pm2-sandbox.js';
import { startDemoApp, type DemoApp } from '../helpers/prometheus.js';
import { systemClock } from '../../src/shell/clock.js';

describe('blue_green strategy, nginx mode (real nginx)', () => {
  let nginxBin: string;
  let dir: string;
  let upstreamFile: string;
  let nginxArgs: string[];
  let nginx: ChildProcess | undefined;
  let port: number;
  let blue: DemoApp;
  let green: DemoApp;
  const run = new ProcessRunner();
  const deps = { pm2: {} as Pm2Client, run, clock: systemClock };

  const upstream = (address: string) => `# written by the deploy tool\nupstream app {\n    server ${address} max_fails=3;\n    keepalive 8;\n}\n`;
  const version = async () => ((await getJson(`http://127.0.0.1:${port}/health`)).body as { version?: unknown }).version;
  const servedBy = (v: string) => waitFor(async () => (await version()) === v, 10_000, 50);
  /** Until 10 answers in a row come from `v`: the old workers of a reload accept for a moment longer. */
  const settledOn = (v: string) =>
    waitFor(async () => {
      for (let i = 0; i < 10; i += 1) if ((await version()) !== v) return false;
      return true;
    }, 10_000, 50);

  const configOf = (input: Partial<Record<keyof BlueGreenStrategyConfig, unknown>> = {}): BlueGreenStrategyConfig => {
    const parsed = strategySchema.parse({
      type: 'blue_green',
      mode: 'nginx',
      colors: { blue: blue.target, green: green.target },
      upstream_file: upstreamFile,
      upstream_name: 'app',
      nginx: nginxBin,
      nginx_args: nginxArgs,
      timeout: '30s',
      ...input,
    });
    if (parsed.type !== 'blue_green') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };

  const context = (dataDir: string, progress: string[]): RollbackContext => ({
    service: 'shop',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });

  /** Back to the starting point: green (v2) active. */
  async function activateGreen(): Promise<void> {
    await writeFile(upstreamFile, upstream(green.target));
    await run.run(nginxBin, [...nginxArgs, '-s', 'reload'], { timeoutMs: 10_000 });
    await settledOn('v2');
  }

  beforeAll(async () => {
    const ensured = await ensureDebianPackage('nginx', 'nginx');
    nginxBin = ensured.path;
    if (ensured.installMs > 0) process.stderr.write(`nginx installed with apt-get in ${Math.round(ensured.installMs)}ms\n`);

    dir = await mkdtemp(path.join(os.tmpdir(), 'rg-nginx-'));
    // As root, nginx's workers run as nobody: they must reach the temp paths below.
    await chmod(dir, 0o755);
    [blue, green] = await Promise.all([startDemoApp({ env: { APP_VERSION: 'v1' } }), startDemoApp({ env: { APP_VERSION: 'v2' } })]);
    port = await freePort();
    upstreamFile = path.join(dir, 'upstream.conf');
    await writeFile(upstreamFile, upstream(green.target));
    nginxArgs = await writeNginxConf(dir, {
      workers: 1,
      connections: 256,
      http: [
        'access_log off;',
        // A graceful reload closes the old workers' idle client connections; a request a client sends
        // on one at that instant fails unless the client retries it (browsers do; Node's http.Agent,
        // which the load uses, does not). Without client keep-alive the load measures the switch itself.
        'keepalive_timeout 0;',
        `include ${upstreamFile};`,
        'server {',
        `    listen 127.0.0.1:${port};`,
        '    location / {',
        '        proxy_pass http://app;',
        '        proxy_http_version 1.1;',
        '        proxy_set_header Connection "";',
        '    }',
        '}',
      ],
    });
    nginx = spawn(nginxBin, nginxArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A run that ends without afterAll must not leave nginx behind (SIGTERM: the master stops its workers).
    process.once('exit', () => nginx?.kill('SIGTERM'));
    await waitFor(async () => {
      if (nginx?.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return (await version()) === 'v2';
    }, 15_000);
  }, 15 * 60_000);

  afterAll(async () => {
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      const exited = new Promise((resolve) => nginx!.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    await Promise.all([blue?.stop(), green?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('check passes on a working setup and names an unknown active address', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-bg-'));
    try {
      expect(await (await createStrategy(configOf(), deps)).checkReadiness(context(dataDir, []))).toEqual([]);
      const problems = await blueGreenStrategy(configOf({ colors: { blue: blue.target, green: '127.0.0.1:1' } }), deps).checkReadiness(context(dataDir, []));
      expect(problems).toEqual([
        `cannot tell the active colour of upstream app in ${upstreamFile}: ${green.target} is neither blue (${blue.target}) nor green (127.0.0.1:1)`,
      ]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('switches green -> blue under load with no failed request; a second execute keeps blue', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-bg-'));
    try {
      const strategy = await createStrategy(configOf(), deps);
      const load = startLoad(`http://127.0.0.1:${port}/health`, 50, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const progress: string[] = [];
      await strategy.execute(context(dataDir, progress));
      await servedBy('v1');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const stats = await load.stop();

      expect(stats.failed).toBe(0);
      expect(stats.ok).toBeGreaterThan(30);
      expect(stats.versions).toEqual(['v2', 'v1']);
      expect(await readFile(upstreamFile, 'utf8')).toBe(upstream(blue.target));
      expect(JSON.parse(await readFile(path.join(dataDir, BLUE_GREEN_STATE), 'utf8'))).toMatchObject({ mode: 'nginx', from: 'green', to: 'blue' });
      expect(await readFile(path.join(dataDir, 'upstream.before'), 'utf8')).toBe(upstream(green.target));
      expect(progress).toEqual([
        `${upstreamFile}: upstream app green (${green.target}) -> blue (${blue.target})`,
        'nginx -s reload',
      ]);

      // Resumed or repeated: blue is now active, and the recorded decision keeps it (no flip back).
      const again: string[] = [];
      await strategy.execute(context(dataDir, again));
      expect(again[0]).toMatch(/^this rollback already chose blue \(from green, at .*\); converging on it$/);
      expect(again).toContain(`upstream app already routes to blue (${blue.target}); reloading nginx to be sure it serves it`);
      expect(await readFile(upstreamFile, 'utf8')).toBe(upstream(blue.target));
      for (let i = 0; i < 5; i += 1) expect(await version()).toBe('v1');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
      await activateGreen();
    }
  });

  it('a target nginx -t refuses: RollbackError, the old file back in place, traffic unaffected', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-bg-'));
    try {
      const before = await readFile(upstreamFile, 'utf8');
      const strategy = blueGreenStrategy(configOf({ colors: { blue: '127.0.0.1:99999', green: green.target } }), deps);
      const load = startLoad(`http://127.0.0.1:${port}/health`, 50, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const progress: string[] = [];
      const error = await strategy.execute(context(dataDir, progress)).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stats = await load.stop();

      expect(error).toBeInstanceOf(RollbackError);
      expect((error as RollbackError).step).toBe('nginx-test');
      expect((error as RollbackError).message).toMatch(/^nginx -t failed: .*invalid port in upstream "127\.0\.0\.1:99999".*; .* was restored, traffic still goes to green$/s);
      expect(progress.at(-1)).toBe(`nginx -t failed; ${upstreamFile} restored (still green)`);
      expect(await readFile(upstreamFile, 'utf8')).toBe(before);
      expect(stats.failed).toBe(0);
      expect(stats.versions).toEqual(['v2']);
      await run.run(nginxBin, [...nginxArgs, '-t'], { timeoutMs: 10_000 });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
