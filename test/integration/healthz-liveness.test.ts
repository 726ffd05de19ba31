/**
 * Issue 13 item 9: "a guard whose loop is stuck is restarted". /healthz now reflects liveness
 * (src/shell/loop-liveness.ts), so a watchdog restarts a guard whose event loop is mostly blocked
 * or whose tick loop stopped.
 *
 * The blocked guard is real: the CLI daemon, with a module preloaded (`node --import`) that, once
 * told to by a file, blocks the event loop 1.5 s of every 1.6 s, as a hostile parse would. Before
 * that its /healthz is 200; after, 503 with the reason. The tick-loop signal is checked on the
 * class with a hand-driven clock (a tick loop that never completes cannot be produced honestly
 * from outside the daemon).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { writeLoopBlocker } from '../../bench/chaos/host-limits.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { LoopLiveness } from '../../src/shell/loop-liveness.js';
import { freePort, waitFor } from '../helpers/pm2-sandbox.js';

let dir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-liveness-'));
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function healthz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  // Long enough to get an answer between two blocks.
  const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('/healthz reflects loop liveness', () => {
  it('a guard whose event loop is mostly blocked answers 503 with the reason', async () => {
    const { module: blocker, trigger } = await writeLoopBlocker(dir);
    const port = await freePort();
    const config = join(dir, 'config.yaml');
    await writeFile(
      config,
      stringify({
        service: 'web',
        state_dir: join(dir, 'state'),
        server: { host: '127.0.0.1', port, liveness: '5s' },
        log: { level: 'info', format: 'json' },
        probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:9/health`, timeout: '1s', version_path: 'version' }],
        release: { version_probe: 'health' },
        rules: { health: { probe: 'health' } },
        rollback: { steps: [{ type: 'command', command: ['/bin/true'] }] },
        verification: { probe: 'health' },
      }),
    );
    child = spawn(process.execPath, ['--import', blocker, '--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', config], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let logs = '';
    child.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await healthz(url)).status === 200, 30_000).catch((error: unknown) => {
      throw new Error(`the guard did not start: ${logs.slice(-1000)}`, { cause: error });
    });
    // Healthy for a whole window while nothing blocks it.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const healthy = await healthz(url);
    expect(healthy.status, JSON.stringify(healthy.body)).toBe(200);
    expect(healthy.body).toMatchObject({ ok: true, windowMs: 5000 });

    await writeFile(trigger, '');
    const started = Date.now();
    const sick = await waitFor(async () => {
      const answer = await healthz(url);
      return answer.status === 503 ? answer : null;
    }, 30_000, 200);
    expect(sick.body.ok).toBe(false);
    expect(sick.body.error).toMatch(/^the event loop was blocked \d+\.\d s of the last 5\.0 s \(longest 1\.\d s\); probes and rules run late$/);
    // Within about one window of the blocking starting.
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 90_000);

  it('a tick loop that stopped is reported once it is older than the window; a recent one is fine', () => {
    let now = 1_000_000;
    let lastTick: number | null = null;
    const liveness = new LoopLiveness({ clock: { now: () => now, sleep: () => Promise.resolve() }, windowMs: 30_000, lastTickAt: () => lastTick });
    // No tick yet: counted from start.
    now += 10_000;
    expect(liveness.check()).toMatchObject({ ok: true, tickAgeMs: 10_000 });
    lastTick = now;
    now += 30_000;
    expect(liveness.check().ok).toBe(true);
    now += 1_500;
    expect(liveness.check()).toMatchObject({
      ok: false,
      reason: "the guard's tick loop has not run for 31.5 s (it runs every second; limit server.liveness 30.0 s)",
    });
    lastTick = now;
    expect(liveness.check().ok).toBe(true);
  });
});
