/**
 * `release-guard init`: writes a starter config for one service after looking at what is there.
 *
 * - `--pm2-app NAME`: asks pm2 (only a daemon that already runs: init never starts one) for the
 *   app's script and mode. A script reached through a `current` symlink into `releases/<version>`
 *   (Capistrano layout) gives the `releases` strategy, the fast and real rollback; otherwise the
 *   `pm2` strategy, with a TODO saying why it is weaker.
 * - `--health-url URL`: fetched once; a JSON body with a version-like field gives `version_path`
 *   (how releases are detected), a `status`-like field gives `json_field`.
 * - `--prometheus-url URL`: when it answers /api/v1/status/buildinfo, a prometheus probe with
 *   example queries is added; the rules judge real traffic only if those queries return data.
 * - `--releases-dir DIR`: a Capistrano deploy root given by hand.
 * - `--access-log PATH`, else nginx's /var/log/nginx/access.log when it exists: the last lines
 *   are read; when they are in a format the access_log probe reads (nginx's `timed`, Apache's
 *   combined + %D, pino-http JSON), an access_log probe is added and the traffic rules judge it
 *   (unless a Prometheus already does). Otherwise the probe is written commented out, with a TODO
 *   giving the log_format it expects.
 *
 * Whatever cannot be inferred gets a safe default and a `# TODO` comment in the file, and is
 * listed on stdout. The file is validated with the real schema before it is written (an invalid
 * file is never written), and an existing file is only replaced with `--force`.
 */
