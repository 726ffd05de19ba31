/**
 * Reading one access-log line into what the traffic rules need (status, latency, the `where`
 * field), and counting an interval's requests. Pure and dependency-free: the config schema uses
 * the same code to reject a log_format the probe could not read, at validation time.
 *
 * Text lines are described by a log_format in nginx syntax (`$variable` or `${variable}` between
 * literal text), compiled into a list of tokens and matched by a linear scan, never a regular
 * expression: a hostile 16 KiB line must not cost more than one pass over it. A variable reads up
 * to the first character of the literal after it; a variable between double quotes reads up to
 * the closing quote, skipping backslash escapes (Apache writes `\"`, nginx `\x22`); the last
 * variable reads the rest of the line.
 *
 * JSON lines (pino-http, morgan with a JSON format, …) are one object per line; fields are dotted
 * paths (`res.statusCode`). A JSON object without the status field is another kind of log line
 * (pino writes the app's own logs to the same file), not a broken one.
 */

/** nginx's `combined` plus the request time and the upstream: `log_format timed '…'`. */
export const NGINX_TIMED_FORMAT =
  '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time $upstream_addr';

/** Apache's combined + `%D` (microseconds), in the same syntax: `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D`. */
export const APACHE_TIMED_FORMAT =
  '$remote_addr $remote_logname $remote_user [$time] "$request" $status $bytes_sent "$http_referer" "$http_user_agent" $request_time_us';

export type AccessLogFormat = 'nginx' | 'apache' | 'json';
export type LatencyUnit = 's' | 'ms' | 'us';

/** What each format assumes when a key is left out. */
export const FORMAT_DEFAULTS: Record<AccessLogFormat, { logFormat?: string; statusField: string; latencyField: string; latencyUnit: LatencyUnit }> = {
  nginx: { logFormat: NGINX_TIMED_FORMAT, statusField: 'status', latencyField: 'request_time', latencyUnit: 's' },
  apache: { logFormat: APACHE_TIMED_FORMAT, statusField: 'status', latencyField: 'request_time_us', latencyUnit: 'us' },
  json: { statusField: 'res.statusCode', latencyField: 'responseTime', latencyUnit: 'ms' },
};

const UNIT_TO_MS: Record<LatencyUnit, number> = { s: 1000, ms: 1, us: 0.001 };

/**
 * Upper bounds (ms) of the latency buckets: the E24 preferred numbers (1.0, 1.1, 1.2, 1.3, 1.5,
 * … 9.1; steps of 8-15 %, about 10 % on average) from 1 ms to 56 s, then 60 s and Infinity:
 * 117 bounds. Fine enough that "the share of requests slower than X ms", taken at the bound at
 * or above X, is within 15 % of X; fixed, so intervals add up bucket by bucket.
 */
const E24 = [1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9, 4.3, 4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1];
export const LATENCY_BOUNDS_MS: readonly number[] = [
  ...[1, 10, 100, 1000, 10_000].flatMap((decade) => E24.map((m) => Math.round(m * decade * 10) / 10)).filter((le) => le < 60_000),
  60_000,
  Number.POSITIVE_INFINITY,
];

// --- log_format ------------------------------------------------------------------------------

type Token = { literal: string } | { variable: string; stop: string | null; quoted: boolean };

export interface CompiledFormat {
  tokens: Token[];
  variables: Set<string>;
}

/** Compiles an nginx-style log_format; a string saying what is wrong when it cannot be read. */
export function compileLogFormat(format: string): CompiledFormat | string {
  const pieces: ({ literal: string } | { variable: string })[] = [];
  const pattern = /\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)/g;
  let last = 0;
  for (const match of format.matchAll(pattern)) {
    if (match.index > last) pieces.push({ literal: format.slice(last, match.index) });
    pieces.push({ variable: (match[1] ?? match[2])! });
    last = match.index + match[0].length;
  }
  if (last < format.length) pieces.push({ literal: format.slice(last) });
  const variables = new Set<string>();
  const tokens: Token[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if ('literal' in piece) {
      tokens.push(piece);
      continue;
    }
    const next = pieces[i + 1];
    if (next !== undefined && 'variable' in next) {
      return `$${piece.variable} and $${next.variable} follow each other with nothing between them, so a line cannot be split there`;
    }
    const before = pieces[i - 1];
    const stop = next === undefined ? null : next.literal[0]!;
    const quoted = stop === '"' && before !== undefined && 'literal' in before && before.literal.endsWith('"');
    tokens.push({ variable: piece.variable, stop, quoted });
    variables.add(piece.variable);
  }
  if (variables.size === 0) return 'it has no $variable';
  return { tokens, variables };
}

