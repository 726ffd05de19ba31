#!/usr/bin/env node
/**
 * The `release-guard` command: `start` runs the daemon in the foreground; the client commands
 * (`status`, `history`, `release`, `rollback`, `promote`, `pause`, `resume`) talk to a running
 * daemon over its HTTP API; `config validate` checks a file without starting anything; `ops rules`
 * and `completion` print the alert rules and a shell completion script. Every command that prints
 * takes `--json` (stdout one JSON document; progress and errors on stderr).
 *
 * A plain `env node` first line: `env -S` is not portable (BusyBox). The V8 flags that keep the
 * daemon's RSS steady are given where the daemon really runs: the systemd unit's ExecStart and
 * the pm2 ecosystem file (systemd/release-guard.service says why).
 *
 * Exit codes: 0 done, 1 failed (a GuardError: the message says why, no stack trace), 2 usage error
 * (commander's, or a bad --url); `check` adds 3 inconclusive, `release --wait` 3 and 4.
 * Anything other than a GuardError is a bug and is printed with its stack.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError } from 'commander';
import { ApiClient, type ControlSummary } from '../api/client.js';
import { waitForRelease } from './release-wait.js';
import { readToken } from '../api/token.js';
import { loadConfig } from '../config/load.js';
import { GuardError } from '../errors.js';
import { versionProblem } from '../core/versions.js';
import { journalError } from '../journal.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { formatHistory, formatStatus, formatVerdicts } from './format.js';

/** Used when neither `--config` nor RELEASE_GUARD_CONFIG is given. */
export const DEFAULT_CONFIG_PATH = '/etc/release-guard/config.yaml';
/** `check`'s exit code when a rule has no data: distinct from 2, the usage error of every command. */
export const CHECK_INCONCLUSIVE_EXIT = 3;
/** Where the token comes from with `--url` and no config. */
const DEFAULT_TOKEN_ENV = 'RELEASE_GUARD_TOKEN';

/** Where the CLI writes and what it reads; tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Colour the human output (default: stdout is a terminal and NO_COLOR is not set). */
  color: boolean;
}

interface ClientOptions {
  config?: string;
  url?: string;
}

/** Colour on a terminal unless NO_COLOR is set to something: an empty NO_COLOR counts as unset (no-color.org). */
export function colorWanted(tty: boolean, env: NodeJS.ProcessEnv): boolean {
  return tty && !env.NO_COLOR;
}

