/**
 * The database as a signal, end to end with a real MariaDB (a throwaway instance of this test, so
 * it can be stopped): a release that makes the key query slow is rolled back by db_latency; a
 * database that goes away mid-window is reported as blind, never read as healthy, and the guard
 * keeps guarding.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { startMariaDb, type MysqlInfo, type RunningService } from '../helpers/services.js';

const APP = 'shop';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

interface World {
  sandbox: Pm2Sandbox;
  db: RunningService<MysqlInfo>;
  appPort: number;
  stateDir: string;
  /** Sets how long the probed query sleeps, as a slow release would make it. */
  setDelay(seconds: number): Promise<void>;
}

async function world(): Promise<World> {
  const db = await startMariaDb();
  cleanups.push(() => db.stop({ graceMs: 0 }));
  // Root (no password, a throwaway server) sets up the control table the probe reads.
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
  cleanups.push(() => admin.end());
  await admin.query('CREATE DATABASE shop');
  await admin.query('CREATE TABLE shop.control (delay DOUBLE NOT NULL)');
  await admin.query('INSERT INTO shop.control VALUES (0)');
  const sandbox = await createPm2Sandbox();
  cleanups.push(() => sandbox.cleanup());
  const stateDir = await mkdtemp(join(tmpdir(), 'rg-db-'));
  cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
  const appPort = await freePort();
  await buildRelease(sandbox.dir, 'v1');
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'fork', env: { PORT: String(appPort) } });
  await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
  return { sandbox, db, appPort, stateDir, setDelay: async (s) => void (await admin.query('UPDATE shop.control SET delay = ?', [s])) };
}

async function guard(w: World, window = '30s'): Promise<RunningDaemon> {
  process.env.RG_TEST_DB_PASSWORD = w.db.info.password;
  const yaml = stringify({
    service: APP,
    state_dir: w.stateDir,
    server: { port: 0 },
    log: { level: 'debug', format: 'json' },
    pm2: { home: w.sandbox.home, app: APP },
    probes: [
      { name: 'health', type: 'http', url: `http://127.0.0.1:${w.appPort}/health`, version_path: 'version' },
      { name: 'db', type: 'mysql', port: w.db.port, user: w.db.info.user, password_env: 'RG_TEST_DB_PASSWORD', query: 'SELECT SLEEP(delay) FROM shop.control', timeout: '2s' },
    ],
    schedule: { interval: '250ms', fast_interval: '250ms' },
    release: { version_probe: 'health', window, initial_delay: '1s', settle: '1m' },
    rules: { health: { probe: 'health' }, db_latency: { probe: 'db', threshold: '100ms', for: '2s' } },
    rollback: { steps: [{ type: 'releases', dir: w.sandbox.dir, pm2_app: APP }] },
    verification: { probe: 'health', passes: 3 },
  });
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const daemon = await startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'debug', format: 'json', stream }), pm2: w.sandbox.client });
  cleanups.push(() => daemon.stop());
  cleanups.push(async () => expect(logs.join('')).not.toContain(w.db.info.password));
  await waitFor(() => daemon.guard.current.stable === 'v1', 10_000);
  return daemon;
}

async function deployV2(w: World) {
  await buildRelease(w.sandbox.dir, 'v2');
  await pointCurrent(w.sandbox.dir, 'v2');
  await w.sandbox.client.reload(APP);
}

const dbVerdict = (d: RunningDaemon) => d.guard.status().rules.find((r) => r.rule === 'db_latency');

describe('the database as a signal', () => {
  it('a release that makes the key query slow (SLEEP 0.3 s) is rolled back by db_latency', async () => {
    const w = await world();
    const daemon = await guard(w);
    await waitFor(() => dbVerdict(daemon)?.outcome === 'pass', 10_000);
    await deployV2(w);
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    await w.setDelay(0.3);
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 30_000);
    const breach = daemon.guard.current.rollback!.breach;
    expect(breach.rules).toEqual(['db_latency']);
    expect(breach.reason).toMatch(/db_latency: 3\d\d(\.\d)?ms > 100ms for \ds >= 2s/);
  });

  it('a database that stops mid-window is reported, never read as healthy; the guard keeps guarding', async () => {
    const w = await world();
    const daemon = await guard(w, '8s');
    await deployV2(w);
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    await w.db.stop({ graceMs: 0 });
    const verdict = await waitFor(() => (dbVerdict(daemon)?.outcome === 'error' ? dbVerdict(daemon) : null), 15_000);
    expect(verdict.message).toMatch(/db_latency: probe db unavailable: .*cannot connect/);
    // Still guarding with its other eyes: health keeps passing.
    expect(daemon.guard.status().rules.find((r) => r.rule === 'health')?.outcome).toBe('pass');
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/release_guard_rule_inconclusive\{rule="db_latency"\} 1/);
    expect(metrics).toMatch(/release_guard_probe_failures_total\{probe="db"\} [1-9]/);
    // The window ends blind on db_latency: v2 is neither promoted nor rolled back.
    await waitFor(() => daemon.guard.current.phase === 'stable', 20_000);
    expect(daemon.guard.current).toMatchObject({ stable: 'v1', running: 'v2', autoRollbacks: [] });
  });
});
