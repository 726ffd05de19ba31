/**
 * The backup scenarios of issue 13, items 1 and 10, against a real MariaDB and the real mysqldump,
 * mysql and mysqlbinlog clients; shared by their integration test (test/integration/
 * backup-race.test.ts asserts on the outcome) and the chaos table (backup-race.ts counts stale
 * restores), so both measure the same thing.
 *
 * - backupRace: the pre-release dump is still running (throttled: a mysqldump wrapper whose output
 *   reaches the file only after `dumpDelayMs`) when the rollback is decided; the rollback must wait
 *   for it and restore it, not fail with "no pre-release backup".
 * - detectedRelease: a stable backup of v1 exists; writes W1 follow; v2 is deployed without being
 *   announced, migrates the schema on start and writes W2; the guard detects it, its window's
 *   "pre-release" dump is taken after the migration. The rollback must bring back v1's schema, keep
 *   W1 (binary log replayed from the stable backup up to the release start) and drop W2.
 *
 * Both drive the guard's own pieces (Preparations, StableBackups, runPlan, the database strategy),
 * not the whole daemon: the race is between the preparation and the plan, and this pins it down.
 */
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import mysql from 'mysql2/promise';
import { strategySchema, type DatabaseStrategyConfig } from '../../src/config/schema.js';
import type { Release, Sample } from '../../src/core/types.js';
import { windowId } from '../../src/core/windows.js';
import { createLogger } from '../../src/log.js';
import { Pm2ApiClient } from '../../src/pm2/pm2-api-client.js';
import { systemClock } from '../../src/shell/clock.js';
import { Preparations, releaseBeganAt } from '../../src/shell/preparations.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { runPlan, stepDataDir, type PlanResult, type PlanStep } from '../../src/shell/rollback-runner.js';
import { StableBackups } from '../../src/shell/stable-backups.js';
import type { CommandRunner } from '../../src/strategies/command-runner.js';
import { createStrategy } from '../../src/strategies/index.js';

/** A throwaway server whose root account (no password, over TCP) may create the scenario's account. */
export interface ScenarioServer {
  host: string;
  port: number;
}

export interface ScenarioOutcome {
  /** The rollback plan's result. */
  plan: PlanResult;
  /** The step's record lines (the backup it restored, the wait, the replay). */
  output: string[];
  /** Columns of `users` after the rollback. */
  columns: string[];
  /** Rows of `users` after the rollback. */
  users: { id: number; name: string }[];
  /** The restore brought back what it should (schema and rows); false = a stale restore. */
  correct: boolean;
  /** What was wrong, in words, when not correct. */
  problems: string[];
  /** Milliseconds from the rollback decision to the end of the plan. */
  rollbackMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const V1_USERS = [
  { id: 1, name: 'ada' },
  { id: 2, name: 'grace' },
  { id: 3, name: 'linus' },
];

/** One scenario's world: a database and an account of its own, a state dir, the guard's pieces. */
async function world(server: ScenarioServer, workDir: string, step: Partial<Record<keyof DatabaseStrategyConfig, unknown>>) {
  const id = randomBytes(4).toString('hex');
  const database = `rg_${id}`;
  const user = `rg_${id}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const passwordEnv = `RG_SCENARIO_PW_${id.toUpperCase()}`;
  const root = await mysql.createConnection({ host: server.host, port: server.port, user: 'root' });
  await root.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'`);
  await root.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.0.0.1'`);
  await root.query(`CREATE DATABASE ${database}`);
  // The app's connection: its default database is this one, as an app's is (the binary log replay
  // keeps the statements whose default database is the restored one).
  const app = await mysql.createConnection({ host: server.host, port: server.port, user, password, database });
  await app.query('CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)');
  await app.query('INSERT INTO users VALUES ?', [V1_USERS.map((u) => [u.id, u.name])]);
  process.env[passwordEnv] = password;

