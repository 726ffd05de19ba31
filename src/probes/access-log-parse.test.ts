import { describe, expect, it } from 'vitest';
import {
  compileLogFormat,
  fieldAt,
  LATENCY_BOUNDS_MS,
  lineReader,
  resolveLineSettings,
  TrafficTally,
  type LineSettings,
  type LineSettingsInput,
} from './access-log-parse.js';

const settings = (input: Partial<LineSettingsInput> = {}): LineSettings => {
  const resolved = resolveLineSettings({ format: 'nginx', error_status: '^5..$', ...input });
  if (Array.isArray(resolved)) throw new Error(JSON.stringify(resolved));
  return resolved;
};
const reader = (input: Partial<LineSettingsInput> = {}) => lineReader(settings(input));

const NGINX_LINE =
  '203.0.113.7 - - [07/Dec/2026:10:15:32 +0000] "GET /api/orders?id=7 HTTP/1.1" 502 157 "-" "Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22" 0.253 127.0.0.1:3001';

describe('nginx timed lines', () => {
  it('reads status and $request_time (seconds → ms)', () => {
    expect(reader()(NGINX_LINE)).toEqual({ status: '502', latencyMs: 253 });
  });

  it('reads a request with a quote escaped the Apache way and an upstream list after retries', () => {
    const line = '10.0.0.1 - bob [07/Dec/2026:10:15:32 +0000] "GET /a\\"b HTTP/1.1" 200 5 "-" "curl/8 \\"x\\"" 0.010 127.0.0.1:3001, 127.0.0.1:3002';
    expect(reader({ where: { field: 'upstream_addr', matches: '3002' } })(line)).toEqual({ status: '200', latencyMs: 10 });
  });

  it('a request time of "-" is a request without a latency; a retried upstream time is the sum', () => {
    const read = reader({ log_format: '$status $upstream_response_time', latency_field: 'upstream_response_time' });
    expect(read('504 -')).toEqual({ status: '504' });
    expect(read('200 0.010, 0.020')).toEqual({ status: '200', latencyMs: 30 });
  });

  it('the plain combined format (no request time) does not match the timed one', () => {
    const combined = '203.0.113.7 - - [07/Dec/2026:10:15:32 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0"';
    expect(reader()(combined)).toBe('unparsed');
  });

  it('reads the combined format when told it has no latencies', () => {
    const combined = '203.0.113.7 - - [07/Dec/2026:10:15:32 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0"';
    const read = reader({ log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"', latency_field: null });
    expect(read(combined)).toEqual({ status: '200' });
  });

  it.each([
    ['empty', ''],
    ['garbage', 'hello world'],
    ['truncated line', NGINX_LINE.slice(0, 60)],
    ['status not a status', NGINX_LINE.replace('" 502 ', '" abc ')],
    ['unterminated quote', '1.2.3.4 - - [x] "GET / HTTP/1.1 200 1 "-" "ua" 0.1 -'],
    ['status 999', NGINX_LINE.replace('" 502 ', '" 999 ')],
  ])('%s is unparsed, not thrown', (_name, line) => {
    expect(reader()(line)).toBe('unparsed');
  });

  it('where: requests of other upstreams are excluded, not unparsed', () => {
    const read = reader({ where: { field: '$upstream_addr', matches: '^127\\.0\\.0\\.1:3002$' } });
    expect(read(NGINX_LINE)).toBe('excluded');
    expect(read(NGINX_LINE.replace(':3001', ':3002'))).toEqual({ status: '502', latencyMs: 253 });
  });

  // About the shape, not the speed of this machine: exponential backtracking on 8000 characters
  // would run for ages, past this test's time budget; a linear read is a blink.
  it('stays linear on a hostile line (no regular expression backtracking)', { timeout: 30_000 }, () => {
    const line = `${'" '.repeat(8000)}`;
    for (let i = 0; i < 100; i++) expect(reader()(line)).toBe('unparsed');
  });
});

describe('apache combined + %D', () => {
  it('reads microseconds', () => {
    const line = '192.0.2.1 - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 500 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 123456';
    expect(reader({ format: 'apache' })(line)).toEqual({ status: '500', latencyMs: 123.456 });
  });
});

describe('JSON lines', () => {
  const pino = (statusCode: unknown, responseTime: unknown, extra: object = {}) =>
    JSON.stringify({ level: 30, time: 1, req: { id: 1, method: 'GET', url: '/x' }, res: { statusCode }, responseTime, msg: 'request completed', ...extra });

  it('pino-http by default: res.statusCode and responseTime in ms', () => {
    expect(reader({ format: 'json' })(pino(503, 12.5))).toEqual({ status: '503', latencyMs: 12.5 });
  });

  it('an app log line without the status is not a request; broken JSON is unparsed', () => {
    const read = reader({ format: 'json' });
    expect(read(JSON.stringify({ level: 30, msg: 'server listening' }))).toBe('other');
    expect(read('{"res": {"statusCode": 200}')).toBe('unparsed');
    expect(read('[1,2]')).toBe('unparsed');
    expect(read('null')).toBe('unparsed');
    expect(read(pino('oops', 1))).toBe('unparsed');
  });

  it('morgan-style flat fields, a string status and seconds', () => {
    const read = reader({ format: 'json', status_field: 'status', latency_field: 'response-time', latency_unit: 's' });
    expect(read(JSON.stringify({ method: 'GET', status: '404', 'response-time': '0.5' }))).toEqual({ status: '404', latencyMs: 500 });
  });

  it('where on a version field, and keys that contain dots', () => {
    const read = reader({ format: 'json', status_field: 'http.status', where: { field: 'labels.version', matches: '^v2$' } });
    expect(read(JSON.stringify({ 'http.status': 200, labels: { version: 'v2' }, responseTime: 3 }))).toEqual({ status: '200', latencyMs: 3 });
    expect(read(JSON.stringify({ 'http.status': 200, labels: { version: 'v1' }, responseTime: 3 }))).toBe('excluded');
    expect(read(JSON.stringify({ 'http.status': 200, responseTime: 3 }))).toBe('excluded');
  });

  it('fieldAt prefers whole keys and walks dotted paths', () => {
    expect(fieldAt({ a: { b: { c: 1 } } }, 'a.b.c')).toBe(1);
    expect(fieldAt({ 'a.b': { c: 2 } }, 'a.b.c')).toBe(2);
    expect(fieldAt({ a: 1 }, 'a.b')).toBeUndefined();
    expect(fieldAt({ ['__proto__']: 1 }, 'constructor')).toBeUndefined();
  });
});

describe('settings', () => {
  const problems = (input: Partial<LineSettingsInput>) => {
    const resolved = resolveLineSettings({ format: 'nginx', error_status: '^5..$', ...input });
    return Array.isArray(resolved) ? resolved : [];
  };

  it('names the key, the bad value and what is allowed', () => {
    expect(problems({ error_status: '^5..(' })).toEqual([{ key: 'error_status', message: expect.stringMatching(/^"\^5\.\.\(" is not a regular expression .*; use e\.g\. \^5\.\.\$$/) }]);
    expect(problems({ log_format: '$remote_addr $status' })).toEqual([
      { key: 'log_format', message: '"$remote_addr $status" has no $request_time; set latency_field to the variable holding the request time, or latency_field: null for a log without latencies (no p95_ms)' },
    ]);
    expect(problems({ status_field: 'code' })).toEqual([{ key: 'status_field', message: expect.stringContaining('"code" is not a variable of log_format (it has $remote_addr') }]);
    expect(problems({ log_format: '$status$request_time' })[0]!.message).toContain('$status and $request_time follow each other');
    expect(problems({ where: { field: 'version', matches: 'x' } })[0]!.key).toBe('where.field');
    expect(problems({ format: 'json', log_format: '$status' })[0]!.key).toBe('log_format');
  });

  it('compiles ${var} and keeps literal dollars', () => {
    const compiled = compileLogFormat('${status}|$ $request_time');
    expect(typeof compiled).toBe('object');
  });
});

describe('TrafficTally', () => {
  it('counts errors and fills cumulative buckets at fixed bounds', () => {
    const tally = new TrafficTally(/^5..$/);
    tally.add({ status: '200', latencyMs: 0.4 });
    tally.add({ status: '500', latencyMs: 100 });
    tally.add({ status: '200', latencyMs: 100.1 });
    tally.add({ status: '200', latencyMs: 120_000 });
    tally.add({ status: '404' });
    expect([tally.requests, tally.errors]).toEqual([5, 1]);
    const latency = tally.latency()!;
    const at = (le: number) => latency.find((b) => b.le === le)!.count;
    expect(at(1)).toBe(1);
    expect(at(100)).toBe(2);
    expect(at(110)).toBe(3);
    expect(at(60_000)).toBe(3);
    expect(latency.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: 4 });
  });

  it('has no latency when no request had one', () => {
    const tally = new TrafficTally(/^5..$/);
    tally.add({ status: '200' });
    expect(tally.latency()).toBeUndefined();
  });

  it('bounds ascend from 1 ms to 60 s in steps of at most ~10 %, then Infinity', () => {
    expect(LATENCY_BOUNDS_MS[0]).toBe(1);
    expect(LATENCY_BOUNDS_MS.at(-2)).toBe(60_000);
    expect(LATENCY_BOUNDS_MS.at(-1)).toBe(Number.POSITIVE_INFINITY);
    for (let i = 1; i < LATENCY_BOUNDS_MS.length - 1; i++) {
      const step = LATENCY_BOUNDS_MS[i]! / LATENCY_BOUNDS_MS[i - 1]!;
      expect(step).toBeGreaterThan(1);
      expect(step).toBeLessThanOrEqual(1.21);
    }
  });
});
