/**
 * Chaos scenario "second guard": `release-guard start` run again with the same config (and with
 * another state dir on the same port) while a guard runs, then the running guard killed with -9
 * and started again. Measures how the second start ends, whether the app ever sees two guards'
 * probes, and whether a restart after kill -9 takes the state dir over.
 *
 * The guards are real processes (the built CLI when this runs from dist/, tsx on the sources
 * otherwise); the app is a small HTTP server here that counts the probes it answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { ChaosContext, ChaosRow } from './types.js';

/** Probe interval of the guards here: 5 probes a second from one guard. */
export const PROBE_INTERVAL_MS = 200;

/** An app answering `/health` with its version and counting the requests. */
export interface CountingApp {
  port: number;
  /** Requests answered so far. */
  hits(): number;
  close(): Promise<void>;
}

export async function startCountingApp(): Promise<CountingApp> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version: 'v1' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A guard config probing `appPort` and serving its API on `apiPort`; returns the file's path. */
export async function writeGuardConfig(dir: string, options: { appPort: number; apiPort: number; stateDir?: string }): Promise<string> {
  const stateDir = options.stateDir ?? join(dir, 'state');
  await mkdir(dir, { recursive: true });
  const config = {
    service: 'web',
    state_dir: stateDir,
    server: { host: '127.0.0.1', port: options.apiPort },
    log: { level: 'info', format: 'json' },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${options.appPort}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: `${PROBE_INTERVAL_MS}ms`, fast_interval: `${PROBE_INTERVAL_MS}ms`, fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '2s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: [{ type: 'command', command: ['/bin/true'], timeout: '10s' }] },
    verification: { probe: 'health', passes: 3, timeout: '30s' },
  };
  const file = join(dir, `config-${options.apiPort}-${Math.random().toString(36).slice(2, 8)}.yaml`);
  await writeFile(file, stringify(config));
  return file;
}

/** A guard process and what it printed. */
export interface GuardProcess {
  child: ChildProcess;
  startedAt: number;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal) and when it exited. */
  exited: Promise<{ code: number | null; at: number }>;
}

/** `release-guard start --config FILE` as its own process. */
export function spawnGuard(root: string, configFile: string): GuardProcess {
  // From dist/ the built CLI; from the sources (tests, tsx) the TypeScript entry point.
  const built = fileURLToPath(import.meta.url).endsWith('.js');
  const args = built ? [join(root, 'dist', 'cli', 'main.js')] : ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts')];
  const child = spawn(process.execPath, [...args, 'start', '--config', configFile], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
  return { child, startedAt: Date.now(), stderr: () => stderr, exited };
}

/** Polls the guard's /healthz until it answers 200; false after `timeoutMs`. */
export async function waitHealthy(apiPort: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await fetch(`http://127.0.0.1:${apiPort}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return true;
    await sleep(100);
  }
  return false;
}

/** The lines a guard wrote to stderr that are not JSON log lines: what the CLI said. */
export function cliLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));
}

/** Whether the guard's log says its guard started (probes and tick loop running). */
export function guardStarted(stderr: string): boolean {
  return stderr.split('\n').some((line) => line.includes('"guard starting"'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Probes per second the app received between two readings. */
function rate(from: { hits: number; at: number }, to: { hits: number; at: number }): number {
  return ((to.hits - from.hits) * 1000) / Math.max(1, to.at - from.at);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A second start must end within this. */
const REFUSE_WITHIN_MS = 15_000;

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  const rows: ChaosRow[] = [];
  const app = await startCountingApp();
  const guards: GuardProcess[] = [];
  const reading = () => ({ hits: app.hits(), at: Date.now() });
  try {
    const apiPort = await freePort();
    const config = await writeGuardConfig(join(ctx.workDir, 'a'), { appPort: app.port, apiPort });
    const first = spawnGuard(ctx.root, config);
    guards.push(first);
    if (!(await waitHealthy(apiPort, 30_000))) throw new Error(`the first guard did not become healthy: ${first.stderr().slice(-500)}`);
    await sleep(1000);
    const alone0 = reading();
    await sleep(ctx.quick ? 2000 : 4000);
    const alone = rate(alone0, reading());
    ctx.log(`one guard: ${alone.toFixed(1)} probes/s`);

    // Every second start tried while the first runs: counted together for "acting at once".
    let started = 0;
    let peak = 0;
    const attempts: { input: string; config: string; expect: RegExp }[] = [
      { input: 'second `start`, same config', config, expect: /state_dir .* is in use by another release-guard \(pid \d+/ },
      {
        input: 'second `start`, own state dir, same port',
        config: await writeGuardConfig(join(ctx.workDir, 'b'), { appPort: app.port, apiPort }),
        expect: /cannot listen on 127\.0\.0\.1:\d+: the address is already in use/,
      },
    ];
    for (const attempt of attempts) {
      const before = reading();
      const second = spawnGuard(ctx.root, attempt.config);
      guards.push(second);
      const ended = await Promise.race([second.exited, sleep(REFUSE_WITHIN_MS).then(() => null)]);
      // A second guard that stays up is measured for a while before it is stopped.
      if (ended === null) await sleep(2000);
      const during = rate(before, reading());
      peak = Math.max(peak, during);
      if (guardStarted(second.stderr())) started++;
      const lines = cliLines(second.stderr());
      const ok = ended !== null && ended.code !== 0 && lines.length === 1 && attempt.expect.test(lines[0]!) && first.child.exitCode === null;
      rows.push({
        item: 'second guard on one config: refused',
        input: attempt.input,
        measured:
          ended === null
            ? `still running after ${REFUSE_WITHIN_MS / 1000} s (${during.toFixed(1)} probes/s)`
            : `exit ${ended.code} after ${((ended.at - second.startedAt) / 1000).toFixed(1)} s, ${lines.length} line: ${lines.join(' | ').slice(0, 160)}`,
        target: 'exit ≠ 0, one line, first guard still running',
        ok,
      });
      if (ended === null) second.child.kill('SIGKILL');
    }
    const acting = 1 + started;
    rows.push({
      item: 'guards acting at once',
      input: 'two second starts beside a running guard',
      measured: `${acting} (probe rate ${peak.toFixed(1)}/s during the second starts vs ${alone.toFixed(1)}/s alone)`,
      target: 'never 2',
      ok: acting === 1 && peak < alone * 1.5,
    });

    // kill -9 of the holder: the lock dies with it, a new start takes the state dir at once.
    first.child.kill('SIGKILL');
    await first.exited;
    const restarted = spawnGuard(ctx.root, config);
    guards.push(restarted);
    const healthy = await waitHealthy(apiPort, 30_000);
    const tookMs = Date.now() - restarted.startedAt;
    rows.push({
      item: 'state dir lock after kill -9 of its holder',
      input: 'kill -9 of the running guard, then `start` with the same config',
      measured: healthy ? `running after ${(tookMs / 1000).toFixed(1)} s` : `not running after 30 s: ${cliLines(restarted.stderr()).join(' | ').slice(0, 160)}`,
      target: 'starts (no stale lock)',
      ok: healthy,
    });
    return rows;
  } finally {
    for (const guard of guards) if (guard.child.exitCode === null && guard.child.signalCode === null) guard.child.kill('SIGKILL');
    await Promise.all(guards.map((g) => g.exited));
    await app.close();
  }
}
