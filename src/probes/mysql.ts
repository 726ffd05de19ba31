/**
 * MySQL/MariaDB probe: the latency of one read-only query per sample, over a small pool of kept-open
 * connections (mysql2/promise).
 *
 * Outcomes are kept apart on purpose: a database that cannot be reached or refuses the login is
 * "no data" (`unavailable`), never a bad release; a query that fails or is too slow on a reachable
 * server is a failed check (`ok: false`).
 */
import { performance } from 'node:perf_hooks';
import { createPool, type Pool, type PoolConnection } from 'mysql2/promise';
import type { MysqlProbeConfig } from '../config/schema.js';
import { probeSecretError, readPassword, redactSecret } from '../config/secrets.js';
import { errorMessage } from '../errors.js';
import type { ProbeFactory } from './types.js';
import { latencySample, sampleDeadline, type LatencyOutcome } from './latency-outcome.js';

/** Error codes that mean the server is gone or refused us, whenever they happen. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);

/**
 * Takes one sample per call: borrows a pooled connection, runs `query`, returns it. One timer of
 * `timeout` bounds the whole sample: waiting for a free connection, connecting and the query.
 * (mysql2's own `{ sql, timeout }` only starts once the query is sent and leaves the connection busy
 * with it, so it is not used: on our timeout the connection is destroyed instead, and the pool
 * opens a fresh one next time.)
 *
 * - success → `ok: true`, `values.latency_ms` (the query alone, monotonic clock);
 * - cannot connect (refused, connect timeout, access denied, unknown database) or the connection
 *   is lost mid-query → `ok: false, unavailable: true`, the error naming host:port and the code;
 * - SQL error → `ok: false`, `query failed: … (CODE)`; too slow → `query timed out after Nms`.
 *
 * The password is read once here and never appears in a sample. Never throws, never logs.
 */
export const mysqlProbe: ProbeFactory<MysqlProbeConfig> = (config, deps) => {
  const password = readPassword(`probe "${config.name}"`, config, process.env, probeSecretError);
  const where = `mysql ${config.host}:${config.port}`;
  const pool = quietPool(config, password);
  const probe: ProbePool = {
    pool,
    where,
    outstanding: 0,
    closing: undefined,
    describe: (error) => {
      const code = errorCode(error);
      return redactSecret(code === undefined ? errorMessage(error) : `${errorMessage(error)} (${code})`, password);
    },
  };

  return {
    name: config.name,
    type: 'mysql',
    async sample(startedAt, signal) {
      const outcome = await queryLatency(config, probe, signal);
      return latencySample(config.name, startedAt, deps.now(), outcome);
    },
    close() {
      // Idempotent; a pool whose server is gone still ends (its sockets are already closed).
      probe.closing ??= pool.end().catch(() => undefined);
      return probe.closing;
    },
  };
};

/** What the probe's samples share. */
interface ProbePool {
  pool: Pool;
  /** `mysql HOST:PORT`, for errors. */
  where: string;
  /** Connections borrowed or being borrowed by samples: at pool_size, a new sample has to queue. */
  outstanding: number;
  /** Set once close() is called. */
  closing: Promise<void> | undefined;
  /** An error in words, its code added and the password redacted. */
  describe(error: unknown): string;
}

/** The probe's pool, with every connection's late 'error' event handled. */
function quietPool(config: MysqlProbeConfig, password: string | undefined): Pool {
  const pool = createPool({
    host: config.host,
    port: config.port,
    user: config.user,
    ...(password !== undefined ? { password } : {}),
    ...(config.database !== undefined ? { database: config.database } : {}),
    connectionLimit: config.pool_size,
    maxIdle: config.pool_size,
    connectTimeout: config.timeout,
    waitForConnections: true,
    enableKeepAlive: true,
  });
  // A server that goes away makes idle pooled connections emit 'error' (sometimes more than once
  // per connection, which mysql2's own once-listener does not cover). Unhandled, that would crash
  // the daemon; the next sample reports the outage instead.
  const ignore = () => undefined;
  pool.pool.on('error', ignore);
  pool.on('connection', (connection) => {
    (connection as unknown as NodeJS.EventEmitter).on('error', ignore);
  });
  return pool;
}

async function queryLatency(config: MysqlProbeConfig, probe: ProbePool, signal: AbortSignal): Promise<LatencyOutcome> {
  const { where, describe } = probe;
  if (signal.aborted) return { kind: 'failed', error: 'aborted' };
  if (probe.closing) return { kind: 'unavailable', error: `${where}: probe closed` };
  const queued = probe.outstanding >= config.pool_size;
  probe.outstanding += 1;
  let connection: PoolConnection | undefined;
  let released = false;
  const giveBack = (destroy: boolean) => {
    if (released) return;
    released = true;
    probe.outstanding -= 1;
    if (connection === undefined) return;
    if (destroy) connection.destroy();
    else connection.release();
  };

  const deadline = sampleDeadline(signal, config.timeout);
  // Set by `work`, read after the race: an object, so the compiler does not narrow it to 'connect'.
  const progress: { stage: 'connect' | 'query' } = { stage: 'connect' };
  const work = (async (): Promise<LatencyOutcome> => {
    try {
      connection = await probe.pool.getConnection();
    } catch (error) {
      return { kind: 'unavailable', error: `${where}: cannot connect: ${describe(error)}` };
    }
    if (released) {
      // The sample already ended (timeout or abort) while this connection was being opened.
      connection.release();
      return { kind: 'failed', error: 'late' };
    }
    progress.stage = 'query';
    const started = performance.now();
    try {
      await connection.query(config.query);
      return { kind: 'done', latencyMs: performance.now() - started };
    } catch (error) {
      // A fatal error is the connection's, not the query's: the server went away mid-query.
      if ((error as { fatal?: unknown }).fatal === true || UNREACHABLE_CODES.has(errorCode(error) ?? '')) {
        giveBack(true);
        return { kind: 'unavailable', error: `${where}: connection lost: ${describe(error)}` };
      }
      return { kind: 'failed', error: `query failed: ${describe(error)}` };
    }
  })();

  const winner = await Promise.race([work, deadline.reached]);
  deadline.clear();
  if (typeof winner !== 'string') {
    giveBack(false);
    return winner;
  }
  // Timed out or aborted: the connection (if any) may still be running the query; destroy it
  // rather than hand a busy connection back. A late connect result is released by `work`.
  giveBack(true);
  if (winner === 'aborted') return { kind: 'failed', error: 'aborted' };
  if (progress.stage === 'query') return { kind: 'failed', error: `query timed out after ${config.timeout}ms` };
  return queued
    ? { kind: 'failed', error: `query timed out after ${config.timeout}ms waiting for a free connection (pool_size ${config.pool_size})` }
    : { kind: 'unavailable', error: `${where}: cannot connect: no connection within ${config.timeout}ms (ETIMEDOUT)` };
}

/** mysql2 puts the code on the error; Node's happy-eyeballs connect may wrap it in an AggregateError. */
function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}