/**
 * Runs the CLI with `argv` (the arguments after the program name, i.e. `process.argv.slice(2)`)
 * and resolves to the exit code. Never calls process.exit.
 */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const env = io.env ?? process.env;
  const out = io.out ?? ((text: string) => void process.stdout.write(text));
  const err = io.err ?? ((text: string) => void process.stderr.write(text));
  const color = io.color ?? colorWanted(process.stdout.isTTY === true, env);
  const print = (text: string) => out(text.endsWith('\n') ? text : `${text}\n`);

  let exitCode = 0;
  const program = new Command('release-guard');
  // Before any .command(): subcommands inherit these settings.
  program
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err })
    .description('Guards each release window, rolls a bad release back automatically, verifies and records it.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run release-guard --help for usage)');

  const defaultConfig = () => env.RELEASE_GUARD_CONFIG ?? DEFAULT_CONFIG_PATH;
  const configHelp = `config file (default: $RELEASE_GUARD_CONFIG, else ${DEFAULT_CONFIG_PATH})`;

  /** The daemon's address and, for control requests, the token. */
  const connect = async (opts: ClientOptions, withToken: boolean): Promise<ApiClient> => {
    const explicitConfig = opts.config ?? env.RELEASE_GUARD_CONFIG;
    if (opts.url !== undefined) {
      const baseUrl = checkUrl(opts.url);
      // --url alone: the token comes from the environment; with a config, from its server section.
      const server = explicitConfig === undefined ? { token_env: DEFAULT_TOKEN_ENV } : (await loadConfig(explicitConfig)).server;
      return new ApiClient({ baseUrl, token: withToken ? await readToken(server, env) : null });
    }
    const file = explicitConfig ?? DEFAULT_CONFIG_PATH;
    const { server } = await loadConfig(file);
    if (server.port === 0) {
      throw new GuardError(`${file}: server.port is 0 (any free port), so the daemon's address is not known; pass --url http://HOST:PORT`, 'api_address');
    }
    return new ApiClient({ baseUrl: urlFor(server.host, server.port), token: withToken ? await readToken(server, env) : null });
  };

  const clientCommand = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .option('-c, --config <file>', `${configHelp}; gives the daemon's address and token`)
      .option('--url <url>', 'daemon address, e.g. http://127.0.0.1:9464 (overrides the config; the token then comes from $RELEASE_GUARD_TOKEN unless --config is given)');

  /** A control command's answer: one line for people, or the daemon's summary as it is (--json). */
  const printSummary = (summary: ControlSummary, what: string, json: boolean | undefined) => {
    if (json) {
      print(JSON.stringify(summary, null, 2));
      return;
    }
    const parts = [`phase ${summary.phase}`];
    if (summary.release !== null) parts.push(`release ${summary.release}`);
    if (summary.stable !== null) parts.push(`stable ${summary.stable}`);
    if (summary.paused) parts.push('paused');
    print(`${what}: ok (${parts.join(', ')})`);
  };

  program
    .command('start')
    .description('run the daemon in the foreground (systemd, pm2 or a terminal)')
    .option('-c, --config <file>', configHelp)
    .action(async (opts: { config?: string }) => {
      // Loaded only here, so the client commands do not pull in pm2, probes and strategies.
      const daemon = await import('../shell/daemon.js');
      await daemon.runDaemon({ configPath: opts.config ?? defaultConfig() });
    });

  clientCommand('status', 'show the state, the release under guard, every rule and the last rollback')
    .option('--json', 'print the raw JSON view (stable field names, for scripts); with --watch, one line per refresh')
    .option('-w, --watch', 'refresh until Ctrl-C (in place on a terminal, repeated otherwise)')
    .option('--interval <duration>', 'refresh interval with --watch (e.g. 500ms, 2s)', '2s')
    .action(async (opts: ClientOptions & { json?: boolean; watch?: boolean; interval: string }) => {
      const client = await connect(opts, false);
      if (!opts.watch) {
        const view = await client.status();
        print(opts.json ? JSON.stringify(view, null, 2) : formatStatus(view, { color }));
        return;
      }
      const intervalMs = parseDuration(opts.interval);
      if (intervalMs === null || intervalMs < 100) {
        throw new GuardError(`--interval ${JSON.stringify(opts.interval)} is not a duration of at least 100ms; use e.g. 500ms or 2s`, 'usage');
      }
      // In place only on a real terminal we write to ourselves; tests and pipes get plain frames.
      const tty = io.out === undefined && process.stdout.isTTY === true && !opts.json;
      await watchStatus(client, { intervalMs, tty, json: opts.json === true, color, out, err });
    });

  clientCommand('history', 'show the deployments and rollbacks; `history show ID` prints one rollback record')
    .argument('[show]', '"show" to print one rollback record')
    .argument('[id]', 'the record id (from `history`)')
    .option('--json', 'print the raw JSON view')
    .option('--limit <n>', 'rollback records per page (1-500, default 50)')
    .option('--before <time>', 'only records that finished before this time (the "next" a page printed)')
    .action(async (show: string | undefined, id: string | undefined, opts: ClientOptions & { json?: boolean; limit?: string; before?: string }) => {
      if (show === undefined) {
        const limit = opts.limit === undefined ? undefined : Number(opts.limit);
        if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 500)) throw new GuardError(`--limit ${opts.limit} is not allowed: use a whole number from 1 to 500`, 'usage');
        const view = await (await connect(opts, false)).history({ ...(limit !== undefined ? { limit } : {}), ...(opts.before !== undefined ? { before: opts.before } : {}) });
        print(opts.json ? JSON.stringify(view, null, 2) : formatHistory(view, { color }));
        return;
      }
      if (show !== 'show' || id === undefined) throw new GuardError('usage: release-guard history show ID (ids are listed by release-guard history)', 'usage');
      // Records are read from the state dir, so they can be read while the daemon is down. The
      // store is loaded only here (a redis store brings ioredis), as the daemon only by `start`.
      const cfg = await loadConfig(opts.config ?? defaultConfig());
      let record;
      if (cfg.store.type === 'redis') {
        const { openStore } = await import('../store/index.js');
        const opened = await openStore(cfg);
        record = await opened.store.readRecord(id).finally(() => opened.close());
      } else {
        const { FileStore } = await import('../store/file-store.js');
        record = await new FileStore(cfg.state_dir).readRecord(id);
      }
      const where = cfg.store.type === 'redis' ? `the redis store (${cfg.store.host}:${cfg.store.port})` : `${cfg.state_dir}/rollbacks`;
      if (!record) throw new GuardError(`no rollback record "${id}" in ${where}; release-guard history lists them`, 'not_found');
      print(opts.json ? JSON.stringify(record.json, null, 2) : record.markdown);
    });

  clientCommand('preflight', 'check that the running release can be rolled back now (exit 1 when not)')
    .option('--json', 'print the raw JSON view')
    .option('--fresh', 'run the checks now instead of reading the result the daemon keeps for server.preflight_cache (needs the token)')
    .action(async (opts: ClientOptions & { json?: boolean; fresh?: boolean }) => {
      const view = await (await connect(opts, opts.fresh === true)).preflight({ fresh: opts.fresh === true });
      if (opts.json) print(JSON.stringify(view, null, 2));
      else {
        const lines = [
          `rollback ${view.from ?? '?'} -> ${view.to ?? '?'}: ${view.ready ? 'READY' : 'NOT READY'} (checked ${view.checkedAt}${opts.fresh ? '' : '; --fresh to check now'})`,
          ...view.problems.map((p) => `  ✖ ${p}`),
        ];
        for (const step of view.steps) {
          lines.push(`  ${step.problems.length === 0 ? '✔' : '✖'} step ${step.index + 1} ${step.description}`, ...step.problems.map((p) => `      ${p}`));
        }
        print(lines.join('\n'));
      }
      exitCode = view.ready ? 0 : 1;
    });

  clientCommand('release', 'open a release window for <version> by hand (when it is not detected)')
    .argument('<version>', 'the version now deployed')
    .option('--by <name>', 'who deployed it (default: api)')
    .option('--wait', 'follow the window and exit with its outcome: 0 promoted, 1 rolled back, 3 rollback failed, 4 no verdict')
    .option('--timeout <duration>', 'with --wait: give up (exit 4) after this long, e.g. 20m')
    .option('--json', 'print the daemon\'s summary as JSON; with --wait, the outcome as one object {version, outcome, code, message}')
    .action(async (version: string, opts: ClientOptions & { by?: string; wait?: boolean; timeout?: string; json?: boolean }) => {
      checkVersion(version);
      const client = await connect(opts, true);
      if (!opts.wait) {
        printSummary(await client.release(version, opts.by), `release ${version}`, opts.json);
        return;
      }
      const timeoutMs = opts.timeout === undefined ? null : parseDuration(opts.timeout);
      if (timeoutMs === null && opts.timeout !== undefined) {
        throw new GuardError(`--timeout ${JSON.stringify(opts.timeout)} is not a duration; use e.g. 20m or 90s`, 'usage');
      }
      exitCode = await waitForRelease(client, version, { by: opts.by, timeoutMs, json: opts.json === true, out: print, err });
    });

  clientCommand('rollback', 'roll back now, to the previous stable version or --to a given one')
    .requiredOption('--reason <text>', 'why (kept in the rollback record; 1-500 characters)')
    .option('--to <version>', 'target version (default: the previous stable version)')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the daemon\'s summary as JSON')
    .action(async (opts: ClientOptions & { reason: string; to?: string; by?: string; json?: boolean }) => {
      if (opts.to !== undefined) checkVersion(opts.to, '--to ');
      const client = await connect(opts, true);
      printSummary(await client.rollback({ to: opts.to, reason: opts.reason, by: opts.by }), 'rollback', opts.json);
    });

  clientCommand('drill', 'rehearse a rollback: back to the previous version and forward again, timed and recorded')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the drill record as JSON')
    .action(async (opts: ClientOptions & { by?: string; json?: boolean }) => {
      const client = await connect(opts, true);
      err('drill running: rollback to the previous version, verification, roll forward, verification...\n');
      const record = await client.drill(opts.by);
      if (opts.json) print(JSON.stringify(record, null, 2));
      else {
        const lines = [`drill ${record.ok ? 'PASSED' : 'FAILED'} (${record.id})`];
        for (const leg of record.legs) {
          lines.push(`  ${leg.from} -> ${leg.to}: ${leg.ok ? 'ok' : `FAILED: ${leg.error ?? ''}`}  plan ${leg.planMs}ms, verified after ${leg.verifyMs}ms, total ${leg.totalMs}ms`);
        }
        print(lines.join('\n'));
      }
      exitCode = record.ok ? 0 : 1;
    });

  clientCommand('veto', 'stop a rollback that is waiting out its veto window (rollback.veto)')
    .option('--reason <text>', 'why (kept in the log and notifications)')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the daemon\'s summary as JSON')
    .action(async (opts: ClientOptions & { reason?: string; by?: string; json?: boolean }) => {
      const client = await connect(opts, true);
      printSummary(await client.veto({ reason: opts.reason, by: opts.by }), 'veto', opts.json);
    });

  for (const [action, description] of [
    ['promote', 'end the release window now and accept the release as stable'],
    ['pause', 'stop acting on breaches (they are still reported) until resume'],
    ['resume', 'act on breaches again'],
  ] as const) {
    clientCommand(action, description)
      .option('--by <name>', 'who asks (default: api)')
      .option('--json', 'print the daemon\'s summary as JSON')
      .action(async (opts: ClientOptions & { by?: string; json?: boolean }) => {
        const client = await connect(opts, true);
        printSummary(await client[action](opts.by), action, opts.json);
      });
  }

  program
    .command('init')
    .description('write a starter config for a service after looking at what runs (pm2 app, health URL, releases dir, Prometheus, access log)')
    .option('--pm2-app <name>', 'the pm2 app to guard: its script path tells the deploy layout (releases strategy) or pm2 restart')
    .option('--pm2-home <dir>', 'PM2_HOME of the pm2 running the app (default: $PM2_HOME, else ~/.pm2)')
    .option('--health-url <url>', 'the app\'s health endpoint; a version in its JSON is how releases are detected')
    .option('--prometheus-url <url>', 'a Prometheus server with the app\'s request metrics (adds a traffic probe)')
    .option('--releases-dir <dir>', 'a Capistrano deploy root (releases/<version>/ + current symlink), if not found through pm2')
    .option('--access-log <path>', "the web server's access log (default: /var/log/nginx/access.log when it exists); adds an access_log traffic probe")
    .option('--service <name>', 'service name (default: the pm2 app name)')
    .option('--state-dir <dir>', 'where the guard keeps its state (default: /var/lib/release-guard as root, else ~/.local/state/release-guard/<service>)')
    .option('-o, --out <file>', 'the config file to write', 'release-guard.yaml')
    .option('--force', 'overwrite the file if it exists')
    .option('--json', 'print what was written and inferred as JSON: {file, inferred, todo}')
    .action(async (opts: { pm2App?: string; pm2Home?: string; healthUrl?: string; prometheusUrl?: string; releasesDir?: string; accessLog?: string; service?: string; stateDir?: string; out: string; force?: boolean; json?: boolean }) => {
      const { defaultInitDeps, formatInitReport, runInit } = await import('./init.js');
      const { json, ...initOptions } = opts;
      const result = await runInit({ ...initOptions, force: opts.force === true }, defaultInitDeps(env));
      // The YAML itself is in the file; the JSON says where and what was found.
      print(json ? JSON.stringify({ file: result.file, inferred: result.inferred, todo: result.todo }, null, 2) : formatInitReport(result, opts.out));
    });

  const config = program.command('config').description('work with config files');
  config
    .command('validate')
    .description('check a config file: prints FILE: OK, or every problem as path: message')
    .argument('<file>', 'the YAML config file')
    .option('--json', 'print {"file", "ok": true} when valid (problems still go to stderr with exit 1)')
    .action(async (file: string, opts: { json?: boolean }) => {
      await loadConfig(file);
      print(opts.json ? JSON.stringify({ file, ok: true }) : `${file}: OK`);
    });

  program
    .command('check')
    .description('evaluate every rule once, for CI/CD gates: exit 0 pass, 1 breach, 3 inconclusive (2 is a usage error)')
    .option('-c, --config <file>', configHelp)
    .option('--for <duration>', 'how long to probe before judging (e.g. 30s, 2m)', '30s')
    .option('--json', 'print the verdicts as JSON')
    .action(async (opts: { config?: string; for: string; json?: boolean }) => {
      const forMs = parseDuration(opts.for);
      if (forMs === null || forMs <= 0) throw new GuardError(`--for ${JSON.stringify(opts.for)} is not a duration; use e.g. 30s or 2m`, 'usage');
      const file = opts.config ?? defaultConfig();
      const cfg = await loadConfig(file);
      const { runCiGate } = await import('../shell/ci-gate.js');
      const { systemClock } = await import('../shell/clock.js');
      const needsPm2 = cfg.probes.some((p) => p.type === 'process' && p.pm2_app !== undefined);
      const pm2 = needsPm2 ? new (await import('../pm2/pm2-api-client.js')).Pm2ApiClient(cfg.pm2?.home ? { home: cfg.pm2.home } : {}) : undefined;
      if (!opts.json) err(`checking ${cfg.service} for ${formatDuration(forMs)} (${cfg.probes.map((p) => p.name).join(', ')})...\n`);
      try {
        const result = await runCiGate(cfg, { forMs, clock: systemClock, ...(pm2 ? { pm2 } : {}) });
        if (opts.json) print(JSON.stringify(result, null, 2));
        else {
          const samples = Object.entries(result.samples).map(([name, n]) => `${name} ${n}`).join(', ');
          print(
            `${cfg.service}: ${result.outcome.toUpperCase()}  (${samples} samples; baseline ${result.baselineVersion ?? 'none'})\n` +
              formatVerdicts(result.verdicts, { color }).join('\n'),
          );
        }
        // 3, not 2: a gate must tell "no data" from a mistyped command (commander's usage error is 2).
        exitCode = result.outcome === 'pass' ? 0 : result.outcome === 'fail' ? 1 : CHECK_INCONCLUSIVE_EXIT;
      } finally {
        await pm2?.disconnect();
      }
    });

  const ops = program.command('ops').description('print the ops kit that ships with release-guard, fitted to this site');
  ops
    .command('rules')
    .description('print the Prometheus alert rules (prometheus/release-guard.rules.yml), runbook links made absolute with --runbook-base, the scrape job renamed with --job')
    .option('--runbook-base <url>', 'where docs/operations.md is published, e.g. https://wiki.example.com/release-guard/ops (each alert\'s #anchor is added), or a URL with {alert} for one page per alert; default: the relative docs/operations.md links')
    .option('--job <name>', 'the scrape job the guard\'s /metrics is collected under (job_name in the Prometheus scrape config); default: release-guard')
    .action(async (opts: { runbookBase?: string; job?: string }) => {
      const { opsRules } = await import('./ops-rules.js');
      out(await opsRules(opts));
    });

  program
    .command('completion')
    .description('print a shell completion script: source <(release-guard completion bash), or release-guard completion zsh > "${fpath[1]}/_release-guard"')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .action(async (shell: 'bash' | 'zsh') => {
      // Generated from this very program, so it lists every command and option there is.
      const { completionScript } = await import('./completion.js');
      out(completionScript(program, shell));
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    // Usage errors and --help/--version: commander has already printed what needs printing.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof GuardError) {
      err(journalError(`release-guard: ${error.message}\n${error.hint === undefined ? '' : `hint: ${error.hint}\n`}`, env));
      return error.code === 'usage' ? 2 : 1;
    }
    err(journalError(`release-guard: unexpected error; this is a bug, please report it with what follows:\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, env));
    return 1;
  }
}

/** A version typed on the command line, checked before anything is sent (the daemon checks it too). */
function checkVersion(version: string, label = ''): void {
  const problem = versionProblem(version);
  if (problem) throw new GuardError(`${label}${problem}`, 'usage');
}

/** An http(s) base URL, or a GuardError saying what is expected. */
function checkUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GuardError(`--url ${JSON.stringify(text)} is not a URL; expected e.g. http://127.0.0.1:9464`, 'usage');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new GuardError(`--url ${JSON.stringify(text)} must be an http:// or https:// URL`, 'usage');
  }
  return url.href.replace(/\/+$/, '');
}

interface WatchOptions {
  intervalMs: number;
  /** Redraw in place (a terminal) rather than print frame after frame. */
  tty: boolean;
  /** One compact JSON view per line. */
  json: boolean;
  color: boolean;
  out(text: string): void;
  err(text: string): void;
}

/**
 * `status --watch`: asks /status every interval until SIGINT or SIGTERM (then resolves, exit 0).
 * On a terminal each frame is drawn over the last one (cursor home, each line cleared to its end,
 * the rest of the screen cleared: no flicker, no scrollback flood); elsewhere frames follow one
 * another under a time header. A daemon that does not answer is shown as such and asked again:
 * the watch outlives a daemon restart.
 */
async function watchStatus(client: ApiClient, options: WatchOptions): Promise<void> {
  const { out, err } = options;
  const CSI = '\u001b[';
  const grey = (text: string) => (options.color ? `${CSI}90m${text}${CSI}0m` : text);
  const stop = new AbortController();
  const stopped = new Promise<null>((resolve) => stop.signal.addEventListener('abort', () => resolve(null), { once: true }));
  const onSignal = () => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (options.tty) out(`${CSI}?25l${CSI}2J`); // hide the cursor, clear the screen once
  try {
    while (!stop.signal.aborted) {
      let body = '';
      let failure: string | null = null;
      try {
        const view = await Promise.race([client.status(), stopped]);
        if (view === null) break;
        body = options.json ? `${JSON.stringify(view)}\n` : formatStatus(view, { color: options.color });
      } catch (error) {
        if (!(error instanceof GuardError)) throw error;
        failure = `release-guard: ${error.message}`;
      }
      const stamp = `${new Date().toISOString().slice(11, 19)}Z`;
      const every = formatDuration(options.intervalMs);
      if (options.json) {
        if (failure === null) out(body);
        else err(`${failure}\n`);
      } else if (options.tty) {
        const lines = failure === null ? body.replace(/\n$/, '').split('\n') : [failure, grey('(asking again)')];
        lines.push('', grey(`${failure === null ? 'updated' : 'no answer at'} ${stamp}, every ${every}; Ctrl-C to stop`));
        out(`${CSI}H${lines.map((line) => `${line}${CSI}K`).join('\n')}\n${CSI}J`);
      } else {
        out(`${grey(`--- ${stamp} (every ${every}; Ctrl-C to stop) ---`)}\n`);
        if (failure === null) out(body);
        else err(`${failure}\n`);
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, options.intervalMs))), stopped]);
      clearTimeout(timer);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (options.tty) out(`${CSI}?25h`); // the cursor back
  }
}

/** The server's listen address as a URL to connect to: a wildcard address means this host. */
function urlFor(host: string, port: number): string {
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host;
  const bracketed = target.includes(':') && !target.startsWith('[') ? `[${target}]` : target;
  return `http://${bracketed}:${port}`;
}

function packageVersion(): string {
  try {
    // src/cli/main.ts and dist/cli/main.js are both two levels below package.json.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // The npm bin is a symlink to this file.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`release-guard: unexpected error; this is a bug:\n${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