import { constants } from 'node:fs';
import { access, lstat, mkdir, open, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { validateConfig } from '../config/load.js';
import { SAFE_NAME } from '../config/schema.js';
import { ConfigError, GuardError, errorMessage } from '../errors.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { lineReader, NGINX_TIMED_FORMAT, resolveLineSettings, type AccessLogFormat } from '../probes/access-log-parse.js';

export interface InitOptions {
  out: string;
  force: boolean;
  service?: string;
  pm2App?: string;
  /** PM2_HOME of the daemon running the app (default: $PM2_HOME, else ~/.pm2). */
  pm2Home?: string;
  healthUrl?: string;
  prometheusUrl?: string;
  releasesDir?: string;
  stateDir?: string;
  /** A web server's access log to follow (else the first of InitDeps.accessLogCandidates that exists). */
  accessLog?: string;
}

export interface InitResult {
  file: string;
  yaml: string;
  /** What was found, one sentence each. */
  inferred: string[];
  /** What could not be inferred (also TODO comments in the file). */
  todo: string[];
}

/** How init reaches the outside world; tests may replace parts. */
export interface InitDeps {
  /** The app's processes as pm2 describes them; null when no pm2 daemon runs in `home`. */
  describePm2(app: string, home: string | undefined): Promise<Pm2ProcessInfo[] | null>;
  fetch: typeof fetch;
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  /** Where a web server's access log usually is, looked at when no --access-log is given. */
  accessLogCandidates: string[];
}

const HTTP_TIMEOUT_MS = 3000;
const MAX_BODY = 1024 * 1024;

/** Keys that usually carry the running version, best first. */
const VERSION_KEYS = [/^version$/i, /^app_?version$/i, /^(release|release_?version)$/i, /^(build|build_?version)$/i, /^(git_?sha|sha|commit|revision|rev)$/i, /^tag$/i];
const STATUS_KEYS = /^(status|state|health)$/i;
const STATUS_OK = /^(ok|up|healthy|pass|passing|green|available)$/i;

export const defaultInitDeps = (env: NodeJS.ProcessEnv = process.env): InitDeps => ({
  describePm2: describeWithPm2,
  fetch: globalThis.fetch,
  env,
  isRoot: process.getuid?.() === 0,
  accessLogCandidates: ['/var/log/nginx/access.log'],
});

/** Writes the starter config; throws a GuardError (exit 1) when the file exists and not --force. */
export async function runInit(options: InitOptions, deps: InitDeps = defaultInitDeps()): Promise<InitResult> {
  const file = resolve(options.out);
  if (!options.force && (await exists(file))) {
    throw new GuardError(`${options.out} already exists; not overwriting it (pass --force to replace it)`, 'init_exists');
  }
  const inferred: string[] = [];
  const todo: string[] = [];
  /** TODO comments keyed by the YAML section they belong to. */
  const notes: Record<string, string[]> = {};
  const note = (section: string, text: string) => (notes[section] ??= []).push(text);
  const cannot = (section: string, text: string) => {
    todo.push(text);
    note(section, text);
  };

  // --- pm2 and the deploy layout -------------------------------------------------------------
  let pm2: { app: string; home?: string; processes: Pm2ProcessInfo[] } | null = null;
  const pm2Home = options.pm2Home ?? deps.env.PM2_HOME;
  if (options.pm2App !== undefined) {
    if (!SAFE_NAME.test(options.pm2App)) throw new GuardError(`--pm2-app ${JSON.stringify(options.pm2App)} is not a plain app name (letters, digits, ".", "_", "-")`, 'usage');
    const home = pm2Home ?? join(homedir(), '.pm2');
    let processes: Pm2ProcessInfo[] | null = null;
    let unreachable = false;
    try {
      processes = await deps.describePm2(options.pm2App, pm2Home);
    } catch (error) {
      unreachable = true;
      cannot('rollback', `pm2 in ${home} did not answer (${errorMessage(error)}); the pm2 app name is used as given`);
    }
    if (unreachable) {
      // said above
    } else if (processes === null) {
      cannot('rollback', `no pm2 daemon runs in ${home} (pass --pm2-home DIR if the app runs under another PM2_HOME); the pm2 app name is used as given`);
    } else if (processes !== null && processes.length === 0) {
      cannot('rollback', `pm2 in ${home} does not know an app named ${options.pm2App}; check the name with pm2 ls`);
    } else if (processes !== null) {
      const first = processes[0]!;
      const mode = first.execMode === 'cluster_mode' ? 'cluster mode' : first.execMode === 'fork_mode' ? 'fork mode' : (first.execMode ?? 'unknown mode');
      inferred.push(`pm2 app ${options.pm2App}: ${processes.length} process${processes.length === 1 ? '' : 'es'} in ${mode}, script ${first.execPath ?? 'unknown'}`);
      if (first.execMode !== 'cluster_mode') {
        note('rollback', 'the app runs in fork mode: a reload restarts it (a short outage); cluster mode reloads without downtime');
      }
    }
    pm2 = { app: options.pm2App, ...(pm2Home !== undefined ? { home: pm2Home } : {}), processes: processes ?? [] };
  }

  let layout: Layout | null = null;
  if (options.releasesDir !== undefined) {
    layout = await layoutAt(resolve(options.releasesDir));
    if (layout) inferred.push(`Capistrano layout in ${layout.dir} (${layout.current} -> releases/${layout.version}): rollback swaps the symlink back`);
    else cannot('rollback', `${options.releasesDir} is not a Capistrano deploy root (expected releases/<version>/ and a current symlink into it)`);
  } else if (pm2 !== null) {
    const script = pm2.processes[0]?.execPath;
    layout = script === undefined ? null : await layoutAbove(script);
    if (layout) inferred.push(`the script runs through ${join(layout.dir, layout.current)} -> releases/${layout.version} (Capistrano layout): rollback by the releases strategy`);
  }

  let step: Record<string, unknown>;
  if (layout !== null) {
    step = { type: 'releases', dir: layout.dir, ...(layout.current === 'current' ? {} : { current: layout.current }), pm2_app: pm2?.app ?? 'app' };
    if (pm2 === null) cannot('rollback', 'no --pm2-app: set rollback.steps[0].pm2_app to the pm2 app serving the releases');
  } else if (pm2 !== null) {
    step = { type: 'pm2', pm2_app: pm2.app, action: pm2.processes[0]?.execMode === 'cluster_mode' ? 'reload' : 'restart' };
    if (pm2.processes.length > 0) {
      cannot(
        'rollback',
        'the app does not run from a releases/<version> + current symlink layout, so the pm2 strategy can only restart it, not bring the previous code back; deploy in that layout (then use type: releases) or add a step that restores the previous version (git, command, …)',
      );
    }
  } else {
    step = { type: 'command', command: ['/usr/local/bin/rollback-app', '{from}', '{to}'] };
    cannot('rollback', 'no pm2 app and no releases dir: replace the placeholder command with what puts the previous version back ({from} and {to} are the versions); see docs/strategies.md');
  }

  // --- the service ---------------------------------------------------------------------------
  const service = sanitizeName(options.service ?? pm2?.app ?? (layout ? basename(layout.dir) : undefined) ?? 'app');
  if (options.service === undefined && pm2 === null && layout === null) cannot('service', 'service name: no --service or --pm2-app; "app" is a placeholder');
  const stateDir = resolve(options.stateDir ?? (deps.isRoot ? '/var/lib/release-guard' : join(deps.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'release-guard', service)));

  // --- the health endpoint -------------------------------------------------------------------
  const health: Record<string, unknown> = { name: 'health', type: 'http', url: options.healthUrl ?? 'http://127.0.0.1:3000/health' };
  if (options.healthUrl === undefined) {
    health.version_path = 'version';
    cannot('health', 'health URL: no --health-url; set probes[0].url to the endpoint that reports the running version, and version_path to where the version is in its JSON');
  } else {
    checkUrl(options.healthUrl, '--health-url');
    const answer = await getJson(deps.fetch, options.healthUrl);
    if (answer.error !== undefined) {
      health.version_path = 'version';
      cannot('health', `health URL ${options.healthUrl} could not be read (${answer.error}); version_path "version" is a guess: check it once the app answers`);
    } else {
      if (answer.status !== 200) note('health', `it answered HTTP ${answer.status} when init looked; a check passes on 200 only (expect_status)`);
      const found = answer.json === undefined ? null : findVersion(answer.json);
      if (found) {
        health.version_path = found.path;
        inferred.push(`health URL ${options.healthUrl} answers JSON with ${found.path} = ${JSON.stringify(found.value)}: version_path ${found.path}`);
      } else {
        health.version_path = 'version';
        cannot(
          'health',
          `health URL ${options.healthUrl} ${answer.json === undefined ? 'does not answer JSON' : 'has no version-like field'}: releases are detected from the version the app reports; make it report one (e.g. {"version": "v2"}) and set version_path`,
        );
      }
      const status = answer.json === undefined ? null : findStatus(answer.json);
      if (status) {
        health.json_field = { path: status.path, equals: status.value };
        inferred.push(`health URL reports ${status.path} = ${JSON.stringify(status.value)}: a check passes only while it does`);
      }
    }
  }

  // --- Prometheus ----------------------------------------------------------------------------
  let traffic: { probe: Record<string, unknown>; judged: boolean } | null = null;
  if (options.prometheusUrl !== undefined) {
    checkUrl(options.prometheusUrl, '--prometheus-url');
    const base = options.prometheusUrl.replace(/\/+$/, '');
    const info = await getJson(deps.fetch, `${base}/api/v1/status/buildinfo`);
    const version = (info.json as { data?: { version?: unknown } } | undefined)?.data?.version;
    if (info.error !== undefined || info.status !== 200 || typeof version !== 'string') {
      cannot('probes', `Prometheus at ${base} did not answer /api/v1/status/buildinfo (${info.error ?? `HTTP ${info.status}`}); no prometheus probe added`);
    } else {
      const queries = {
        error_ratio: `(sum(rate(http_requests_total{job="${service}",status=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{job="${service}"}[1m]))`,
        p95_ms: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="${service}"}[1m]))) * 1000`,
      };
      const answering: string[] = [];
      for (const [name, query] of Object.entries(queries)) {
        const result = await getJson(deps.fetch, `${base}/api/v1/query?query=${encodeURIComponent(query)}`);
        const data = (result.json as { data?: { result?: unknown[] } } | undefined)?.data?.result;
        if (Array.isArray(data) && data.length > 0) answering.push(name);
      }
      const judged = answering.length === Object.keys(queries).length;
      inferred.push(`Prometheus ${version} at ${base}: a prometheus probe "traffic" with example queries`);
      if (judged) inferred.push('the example error_ratio and p95_ms queries return data: error_rate and latency_ratio judge real traffic');
      else {
        cannot(
          'traffic',
          `the example queries ${answering.length === 0 ? 'return no data' : `return data only for ${answering.join(', ')}`}: adjust them to your metric names and labels, then point rules.error_rate and rules.latency_ratio at probe traffic`,
        );
      }
      traffic = { probe: { name: 'traffic', type: 'prometheus', url: base, queries }, judged };
    }
  }

  // --- the access log ------------------------------------------------------------------------
  let accessLog: AccessLogDoc | null = null;
  const logPath = options.accessLog ?? (await firstExisting(deps.accessLogCandidates));
  if (logPath !== undefined) {
    const path = resolve(logPath);
    const found = await inspectAccessLog(path);
    if (found.format !== undefined) {
      accessLog = { path, format: found.format, enabled: true };
      inferred.push(`access log ${path}: ${found.lines} recent lines in the ${found.format} format the access_log probe reads: every request counts`);
    } else {
      accessLog = { path, format: 'nginx', enabled: false };
      cannot('access_log', `access log ${path} ${found.problem}; the access_log probe is written commented out`);
    }
  }

  // --- the file ------------------------------------------------------------------------------
  const source = traffic?.judged ? 'traffic' : accessLog?.enabled ? ACCESS_LOG_PROBE : 'health';
  const doc = {
    service,
    state_dir: stateDir,
    pm2: pm2 === null ? undefined : { app: pm2.app, ...(pm2.home !== undefined ? { home: pm2.home } : {}) },
    health,
    traffic: traffic?.probe,
    accessLog,
    source,
    step,
  };
  const yaml = renderYaml(doc, notes, { inferred, todo });

  // Never write a file the daemon would refuse.
  try {
    validateConfig(parse(yaml) as unknown, options.out);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new GuardError(`the starter config would not be valid, so nothing was written:\n${error.message}`, 'init_invalid', 'check the values given on the command line (names are letters, digits, ".", "_", "-")');
    }
    throw error;
  }
  await mkdir(dirname(file), { recursive: true });
  // wx: a file that appeared since the check above is not overwritten either.
  await writeFile(file, yaml, { mode: 0o640, flag: options.force ? 'w' : 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') throw new GuardError(`${options.out} already exists; not overwriting it (pass --force to replace it)`, 'init_exists');
    throw new GuardError(`cannot write ${options.out}: ${error.message}`, 'init_write', undefined, { cause: error });
  });
  return { file, yaml, inferred, todo };
}

/** What `init` prints: what was written, what was inferred, what is left to do, what next. */
export function formatInitReport(result: InitResult, out: string): string {
  const lines = [`wrote ${out}`];
  if (result.inferred.length > 0) lines.push('', 'inferred:', ...result.inferred.map((text) => `  ✔ ${text}`));
  if (result.todo.length > 0) lines.push('', 'could not infer (marked TODO in the file):', ...result.todo.map((text) => `  ? ${text}`));
  lines.push('', 'next:', `  release-guard config validate ${out}`, `  release-guard start --config ${out}`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

const ACCESS_LOG_PROBE = 'access-log';
/** The tail of a log looked at to tell its format: a few hundred lines. */
const ACCESS_LOG_SNIFF_BYTES = 64 * 1024;

interface AccessLogDoc {
  path: string;
  format: AccessLogFormat;
  /** Its recent lines are in `format`: written as a live probe, else commented out. */
  enabled: boolean;
}

async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) if (await exists(path)) return path;
  return undefined;
}

/**
 * The format of a log's recent lines, among those the access_log probe reads with its defaults
 * (at most 1 line in 10 may fail to parse: a few odd lines do not hide the format); else why not.
 */
async function inspectAccessLog(path: string): Promise<{ format?: AccessLogFormat; lines: number; problem?: string }> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - ACCESS_LOG_SNIFF_BYTES);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      text = buffer.toString('utf8');
      // The first line is cut unless the tail is the whole file.
      if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { lines: 0, problem: 'does not exist' };
    if (code === 'EACCES' || code === 'EPERM') return { lines: 0, problem: 'cannot be read by this user (permission denied): the guard needs read access to it (e.g. the adm group on Debian)' };
    return { lines: 0, problem: `cannot be read (${code ?? errorMessage(error)})` };
  }
  const lines = text.split('\n').filter((line) => line.trim() !== '').slice(-200);
  if (lines.length === 0) return { lines: 0, problem: 'is empty, so its format could not be checked' };
  for (const format of ['nginx', 'apache', 'json'] as const) {
    const settings = resolveLineSettings({ format, error_status: '^5..$' });
    if (Array.isArray(settings)) continue;
    const read = lineReader(settings);
    const outcomes = lines.map(read);
    // JSON logs interleave the app's own lines ('other'): those are not a mismatch.
    const requests = outcomes.filter((outcome) => typeof outcome === 'object').length;
    const unparsed = outcomes.filter((outcome) => outcome === 'unparsed').length;
    if (requests > 0 && unparsed <= 0.1 * lines.length) return { format, lines: lines.length };
  }
  const example = lines.at(-1)!;
  return { lines: lines.length, problem: `is not in a format the access_log probe reads by default (e.g. ${JSON.stringify(example.length > 100 ? `${example.slice(0, 100)}…` : example)})` };
}

interface Layout {
  /** The deploy root holding releases/ and the symlink. */
  dir: string;
  /** The symlink's name (usually `current`). */
  current: string;
  /** The release it points at. */
  version: string;
}

/** `dir` as a Capistrano deploy root: `dir/releases/` and `dir/current -> releases/<version>`. */
async function layoutAt(dir: string): Promise<Layout | null> {
  const releases = await stat(join(dir, 'releases')).catch(() => null);
  if (!releases?.isDirectory()) return null;
  return symlinkIntoReleases(join(dir, 'current'));
}

/** The nearest symlink on a script's path that points into a sibling `releases/` directory. */
async function layoutAbove(script: string): Promise<Layout | null> {
  const parts = resolve(script).split(sep);
  for (let i = parts.length - 1; i >= 1; i--) {
    const found = await symlinkIntoReleases(parts.slice(0, i + 1).join(sep) || sep);
    if (found) return found;
  }
  return null;
}

async function symlinkIntoReleases(link: string): Promise<Layout | null> {
  const info = await lstat(link).catch(() => null);
  if (!info?.isSymbolicLink()) return null;
  const parent = dirname(link);
  const target = resolve(parent, await readlink(link));
  if (dirname(target) !== join(parent, 'releases')) return null;
  const release = await stat(target).catch(() => null);
  if (!release?.isDirectory()) return null;
  return { dir: parent, current: basename(link), version: basename(target) };
}

/** Asks the pm2 daemon in `home` about `app`, without ever starting a daemon. */
async function describeWithPm2(app: string, home: string | undefined): Promise<Pm2ProcessInfo[] | null> {
  const dir = home ?? join(homedir(), '.pm2');
  if (!(await daemonRuns(dir))) return null;
  const { Pm2ApiClient } = await import('../pm2/pm2-api-client.js');
  const client = new Pm2ApiClient(home !== undefined ? { home } : {});
  try {
    return await client.describe(app);
  } finally {
    await client.disconnect().catch(() => undefined);
  }
}

/** pm2 starts a daemon on connect when none runs: check its pid file and socket first. */
async function daemonRuns(home: string): Promise<boolean> {
  try {
    const pid = Number.parseInt(await readFile(join(home, 'pm2.pid'), 'utf8'), 10);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    await access(join(home, 'rpc.sock'), constants.F_OK);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user (whose socket we may still be allowed to use).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function getJson(fetcher: typeof fetch, url: string): Promise<{ status: number; json?: unknown; error?: string }> {
  try {
    const response = await fetcher(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), headers: { accept: 'application/json' } });
    const text = (await response.text()).slice(0, MAX_BODY);
    try {
      return { status: response.status, json: JSON.parse(text) as unknown };
    } catch {
      return { status: response.status };
    }
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') return { status: 0, error: `no answer within ${HTTP_TIMEOUT_MS / 1000}s` };
    const code = errorCode(error);
    const words: Record<string, string> = { ECONNREFUSED: 'connection refused', ENOTFOUND: 'no such host', EHOSTUNREACH: 'host unreachable', ECONNRESET: 'connection reset' };
    const cause = (error as { cause?: unknown }).cause;
    return { status: 0, error: code !== undefined ? (words[code] ?? code) : cause instanceof Error ? cause.message : errorMessage(error) };
  }
}

/** fetch wraps the socket error (`TypeError: fetch failed`, cause `{ code }` or an AggregateError of them). */
function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const record = current as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof record.code === 'string') return record.code;
    const first = Array.isArray(record.errors) ? (record.errors[0] as { code?: unknown } | undefined) : undefined;
    if (typeof first?.code === 'string') return first.code;
    current = record.cause;
  }
  return undefined;
}

/** The dot path of the best version-like field (top level first, then nested), if any. */
function findVersion(json: unknown): { path: string; value: string | number } | null {
  for (const pattern of VERSION_KEYS) {
    const found = findField(json, (key, value) => pattern.test(key) && (typeof value === 'string' || typeof value === 'number') && String(value).trim() !== '');
    if (found) return found as { path: string; value: string | number };
  }
  return null;
}

function findStatus(json: unknown): { path: string; value: string | boolean } | null {
  const found = findField(json, (key, value) => STATUS_KEYS.test(key) && ((typeof value === 'string' && STATUS_OK.test(value)) || value === true), 1);
  return found as { path: string; value: string | boolean } | null;
}

/** Breadth first, so `version` wins over `build.version`; at most `depth` levels below the top. */
function findField(json: unknown, match: (key: string, value: unknown) => boolean, depth = 3): { path: string; value: unknown } | null {
  let level: { path: string; value: unknown }[] = [{ path: '', value: json }];
  for (let d = 0; d < depth && level.length > 0; d++) {
    const next: { path: string; value: unknown }[] = [];
    for (const node of level) {
      if (node.value === null || typeof node.value !== 'object' || Array.isArray(node.value)) continue;
      for (const [key, value] of Object.entries(node.value as Record<string, unknown>)) {
        if (!/^[A-Za-z0-9_-]+$/.test(key)) continue;
        const path = node.path === '' ? key : `${node.path}.${key}`;
        if (match(key, value)) return { path, value };
        next.push({ path, value });
      }
    }
    level = next;
  }
  return null;
}

function sanitizeName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128);
  return clean === '' ? 'app' : clean;
}

function checkUrl(text: string, option: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GuardError(`${option} ${JSON.stringify(text)} is not a URL; expected e.g. http://127.0.0.1:3000/health`, 'usage');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new GuardError(`${option} ${JSON.stringify(text)} must be an http:// or https:// URL`, 'usage');
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

// --- YAML ------------------------------------------------------------------------------------

/** A YAML scalar: plain when unambiguous, else JSON-quoted (JSON strings are YAML strings). */
function scalar(value: unknown): string {
  if (typeof value === 'string') {
    const plain = /^[A-Za-z0-9_/][A-Za-z0-9_./:@-]*$/.test(value) && !/^(true|false|yes|no|on|off|null|~|y|n)$/i.test(value) && !/^[\d.+-]/.test(value);
    return plain ? value : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

function flow(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flow).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{ ${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}: ${flow(v)}`).join(', ')} }`;
  }
  return scalar(value);
}

const comment = (indent: string, text: string) => `${indent}# TODO: ${text}`;

/**
 * The config schema shipped with this installation: package root/config.schema.json, two levels
 * above src/cli/init.ts and dist/cli/init.js alike.
 */
export function shippedSchemaPath(): string {
  return fileURLToPath(new URL('../../config.schema.json', import.meta.url));
}

function renderYaml(
  doc: {
    service: string;
    state_dir: string;
    pm2: { app: string; home?: string } | undefined;
    health: Record<string, unknown>;
    traffic: Record<string, unknown> | undefined;
    accessLog: AccessLogDoc | null;
    source: string;
    step: Record<string, unknown>;
  },
  notes: Record<string, string[]>,
  summary: { inferred: string[]; todo: string[] },
): string {
  /** A line with a trailing comment, aligned when the line is short enough. */
  const c = (text: string, note: string) => `${text.padEnd(38)} # ${note}`;
  const lines: string[] = [
    // Editors with the YAML language server (VS Code, Neovim, …) complete and check the file against it.
    `# yaml-language-server: $schema=${shippedSchemaPath()}`,
    `# release-guard starter config for ${doc.service}, written by \`release-guard init\` on ${new Date().toISOString().slice(0, 10)}.`,
    '# Every key is documented in docs/configuration.md; check this file with:',
    '#   release-guard config validate <this file>',
  ];
  if (summary.todo.length > 0) lines.push(`# ${summary.todo.length} thing${summary.todo.length === 1 ? '' : 's'} could not be inferred: search for TODO.`);
  lines.push('');
  const notesFor = (section: string, indent = '') => (notes[section] ?? []).map((text) => comment(indent, text));

  lines.push(...notesFor('service'), `service: ${scalar(doc.service)}`);
  lines.push(c(`state_dir: ${scalar(doc.state_dir)}`, 'state, history and rollback records'));
  lines.push(
    '',
    c('server:', '/metrics, /status and the control API'),
    '  host: 127.0.0.1',
    '  port: 9464',
    c('  # token_file: /etc/release-guard/token', 'bearer token for rollback, pause, resume (chmod 600);'),
    c('', 'without it, the token comes from $RELEASE_GUARD_TOKEN'),
  );
  if (doc.pm2) {
    lines.push('', c('pm2:', "crashes of a new version are seen on pm2's event bus"), `  app: ${scalar(doc.pm2.app)}`);
    if (doc.pm2.home !== undefined) lines.push(`  home: ${scalar(doc.pm2.home)}`);
  }

  lines.push('', 'probes:', ...notesFor('health', '  '));
  lines.push('  - name: health', '    type: http', `    url: ${scalar(doc.health.url)}`);
  if (doc.health.json_field !== undefined) lines.push(c(`    json_field: ${flow(doc.health.json_field)}`, 'a check passes only with this field'));
  lines.push(c(`    version_path: ${scalar(doc.health.version_path)}`, 'where the running version is in the JSON body'));
  lines.push('  - name: host', c('    type: system', 'host CPU, memory and disk from /proc'));
  lines.push(...notesFor('probes', '  '));
  if (doc.traffic) {
    const queries = doc.traffic.queries as Record<string, string>;
    lines.push(
      c('  - name: traffic', 'real traffic from Prometheus'),
      '    type: prometheus',
      `    url: ${scalar(doc.traffic.url)}`,
      '    queries:',
      ...(notes.traffic ?? []).map((text) => comment('      ', text)),
      '      # Examples: adjust the metric names and labels to what your app exports.',
      `      error_ratio: ${scalar(queries.error_ratio)}`,
      `      p95_ms: ${scalar(queries.p95_ms)}`,
    );
  }

  if (doc.accessLog) {
    const log = doc.accessLog;
    const probe = [
      c(`- name: ${ACCESS_LOG_PROBE}`, 'every request the web server answered, from its access log'),
      '  type: access_log',
      `  path: ${scalar(log.path)}`,
      ...(log.format === 'nginx' ? [] : [`  format: ${log.format}`]),
    ];
    lines.push(...notesFor('access_log', '  '));
    if (log.enabled) lines.push(...probe.map((line) => `  ${line}`));
    else {
      lines.push(
        '  # The probe expects nginx to log in the timed format (combined + request time + upstream). In',
        "  # nginx's http block:",
        `  #   log_format timed '${NGINX_TIMED_FORMAT}';`,
        `  #   access_log ${log.path} timed;`,
        '  # then nginx -s reload, uncomment the probe, and point rules.error_rate and rules.latency_ratio at it.',
        '  # Other layouts: set format (apache, json) or log_format; see docs/configuration.md.',
        ...probe.map((line) => `  # ${line}`),
      );
    }
  }

  lines.push('', 'release:', '  version_probe: health', c('  window: 10m', 'a release is guarded this long, then promoted'));
  const later =
    doc.traffic && doc.source === 'health'
      ? '; probe: traffic once its queries answer'
      : doc.accessLog && !doc.accessLog.enabled && doc.source === 'health'
        ? `; probe: ${ACCESS_LOG_PROBE} once it is enabled`
        : '';
  lines.push(
    '',
    c('rules:', "the runbook's thresholds are the defaults"),
    c('  health: { probe: health }', '3 consecutive failed checks'),
    c(`  error_rate: { probe: ${doc.source} }`, `errors > 5 %${later}`),
    c(`  latency_ratio: { probe: ${doc.source} }`, `p95 > 3 × the previous version's${later}`),
    c('  cpu: { probe: host }', '> 70 % for 60 s'),
    c('  memory: { probe: host }', '> 80 % for 60 s'),
  );

  lines.push('', 'rollback:', '  steps:', ...notesFor('rollback', '    '));
  const [first, ...rest] = Object.entries(doc.step);
  lines.push(`    - ${first![0]}: ${flow(first![1])}`, ...rest.map(([key, value]) => `      ${key}: ${flow(value)}`));
  lines.push('', c('verification: { probe: health, passes: 3 }', 'the previous version must answer 3 times'), '');
  return lines.join('\n');
}
