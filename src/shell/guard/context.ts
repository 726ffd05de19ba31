/**
 * What the parts of a guard share: its dependencies, its configuration-derived constants, and
 * each part by name. The Guard (guard.ts) builds one context and hands it to every part; a part
 * reaches a sibling through it when it acts, never while it is being built.
 */
import type { Config } from '../../config/schema.js';
import type { NotifyKind, Policy } from '../../core/types.js';
import type { Logger } from '../../log.js';
import type { GuardMetrics } from '../../metrics.js';
import type { NotificationEvent } from '../../notify/types.js';
import type { Pm2Client } from '../../pm2/client.js';
import type { Probe } from '../../probes/types.js';
import type { FleetBoard, StateStore } from '../../store/state-store.js';
import type { Clock } from '../clock.js';
import type { Leadership } from '../leadership.js';
import type { Preparations } from '../preparations.js';
import type { PlanStep } from '../rollback-runner.js';
import type { StableBackups } from '../stable-backups.js';
import type { StepDataKeeper } from '../step-data.js';
import type { BaselineLearning } from './baseline-learning.js';
import type { CrashWatch } from './crash-watch.js';
import type { FleetSync } from './fleet-sync.js';
import type { Interpreter } from './interpreter.js';
import type { Judge } from './judge.js';
import type { ProbeScheduler } from './probe-scheduler.js';
import type { RecordKeeper } from './records.js';
import type { RollbackExecutor } from './rollback.js';
import type { SampleBuffer } from './sample-buffer.js';
import type { Standby } from './standby.js';

export interface GuardDeps {
  config: Config;
  store: StateStore;
  clock: Clock;
  log: Logger;
  metrics: GuardMetrics;
  probes: Probe[];
  plan: PlanStep[];
  pm2?: Pm2Client;
  /** Hands an announcement to the notifiers; must return at once (never blocks a rollback). */
  notify?: (event: NotificationEvent) => void;
  /**
   * With a store several guards share: the lease loop. Only the lease holder acts (persists
   * transitions, runs plans, writes records, notifies); the others stand by. Absent: always acts.
   */
  leadership?: Leadership;
  /** Fleets: the hosts' shared verdicts on each release. */
  fleet?: FleetBoard;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface GuardContext {
  readonly deps: GuardDeps;
  readonly policy: Policy;
  /** Aborts when the guard stops: probes, checks and record retries end with it. */
  readonly stopping: AbortSignal;
  /** Where step data lives: state_dir, or store.shared_dir under HA (shared-dir.ts). */
  readonly dataRoot: string;
  readonly machine: Interpreter;
  readonly samples: SampleBuffer;
  /** Turns each sample and tick into rule verdicts and events. */
  readonly judge: Judge;
  readonly scheduler: ProbeScheduler;
  readonly learning: BaselineLearning;
  readonly ha: Standby;
  readonly crashes: CrashWatch;
  readonly fleet: FleetSync;
  readonly records: RecordKeeper;
  readonly rollback: RollbackExecutor;
  /** Prunes old release windows' data and measures state_dir. */
  readonly stepData: StepDataKeeper;
  /** What each step prepared per window, and the stable version's backups (which one a rollback restores). */
  readonly stableBackups: StableBackups;
  readonly preparations: Preparations;
  /** Logs an announcement and hands it to the notifiers. */
  announce(kind: NotifyKind, severity: Severity, message: string): void;
}
