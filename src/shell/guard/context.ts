/**
 * What the parts of a guard share: its dependencies, and the context type each part is handed.
 */
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { GuardMetrics } from '../../metrics.js';
import type { NotificationEvent } from '../../notify/types.js';
import type { Pm2Client } from '../../pm2/client.js';
import type { Probe } from '../../probes/types.js';
import type { FleetBoard, StateStore } from '../../store/state-store.js';
import type { Clock } from '../clock.js';
import type { Leadership } from '../leadership.js';
import type { PlanStep } from '../rollback-runner.js';
import type { GuardParts } from './parts.js';

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

/** Every part of a guard (parts.ts builds them): what each part is handed to reach the others. */
export type GuardContext = GuardParts;
