/**
 * Process plumbing for the benchmark: children that cannot outlive it, bounded waits, and the
 * CPU and memory of a process read from /proc.
 *
 * Every child is spawned through `setpriv --pdeathsig KILL` when util-linux has it, so the kernel
 * kills it if the bench dies without running any hook; `process.on('exit')` SIGKILLs whatever is
 * still tracked; pm2 daemons (detached by design) are registered with `trackPm2Home` and killed
 * the same way, with their apps.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs: number, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** Rejects with a clear message when `work` takes longer than `ms`. */
export async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: hard timeout after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/local/bin', '/bin'];

/** The first of `names` found on PATH or in the sbin directories, or undefined. */
export function findBinary(...names: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

// ---- children that never outlive the bench

const children = new Set<ChildProcess>();
const pm2Homes = new Set<string>();
const tempDirs = new Set<string>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', () => {
    for (const child of children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    for (const home of pm2Homes) killPm2HomeSync(home);
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Removes `dir` at exit if nobody did before. */
export function trackTempDir(dir: string): void {
  installExitHook();
  tempDirs.add(dir);
}
export function untrackTempDir(dir: string): void {
  tempDirs.delete(dir);
}

/** A pm2 daemon with this PM2_HOME is killed (with its apps) at exit if still running. */
export function trackPm2Home(home: string): void {
  installExitHook();
  pm2Homes.add(home);
}
export function untrackPm2Home(home: string): void {
  pm2Homes.delete(home);
}

/** Last resort: SIGKILL the apps (pids/*.pid) and the daemon (pm2.pid) of a PM2_HOME. */
export function killPm2HomeSync(home: string): void {
  const pids: number[] = [];
  const read = (file: string) => {
    const pid = Number.parseInt(readFileSafe(file), 10);
    if (Number.isInteger(pid) && pid > 1) pids.push(pid);
  };
  try {
    for (const name of readdirSync(path.join(home, 'pids'))) read(path.join(home, 'pids', name));
  } catch {
    // no pids directory
  }
  read(path.join(home, 'pm2.pid'));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const setpriv = findBinary('setpriv');

/** Spawns a child that dies with the bench (pdeathsig) and is SIGKILLed at exit if still running. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  installExitHook();
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, [...args]];
  const child = spawn(cmd, argv, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child: ChildProcess | null | undefined, graceMs = 5000): Promise<void> {
  if (!child || exited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 5000);
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a program without a shell; never throws for a non-zero exit (see `code`). */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      [...args],
      { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 32 * 1024 * 1024, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr || (error && code !== 0 ? error.message : '')), code });
      },
    );
  });
}

/** Like `run`, but throws with the output's tail on a non-zero exit. */
export async function runOk(command: string, args: readonly string[], options: Parameters<typeof run>[2] = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${path.basename(command)} ${args.slice(0, 3).join(' ')} failed (exit ${result.code}):\n${tail}`);
  }
  return result.stdout;
}

// ---- /proc

/** USER_HZ: clock ticks per second of /proc/<pid>/stat CPU times (100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface ProcReading {
  at: number;
  /** user + system CPU seconds so far. */
  cpuSeconds: number;
  rssBytes: number;
}

export async function readProc(pid: number): Promise<ProcReading | null> {
  try {
    const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
    // Fields after the command name (which may contain spaces) start at its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const rss = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return { at: Date.now(), cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: rss ? Number(rss[1]) * 1024 : 0 };
  } catch {
    return null;
  }
}
