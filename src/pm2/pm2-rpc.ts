/**
 * The low level of the pm2 adapter: pm2's API class loaded without its side effects, the shapes
 * of it this project reads (pm2 ships no types for it), one callback call turned into a promise
 * with a readable error, and closing an axon socket for good.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export type Callback<T = unknown> = (error: unknown, result?: T) => void;

/** The fields of pm2's process description (getMonitorData) this adapter reads. */
export interface RawProcess {
  name?: string;
  pm_id?: number;
  pid?: number;
  monit?: { cpu?: number; memory?: number };
  pm2_env?: {
    status?: string;
    restart_time?: number;
    pm_exec_path?: string;
    pm_cwd?: string;
    exec_mode?: string;
    pm_out_log_path?: string;
    pm_err_log_path?: string;
  };
}

/** pm2's axon socket (a sub-emitter's underlying socket), as far as teardown needs it. */
export interface AxonSocket {
  connected?: boolean;
  closing?: boolean;
  close(): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  once(event: string, listener: (...args: unknown[]) => void): void;
}

export interface AxonBus {
  on(event: string, listener: (...args: unknown[]) => void): void;
}

/** The part of pm2's API class used here (pm2 ships no types for `custom`). */
export interface Pm2Api {
  connect(cb: Callback): void;
  disconnect(cb: Callback): void;
  list(cb: Callback<RawProcess[]>): void;
  reload(name: string, opts: object, cb: Callback): void;
  restart(name: string, opts: object, cb: Callback): void;
  stop(name: string, cb: Callback): void;
  delete(name: string, cb: Callback): void;
  start(target: object | string, opts: object, cb: Callback): void;
  launchBus(cb: (error: unknown, bus?: AxonBus, socket?: AxonSocket) => void): void;
  killDaemon(cb: Callback): void;
  pm2_home: string;
  Client: { sub: unknown; sub_sock: unknown; client_sock?: AxonSocket };
}

export type Pm2ApiClass = new (options: { pm2_home?: string; daemon_mode: boolean }) => Pm2Api;

/**
 * pm2's API class. `require('pm2')` would also build pm2's default instance, which creates
 * ~/.pm2/{logs,pids,modules} of whoever runs the guard (and prints errors where the home is
 * read-only, as under a hardened systemd unit); lib/API.js is the same class (`pm2.custom`)
 * without that. PM2_PROGRAMMATIC must be set before pm2 loads, as pm2's index.js does: it keeps
 * pm2 from printing to our stdout.
 */
export function loadPm2Api(): Pm2ApiClass {
  process.env.PM2_PROGRAMMATIC = 'true';
  return require('pm2/lib/API.js') as Pm2ApiClass;
}

/**
 * Runs one pm2 callback call; errors name the operation and app, with pm2's error as cause.
 * With `timeoutMs`, gives up waiting after that long (pm2 calls cannot be cancelled).
 * Commands that change apps (reload, stop, ...) have no timeout here: a cluster reload can
 * take long, and the strategies bound their steps.
 */
export function callPm2<T>(
  home: string,
  operation: string,
  app: string | undefined,
  run: (cb: Callback<T>) => void,
  timeoutMs?: number,
): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            reject(
              new Error(
                `pm2 ${operation}${app ? ` ${app}` : ''} failed: no answer from the pm2 daemon in ${home} within ${timeoutMs} ms`,
              ),
            );
          }, timeoutMs);
    run((error, result) => {
      clearTimeout(timer);
      if (error) reject(pm2Error(operation, app, error));
      else resolve(result);
    });
  });
}

function pm2Error(operation: string, app: string | undefined, error: unknown): Error {
  // pm2 reports several launch failures as an array of errors.
  const causes = Array.isArray(error) ? error : [error];
  const detail = causes.map((c) => (c instanceof Error ? c.message : String(c))).join('; ');
  const cause = Array.isArray(error) ? new AggregateError(error, detail) : error;
  return new Error(`pm2 ${operation}${app ? ` ${app}` : ''} failed: ${detail}`, { cause });
}

/** Closes an axon socket for good, including a reconnect that was already scheduled. */
export function closeSocket(socket: AxonSocket): void {
  // A retry timer that was pending when we closed still reconnects once; close that too.
  socket.on('connect', () => socket.close());
  socket.close();
}

