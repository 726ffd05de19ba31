/**
 * One bounded HTTP exchange for probes, made with node:http(s) directly rather than axios or fetch,
 * because one timer must bound the whole exchange (connect, headers and a body that may drip
 * forever) and the body must be capped while it streams, not after it has been buffered.
 * Shared by the http, prometheus and scrape probes.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A request body (e.g. a login check's JSON); content-length is set from it. */
  body?: string | undefined;
  /** Bounds the whole exchange: connect, headers and body. */
  timeoutMs: number;
  /** Larger bodies fail the exchange, whether declared by content-length or streamed. */
  maxBodyBytes: number;
  /** An https.Agent for https: URLs; false for a fresh connection closed afterwards. */
  agent: http.Agent | false;
  signal: AbortSignal;
  /**
   * Told which socket carries the request, as soon as it has one: a probe on a kept-alive agent
   * learns whether two exchanges shared a connection (and so, behind a pm2 cluster, a worker).
   */
  onSocket?: (socket: net.Socket) => void;
  /**
   * Streams the body instead of buffering it: each chunk is handed over as it arrives and then
   * dropped, so `body` stays absent. The next chunk is read only on a later turn of the event
   * loop (the response is paused meanwhile), so reading a large body never blocks the loop for
   * more than one chunk's work. A throw fails the exchange.
   */
  onChunk?: (chunk: Buffer) => void;
}

/** What came back over the wire, before any judgement. */
export interface Exchange {
  /** Present once a response head arrived, even if the body then failed. */
  status?: number;
  /** The response headers; present with `status`. */
  headers?: http.IncomingHttpHeaders;
  /** The complete body; absent when the exchange failed before it was fully read. */
  body?: Buffer;
  /** Why the exchange failed (timeout, abort, network error, oversized body), in words. */
  failure?: string;
  /** When the body went over maxBodyBytes: the bytes seen, and whether content-length declared them. */
  tooLarge?: { bytes: number; declared: boolean };
  /** Monotonic time from the call to the outcome. */
  latencyMs: number;
}

/**
 * Performs one request. Resolves exactly once and never rejects; destroys the socket on every
 * failure so nothing lingers after a timeout, an abort or an oversized body. Never follows
 * redirects. Failure texts never contain header values (they may hold credentials).
 */
export function fetchCapped(target: URL, options: FetchOptions): Promise<Exchange> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const { signal } = options;
  if (signal.aborted) return Promise.resolve({ failure: 'aborted', latencyMs: 0 });

  return new Promise((resolve) => {
    let req: http.ClientRequest | undefined;
    let status: number | undefined;
    let headers: http.IncomingHttpHeaders | undefined;
    let settled = false;

    const finish: Finish = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      // On failure the socket may be mid-connect or mid-body: destroy it now. Later events from
      // it are ignored by `settled`.
      if (outcome.failure !== undefined) req?.destroy();
      const result: Exchange = { ...outcome, latencyMs: elapsed() };
      if (status !== undefined) result.status = status;
      if (headers !== undefined) result.headers = headers;
      resolve(result);
    };
    const onAbort = () => finish({ failure: 'aborted' });
    const timer = setTimeout(() => finish({ failure: `timeout after ${options.timeoutMs}ms` }), options.timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    const tooLarge = bodyTooLarge(options.maxBodyBytes);

    try {
      const transport = target.protocol === 'https:' ? https : http;
      const requestOptions: http.RequestOptions = { method: options.method ?? 'GET', agent: options.agent };
      const headers: Record<string, string> = { ...options.headers };
      if (options.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
        headers['content-length'] = String(Buffer.byteLength(options.body));
      }
      requestOptions.headers = headers;
      req = transport.request(target, requestOptions);
    } catch (error) {
      // e.g. a header value with a newline: rejected synchronously before anything is sent.
      finish({ failure: `request could not be sent: ${errorMessage(error)}` });
      return;
    }

    req.on('error', (error) => finish({ failure: describeNetworkError(error) }));
    const { onSocket } = options;
    if (onSocket !== undefined) req.once('socket', onSocket);
    req.on('response', (res) => {
      status = res.statusCode;
      headers = res.headers;
      // A declared length over the cap fails at once, without reading a byte of the body.
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
        finish({ failure: tooLarge, tooLarge: { bytes: declared, declared: true } });
        return;
      }
      res.on('error', (error) => finish({ failure: `response failed: ${describeNetworkError(error)}` }));
      res.on('close', () => {
        if (!res.complete) finish({ failure: 'connection closed before the body was complete' });
      });
      readBody(res, options, finish, () => settled);
    });
    req.end(options.body);
  });
}