  const stateDir = await mkdtemp(path.join(workDir, 'state-'));
  const parsed = strategySchema.parse({
    type: 'database',
    host: server.host,
    port: server.port,
    user,
    password_env: passwordEnv,
    database,
    restore: 'automatic',
    check_tables: ['users'],
    timeout: '60s',
    ...step,
  });
  if (parsed.type !== 'database') throw new Error('schema returned the wrong strategy type');
  const pm2 = new Pm2ApiClient({ home: path.join(stateDir, 'pm2-unused') });
  // Every program's arguments are kept: the password must reach mysqldump, mysql and mysqlbinlog
  // only through their environment.
  const argv: string[][] = [];
  const runner = new ProcessRunner();
  const run: CommandRunner = {
    run: (command, args, opts) => {
      argv.push([command, ...args]);
      return runner.run(command, args, opts);
    },
    which: (command) => runner.which(command),
  };
  const plan: PlanStep[] = [{ config: parsed, strategy: await createStrategy(parsed, { pm2, run, clock: systemClock }) }];
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const log = createLogger({ level: 'info', format: 'json', stream });
  const stopping = new AbortController();
  const common = { plan, clock: systemClock, log, service: 'shop', signal: stopping.signal };
  const stable = new StableBackups({ ...common, stateDir });
  const preparations = new Preparations({ ...common, stable, dataDir: (r: Release, index: number, type: string) => stepDataDir(stateDir, r.id, index, type) });

