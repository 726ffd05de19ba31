/**
 * The data and database-performance check (seed §2.2 step 4, §3.1 数据验证, §3.2 DB query
 * < 100 ms): expected tables exist, key row counts are not below a minimum or the pre-release
 * snapshot, and a query answers within `max_query_latency`.
 *
 * One connection per run (mysql2/promise), closed afterwards whatever happens; one timer of
 * `timeout` bounds the whole check. The password is read per run (so a rotated secret is picked
 * up) and never appears in a result.
 */
import { performance } from 'node:perf_hooks';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { formatDuration } from '../../config/duration.js';
import { readPassword, redactSecret } from '../../config/secrets.js';
import { errorMessage } from '../../errors.js';
import type { MysqlCheckConfig } from '../schema.js';
import type { VerificationCheckResult, VerificationContext } from '../suite.js';

/** How long a clean close (COM_QUIT) may take before the socket is simply destroyed. */
const CLOSE_GRACE_MS = 1000;

const ms = (value: number) => formatDuration(Math.round(value));

/**
 * The pre-release count of `table`: `rowSnapshot["<database>.<table>"]`, else
 * `rowSnapshot["<table>"]`.
 */
export function snapshotCount(snapshot: Record<string, number> | undefined, database: string, table: string): number | undefined {
  const value = snapshot?.[`${database}.${table}`] ?? snapshot?.[table];
  return value !== undefined && Number.isFinite(value) ? value : undefined;
}

export async function run(config: MysqlCheckConfig, ctx: VerificationContext): Promise<VerificationCheckResult> {
  const started = ctx.now();
  const done = (ok: boolean, detail: string): VerificationCheckResult => ({
    name: config.name,
    type: 'mysql',
    ok,
    detail,
    durationMs: ctx.now() - started,
  });
  let password: string | undefined;
  try {
    password = readPassword(`verification check "${config.name}"`, config);
  } catch (error) {
    return done(false, errorMessage(error));
  }
  if (ctx.signal.aborted) return done(false, 'aborted');

  const where = `mysql ${config.host}:${config.port}`;
  const describe = (error: unknown): string => {
    const code = (error as { code?: unknown } | undefined)?.code;
    return redactSecret(typeof code === 'string' ? `${errorMessage(error)} (${code})` : errorMessage(error), password);
  };
  const findings: string[] = [];
  const progress = { stage: 'connecting', ended: false };
  let connection: Connection | undefined;

  const work = async (): Promise<boolean> => {
    try {
      connection = await createConnection({
        host: config.host,
        port: config.port,
        user: config.user,
        ...(password !== undefined ? { password } : {}),
        ...(config.database !== undefined ? { database: config.database } : {}),
        connectTimeout: config.timeout,
      });
    } catch (error) {
      findings.push(`${where}: cannot connect: ${describe(error)}`);
      return false;
    }
    // A late socket error must not become an uncaught exception; the queries report it.
    connection.on('error', () => undefined);
    if (progress.ended) return false; // timed out while connecting; the caller closes it
    return checkDatabase(connection, { config, ctx, database: config.database ?? '', findings, progress, describe });
  };

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const interrupted = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`timeout after ${formatDuration(config.timeout)}`), config.timeout);
    onAbort = () => resolve('aborted');
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
  const working = work().catch((error: unknown) => {
    findings.push(`${where}: ${describe(error)}`);
    return false;
  });
  const winner = await Promise.race([working, interrupted]);
  clearTimeout(timer);
  if (onAbort) ctx.signal.removeEventListener('abort', onAbort);

  if (typeof winner === 'string') {
    progress.ended = true;
    // The connection may be busy with a query: destroy it rather than wait for it. One still
    // being opened is destroyed when it arrives.
    connection?.destroy();
    void working.then(() => connection?.destroy());
    findings.push(`${winner} while ${progress.stage}`);
    return done(false, findings.join('; '));
  }
  if (connection) await closeQuietly(connection);
  return done(winner, findings.join('; '));
}

