/**
 * What the issue-13 chaos scenarios of items 3, 4, 6-9 and 11 share: an app whose version is a
 * file (a failing version answers 500, a rollback step writes the file back), the guard config
 * around it, the built guard started as its own process (bench/guard.ts), and the few
 * readings the scenarios take of what the guard left (state, records, Markdown, leaks).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { freePort } from '../../test/fixtures/demo-app/releases.js';
import { GuardProcess, TOKEN_ENV } from '../guard.js';

/** An app answering /health with the version in `versionFile`; versions in `failing` answer 500. */
export interface FileVersionApp {
  url: string;
  versionFile: string;
  set(version: string): Promise<void>;
  close(): Promise<void>;
}

export async function fileVersionApp(dir: string, failing: readonly string[] = ['v2']): Promise<FileVersionApp> {
  await mkdir(dir, { recursive: true });
  const versionFile = path.join(dir, 'app-version');
  await writeFile(versionFile, 'v1');
  const server = createServer((_req, res) => {
    void readFile(versionFile, 'utf8').then((text) => {
      const version = text.trim();
      res.writeHead(failing.includes(version) ? 500 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`,
    versionFile,
    set: (version) => writeFile(versionFile, version),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The rollback step that puts the app back on {to}: what a deploy script's "switch back" does. */
export const switchBack = (app: FileVersionApp): Record<string, unknown> => ({
  type: 'command',
  command: ['/bin/sh', '-c', 'printf "%s" "$1" > "$0"', app.versionFile, '{to}'],
  timeout: '10s',
});

/** A guard config for the app at `healthUrl`: fast probes, a 3-failure health rule, the given steps; `extra` overrides keys. */
export function chaosConfig(options: { stateDir: string; port: number; healthUrl: string; steps: unknown[]; extra?: Record<string, unknown> }): Record<string, unknown> {
  return {
    service: 'web',
    state_dir: options.stateDir,
    server: { host: '127.0.0.1', port: options.port, token_env: TOKEN_ENV },
    log: { level: 'debug', format: 'json' },
    probes: [{ name: 'health', type: 'http', url: options.healthUrl, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '1s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: options.steps },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
    ...options.extra,
  };
}

/** Starts the built guard on a free port with the config `build(port)` makes, in `dir`. */
export async function startChaosGuard(
  dir: string,
  build: (port: number) => Record<string, unknown>,
  env: NodeJS.ProcessEnv = {},
  launch: Parameters<typeof GuardProcess.start>[3] = {},
): Promise<GuardProcess> {
  await mkdir(dir, { recursive: true });
  return GuardProcess.start(dir, build(await freePort()), env, launch);
}

/** What the scenarios read of a guard's /status (with the redis store its state is not in state.json). */
export interface StatusReading {
  phase: string;
  stable: string | null;
  release: { version: string } | null;
  lease?: { leader: boolean; holder: string | null };
}

/** GET /status; null when the guard does not answer. */
export async function guardStatus(guard: GuardProcess): Promise<StatusReading | null> {
  try {
    return (await (await fetch(`${guard.url}/status`, { signal: AbortSignal.timeout(2000) })).json()) as StatusReading;
  } catch {
    return null;
  }
}

/** `startChaosGuard` in `dir/guard` with `chaosConfig` (state in `dir/state`) for the app at `healthUrl`. */
export function startAppGuard(dir: string, healthUrl: string, steps: unknown[], extra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Promise<GuardProcess> {
  return startChaosGuard(path.join(dir, 'guard'), (port) => chaosConfig({ stateDir: path.join(dir, 'state'), port, healthUrl, steps, extra }), env);
}

/** The record files in `stateDir/rollbacks`, by kind (temp files of an unfinished write included). */
export async function recordFiles(stateDir: string): Promise<{ json: string[]; md: string[]; tmp: string[] }> {
  const names = await readdir(path.join(stateDir, 'rollbacks')).catch(() => [] as string[]);
  const full = (n: string) => path.join(stateDir, 'rollbacks', n);
  return {
    json: names.filter((n) => n.endsWith('.json')).map(full),
    md: names.filter((n) => n.endsWith('.md')).map(full),
    tmp: names.filter((n) => n.includes('.tmp')).map(full),
  };
}

/**
 * What is wrong with a record's Markdown, by CommonMark's fence rules (a fence closes only on a
 * run of backticks at least as long as the one that opened it): the hostile log lines (three
 * backticks, a "## …" line) not kept together inside one code block, one of them read as a heading
 * of the record, or a code block left open at the end (swallowing the rest of the record).
 */
export function markdownProblems(markdown: string, hostile: readonly string[]): string[] {
  const problems: string[] = [];
  const blocks: string[][] = [];
  const headings: string[] = [];
  let open = 0;
  for (const line of markdown.split('\n')) {
    const closing = /^(`{3,})\s*$/.exec(line)?.[1]?.length;
    if (open > 0 && closing !== undefined && closing >= open) open = 0;
    else if (open > 0) blocks.at(-1)!.push(line);
    else if (/^(`{3,})[^`]*$/.test(line)) {
      open = /^`+/.exec(line)![0].length;
      blocks.push([]);
    } else if (/^#{1,6} /.test(line)) headings.push(line);
  }
  if (open > 0) problems.push('a code block is still open at the end');
  for (const line of hostile) if (headings.includes(line)) problems.push(`the log line ${JSON.stringify(line)} became a heading of the record`);
  const together = blocks.some((block) => block.some((_, i) => hostile.every((h, k) => block[i + k] === h)));
  if (!together) problems.push(`the log lines ${hostile.map((h) => JSON.stringify(h)).join(', ')} are not together inside one code block`);
  return problems;
}

/** Where each secret appears among `places`: "<secret name> in <place>" per leak. */
export function leaksOf(secrets: Record<string, string>, places: readonly (readonly [where: string, text: string])[]): string[] {
  const leaks: string[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    for (const [where, text] of places) if (text.includes(secret)) leaks.push(`${name} in ${where}`);
  }
  return leaks;
}
