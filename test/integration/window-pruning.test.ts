/**
 * Issue 13 item 2: old release windows' data is pruned (state.keep_windows), never the current
 * window or one a rollback may still need, and the state dir's disk use is a metric and a
 * preflight check. Through the real daemon (file store, a config step whose prepare snapshots a
 * file into each window's directory).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { versionApp } from '../../bench/chaos/redeploy-scenario.js';
import { parseConfigText } from '../../src/config/load.js';
import { windowId } from '../../src/core/windows.js';
import { createLogger } from '../../src/log.js';
import { startDaemon } from '../../src/shell/daemon.js';
import { pruneWindows } from '../../src/shell/step-data.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function waitFor<T>(check: () => Promise<T | null | false | undefined> | T | null | false | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('release windows are pruned, and state_dir is measured', () => {
  it('keeps the newest keep_windows windows as releases follow each other; exports the state dir size; preflight checks free space', async () => {
    const app = await versionApp();
    cleanups.push(() => app.close());
    const dir = await mkdtemp(join(tmpdir(), 'rg-prune-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'app'));
    await writeFile(join(dir, 'app', '.env'), 'FEATURE=on\n'.repeat(100));
    const stateDir = join(dir, 'state');
    const yaml = stringify({
      service: 'web',
      state_dir: stateDir,
      state: { keep_windows: 2, min_free_mb: 1_000_000_000 },
      server: { port: 0 },
      probes: [{ name: 'health', type: 'http', url: app.url, version_path: 'version' }],
      schedule: { interval: '100ms', fast_interval: '100ms' },
      release: { version_probe: 'health', window: '10m' },
      rules: { health: { probe: 'health' } },
      rollback: { steps: [{ type: 'config', dir: join(dir, 'app'), files: ['.env'] }] },
      verification: { probe: 'health' },
    });
    const daemon = await startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'error', format: 'json', stream: new PassThrough() }) });
    cleanups.push(() => daemon.stop());
    await waitFor(() => daemon.guard.current.stable === 'v1');
    const windows = () => readdir(join(stateDir, 'windows')).catch(() => [] as string[]);
    const ids: string[] = [];
    for (const version of ['v2', 'v3', 'v4', 'v5', 'v6']) {
      const result = await daemon.guard.control({ action: 'release', version, deployedBy: 'test' });
      expect(result.ok).toBe(true);
      const id = daemon.guard.current.release!.id;
      ids.push(id);
      // Its prepare snapshotted .env into its own directory.
      await waitFor(async () => (await readdir(join(stateDir, 'windows', id, '1-config')).catch(() => [])).length > 0);
    }
    expect(new Set(ids).size).toBe(5);
    // Every new window closed the one before: at most keep_windows are left, the newest ones.
    await waitFor(async () => (await windows()).length === 2);
    expect((await windows()).sort()).toEqual(ids.slice(-2).sort());

    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    const bytes = Number(/^release_guard_state_dir_bytes (\d+)$/m.exec(metrics)?.[1]);
    expect(bytes).toBeGreaterThan(1000);
    expect(metrics).toMatch(/^release_guard_state_dir_free_bytes \d+/m);

    const preflight = (await (await fetch(`${daemon.url}/preflight`)).json()) as { ready: boolean; problems: string[] };
    expect(preflight.ready).toBe(false);
    expect(preflight.problems).toContainEqual(expect.stringMatching(/^only [\d.]+ MiB free on the filesystem of state_dir, below state.min_free_mb 1000000000: a pre-release backup or emergency dump may not fit$/));
  });

  it('never prunes a protected window (the current one, the last one a rollback by hand uses)', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'rg-prune-unit-'));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const ids = [1, 2, 3, 4, 5, 6].map((n) => windowId(Date.parse('2026-01-01T00:00:00Z') + n * 60_000, `v${n}`));
    for (const id of ids) await mkdir(join(stateDir, 'windows', id, '1-database'), { recursive: true });
    // Not a window: left alone.
    await mkdir(join(stateDir, 'windows', 'operator-notes'));
    const removed = await pruneWindows(stateDir, 3, [ids[0], undefined]);
    expect(removed).toEqual([ids[1], ids[2]]);
    expect((await readdir(join(stateDir, 'windows'))).sort()).toEqual([ids[0], ids[3], ids[4], ids[5], 'operator-notes'].sort());
  });
});
