/**
 * Pm2Client over pm2's programmatic API (`require('pm2').custom`), bound to one PM2_HOME.
 *
 * pm2's API is callback-based and has a few sharp edges this adapter smooths over (each one is
 * commented where it is handled): several calls report failure only on the console, the bus and
 * RPC sockets keep reconnecting after the daemon is gone (which would keep Node alive), and
 * `require('pm2')` keeps some paths in module-global state, so use one PM2_HOME per process.
 */
import { createRequire } from 'node:module';
import { lastLines } from '../records/log-tail.js';
import type { Pm2Client, Pm2ProcessEvent, Pm2ProcessInfo, Pm2ReloadOptions, Pm2StartOptions } from './client.js';

const require = createRequire(import.meta.url);

type Callback<T = unknown> = (error: unknown, result?: T) => void;

/** The fields of pm2's process description (getMonitorData) this adapter reads. */
interface RawProcess {
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
interface AxonSocket {
  connected?: boolean;
  closing?: boolean;
  close(): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  once(event: string, listener: (...args: unknown[]) => void): void;
}

interface AxonBus {
  on(event: string, listener: (...args: unknown[]) => void): void;
}

/** The part of pm2's API class used here (pm2 ships no types for `custom`). */
interface Pm2Api {
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

type Pm2ApiClass = new (options: { pm2_home?: string; daemon_mode: boolean }) => Pm2Api;

/**
 * pm2's API class. `require('pm2')` would also build pm2's default instance, which creates
 * ~/.pm2/{logs,pids,modules} of whoever runs the guard (and prints errors where the home is
 * read-only, as under a hardened systemd unit); lib/API.js is the same class (`pm2.custom`)
 * without that. PM2_PROGRAMMATIC must be set before pm2 loads, as pm2's index.js does: it keeps
 * pm2 from printing to our stdout.
 */
function loadPm2Api(): Pm2ApiClass {
  process.env.PM2_PROGRAMMATIC = 'true';
  return require('pm2/lib/API.js') as Pm2ApiClass;
}

/** Ecosystem file names pm2 parses as configuration; any other name pm2 would run as a script. */
const ECOSYSTEM_FILE = /(\.json|\.ya?ml|\.config\.c?js|\.config\.mjs)$/;

const CONNECT_TIMEOUT_MS = 20_000;
const BUS_CONNECT_TIMEOUT_MS = 10_000;
const LIST_TIMEOUT_MS = 10_000;
/** pm2's reload lock expires after 30 s (RELOAD_LOCK_TIMEOUT); a reload waits that long for it. */
const RELOAD_LOCK_WAIT_MS = 30_000;
const RELOAD_LOCK_POLL_MS = 100;

export interface Pm2ApiClientOptions {
  /** PM2_HOME of the daemon to talk to; default: pm2's own (PM2_HOME or ~/.pm2). */
  home?: string;
}

/** The shared bus socket and its subscribers: process events, and the daemon's own log lines. */
interface Bus {
  socket: AxonSocket;
  listeners: Set<(event: Pm2ProcessEvent) => void>;
  logListeners: Set<(line: string) => void>;
}

export class Pm2ApiClient implements Pm2Client {
  private readonly api: Pm2Api;
  private connecting: Promise<void> | null = null;
  private bus: Bus | null = null;
  private busOpening: Promise<Bus> | null = null;
  /** Reloads whose answer is still to come; disconnect waits for them (see reload). */
  private readonly pendingReloads = new Set<Promise<unknown>>();

  constructor(private readonly options: Pm2ApiClientOptions) {
    const Pm2Api = loadPm2Api();
    // daemon_mode: the daemon is a detached process that outlives the guard, so the guarded app
    // keeps running when the guard stops or crashes.
    this.api = new Pm2Api({ ...(options.home ? { pm2_home: options.home } : {}), daemon_mode: true });
  }

  /** The PM2_HOME this client is bound to. */
  get home(): string {
    return this.api.pm2_home;
  }

