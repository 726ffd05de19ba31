/**
 * The narrow view of pm2 the guard needs. The real implementation (pm2-api-client.ts) wraps pm2's
 * programmatic API (`require('pm2').custom`) bound to one PM2_HOME; tests can pass a fake.
 */
export interface Pm2ProcessInfo {
  name: string;
  pmId: number;
  pid: number;
  /** pm2's status: online, stopping, stopped, launching, errored, one-launch-status. */
  status: string;
  /** CPU percent of one core, as pm2 monit reports it. */
  cpuPercent: number;
  memoryBytes: number;
  restarts: number;
  /** Script path as pm2 knows it (pm_exec_path) and working directory (pm_cwd). */
  execPath?: string;
  cwd?: string;
  execMode?: 'fork_mode' | 'cluster_mode' | string;
}

/** A `process:event` from pm2's bus, e.g. `exit` (manually=false means a crash) or `restart overlimit`. */
export interface Pm2ProcessEvent {
  app: string;
  pmId: number;
  event: string;
  /** True when a pm2 command (stop, restart, reload, delete) caused it. */
  manually: boolean;
  at: number;
}

export interface Pm2StartOptions {
  name: string;
  script: string;
  cwd?: string;
  instances?: number;
  execMode?: 'fork' | 'cluster';
  env?: Record<string, string>;
  /** Milliseconds pm2 waits for a process to be considered started. */
  minUptime?: number;
  maxRestarts?: number;
  autorestart?: boolean;
  /** Milliseconds pm2 lets a stopped process finish after SIGINT before it sends SIGKILL. */
  killTimeoutMs?: number;
}

export interface Pm2ReloadOptions {
  /**
   * Told, as it happens, when pm2 starts stopping the process it replaced for instance `pmId`
   * during a cluster-mode reload: the new process listens by then (or pm2's listen_timeout ran
   * out). Never told in fork mode, nor when the daemon does not publish its log on the bus.
   */
  onReplacing?: (pmId: number) => void;
}

export interface Pm2Client {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  /** Every process of the app (one per cluster instance); [] when the app is unknown. */
  describe(app: string): Promise<Pm2ProcessInfo[]>;
  list(): Promise<Pm2ProcessInfo[]>;
  /**
   * Zero-downtime in cluster mode; a restart in fork mode. Resolves once pm2 answers, i.e. once
   * every replaced process has exited (a hung one only at the app's kill_timeout).
   */
  reload(app: string, options?: Pm2ReloadOptions): Promise<void>;
  restart(app: string): Promise<void>;
  stop(app: string): Promise<void>;
  delete(app: string): Promise<void>;
  start(options: Pm2StartOptions): Promise<void>;
  /** Start the apps of an ecosystem file, optionally only the one named `only`. */
  startEcosystem(file: string, only?: string): Promise<void>;
  /** Subscribe to process events on pm2's bus; returns an unsubscribe function. */
  onProcessEvent(listener: (event: Pm2ProcessEvent) => void): Promise<() => void>;
  /** Last lines of the app's stdout/stderr log files, for rollback records. */
  /** At most `maxBytes` of each log file is read (records: records.log_bytes). */
  logTail(app: string, lines: number, maxBytes?: number): Promise<string[]>;
  /** Stop pm2's daemon itself (tests and the demo only). */
  killDaemon(): Promise<void>;
}
