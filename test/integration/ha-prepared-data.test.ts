/**
 * Issue 13, item 11: prepared data reachable by whichever guard acts. Two guards of one instance
 * on one real Redis and one `store.shared_dir`; a database step (real MariaDB, real mysqldump and
 * mysql) prepares the pre-release dump. The leader (a child process) takes the dump when the
 * announced window opens and its host dies mid-window (SIGKILL of its process group); the standby
 * takes the lease and, when the release turns bad, restores the leader's dump.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import type { RunningDaemon } from '../../src/shell/daemon.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor } from '../helpers/pm2-sandbox.js';
import { deleteKeys, guardFiles, inProcessGuard, observe, spawnGuard, TOKEN, uniquePrefix } from '../helpers/redis-guards.js';
import { mysqlConfig, redisConfig } from '../helpers/services.js';

const APP = 'shop';
const HOST = 'shop-1';
const TTL_MS = 3000;
const PASSWORD_ENV = 'RG_TEST_HA_DB_PASSWORD';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

/** Every prepared.json under `dir` (wherever the window's step data lives), parsed. */
async function markersUnder(dir: string): Promise<{ file: string; state: string; version: string }[]> {
  const found: { file: string; state: string; version: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile() && entry.name === 'prepared.json') {
      const file = join(entry.parentPath, entry.name);
      const marker = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as { state: string; version: string };
      found.push({ file, ...marker });
    }
  }
  return found;
}

