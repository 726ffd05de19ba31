import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSchema, type HttpProbeConfig } from '../config/schema.js';
import { httpProbe } from './http.js';
import type { Probe } from './types.js';

/** Canned replies by path, like Flagger's httptest server. */
const routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void> = {
  '/ok': (_req, res) => json(res, 200, { status: 'ok', version: '1.4.2' }),
  '/broken': (_req, res) => json(res, 500, { status: 'down', version: '1.5.0' }),
  '/numeric-version': (_req, res) => json(res, 200, { build: { number: 42 } }),
  '/unsafe-version': (_req, res) => json(res, 200, { status: 'ok', version: 'v1;rm -rf /' }),
  '/text': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('all systems nominal');
  },
  '/redirect': (_req, res) => {
    res.writeHead(302, { location: '/ok' });
    res.end();
  },
  '/hang': () => {
    // Never answers: the probe's timer must end the exchange.
  },
  '/huge-chunked': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(Buffer.alloc(5 * 1024 * 1024, 'a'));
  },
  '/huge-declared': (_req, res) => {
    const body = Buffer.alloc(5 * 1024 * 1024, 'a');
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  },
  '/drip': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const timer = setInterval(() => res.write('x'), 50);
    res.on('close', () => clearInterval(timer));
  },
};

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    // The probe destroys sockets mid-reply on purpose; those write errors are expected here.
    res.on('error', () => undefined);
    const route = routes[req.url ?? ''];
    if (route) route(req, res);
    else json(res, 404, { error: 'no route' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Builds a config through the real schema, so defaults are the ones users get. */
function probe(path: string, overrides: Record<string, unknown> = {}): Probe {
  const config = probeSchema.parse({ type: 'http', name: 'web', url: `${base}${path}`, ...overrides });
  return httpProbe(config as HttpProbeConfig, { now: () => 1_000 });
}

const never = () => new AbortController().signal;

async function openConnections(): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** The probe must not leave its socket open: poll until the server sees none. */
async function expectNoOpenConnections(): Promise<void> {
  const deadline = Date.now() + 2_000;
  while ((await openConnections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(await openConnections()).toBe(0);
}

describe('httpProbe: status, JSON field and version', () => {
  it('passes a 200 with the expected JSON field and reports the version', async () => {
    const sample = await probe('/ok', {
      json_field: { path: 'status', equals: 'ok' },
      version_path: 'version',
    }).sample(500, never());
    expect(sample).toMatchObject({ probe: 'web', startedAt: 500, at: 1_000, ok: true, version: '1.4.2' });
    expect(sample.error).toBeUndefined();
    expect(sample.values.status).toBe(200);
    expect(sample.values.latency_ms).toBeGreaterThanOrEqual(0);
    expect(sample.unavailable).toBeUndefined();
    // keepAlive is off: a finished exchange leaves no idle socket behind.
    await expectNoOpenConnections();
  });

  it('fails a 500 but still reveals the version it reports', async () => {
    const sample = await probe('/broken', { version_path: 'version' }).sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.error).toBe('status 500, expected 200');
    expect(sample.values.status).toBe(500);
    expect(sample.version).toBe('1.5.0');
  });

  it('names every problem: status and JSON field', async () => {
    const sample = await probe('/broken', { json_field: { path: 'status', equals: 'ok' } }).sample(0, never());
    expect(sample.error).toBe('status 500, expected 200; json field status = "down", expected "ok"');
  });

  it('fails when the JSON field differs (strict equality)', async () => {
    const sample = await probe('/ok', {
      expect_status: [200, 204],
      json_field: { path: 'status', equals: 'healthy' },
    }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'json field status = "ok", expected "healthy"' });
  });

  it('fails when the JSON field is missing, following dot paths over own keys only', async () => {
    const sample = await probe('/ok', { json_field: { path: 'status.constructor', equals: 'x' } }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'json field status.constructor is missing, expected "x"' });
  });

  it('reports a numeric version at a nested path as a string', async () => {
    const sample = await probe('/numeric-version', { version_path: 'build.number' }).sample(0, never());
    expect(sample).toMatchObject({ ok: true, version: '42' });
  });

  it('never turns unsafe text into a version', async () => {
    const sample = await probe('/unsafe-version', { version_path: 'version' }).sample(0, never());
    expect(sample.ok).toBe(true);
    expect(sample.version).toBeUndefined();
  });

  it('checks body_contains', async () => {
    expect((await probe('/text', { body_contains: 'nominal' }).sample(0, never())).ok).toBe(true);
    const sample = await probe('/text', { body_contains: 'degraded' }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'body does not contain "degraded"' });
  });

  it('fails with "body is not JSON" when a JSON field is required of a text body', async () => {
    const sample = await probe('/text', { json_field: { path: 'status', equals: 'ok' }, version_path: 'version' }).sample(
      0,
      never(),
    );
    expect(sample).toMatchObject({ ok: false, error: 'body is not JSON' });
    expect(sample.version).toBeUndefined();
  });
});

describe('httpProbe: redirects, timeouts and oversized bodies', () => {
  it('does not follow redirects', async () => {
    const sample = await probe('/redirect').sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'status 302, expected 200' });
    expect(sample.values.status).toBe(302);
  });

  it('times out on a server that never answers, and closes the socket', async () => {
    const sample = await probe('/hang', { timeout: '300ms' }).sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.error).toBe('timeout after 300ms');
    expect(sample.values.latency_ms).toBeGreaterThanOrEqual(290);
    expect(sample.values.status).toBeUndefined();
    await expectNoOpenConnections();
  });

  it('gives up sooner when the scheduler asks (fast probing), never later than its own timeout', async () => {
    const sooner = await probe('/hang', { timeout: '10s' }).sample(0, never(), { timeoutMs: 200 });
    expect(sooner).toMatchObject({ ok: false, error: 'timeout after 200ms' });
    const capped = await probe('/hang', { timeout: '300ms' }).sample(0, never(), { timeoutMs: 60_000 });
    expect(capped).toMatchObject({ ok: false, error: 'timeout after 300ms' });
    await expectNoOpenConnections();
  });

  it('times out on a body that drips slower than the timeout', async () => {
    const sample = await probe('/drip', { timeout: '400ms', body_contains: 'x' }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'timeout after 400ms' });
    expect(sample.values.status).toBe(200);
    await expectNoOpenConnections();
  });

  it.each(['/huge-chunked', '/huge-declared'])('cuts off a 5 MB body at the 64 KB cap (%s)', async (path) => {
    const sample = await probe(path, { timeout: '10s' }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'body larger than 65536 bytes' });
    expect(sample.values.status).toBe(200);
    await expectNoOpenConnections();
  });
});

describe('httpProbe: refused and aborted connections', () => {
  it('reports a refused connection', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const config = probeSchema.parse({ type: 'http', name: 'web', url: `http://127.0.0.1:${port}/` });
    const sample = await httpProbe(config as HttpProbeConfig, { now: () => 1 }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'connection refused (ECONNREFUSED)' });
    expect(sample.values.status).toBeUndefined();
    expect(typeof sample.values.latency_ms).toBe('number');
  });

  it('stops at once when the signal aborts, and closes the socket', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const sample = await probe('/hang', { timeout: '10s' }).sample(0, controller.signal);
    expect(sample).toMatchObject({ ok: false, error: 'aborted' });
    await expectNoOpenConnections();
  });

  it('does not even connect when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const sample = await probe('/ok').sample(0, controller.signal);
    expect(sample).toMatchObject({ ok: false, error: 'aborted', values: { latency_ms: 0 } });
  });
});
