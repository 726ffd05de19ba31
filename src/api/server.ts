/**
 * The one HTTP server of the daemon: `/healthz`, `/metrics`, `/status`, `/history` and the
 * operator page at `/` for anyone who can reach it, and the control endpoints (`POST /releases`, `/rollback`, `/promote`, `/pause`,
 * `/resume`) for holders of the bearer token. Plain `node:http`: the surface is small and every
 * byte read from the network is bounded and validated before it reaches the state machine.
 */
import { alertmanagerPayload } from './alertmanager-payload.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { GuardError, errorMessage } from '../errors.js';
import type { ControlRequest, GuardControl } from './types.js';
import type { Phase } from '../core/types.js';
import { systemClock, type Clock } from '../shell/clock.js';
import { SharedPreflight } from './preflight-cache.js';

/** How long a preflight result is reused when the config does not say. */
export const DEFAULT_PREFLIGHT_CACHE_MS = 30_000;
import { versionProblem } from '../core/versions.js';
import { redact } from '../redact.js';
import { parseHistoryQuery } from '../records/history-page.js';
import { pageRoutes } from './page/page-routes.js';

/** Largest accepted request body; beyond it the server answers 413 and reads no further. */
export const MAX_BODY_BYTES = 16 * 1024;
/** Alertmanager sends every alert of a group in one message (its max_alerts caps the count). */
const ALERTMANAGER_BODY_BYTES = 1024 * 1024;

/** Who asked (`deployedBy`, `by`): a user or bot name, shown in history and notifications. */
export const ACTOR_PATTERN = /^[\w.@ -]{1,64}$/;

/** What a successful control request answers: the phase it led to and the versions involved. */
export interface ControlSummary {
  ok: true;
  action: ControlRequest['action'];
  phase: Phase;
  paused: boolean;
  stable: string | null;
  running: string | null;
  /** The release under guard or being rolled back, if any. */
  release: string | null;
}

export type ApiLog = (level: 'info' | 'warn', message: string, fields?: object) => void;

export interface ApiServerOptions {
  host: string;
  port: number;
  /** Bearer token for the POST endpoints; null refuses every control request. */
  token: string | null;
  control: GuardControl;
  log?: ApiLog;
  /**
   * How long a preflight result is reused (server.preflight_cache); default 30 s.
   */
  preflightCacheMs?: number;
  /** For the preflight cache's ages; default the system clock. */
  clock?: Clock;
  /** Whether the guard's loops are alive: /healthz answers 503 with the reason when not. */
  liveness?: () => { ok: true } | { ok: false; reason: string | null };
  /**
   * False while the daemon is still starting: the port is bound first (a second guard on the same
   * port fails before it probes anything), and every route answers 503 until the guard has started.
   */
  ready?: () => boolean;
}

export interface ApiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Versions end up in paths, pm2 app names, program arguments and records: the one rule of core/versions.ts. */
const version = z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
  const problem = versionProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const actor = z
  .string({ error: 'must be a string' })
  .regex(ACTOR_PATTERN, 'must be 1-64 characters of letters, digits, "_", ".", "@", "-" or spaces');
const reason = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'must not be empty; say why you roll back')
  .max(500, 'must be at most 500 characters')
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters (newlines, tabs, …)');

const bodies = {
  release: z.strictObject({ version, deployedBy: actor.optional() }),
  rollback: z.strictObject({ to: version.optional(), reason, by: actor.optional() }),
  actor: z.strictObject({ by: actor.optional() }),
  veto: z.strictObject({ reason: reason.optional(), by: actor.optional() }),
};

interface Route {
  /** 'GET, POST': both (a POST needs the token, as every POST). */
  method: 'GET' | 'POST' | 'GET, POST';
  /** Largest body taken (default MAX_BODY_BYTES). */
  bodyLimit?: number;
  handle(ctx: { req: IncomingMessage; res: ServerResponse; body: unknown }): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts listening and resolves once the port is bound. `close()` stops accepting, drops idle and
 * in-flight connections and resolves when the server is closed.
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { control } = options;
  const log: ApiLog = options.log ?? (() => undefined);
  const authorized = bearerCheck(options.token);
  const clock = options.clock ?? systemClock;
  const preflight = new SharedPreflight(() => control.preflight(), { maxAgeMs: options.preflightCacheMs ?? DEFAULT_PREFLIGHT_CACHE_MS, clock });

