/**
 * The functional and performance check: an endpoint (login, core API, a page) answers with an
 * expected status and body, within `max_latency` (the p95 of `repeat` requests when repeat > 1).
 *
 * Also exports `sendRequest`, the bounded HTTP exchange the security check shares: like
 * probes/http-fetch.ts's `fetchCapped` (one timer bounds the whole exchange, the response body is
 * capped while it streams, nothing lingers after a failure) but able to send a request body,
 * which a login check needs.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { formatDuration } from '../../config/duration.js';
import { errorMessage } from '../../errors.js';
import { describeNetworkError, type Exchange } from '../../probes/http-fetch.js';
import type { HttpCheckConfig } from '../schema.js';
import type { CheckResult, VerificationContext } from '../suite.js';

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
 * Performs one request without following redirects. Resolves exactly once and never rejects;
 * destroys the socket on every failure. Failure texts never contain header values or the body.
 */
export function sendRequest(target: URL, options: RequestOptions): Promise<Exchange> {
  const started = performance.now();
  const { signal } = options;
  if (signal.aborted) return Promise.resolve({ failure: 'aborted', latencyMs: 0 });

  return new Promise((resolve) => {
    let req: http.ClientRequest | undefined;
    let status: number | undefined;
    let settled = false;
    const finish = (outcome: { body?: Buffer; failure?: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (outcome.failure !== undefined) req?.destroy();
      const result: Exchange = { ...outcome, latencyMs: performance.now() - started };
      if (status !== undefined) result.status = status;
      resolve(result);
    };
    const onAbort = () => finish({ failure: 'aborted' });
    const timer = setTimeout(() => finish({ failure: `timeout after ${formatDuration(options.timeoutMs)}` }), options.timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    const tooLarge = `body larger than ${options.maxBodyBytes} bytes`;

    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    try {
      const transport = target.protocol === 'https:' ? https : http;
      // agent: false: a fresh connection per request, closed afterwards; a verification must
      // observe the service as a new client would, and leave no sockets behind.
      req = transport.request(target, { method: options.method, headers, agent: false });
    } catch (error) {
      finish({ failure: `request could not be sent: ${errorMessage(error)}` });
      return;
    }
    req.on('error', (error) => finish({ failure: describeNetworkError(error) }));
    req.on('response', (res) => {
      status = res.statusCode;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
        finish({ failure: tooLarge });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBodyBytes) finish({ failure: tooLarge });
        else chunks.push(chunk);
      });
      res.on('end', () => finish({ body: Buffer.concat(chunks, size) }));
      res.on('error', (error) => finish({ failure: `response failed: ${describeNetworkError(error)}` }));
      res.on('close', () => {
        if (!res.complete) finish({ failure: 'connection closed before the body was complete' });
      });
    });
    req.end(options.body);
  });
}

/** `GET http://host:port/path`: no credentials, query string or fragment (they may hold secrets). */
export function requestLabel(method: string, target: URL): string {
  return `${method} ${target.origin}${target.pathname}`;
}

export function formatStatuses(expected: readonly number[]): string {
  return expected.length === 1 ? String(expected[0]) : `${expected.slice(0, -1).join(', ')} or ${expected.at(-1)}`;
}

/** Nearest-rank p95. */
export function p95(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * 0.95) - 1)] ?? 0;
}

const ms = (value: number) => formatDuration(Math.round(value));

/**
 * Runs the check. Requests are made one after another (never concurrently: a verification must
 * not load a service that has just been rolled back) and the check stops at the first request
 * that fails functionally. Never throws.
 */
export async function run(config: HttpCheckConfig, ctx: VerificationContext): Promise<CheckResult> {
  const started = ctx.now();
  const done = (ok: boolean, detail: string): CheckResult => ({
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
