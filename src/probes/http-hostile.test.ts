/**
 * Hostile servers against the http probe: every bad answer a broken or malicious endpoint can give
 * (silence, a 1 byte/s drip, 100 MB, garbage, a redirect loop, 10,000 headers, a megabyte header,
 * a reset mid-body) must come back as one sample with `ok: false` and a clear error, within the
 * probe's timeout plus a margin, with memory bounded, no socket left open and no unhandled error.
 * Raw `net` servers write bytes no well-behaved HTTP server would.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { probeSchema, type HttpProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { httpProbe } from './http.js';

interface RawServer {
  url: string;
  /** Requests seen (one per HTTP request head received). */
  requests: number;
  /** Bytes the server managed to write before the probe hung up. */
  written: number;
  /** Sockets the server still holds open. */
  open: Set<net.Socket>;
  close(): Promise<void>;
}

const servers: RawServer[] = [];

/** A TCP server on port 0 that hands each connection, once its request head arrived, to `reply`. */
async function rawServer(reply: (socket: net.Socket, server: RawServer) => void): Promise<RawServer> {
  const open = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    // The probe destroys sockets mid-reply on purpose: EPIPE / ECONNRESET here are expected.
    socket.on('error', () => undefined);
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      state.requests++;
      reply(socket, state);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const state: RawServer = {
    url: `http://127.0.0.1:${(tcp.address() as AddressInfo).port}/health`,
    requests: 0,
    written: 0,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        tcp.close(() => resolve());
      }),
  };
  servers.push(state);
  return state;
}

/** Writes `total` bytes of body as fast as the peer reads them, 64 KiB at a time; stops when it hangs up. */
function stream(socket: net.Socket, server: RawServer, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  const pump = () => {
    while (server.written < total && !socket.destroyed) {
      server.written += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
    if (!socket.destroyed) socket.end();
  };
  pump();
}

function probe(url: string, overrides: Record<string, unknown> = {}) {
  const config = probeSchema.parse({ type: 'http', name: 'web', url, ...overrides }) as HttpProbeConfig;
  return httpProbe(config, { now: () => Date.now() });
}

/** Takes one sample and measures how long it took and how far RSS rose meanwhile (sampled every 5 ms). */
async function sampleOf(url: string, overrides: Record<string, unknown> = {}) {
  const p = probe(url, overrides);
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  const meter = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 5);
  const started = performance.now();
  let sample: Sample;
  try {
    sample = await p.sample(Date.now(), new AbortController().signal);
  } finally {
    clearInterval(meter);
    await p.close?.();
  }
  rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  return { sample, elapsedMs: performance.now() - started, rssGrowth: rssPeak - rssBefore };
}

/** The server side sees its socket closed: the probe left nothing behind. */
async function expectClosed(server: RawServer): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (server.open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(server.open.size, 'sockets left open').toBe(0);
}

const unhandled: unknown[] = [];
const onUnhandled = (error: unknown) => unhandled.push(error);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  // Give stray errors of destroyed sockets a turn to surface.
  await new Promise((r) => setTimeout(r, 20));
  expect(unhandled, 'unhandled rejections or exceptions').toEqual([]);
});

afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
});

describe('http probe against hostile servers: silence and drips', () => {
  it('a server that accepts and never answers: a timeout', async () => {
    const server = await rawServer(() => undefined);
    const { sample, elapsedMs } = await sampleOf(server.url, { timeout: '500ms' });
    expect(sample).toMatchObject({ ok: false, error: 'timeout after 500ms' });
    expect(sample.values.status).toBeUndefined();
    expect(elapsedMs).toBeGreaterThanOrEqual(490);
    await expectClosed(server);
  });

  it('a head that never ends (headers dripping): a timeout', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const timer = setInterval(() => socket.write('X-Drip: 1\r\n'), 50);
      socket.on('close', () => clearInterval(timer));
    });
    const { sample } = await sampleOf(server.url, { timeout: '600ms' });
    expect(sample).toMatchObject({ ok: false, error: 'timeout after 600ms' });
    await expectClosed(server);
  });

  it('a body that drips at 1 byte per second: a timeout, with the status it saw', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
      socket.write('{');
      const timer = setInterval(() => socket.write(' '), 1_000);
      socket.on('close', () => clearInterval(timer));
    });
    const { sample } = await sampleOf(server.url, { timeout: '1500ms', json_field: { path: 'status', equals: 'ok' } });
    expect(sample).toMatchObject({ ok: false, error: 'timeout after 1500ms', values: { status: 200 } });
    await expectClosed(server);
  });
});

