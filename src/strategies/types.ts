import type { StrategyConfig } from '../config/schema.js';
import type { Pm2Client } from '../pm2/client.js';
import type { Clock } from '../clock.js';
import type { CommandRunner } from './command-runner.js';

/** What one rollback step knows about the rollback it is part of. */
export interface RollbackContext {
  service: string;
  /** The bad version being rolled back. */
  from: string;
  /** The version to return to. */
  to: string;
  signal: AbortSignal;
  /** Progress lines (logged and kept in the record). */
  progress(message: string): void;
  /**
   * This step's own directory under state_dir (created by the caller), where `prepare` left its
   * snapshots and backups for this release window, `<state_dir>/windows/<window id>/<step index>-<type>`
   * (one directory per window, never per version: see shell/step-data.ts).
   */
  dataDir: string;
  /**
   * Where this rollback's prepared data (backup, snapshot) is to be read from, when the shell
   * resolved it (src/shell/preparations.ts): this window's own `dataDir`, or the stable version's
   * backup when the window's own was taken after the release began or did not complete. Absent:
   * read `dataDir`. New files (emergency backups, markers) always go to `dataDir`.
   */
  prepared?: PreparedData;
}

/** Which backup a rollback step restores from, and why (the line is kept in the record). */
export interface PreparedData {
  dir: string;
  source: 'window' | 'stable';
  /** One line for the record: which backup, taken when, and why this one. */
  note: string;
  /**
   * When the release began, epoch ms: writes before it are not the release's. A step restoring a
   * backup older than that may replay the database's binary log up to here (point-in-time recovery).
   */
  releaseBeganAt: number;
}

/** What `prepare` knows when a release window opens. */
export interface ReleaseContext {
  service: string;
  /** The new release, now under guard. */
  version: string;
  /** The known-good version it replaced (the future rollback target), if any. */
  previous: string | null;
  signal: AbortSignal;
  progress(message: string): void;
  /** Same directory the rollback of this release will get as `RollbackContext.dataDir`. */
  dataDir: string;
}

export interface StrategyDeps {
  pm2: Pm2Client;
  /** Runs external programs with argument arrays (never a shell string), timeouts and output tails. */
  run: CommandRunner;
  /** All time in a step (time budgets, polling, timestamps) is read from it, so tests can drive it. */
  clock: Clock;
}

/**
 * One rollback strategy. `check` is read-only (is the target there? is the program installed?)
 * and lists problems in words — it is the preflight/readiness check. `execute` carries the step
 * out and must be idempotent, so a plan resumed after a crash converges instead of doing damage.
 * `prepare`, when present, runs as a release window opens (config snapshot, pre-release backup,
 * BGSAVE) and must be idempotent too. All honour `ctx.signal`; failures throw a RollbackError
 * naming what failed.
 */
export interface RollbackStrategy {
  readonly type: StrategyConfig['type'];
  /** One line for logs and records, e.g. `releases: current -> releases/v1, pm2 reload web`. */
  describe(ctx: Pick<RollbackContext, 'from' | 'to'>): string;
  checkReadiness(ctx: RollbackContext): Promise<string[]>;
  execute(ctx: RollbackContext): Promise<void>;
  prepare?(ctx: ReleaseContext): Promise<void>;
}

export type StrategyFactory<C extends StrategyConfig> = (config: C, deps: StrategyDeps) => RollbackStrategy;
