import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeError } from '../errors.js';
import { probeSchema, type PrometheusProbeConfig } from '../config/schema.js';
import { interpretResponse, prometheusProbe } from './prometheus.js';

const TOKEN = 'Bearer s3cr3t-t0ken-value';

/** A fake Prometheus HTTP API: canned answers by PromQL text, like Flagger's httptest server. */
const answers: Record<string, (res: http.ServerResponse) => void> = {
  'scalar(1)': (res) => success(res, { resultType: 'scalar', result: [1700000000.1, '0.25'] }),
  one: (res) => success(res, { resultType: 'vector', result: [{ metric: {}, value: [1700000000.1, '0.042'] }] }),
  empty: (res) => success(res, { resultType: 'vector', result: [] }),
  nan: (res) => success(res, { resultType: 'vector', result: [{ metric: {}, value: [1700000000.1, 'NaN'] }] }),
  inf: (res) => success(res, { resultType: 'vector', result: [{ metric: {}, value: [1700000000.1, '+Inf'] }] }),
  three: (res) =>
    success(res, {
      resultType: 'vector',
      result: ['a', 'b', 'c'].map((instance) => ({ metric: { instance }, value: [1700000000.1, '1'] })),
    }),
  matrix: (res) => success(res, { resultType: 'matrix', result: [{ metric: {}, values: [[1700000000.1, '1']] }] }),
  'bad(': (res) =>
    json(res, 400, {
      status: 'error',
      errorType: 'bad_data',
      error: 'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
    }),
  proxy502: (res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html>bad gateway</html>');
  },
  slow: (res) => void setTimeout(() => success(res, { resultType: 'scalar', result: [1, '1'] }), 2000),
  echo: (res) => json(res, 400, { status: 'error', errorType: 'bad_data', error: `rejected token ${TOKEN}` }),
};

function success(res: http.ServerResponse, data: unknown): void {
  json(res, 200, { status: 'success', data });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

let server: http.Server;
let base: string;
let dir: string;
let authFile: string;
const seen: { path: string; query: string | null; timeout: string | null; authorization: string | undefined }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    res.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'http://x');
    const query = url.searchParams.get('query');
    seen.push({ path: url.pathname, query, timeout: url.searchParams.get('timeout'), authorization: req.headers.authorization });
    const answer = query === null ? undefined : answers[query];
    if (!url.pathname.endsWith('/api/v1/query') || !answer) json(res, 404, { status: 'error', errorType: 'not_found', error: 'no route' });
    else answer(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-prom-probe-'));
  authFile = path.join(dir, 'auth');
  await writeFile(authFile, `  ${TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

function config(queries: Record<string, string>, extra: Record<string, unknown> = {}): PrometheusProbeConfig {
  return probeSchema.parse({ type: 'prometheus', name: 'prom', url: base, queries, ...extra }) as PrometheusProbeConfig;
}

async function sampleOnce(queries: Record<string, string>, extra: Record<string, unknown> = {}) {
  const probe = prometheusProbe(config(queries, extra), { now: () => 1234 });
  try {
    return await probe.sample(1000, new AbortController().signal);
  } finally {
    await probe.close?.();
  }
}

describe('prometheus probe: values and no data', () => {
  it('reads a scalar and a one-series vector, in parallel, with the slowest time as latency_ms', async () => {
    const s = await sampleOnce({ error_ratio: 'one', p95_ms: 'scalar(1)' });
    expect(s).toMatchObject({ probe: 'prom', startedAt: 1000, at: 1234, ok: true, values: { error_ratio: 0.042, p95_ms: 0.25 } });
    expect(s.error).toBeUndefined();
    expect(s.unavailable).toBeUndefined();
    expect(s.values.latency_ms).toBeGreaterThan(0);
    const queried = seen.filter((r) => r.query === 'one' || r.query === 'scalar(1)');
    expect(queried.map((r) => r.path)).toEqual(['/api/v1/query', '/api/v1/query']);
    expect(queried[0]?.timeout).toBe('5000ms');
  });

  it('an empty vector is no data: the value is absent, the sample stays ok and says why', async () => {
    const s = await sampleOnce({ error_ratio: 'empty', p95_ms: 'scalar(1)' });
    expect(s.ok).toBe(true);
    expect(s.unavailable).toBeUndefined();
    expect(s.values).not.toHaveProperty('error_ratio');
    expect(s.values.p95_ms).toBe(0.25);
    expect(s.error).toBe('error_ratio: empty result (no traffic or no such series)');
  });

  it('NaN is no data, never 0', async () => {
    const s = await sampleOnce({ error_ratio: 'nan' });
    expect(s.ok).toBe(true);
    expect(s.values).not.toHaveProperty('error_ratio');
    expect(s.error).toMatch(/^error_ratio: NaN/);
  });

  it('+Inf is kept: a quantile past the last bucket is slow, not missing', async () => {
    const s = await sampleOnce({ p95_ms: 'inf' });
    expect(s.ok).toBe(true);
    expect(s.values.p95_ms).toBe(Number.POSITIVE_INFINITY);
  });

  it('several series is a config problem: unavailable, with a hint to aggregate', async () => {
    const s = await sampleOnce({ error_ratio: 'three', p95_ms: 'scalar(1)' });
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toBe('error_ratio: 3 series returned; aggregate the query to one series, e.g. sum(...)');
    expect(s.values.p95_ms).toBe(0.25); // still reported; rules ignore unavailable samples
  });

  it('a range vector is a config problem too', async () => {
    const s = await sampleOnce({ x: 'matrix' });
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toMatch(/^x: the query returns a range vector/);
  });
});

describe('prometheus probe: errors and outages', () => {
  it('bad PromQL: unavailable, with Prometheus\' own error text', async () => {
    const s = await sampleOnce({ error_ratio: 'bad(' });
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toBe(
      'error_ratio: prometheus error (bad_data): invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
    );
  });

  it('a non-JSON HTTP error (a proxy in front of Prometheus): unavailable with the status', async () => {
    const s = await sampleOnce({ error_ratio: 'proxy502' });
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toBe('error_ratio: HTTP 502 from prometheus with a body that is not JSON');
  });

  it('a timeout: unavailable, within the timeout', async () => {
    const s = await sampleOnce({ error_ratio: 'slow' }, { timeout: '200ms' });
    expect(s).toMatchObject({ ok: false, unavailable: true, error: 'error_ratio: prometheus unreachable: timeout after 200ms' });
  });

  it('connection refused: unavailable (a Prometheus outage is not a failed release)', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const s = await sampleOnce({ error_ratio: 'one' }, { url: `http://127.0.0.1:${port}` });
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toBe('error_ratio: prometheus unreachable: connection refused (ECONNREFUSED)');
  });

  it('keeps a path prefix of the base URL', async () => {
    const s = await sampleOnce({ v: 'one' }, { url: `${base}/prom/` });
    expect(s.values.v).toBe(0.042);
    expect(seen.at(-1)?.path).toBe('/prom/api/v1/query');
  });

  it('an aborted sample is unavailable at once', async () => {
    const probe = prometheusProbe(config({ v: 'slow' }), { now: () => 0 });
    const controller = new AbortController();
    const pending = probe.sample(0, controller.signal);
    setTimeout(() => controller.abort(), 50);
    const s = await pending;
    await probe.close?.();
    expect(s).toMatchObject({ ok: false, unavailable: true, error: 'v: prometheus unreachable: aborted' });
  });
});

