/**
 * The CLI's side of the control API. Every failure becomes an ApiError whose message tells the
 * operator what to do: start the daemon, set the token, or what the daemon refused and why.
 */
import { ApiError, errorMessage } from '../errors.js';
import { isLoopback, outboundHttp } from '../outbound-http.js';
import type { ControlSummary } from './server.js';
import type { DrillRecord } from '../shell/drill.js';
import type { HistoryView, PreflightView, StatusView } from './types.js';

export interface ApiClientOptions {
  /** e.g. `http://127.0.0.1:9464`. */
  baseUrl: string;
  /** Bearer token for the control requests; GET requests never send it. */
  token?: string | null;
  /** Per request; default 10 s. */
  timeoutMs?: number;
}

export type { ControlSummary };

export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | null;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token ?? null;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  healthz(): Promise<{ ok: true }> {
    return this.request('GET', '/healthz');
  }

  status(): Promise<StatusView> {
    return this.request('GET', '/status');
  }

  /** One page of history: `limit` records (default 50), older than `before` (the previous page's `next`). */
  history(page: { limit?: number; before?: string } = {}): Promise<HistoryView> {
    const query = new URLSearchParams();
    if (page.limit !== undefined) query.set('limit', String(page.limit));
    if (page.before !== undefined) query.set('before', page.before);
    const qs = query.toString();
    return this.request('GET', `/history${qs ? `?${qs}` : ''}`);
  }

  /** Opens a release window by hand for `version`. */
  release(version: string, deployedBy?: string): Promise<ControlSummary> {
    return this.request('POST', '/releases', { version, deployedBy });
  }

  rollback(options: { to?: string; reason: string; by?: string }): Promise<ControlSummary> {
    return this.request('POST', '/rollback', { to: options.to, reason: options.reason, by: options.by });
  }

  promote(by?: string): Promise<ControlSummary> {
    return this.request('POST', '/promote', { by });
  }

  pause(by?: string): Promise<ControlSummary> {
    return this.request('POST', '/pause', { by });
  }

  resume(by?: string): Promise<ControlSummary> {
    return this.request('POST', '/resume', { by });
  }

  /** Runs a rollback drill; it takes as long as two rollbacks and their verification. */
  drill(by?: string): Promise<DrillRecord> {
    return this.request('POST', '/drill', { by }, 15 * 60_000);
  }

  /** The daemon's last preflight (reused for server.preflight_cache); `fresh` (needs the token) runs a new one. */
  preflight(options: { fresh?: boolean } = {}): Promise<PreflightView> {
    return options.fresh ? this.request('POST', '/preflight', {}) : this.request('GET', '/preflight');
  }

  /** Stops a rollback that is waiting out its veto window. */
  veto(options: { reason?: string; by?: string } = {}): Promise<ControlSummary> {
    return this.request('POST', '/veto', { reason: options.reason, by: options.by });
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: Record<string, unknown>, timeoutMs = this.timeoutMs): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (method === 'POST') {
      headers['content-type'] = 'application/json';
      if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    }
    const url = new URL(`${this.baseUrl}${path}`);
    const deadline = AbortSignal.timeout(timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await (await outboundHttp()).request<string>({
        url: url.href,
        method,
        headers,
        // JSON.stringify drops the undefined fields: optional ones are simply not sent.
        data: body === undefined ? undefined : JSON.stringify(body),
        responseType: 'text',
        transformResponse: [(raw: unknown) => raw],
        signal: deadline,
        // A daemon on this host is reached directly; a remote one through the host's proxy settings.
        ...(isLoopback(url) ? { proxy: false as const } : {}),
      });
      status = response.status;
      text = typeof response.data === 'string' ? response.data : '';
    } catch (error) {
      throw this.networkError(deadline.aborted ? Object.assign(new Error('timeout'), { name: 'TimeoutError' }) : error, timeoutMs);
    }
    const data = parseJson(text);
    if (status >= 200 && status < 300) {
      if (data === undefined) {
        throw new ApiError(`release-guard at ${this.baseUrl} answered ${path} with something that is not JSON`, status);
      }
      return data as T;
    }
    const daemonSays = isRecord(data) && typeof data.error === 'string' ? data.error : null;
    if (status === 401) {
      throw new ApiError(
        this.token === null
          ? 'the daemon requires a token and none was found (set RELEASE_GUARD_TOKEN or server.token_file)'
          : 'the daemon refused the token (set RELEASE_GUARD_TOKEN or server.token_file)',
        401,
      );
    }
    if (daemonSays !== null) throw new ApiError(daemonSays, status);
    throw new ApiError(`release-guard at ${this.baseUrl} answered ${method} ${path} with HTTP ${status}`, status);
  }

  private networkError(error: unknown, timeoutMs: number): ApiError {
    if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
      return new ApiError(`release-guard at ${this.baseUrl} did not answer within ${formatMs(timeoutMs)}`, 0, { cause: error });
    }
    const code = causeCode(error);
    if (code === 'ECONNREFUSED') {
      return new ApiError(
        `cannot reach release-guard at ${this.baseUrl} (is the daemon running? start it with: release-guard start --config FILE)`,
        0,
        { cause: error },
      );
    }
    const detail = code ?? errorMessage((error as { cause?: unknown }).cause ?? error);
    return new ApiError(`cannot reach release-guard at ${this.baseUrl} (${detail})`, 0, { cause: error });
  }
}

/** The socket error's code: on the error itself (axios), on its cause, or on an AggregateError's first part. */
function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && isRecord(current); depth++) {
    if (typeof current.code === 'string' && current.code !== 'UND_ERR_SOCKET') return current.code;
    if (Array.isArray(current.errors) && isRecord(current.errors[0]) && typeof current.errors[0].code === 'string') {
      return current.errors[0].code;
    }
    current = current.cause;
  }
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object';
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