  connect(): Promise<void> {
    this.connecting ??= this.doConnect().catch((error: unknown) => {
      this.connecting = null; // let a later call retry
      throw error;
    });
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    // pm2 spawns a missing daemon with `{ PM2_HOME: <home>, ...process.env }`, so an inherited
    // PM2_HOME would win and start the daemon for the wrong home; pin it while connecting.
    const inherited = process.env.PM2_HOME;
    const pin = this.options.home !== undefined && inherited !== undefined && inherited !== this.options.home;
    if (pin) process.env.PM2_HOME = this.options.home;
    try {
      // pm2 retries an unreachable socket forever and never reports it; bound the wait.
      await this.call('connect', undefined, (cb) => this.api.connect(cb), CONNECT_TIMEOUT_MS);
    } catch (error) {
      // Stop the half-open RPC socket from retrying in the background (and keeping Node alive).
      const rpc = this.api.Client.client_sock;
      if (rpc && !rpc.closing) closeSocket(rpc);
      throw error;
    } finally {
      if (pin) process.env.PM2_HOME = inherited;
    }
  }

  async disconnect(): Promise<void> {
    // pm2's reload lock (a file in PM2_HOME) is released by the reloading client when the daemon
    // answers; a client that went away first would leave every other reload refused for 30 s.
    // Bounded: after RELOAD_LOCK_WAIT_MS pm2 treats the lock as stale anyway.
    if (this.pendingReloads.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.pendingReloads]),
        new Promise((resolve) => (timer = setTimeout(resolve, RELOAD_LOCK_WAIT_MS))),
      ]);
      clearTimeout(timer);
    }
    await this.closeBus();
    if (!this.connecting) return;
    const connected = await this.connecting.then(
      () => true,
      () => false,
    );
    this.connecting = null;
    if (!connected) return;
    const rpc = this.api.Client.client_sock;
    if (rpc && rpc.connected === false) {
      // The daemon is gone: pm2's disconnect would answer "RPC already being closed" and leave
      // the socket retrying forever, which keeps Node alive. Close it ourselves instead.
      closeSocket(rpc);
      return;
    }
    await this.call('disconnect', undefined, (cb) => this.api.disconnect(cb));
    if (rpc && !rpc.closing) closeSocket(rpc);
  }

  async list(): Promise<Pm2ProcessInfo[]> {
    return (await this.rawList(undefined)).map(toProcessInfo);
  }

  async describe(app: string): Promise<Pm2ProcessInfo[]> {
    // API.describe crashes on an RPC error (it reads the list after reporting the error), so
    // filter the list ourselves; an unknown app is simply no processes.
    return (await this.rawList(app)).filter((proc) => proc.name === app).map(toProcessInfo);
  }

  private async rawList(app: string | undefined): Promise<RawProcess[]> {
    await this.connect();
    // Bounded: while the daemon is down pm2 queues the request and never answers, and probes
    // call this on every tick.
    const list = await this.call<RawProcess[]>(
      app === undefined ? 'list' : 'describe',
      app,
      (cb) => this.api.list(cb),
      LIST_TIMEOUT_MS,
    );
    return list ?? [];
  }

  reload(app: string, options: Pm2ReloadOptions = {}): Promise<void> {
    const reloading = this.doReload(app, options);
    this.pendingReloads.add(reloading);
    void reloading.then(
      () => this.pendingReloads.delete(reloading),
      () => this.pendingReloads.delete(reloading),
    );
    return reloading;
  }

  private async doReload(app: string, { onReplacing }: Pm2ReloadOptions): Promise<void> {
    await this.connect();
    // pm2 answers a cluster reload only once each replaced worker has exited, which a hung one
    // does at kill_timeout; the new worker has taken every new connection since it listened.
    // The daemon says when that is, on its log: `Stopping app:<name> id:_old_<id>` follows the
    // new worker's `listening` at once (lib/God/Reload.js, ActionMethods.stopProcessId).
    let ours = false; // only lines from our own reload, once it holds pm2's lock
    // Without the bus the reload still runs; the caller then waits for pm2's answer.
    const unsubscribe = onReplacing
      ? await this.onDaemonLog((line) => {
          const pmId = ours ? replacedInstance(line, app) : null;
          if (pmId !== null) onReplacing(pmId);
        }).catch(() => undefined)
      : undefined;
    try {
      // No `force`: pm2 refuses a reload while another (e.g. a deploy script's, as the guard rolls
      // back) is in progress, and doing both at once would leave the app in a mix of versions.
      // One after the other is what both callers want: wait for the lock (pm2's reload.lock in
      // PM2_HOME, shared by every client of the daemon) and reload then.
      const deadline = Date.now() + RELOAD_LOCK_WAIT_MS;
      for (;;) {
        try {
          let answered = false;
          const attempt = this.call('reload', app, (cb) =>
            this.api.reload(app, {}, (error, result) => {
              answered = true;
              cb(error, result);
            }),
          );
          // pm2 checks its lock synchronously and refuses at once; not refused means ours.
          ours = !answered;
          await attempt;
          return;
        } catch (error) {
          ours = false;
          const locked = (error as Error).cause instanceof Error && ((error as Error).cause as Error).message === 'Reload in progress';
          if (!locked || Date.now() >= deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, RELOAD_LOCK_POLL_MS));
        }
      }
    } finally {
      unsubscribe?.();
    }
  }

  async restart(app: string): Promise<void> {
    await this.connect();
    await this.call('restart', app, (cb) => this.api.restart(app, {}, cb));
  }

  async stop(app: string): Promise<void> {
    await this.connect();
    await this.call('stop', app, (cb) => this.api.stop(app, cb));
  }

  async delete(app: string): Promise<void> {
    await this.connect();
    await this.call('delete', app, (cb) => this.api.delete(app, cb));
  }

  async start(options: Pm2StartOptions): Promise<void> {
    await this.connect();
    const app = {
      name: options.name,
      script: options.script,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(options.instances !== undefined ? { instances: options.instances } : {}),
      ...(options.execMode !== undefined ? { exec_mode: options.execMode } : {}),
      ...(options.env !== undefined ? { env: options.env } : {}),
      ...(options.minUptime !== undefined ? { min_uptime: options.minUptime } : {}),
      ...(options.maxRestarts !== undefined ? { max_restarts: options.maxRestarts } : {}),
      ...(options.autorestart !== undefined ? { autorestart: options.autorestart } : {}),
      ...(options.killTimeoutMs !== undefined ? { kill_timeout: options.killTimeoutMs } : {}),
    };
    // An object goes through pm2's ecosystem path: it starts the app, or restarts it with the
    // new settings when pm2 already knows the name.
    await this.call('start', options.name, (cb) => this.api.start({ apps: [app] }, {}, cb));
    await this.expectKnown(options.name, 'start', `pm2 did not register it (see ${this.home}/pm2.log)`);
  }

  async startEcosystem(file: string, only?: string): Promise<void> {
    const subject = only ?? file;
    if (!ECOSYSTEM_FILE.test(file)) {
      throw new Error(
        `pm2 startEcosystem ${subject}: ${file} is not an ecosystem file name; pm2 only reads ` +
          '*.json, *.yml, *.yaml, *.config.js, *.config.cjs or *.config.mjs as configuration',
      );
    }
    await this.connect();
    await this.call('startEcosystem', subject, (cb) => this.api.start(file, only ? { only } : {}, cb));
    // pm2 skips apps that `only` does not match and logs launch failures without reporting them.
    if (only) await this.expectKnown(only, 'startEcosystem', `${file} does not define it or it failed to launch`);
  }

  private async expectKnown(app: string, operation: string, why: string): Promise<void> {
    if ((await this.describe(app)).length === 0) {
      throw new Error(`pm2 ${operation} ${app}: the app is not known to pm2 afterwards; ${why}`);
    }
  }

  /**
   * All subscribers share one bus socket, opened on the first subscription and closed when the
   * last one unsubscribes (or on disconnect/killDaemon). It reconnects by itself if the daemon
   * restarts. Listeners run inside pm2's socket handler: they must not throw.
   */
  async onProcessEvent(listener: (event: Pm2ProcessEvent) => void): Promise<() => void> {
    const bus = await this.openBus();
    bus.listeners.add(listener);
    return () => this.unsubscribe(bus, () => bus.listeners.delete(listener));
  }

  /** Subscribes to the daemon's own log lines (`log:PM2`), one line per call, without its newline. */
  private async onDaemonLog(listener: (line: string) => void): Promise<() => void> {
    const bus = await this.openBus();
    bus.logListeners.add(listener);
    return () => this.unsubscribe(bus, () => bus.logListeners.delete(listener));
  }

  private unsubscribe(bus: Bus, remove: () => void): void {
    remove();
    // The last subscriber closes the socket, so an idle client leaves no handle behind.
    if (bus.listeners.size === 0 && bus.logListeners.size === 0 && this.bus === bus) {
      this.bus = null;
      closeSocket(bus.socket);
    }
  }

  private openBus(): Promise<Bus> {
    if (this.bus) return Promise.resolve(this.bus);
    this.busOpening ??= this.doOpenBus().finally(() => {
      this.busOpening = null;
    });
    return this.busOpening;
  }

  private async doOpenBus(): Promise<Bus> {
    await this.connect();
    const { bus, socket } = await new Promise<{ bus: AxonBus; socket: AxonSocket }>((resolve, reject) => {
      // launchBus calls back only once connected and never reports a failure, so bound it.
      const timer = setTimeout(() => {
        const pending = this.api.Client.sub_sock as AxonSocket | null;
        this.detachBusFromPm2();
        if (pending) closeSocket(pending);
        reject(new Error(`pm2 bus: no connection to ${this.home}/pub.sock within ${BUS_CONNECT_TIMEOUT_MS} ms`));
      }, BUS_CONNECT_TIMEOUT_MS);
      this.api.launchBus((error, launched, launchedSocket) => {
        clearTimeout(timer);
        if (error || !launched || !launchedSocket) {
          reject(new Error('pm2 bus: could not subscribe to process events', { cause: error }));
          return;
        }
        resolve({ bus: launched, socket: launchedSocket });
      });
    });
    // pm2's own disconnectBus cannot close a socket that is reconnecting (it reports "already
    // being closed" and the retry timer keeps Node alive) and its timeout path throws; this
    // client owns the bus socket from here on and closes it itself.
    this.detachBusFromPm2();
    const entry: Bus = { socket, listeners: new Set(), logListeners: new Set() };
    const toProcessEvent = createEventMapper();
    bus.on('process:event', (packet) => {
      const event = toProcessEvent(packet);
      if (!event) return;
      for (const listener of entry.listeners) listener(event);
    });
    bus.on('log:PM2', (packet) => {
      if (entry.logListeners.size === 0) return;
      const data = (packet as { data?: unknown } | null)?.data;
      if (typeof data !== 'string') return;
      for (const line of data.split('\n')) if (line) for (const listener of entry.logListeners) listener(line);
    });
    this.bus = entry;
    return entry;
  }

  private detachBusFromPm2(): void {
    this.api.Client.sub = null;
    this.api.Client.sub_sock = null;
  }

  private async closeBus(): Promise<void> {
    if (this.busOpening) await this.busOpening.catch(() => undefined); // its failure was reported to its caller
    const bus = this.bus;
    this.bus = null;
    if (bus) {
      bus.listeners.clear();
      bus.logListeners.clear();
      closeSocket(bus.socket);
    }
  }

  async logTail(app: string, lines: number, maxBytes?: number): Promise<string[]> {
    const procs = await this.rawList(app);
    const files = new Set<string>();
    // Out files first, then err files; cluster instances may each have their own files.
    for (const key of ['pm_out_log_path', 'pm_err_log_path'] as const) {
      for (const proc of procs) {
        const file = proc.name === app ? proc.pm2_env?.[key] : undefined;
        if (file) files.add(file);
      }
    }
    const tail: string[] = [];
    for (const file of files) {
      try {
        tail.push(...(await lastLines(file, lines, maxBytes)));
      } catch (error) {
        throw new Error(`pm2 logTail ${app}: could not read ${file}`, { cause: error });
      }
    }
    return tail;
  }

  async killDaemon(): Promise<void> {
    this.pendingReloads.clear(); // their daemon is going away: no answer will come
    await this.closeBus();
    await this.connect();
    // API.killDaemon sets PM2_STATUS=stopping in our environment for good; restore it so later
    // calls in this process behave as before.
    const status = process.env.PM2_STATUS;
    try {
      await this.call('killDaemon', this.home, (cb) => this.api.killDaemon(cb));
    } finally {
      if (status === undefined) delete process.env.PM2_STATUS;
      else process.env.PM2_STATUS = status;
    }
    this.connecting = null;
    // pm2 closes its RPC socket only if it is still connected; the daemon has just gone away.
    const rpc = this.api.Client.client_sock;
    if (rpc && !rpc.closing) closeSocket(rpc);
  }

  /**
   * Runs one pm2 callback call; errors name the operation and app, with pm2's error as cause.
   * With `timeoutMs`, gives up waiting after that long (pm2 calls cannot be cancelled).
   * Commands that change apps (reload, stop, ...) have no timeout here: a cluster reload can
   * take long, and the strategies bound their steps.
   */
  private call<T>(
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
                  `pm2 ${operation}${app ? ` ${app}` : ''} failed: no answer from the pm2 daemon in ${this.home} within ${timeoutMs} ms`,
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
}

