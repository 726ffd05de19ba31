/**
 * An app's /metrics gone hostile, as a real HTTP server: the bodies a release with exploding
 * cardinality, a bug or a malicious endpoint can serve to the guard's scrape probe. Used by the
 * chaos scenario (bench/chaos/hostile-metrics.ts) against the built daemon, and by the
 * probe's tests against the probe itself.
 *
 * Every mode but the failures serves the real families the probe reads, with counters that grow
 * by one batch per request served, so the reader can check what the probe made of them: each
 * batch is REQUESTS_PER_BATCH requests, ERRORS_PER_BATCH of them 500s, and a latency histogram
 * whose p95 is EXPECTED_P95_MS. `/health` answers a version, so a guard can run against it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type HostileMode =
  /** ~8 MB: 500,000 series of another metric around the real families (content-length set). */
  | 'cardinality'
  /** The real families, with http_requests_total itself exploded to `series` series. */
  | 'own-cardinality'
  /** A chunked body that never ends. */
  | 'endless'
  /** One 50 MB line (chunked, no content-length), then the real families. */
  | 'long-line'
  /** Binary garbage (4 MB of pseudo-random bytes). */
  | 'garbage'
  /** The real families, trickled one byte every 200 ms. */
  | 'slow-loris';

export const REQUESTS_PER_BATCH = 40;
export const ERRORS_PER_BATCH = 4;
/** Bucket deltas per batch 20 / 36 / 40 / 40 (le 0.1 / 0.25 / 0.5 / +Inf): rank 38 is halfway into (0.25, 0.5]. */
export const EXPECTED_P95_MS = 375;
/** Series of the other metric in the `cardinality` body. */
export const HOSTILE_SERIES = 500_000;

/** The real families after `batches` batches, optionally with http_requests_total spread over `series` series. */
export function realFamilies(batches: number, series = 1): string {
  const lines = ['# HELP http_requests_total Requests served, by status.', '# TYPE http_requests_total counter'];
  const ok = (REQUESTS_PER_BATCH - ERRORS_PER_BATCH) * batches;
  if (series <= 1) lines.push(`http_requests_total{method="GET",status="200"} ${ok}`);
  else for (let i = 0; i < series; i++) lines.push(`http_requests_total{method="GET",status="200",user="u${i}"} ${i === 0 ? ok : 0}`);
  lines.push(`http_requests_total{method="GET",status="500"} ${ERRORS_PER_BATCH * batches}`);
  lines.push('# TYPE http_request_duration_seconds histogram');
  for (const [le, n] of [['0.1', 20], ['0.25', 36], ['0.5', 40], ['+Inf', 40]] as const) {
    lines.push(`http_request_duration_seconds_bucket{le="${le}"} ${n * batches}`);
  }
  lines.push(`http_request_duration_seconds_count ${REQUESTS_PER_BATCH * batches}`);
  return `${lines.join('\n')}\n`;
}

/** 500,000 series of one other metric, 16 bytes each: 8,000,000 bytes. */
function junkSeries(): Buffer {
  const line = 16;
  const buf = Buffer.alloc(HOSTILE_SERIES * line);
  for (let i = 0; i < HOSTILE_SERIES; i++) buf.write(`j{i="${String(i).padStart(6, '0')}"} 1\n`, i * line, 'latin1');
  return buf;
}

export interface HostileServer {
  url: string;
  /** Requests answered (or begun) so far. */
  requests: number;
  /** Bytes written into bodies so far. */
  written: number;
  close(): Promise<void>;
}

/** Starts a hostile /metrics on 127.0.0.1 (port 0 unless given). */
export async function startHostileServer(mode: HostileMode, options: { series?: number; port?: number } = {}): Promise<HostileServer> {
  const junk = mode === 'cardinality' ? junkSeries() : null;
  const state = { requests: 0, written: 0 };
  let batches = 0;
  const server = http.createServer((req, res) => {
    res.on('error', () => undefined);
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', version: 'v1' }));
      return;
    }
    state.requests++;
    batches++;
    const write = (chunk: Buffer | string) => {
      state.written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      return res.write(chunk);
    };
    switch (mode) {
      case 'cardinality': {
        const [head, tail] = realFamilies(batches).split('# TYPE http_request_duration_seconds histogram\n') as [string, string];
        const histogram = `# TYPE http_request_duration_seconds histogram\n${tail}`;
        const length = Buffer.byteLength(head) + junk!.length + Buffer.byteLength(histogram);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': length });
        write(head);
        write(junk!);
        write(histogram);
        res.end();
        return;
      }
      case 'own-cardinality': {
        const body = realFamilies(batches, options.series ?? 50_000);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        write(body);
        res.end();
        return;
      }
      case 'endless':
      case 'long-line':
      case 'garbage': {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        pump(res, mode, write, () => {
          if (mode === 'long-line') write(`\n${realFamilies(batches)}`);
          res.end();
        });
        return;
      }
      case 'slow-loris': {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        const body = realFamilies(batches);
        let i = 0;
        const timer = setInterval(() => {
          if (res.destroyed || i >= body.length) {
            clearInterval(timer);
            if (!res.destroyed) res.end();
            return;
          }
          write(body[i++]!);
        }, 200);
        res.on('close', () => clearInterval(timer));
        return;
      }
    }
  });
  // The probe hangs up mid-body on purpose (caps, timeouts): EPIPE / ECONNRESET are expected.
  server.on('connection', (socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    get requests() {
      return state.requests;
    },
    get written() {
      return state.written;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const LONG_LINE_BYTES = 50 * 1024 * 1024;
const GARBAGE_BYTES = 4 * 1024 * 1024;
let garbageBytes: Buffer | undefined;
/** Pseudo-random bytes, made once when first served (a fixed seed: every run serves the same garbage). */
const garbageBody = (): Buffer => (garbageBytes ??= (() => {
  const buf = Buffer.allocUnsafe(GARBAGE_BYTES);
  let seed = 12345;
  for (let i = 0; i < buf.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    buf[i] = seed >>> 24;
  }
  return buf;
})());

/** Writes the streamed modes' bytes as fast as the client reads them, 64 KiB at a time; stops when it hangs up. */
function pump(res: http.ServerResponse, mode: 'endless' | 'long-line' | 'garbage', write: (chunk: Buffer) => boolean, done: () => void): void {
  const size = 64 * 1024;
  const letters = Buffer.alloc(size, 'x');
  // The long line is one metric's labels: `big{v="xxxx…`, never a newline.
  const first = mode === 'long-line' ? Buffer.concat([Buffer.from('big{v="'), letters.subarray(7)]) : null;
  // The endless body is well-formed: complete lines of another metric, forever.
  const endlessLines = Buffer.from('e_total{n="1"} 1\n'.repeat(Math.floor(size / 17)));
  const garbage = () => garbageBody().subarray(sent, sent + size);
  const total = mode === 'endless' ? Number.POSITIVE_INFINITY : mode === 'long-line' ? LONG_LINE_BYTES : GARBAGE_BYTES;
  let sent = 0;
  const step = () => {
    while (sent < total && !res.destroyed) {
      const chunk = mode === 'garbage' ? garbage() : sent === 0 && first ? first : mode === 'endless' ? endlessLines : letters;
      sent += chunk.length;
      if (!write(chunk)) {
        res.once('drain', step);
        return;
      }
    }
    if (!res.destroyed) done();
  };
  step();
}