const bodyTooLarge = (maxBodyBytes: number) => `body larger than ${maxBodyBytes} bytes`;

type Finish = (outcome: { body?: Buffer; failure?: string; tooLarge?: Exchange['tooLarge'] }) => void;

/**
 * The body of a response: streamed into `options.onChunk` (paced, one chunk per turn of the event
 * loop) or collected into one buffer; either way stopped once it passes maxBodyBytes.
 */
function readBody(res: http.IncomingMessage, options: FetchOptions, finish: Finish, settled: () => boolean): void {
  const tooLarge = bodyTooLarge(options.maxBodyBytes);
  const { onChunk } = options;
  if (onChunk !== undefined) {
    let streamed = 0;
    res.on('data', (chunk: Buffer) => {
      if (settled()) return;
      streamed += chunk.length;
      if (streamed > options.maxBodyBytes) {
        finish({ failure: tooLarge, tooLarge: { bytes: streamed, declared: false } });
        return;
      }
      try {
        onChunk(chunk);
      } catch (error) {
        finish({ failure: `body could not be read: ${errorMessage(error)}` });
        return;
      }
      // Let timers, other probes and the API run before the next chunk.
      res.pause();
      setImmediate(() => {
        if (!settled()) res.resume();
      });
    });
    res.on('end', () => finish({}));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > options.maxBodyBytes) finish({ failure: tooLarge, tooLarge: { bytes: size, declared: false } });
    else chunks.push(chunk);
  });
  res.on('end', () => finish({ body: Buffer.concat(chunks, size) }));
}

/** An agent per probe; keepAlive off so a hung server cannot make half-dead sockets pile up. */
export function probeAgent(target: URL): http.Agent {
  return target.protocol === 'https:' ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
}

/**
 * An agent that keeps ONE connection open and reuses it for every request, so that behind a pm2
 * cluster (which hands each new connection to the next worker) consecutive requests reach the
 * same worker. Requests queue for the one socket instead of opening more.
 *
 * Node drops a kept-alive socket when the server announces `Keep-Alive: timeout=1` or less (it
 * keeps sockets only for the announced timeout minus one second); the owner of this agent keeps
 * the connection busy well within the server's timeout instead, so the socket is always kept.
 * A socket the server closes anyway is dropped by the agent and the next request opens another.
 */
export function pinnedConnectionAgent(target: URL): http.Agent {
  const options: http.AgentOptions = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
  const agent = target.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  const keepSocketAlive = (socket: net.Socket): boolean => {
    // What Node's own keepSocketAlive does, minus the give-up on short server timeouts.
    socket.setKeepAlive(true, 1000);
    socket.unref();
    return true;
  };
  Object.assign(agent, { keepSocketAlive });
  return agent;
}

export function describeNetworkError(error: unknown): string {
  const code = errorCode(error);
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED)';
    case 'ECONNRESET':
      return 'connection reset (ECONNRESET)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${code})`;
    case undefined:
      return errorMessage(error);
    default:
      return `${errorMessage(error)} (${code})`;
  }
}

/** Node's happy-eyeballs connect may fail with an AggregateError whose code is on the parts. */
function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}
