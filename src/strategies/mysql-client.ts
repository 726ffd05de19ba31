/**
 * The MySQL/MariaDB client programs as the database strategy uses them (database.ts): one SQL
 * statement, table lists and row counts, whole dumps written atomically, and point-in-time
 * recovery from the binary log. Everything runs through the CommandRunner with argument arrays;
 * the password reaches the programs in MYSQL_PWD only, and never appears in an error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DatabaseStrategyConfig } from '../config/schema.js';
import { readPassword, redactSecret } from '../config/secrets.js';
import { errorMessage, RollbackError } from '../errors.js';
import { commitFile } from '../store/atomic-write.js';
import type { CommandOptions, CommandResult } from './command-runner.js';
import type { DatabaseSnapshot } from './database.js';
import { within, type StepScope } from './step.js';
import type { ReleaseContext, RollbackContext, StrategyDeps } from './types.js';


/** How far into a dump its `-- CHANGE MASTER TO` comment is looked for (it is in the header). */
const DUMP_HEAD_BYTES = 64 * 1024;

/** The binary log coordinates mysqldump --master-data=2 wrote as a comment in the dump's header. */
async function binlogCoordinates(file: string): Promise<{ file: string; position: number } | undefined> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(DUMP_HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, DUMP_HEAD_BYTES, 0);
    const match = /CHANGE MASTER TO MASTER_LOG_FILE='([^']+)',\s*MASTER_LOG_POS=(\d+)/.exec(buffer.subarray(0, bytesRead).toString('utf8'));
    return match ? { file: match[1]!, position: Number.parseInt(match[2]!, 10) } : undefined;
  } finally {
    await handle.close();
  }
}

/** `--stop-datetime` for mysqlbinlog, in UTC (the program is run with TZ=UTC), whole seconds rounded down. */
function binlogTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

/** `2026-01-24T10:00:00.123Z` → `2026-01-24T10-00-00-123Z`: a file-name-safe, sortable time. */
export function fileTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[:.]/g, '-');
}

function quoteIdentifier(name: string): string {
  // Names are validated by the schema (letters, digits, _ and $); the backticks keep keywords safe.
  return `\`${name.replace(/`/g, '``')}\``;
}

function credentialsError(message: string, _code: string, hint: string | undefined, options: ErrorOptions | undefined): RollbackError {
  return new RollbackError(hint ? `${message} (${hint})` : message, 'credentials', options);
}

/** The password for the client programs' environment: MYSQL_PWD, the variable they read; none when there is none. */
export function secretEnv(secret: string | undefined): Record<string, string> {
  return secret === undefined ? {} : { MYSQL_PWD: secret };
}

/** The client programs bound to one configured database. */
export class MysqlClient {
  /** `host:port/database`, for messages. */
  readonly where: string;
  /** Connection arguments; `--opt=value` so no value can be taken for an option. No password here. */
  readonly connection: readonly string[];

