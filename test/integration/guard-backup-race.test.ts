/**
 * Issue 13, item 1, end to end through the daemon: a release that fails at once is rolled back
 * while its pre-release dump is still running. The dump is throttled by a mysqldump wrapper (the
 * real mysqldump into a temporary file, its output handed over 5 s later, as a big database's
 * would be), configured as the
 * step's `mysqldump` program. Real MariaDB (a throwaway server of this file's own), real pm2 app.
 */
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { throttledMysqldump } from '../../bench/chaos/backup-race-scenarios.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon } from '../../src/shell/daemon.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor } from '../helpers/pm2-sandbox.js';
import { startMariaDb } from '../helpers/services.js';

const APP = 'shop';
const PASSWORD_ENV = 'RG_TEST_RACE_DB_PASSWORD';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

describe('a rollback that comes before the pre-release backup is done', () => {
  it('waits for the running dump (progress in the record) and restores it', async () => {
    const db = await startMariaDb();
    cleanups.push(() => db.stop({ graceMs: 0 }));
    const root = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
    cleanups.push(() => root.end());
    const password = `pw-${randomBytes(12).toString('hex')}`;
    await root.query(`CREATE USER 'rg'@'127.0.0.1' IDENTIFIED BY '${password}'`);
    await root.query(`GRANT ALL PRIVILEGES ON *.* TO 'rg'@'127.0.0.1'`);
    await root.query('CREATE DATABASE shop');
    await root.query('CREATE TABLE shop.users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)');
    await root.query("INSERT INTO shop.users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')");
    process.env[PASSWORD_ENV] = password;
    cleanups.push(async () => delete process.env[PASSWORD_ENV]);

    const sandbox = await createPm2Sandbox();
    cleanups.push(() => sandbox.cleanup());
    const stateDir = await mkdtemp(join(tmpdir(), 'rg-race-'));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const { program: mysqldump, taken } = await throttledMysqldump(join(stateDir, 'bin'), 5000);
    const appPort = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    await pointCurrent(sandbox.dir, 'v1');
    await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(appPort) } });
    await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);

    const yaml = stringify({
      service: APP,
      state_dir: stateDir,
      server: { port: 0 },
      log: { level: 'info', format: 'json' },
      pm2: { home: sandbox.home, app: APP },
      probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' }],
      schedule: { interval: '250ms', fast_interval: '100ms' },
      release: { version_probe: 'health', window: '60s', initial_delay: '0s', settle: '1m' },
      rules: { health: { probe: 'health', consecutive: 3 } },
      rollback: {
        steps: [
          { type: 'database', host: '127.0.0.1', port: db.port, user: 'rg', password_env: PASSWORD_ENV, database: 'shop', restore: 'automatic', check_tables: ['users'], mysqldump, timeout: '60s' },
          { type: 'releases', dir: sandbox.dir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' },
        ],
      },
      verification: { probe: 'health', passes: 3, timeout: '20s' },
    });
    const logs: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
    const daemon = await startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'info', format: 'json', stream }), pm2: sandbox.client });
    cleanups.push(() => daemon.stop());
    await waitFor(() => daemon.guard.current.stable === 'v1', 15_000);

    // Announced before the deploy; the release answers 500 at once and migrates + corrupts rows.
    const announced = await daemon.guard.control({ action: 'release', version: 'v2', deployedBy: 'ci' });
    expect(announced.ok).toBe(true);
    const windowOpened = Date.now();
    // The dump is taken (its output held back 5 s): what the release does next is not in it.
    await waitFor(() => access(taken).then(() => true, () => false), 15_000, 20);
    await root.query('ALTER TABLE shop.users ADD COLUMN email VARCHAR(128)');
    await root.query("UPDATE shop.users SET name = 'CORRUPTED' WHERE id <= 2");
    await buildRelease(sandbox.dir, 'v2', { fault: '5xx' });
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.reload(APP);

    const decided = await waitFor(() => (daemon.guard.current.rollback ? daemon.guard.current.rollback : null), 20_000, 20);
    // Decided while the dump was still held back.
    expect(decided.startedAt - windowOpened).toBeLessThan(5000);
    await waitFor(() => (['rolled_back', 'failed'].includes(daemon.guard.current.phase) ? true : null), 60_000);
    const step = daemon.guard.current.rollback!.steps.find((s) => s.index === 0)!;
    expect({ ok: step.ok, error: step.error }).toEqual({ ok: true, error: undefined });
    expect(step.output[0]).toMatch(/^restoring this window's pre-release backup \(taken .*, before the release\)$/);
    expect(step.output).toContainEqual(expect.stringMatching(/^waiting for the pre-release backup \(\d+ s, [\d.]+ MB so far\)$/));
    expect(daemon.guard.current.phase).toBe('rolled_back');
    const [columns] = await root.query<mysql.RowDataPacket[]>("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'users' ORDER BY ORDINAL_POSITION");
    expect(columns.map((c) => c.COLUMN_NAME)).toEqual(['id', 'name']);
    const [rows] = await root.query<mysql.RowDataPacket[]>('SELECT name FROM shop.users ORDER BY id');
    expect(rows.map((r) => r.name)).toEqual(['ada', 'grace', 'linus']);
    expect(logs.join('')).not.toContain(password);
  }, 150_000);
});