function pm2Error(operation: string, app: string | undefined, error: unknown): Error {
  // pm2 reports several launch failures as an array of errors.
  const causes = Array.isArray(error) ? error : [error];
  const detail = causes.map((c) => (c instanceof Error ? c.message : String(c))).join('; ');
  const cause = Array.isArray(error) ? new AggregateError(error, detail) : error;
  return new Error(`pm2 ${operation}${app ? ` ${app}` : ''} failed: ${detail}`, { cause });
}

/** Closes an axon socket for good, including a reconnect that was already scheduled. */
function closeSocket(socket: AxonSocket): void {
  // A retry timer that was pending when we closed still reconnects once; close that too.
  socket.on('connect', () => socket.close());
  socket.close();
}

function toProcessInfo(proc: RawProcess): Pm2ProcessInfo {
  const env = proc.pm2_env ?? {};
  return {
    name: proc.name ?? '',
    pmId: proc.pm_id ?? -1,
    pid: proc.pid ?? 0,
    status: env.status ?? 'unknown',
    cpuPercent: proc.monit?.cpu ?? 0,
    memoryBytes: proc.monit?.memory ?? 0,
    restarts: env.restart_time ?? 0,
    ...(env.pm_exec_path !== undefined ? { execPath: env.pm_exec_path } : {}),
    ...(env.pm_cwd !== undefined ? { cwd: env.pm_cwd } : {}),
    ...(env.exec_mode !== undefined ? { execMode: env.exec_mode } : {}),
  };
}