/** COM_QUIT, so the server does not log an aborted connection; destroy if it does not answer. */
async function closeQuietly(connection: Connection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS);
  });
  const outcome = await Promise.race([connection.end().then(() => 'closed' as const, () => 'failed' as const), grace]);
  clearTimeout(timer);
  if (outcome !== 'closed') connection.destroy();
}

/** What one run's stages share: where they report, how far the run got, and how errors read. */
interface Run {
  config: MysqlCheckConfig;
  ctx: VerificationContext;
  database: string;
  findings: string[];
  progress: { stage: string; ended: boolean };
  describe(error: unknown): string;
}

/** Tables, then row counts, then the query's latency (last, on a connection the checks above warmed up). */
async function checkDatabase(connection: Connection, run: Run): Promise<boolean> {
  let ok = true;
  if (run.config.tables.length > 0) ok = (await checkTables(connection, run)) && ok;
  const rowsOk = await checkRowCounts(connection, run);
  if (rowsOk === null) return false;
  ok = rowsOk && ok;
  if (run.progress.ended) return false;
  return (await checkQueryLatency(connection, run)) && ok;
}

/** The expected tables exist in the database. */
async function checkTables(connection: Connection, run: Run): Promise<boolean> {
  const { config, database } = run;
  let ok = true;
  run.progress.stage = 'checking tables';
  try {
    const [rows] = await connection.query<RowDataPacket[]>(
      'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)',
      [database, config.tables],
    );
    const present = new Set(rows.map((row) => String(row.name)));
    const missing = config.tables.filter((table) => !present.has(table));
    if (missing.length > 0) {
      ok = false;
      run.findings.push(`missing in ${database}: ${missing.join(', ')} (expected ${config.tables.length} tables, found ${config.tables.length - missing.length})`);
    } else {
      run.findings.push(`${config.tables.length} tables exist in ${database}`);
    }
  } catch (error) {
    ok = false;
    run.findings.push(`cannot list tables of ${database}: ${run.describe(error)}`);
  }
  return ok;
}

/** Each table has at least its minimum (or pre-release snapshot) of rows; null when the run ended meanwhile. */
async function checkRowCounts(connection: Connection, run: Run): Promise<boolean | null> {
  const { config, database } = run;
  let ok = true;
  for (const [table, minimum] of Object.entries(config.min_rows)) {
    if (run.progress.ended) return null;
    run.progress.stage = `counting ${table}`;
    const threshold = minimum === 'snapshot' ? snapshotCount(run.ctx.rowSnapshot, database, table) : minimum;
    const against = minimum === 'snapshot' ? 'pre-release snapshot' : 'minimum';
    if (threshold === undefined) {
      ok = false;
      run.findings.push(`${table}: no data (no pre-release row count in the snapshot)`);
      continue;
    }
    let count: number;
    try {
      const [rows] = await connection.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM ${connection.escapeId(database)}.${connection.escapeId(table)}`,
      );
      count = Number(rows[0]?.n);
    } catch (error) {
      ok = false;
      run.findings.push(`${table}: cannot count rows: ${run.describe(error)}`);
      continue;
    }
    if (count < threshold) {
      ok = false;
      run.findings.push(`${table}: ${count} rows < ${against} ${threshold}`);
    } else {
      run.findings.push(`${table}: ${count} rows >= ${against} ${threshold}`);
    }
  }
  return ok;
}

/** The configured query answers within max_query_latency. */
async function checkQueryLatency(connection: Connection, run: Run): Promise<boolean> {
  const { config } = run;
  let ok = true;
  run.progress.stage = 'running the query';
  // Last, on a connection already warmed up by the checks above: the query's own latency.
  const queryStarted = performance.now();
  try {
    await connection.query(config.query);
    const latency = performance.now() - queryStarted;
    if (latency > config.max_query_latency) {
      ok = false;
      run.findings.push(`query ${ms(latency)} > max ${ms(config.max_query_latency)}`);
    } else {
      run.findings.push(`query ${ms(latency)} <= max ${ms(config.max_query_latency)}`);
    }
  } catch (error) {
    ok = false;
    run.findings.push(`query failed: ${run.describe(error)}`);
  }
  return ok;
}