  constructor(
    private readonly config: DatabaseStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {
    this.where = `${config.host}:${config.port}/${config.database}`;
    this.connection = [`--host=${config.host}`, `--port=${config.port}`, `--user=${config.user}`];
  }

  /** Read at each use, so a rotated password file is picked up without a restart. */
  password(): string | undefined {
    return readPassword(`database step (${this.where})`, this.config, process.env, credentialsError);
  }

  private dumpArgs(extra: readonly string[] = []): string[] {
    return [
      ...this.connection,
      ...extra,
      '--single-transaction',
      '--routines',
      '--triggers',
      // Tablespace statements need the PROCESS privilege and nothing in a database restore uses them.
      '--no-tablespaces',
      '--hex-blob',
      this.config.database,
    ];
  }

  /** Runs a client program with the password in its environment; errors never carry the password. */
  async client(
    program: string,
    args: readonly string[],
    secret: string | undefined,
    scope: StepScope,
    step: string,
    options: Partial<CommandOptions> = {},
  ): Promise<CommandResult> {
    try {
      return await this.deps.run.run(program, args, {
        ...options,
        env: { ...options.env, ...secretEnv(secret) },
        timeoutMs: scope.timeoutMs,
        signal: scope.signal,
      });
    } catch (error) {
      throw new RollbackError(redactSecret(errorMessage(error), secret), step, { cause: error });
    }
  }

  /** Runs one SQL statement with `mysql --batch`; rows of tab-separated fields. */
  async query(sql: string, secret: string | undefined, scope: StepScope, step: string): Promise<string[][]> {
    // Output goes to a file rather than the runner's bounded tail: a database may have many tables.
    const dir = await mkdtemp(path.join(tmpdir(), 'rg-mysql-'));
    const out = path.join(dir, 'rows.tsv');
    try {
      await this.client(this.config.mysql, [...this.connection, '--batch', '--skip-column-names', `--execute=${sql}`, this.config.database], secret, scope, step, {
        stdoutFile: out,
      });
      const text = await readFile(out, 'utf8');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.split('\t'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async listTables(secret: string | undefined, scope: StepScope, step: string): Promise<string[]> {
    const rows = await this.query(
      "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
      secret,
      scope,
      step,
    );
    return rows.map((row) => row[0] ?? '').filter((name) => name !== '');
  }

  /** COUNT(*) of each of `tables` (all must exist), in one statement. */
  async countRows(tables: readonly string[], secret: string | undefined, scope: StepScope, step: string): Promise<Record<string, number>> {
    if (tables.length === 0) return {};
    const sql = tables.map((t) => `SELECT '${t}', COUNT(*) FROM ${quoteIdentifier(t)}`).join(' UNION ALL ');
    const counts: Record<string, number> = {};
    for (const [name, count] of await this.query(sql, secret, scope, step)) {
      if (name !== undefined && count !== undefined) counts[name] = Number.parseInt(count, 10);
    }
    return counts;
  }

  /**
   * mysqldump into `file`, through a temporary name in the same directory renamed once the dump is
   * complete: a crash or failure never leaves a partial dump under the final name.
   */
  async dump(file: string, secret: string | undefined, scope: StepScope, step: string, extra: readonly string[] = []): Promise<number> {
    const temp = path.join(path.dirname(file), `.${path.basename(file)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await this.client(this.config.mysqldump, this.dumpArgs(extra), secret, scope, step, { stdoutFile: temp });
      const { size } = await stat(temp);
      if (size === 0) throw new RollbackError(`${this.config.mysqldump} ${this.config.database} wrote nothing`, step);
      await commitFile(temp, file);
      return size;
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  private async binlogOn(secret: string | undefined, scope: StepScope, step: string): Promise<boolean> {
    const rows = await this.query("SHOW VARIABLES LIKE 'log_bin'", secret, scope, step);
    return rows[0]?.[1]?.toUpperCase() === 'ON';
  }

  /**
   * The pre-release dump; where the server keeps a binary log, with its coordinates at the dump's
   * snapshot (--master-data=2 writes them as a comment; it needs the RELOAD privilege and briefly
   * locks tables to read them). Without that privilege the dump is taken without coordinates.
   */
  async backup(ctx: ReleaseContext, dumpFile: string, secret: string | undefined, scope: StepScope): Promise<{ bytes: number; binlog?: { file: string; position: number } }> {
    const withLog = await within(scope, 'backup', 'asking whether the server keeps a binary log', () => this.binlogOn(secret, scope, 'backup')).catch((error: unknown) => {
      ctx.progress(`could not ask whether ${this.where} keeps a binary log (${errorMessage(error)}); dumping without its coordinates`);
      return false;
    });
    if (withLog) {
      try {
        const bytes = await this.dump(dumpFile, secret, scope, 'backup', ['--master-data=2']);
        const binlog = await binlogCoordinates(dumpFile);
        if (binlog) ctx.progress(`binary log position at the backup: ${binlog.file}:${binlog.position}`);
        return { bytes, ...(binlog ? { binlog } : {}) };
      } catch (error) {
        if (scope.signal.aborted) throw error;
        ctx.progress(`mysqldump --master-data=2 failed (${errorMessage(error)}); dumping without binary log coordinates`);
      }
    }
    return { bytes: await this.dump(dumpFile, secret, scope, 'backup') };
  }

  /**
   * Point-in-time recovery after restoring an older (stable) backup: the binary log of this
   * database from the backup's position up to the moment the release began, read from the server
   * by mysqlbinlog into a file, then applied by mysql. Writes made before the release are kept;
   * the release's own (migrations included) are not replayed. Only statements whose default
   * database is this one are replayed (mysqlbinlog --database), as with the runbook's recovery.
   */
  async replayBinlog(ctx: RollbackContext, scope: StepScope, secret: string | undefined, snapshot: DatabaseSnapshot | null): Promise<void> {
    const { config, connection, where } = this;
    const began = ctx.prepared!.releaseBeganAt;
    const lost = `writes between the backup (${snapshot?.takenAt ?? 'unknown time'}) and the release start (${new Date(began).toISOString()}) are not replayed`;
    if (!snapshot?.binlog) {
      ctx.progress(`no binary log position recorded with this backup (log_bin off, or no RELOAD privilege, when it was taken): ${lost}`);
      return;
    }
    const { file, position } = snapshot.binlog;
    const logs = await this.query('SHOW BINARY LOGS', secret, scope, 'binlog-replay').catch((error: unknown) => {
      ctx.progress(`cannot list the binary logs of ${where} (${errorMessage(error)}): ${lost}`);
      return null;
    });
    if (logs === null) return;
    if (!logs.some((row) => row[0] === file)) {
      ctx.progress(`binary log ${file} is no longer on ${where} (purged?): ${lost}`);
      return;
    }
    const stop = binlogTime(began);
    const events = path.join(ctx.dataDir, `binlog-replay-${fileTime(this.deps.clock.now())}.sql`);
    ctx.progress(`replaying the binary log of ${config.database} from ${file}:${position} up to ${stop} UTC (the release start) -> ${events}`);
    await this.client(
      config.mysqlbinlog,
      [...connection, '--read-from-remote-server', '--to-last-log', `--start-position=${position}`, `--stop-datetime=${stop}`, `--database=${config.database}`, file],
      secret,
      scope,
      'binlog-replay',
      // mysqlbinlog reads --stop-datetime in its local time zone.
      { stdoutFile: events, env: { TZ: 'UTC' } },
    );
    const result = await this.client(config.mysql, [...connection, config.database], secret, scope, 'binlog-replay', { stdin: { file: events } });
    ctx.progress(`binary log replayed in ${result.durationMs}ms (${(await stat(events)).size} bytes of events)`);
  }
}

/** The client programs bound to one configured database. */
export function mysqlClient(config: DatabaseStrategyConfig, deps: StrategyDeps): MysqlClient {
  return new MysqlClient(config, deps);
}
