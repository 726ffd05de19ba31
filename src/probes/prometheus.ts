/**
 * Prometheus probe: one instant query per configured value (`queries`: value name -> PromQL), all
 * in parallel, through the HTTP API (`GET <url>/api/v1/query?query=...`).
 *
 * What a result means (argo-rollouts' rule: no data is not healthy, and a broken Prometheus is
 * not a failed release):
 * - `scalar`, or a `vector` with exactly one series: `values[name]` is its value.
 * - `+Inf`/`-Inf` are kept as ±Infinity: a quantile past the last bucket is slow, not "no data".
 * - `NaN` (e.g. 0/0 when there is no traffic) and an empty vector (no traffic, or no such series)
 *   are no data: the value is left out, the sample stays `ok` and `error` says why.
 * - Several series, a range vector or a string: the query is misconfigured; nothing can be
 *   judged from it, so the sample is `ok: false, unavailable: true`.
 * - HTTP errors, `status: "error"` bodies (bad PromQL: Prometheus' own message is kept),
 *   timeouts and connection failures: `ok: false, unavailable: true` with the reason.
 * When any query is unavailable the whole sample is: its other values are still reported, but
 * rules read unavailable samples as no data.
 * `values.latency_ms` is the time of the slowest query.
 *
 * The Authorization header comes from `auth_header_file`, read once when the probe is created;
 * its content never appears in an error text (it is scrubbed even from network errors).
 */
