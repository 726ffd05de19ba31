/**
 * The questions `release-guard init` asks, in the order it asks them: which pm2 app and deploy
 * layout (and so which rollback step), the health endpoint, a Prometheus, an access log. Each
 * says what it found in `Findings` (inferred, TODO, comments for the file) and returns what the
 * starter config needs.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { SAFE_NAME } from '../config/schema.js';
import { GuardError, errorMessage } from '../errors.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import type { InitDeps, InitOptions } from './init.js';
import { firstExisting, findStatus, findVersion, getJson, inspectAccessLog, layoutAbove, layoutAt, type Layout } from './init-lookups.js';
import type { AccessLogDoc } from './init-yaml.js';

/** What the questions found, as `init` prints it and writes it into the file. */
export interface Findings {
  /** What was found, one sentence each. */
  inferred: string[];
  /** What could not be inferred (also TODO comments in the file). */
  todo: string[];
  /** TODO comments keyed by the YAML section they belong to. */
  notes: Record<string, string[]>;
  /** A comment for `section` of the file. */
  note(section: string, text: string): void;
  /** Something not inferred: listed and commented in `section`. */
  cannot(section: string, text: string): void;
}

export function newFindings(): Findings {
  const findings: Findings = {
    inferred: [],
    todo: [],
    notes: {},
    note: (section, text) => (findings.notes[section] ??= []).push(text),
    cannot: (section, text) => {
      findings.todo.push(text);
      findings.note(section, text);
    },
  };
  return findings;
}

/** The pm2 app given with --pm2-app, as the pm2 daemon describes it. */
export interface Pm2App {
  app: string;
  home?: string;
  processes: Pm2ProcessInfo[];
}

/** --pm2-app: what pm2 says about the app (never starting a daemon); null without the option. */
export async function findPm2App(options: InitOptions, deps: InitDeps, findings: Findings): Promise<Pm2App | null> {
  const pm2Home = options.pm2Home ?? deps.env.PM2_HOME;
  if (options.pm2App === undefined) return null;
  if (!SAFE_NAME.test(options.pm2App)) throw new GuardError(`--pm2-app ${JSON.stringify(options.pm2App)} is not a plain app name (letters, digits, ".", "_", "-")`, 'usage');
  const home = pm2Home ?? join(homedir(), '.pm2');
  let processes: Pm2ProcessInfo[] | null = null;
  let unreachable = false;
  try {
    processes = await deps.describePm2(options.pm2App, pm2Home);
  } catch (error) {
    unreachable = true;
    findings.cannot('rollback', `pm2 in ${home} did not answer (${errorMessage(error)}); the pm2 app name is used as given`);
  }
  if (unreachable) {
    // said above
  } else if (processes === null) {
    findings.cannot('rollback', `no pm2 daemon runs in ${home} (pass --pm2-home DIR if the app runs under another PM2_HOME); the pm2 app name is used as given`);
  } else if (processes !== null && processes.length === 0) {
    findings.cannot('rollback', `pm2 in ${home} does not know an app named ${options.pm2App}; check the name with pm2 ls`);
  } else if (processes !== null) {
    const first = processes[0]!;
    const mode = first.execMode === 'cluster_mode' ? 'cluster mode' : first.execMode === 'fork_mode' ? 'fork mode' : (first.execMode ?? 'unknown mode');
    findings.inferred.push(`pm2 app ${options.pm2App}: ${processes.length} process${processes.length === 1 ? '' : 'es'} in ${mode}, script ${first.execPath ?? 'unknown'}`);
    if (first.execMode !== 'cluster_mode') {
      findings.note('rollback', 'the app runs in fork mode: a reload restarts it (a short outage); cluster mode reloads without downtime');
    }
  }
  return { app: options.pm2App, ...(pm2Home !== undefined ? { home: pm2Home } : {}), processes: processes ?? [] };
}

/** The Capistrano deploy layout: --releases-dir, else the symlink the pm2 app's script runs through. */
export async function findLayout(options: InitOptions, pm2: Pm2App | null, findings: Findings): Promise<Layout | null> {
  let layout: Layout | null = null;
  if (options.releasesDir !== undefined) {
    layout = await layoutAt(resolve(options.releasesDir));
    if (layout) findings.inferred.push(`Capistrano layout in ${layout.dir} (${layout.current} -> releases/${layout.version}): rollback swaps the symlink back`);
    else findings.cannot('rollback', `${options.releasesDir} is not a Capistrano deploy root (expected releases/<version>/ and a current symlink into it)`);
  } else if (pm2 !== null) {
    const script = pm2.processes[0]?.execPath;
    layout = script === undefined ? null : await layoutAbove(script);
    if (layout) findings.inferred.push(`the script runs through ${join(layout.dir, layout.current)} -> releases/${layout.version} (Capistrano layout): rollback by the releases strategy`);
  }
  return layout;
}