/** The values of `wanted` variables in one line, or null when the line does not have the format's shape. */
export function matchLogFormat(format: CompiledFormat, line: string, wanted: ReadonlySet<string>): Map<string, string> | null {
  const values = new Map<string, string>();
  let at = 0;
  for (const token of format.tokens) {
    if ('literal' in token) {
      if (!line.startsWith(token.literal, at)) return null;
      at += token.literal.length;
      continue;
    }
    let end: number;
    if (token.stop === null) end = line.length;
    else if (token.quoted) {
      end = at;
      while (end < line.length && line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (end >= line.length) return null;
    } else {
      end = line.indexOf(token.stop, at);
      if (end === -1) return null;
    }
    if (wanted.has(token.variable)) values.set(token.variable, line.slice(at, end));
    at = end;
  }
  return at === line.length ? values : null;
}

// --- settings --------------------------------------------------------------------------------

/** The probe's config keys that say how a line is read. */
export interface LineSettingsInput {
  format: AccessLogFormat;
  log_format?: string | undefined;
  status_field?: string | undefined;
  latency_field?: string | null | undefined;
  latency_unit?: LatencyUnit | undefined;
  error_status: string;
  where?: { field: string; matches: string } | undefined;
}

export interface LineSettings {
  format: AccessLogFormat;
  compiled: CompiledFormat | null;
  logFormat: string | null;
  statusField: string;
  latencyField: string | null;
  /** Multiply a latency by this to get milliseconds. */
  toMs: number;
  errorStatus: RegExp;
  where: { field: string; matches: RegExp } | null;
}

export interface SettingsProblem {
  key: string;
  message: string;
}

const show = (text: string, max = 80) => JSON.stringify(text.length > max ? `${text.slice(0, max - 3)}...` : text);
/** `$status` and `status` both name the variable status. */
const variableName = (field: string) => field.replace(/^\$\{?([A-Za-z0-9_]+)\}?$/, '$1');

function compileRegex(key: string, source: string, problems: SettingsProblem[]): RegExp | null {
  try {
    return new RegExp(source);
  } catch (error) {
    problems.push({ key, message: `${show(source)} is not a regular expression (${(error as Error).message}); use e.g. ^5..$` });
    return null;
  }
}

/** Resolves the format's defaults and checks the keys against each other; problems name the key. */
export function resolveLineSettings(input: LineSettingsInput): LineSettings | SettingsProblem[] {
  const problems: SettingsProblem[] = [];
  const defaults = FORMAT_DEFAULTS[input.format];
  const errorStatus = compileRegex('error_status', input.error_status, problems);
  const whereMatches = input.where ? compileRegex('where.matches', input.where.matches, problems) : null;
  let compiled: CompiledFormat | null = null;
  let logFormat: string | null = null;
  const isText = input.format !== 'json';
  const normalise = (field: string) => (isText ? variableName(field) : field);
  const statusField = normalise(input.status_field ?? defaults.statusField);
  const latencyField = input.latency_field === null ? null : normalise(input.latency_field ?? defaults.latencyField);
  const whereField = input.where ? normalise(input.where.field) : null;

  if (!isText) {
    if (input.log_format !== undefined) problems.push({ key: 'log_format', message: 'applies to the nginx and apache formats only; a json log names its fields with status_field, latency_field and where.field' });
  } else {
    logFormat = input.log_format ?? defaults.logFormat!;
    const result = compileLogFormat(logFormat);
    if (typeof result === 'string') problems.push({ key: 'log_format', message: `${show(logFormat)} cannot be read: ${result}` });
    else {
      compiled = result;
      const known = [...result.variables].map((v) => `$${v}`).join(' ');
      const need = (key: string, field: string, given: boolean, hint: string) => {
        if (result.variables.has(field)) return;
        problems.push({
          key: given ? key : 'log_format',
          message: given
            ? `${show(field)} is not a variable of log_format (it has ${known})`
            : `${input.log_format === undefined ? `the ${input.format} format` : show(logFormat!)} has no $${field}; ${hint}`,
        });
      };
      need('status_field', statusField, input.status_field !== undefined, 'set status_field to the variable holding the HTTP status');
      if (latencyField !== null) {
        need('latency_field', latencyField, input.latency_field !== undefined, 'set latency_field to the variable holding the request time, or latency_field: null for a log without latencies (no p95_ms)');
      }
      if (whereField !== null) need('where.field', whereField, true, '');
    }
  }
  if (problems.length > 0 || errorStatus === null) return problems;
  return {
    format: input.format,
    compiled,
    logFormat,
    statusField,
    latencyField,
    toMs: UNIT_TO_MS[input.latency_unit ?? defaults.latencyUnit],
    errorStatus,
    where: whereField !== null && whereMatches !== null ? { field: whereField, matches: whereMatches } : null,
  };
}

// --- one line --------------------------------------------------------------------------------

/** One request read from a line; `latencyMs` absent when the line has none (`-`). */
export interface LineRequest {
  status: string;
  latencyMs?: number;
}

/**
 * What a line is: a request, `excluded` (a request the `where` filter leaves to another probe),
 * `other` (a JSON log line that is not about a request), or `unparsed`.
 */
export type LineOutcome = LineRequest | 'excluded' | 'other' | 'unparsed';

const STATUS = /^[1-5][0-9][0-9]$/;
const NUMBER = /^[0-9]+(\.[0-9]+)?$/;

/** A reader of lines under fixed settings (the `wanted` set is built once, not per line). */
export function lineReader(settings: LineSettings): (line: string) => LineOutcome {
  const { statusField, latencyField, where, toMs } = settings;
  const latencyOf = (raw: unknown): number | undefined => {
    if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw * toMs : undefined;
    // nginx writes "-" when there is no value, and "0.010, 0.020" when a request was retried
    // on another upstream: the request took their sum.
    if (typeof raw !== 'string') return undefined;
    let total = 0;
    for (const part of raw.split(/\s*[,:]\s*/)) {
      if (!NUMBER.test(part)) return undefined;
      total += Number(part);
    }
    return total * toMs;
  };
  const finish = (status: unknown, latency: unknown, whereValue: unknown): LineOutcome => {
    const text = typeof status === 'number' && Number.isInteger(status) ? String(status) : status;
    if (typeof text !== 'string' || !STATUS.test(text)) return 'unparsed';
    if (where !== null && !((typeof whereValue === 'string' || typeof whereValue === 'number' || typeof whereValue === 'boolean') && where.matches.test(String(whereValue)))) {
      return 'excluded';
    }
    const latencyMs = latencyField === null ? undefined : latencyOf(latency);
    return latencyMs === undefined ? { status: text } : { status: text, latencyMs };
  };

  if (settings.compiled !== null) {
    const compiled = settings.compiled;
    const wanted = new Set([statusField, ...(latencyField !== null ? [latencyField] : []), ...(where ? [where.field] : [])]);
    return (line) => {
      const values = matchLogFormat(compiled, line, wanted);
      if (values === null) return 'unparsed';
      return finish(values.get(statusField), latencyField === null ? undefined : values.get(latencyField), where ? values.get(where.field) : undefined);
    };
  }
  return (line) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return 'unparsed';
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'unparsed';
    const status = fieldAt(parsed, statusField);
    if (status === undefined) return 'other';
    return finish(status, latencyField === null ? undefined : fieldAt(parsed, latencyField), where ? fieldAt(parsed, where.field) : undefined);
  };
}