/**
 * The instance whose replaced process pm2 starts stopping, from a daemon log line
 * (`Stopping app:<name> id:_old_<id>`, printed only for processes a reload replaced), or null.
 */
export function replacedInstance(line: string, app: string): number | null {
  const match = /^Stopping app:(.*) id:_old_(\d+)$/.exec(line);
  return match && match[1] === app ? Number(match[2]) : null;
}

/** How long after a command's first `exit` its follow-up `exit` is expected (pm2 polls the kill). */
const STOP_FOLLOW_UP_MS = 5000;

/**
 * Maps pm2's `process:event` packets, `{ event, manually, at, process: <pm2_env without env> }`,
 * to Pm2ProcessEvents. pm2 flags only the command's own event (`stop`, `restart`, `reload`,
 * `delete`) as manual: the `exit` packets a command causes arrive first with manually=false, two
 * per process, the first with status `stopping` (pm2 set it before killing) and the second with
 * status `stopped` (emitted once the kill completed). A crash is one `exit` of a process that was
 * `online`, with status `stopped` (or `errored` past max_restarts). So an `exit` in status
 * `stopping`, and the `stopped` one that follows it, are reported as manual: otherwise every
 * deploy's `pm2 reload` would look like crashes of the new version. During a cluster reload the
 * replaced worker reports pm_id `_old_<id>`; it maps to <id>.
 */
