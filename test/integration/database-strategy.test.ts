/**
 * The database strategy against a real MariaDB, through the real mysqldump and mysql clients.
 *
 * A MariaDB of this file's own (startMariaDb): the shared one's test account may only SELECT, and
 * this strategy needs an account that can dump, restore, create and drop. Each test works in a
 * database of its own, dropped afterwards. Every command the strategy runs is recorded, so each
 * test can assert the password never appeared in a program's arguments.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type DatabaseStrategyConfig } from '../../src/config/schema.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { RollbackError } from '../../src/errors.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../../src/strategies/command-runner.js';
import { databaseStrategy, PRE_RELEASE_DUMP, SNAPSHOT_FILE, type DatabaseSnapshot } from '../../src/strategies/database.js';
import { createStrategy } from '../../src/strategies/index.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy } from '../../src/strategies/types.js';
import { createPm2Sandbox, DEMO_APP, freePort, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { startMariaDb, type RunningService, type MysqlInfo } from '../helpers/services.js';
import { systemClock } from '../../src/shell/clock.js';

const PASSWORD_ENV = 'RG_TEST_DB_STRATEGY_PASSWORD';
const ADMIN = 'rg_admin';

interface Call {
  command: string;
  args: readonly string[];
  env: Record<string, string> | undefined;
  stdin: CommandOptions['stdin'];
}

/** The real runner, recording every call; `before` runs just before a call starts. */
class RecordingRunner implements CommandRunner {
  readonly calls: Call[] = [];
  private readonly inner = new ProcessRunner();
  before: ((call: Call) => Promise<void>) | undefined;

  async run(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
    const call = { command, args: [...args], env: options.env, stdin: options.stdin };
    this.calls.push(call);
    await this.before?.(call);
    return this.inner.run(command, args, options);
  }

  which(command: string): Promise<string | null> {
    return this.inner.which(command);
  }
}

