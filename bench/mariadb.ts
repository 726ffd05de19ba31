/**
 * A throwaway MariaDB for the slow-database scenario and the chaos scenarios (started by the same
 * code as the integration tests' servers, bench/services.ts, never the machine's own server):
 * a fresh data directory in a temp dir, a free loopback port, root without a password over TCP,
 * a database `app` with a table `items`, a read-only `probe` account for the guard and monit, and
 * an `appuser` account for the app (which may lock the table).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { findBinary, runOk } from './proc.js';
import { startMariaDb } from './services.js';

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

/** The mariadb command-line client; apt-get install when missing (root only), like the servers. */
async function ensureClient(): Promise<string> {
  const found = findBinary('mariadb', 'mysql');
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error('the bench needs the mariadb client (apt-get install mariadb-client)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runOk('apt-get', ['install', '-y', '--no-install-recommends', 'mariadb-client'], { env, timeoutMs: 15 * 60_000 }).catch(async () => {
    await runOk('apt-get', ['update'], { env, timeoutMs: 15 * 60_000 });
    await runOk('apt-get', ['install', '-y', '--no-install-recommends', 'mariadb-client'], { env, timeoutMs: 15 * 60_000 });
  });
  const client = findBinary('mariadb', 'mysql');
  if (!client) throw new Error('the mariadb client is still missing after apt-get install mariadb-client');
  return client;
}

/** `logBin`: the server keeps binary logs (the point-in-time recovery chaos scenario). */
export async function startBenchDb(options: { logBin?: boolean } = {}): Promise<BenchDb> {
  const started = performance.now();
  const server = await startMariaDb({ logBin: options.logBin ?? false });
  try {
    const client = await ensureClient();
    const { port } = server;
    const appPassword = `pw-${randomBytes(12).toString('hex')}`;
    const root = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', multipleStatements: true });
    try {
      await root.query(
        [
          'CREATE DATABASE app;',
          'CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(64)) ENGINE=InnoDB;',
          "INSERT INTO app.items VALUES (1,'one'),(2,'two'),(3,'three');",
          `CREATE USER 'appuser'@'127.0.0.1' IDENTIFIED BY '${appPassword}';`,
          "GRANT ALL ON app.* TO 'appuser'@'127.0.0.1';",
        ].join('\n'),
      );
    } finally {
      await root.end();
    }
    const defaults = async (name: string, user: string, password: string) => {
      const file = path.join(server.dir, name);
      await writeFile(file, `[client]\nhost=127.0.0.1\nport=${port}\nuser=${user}\npassword=${password}\n`, { mode: 0o600 });
      return file;
    };
    return {
      host: '127.0.0.1',
      port,
      database: 'app',
      probeUser: server.info.user,
      probePassword: server.info.password,
      probeDefaultsFile: await defaults('probe.cnf', server.info.user, server.info.password),
      appDefaultsFile: await defaults('app.cnf', 'appuser', appPassword),
      client,
      startupMs: performance.now() - started,
      stop: () => server.stop(),
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
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