describe('http probe against hostile servers: oversized bodies and invalid JSON', () => {
  it('a 100 MB streamed body: stops at max_body_bytes at once, memory bounded', async () => {
    const server = await rawServer((socket, s) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: identity\r\nConnection: close\r\n\r\n');
      stream(socket, s, 100 * 1024 * 1024);
    });
    const { sample, rssGrowth } = await sampleOf(server.url, { timeout: '20s' });
    expect(sample).toMatchObject({ ok: false, error: 'body larger than 65536 bytes', values: { status: 200 } });
    // Nowhere near the 20 s timeout: the cap ends the exchange, not the timer.
    expect(rssGrowth, `RSS grew by ${Math.round(rssGrowth / 1024 / 1024)} MB`).toBeLessThan(50 * 1024 * 1024);
    await expectClosed(server);
    // The probe hung up: the server could not push the 100 MB (socket buffers hold a few MB at most).
    expect(server.written).toBeLessThan(32 * 1024 * 1024);
  });

  it('a 100 MB body with a larger cap (1 MB): still stops at the cap', async () => {
    const server = await rawServer((socket, s) => {
      socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
      stream(socket, s, 100 * 1024 * 1024);
    });
    const { sample, rssGrowth } = await sampleOf(server.url, { timeout: '20s', max_body_bytes: 1024 * 1024 });
    expect(sample).toMatchObject({ ok: false, error: 'body larger than 1048576 bytes' });
    expect(rssGrowth).toBeLessThan(50 * 1024 * 1024);
    await expectClosed(server);
  });

  it('a declared 100 MB Content-Length: refused before a byte of body is read', async () => {
    const server = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`);
      socket.write('a'.repeat(1024));
    });
    const { sample } = await sampleOf(server.url, { timeout: '10s' });
    expect(sample).toMatchObject({ ok: false, error: 'body larger than 65536 bytes', values: { status: 200 } });
    await expectClosed(server);
  });

  it.each([
    ['truncated JSON', '{"status": "ok"'],
    ['not JSON at all', '<html>502 Bad Gateway</html>'],
    ['JSON nested 30,000 deep', `${'['.repeat(30_000)}${']'.repeat(30_000)}`],
    ['a __proto__ key', '{"__proto__": {"status": "ok"}, "constructor": {"status": "ok"}}'],
    ['an empty body', ''],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1')],
  ])('invalid JSON (%s): a failed check, no crash', async (_name, body) => {
    const server = await rawServer((socket) => {
      const bytes = Buffer.from(body, 'latin1');
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`), bytes]));
    });
    const { sample } = await sampleOf(server.url, { timeout: '2s', json_field: { path: 'status', equals: 'ok' }, version_path: 'version' });
    expect(sample.ok).toBe(false);
    expect(sample.error).toMatch(/^(body is not JSON|json field status is missing, expected "ok")$/);
    expect(sample.version).toBeUndefined();
  });
});