describe('database strategy (real MariaDB, mysqldump and mysql)', () => {
  let server: RunningService<MysqlInfo>;
  let admin: mysql.Connection;
  let password: string;
  let sandbox: Pm2Sandbox;
  let runner: RecordingRunner;
  let database: string;
  let dataDir: string;
  let progress: string[];

  /** Runs SQL as the admin account in the test's database. */
  async function sql<T = mysql.RowDataPacket[]>(text: string, values: unknown[] = []): Promise<T> {
    const [rows] = await admin.query({ sql: text, values });
    return rows as T;
  }

  async function seed(): Promise<void> {
    await sql(`CREATE TABLE ${database}.users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)`);
    await sql(`INSERT INTO ${database}.users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus'), (4, 'barbara'), (5, 'ken')`);
    await sql(`CREATE TABLE ${database}.orders (id INT PRIMARY KEY AUTO_INCREMENT, user_id INT NOT NULL, total DECIMAL(10, 2) NOT NULL)`);
    await sql(`INSERT INTO ${database}.orders (user_id, total) VALUES (1, 9.99), (2, 20.00), (3, 5.50)`);
  }

  /** The bad release: a migration adds a column, then the new code corrupts and deletes rows. */
  async function badRelease(): Promise<void> {
    await sql(`ALTER TABLE ${database}.users ADD COLUMN email VARCHAR(128)`);
    await sql(`UPDATE ${database}.users SET name = 'CORRUPTED', email = 'x@example.com' WHERE id <= 2`);
    await sql(`DELETE FROM ${database}.users WHERE id >= 4`);
    await sql(`INSERT INTO ${database}.orders (user_id, total) VALUES (9, 1.00)`);
    await sql(`CREATE TABLE ${database}.release_audit (id INT)`);
  }

  const users = async () => sql(`SELECT * FROM ${database}.users ORDER BY id`);
  const orders = async () => sql(`SELECT id, user_id, total FROM ${database}.orders ORDER BY id`);
  const columns = async (table: string) =>
    (await sql(`SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, [database, table])).map(
      (r) => r.COLUMN_NAME as string,
    );

  /** A down-migration a deploy tool would run: drops the column the release added. */
  const migrateDown = () => [
    process.execPath,
    '-e',
    [
      "const mysql = require('mysql2/promise');",
      '(async () => {',
      '  const [host, port, user, database] = process.argv.slice(1);',
      // Steps run with a minimal environment: the step hands its password over as MYSQL_PWD.
      '  const c = await mysql.createConnection({ host, port: Number(port), user, database, password: process.env.MYSQL_PWD });',
      "  await c.query('ALTER TABLE users DROP COLUMN email');",
      "  console.log('migrated down: dropped users.email');",
      '  await c.end();',
      '})().catch((e) => { console.error(e.message); process.exit(1); });',
    ].join('\n'),
    server.info.host,
    String(server.port),
    ADMIN,
    database,
  ];

  const configOf = (input: Partial<Record<keyof DatabaseStrategyConfig, unknown>> = {}): DatabaseStrategyConfig => {
    const parsed = strategySchema.parse({
      type: 'database',
      host: server.info.host,
      port: server.port,
      user: ADMIN,
      password_env: PASSWORD_ENV,
      database,
      check_tables: ['users', 'orders'],
      timeout: '60s',
      ...input,
    });
    if (parsed.type !== 'database') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };

  const strategyOf = (input: Partial<Record<keyof DatabaseStrategyConfig, unknown>> = {}): Promise<RollbackStrategy> =>
    createStrategy(configOf(input), { pm2: sandbox.client, run: runner, clock: systemClock });

  const releaseContext = (): ReleaseContext => ({
    service: 'shop',
    version: 'v2',
    previous: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });

  const rollbackContext = (): RollbackContext => ({
    service: 'shop',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });

  const PRE_RELEASE_USERS = [
    { id: 1, name: 'ada' },
    { id: 2, name: 'grace' },
    { id: 3, name: 'linus' },
    { id: 4, name: 'barbara' },
    { id: 5, name: 'ken' },
  ];
  const PRE_RELEASE_ORDERS = [
    { id: 1, user_id: 1, total: '9.99' },
    { id: 2, user_id: 2, total: '20.00' },
    { id: 3, user_id: 3, total: '5.50' },
  ];

  beforeAll(async () => {
    server = await startMariaDb();
    // root has no password on the server's own socket; the strategy uses a TCP account with one.
    admin = await mysql.createConnection({ socketPath: path.join(server.dir, 'mysqld.sock'), user: 'root' });
    password = `pw-${randomBytes(12).toString('hex')}`;
    await admin.query(`CREATE USER '${ADMIN}'@'127.0.0.1' IDENTIFIED BY '${password}'`);
    await admin.query(`GRANT ALL PRIVILEGES ON *.* TO '${ADMIN}'@'127.0.0.1'`);
    process.env[PASSWORD_ENV] = password;
    sandbox = await createPm2Sandbox();
  });

  afterAll(async () => {
    delete process.env[PASSWORD_ENV];
    await admin?.end();
    await sandbox?.cleanup();
    await server?.stop();
  });

  beforeEach(async () => {
    database = `rg_db_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${database}`);
    await seed();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-db-step-'));
    runner = new RecordingRunner();
    progress = [];
  });

  afterEach(async () => {
    try {
      // The password is handed over in MYSQL_PWD, never as an argument.
      expect(runner.calls.length).toBeGreaterThan(0);
      for (const call of runner.calls) {
        expect(call.args.join(' ')).not.toContain(password);
        if (call.command === 'mysql' || call.command === 'mysqldump') {
          // One test hands over a wrong password on purpose: whichever it is, it is not an argument.
          expect(call.env?.MYSQL_PWD).toMatch(/^pw-/);
          expect(call.args.join(' ')).not.toContain(call.env!.MYSQL_PWD);
        }
      }
      expect(progress.join('\n')).not.toContain(password);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${database}`);
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('prepare takes the pre-release backup and row counts; a second prepare keeps them', async () => {
    const strategy = await strategyOf();
    await strategy.prepare!(releaseContext());

    const dump = await readFile(path.join(dataDir, PRE_RELEASE_DUMP), 'utf8');
    expect(dump).toContain('CREATE TABLE `users`');
    expect(dump).toContain("'barbara'");
    const snapshot = JSON.parse(await readFile(path.join(dataDir, SNAPSHOT_FILE), 'utf8')) as DatabaseSnapshot;
    expect(snapshot).toMatchObject({ version: 'v2', database, counts: { users: 5, orders: 3 }, tables: ['orders', 'users'] });
    expect(Date.now() - snapshot.takenAtMs).toBeLessThan(60_000);
    expect((await readdir(dataDir)).sort()).toEqual([PRE_RELEASE_DUMP, SNAPSHOT_FILE]);
    // The dump: one transaction, routines and triggers, streamed to a file; no password in it either.
    const dumpCall = runner.calls.find((c) => c.command === 'mysqldump')!;
    expect(dumpCall.args).toEqual(expect.arrayContaining(['--single-transaction', '--routines', '--triggers', `--user=${ADMIN}`, database]));

    await badRelease();
    await strategy.prepare!(releaseContext());
    expect(progress.at(-1)).toMatch(/already taken at .*; keeping it/);
    expect(await readFile(path.join(dataDir, PRE_RELEASE_DUMP), 'utf8')).toBe(dump);

    expect(await strategy.checkReadiness(rollbackContext())).toEqual([]);
  });

  it('restore automatic: migrate_down, app stopped, emergency backup, restore, app online; data as before the release; resumable', async () => {
    const port = await freePort();
    await sandbox.client.start({ name: 'shop-db-writer', script: DEMO_APP, execMode: 'fork', env: { PORT: String(port), APP_VERSION: 'v2' } });
    await waitFor(async () => (await sandbox.client.describe('shop-db-writer')).every((i) => i.status === 'online'), 15_000);
    const strategy = await strategyOf({ restore: 'automatic', stop_app: 'shop-db-writer', migrate_down: migrateDown(), migrate_cwd: PROJECT_ROOT });
    await strategy.prepare!(releaseContext());
    await badRelease();
    expect(await users()).toHaveLength(3);

    // What pm2 says about the app at the moment the restore starts.
    const statusDuringRestore: string[][] = [];
    runner.before = async (call) => {
      if (call.command === 'mysql' && call.stdin) {
        statusDuringRestore.push((await sandbox.client.describe('shop-db-writer')).map((i) => i.status));
      }
    };
    expect(await strategy.checkReadiness(rollbackContext())).toEqual([]);
    await strategy.execute(rollbackContext());

    expect(await users()).toEqual(PRE_RELEASE_USERS);
    expect(await orders()).toEqual(PRE_RELEASE_ORDERS);
    expect(await columns('users')).toEqual(['id', 'name']);
    expect(statusDuringRestore).toEqual([['stopped']]);
    expect((await sandbox.client.describe('shop-db-writer')).map((i) => i.status)).toEqual(['online']);

    // The emergency backup holds the state the restore replaced.
    const emergencies = (await readdir(dataDir)).filter((f) => /^emergency-.*\.sql$/.test(f));
    expect(emergencies).toHaveLength(1);
    const emergency = await readFile(path.join(dataDir, emergencies[0]!), 'utf8');
    expect(emergency).toContain("'CORRUPTED'");
    expect(emergency).toContain('CREATE TABLE `release_audit`');
    expect(emergency).not.toContain("'barbara'");

    const said = progress.join('\n');
    expect(said).toContain('migrate_down: migrated down: dropped users.email');
    expect(said).toContain('pm2 stop shop-db-writer');
    expect(said).toMatch(/emergency backup done/);
    expect(said).toMatch(/restore done/);
    expect(said).toContain('tables created since the backup are left in place: release_audit');
    expect(said).toContain('users: 5 rows (pre-release snapshot 5)');
    expect(said).toContain('orders: 3 rows (pre-release snapshot 3)');
    // Order: stop, emergency backup, restore, start.
    const order = ['pm2 stop', 'emergency backup of', 'restoring', 'pm2 restart'].map((p) => progress.findIndex((l) => l.startsWith(p)));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order.every((i) => i >= 0)).toBe(true);

    // Resumed (or repeated): the same restore again, migrate_down not run twice, a new emergency backup.
    progress = [];
    await strategy.execute(rollbackContext());
    expect(progress.join('\n')).toMatch(/migrate_down already ran for v2/);
    expect(await users()).toEqual(PRE_RELEASE_USERS);
    expect(await orders()).toEqual(PRE_RELEASE_ORDERS);
    expect((await readdir(dataDir)).filter((f) => /^emergency-.*\.sql$/.test(f))).toHaveLength(2);
    expect(runner.calls.filter((c) => c.command === process.execPath)).toHaveLength(1);
    expect((await sandbox.client.describe('shop-db-writer')).map((i) => i.status)).toEqual(['online']);

    // A restore that fails still starts the app again, then fails the step.
    await writeFile(path.join(dataDir, PRE_RELEASE_DUMP), 'THIS IS NOT SQL;\n', { flag: 'a' });
    progress = [];
    const error = await strategy.execute(rollbackContext()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).step).toBe('restore');
    expect((error as RollbackError).message).toMatch(/mysql .*exited with code 1; stderr: .*syntax/i);
    expect(progress).toContain('pm2 restart shop-db-writer');
    expect((await sandbox.client.describe('shop-db-writer')).map((i) => i.status)).toEqual(['online']);
    await sandbox.client.delete('shop-db-writer');
  });

  it('restore never: nothing is restored, the progress says why, and lost rows fail the integrity check', async () => {
    // This test reads the password from a file (mode 600) instead of the environment.
    const secretDir = await mkdtemp(path.join(os.tmpdir(), 'rg-db-secret-'));
    const passwordFile = path.join(secretDir, 'password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    try {
      const strategy = await strategyOf({ restore: 'never', password_env: undefined, password_file: passwordFile });
      await strategy.prepare!(releaseContext());
      await badRelease();
      const before = { users: await users(), orders: await orders() };

      const error = await strategy.execute(rollbackContext()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RollbackError);
      expect((error as RollbackError).step).toBe('integrity');
      expect((error as RollbackError).message).toContain('users: 3 rows, below the pre-release snapshot of 5');

      expect(progress.join('\n')).toMatch(
        new RegExp(`restore not automatic: pre-release backup kept at ${path.join(dataDir, PRE_RELEASE_DUMP)}; restoring loses writes since \\d{4}-`),
      );
      expect(runner.calls.some((c) => c.stdin !== undefined)).toBe(false);
      expect((await readdir(dataDir)).some((f) => f.startsWith('emergency-'))).toBe(false);
      expect({ users: await users(), orders: await orders() }).toEqual(before);
      expect(await columns('users')).toEqual(['id', 'name', 'email']);
    } finally {
      await rm(secretDir, { recursive: true, force: true });
    }
  });

  it('a table missing after the release fails the integrity check, naming it; check lists it too', async () => {
    const strategy = await strategyOf({ restore: 'never' });
    await strategy.prepare!(releaseContext());
    await sql(`DROP TABLE ${database}.orders`);

    expect(await strategy.checkReadiness(rollbackContext())).toEqual([`check_tables missing from ${database}: orders`]);
    const error = await strategy.execute(rollbackContext()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toBe(`integrity check failed: table orders missing from ${database}`);
  });

  it('check lists a missing backup, a stale backup, a missing program and a wrong password (without showing it)', async () => {
    const strategy = await strategyOf({ restore: 'automatic', migrate_down: ['rg-no-such-migrate', 'down'] });
    expect(await strategy.checkReadiness(rollbackContext())).toEqual([
      `no pre-release backup of ${database} for v2 (${path.join(dataDir, PRE_RELEASE_DUMP)} and ${SNAPSHOT_FILE} missing)`,
      'migrate_down program rg-no-such-migrate is not installed (not found)',
    ]);
    // execute refuses before changing anything.
    const refused = await strategy.execute(rollbackContext()).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RollbackError);
    expect((refused as RollbackError).message).toMatch(/no pre-release backup at/);
    expect(runner.calls).toHaveLength(1); // check's table listing only

    await (await strategyOf()).prepare!(releaseContext());
    const snapshotFile = path.join(dataDir, SNAPSHOT_FILE);
    const snapshot = JSON.parse(await readFile(snapshotFile, 'utf8')) as DatabaseSnapshot;
    snapshot.takenAtMs -= 25 * 60 * 60 * 1000;
    snapshot.takenAt = new Date(snapshot.takenAtMs).toISOString();
    await writeFile(snapshotFile, JSON.stringify(snapshot));
    const stale = await (await strategyOf({ mysqldump: 'rg-no-such-mysqldump' })).checkReadiness(rollbackContext());
    expect(stale).toEqual([
      'rg-no-such-mysqldump is not installed (not found on PATH)',
      expect.stringMatching(/was taken at .*, more than 24h ago/),
    ]);

    snapshot.takenAtMs = Date.now();
    await writeFile(snapshotFile, JSON.stringify(snapshot));
    const WRONG_ENV = 'RG_TEST_DB_STRATEGY_WRONG_PASSWORD';
    process.env[WRONG_ENV] = `${password}-wrong`;
    try {
      const wrong = await (await strategyOf({ password_env: WRONG_ENV })).checkReadiness(rollbackContext());
      expect(wrong).toHaveLength(1);
      expect(wrong[0]).toMatch(/cannot query 127\.0\.0\.1:\d+\/rg_db_\w+ as rg_admin: .*Access denied/);
      expect(wrong[0]).not.toContain(process.env[WRONG_ENV]);
    } finally {
      delete process.env[WRONG_ENV];
    }
    const unset = await (await strategyOf({ password_env: 'RG_TEST_DB_STRATEGY_UNSET' })).checkReadiness(rollbackContext());
    expect(unset).toEqual([expect.stringMatching(/environment variable RG_TEST_DB_STRATEGY_UNSET \(password_env\) is not set/)]);
  });

  it('a failed dump leaves no file named as a complete backup', async () => {
    // A mysqldump that writes half a dump and then fails, as one losing its connection would.
    const fakeDir = await mkdtemp(path.join(os.tmpdir(), 'rg-fake-mysqldump-'));
    const fake = path.join(fakeDir, 'mysqldump');
    await writeFile(fake, '#!/bin/sh\necho "-- MariaDB dump (partial)"\necho "mysqldump: Lost connection to server" >&2\nexit 2\n', { mode: 0o755 });
    try {
      const strategy = databaseStrategy(configOf({ mysqldump: fake }), { pm2: sandbox.client, run: runner, clock: systemClock });
      const error = await strategy.prepare!(releaseContext()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RollbackError);
      expect((error as RollbackError).message).toMatch(/mysqldump .*exited with code 2; stderr: mysqldump: Lost connection/);
      expect(await readdir(dataDir)).toEqual([]);
      expect(runner.calls.find((c) => c.command === fake)?.env?.MYSQL_PWD).toBe(password);
    } finally {
      await rm(fakeDir, { recursive: true, force: true });
    }
  });
});