/** The rollback step: the releases strategy in a deploy layout, else pm2, else a placeholder command. */
export function rollbackStep(layout: Layout | null, pm2: Pm2App | null, findings: Findings): Record<string, unknown> {
  let step: Record<string, unknown>;
  if (layout !== null) {
    step = { type: 'releases', dir: layout.dir, ...(layout.current === 'current' ? {} : { current: layout.current }), pm2_app: pm2?.app ?? 'app' };
    if (pm2 === null) findings.cannot('rollback', 'no --pm2-app: set rollback.steps[0].pm2_app to the pm2 app serving the releases');
  } else if (pm2 !== null) {
    step = { type: 'pm2', pm2_app: pm2.app, action: pm2.processes[0]?.execMode === 'cluster_mode' ? 'reload' : 'restart' };
    if (pm2.processes.length > 0) {
      findings.cannot(
        'rollback',
        'the app does not run from a releases/<version> + current symlink layout, so the pm2 strategy can only restart it, not bring the previous code back; deploy in that layout (then use type: releases) or add a step that restores the previous version (git, command, …)',
      );
    }
  } else {
    step = { type: 'command', command: ['/usr/local/bin/rollback-app', '{from}', '{to}'] };
    findings.cannot('rollback', 'no pm2 app and no releases dir: replace the placeholder command with what puts the previous version back ({from} and {to} are the versions); see docs/strategies.md');
  }
  return step;
}

/** The health probe: --health-url fetched once, its version and status fields found in its JSON. */
export async function findHealth(options: InitOptions, deps: InitDeps, findings: Findings): Promise<Record<string, unknown>> {
  const health: Record<string, unknown> = { name: 'health', type: 'http', url: options.healthUrl ?? 'http://127.0.0.1:3000/health' };
  if (options.healthUrl === undefined) {
    health.version_path = 'version';
    findings.cannot('health', 'health URL: no --health-url; set probes[0].url to the endpoint that reports the running version, and version_path to where the version is in its JSON');
  } else {
    checkUrl(options.healthUrl, '--health-url');
    const answer = await getJson(deps.fetch, options.healthUrl);
    if (answer.error !== undefined) {
      health.version_path = 'version';
      findings.cannot('health', `health URL ${options.healthUrl} could not be read (${answer.error}); version_path "version" is a guess: check it once the app answers`);
    } else {
      if (answer.status !== 200) findings.note('health', `it answered HTTP ${answer.status} when init looked; a check passes on 200 only (expect_status)`);
      const found = answer.json === undefined ? null : findVersion(answer.json);
      if (found) {
        health.version_path = found.path;
        findings.inferred.push(`health URL ${options.healthUrl} answers JSON with ${found.path} = ${JSON.stringify(found.value)}: version_path ${found.path}`);
      } else {
        health.version_path = 'version';
        findings.cannot(
          'health',
          `health URL ${options.healthUrl} ${answer.json === undefined ? 'does not answer JSON' : 'has no version-like field'}: releases are detected from the version the app reports; make it report one (e.g. {"version": "v2"}) and set version_path`,
        );
      }
      const status = answer.json === undefined ? null : findStatus(answer.json);
      if (status) {
        health.json_field = { path: status.path, equals: status.value };
        findings.inferred.push(`health URL reports ${status.path} = ${JSON.stringify(status.value)}: a check passes only while it does`);
      }
    }
  }
  return health;
}

/** A prometheus probe with example queries when --prometheus-url answers; judged when they return data. */
export async function findPrometheus(
  options: InitOptions,
  deps: InitDeps,
  service: string,
  findings: Findings,
): Promise<{ probe: Record<string, unknown>; judged: boolean } | null> {
  if (options.prometheusUrl === undefined) return null;
  checkUrl(options.prometheusUrl, '--prometheus-url');
  const base = options.prometheusUrl.replace(/\/+$/, '');
  const info = await getJson(deps.fetch, `${base}/api/v1/status/buildinfo`);
  const version = (info.json as { data?: { version?: unknown } } | undefined)?.data?.version;
  if (info.error !== undefined || info.status !== 200 || typeof version !== 'string') {
    findings.cannot('probes', `Prometheus at ${base} did not answer /api/v1/status/buildinfo (${info.error ?? `HTTP ${info.status}`}); no prometheus probe added`);
    return null;
  }
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
  findings.inferred.push(`Prometheus ${version} at ${base}: a prometheus probe "traffic" with example queries`);
  if (judged) findings.inferred.push('the example error_ratio and p95_ms queries return data: error_rate and latency_ratio judge real traffic');
  else {
    findings.cannot(
      'traffic',
      `the example queries ${answering.length === 0 ? 'return no data' : `return data only for ${answering.join(', ')}`}: adjust them to your metric names and labels, then point rules.error_rate and rules.latency_ratio at probe traffic`,
    );
  }
  return { probe: { name: 'traffic', type: 'prometheus', url: base, queries }, judged };
}

/** The access log (--access-log, else the first usual one that exists) and whether its format is read. */
export async function findAccessLog(options: InitOptions, deps: InitDeps, findings: Findings): Promise<AccessLogDoc | null> {
  const logPath = options.accessLog ?? (await firstExisting(deps.accessLogCandidates));
  if (logPath === undefined) return null;
  const path = resolve(logPath);
  const found = await inspectAccessLog(path);
  if (found.format !== undefined) {
    findings.inferred.push(`access log ${path}: ${found.lines} recent lines in the ${found.format} format the access_log probe reads: every request counts`);
    return { path, format: found.format, enabled: true };
  }
  findings.cannot('access_log', `access log ${path} ${found.problem}; the access_log probe is written commented out`);
  return { path, format: 'nginx', enabled: false };
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
