/**
 * A throwaway pm2 for integration tests: its own PM2_HOME (so tests never touch the user's pm2
 * or each other's), its own deploy directory, and helpers to lay out Capistrano-style releases of
 * the demo app (test/fixtures/demo-app/server.cjs). Always call `cleanup()` (in afterAll/afterEach), which kills
 * that pm2 daemon and its apps and removes both directories.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Pm2ApiClient } from '../../src/pm2/pm2-api-client.js';

// The demo app's releases are laid out by the same code the demo and the benchmark use.
export { buildRelease, DEMO_APP, freePort, pointCurrent, type ReleaseManifest } from '../fixtures/demo-app/releases.js';

export interface Pm2Sandbox {
  /** PM2_HOME of this sandbox's daemon. */
  home: string;
  client: Pm2ApiClient;
  /** Deploy root: `releases/<version>/` and the `current` symlink go here. */
  dir: string;
  /** Deletes every app, kills the daemon, disconnects and removes both directories. Idempotent. */
  cleanup(): Promise<void>;
}

/** pm2's unix sockets live in PM2_HOME and a socket path must stay under ~100 characters. */
function shortTempRoot(): string {
  const root = os.tmpdir();
  return path.join(root, 'pm2-xxxxxx', 'interactor.sock').length <= 90 ? root : '/tmp';
}

export async function createPm2Sandbox(): Promise<Pm2Sandbox> {
  const root = shortTempRoot();
  const home = await mkdtemp(path.join(root, 'pm2-'));
  const dir = await mkdtemp(path.join(root, 'rg-deploy-'));
  const client = new Pm2ApiClient({ home });
  let cleaned = false;

  async function cleanup(): Promise<void> {
    if (cleaned) return;
    cleaned = true;
    const errors: unknown[] = [];
    const attempt = async (what: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        errors.push(new Error(`pm2 sandbox cleanup: ${what} failed`, { cause: error }));
      }
    };
    const daemonPid = await readDaemonPid(home);
    if (daemonPid !== null && isAlive(daemonPid)) {
      // killDaemon deletes every app first, then stops the daemon.
      await attempt('killDaemon', () => client.killDaemon());
      await attempt('waiting for the daemon to exit', () => waitForExit(daemonPid, 5000));
    }
    await attempt('disconnect', () => client.disconnect());
    await attempt('removing PM2_HOME', () => rm(home, { recursive: true, force: true }));
    await attempt('removing the deploy dir', () => rm(dir, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, `pm2 sandbox ${home}: cleanup failed`);
  }

  return { home, client, dir, cleanup };
}

async function readDaemonPid(home: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await readFile(path.join(home, 'pm2.pid'), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null; // no daemon was ever started
    throw error;
  }
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Waits for the sandbox's own daemon to exit; SIGKILLs it if pm2 could not stop it in time. */
async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  try {
    await waitFor(() => !isAlive(pid), timeoutMs);
  } catch (error) {
    process.kill(pid, 'SIGKILL');
    throw new Error(`pm2 daemon ${pid} was still running after killDaemon; killed it`, { cause: error });
  }
}

/** What is left of `T` once it is known to be truthy. */
export type Truthy<T> = Exclude<T, null | undefined | false | 0 | ''>;

/**
 * Polls `fn` until it returns (or resolves to) a truthy value, which is returned. A throw counts
 * as "not yet"; on timeout the error names the last throw or value.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: { error: unknown } | { value: T } | undefined;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as Truthy<T>;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (Date.now() >= deadline) {
      const detail =
        last === undefined ? 'never ran' : 'error' in last ? `last error: ${String(last.error)}` : `last value: ${JSON.stringify(last.value)}`;
      throw new Error(`waitFor: condition not met within ${timeoutMs} ms (${detail})`, {
        cause: last && 'error' in last ? last.error : undefined,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** GETs `url` and parses its JSON body; gives up after `timeoutMs`. */
export async function getJson(url: string, timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, body: await response.json() };
}
