/**
 * Throwaway MariaDB and Redis servers for integration tests: each in its own temp directory, on a
 * free loopback port, as a child of the process that started it. Never the machine's own servers.
 *
 * - The vitest globalSetup (test/setup/services.ts) starts one of each for the whole run and hands
 *   their connection info to tests (test/helpers/services.ts: `mysqlConfig()` / `redisConfig()`);
 *   the chaos scenarios (bench/chaos) start their own.
 * - Tests that need to stop or restart a server start their own with `startMariaDb()` /
 *   `startRedis()` and must `stop()` it in afterAll/afterEach.
 *
 * Missing server binaries are installed with apt-get when running as root; otherwise start-up
 * fails saying what to install. A process exit (even after a failed test) SIGKILLs whatever is
 * still running and removes its directory, so nothing is left behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { freePort } from '../test/fixtures/demo-app/releases.js';
// Finding programs and waiting for a child: the same as the rest of the bench (EXTRA_DIRS there: Debian's sbin).
import { exited, findBinary, waitForExit } from './proc.js';

const execFileAsync = promisify(execFile);

/** How tests reach the shared MariaDB: a TCP account with a password (not root). */
export interface MysqlInfo {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** How tests reach a Redis; `password` only when the server was started with one. */
export interface RedisInfo {
  host: string;
  port: number;
  password?: string;
}

/** A server started by this module. */
export interface RunningService<Info> {
  readonly info: Info;
  readonly port: number;
  /** Temp directory holding its data, socket and logs; removed by stop(). */
  readonly dir: string;
  /** Milliseconds from the call to the server answering (install included for MariaDB). */
  readonly startupMs: number;
  /**
   * SIGTERM, then SIGKILL if it has not exited after `graceMs` (default 10 s; 0 = SIGKILL at
   * once, like a crash), then removes `dir`. Idempotent; resolves once the process is gone.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Binaries

export interface ServiceBinaries {
  mariadbd: string;
  installDb: string;
  redisServer: string;
}

function lookUpBinaries(): { found: ServiceBinaries } | { missingPackages: string[] } {
  const mariadbd = findBinary('mariadbd', 'mysqld');
  const installDb = findBinary('mariadb-install-db', 'mysql_install_db');
  const redisServer = findBinary('redis-server');
  if (mariadbd && installDb && redisServer) return { found: { mariadbd, installDb, redisServer } };
  const missingPackages = [...(mariadbd && installDb ? [] : ['mariadb-server']), ...(redisServer ? [] : ['redis-server'])];
  return { missingPackages };
}

let binaries: Promise<ServiceBinaries> | undefined;

/**
 * Finds mariadbd, mariadb-install-db and redis-server; as root, installs the missing packages
 * with apt-get first (apt-get update only if the install fails). Memoized per process.
 */
export function ensureServiceBinaries(): Promise<ServiceBinaries> {
  binaries ??= (async () => {
    const first = lookUpBinaries();
    if ('found' in first) return first.found;
    const packages = first.missingPackages;
    const command = `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
    if (process.getuid?.() !== 0) {
      throw new Error(
        `integration tests need real MariaDB and Redis servers, but ${packages.join(' and ')} ${packages.length === 1 ? 'is' : 'are'} ` +
          `not installed; install ${packages.length === 1 ? 'it' : 'them'} (e.g. sudo ${command}) and run the tests again`,
      );
    }
    const apt = (args: string[]) =>
      execFileAsync('apt-get', args, {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: 15 * 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
    const install = ['install', '-y', '--no-install-recommends', ...packages];
    try {
      await apt(install);
    } catch {
      try {
        await apt(['update']);
        await apt(install);
      } catch (error) {
        throw new Error(`integration tests: "${command}" failed: ${tail(String((error as { stderr?: unknown }).stderr ?? error), 20)}`, {
          cause: error,
        });
      }
    }
    const second = lookUpBinaries();
    if ('found' in second) return second.found;
    throw new Error(`integration tests: ${second.missingPackages.join(', ')} still missing after "${command}"`);
  })();
  // A failure is not cached: a later call may try again (e.g. after the user installed them).
  binaries.catch(() => {
    binaries = undefined;
  });
  return binaries;
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: nothing survives the process that started it.

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function track(child: ChildProcess | undefined, dir: string): void {
  if (child) {
    children.add(child);
    child.once('exit', () => children.delete(child));
  }
  dirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort for a run that ends without stop() (a failed hook, an uncaught error): only
  // synchronous work is possible in 'exit'.
  process.once('exit', () => {
    for (const c of children) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

/** SIGTERM, SIGKILL after `graceMs`, and wait until the process is really gone. */
async function terminate(child: ChildProcess, graceMs: number, what: string): Promise<void> {
  if (exited(child)) return;
  if (graceMs > 0) {
    child.kill('SIGTERM');
    if (await waitForExit(child, graceMs)) return;
  }
  child.kill('SIGKILL');
  if (!(await waitForExit(child, 10_000))) throw new Error(`${what} (pid ${child.pid}) did not exit after SIGKILL`);
}

/** unix socket paths must stay under ~100 characters: avoid a long TMPDIR. */
function shortTempRoot(): string {
  const root = os.tmpdir();
  return path.join(root, 'rg-mariadb-xxxxxx', 'mysqld.sock').length <= 90 ? root : '/tmp';
}

const DIR_PREFIX = /^rg-(mariadb|redis)-/;
const OWNER_FILE = 'owner.pid';

/** A temp directory for one server, marked with this process's pid so a later run can tell it is stale. */
async function serviceDir(kind: 'mariadb' | 'redis'): Promise<string> {
  const dir = await mkdtemp(path.join(shortTempRoot(), `rg-${kind}-`));
  track(undefined, dir);
  await writeFile(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  return dir;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes server directories left by runs whose process was killed before it could clean up (their
 * servers died with them: see spawnUntilReady). Directories of live processes, e.g. a test run
 * going on in parallel, are left alone. Returns how many were removed.
 */
export async function sweepStaleServiceDirs(): Promise<number> {
  const root = shortTempRoot();
  let removed = 0;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!DIR_PREFIX.test(name)) continue;
    const dir = path.join(root, name);
    const owner = Number.parseInt(await readFile(path.join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
    // No owner yet: being created right now, or not ours; leave it.
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
    await rm(dir, { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}

async function tailOf(file: string, lines = 15): Promise<string> {
  try {
    return tail(await readFile(file, 'utf8'), lines);
  } catch {
    return '(no log)';
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Spawns `command` with stdout and stderr going to `log`, then polls `ready` until it resolves
 * true. Throws (with the tail of `errorLog`) when the process exits first or time runs out; the
 * process is then killed.
 */
async function spawnUntilReady(options: {
  what: string;
  command: string;
  args: string[];
  dir: string;
  log: string;
  errorLog: string;
  ready: () => Promise<boolean>;
  timeoutMs: number;
}): Promise<ChildProcess> {
  const fd = openSync(options.log, 'a');
  let child: ChildProcess;
  try {
    // setpriv (util-linux) execs the server with a parent-death signal: if the process that started
    // it dies without running any hook (vitest kills its workers), the kernel kills the server too.
    const setpriv = findBinary('setpriv');
    const [command, args] = setpriv
      ? [setpriv, ['--pdeathsig', 'KILL', '--', options.command, ...options.args]]
      : [options.command, options.args];
    child = spawn(command, args, { cwd: options.dir, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  track(child, options.dir);
  let spawnFailure: Error | undefined;
  child.once('error', (error) => {
    spawnFailure = error;
  });
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (spawnFailure) throw new Error(`${options.what}: cannot run ${options.command}: ${spawnFailure.message}`);
    if (exited(child)) {
      throw new Error(
        `${options.what} exited during start-up (code ${child.exitCode}, signal ${child.signalCode}); ` +
          `last lines of ${path.basename(options.errorLog)}:\n${await tailOf(options.errorLog)}`,
      );
    }
    if (await options.ready().catch(() => false)) return child;
    if (Date.now() >= deadline) {
      await terminate(child, 0, options.what);
      throw new Error(
        `${options.what} did not accept connections within ${options.timeoutMs}ms; ` +
          `last lines of ${path.basename(options.errorLog)}:\n${await tailOf(options.errorLog)}`,
      );
    }
    await sleep(50);
  }
}

/** Up to three fresh ports when the caller did not ask for one: another process may grab it first. */
async function onFreePort<T>(port: number | undefined, start: (port: number) => Promise<T>): Promise<T> {
  if (port !== undefined) return start(port);
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start(await freePort());
    } catch (error) {
      if (attempt >= 3 || !/address already in use|bind/i.test(String(error))) throw error;
    }
  }
}

function handle<Info>(info: Info & { port: number }, dir: string, child: ChildProcess, startupMs: number, what: string): RunningService<Info> {
  let stopping: Promise<void> | undefined;
  return {
    info,
    port: info.port,
    dir,
    startupMs,
    stop(options = {}) {
      stopping ??= (async () => {
        try {
          await terminate(child, options.graceMs ?? 10_000, what);
        } finally {
          await rm(dir, { recursive: true, force: true });
          dirs.delete(dir);
        }
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// MariaDB

/** The test account; SELECT on everything is enough for probe queries such as SELECT SLEEP(1). */
const MYSQL_USER = 'probe';

/** Small buffers and no binlog, performance schema or native AIO: starts in well under a second. */
const MARIADB_TUNING = ['--innodb-buffer-pool-size=16M', '--innodb-log-file-size=4M', '--innodb-use-native-aio=0'];

/**
 * Creates a fresh data directory (mariadb-install-db, root without password, plus a `probe`
 * account on 127.0.0.1 with a random password) and starts mariadbd on `port` (default: a free
 * one) bound to 127.0.0.1. Resolves once the `probe` account can log in over TCP.
 */
export async function startMariaDb(options: { port?: number; timeoutMs?: number; logBin?: boolean } = {}): Promise<RunningService<MysqlInfo>> {
  const started = performance.now();
  const bins = await ensureServiceBinaries();
  const dir = await serviceDir('mariadb');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const datadir = path.join(dir, 'data');
  const errorLog = path.join(dir, 'err.log');
  const password = `pw-${randomBytes(12).toString('hex')}`;
  try {
    const extra = path.join(dir, 'init.sql');
    // FLUSH PRIVILEGES loads the grant tables inside the bootstrap, so CREATE USER works there.
    await writeFile(
      extra,
      `FLUSH PRIVILEGES;\nCREATE USER '${MYSQL_USER}'@'127.0.0.1' IDENTIFIED BY '${password}';\nGRANT SELECT ON *.* TO '${MYSQL_USER}'@'127.0.0.1';\n`,
      { mode: 0o600 },
    );
    try {
      await execFileAsync(
        bins.installDb,
        [
          '--no-defaults',
          `--datadir=${datadir}`,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
          '--skip-name-resolve',
          `--extra-file=${extra}`,
          ...asRoot,
          ...MARIADB_TUNING,
        ],
        { cwd: dir, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      );
    } catch (error) {
      const output = error as { stdout?: string; stderr?: string };
      throw new Error(`${bins.installDb} failed:\n${tail(`${output.stdout ?? ''}\n${output.stderr ?? ''}`, 20)}`, { cause: error });
    }
    return await onFreePort(options.port, async (port) => {
      const child = await spawnUntilReady({
        what: `mariadbd on 127.0.0.1:${port}`,
        command: bins.mariadbd,
        args: [
          '--no-defaults',
          `--datadir=${datadir}`,
          `--socket=${path.join(dir, 'mysqld.sock')}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          '--skip-networking=0',
          `--pid-file=${path.join(dir, 'mysqld.pid')}`,
          `--log-error=${errorLog}`,
          '--skip-name-resolve',
          // logBin: a server that keeps binary logs (point-in-time recovery tests); off by default (faster).
          ...(options.logBin ? [`--log-bin=${path.join(dir, 'binlog')}`, '--server-id=1'] : ['--skip-log-bin']),
          '--performance-schema=0',
          ...asRoot,
          ...MARIADB_TUNING,
        ],
        dir,
        log: path.join(dir, 'stdout.log'),
        errorLog,
        timeoutMs: options.timeoutMs ?? 30_000,
        ready: async () => {
          const connection = await mysql.createConnection({ host: '127.0.0.1', port, user: MYSQL_USER, password, connectTimeout: 1000 });
          connection.on('error', () => undefined);
          await connection.end();
          return true;
        },
      });
      const info: MysqlInfo = { host: '127.0.0.1', port, user: MYSQL_USER, password };
      return handle(info, dir, child, performance.now() - started, `mariadbd on 127.0.0.1:${port}`);
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Redis

/** PINGs (after AUTH when given) over a raw socket; true on +PONG. */
function redisPing(port: number, password: string | undefined, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write(`${password === undefined ? '' : `AUTH ${password}\r\n`}PING\r\n`));
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      if (received.includes('+PONG')) done(true);
      else if (received.startsWith('-')) done(false);
    });
  });
}