describe('prometheus probe: auth_header_file', () => {
  it('sends the trimmed file content as the Authorization header', async () => {
    const s = await sampleOnce({ v: 'one' }, { auth_header_file: authFile });
    expect(s.ok).toBe(true);
    expect(seen.at(-1)?.authorization).toBe(TOKEN);
  });

  it('never puts it in an error, even when Prometheus echoes it', async () => {
    const s = await sampleOnce({ v: 'echo' }, { auth_header_file: authFile });
    expect(s.ok).toBe(false);
    expect(s.error).toContain('[redacted]');
    expect(s.error).not.toContain('s3cr3t');
  });

  it('sends no Authorization header without the option', async () => {
    await sampleOnce({ v: 'one' });
    expect(seen.at(-1)?.authorization).toBeUndefined();
  });

  it('a missing or empty file stops the probe from being created, naming the file, not its content', async () => {
    expect(() => prometheusProbe(config({ v: 'one' }, { auth_header_file: path.join(dir, 'nope') }), { now: () => 0 })).toThrow(
      ProbeError,
    );
    const empty = path.join(dir, 'empty');
    await writeFile(empty, '\n');
    expect(() => prometheusProbe(config({ v: 'one' }, { auth_header_file: empty }), { now: () => 0 })).toThrow(
      /auth_header_file .*empty must hold one non-empty line/,
    );
  });

  it.each([[0o644, 'everyone'], [0o640, 'its group']])('a file with mode %s is refused at creation (readable by %s)', async (mode, who) => {
    const open = path.join(dir, `open-${mode.toString(8)}`);
    await writeFile(open, `${TOKEN}\n`);
    await chmod(open, mode);
    expect(() => prometheusProbe(config({ v: 'one' }, { auth_header_file: open }), { now: () => 0 })).toThrow(
      new RegExp(`auth_header_file ${open} is readable by ${who}; run: chmod 600`),
    );
    try {
      prometheusProbe(config({ v: 'one' }, { auth_header_file: open }), { now: () => 0 });
    } catch (error) {
      expect(String(error)).not.toContain(TOKEN);
    }
  });
});

describe('interpretResponse', () => {
  const body = (value: unknown) => Buffer.from(JSON.stringify(value));
  it.each([
    ['-Inf', { kind: 'value', value: Number.NEGATIVE_INFINITY }],
    ['1e-3', { kind: 'value', value: 0.001 }],
    ['zero', { kind: 'unavailable', reason: 'value "zero" is not a number' }],
  ])('scalar %s', (text, expected) => {
    expect(interpretResponse(200, body({ status: 'success', data: { resultType: 'scalar', result: [1, text] } }))).toEqual(expected);
  });

  it('a string result is not a number', () => {
    expect(interpretResponse(200, body({ status: 'success', data: { resultType: 'string', result: [1, 'x'] } })).kind).toBe(
      'unavailable',
    );
  });

  it('a 503 with an error body keeps the error text', () => {
    expect(interpretResponse(503, body({ status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' }))).toEqual({
      kind: 'unavailable',
      reason: 'prometheus error (timeout): query timed out in expression evaluation',
    });
  });
});
