/**
 * The functional and performance check: an endpoint (login, core API, a page) answers with an
 * expected status and body, within `max_latency` (the p95 of `repeat` requests when repeat > 1).
 *
 * Also exports `sendRequest`, the bounded HTTP exchange the security check shares: like
 * probes/http-fetch.ts's `fetchCapped` (one timer bounds the whole exchange, the response body is
 * capped while it streams, nothing lingers after a failure) but able to send a request body,
 * which a login check needs.
 */
import { formatDuration } from '../../config/duration.js';
import { percentile } from '../../core/rules.js';
import { fetchCapped, type Exchange } from '../../probes/http-fetch.js';
import type { HttpCheckConfig } from '../schema.js';
import type { VerificationCheckResult, VerificationContext } from '../suite.js';

export interface RequestOptions {
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  /** Bounds the whole exchange: connect, sending, headers and body. */
  timeoutMs: number;
  maxBodyBytes: number;
  signal: AbortSignal;
}

/**
 * One request without following redirects, on a fresh connection (a verification observes the
 * service as a new client would, and leaves no sockets behind). Never rejects.
 */
export function sendRequest(target: URL, options: RequestOptions): Promise<Exchange> {
  return fetchCapped(target, { ...options, agent: false });
}

/** `GET http://host:port/path`: no credentials, query string or fragment (they may hold secrets). */
export function requestLabel(method: string, target: URL): string {
  return `${method} ${target.origin}${target.pathname}`;
}

export function formatStatuses(expected: readonly number[]): string {
  return expected.length === 1 ? String(expected[0]) : `${expected.slice(0, -1).join(', ')} or ${expected.at(-1)}`;
}

/** Nearest-rank p95, as the rules compute it. */
export function p95(values: readonly number[]): number {
  return percentile(values, 95) ?? 0;
}

const ms = (value: number) => formatDuration(Math.round(value));

/**
 * Runs the check. Requests are made one after another (never concurrently: a verification must
 * not load a service that has just been rolled back) and the check stops at the first request
 * that fails functionally. Never throws.
 */
export async function run(config: HttpCheckConfig, ctx: VerificationContext): Promise<VerificationCheckResult> {
  const started = ctx.now();
  const done = (ok: boolean, detail: string): VerificationCheckResult => ({
    name: config.name,
    type: 'http',
    ok,
    detail,
    durationMs: ctx.now() - started,
  });
  const target = new URL(config.url);
  const label = requestLabel(config.method, target);
  const expected = `expected ${formatStatuses(config.expect_status)}`;
  const latencies: number[] = [];
  let lastStatus = 0;

  for (let i = 1; i <= config.repeat; i += 1) {
    const where = config.repeat > 1 ? `${label}: request ${i} of ${config.repeat}` : label;
    const exchange = await sendRequest(target, {
      method: config.method,
      headers: config.headers,
      body: config.body,
      timeoutMs: config.timeout,
      maxBodyBytes: config.max_body_bytes,
      signal: ctx.signal,
    });
    if (exchange.failure !== undefined) {
      const got = exchange.status === undefined ? 'no answer' : `status ${exchange.status}, then`;
      return done(false, `${where}: ${got} ${exchange.failure} (${expected})`);
    }
    const status = exchange.status ?? 0;
    if (!config.expect_status.includes(status)) {
      return done(false, `${where}: status ${status}, ${expected}`);
    }
    const needle = config.expect_body_contains;
    if (needle !== undefined && !(exchange.body ?? Buffer.alloc(0)).includes(needle)) {
      // The body itself is not shown: it may hold tokens or personal data.
      return done(false, `${where}: status ${status} but the body (${exchange.body?.length ?? 0} bytes) does not contain ${JSON.stringify(needle)}`);
    }
    latencies.push(exchange.latencyMs);
    lastStatus = status;
  }

  const functional =
    config.repeat > 1
      ? `${config.repeat} requests, all status ${formatStatuses(config.expect_status)}`
      : `status ${lastStatus}`;
  const body = config.expect_body_contains === undefined ? '' : `, body contains ${JSON.stringify(config.expect_body_contains)}`;
  const observed = config.repeat > 1 ? p95(latencies) : (latencies[0] ?? 0);
  const what = config.repeat > 1 ? 'p95 ' : '';
  if (config.max_latency === undefined) return done(true, `${label}: ${functional}${body}, ${what}${ms(observed)}`);
  if (observed > config.max_latency) {
    return done(false, `${label}: ${functional}${body}, but ${what}${ms(observed)} > max ${ms(config.max_latency)}`);
  }
  return done(true, `${label}: ${functional}${body}, ${what}${ms(observed)} <= max ${ms(config.max_latency)}`);
}
