/**
 * Every part of a guard, built around one context: each part is handed the context it belongs
 * to and reaches its siblings through it only when it acts, never while it is being built.
 */
import type { PreflightView } from '../../api/types.js';
import { windowLooks } from '../../core/sequential.js';
import { policyFrom } from '../../core/schedule.js';
import type { NotifyKind, Policy } from '../../core/types.js';
import { Preparations } from '../preparations.js';
import { stepDataDir } from '../rollback-runner.js';
import { preparedDataRoot } from '../shared-dir.js';
import { StableBackups } from '../stable-backups.js';
import { StepDataKeeper } from '../step-data.js';
import { BaselineLearning } from './baseline-learning.js';
import type { GuardDeps, Severity } from './context.js';
import { CrashWatch } from './crash-watch.js';
import { announcer } from './effects.js';
import { FleetSync } from './fleet-sync.js';
import { Interpreter } from './interpreter.js';
import { Judge } from './judge.js';
import { ProbeScheduler } from './probe-scheduler.js';
import { RecordKeeper } from './records.js';
import { RollbackExecutor } from './rollback.js';
import { SampleBuffer } from './sample-buffer.js';
import { Standby } from './standby.js';

export class GuardParts {
  readonly policy: Policy;
  /** Where step data lives: state_dir, or store.shared_dir under HA (shared-dir.ts). */
  readonly dataRoot: string;
  readonly samples: SampleBuffer;
  /** The stable version's backups (which one a rollback restores). */
  readonly stableBackups: StableBackups;
  /** What each step prepared per window. */
  readonly preparations: Preparations;
  /** Prunes old release windows' data and measures state_dir. */
  readonly stepData: StepDataKeeper;
  /** The event queue: transition, persist, effects. */
  readonly machine: Interpreter;
  /** Logs an announcement and hands it to the notifiers. */
  readonly announce: (kind: NotifyKind, severity: Severity, message: string) => void;
  readonly learning: BaselineLearning;
  readonly ha: Standby;
  readonly crashes: CrashWatch;
  readonly fleet: FleetSync;
  readonly records: RecordKeeper;
  readonly rollback: RollbackExecutor;
  /** Turns each sample and tick into rule verdicts and events. */
  readonly judge: Judge;
  readonly scheduler: ProbeScheduler;
  /** The last preflight, whoever asked (the API, or the guard itself as a window opens): the page shows it. */
  lastPreflight: PreflightView | null = null;

  constructor(
    readonly deps: GuardDeps,
    /** Aborts when the guard stops: probes, checks and record retries end with it. */
    readonly stopping: AbortSignal,
  ) {
    const { config } = deps;
    this.policy = policyFrom(config);
    const dataRoot = (this.dataRoot = preparedDataRoot(config));
    const common = { plan: deps.plan, clock: deps.clock, log: deps.log, service: config.service, signal: stopping };
    this.samples = new SampleBuffer(deps.probes.map((p) => p.name));
    this.stableBackups = new StableBackups({ ...common, stateDir: dataRoot });
    this.preparations = new Preparations({ ...common, stable: this.stableBackups, dataDir: (r, index, type) => stepDataDir(dataRoot, r.id, index, type) });
    this.stepData = new StepDataKeeper({ stateDir: dataRoot, settings: config.state, log: deps.log, metrics: deps.metrics });
    const { schedule, release } = config;
    this.machine = new Interpreter(this, {
      rules: config.rules,
      versionProbe: release.version_probe,
      verificationProbe: config.verification.probe,
      initialDelayMs: release.initial_delay,
      probeTypes: new Map(config.probes.map((p) => [p.name, p.type])),
      // The most samples a release window holds: the sequential rules' crossing level pays for each.
      looks: windowLooks({ windowMs: release.window, fastForMs: schedule.fast_for, fastIntervalMs: schedule.fast_interval, intervalMs: schedule.interval }),
    });
    this.announce = announcer(this);
    this.learning = new BaselineLearning(this);
    this.ha = new Standby(this);
    this.crashes = new CrashWatch(this);
    this.fleet = new FleetSync(this);
    this.records = new RecordKeeper(this);
    this.rollback = new RollbackExecutor(this);
    this.judge = new Judge(this);
    this.scheduler = new ProbeScheduler(this);
  }
}
