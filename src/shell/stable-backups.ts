/**
 * Backups of the stable version, taken while no release is under guard: when a version becomes
 * stable and again every `stable_backup_every`. They exist because a release the guard only
 * detected (not announced with `release-guard release` first) opens its window after the deploy,
 * whose migrations may already have run: that window's "pre-release" backup undoes nothing. Its
 * rollback restores the newest stable backup taken before the release began instead (and the
 * database step replays the binary log from it up to the release start, see database.ts).
 *
 * Layout: `<state_dir>/stable/<n>-<type>/<time>-<version>/` holding what the step's own `prepare`
 * writes (the same code takes both kinds of backup) and a `prepared.json` marker written last,
 * so a directory without a complete marker is never used. The last KEEP are kept.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { GuardState } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Clock } from './clock.js';
import { readMarker, writeMarker } from './prepare-marker.js';
import type { PlanStep } from './rollback-runner.js';
import { runPrepare } from './run-prepare.js';

/** Complete stable backups kept per step: the newest, and the one before in case it is bad. */
export const KEEP_STABLE_BACKUPS = 2;
/** How often a stable guard looks whether a backup is due (a listing of a small directory). */
const LOOK_EVERY_MS = 30_000;

/** Where step `index` keeps the stable version's backups: `<stateDir>/stable/<n>-<type>`. */
export function stableBackupRoot(stateDir: string, index: number, type: string): string {
  return join(stateDir, 'stable', `${index + 1}-${type}`);
}

export interface StableBackup {
  dir: string;
  version: string;
  /** When its `prepare` started: the backup shows the database as of about then. */
  startedAt: number;
  finishedAt: number;
}

/** The step's backup interval, or 0 when it takes no stable backups. */
export function stableBackupEvery(step: PlanStep): number {
  if (!step.strategy.prepare) return 0;
  if (step.config.type === 'database') return step.config.backup_on_release ? step.config.stable_backup_every : 0;
  if (step.config.type === 'config') return step.config.stable_backup_every;
  return 0;
}

export class StableBackups {
  private running: Promise<void> | null = null;
  private lookedAt = Number.NEGATIVE_INFINITY;
  private lookedFor: string | null = null;

  constructor(
    private readonly deps: {
      stateDir: string;
      plan: readonly PlanStep[];
      clock: Clock;
      log: Logger;
      service: string;
      signal: AbortSignal;
      host?: string;
    },
  ) {}

  enabledFor(index: number): boolean {
    const step = this.deps.plan[index];
    return step !== undefined && stableBackupEvery(step) > 0;
  }

  /** Complete backups of step `index`, newest first. */
  async list(index: number, type: string): Promise<StableBackup[]> {
    const root = stableBackupRoot(this.deps.stateDir, index, type);
    const names = await readdir(root).catch(() => [] as string[]);
    const found: StableBackup[] = [];
    for (const name of names) {
      const marker = await readMarker(join(root, name));
      if (marker?.state === 'complete' && marker.finishedAt !== undefined) {
        found.push({ dir: join(root, name), version: marker.version, startedAt: marker.startedAt, finishedAt: marker.finishedAt });
      }
    }
    return found.sort((a, b) => b.startedAt - a.startedAt);
  }

  /** The newest complete backup that started before `at` (the release start), if any. */
  async newestBefore(index: number, type: string, at: number): Promise<StableBackup | null> {
    return (await this.list(index, type)).find((b) => b.startedAt < at) ?? null;
  }

  /**
   * Called on every tick of the acting guard; never waits for the backup. Takes one when the
   * running version is the stable one, no release is under guard, and the newest backup is not of
   * this version or older than the step's `stable_backup_every`.
   */
  refresh(state: GuardState): void {
    if (this.running || this.deps.signal.aborted) return;
    // Settled phases only (no window open, no plan running), with the stable version running.
    if (!['stable', 'promoted', 'rolled_back'].includes(state.phase) || !state.stable || state.running !== state.stable) return;
    const now = this.deps.clock.now();
    // A newly stable version is looked at at once; otherwise every LOOK_EVERY_MS.
    if (this.lookedFor === state.stable && now - this.lookedAt < LOOK_EVERY_MS) return;
    this.lookedAt = now;
    this.lookedFor = state.stable;
    this.running = this.takeDue(state.stable).finally(() => {
      this.running = null;
    });
  }

  /** Resolves once a backup started by `refresh` (if any) is done: for tests and a clean stop. */
  async settled(): Promise<void> {
    await this.running;
  }

  /** Takes the due backups now (each step's own schedule), then prunes. Never rejects. */
  async takeDue(version: string): Promise<void> {
    for (const [index, step] of this.deps.plan.entries()) {
      const every = stableBackupEvery(step);
      if (every <= 0) continue;
      const newest = (await this.list(index, step.config.type))[0];
      if (newest && newest.version === version && this.deps.clock.now() - newest.startedAt < every) continue;
      await this.take(index, step, version);
    }
  }

  private async take(index: number, step: PlanStep, version: string): Promise<void> {
    const { clock, stateDir } = this.deps;
    const log = this.deps.log.child({ component: 'stable-backup', step: index + 1, strategy: step.config.type });
    const root = stableBackupRoot(stateDir, index, step.config.type);
    const startedAt = clock.now();
    const dir = join(root, `${new Date(startedAt).toISOString().replace(/[:.]/g, '-')}-${version.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}`);
    try {
      await mkdir(dir, { recursive: true });
      log.info(`backup of the stable version ${version} -> ${dir}`);
      await runPrepare(
        step,
        { service: this.deps.service, version, previous: null, progress: (message) => log.info(message), dataDir: dir },
        { clock, stop: this.deps.signal },
      );
      await writeMarker(dir, { state: 'complete', version, startedAt, finishedAt: clock.now(), ...(this.deps.host ? { host: this.deps.host } : {}) });
      log.info(`stable backup of ${version} complete in ${clock.now() - startedAt}ms`);
    } catch (error) {
      log.error(`stable backup of ${version} failed; the previous one is kept`, { error: errorMessage(error) });
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
    await this.prune(root).catch((error: unknown) => log.warn('old stable backups not pruned', { error: errorMessage(error) }));
  }

  /** Keeps the newest KEEP complete backups; removes older ones and leftovers of interrupted ones. */
  private async prune(root: string): Promise<void> {
    const names = await readdir(root).catch(() => [] as string[]);
    const complete: { name: string; startedAt: number }[] = [];
    for (const name of names) {
      const marker = await readMarker(join(root, name));
      // Only this object takes stable backups, one at a time: an incomplete one here is a leftover.
      if (marker?.state === 'complete') complete.push({ name, startedAt: marker.startedAt });
      else await rm(join(root, name), { recursive: true, force: true });
    }
    complete.sort((a, b) => b.startedAt - a.startedAt);
    for (const old of complete.slice(KEEP_STABLE_BACKUPS)) await rm(join(root, old.name), { recursive: true, force: true });
  }
}
