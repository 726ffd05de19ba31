/**
 * Database strategy (MySQL/MariaDB), the runbook's "数据库回滚方案": through the `mysqldump` and
 * `mysql` client programs, run by the CommandRunner with argument arrays.
 *
 *   prepare   (backup_on_release) row counts of `check_tables` and the list of tables into
 *             `<dataDir>/snapshot.json`, then `mysqldump --single-transaction <database>` streamed to
 *             `<dataDir>/pre-release.sql` (written under a temporary name and renamed once complete,
 *             so a file with that name is always a whole dump). Kept when it already exists: a second
 *             prepare of the same release must not replace the pre-release backup with a later one.
 *   execute   1. migrate_down, when set, in migrate_cwd (once per release: a marker file makes a
 *                resumed rollback skip it, since running a down-migration twice undoes one too many);
 *             2. restore: automatic → stop `stop_app` (no writes during the restore), take an
 *                emergency backup `<dataDir>/emergency-<time>.sql` of what is there now (always before
 *                any restore), restore `pre-release.sql` with `mysql <database>` reading it on stdin,
 *                start `stop_app` again (also when the backup or restore failed, then still failing);
 *                never → nothing is restored, and the progress says where the backup is and what a
 *                restore would lose;
 *             3. integrity: every `check_tables` table exists and has at least as many rows as in the
 *                snapshot, else a RollbackError naming the table and both counts.
 *   check     the client programs are installed, the password is readable, the server answers, the
 *             pre-release backup of this release exists and is fresh, migrate_down and stop_app exist.
 *
 * Credentials: the password (password_file or password_env) reaches the client programs in the
 * `MYSQL_PWD` environment variable, never in their arguments (`ps` shows arguments to every user; a
 * process's environment is readable only by its owner and root, like the password file itself), and
 * nothing is written to disk, so a crash cannot leave a credentials file behind. User, host and port
 * are arguments. Caveat: a `password=` in a [client] section of an option file the clients read
 * (~/.my.cnf) takes precedence over MYSQL_PWD.
 *
 * Row counts are taken before the dump, not after it: a row inserted between the two is then in the
 * dump too, so a restored table has at least the snapshot's count and the integrity check holds.
 * A restore only replaces the tables in the dump: tables created since the backup stay and are named
 * in the progress. Note that the window opens when the guard sees the new release: when it was only
 * detected (not announced before the deploy), its migrations may already have run by then.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import { writeJsonAtomic } from '../store/atomic-write.js';
import type { CommandResult } from './command-runner.js';
import { fileTime, mysqlClient, secretEnv, type MysqlClient } from './mysql-client.js';
import { stepScope, versionProblem, waitUntilOnline, within, type StepScope } from './step.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** The pre-release dump and row-count snapshot, inside the step's dataDir. */
export const PRE_RELEASE_DUMP = 'pre-release.sql';
export const SNAPSHOT_FILE = 'snapshot.json';
/** Written once migrate_down has succeeded for this release. */
const MIGRATE_DOWN_DONE = 'migrate-down.done.json';
/** A pre-release backup older than this is not trusted by `check` (a day: far longer than a window). */
export const BACKUP_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** How long starting `stop_app` again may take, whatever is left of the step's own time. */
const START_APP_TIMEOUT_MS = 60_000;

