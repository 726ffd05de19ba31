/**
 * A throwaway MariaDB for the slow-database scenario (started the way the test harness starts
 * one, never the machine's own server): a fresh data directory in a temp dir, a free loopback
 * port, a database `app` with a table `items`, a read-only `probe` account for the guard and
 * monit, and an `appuser` account for the app (which may lock the table).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort } from '../test/fixtures/demo-app/releases.js';
import { findBinary, runOk, spawnTracked, stopChild, trackTempDir, untrackTempDir, waitFor } from './proc.js';

export interface BenchDb {
  host: string;
  port: number;
  database: string;
  probeUser: string;
  probePassword: string;
  /** `[client]` option files (mode 600) for the mariadb command-line client. */
  probeDefaultsFile: string;
  appDefaultsFile: string;
  /** The mariadb command-line client. */
  client: string;
  startupMs: number;
  stop(): Promise<void>;
}

const TUNING = ['--innodb-buffer-pool-size=16M', '--innodb-log-file-size=4M', '--innodb-use-native-aio=0'];

/** apt-get install when missing (root only), like the test harness does. */
async function ensureInstalled(): Promise<{ mariadbd: string; installDb: string; client: string }> {
  const look = () => ({
    mariadbd: findBinary('mariadbd', 'mysqld'),
    installDb: findBinary('mariadb-install-db', 'mysql_install_db'),
    client: findBinary('mariadb', 'mysql'),
  });
  let found = look();
  if (!found.mariadbd || !found.installDb || !found.client) {
    if (process.getuid?.() !== 0) throw new Error('the slow-database scenario needs mariadb-server and mariadb-client (apt-get install mariadb-server mariadb-client)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await runOk('apt-get', ['install', '-y', '--no-install-recommends', 'mariadb-server', 'mariadb-client'], { env, timeoutMs: 15 * 60_000 }).catch(async () => {
      await runOk('apt-get', ['update'], { env, timeoutMs: 15 * 60_000 });
      await runOk('apt-get', ['install', '-y', '--no-install-recommends', 'mariadb-server', 'mariadb-client'], { env, timeoutMs: 15 * 60_000 });
    });
    found = look();
  }
  if (!found.mariadbd || !found.installDb || !found.client) throw new Error('mariadbd, mariadb-install-db or the mariadb client is still missing');
  return found as { mariadbd: string; installDb: string; client: string };
}

/** `logBin`: the server keeps binary logs (the point-in-time recovery chaos scenario). */
export async function startBenchDb(options: { logBin?: boolean } = {}): Promise<BenchDb> {
  const started = performance.now();
  const bins = await ensureInstalled();
  // unix socket paths must stay short
  const root = path.join(os.tmpdir(), 'x').length < 60 ? os.tmpdir() : '/tmp';
  const dir = await mkdtemp(path.join(root, 'rg-bench-db-'));
  trackTempDir(dir);
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const datadir = path.join(dir, 'data');
  const probePassword = `pw-${randomBytes(12).toString('hex')}`;
  const appPassword = `pw-${randomBytes(12).toString('hex')}`;
  const init = path.join(dir, 'init.sql');
  await writeFile(
    init,
    [
      'FLUSH PRIVILEGES;',
      'CREATE DATABASE app;',
      'CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(64)) ENGINE=InnoDB;',
      "INSERT INTO app.items VALUES (1,'one'),(2,'two'),(3,'three');",
      `CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY '${probePassword}';`,
      "GRANT SELECT ON app.* TO 'probe'@'127.0.0.1';",
      `CREATE USER 'appuser'@'127.0.0.1' IDENTIFIED BY '${appPassword}';`,
      "GRANT ALL ON app.* TO 'appuser'@'127.0.0.1';",
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await runOk(
    bins.installDb,
    ['--no-defaults', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', `--extra-file=${init}`, ...asRoot, ...TUNING],
    { cwd: dir, timeoutMs: 120_000 },
  );
  const port = await freePort();
  const child = spawnTracked(
    bins.mariadbd,
    [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--socket=${path.join(dir, 'mysqld.sock')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-networking=0',
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${path.join(dir, 'err.log')}`,
      '--skip-name-resolve',
      ...(options.logBin ? [`--log-bin=${path.join(dir, 'binlog')}`, '--server-id=1'] : ['--skip-log-bin']),
      '--performance-schema=0',
      ...asRoot,
      ...TUNING,
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  const defaults = async (name: string, user: string, password: string) => {
    const file = path.join(dir, name);
    await writeFile(file, `[client]\nhost=127.0.0.1\nport=${port}\nuser=${user}\npassword=${password}\n`, { mode: 0o600 });
    return file;
  };
  try {
    await waitFor(
      'mariadbd to accept the probe account',
      async () => {
        const connection = await mysql.createConnection({ host: '127.0.0.1', port, user: 'probe', password: probePassword, connectTimeout: 1000 });
        connection.on('error', () => undefined);
        await connection.end();
        return true;
      },
      30_000,
      100,
    );
  } catch (error) {
    await stopChild(child, 0);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host: '127.0.0.1',
    port,
    database: 'app',
    probeUser: 'probe',
    probePassword,
    probeDefaultsFile: await defaults('probe.cnf', 'probe', probePassword),
    appDefaultsFile: await defaults('app.cnf', 'appuser', appPassword),
    client: bins.client,
    startupMs: performance.now() - started,
    async stop() {
      await stopChild(child, 10_000);
      await rm(dir, { recursive: true, force: true });
      untrackTempDir(dir);
    },
  };
}

export interface DbWatch {
  stop(): Promise<import('./traffic.js').RequestRecord[]>;
}

/**
 * What a user of the database sees: the probe's query every `intervalMs`, each on a fresh
 * connection and aborted by the server after 1 s (max_statement_time), recorded like a request
 * (ok and "answered by v1" when it took < 100 ms, so `impactOf` can find when it was fast again).
 */
export function watchDb(db: BenchDb, intervalMs: number, maxMs: number): DbWatch {
  const records: import('./traffic.js').RequestRecord[] = [];
  const pending = new Set<Promise<void>>();
  const started = Date.now();
  const one = async () => {
    const sentAt = Date.now();
    let connection: mysql.Connection | undefined;
    try {
      connection = await mysql.createConnection({ host: db.host, port: db.port, user: db.probeUser, password: db.probePassword, database: db.database, connectTimeout: 1000 });
      connection.on('error', () => undefined);
      await connection.query('SET STATEMENT max_statement_time=1 FOR SELECT COUNT(*) FROM items');
      const doneAt = Date.now();
      const fast = doneAt - sentAt < 100;
      records.push({ sentAt, doneAt, outcome: fast ? 'ok' : 'timeout', ...(fast ? { version: 'v1' } : {}) });
    } catch {
      records.push({ sentAt, doneAt: Date.now(), outcome: 'timeout' });
    } finally {
      connection?.destroy();
    }
  };
  const timer = setInterval(() => {
    if (Date.now() - started > maxMs) return void clearInterval(timer);
    const p = one().finally(() => pending.delete(p));
    pending.add(p);
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return records.sort((a, b) => a.sentAt - b.sentAt);
    },
  };
}
