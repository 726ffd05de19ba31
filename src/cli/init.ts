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
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { validateConfig } from '../config/load.js';
import { ConfigError, GuardError } from '../errors.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { findAccessLog, findHealth, findLayout, findPm2App, findPrometheus, newFindings, rollbackStep } from './init-findings.js';
import { describeWithPm2, exists } from './init-lookups.js';
import { ACCESS_LOG_PROBE, renderYaml, type StarterDoc } from './init-yaml.js';

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
  const findings = newFindings();
  const pm2 = await findPm2App(options, deps, findings);
  const layout = await findLayout(options, pm2, findings);
  const step = rollbackStep(layout, pm2, findings);

  const service = sanitizeName(options.service ?? pm2?.app ?? (layout ? basename(layout.dir) : undefined) ?? 'app');
  if (options.service === undefined && pm2 === null && layout === null) findings.cannot('service', 'service name: no --service or --pm2-app; "app" is a placeholder');
  const stateDir = resolve(options.stateDir ?? (deps.isRoot ? '/var/lib/release-guard' : join(deps.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'release-guard', service)));

  const health = await findHealth(options, deps, findings);
  const traffic = await findPrometheus(options, deps, service, findings);
  const accessLog = await findAccessLog(options, deps, findings);

  const source = traffic?.judged ? 'traffic' : accessLog?.enabled ? ACCESS_LOG_PROBE : 'health';
  const doc: StarterDoc = {
    service,
    state_dir: stateDir,
    pm2: pm2 === null ? undefined : { app: pm2.app, ...(pm2.home !== undefined ? { home: pm2.home } : {}) },
    health,
    traffic: traffic?.probe,
    accessLog,
    source,
    step,
  };
  const { inferred, todo } = findings;
  const yaml = renderYaml(doc, findings.notes, { inferred, todo });
  await writeStarterConfig(file, yaml, options);
  return { file, yaml, inferred, todo };
}

/** Validates the YAML with the real schema, then writes it; never a file the daemon would refuse. */
async function writeStarterConfig(file: string, yaml: string, options: InitOptions): Promise<void> {
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
}

/** What `init` prints: what was written, what was inferred, what is left to do, what next. */
export function formatInitReport(result: InitResult, out: string): string {
  const lines = [`wrote ${out}`];
  if (result.inferred.length > 0) lines.push('', 'inferred:', ...result.inferred.map((text) => `  ✔ ${text}`));
  if (result.todo.length > 0) lines.push('', 'could not infer (marked TODO in the file):', ...result.todo.map((text) => `  ? ${text}`));
  lines.push('', 'next:', `  release-guard config validate ${out}`, `  release-guard start --config ${out}`);
  return `${lines.join('\n')}\n`;
}

function sanitizeName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128);
  return clean === '' ? 'app' : clean;
}