  const output: string[] = [];
  const rollback = async (release: Release): Promise<{ plan: PlanResult; rollbackMs: number }> => {
    const started = performance.now();
    const result = await runPlan(plan, { service: 'shop', from: release.version, to: 'v1' }, {
      clock: systemClock,
      log,
      signal: stopping.signal,
      stateDir,
      windowId: release.id,
      fromStep: 0,
      hooks: {
        stepStarted: async () => undefined,
        stepFinished: async (_index, _ok, lines) => void output.push(...lines),
      },
      prepared: async (index, type, options) => (await preparations.resolve(release, index, type, options)).prepared,
    });
    return { plan: result, rollbackMs: performance.now() - started };
  };
  const outcome = async (result: { plan: PlanResult; rollbackMs: number }, expected: { id: number; name: string }[]): Promise<ScenarioOutcome> => {
    const [cols] = await app.query<mysql.RowDataPacket[]>(
      'SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      [database, 'users'],
    );
    const columns = cols.map((r) => r.COLUMN_NAME as string);
    const [rows] = await app.query<mysql.RowDataPacket[]>('SELECT id, name FROM users ORDER BY id');
    const users = rows.map((r) => ({ id: r.id as number, name: r.name as string }));
    const problems: string[] = [];
    if (!result.plan.ok) problems.push(`rollback failed: ${result.plan.error}`);
    if (columns.join(',') !== 'id,name') problems.push(`users has columns ${columns.join(', ')}, not v1's id, name`);
    if (JSON.stringify(users) !== JSON.stringify(expected)) problems.push(`users rows ${JSON.stringify(users)}, expected ${JSON.stringify(expected)}`);
    const leaked = argv.filter((args) => args.some((a) => a.includes(password)));
    if (leaked.length > 0) problems.push(`the password was in the arguments of ${leaked.map((a) => a[0]).join(', ')}`);
    if (argv.length === 0) problems.push('no client program ran');
    return { ...result, output: [...output], columns, users, correct: problems.length === 0, problems };
  };
  const cleanup = async () => {
    stopping.abort();
    await stable.settled();
    delete process.env[passwordEnv];
    await app.end().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
    await root.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`).catch(() => undefined);
    await root.end().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  };
  return { database, app, stateDir, plan, preparations, stable, rollback, outcome, cleanup, logs };
}

/**
 * A mysqldump that is slow the way a big database's is: the real mysqldump runs at once (so the
 * dump shows the database as it was then) into a temporary file, `taken` is touched, and the output
 * reaches the caller only after `delayMs`.
 */
export async function throttledMysqldump(dir: string, delayMs: number): Promise<{ program: string; taken: string }> {
  const real = await new ProcessRunner().which('mysqldump');
  if (!real) throw new Error('mysqldump is not installed (apt-get install mariadb-client)');
  await mkdir(dir, { recursive: true });
  const program = path.join(dir, 'mysqldump');
  const taken = path.join(dir, 'dump-taken');
  await writeFile(
    program,
    [
      '#!/bin/bash',
      'out=$(mktemp) || exit 1',
      'trap \'rm -f "$out"\' EXIT',
      `"${real}" "$@" > "$out" || exit $?`,
      `touch '${taken}'`,
      `sleep ${(delayMs / 1000).toFixed(3)}`,
      'cat "$out"',
      '',
    ].join('\n'),
  );
  await chmod(program, 0o755);
  return { program, taken };
}

/** Item 1: a rollback decided while the pre-release dump still runs waits for it and restores it. */
export async function backupRaceScenario(server: ScenarioServer, options: { workDir: string; dumpDelayMs?: number }): Promise<ScenarioOutcome & { waited: boolean }> {
  const { program: mysqldump, taken } = await throttledMysqldump(await mkdtemp(path.join(options.workDir, 'bin-')), options.dumpDelayMs ?? 4000);
  const w = await world(server, options.workDir, { mysqldump, stable_backup_every: 0 });
  try {
    // Announced: `release-guard release v2` opens the window before the deploy.
    const startedAt = Date.now();
    const release: Release = { id: windowId(startedAt, 'v2'), version: 'v2', previous: 'v1', startedAt, deployedBy: 'ci', source: 'manual' };
    const preparing = w.preparations.prepareAll(release, release.startedAt);
    // The dump is taken (its output held back): what the release does next is not in it.
    for (let i = 0; i < 400 && !(await access(taken).then(() => true, () => false)); i++) await sleep(25);
    // The bad release: a migration and corrupted rows, then the rollback is decided at once.
    await w.app.query('ALTER TABLE users ADD COLUMN email VARCHAR(128)');
    await w.app.query("UPDATE users SET name = 'CORRUPTED' WHERE id <= 2");
    const result = await w.rollback(release);
    await preparing;
    const outcome = await w.outcome(result, V1_USERS);
    return { ...outcome, waited: outcome.output.some((l) => l.startsWith('waiting for the pre-release backup')) };
  } finally {
    await w.cleanup();
  }
}

/**
 * Item 10: a release only detected (not announced) migrates the schema before its window opens;
 * the rollback restores the stable backup of v1 and replays the binary log up to the release start.
 * Needs a server with log_bin on.
 */
export async function detectedReleaseScenario(server: ScenarioServer, options: { workDir: string }): Promise<ScenarioOutcome & { replayed: boolean; usedStable: boolean }> {
  const w = await world(server, options.workDir, { stable_backup_every: '4h' });
  try {
    // v1 is stable: its backup is taken.
    await w.stable.takeDue('v1');
    if ((await w.stable.list(0, 'database')).length !== 1) throw new Error(`no stable backup was taken: ${w.logs.join('')}`);
    // W1: a write of v1, after its backup, before the release.
    await w.app.query("INSERT INTO users VALUES (100, 'w1-before-release')");
    // The binary log's times are whole seconds: keep W1 and the release a few seconds apart.
    await sleep(1500);
    // The guard's version probe sees v1 one last time...
    const samples: Sample[] = [{ probe: 'health', startedAt: Date.now(), at: Date.now() + 5, ok: true, values: {}, version: 'v1' }];
    await sleep(1500);
    // ... then v2 is deployed without an announcement: it migrates on start and takes writes.
    await w.app.query('ALTER TABLE users ADD COLUMN email VARCHAR(128)');
    await w.app.query("INSERT INTO users VALUES (101, 'w2-after-release', 'w2@example.com')");
    await w.app.query("UPDATE users SET name = 'CORRUPTED' WHERE id = 1");
    // The probe sees v2: the window opens, its "pre-release" dump is taken now, after the migration.
    const startedAt = Date.now();
    const release: Release = { id: windowId(startedAt, 'v2'), version: 'v2', previous: 'v1', startedAt, deployedBy: 'unknown (detected)', source: 'detected' };
    await w.preparations.prepareAll(release, releaseBeganAt(release, samples));
    const result = await w.rollback(release);
    const outcome = await w.outcome(result, [...V1_USERS, { id: 100, name: 'w1-before-release' }]);
    return {
      ...outcome,
      usedStable: outcome.output.some((l) => l.startsWith('restoring the stable backup of v1')),
      replayed: outcome.output.some((l) => l.startsWith('binary log replayed')),
    };
  } finally {
    await w.cleanup();
  }
}
