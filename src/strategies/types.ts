import type { StrategyConfig } from '../config/schema.js';
import type { Pm2Client } from '../pm2/client.js';

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
}

export interface StrategyDeps {
  pm2: Pm2Client;
}

/**
 * One rollback strategy. `check` is read-only (is the target there? is the app known?) and lists
 * problems in words; `execute` carries the step out and must be idempotent, so a plan resumed
 * after a crash converges instead of doing damage. Both honour `ctx.signal`. `execute` throws a
 * RollbackError naming what failed.
 */
export interface RollbackStrategy {
  readonly type: StrategyConfig['type'];
  /** One line for logs and records, e.g. `releases: current -> releases/v1, pm2 reload web`. */
  describe(ctx: Pick<RollbackContext, 'from' | 'to'>): string;
  check(ctx: RollbackContext): Promise<string[]>;
  execute(ctx: RollbackContext): Promise<void>;
}

export type StrategyFactory<C extends StrategyConfig> = (config: C, deps: StrategyDeps) => RollbackStrategy;