/**
 * The value at a dotted path; a key that itself contains dots (`"http.status"`) is found too,
 * preferring the longest key that exists at each level.
 */
export function fieldAt(value: unknown, path: string): unknown {
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  if (Object.hasOwn(record, path)) return record[path];
  for (let dot = path.lastIndexOf('.'); dot > 0; dot = path.lastIndexOf('.', dot - 1)) {
    const head = path.slice(0, dot);
    if (Object.hasOwn(record, head)) {
      const found = fieldAt(record[head], path.slice(dot + 1));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

// --- one interval ----------------------------------------------------------------------------

/** Counts of one interval, with fixed latency buckets. */
export class TrafficTally {
  requests = 0;
  errors = 0;
  /** Requests per bucket (not cumulative), by index into LATENCY_BOUNDS_MS. */
  private readonly perBucket = new Array<number>(LATENCY_BOUNDS_MS.length).fill(0);
  private timed = 0;

  constructor(private readonly errorStatus: RegExp) {}

  add(request: LineRequest): void {
    this.requests++;
    if (this.errorStatus.test(request.status)) this.errors++;
    if (request.latencyMs !== undefined) {
      this.timed++;
      this.perBucket[bucketIndex(request.latencyMs)]!++;
    }
  }

  /** Cumulative buckets (le in ms, the last Infinity); undefined when no request had a latency. */
  latency(): { le: number; count: number }[] | undefined {
    if (this.timed === 0) return undefined;
    let cumulative = 0;
    return LATENCY_BOUNDS_MS.map((le, i) => ({ le, count: (cumulative += this.perBucket[i]!) }));
  }
}

/** The first bucket whose bound is at or above `ms` (binary search over the fixed bounds). */
function bucketIndex(ms: number): number {
  let low = 0;
  let high = LATENCY_BOUNDS_MS.length - 1;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (LATENCY_BOUNDS_MS[mid]! >= ms) high = mid;
    else low = mid + 1;
  }
  return low;
}