/**
 * Starts redis-server on `port` (default: a free one) bound to 127.0.0.1, with no persistence,
 * its files in a temp directory and, when given, `password` (requirepass). Resolves once it
 * answers PING. Restarting on a port just given up works (redis sets SO_REUSEADDR).
 */
export async function startRedis(options: { port?: number; password?: string; timeoutMs?: number } = {}): Promise<RunningService<RedisInfo>> {
  const started = performance.now();
  const bins = await ensureServiceBinaries();
  const dir = await serviceDir('redis');
  const log = path.join(dir, 'redis.log');
  try {
    return await onFreePort(options.port, async (port) => {
      // A config file rather than arguments: the password stays out of `ps`.
      const conf = path.join(dir, 'redis.conf');
      const lines = [
        `port ${port}`,
        'bind 127.0.0.1',
        'save ""',
        'appendonly no',
        `dir ${dir}`,
        'daemonize no',
        'logfile ""',
        ...(options.password === undefined ? [] : [`requirepass ${options.password}`]),
      ];
      await writeFile(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
      const child = await spawnUntilReady({
        what: `redis-server on 127.0.0.1:${port}`,
        command: bins.redisServer,
        args: [conf],
        dir,
        log,
        errorLog: log,
        timeoutMs: options.timeoutMs ?? 15_000,
        ready: () => redisPing(port, options.password),
      });
      const info: RedisInfo = { host: '127.0.0.1', port, ...(options.password === undefined ? {} : { password: options.password }) };
      return handle(info, dir, child, performance.now() - started, `redis-server on 127.0.0.1:${port}`);
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
    throw error;
  }
}