  const routes: Record<string, Route> = { ...readRoutes({ options, control, clock, preflight, authorized }), ...controlRoutes(control, log) };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = pathOf(req.url);
    const route = path === null ? undefined : Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route === undefined) return sendJson(res, 404, { error: 'not found' });
    if (options.ready && !options.ready()) return sendJson(res, 503, { error: 'the guard is starting; ask again in a moment' }, { 'retry-after': '1' });
    if (!route.method.split(', ').includes(req.method ?? '')) {
      return sendJson(res, 405, { error: `method not allowed; use ${route.method}` }, { allow: route.method });
    }
    let body: unknown = undefined;
    if (req.method === 'POST') {
      if (!authorized(req)) {
        // The remote address only: never the header, never what was sent as a token.
        log('warn', 'unauthorized control request', { path, remote: req.socket.remoteAddress });
        // Close rather than drain whatever body an unauthorized client is still sending.
        return sendJson(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer', connection: 'close' });
      }
      body = await readJsonBody(req, route.bodyLimit ?? MAX_BODY_BYTES);
    }
    await route.handle({ req, res, body });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (!res.headersSent) {
          // 413: the rest of the body is not read; close the connection instead of draining it.
          const close = error.status === 413 ? { connection: 'close' } : undefined;
          sendJson(res, error.status, { error: error.message }, close);
          if (close) res.on('finish', () => req.socket.destroySoon());
        }
        return;
      }
      log('warn', 'api request failed', { method: req.method, path: pathOf(req.url), error: errorMessage(error) });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  // Slow or stalled clients must not hold sockets forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;

  await listen(server, options.host, options.port);
  server.on('error', (error) => log('warn', 'api server error', { error: errorMessage(error) }));

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** What the read routes need from the server. */
interface RouteDeps {
  options: ApiServerOptions;
  control: GuardControl;
  clock: Clock;
  preflight: SharedPreflight;
  authorized(req: IncomingMessage): boolean;
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  // Every answer (status, history, preflight, control results) leaves through the one redaction.
  const body = JSON.stringify(redact(value));
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

/** The routes anyone who reaches the port may ask: the page, health, metrics, status, history, preflight. */
function readRoutes(deps: RouteDeps): Record<string, Route> {
  const { options, control, clock, preflight, authorized } = deps;
  const page = pageRoutes({ control, clock });
  return {
  // The operator page at / and its assets (page/page-routes.ts): read-only, like /status.
  ...Object.fromEntries(Object.entries(page).map(([path, handle]): [string, Route] => [path, { method: 'GET', handle: ({ req, res }) => handle(req, res) }])),
  '/healthz': {
    method: 'GET',
    async handle({ res }) {
      const live = options.liveness?.() ?? { ok: true };
      sendJson(res, live.ok ? 200 : 503, live.ok ? live : { ...live, error: live.reason });
    },
  },
  '/metrics': {
    method: 'GET',
    async handle({ res }) {
      const { contentType, body } = await control.metrics();
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    },
  },
  '/status': { method: 'GET', handle: async ({ res }) => sendJson(res, 200, control.status()) },
  '/history': {
    method: 'GET',
    async handle({ req, res }) {
      const page = parseHistoryQuery(new URL(req.url ?? '/', 'http://localhost').searchParams);
      if (typeof page === 'string') throw new HttpError(400, page);
      sendJson(res, 200, await control.history(page));
    },
  },
  // Cached and run one at a time (preflight-cache.ts); POST, or GET ?fresh=1 with the token, forces a run.
  '/preflight': {
    method: 'GET, POST',
    async handle({ req, res }) {
      const fresh = req.method === 'POST' || /^(1|true)$/.test(new URL(req.url ?? '/', 'http://localhost').searchParams.get('fresh') ?? '');
      if (fresh && req.method === 'GET' && !authorized(req)) {
        return sendJson(res, 401, { error: 'a fresh preflight (?fresh=1) needs the bearer token; without it, GET /preflight answers the cached result' }, { 'www-authenticate': 'Bearer' });
      }
      const view = await preflight.get({ fresh });
      sendJson(res, 200, view, { age: String(Math.max(0, Math.floor((clock.now() - Date.parse(view.checkedAt)) / 1000))) });
    },
  },
  };
}

/** The POST routes: they change what the guard does and need the token (checked before they run). */
function controlRoutes(control: GuardControl, log: ApiLog): Record<string, Route> {
  return {
  '/releases': controlRoute(control, log, (body) => {
    const parsed = validate(bodies.release, body);
    return { action: 'release', version: parsed.version, deployedBy: parsed.deployedBy ?? 'api' };
  }),
  '/rollback': controlRoute(control, log, (body) => {
    const parsed = validate(bodies.rollback, body);
    const request: ControlRequest = { action: 'rollback', reason: parsed.reason, by: parsed.by ?? 'api' };
    if (parsed.to !== undefined) request.to = parsed.to;
    return request;
  }),
  '/promote': controlRoute(control, log, (body) => ({ action: 'promote', by: validate(bodies.actor, body).by ?? 'api' })),
  '/pause': controlRoute(control, log, (body) => ({ action: 'pause', by: validate(bodies.actor, body).by ?? 'api' })),
  '/resume': controlRoute(control, log, (body) => ({ action: 'resume', by: validate(bodies.actor, body).by ?? 'api' })),
  '/drill': {
    method: 'POST',
    async handle({ res, body }) {
      const by = validate(bodies.actor, body ?? {}).by ?? 'api';
      const result = await control.drill(by);
      sendJson(res, result.ok ? 200 : 409, result.ok ? result.record : { error: result.error });
    },
  },
  '/alertmanager': {
    method: 'POST',
    bodyLimit: ALERTMANAGER_BODY_BYTES,
    async handle({ res, body }) {
      const payload = validate(alertmanagerPayload, body);
      const result = await control.alertmanager(payload);
      if (!result.ok) {
        sendJson(res, 409, { error: result.error });
        return;
      }
      log('info', 'alertmanager message taken', { alerts: result.alerts, matched: result.matched, status: payload.status });
      sendJson(res, 200, result);
    },
  },
  '/veto': controlRoute(control, log, (body) => {
    const parsed = validate(bodies.veto, body);
    return { action: 'veto', by: parsed.by ?? 'api', reason: parsed.reason ?? 'vetoed' };
  }),
  };
}

function controlRoute(control: GuardControl, log: ApiLog, toRequest: (body: unknown) => ControlRequest): Route {
  return {
    method: 'POST',
    async handle({ res, body }) {
      const request = toRequest(body);
      const result = await control.control(request);
      if (!result.ok) {
        log('info', 'control request refused', { action: request.action, error: result.error });
        sendJson(res, 409, { error: result.error });
        return;
      }
      const { state } = result;
      log('info', 'control request accepted', { action: request.action, phase: state.phase, ...actorOf(request) });
      const summary: ControlSummary = {
        ok: true,
        action: request.action,
        phase: state.phase,
        paused: state.paused,
        stable: state.stable,
        running: state.running,
        release: state.release?.version ?? null,
      };
      sendJson(res, 200, summary);
    },
};
}

function bearerCheck(token: string | null): (req: IncomingMessage) => boolean {
  // Compare digests, not the raw strings: equal lengths for timingSafeEqual, and the token's
  // length does not leak through timing either.
  const tokenDigest = token === null || token === '' ? null : sha256(token);
  return (req) => {
    if (tokenDigest === null) return false;
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    // Hash even when the header is missing, so a request without one costs the same.
    return timingSafeEqual(sha256(match?.[1] ?? ''), tokenDigest) && match !== null;
  };
}

/** Binds the port; a GuardError saying why it cannot (in use, no such address, privileges). */
function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const where = `${host}:${port}`;
      const why =
        error.code === 'EADDRINUSE'
          ? 'the address is already in use (another release-guard? change server.port)'
          : error.code === 'EADDRNOTAVAIL'
            ? 'no such local address (check server.host)'
            : error.code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges)'
              : error.message;
      reject(new GuardError(`cannot listen on ${where}: ${why}`, 'api_listen', undefined, { cause: error }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function pathOf(url: string | undefined): string | null {
  try {
    return new URL(url ?? '/', 'http://localhost').pathname;
  } catch {
    return null;
  }
}

function actorOf(request: ControlRequest): { by: string } {
  return { by: request.action === 'release' ? request.deployedBy : request.by };
}

/** Reads at most `limit` bytes; an empty body is `{}` (every field of promote/pause/resume is optional). */
async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const type = req.headers['content-type'];
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', resolve);
    req.once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, `the body must be JSON; send it with Content-Type: application/json (got ${JSON.stringify(type.slice(0, 60))})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HttpError(400, `the body is not valid JSON (${errorMessage(error)})`);
  }
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, `the body is larger than ${limit} bytes`);
}

/** Parses a body or throws a 400 naming every bad field and what it allows. */
function validate<T extends z.ZodObject>(schema: T, body: unknown): z.infer<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, `the body must be a JSON object with the fields ${Object.keys(schema.shape).join(', ')}`);
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const allowed = Object.keys(schema.shape).join(', ');
  const problems = result.error.issues.flatMap((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${key}: unknown field; allowed: ${allowed}`);
    const value = (body as Record<string, unknown>)[String(issue.path[0])];
    if (issue.code === 'invalid_type' && value === undefined) return [`${path}: required`];
    return [`${path}: ${issue.message}`];
  });
  throw new HttpError(400, problems.join('; '));
}