/** What `prepare` recorded beside the dump. */
export interface DatabaseSnapshot {
  version: string;
  database: string;
  /** When the row counts were taken (just before the dump started), ISO 8601 and epoch ms. */
  takenAt: string;
  takenAtMs: number;
  /** When the dump was complete. */
  dumpedAt: string;
  dumpBytes: number;
  /** Base tables of the database at that time. */
  tables: string[];
  /** COUNT(*) of each of `check_tables` that existed. */
  counts: Record<string, number>;
  /**
   * Where the server's binary log stood when the dump's snapshot was taken (mysqldump
   * --master-data=2), when the server keeps one: a restore of this backup can replay the log
   * from here (point-in-time recovery).
   */
  binlog?: { file: string; position: number };
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

async function readSnapshot(dataDir: string): Promise<DatabaseSnapshot | null> {
  try {
    return JSON.parse(await readFile(path.join(dataDir, SNAPSHOT_FILE), 'utf8')) as DatabaseSnapshot;
  } catch (error) {
    if (isMissing(error)) return null;
    throw new RollbackError(`${path.join(dataDir, SNAPSHOT_FILE)} cannot be read: ${errorMessage(error)}`, 'snapshot', { cause: error });
  }
}

async function fileInfo(file: string): Promise<{ size: number; mtimeMs: number } | null> {
  try {
    const info = await stat(file);
    return { size: info.size, mtimeMs: info.mtimeMs };
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
}

/** The database step of one configured database: see the top of this file. */
class DatabaseStrategy implements RollbackStrategy {
  readonly type = 'database';
  private readonly mysql: MysqlClient;

  constructor(
    private readonly config: DatabaseStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {
    this.mysql = mysqlClient(config, deps);
  }

  describe(): string {
    const { config } = this;
    const parts = [`database ${this.mysql.where}`];
    if (config.migrate_down) parts.push(`migrate_down ${config.migrate_down.join(' ')}`);
    parts.push(config.restore === 'automatic' ? `restore the pre-release backup${config.stop_app ? ` (pm2 ${config.stop_app} stopped meanwhile)` : ''}` : 'no automatic restore');
    if (config.check_tables.length > 0) parts.push(`check ${config.check_tables.join(', ')}`);
    return parts.join(', ');
  }

  async prepare(ctx: ReleaseContext): Promise<void> {
    const { config, deps, mysql } = this;
    if (!config.backup_on_release) return;
    const scope = stepScope(ctx, config.timeout, deps.clock);
    const dumpFile = path.join(ctx.dataDir, PRE_RELEASE_DUMP);
    const existing = await fileInfo(dumpFile);
    const known = await readSnapshot(ctx.dataDir);
    if (existing && known) {
      ctx.progress(`pre-release backup of ${config.database} for ${ctx.version} already taken at ${known.dumpedAt}; keeping it`);
      return;
    }
    const secret = mysql.password();
    const takenAtMs = deps.clock.now();
    const tables = await within(scope, 'snapshot', `listing the tables of ${config.database}`, () => mysql.listTables(secret, scope, 'snapshot'));
    const present = config.check_tables.filter((t) => tables.includes(t));
    const absent = config.check_tables.filter((t) => !tables.includes(t));
    if (absent.length > 0) ctx.progress(`warning: check_tables not in ${config.database} before the release: ${absent.join(', ')}`);
    const counts = await within(scope, 'snapshot', 'counting rows', () => mysql.countRows(present, secret, scope, 'snapshot'));
    ctx.progress(`mysqldump ${config.database} -> ${dumpFile}`);
    const { bytes: dumpBytes, binlog } = await mysql.backup(ctx, dumpFile, secret, scope);
    const snapshot: DatabaseSnapshot = {
      version: ctx.version,
      database: config.database,
      takenAt: new Date(takenAtMs).toISOString(),
      takenAtMs,
      dumpedAt: new Date(deps.clock.now()).toISOString(),
      dumpBytes,
      tables,
      counts,
      ...(binlog ? { binlog } : {}),
    };
    await writeJsonAtomic(path.join(ctx.dataDir, SNAPSHOT_FILE), snapshot, { mode: 0o600 });
    ctx.progress(
      `pre-release backup: ${dumpBytes} bytes; rows ${Object.entries(counts).map(([t, n]) => `${t}=${n}`).join(', ') || '(no check_tables)'}`,
    );
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    const { config, deps } = this;
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    const scope = stepScope(ctx, Math.min(config.timeout, 30_000), deps.clock);
    const found: string[] = [];
    for (const program of [config.mysqldump, config.mysql]) {
      if (!(await deps.run.which(program))) found.push(`${program} is not installed (not found on PATH)`);
    }
    let secret: string | undefined;
    let secretOk = true;
    try {
      secret = this.mysql.password();
    } catch (error) {
      secretOk = false;
      found.push(errorMessage(error));
    }
    if (secretOk && (await deps.run.which(config.mysql))) {
      try {
        const tables = await this.mysql.listTables(secret, scope, 'check');
        const missing = config.check_tables.filter((t) => !tables.includes(t));
        if (missing.length > 0) found.push(`check_tables missing from ${config.database}: ${missing.join(', ')}`);
      } catch (error) {
        found.push(`cannot query ${this.mysql.where} as ${config.user}: ${errorMessage(error)}`);
      }
    }
    if (config.restore === 'automatic' || config.backup_on_release) found.push(...(await this.backupProblems(ctx)));
    if (config.migrate_down) {
      const versionIssue = [ctx.from, ctx.to].map(versionProblem).find((p) => p !== null);
      if (versionIssue) found.push(versionIssue);
      const { program } = this.migrateCommand(ctx);
      const resolved = program.includes('/') ? path.resolve(config.migrate_cwd ?? process.cwd(), program) : program;
      if (!(await deps.run.which(resolved))) found.push(`migrate_down program ${program} is not installed (not found)`);
    }
    if (config.migrate_cwd) {
      const cwd = await stat(config.migrate_cwd).catch(() => null);
      if (!cwd?.isDirectory()) found.push(`migrate_cwd ${config.migrate_cwd} is not a directory`);
    }
    if (config.stop_app && config.restore === 'automatic') {
      try {
        if ((await deps.pm2.describe(config.stop_app)).length === 0) found.push(`pm2 does not know stop_app "${config.stop_app}"`);
      } catch (error) {
        found.push(`could not ask pm2 about stop_app "${config.stop_app}": ${errorMessage(error)}`);
      }
    }
    return found;
  }

  /** What `check` finds wrong with the backup a rollback would restore (or replay the binary log after). */
  private async backupProblems(ctx: RollbackContext): Promise<string[]> {
    const { config, deps } = this;
    const found: string[] = [];
    const source = ctx.prepared?.dir ?? ctx.dataDir;
    const dumpFile = path.join(source, PRE_RELEASE_DUMP);
    const info = await fileInfo(dumpFile).catch(() => null);
    const snapshot = await readSnapshot(source).catch(() => null);
    if (ctx.prepared?.source === 'stable' && snapshot?.binlog && !(await deps.run.which(config.mysqlbinlog))) {
      found.push(`${config.mysqlbinlog} is not installed (not found on PATH): the binary log could not be replayed after restoring the stable backup`);
    }
    if (!info || !snapshot) {
      found.push(`no pre-release backup of ${config.database} for ${ctx.from} (${dumpFile}${snapshot ? '' : ` and ${SNAPSHOT_FILE}`} missing)`);
    } else if (deps.clock.now() - snapshot.takenAtMs > BACKUP_MAX_AGE_MS) {
      found.push(`the pre-release backup ${dumpFile} was taken at ${snapshot.takenAt}, more than 24h ago; restoring it would lose everything since`);
    }
    return found;
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const { config, deps } = this;
    const scope = stepScope(ctx, config.timeout, deps.clock);
    if (config.migrate_down) {
      const issue = [ctx.from, ctx.to].map(versionProblem).find((p) => p !== null);
      if (issue) throw new RollbackError(issue, 'validate');
    }
    const secret = this.mysql.password();
    // The backup the shell chose (this window's, or the stable version's: preparations.ts).
    const source = ctx.prepared?.dir ?? ctx.dataDir;
    const snapshot = await readSnapshot(source);
    const dumpFile = path.join(source, PRE_RELEASE_DUMP);
    const backup = await fileInfo(dumpFile);
    // Refuse before changing anything when the restore could not happen anyway.
    if (config.restore === 'automatic' && !backup) {
      throw new RollbackError(`cannot restore ${config.database}: no pre-release backup at ${dumpFile} (was backup_on_release on when ${ctx.from} started?)`, 'restore');
    }

    if (config.migrate_down) await this.migrateDown(ctx, scope);

    let restored = false;
    if (config.restore === 'automatic') {
      const replay = ctx.prepared?.source === 'stable' ? () => this.mysql.replayBinlog(ctx, scope, secret, snapshot) : undefined;
      await this.restore(ctx, scope, secret, dumpFile, replay);
      restored = true;
    } else if (backup) {
      const since = snapshot?.takenAt ?? new Date(backup.mtimeMs).toISOString();
      ctx.progress(
        `restore not automatic: pre-release backup kept at ${dumpFile}; restoring loses writes since ${since} ` +
          `(restore: automatic to do it on rollback, or by hand: mysql ${config.database} < ${dumpFile})`,
      );
    } else {
      ctx.progress(`restore not automatic, and no pre-release backup was taken for ${ctx.from}`);
    }

    await this.verify(ctx, scope, secret, snapshot, restored);
  }

  /** `{from}` / `{to}` in migrate_down's arguments become the versions. */
  private migrateCommand(ctx: RollbackContext): { program: string; args: string[] } {
    const [program, ...args] = this.config.migrate_down ?? [];
    if (program === undefined) throw new RollbackError('migrate_down is empty', 'migrate-down');
    return { program, args: args.map((a) => a.replaceAll('{from}', ctx.from).replaceAll('{to}', ctx.to)) };
  }

  private async migrateDown(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const { config, deps } = this;
    const marker = path.join(ctx.dataDir, MIGRATE_DOWN_DONE);
    const done = await readFile(marker, 'utf8').then(
      (text) => JSON.parse(text) as { at?: string },
      (error: unknown) => {
        if (isMissing(error)) return null;
        throw error;
      },
    );
    const { program, args } = this.migrateCommand(ctx);
    const line = [program, ...args].join(' ');
    if (done) {
      ctx.progress(`migrate_down already ran for ${ctx.from} (at ${done.at ?? 'an earlier attempt'}); not running it twice`);
      return;
    }
    ctx.progress(`migrate_down: ${line}${config.migrate_cwd ? ` (in ${config.migrate_cwd})` : ''}`);
    let result: CommandResult;
    try {
      result = await deps.run.run(program, args, {
        ...(config.migrate_cwd ? { cwd: config.migrate_cwd } : {}),
        // Steps get a minimal environment (not the guard's): the migration tool gets this step's
        // database password as MYSQL_PWD, the variable MySQL/MariaDB clients read.
        env: secretEnv(this.mysql.password()),
        timeoutMs: scope.timeoutMs,
        signal: scope.signal,
      });
    } catch (error) {
      throw new RollbackError(`migrate_down failed: ${errorMessage(error)}`, 'migrate-down', { cause: error });
    }
    for (const out of result.stdoutTail.slice(-5)) ctx.progress(`migrate_down: ${out}`);
    // Atomic: a torn or empty marker must never be read back as "already done" or break the resume.
    await writeJsonAtomic(marker, { at: new Date(deps.clock.now()).toISOString(), command: [program, ...args] }, { mode: 0o600 });
    ctx.progress(`migrate_down done in ${result.durationMs}ms`);
  }

  private async stopApp(app: string, scope: StepScope): Promise<void> {
    const { pm2 } = this.deps;
    const instances = await within(scope, 'stop-app', `pm2 describe ${app}`, () => pm2.describe(app));
    if (instances.length > 0 && instances.every((i) => i.status === 'stopped')) {
      scope.progress(`${app} is already stopped`);
      return;
    }
    scope.progress(`pm2 stop ${app} (no writes during the restore)`);
    await within(scope, 'stop-app', `pm2 stop ${app}`, () => pm2.stop(app));
  }

  /** Starts the app again with a time budget of its own: also after the step ran out of time. */
  private async startApp(app: string, ctx: RollbackContext): Promise<void> {
    const { pm2, clock } = this.deps;
    // Not cancelled with the step: only its own time budget ends it.
    const scope = stepScope({ signal: new AbortController().signal, progress: (message) => ctx.progress(message) }, START_APP_TIMEOUT_MS, clock);
    ctx.progress(`pm2 restart ${app}`);
    await within(scope, 'start-app', `pm2 restart ${app}`, () => pm2.restart(app));
    await waitUntilOnline(pm2, app, scope, 'start-app');
  }

  private async restore(ctx: RollbackContext, scope: StepScope, secret: string | undefined, dumpFile: string, replay?: () => Promise<void>): Promise<void> {
    const { config, mysql } = this;
    const app = config.stop_app;
    let failure: unknown = null;
    try {
      if (app) await this.stopApp(app, scope);
      const emergency = path.join(ctx.dataDir, `emergency-${fileTime(this.deps.clock.now())}.sql`);
      ctx.progress(`emergency backup of ${config.database} as it is now -> ${emergency}`);
      const bytes = await mysql.dump(emergency, secret, scope, 'emergency-backup');
      ctx.progress(`emergency backup done (${bytes} bytes)`);
      ctx.progress(`restoring ${config.database} from ${dumpFile}`);
      const result = await mysql.client(config.mysql, [...mysql.connection, config.database], secret, scope, 'restore', { stdin: { file: dumpFile } });
      ctx.progress(`restore done in ${result.durationMs}ms`);
      // Still without the app's writes: the replayed log must land before the app starts again.
      await replay?.();
    } catch (error) {
      failure = error;
    }
    if (app) {
      try {
        await this.startApp(app, ctx);
      } catch (error) {
        if (failure === null) throw error;
        throw new RollbackError(`${errorMessage(failure)}; and ${app} could not be started again: ${errorMessage(error)}`, 'start-app', {
          cause: failure,
        });
      }
    }
    if (failure !== null) throw failure;
  }

  /** Every check_table exists and has at least the snapshot's row count. */
  private async verify(ctx: RollbackContext, scope: StepScope, secret: string | undefined, snapshot: DatabaseSnapshot | null, restored: boolean): Promise<void> {
    const { config, mysql } = this;
    const tables = await within(scope, 'integrity', `listing the tables of ${config.database}`, () => mysql.listTables(secret, scope, 'integrity'));
    if (restored && snapshot) {
      const since = tables.filter((t) => !snapshot.tables.includes(t));
      if (since.length > 0) ctx.progress(`tables created since the backup are left in place: ${since.join(', ')}`);
    }
    if (config.check_tables.length === 0) return;
    const missing = config.check_tables.filter((t) => !tables.includes(t));
    if (missing.length > 0) {
      throw new RollbackError(
        `integrity check failed: table${missing.length === 1 ? '' : 's'} ${missing.join(', ')} missing from ${config.database}`,
        'integrity',
      );
    }
    const counts = await mysql.countRows(config.check_tables, secret, scope, 'integrity');
    const below: string[] = [];
    for (const table of config.check_tables) {
      const now = counts[table];
      const before = snapshot?.counts[table];
      if (before === undefined) {
        ctx.progress(`${table}: ${now} rows (no pre-release count to compare with)`);
      } else if (now === undefined || now < before) {
        below.push(`${table}: ${now ?? 'no'} rows, below the pre-release snapshot of ${before}`);
      } else {
        ctx.progress(`${table}: ${now} rows (pre-release snapshot ${before}${now === before ? '' : `, ${now - before} more`})`);
      }
    }
    if (below.length > 0) throw new RollbackError(`integrity check failed: ${below.join('; ')}`, 'integrity');
  }
}

export const databaseStrategy: StrategyFactory<DatabaseStrategyConfig> = (config, deps) => new DatabaseStrategy(config, deps);
