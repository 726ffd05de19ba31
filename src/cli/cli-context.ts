/**
 * What every command group of the `release-guard` program shares: where it writes, the
 * environment, the default config, how a client command reaches the daemon, and the exit code
 * a command sets. Built once by `main()` and handed to each `commands/*.ts` registrar.
 */
import type { Command } from 'commander';
import { ApiClient, type ControlSummary } from '../api/client.js';
import { readToken } from '../api/token.js';
import { loadConfig } from '../config/load.js';
import { versionProblem } from '../core/versions.js';
import { GuardError } from '../errors.js';

/** Used when neither `--config` nor RELEASE_GUARD_CONFIG is given. */
export const DEFAULT_CONFIG_PATH = '/etc/release-guard/config.yaml';
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

/** The options every client command takes. */
export interface ClientOptions {
  config?: string;
  url?: string;
}

export interface CliContext {
  program: Command;
  env: NodeJS.ProcessEnv;
  out(text: string): void;
  err(text: string): void;
  /** `out` with a trailing newline added when missing. */
  print(text: string): void;
  color: boolean;
  /** The caller gave its own `out`: never draw in place (tests, pipes). */
  outReplaced: boolean;
  /** `--config`, else RELEASE_GUARD_CONFIG, else DEFAULT_CONFIG_PATH. */
  defaultConfig(): string;
  /** The help text of a `--config` option. */
  configHelp: string;
  /** The daemon's address and, for control requests, the token. */
  connect(opts: ClientOptions, withToken: boolean): Promise<ApiClient>;
  /** A subcommand of the program with the --config/--url pair every client command takes. */
  clientCommand(name: string, description: string): Command;
  /** A control command's answer: one line for people, or the daemon's summary as it is (--json). */
  printSummary(summary: ControlSummary, what: string, json: boolean | undefined): void;
  /** The exit code `main()` resolves to when the command returns normally. */
  setExitCode(code: number): void;
}

/** Colour on a terminal unless NO_COLOR is set to something: an empty NO_COLOR counts as unset (no-color.org). */
export function colorWanted(tty: boolean, env: NodeJS.ProcessEnv): boolean {
  return tty && !env.NO_COLOR;
}

export function createCliContext(program: Command, io: Partial<CliIo>, setExitCode: (code: number) => void): CliContext {
  const env = io.env ?? process.env;
  const out = io.out ?? ((text: string) => void process.stdout.write(text));
  const err = io.err ?? ((text: string) => void process.stderr.write(text));
  const color = io.color ?? colorWanted(process.stdout.isTTY === true, env);
  const print = (text: string) => out(text.endsWith('\n') ? text : `${text}\n`);
  const configHelp = `config file (default: $RELEASE_GUARD_CONFIG, else ${DEFAULT_CONFIG_PATH})`;

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

  return {
    program,
    env,
    out,
    err,
    print,
    color,
    outReplaced: io.out !== undefined,
    defaultConfig: () => env.RELEASE_GUARD_CONFIG ?? DEFAULT_CONFIG_PATH,
    configHelp,
    connect,
    clientCommand,
    printSummary,
    setExitCode,
  };
}

/** A version typed on the command line, checked before anything is sent (the daemon checks it too). */
export function checkVersion(version: string, label = ''): void {
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

/** The server's listen address as a URL to connect to: a wildcard address means this host. */
function urlFor(host: string, port: number): string {
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host;
  const bracketed = target.includes(':') && !target.startsWith('[') ? `[${target}]` : target;
  return `http://${bracketed}:${port}`;
}