function createEventMapper(): (packet: unknown) => Pm2ProcessEvent | null {
  const stopping = new Map<string, number>(); // process key -> time of its `stopping` exit
  return (packet) => {
    if (typeof packet !== 'object' || packet === null) return null;
    const { event, manually, at: rawAt, process: proc } = packet as Record<string, unknown>;
    if (typeof event !== 'string' || typeof proc !== 'object' || proc === null) return null;
    const { name, pm_id: rawId, status } = proc as Record<string, unknown>;
    if (typeof name !== 'string') return null;
    const at = typeof rawAt === 'number' ? rawAt : Date.now();
    const key = `${name}\u0000${String(rawId)}`;
    let manual = manually === true;
    if (event === 'exit' && status === 'stopping') {
      manual = true;
      stopping.set(key, at);
    } else if (event === 'exit') {
      const since = stopping.get(key);
      stopping.delete(key);
      if (since !== undefined && at - since <= STOP_FOLLOW_UP_MS) manual = true;
    } else if (event === 'online') {
      stopping.delete(key);
    }
    const pmId = typeof rawId === 'number' ? rawId : Number(/^(?:_old_)?(\d+)$/.exec(String(rawId))?.[1] ?? -1);
    return { app: name, pmId, event, manually: manual, at };
  };
}