import { readFileSync, statSync } from 'node:fs';
import type { PrometheusProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { errorMessage, ProbeError } from '../errors.js';
import { registerSecret } from '../redact.js';
import { fetchCapped, probeAgent } from './http-fetch.js';
import type { ProbeFactory } from './types.js';

/** Prometheus answers are small for one-series queries; a huge one is a misconfigured query. */
export const PROMETHEUS_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Prometheus' error texts can quote the whole query; keep messages readable. */
const MAX_ERROR_TEXT = 300;

/** The outcome of one query. */
export type QueryOutcome =
  | { kind: 'value'; value: number }
  | { kind: 'no_data'; reason: string }
  | { kind: 'unavailable'; reason: string };

export const prometheusProbe: ProbeFactory<PrometheusProbeConfig> = (config, deps) => {
  const base = new URL(config.url);
  const agent = probeAgent(base);
  const headers: Record<string, string> = { accept: 'application/json' };
  const secret = config.auth_header_file === undefined ? undefined : readAuthHeader(config.auth_header_file, config.name);
  if (secret !== undefined) headers.authorization = secret;
  const entries = Object.entries(config.queries);

  return {
    name: config.name,
    type: 'prometheus',
    async sample(startedAt, signal) {
      const results = await Promise.all(
        entries.map(async ([name, query]) => {
          const exchanged = await fetchCapped(queryUrl(base, query, config.timeout), {
            headers,
            timeoutMs: config.timeout,
            maxBodyBytes: PROMETHEUS_MAX_BODY_BYTES,
            agent,
            signal,
          });
          const outcome: QueryOutcome =
            exchanged.failure !== undefined
              ? { kind: 'unavailable', reason: `prometheus unreachable: ${exchanged.failure}` }
              : interpretResponse(exchanged.status, exchanged.body ?? Buffer.alloc(0));
          return { name, outcome, latencyMs: exchanged.latencyMs };
        }),
      );

      const values: Record<string, number> = {};
      const notes: string[] = [];
      let unavailable = false;
      let slowest = 0;
      for (const { name, outcome, latencyMs } of results) {
        slowest = Math.max(slowest, latencyMs);
        if (outcome.kind === 'value') values[name] = outcome.value;
        else {
          if (outcome.kind === 'unavailable') unavailable = true;
          notes.push(`${name}: ${outcome.reason}`);
        }
      }
      values.latency_ms = slowest;
      const sample: Sample = { probe: config.name, startedAt, at: deps.now(), ok: !unavailable, values };
      if (unavailable) sample.unavailable = true;
      if (notes.length > 0) sample.error = scrub(notes.join('; '), secret);
      return sample;
    },
    async close() {
      agent.destroy();
    },
  };
};

/** `<base>/api/v1/query?query=…`, keeping a path prefix (Prometheus behind a proxy at /prom). */
function queryUrl(base: URL, query: string, timeoutMs: number): URL {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/query`;
  url.search = '';
  url.hash = '';
  url.searchParams.set('query', query);
  // Let Prometheus give up on its side too, rather than evaluate an abandoned query.
  url.searchParams.set('timeout', `${Math.max(1, Math.round(timeoutMs))}ms`);
  return url;
}

/** Pure: what one API response means. Exported for tests. */
export function interpretResponse(status: number | undefined, body: Buffer): QueryOutcome {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    const http = status === undefined ? 'no status' : `HTTP ${status}`;
    return { kind: 'unavailable', reason: `${http} from prometheus with a body that is not JSON` };
  }
  if (!isRecord(parsed)) return { kind: 'unavailable', reason: 'prometheus answered JSON that is not an object' };
  if (parsed.status === 'error') {
    const type = typeof parsed.errorType === 'string' ? ` (${parsed.errorType})` : '';
    const text = typeof parsed.error === 'string' ? parsed.error : 'no error text';
    return { kind: 'unavailable', reason: `prometheus error${type}: ${cut(text)}` };
  }
  if (status !== 200) return { kind: 'unavailable', reason: `HTTP ${status ?? 'status missing'} from prometheus` };
  if (parsed.status !== 'success' || !isRecord(parsed.data)) {
    return { kind: 'unavailable', reason: 'prometheus answer has no status "success" and data' };
  }
  return interpretData(parsed.data);
}

function interpretData(data: Record<string, unknown>): QueryOutcome {
  const { resultType, result } = data;
  switch (resultType) {
    case 'scalar':
      return fromPoint(result);
    case 'vector': {
      if (!Array.isArray(result)) return { kind: 'unavailable', reason: 'vector result is not a list' };
      if (result.length === 0) return { kind: 'no_data', reason: 'empty result (no traffic or no such series)' };
      if (result.length > 1) {
        return {
          kind: 'unavailable',
          reason: `${result.length} series returned; aggregate the query to one series, e.g. sum(...)`,
        };
      }
      const only: unknown = result[0];
      return fromPoint(isRecord(only) ? only.value : undefined);
    }
    case 'matrix':
      return {
        kind: 'unavailable',
        reason: 'the query returns a range vector; wrap it in a function such as rate(...[1m]) or avg_over_time(...)',
      };
    default:
      return { kind: 'unavailable', reason: `result type ${JSON.stringify(resultType) ?? 'missing'} is not a number; use a scalar or one-series vector` };
  }
}

/** `[<unix seconds>, "<value>"]` -> the value; Prometheus writes NaN and ±Inf as strings. */
function fromPoint(point: unknown): QueryOutcome {
  if (!Array.isArray(point) || point.length !== 2 || typeof point[1] !== 'string') {
    return { kind: 'unavailable', reason: 'malformed sample in the prometheus answer' };
  }
  const value = parsePromValue(point[1]);
  if (value === null) return { kind: 'unavailable', reason: `value ${JSON.stringify(cut(point[1]))} is not a number` };
  if (Number.isNaN(value)) return { kind: 'no_data', reason: 'NaN (no data, e.g. 0/0 without traffic)' };
  return { kind: 'value', value };
}

function parsePromValue(text: string): number | null {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(text)) return null;
  return Number(text);
}

/**
 * Reads the header value once, at creation: a missing, empty or group/world-readable file is a
 * configuration error the guard must report at start-up, not a probe failure found later. The
 * message names the file only.
 */
function readAuthHeader(file: string, probe: string): string {
  let content: string;
  let mode: number;
  try {
    content = readFileSync(file, 'utf8').trim();
    mode = statSync(file).mode;
  } catch (error) {
    throw new ProbeError(
      `probe "${probe}": cannot read auth_header_file ${file}: ${errorMessage(error)}`,
      'probe_auth_file',
      'make the file readable by the guard, or remove auth_header_file',
      { cause: error },
    );
  }
  if (content === '' || /[\r\n]/.test(content)) {
    throw new ProbeError(
      `probe "${probe}": auth_header_file ${file} must hold one non-empty line (e.g. "Bearer <token>")`,
      'probe_auth_file',
    );
  }
  // A credential like the API token and the passwords: not readable by group or others.
  if ((mode & 0o044) !== 0) {
    throw new ProbeError(
      `probe "${probe}": auth_header_file ${file} is readable by ${(mode & 0o004) !== 0 ? 'everyone' : 'its group'}; run: chmod 600 ${file}`,
      'probe_secret_insecure',
    );
  }
  registerSecret(content);
  return content;
}

function scrub(text: string, secret: string | undefined): string {
  if (secret === undefined) return text;
  let out = text.split(secret).join('[redacted]');
  // A bearer token may be echoed without its scheme.
  const token = secret.split(/\s+/).pop();
  if (token !== undefined && token.length >= 8) out = out.split(token).join('[redacted]');
  return out;
}

function cut(text: string): string {
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT - 3)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
