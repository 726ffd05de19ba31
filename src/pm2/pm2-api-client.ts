/**
 * Pm2Client over pm2's programmatic API (`require('pm2').custom`), bound to one PM2_HOME.
 *
 * pm2's API is callback-based and has a few sharp edges this adapter smooths over (each one is
 * commented where it is handled): several calls report failure only on the console, the bus and
 * RPC sockets keep reconnecting after the daemon is gone (which would keep Node alive), and
 * `require('pm2')` keeps some paths in module-global state, so use one PM2_HOME per process.
 */
import { lastLines } from '../records/log-tail.js';
import type { Pm2Client, Pm2ProcessEvent, Pm2ProcessInfo, Pm2ReloadOptions, Pm2StartOptions } from './client.js';
import { Pm2Bus } from './pm2-bus.js';
import { replacedInstance } from './pm2-events.js';
import { logFilesOf, toProcessInfo } from './pm2-processes.js';
import { callPm2, closeSocket, loadPm2Api, type Callback, type Pm2Api, type RawProcess } from './pm2-rpc.js';

export { replacedInstance } from './pm2-events.js';

/** Ecosystem file names pm2 parses as configuration; any other name pm2 would run as a script. */
const ECOSYSTEM_FILE = /(\.json|\.ya?ml|\.config\.c?js|\.config\.mjs)$/;

const CONNECT_TIMEOUT_MS = 20_000;
const LIST_TIMEOUT_MS = 10_000;
/** pm2's reload lock expires after 30 s (RELOAD_LOCK_TIMEOUT); a reload waits that long for it. */
const RELOAD_LOCK_WAIT_MS = 30_000;
const RELOAD_LOCK_POLL_MS = 100;

export interface Pm2ApiClientOptions {
  /** PM2_HOME of the daemon to talk to; default: pm2's own (PM2_HOME or ~/.pm2). */
  home?: string;
}

export class Pm2ApiClient implements Pm2Client {
  private readonly api: Pm2Api;
  private connecting: Promise<void> | null = null;
  private readonly bus: Pm2Bus;
  /** Reloads whose answer is still to come; disconnect waits for them (see reload). */
  private readonly pendingReloads = new Set<Promise<unknown>>();

  constructor(private readonly options: Pm2ApiClientOptions) {
    const Pm2Api = loadPm2Api();
    // daemon_mode: the daemon is a detached process that outlives the guard, so the guarded app
    // keeps running when the guard stops or crashes.
    this.api = new Pm2Api({ ...(options.home ? { pm2_home: options.home } : {}), daemon_mode: true });
    this.bus = new Pm2Bus(this.api, () => this.connect());
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
    await this.bus.close();
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
      ? await this.bus.onDaemonLog((line) => {
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
  onProcessEvent(listener: (event: Pm2ProcessEvent) => void): Promise<() => void> {
    return this.bus.onProcessEvent(listener);
  }

  async logTail(app: string, lines: number, maxBytes?: number): Promise<string[]> {
    const procs = await this.rawList(app);
    const tail: string[] = [];
    for (const file of logFilesOf(procs, app)) {
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
    await this.bus.close();
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


  /** One pm2 call bound to this client's PM2_HOME (see callPm2). */
  private call<T>(operation: string, app: string | undefined, run: (cb: Callback<T>) => void, timeoutMs?: number): Promise<T | undefined> {
    return callPm2(this.home, operation, app, run, timeoutMs);
  }
}