describe('http probe against hostile servers: redirects, huge headers and cut-off bodies', () => {
  it('a redirect loop (302 to itself): one request, reported as a failed check, never followed', async () => {
    const server = await rawServer((socket) => {
      socket.end('HTTP/1.1 302 Found\r\nLocation: /health\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    const { sample } = await sampleOf(server.url, { timeout: '2s' });
    expect(sample).toMatchObject({ ok: false, error: 'status 302, expected 200', values: { status: 302 } });
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests).toBe(1);
  });

  it('10,000 response headers: the parser refuses them, a failed sample', async () => {
    const server = await rawServer((socket) => {
      const headers = Array.from({ length: 10_000 }, (_, i) => `X-Header-${i}: ${i}\r\n`).join('');
      socket.end(`HTTP/1.1 200 OK\r\n${headers}Content-Length: 2\r\n\r\nok`);
    });
    const { sample } = await sampleOf(server.url, { timeout: '2s' });
    expect(sample.ok).toBe(false);
    expect(sample.error).toMatch(/header overflow|HPE_HEADER_OVERFLOW/i);
    await expectClosed(server);
  });

  it('one header line of 1 MB: the parser refuses it, a failed sample', async () => {
    const server = await rawServer((socket) => {
      socket.end(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(1024 * 1024)}\r\nContent-Length: 2\r\n\r\nok`);
    });
    const { sample, rssGrowth } = await sampleOf(server.url, { timeout: '2s' });
    expect(sample.ok).toBe(false);
    expect(sample.error).toMatch(/header overflow|HPE_HEADER_OVERFLOW/i);
    expect(rssGrowth).toBeLessThan(50 * 1024 * 1024);
    await expectClosed(server);
  });

  it('a reset in the middle of the body: a failed sample naming it', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"status":');
      setTimeout(() => socket.resetAndDestroy(), 50);
    });
    const { sample } = await sampleOf(server.url, { timeout: '2s', json_field: { path: 'status', equals: 'ok' } });
    expect(sample).toMatchObject({ ok: false, values: { status: 200 } });
    expect(sample.error).toMatch(/reset \(ECONNRESET\)|closed before the body was complete/);
  });

  it('a chunked body cut off without its last chunk: a failed sample', async () => {
    const server = await rawServer((socket) => {
      socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    });
    const { sample } = await sampleOf(server.url, { timeout: '2s', body_contains: 'hello' });
    expect(sample.ok).toBe(false);
    expect(sample.error).toMatch(/closed before the body was complete|reset|aborted/);
  });
});

describe('http probe against hostile servers: garbage answers and recovery', () => {
  it.each([
    ['closes without a word', (socket: net.Socket) => socket.end()],
    ['resets at once', (socket: net.Socket) => socket.resetAndDestroy()],
    ['answers garbage', (socket: net.Socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n')],
    ['answers an invalid status line', (socket: net.Socket) => socket.end('HTTP/1.1 999999 NOPE\r\n\r\n')],
    ['sends a NUL in a header', (socket: net.Socket) => socket.end('HTTP/1.1 200 OK\r\nX-A: a\u0000b\r\nContent-Length: 0\r\n\r\n')],
  ])('a server that %s: a failed sample with a reason', async (_name, reply) => {
    const server = await rawServer((socket) => reply(socket));
    const { sample } = await sampleOf(server.url, { timeout: '2s' });
    expect(sample.ok).toBe(false);
    expect(sample.error).toBeTruthy();
    expect(sample.error!.length).toBeLessThan(300);
  });

  it('a hostile server does not disturb the next sample: a good answer after each bad one passes', async () => {
    let bad = true;
    const plain = http.createServer((_req, res) => {
      if (bad) {
        res.writeHead(200, { 'content-length': 100 * 1024 * 1024 });
        res.write(Buffer.alloc(1024 * 1024));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    });
    plain.on('clientError', () => undefined);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const p = probe(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/`, { timeout: '2s', json_field: { path: 'status', equals: 'ok' } });
      const first = await p.sample(0, new AbortController().signal);
      expect(first).toMatchObject({ ok: false, error: 'body larger than 65536 bytes' });
      bad = false;
      expect(await p.sample(1, new AbortController().signal)).toMatchObject({ ok: true });
      await p.close?.();
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});
