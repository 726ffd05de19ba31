/**
 * Redis probe: the round trip of one PING per sample, over one kept-open ioredis connection.
 *
 * The connection is opened by the first sample and then kept: when the server goes away, ioredis
 * reconnects in the background with a capped backoff while samples report `unavailable` at once
 * (no offline queue, no per-command retries), and the first sample after the server is back is ok.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { RedisProbeConfig } from '../config/schema.js';
import { probeSecretError, readPassword, redactSecret } from '../config/secrets.js';
import { errorMessage } from '../errors.js';
import type { ProbeFactory } from './types.js';
import { latencySample, sampleDeadline, type LatencyOutcome } from './latency-outcome.js';

/** Background reconnect delay after the n-th failed attempt: 100 ms doubling, capped at 2 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt, 1) - 1, 5), 2000);
}

/**
 * Takes one sample per call. One timer of `timeout` bounds the sample: waiting for the connection
 * to be ready (first sample, or a reconnect attempt in progress) and the PING. Between reconnect
 * attempts a sample does not wait: it is unavailable at once.
 *
 * - PONG → `ok: true`, `values.latency_ms` (the PING alone, monotonic clock);
 * - not connected (refused, connect timeout, wrong password, connection lost mid-PING) →
 *   `ok: false, unavailable: true`, the error naming host:port and the last connection error;
 * - the server answers PING with an error → `ok: false`; no answer in time → `PING timed out after Nms`.
 *
 * The password is read once here and never appears in a sample. Never throws, never logs: the
 * client's 'error' events are recorded as the reason of the next unavailable sample.
 */
export const redisProbe: ProbeFactory<RedisProbeConfig> = (config, deps) => {
  const password = readPassword(`probe "${config.name}"`, config, process.env, probeSecretError);
  const where = `redis ${config.host}:${config.port}`;
  const client = probeClient(config, password);
  let lastError: string | undefined;
  client.on('error', (error: unknown) => {
    lastError = describe(error);
  });
  client.on('ready', () => {
    lastError = undefined;
  });
  // A server that shuts down cleanly just closes the connection: no 'error' event says so.
  client.on('close', () => {
    lastError ??= 'connection closed by the server';
  });
  let closed = false;

  function describe(error: unknown): string {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    return redactSecret(typeof code === 'string' ? `${errorMessage(error)} (${code})` : errorMessage(error), password);
  }

  async function run(signal: AbortSignal): Promise<LatencyOutcome> {
    if (signal.aborted) return { kind: 'failed', error: 'aborted' };
    if (closed) return { kind: 'unavailable', error: `${where}: probe closed` };
    const deadline = sampleDeadline(signal, config.timeout);
    try {
      const ready = await whenReady(client, deadline.reached);
      if (ready === 'aborted') return { kind: 'failed', error: 'aborted' };
      if (ready !== 'ready') {
        const why = lastError ?? (ready === 'timeout' ? `not connected within ${config.timeout}ms` : `connection ${client.status}`);
        return { kind: 'unavailable', error: `${where} unreachable: ${why}` };
      }
      const started = performance.now();
      // The PING's own rejection, if it comes after the deadline, is settled here, never unhandled.
      const ping = client.ping().then(
        () => ({ kind: 'done', latencyMs: performance.now() - started }) as const,
        (error: unknown): LatencyOutcome =>
          (error as Error | undefined)?.name === 'ReplyError'
            ? { kind: 'failed', error: `PING failed: ${describe(error)}` }
            : { kind: 'unavailable', error: `${where}: connection lost: ${describe(error)}` },
      );
      const answered = await Promise.race([ping, deadline.reached]);
      if (answered === 'aborted') return { kind: 'failed', error: 'aborted' };
      if (answered === 'timeout') return { kind: 'failed', error: `PING timed out after ${config.timeout}ms` };
      return answered;
    } finally {
      deadline.clear();
    }
  }

  return {
    name: config.name,
    type: 'redis',
    async sample(startedAt, signal) {
      const outcome = await run(signal);
      return latencySample(config.name, startedAt, deps.now(), outcome);
    },
    async close() {
      closed = true;
      // Also cancels a pending background reconnect; no QUIT round trip to a server that may be gone.
      client.disconnect();
    },
  };
};

/**
 * Resolves 'ready' once the client is, 'down' as soon as the current connection attempt has
 * failed (a background reconnect is then scheduled: waiting for it would only delay the news),
 * or the deadline's outcome, whichever comes first.
 */
function whenReady(client: Redis, deadline: Promise<'aborted' | 'timeout'>): Promise<'ready' | 'down' | 'aborted' | 'timeout'> {
  if (client.status === 'ready') return Promise.resolve('ready');
  if (client.status === 'reconnecting' || client.status === 'close' || client.status === 'end') return Promise.resolve('down');
  // lazyConnect: the first sample opens the connection; a failure shows up as an 'error' event
  // and the background reconnects take over, so the promise itself carries nothing new.
  if (client.status === 'wait') client.connect().catch(() => undefined);
  const listeners: [string, () => void][] = [];
  const settled = new Promise<'ready' | 'down'>((resolve) => {
    for (const [event, outcome] of [['ready', 'ready'], ['reconnecting', 'down'], ['end', 'down']] as const) {
      const listener = () => resolve(outcome);
      listeners.push([event, listener]);
      client.once(event, listener);
    }
  });
  return Promise.race([settled, deadline]).finally(() => {
    for (const [event, listener] of listeners) client.off(event, listener);
  });
}

/**
 * The probe's one connection, opened by the first sample. It fails fast while disconnected and
 * never gives up reconnecting.
 */
function probeClient(config: RedisProbeConfig, password: string | undefined): Redis {
  return new Redis({
    host: config.host,
    port: config.port,
    ...(password !== undefined ? { password } : {}),
    db: config.db,
    lazyConnect: true,
    // Fail fast while disconnected: a command is never queued for later nor retried.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: config.timeout,
    // Never gives up: the probe must notice when the server is back without being recreated.
    retryStrategy: reconnectDelay,
  });
}