describe('prepared data under HA (store.shared_dir)', () => {
  it('config validation: the redis store with a step that prepares data needs store.shared_dir', () => {
    const yaml = (store: string) => `
service: shop
store: {type: redis, host: 127.0.0.1, port: 6379${store}}
probes: [{name: health, type: http, url: "http://127.0.0.1:1/health", version_path: version}]
release: {version_probe: health}
rules: {health: {probe: health}}
rollback: {steps: [{type: database, database: shop, user: rg, password_env: X}]}
verification: {probe: health}
`;
    expect(() => parseConfigText(yaml(''), 'test')).toThrow(/store\.shared_dir: required with the redis store when a rollback step prepares data \(database\)/);
    expect(() => parseConfigText(yaml(', shared_dir: /srv/shared'), 'test')).not.toThrow();
  });

  it("the leader's host dies mid-window; the standby takes over and the rollback restores the leader's dump", async () => {
    // The database: an account of this test's own on the shared throwaway MariaDB.
    const db = mysqlConfig();
    const root = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
    cleanups.push(() => root.end());
    const id = randomBytes(4).toString('hex');
    const database = `ha_${id}`;
    const user = `ha_${id}`;
    const password = `pw-${randomBytes(12).toString('hex')}`;
    await root.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'`);
    await root.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.0.0.1'`);
    await root.query(`CREATE DATABASE ${database}`);
    cleanups.push(() => root.query(`DROP DATABASE IF EXISTS ${database}`));
    cleanups.push(() => root.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`));
    await root.query(`CREATE TABLE ${database}.users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)`);
    await root.query(`INSERT INTO ${database}.users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')`);
    process.env[PASSWORD_ENV] = password;
    cleanups.push(async () => delete process.env[PASSWORD_ENV]);

    const sandbox = await createPm2Sandbox();
    cleanups.push(() => sandbox.cleanup());
    const appPort = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    await pointCurrent(sandbox.dir, 'v1');
    await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(appPort) } });
    await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
    const redis = redisConfig();
    const keyPrefix = uniquePrefix();
    cleanups.push(() => deleteKeys(redis, keyPrefix));
    const shared = await mkdtemp(join(tmpdir(), 'rg-shared-'));
    cleanups.push(() => rm(shared, { recursive: true, force: true }));
    const spec = {
      sandbox,
      app: APP,
      appPort,
      redis,
      keyPrefix,
      hostId: HOST,
      leaseTtl: `${TTL_MS}ms`,
      window: '60s',
      storeExtra: { shared_dir: shared },
      stepsBefore: [
        { type: 'database', host: '127.0.0.1', port: db.port, user, password_env: PASSWORD_ENV, database, restore: 'automatic', check_tables: ['users'], timeout: '60s' },
      ],
    };
    const filesA = await guardFiles(spec);
    cleanups.push(() => rm(filesA.stateDir, { recursive: true, force: true }));
    const observer = await observe(redis, keyPrefix, HOST);
    cleanups.push(() => observer.close());

    const leader = spawnGuard(filesA);
    cleanups.push(() => leader.killHost());
    const first = await waitFor(async () => (await observer.leaseHolder()) ?? null, 30_000);
    await waitFor(async () => (await observer.loadState())?.stable === 'v1', 30_000);
    // The acting guard backs the stable version up (stable_backup_every), into the shared directory too.
    const stableBackup = await waitFor(async () => (await markersUnder(join(shared, 'stable'))).find((m) => m.version === 'v1' && m.state === 'complete'), 30_000);
    expect(await readdir(join(stableBackup.file, '..'))).toEqual(expect.arrayContaining(['pre-release.sql', 'snapshot.json']));
    const filesB = await guardFiles(spec);
    cleanups.push(() => rm(filesB.stateDir, { recursive: true, force: true }));
    const standby: RunningDaemon = await inProcessGuard(filesB, sandbox);
    cleanups.push(() => standby.stop());
    expect(standby.guard.status().lease).toMatchObject({ leader: false, holder: first.holder });
    // The standby's preflight reads the leader's marker in the shared directory.
    const before = await standby.guard.preflight();
    expect(before.problems.filter((p) => p.includes('shared_dir'))).toEqual([]);

    // Announced, then deployed: v2 answers 500 from 25 s after it starts.
    const announced = await fetch(`http://127.0.0.1:${filesA.guardPort}/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ version: 'v2', deployedBy: 'ci' }),
    });
    expect(announced.status).toBe(200);
    await buildRelease(sandbox.dir, 'v2', { fault: '5xx', faultAfterMs: 25_000 });
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.reload(APP);
    // The leader's pre-release dump is complete, in the shared directory (not its own state dir).
    const [marker] = await waitFor(async () => {
      const list = (await markersUnder(shared)).filter((m) => m.version === 'v2' && m.state === 'complete');
      return list.length > 0 ? list : null;
    }, 30_000);
    expect(await readdir(join(marker!.file, '..'))).toContain('pre-release.sql');
    // The release migrates and corrupts rows; the standby sees the window's data is readable.
    await root.query(`ALTER TABLE ${database}.users ADD COLUMN email VARCHAR(128)`);
    await root.query(`UPDATE ${database}.users SET name = 'CORRUPTED' WHERE id <= 2`);
    // The standby follows the leader's state on its own tick.
    await waitFor(() => standby.guard.current.release?.version === 'v2' || null, 10_000);
    const standbyView = await standby.guard.preflight();
    expect(standbyView.problems).toEqual([]);

    // The leader's host dies mid-window; the standby takes over.
    await leader.killHost();
    await waitFor(() => standby.guard.status().lease?.leader === true, TTL_MS + 5000, 50);
    // Still guarding: the rollback below is the standby's own (the breach says why if not).
    expect({ phase: standby.guard.current.phase, breach: standby.guard.current.rollback?.breach.reason }).toEqual({ phase: 'guarding', breach: undefined });

    // v2 turns bad: the standby rolls back, restoring the dump the leader took.
    const state = await waitFor(async () => {
      const s = await observer.loadState();
      return s?.phase === 'rolled_back' || s?.phase === 'failed' || s?.rollback?.steps.some((step) => step.ok === false) ? s : null;
    }, 60_000);
    const step = state.rollback!.steps.find((s) => s.index === 0)!;
    expect({ ok: step.ok, error: step.error }).toEqual({ ok: true, error: undefined });
    expect(state.phase).toBe('rolled_back');
    expect(step.output[0]).toMatch(/^restoring this window's pre-release backup \(taken .*, before the release\)$/);
    expect(step.output.join('\n')).toContain(`restoring ${database} from ${shared}`);
    const [columns] = await root.query<mysql.RowDataPacket[]>(
      'SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      [database, 'users'],
    );
    expect(columns.map((c) => c.COLUMN_NAME)).toEqual(['id', 'name']);
    const [rows] = await root.query<mysql.RowDataPacket[]>(`SELECT id, name FROM ${database}.users ORDER BY id`);
    expect(rows.map((r) => r.name)).toEqual(['ada', 'grace', 'linus']);
  }, 150_000);
});
