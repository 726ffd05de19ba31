/**
 * Where rollback steps keep what they prepared: one directory per release window,
 * `<state_dir>/windows/<window id>/<n>-<type>`, never keyed by a version string (a version
 * deployed twice must not restore its first window's dump, nor skip its undo because of the
 * first window's marker). Old windows are pruned, and the state dir's disk use is measured for
 * the metric and preflight.
 */
import { lstat, mkdir, readdir, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { WINDOW_ID } from '../core/windows.js';
import type { Release } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { GuardMetrics } from '../metrics.js';

export const WINDOWS_DIR = 'windows';

/** Where step `index` keeps what it prepared for the window `windowId`. */
export function stepDataDir(stateDir: string, windowId: string, index: number, type: string): string {
  // Ids come from core/windows.ts (and stored ones are validated on load): refuse anything else
  // rather than let a crafted id point outside the windows directory.
  if (!WINDOW_ID.test(windowId)) throw new Error(`unsafe release window id ${JSON.stringify(windowId)}`);
  return join(stateDir, WINDOWS_DIR, windowId, `${index + 1}-${type}`);
}

/**
 * Removes all but the newest `keep` windows' data (ids sort by their start time), never one in
 * `protect` (the window under guard or being rolled back, and the last window, which a rollback
 * by hand still uses). Returns the ids removed.
 */
export async function pruneWindows(stateDir: string, keep: number, protect: readonly (string | undefined)[]): Promise<string[]> {
  const root = join(stateDir, WINDOWS_DIR);
  const ids = (await readdir(root).catch(() => [] as string[])).filter((name) => WINDOW_ID.test(name)).sort();
  const protectedIds = protect.filter((id): id is string => id !== undefined);
  // The current window counts as one of the `keep`, even before its prepare made its directory.
  const all = [...new Set([...ids, ...protectedIds])].sort();
  const kept = new Set([...all.slice(-keep), ...protectedIds]);
  const removed: string[] = [];
  for (const id of ids) {
    if (kept.has(id)) continue;
    await rm(join(root, id), { recursive: true, force: true });
    removed.push(id);
  }
  return removed;
}

/**
 * A state saved before windows had ids kept its current window's data under
 * `<state_dir>/releases/<version>/`: move it to the window's directory so an upgraded guard still
 * finds the pre-release backup of the release it is guarding. Returns true when it moved.
 */
export async function adoptLegacyStepData(stateDir: string, release: Release | null): Promise<boolean> {
  if (!release) return false;
  const legacy = join(stateDir, 'releases', release.version);
  const target = join(stateDir, WINDOWS_DIR, release.id);
  const [from, to] = await Promise.all([lstat(legacy).catch(() => null), lstat(target).catch(() => null)]);
  if (!from?.isDirectory() || to) return false;
  await mkdir(join(stateDir, WINDOWS_DIR), { recursive: true, mode: 0o750 });
  await rename(legacy, target);
  return true;
}

/** Bytes used by the files under `dir` (not following symlinks). */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) total += (await lstat(path).catch(() => null))?.size ?? 0;
    }
  }
  return total;
}

export interface StateDirUsage {
  bytes: number;
  /** Free bytes on the filesystem holding it, for the guard's user; null when unknown. */
  freeBytes: number | null;
}

export async function stateDirUsage(stateDir: string): Promise<StateDirUsage> {
  const [bytes, fs] = await Promise.all([directoryBytes(stateDir), statfs(stateDir).catch(() => null)]);
  return { bytes, freeBytes: fs ? fs.bavail * fs.bsize : null };
}

const MIB = 1024 * 1024;

/** What preflight says about the state dir's disk use: a rollback needs room for its dumps. */
export function stateDirProblems(usage: StateDirUsage, limits: { max_mb: number; min_free_mb: number }): string[] {
  const problems: string[] = [];
  if (usage.bytes > limits.max_mb * MIB) {
    problems.push(`state_dir uses ${(usage.bytes / MIB).toFixed(1)} MiB, above state.max_mb ${limits.max_mb}: lower state.keep_windows or move old backups out`);
  }
  if (usage.freeBytes !== null && usage.freeBytes < limits.min_free_mb * MIB) {
    problems.push(`only ${(usage.freeBytes / MIB).toFixed(1)} MiB free on the filesystem of state_dir, below state.min_free_mb ${limits.min_free_mb}: a pre-release backup or emergency dump may not fit`);
  }
  return problems;
}

/**
 * The guard's housekeeping of state_dir: adopts a legacy `releases/` layout once, prunes old
 * windows when one closes, and keeps the disk-use metric fresh. Never throws: housekeeping that
 * fails is logged and tried again at the next window.
 */
export class StepDataKeeper {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: {
      stateDir: string;
      settings: { keep_windows: number; max_mb: number; min_free_mb: number };
      log: Logger;
      metrics: Pick<GuardMetrics, 'observeStateDir'>;
    },
  ) {}

  /** On start: step data of a release window saved by an older guard is moved to its window. */
  start(release: Release | null): Promise<void> {
    return this.serialized(async () => {
      const legacy = join(this.deps.stateDir, 'releases');
      if (!(await lstat(legacy).catch(() => null))?.isDirectory()) return;
      if (await adoptLegacyStepData(this.deps.stateDir, release)) {
        this.deps.log.info('step data of the window under guard moved to its window directory', { component: 'step-data', window: release?.id });
      }
      // Never adopted again: a later window of the same version must not pick up this old data.
      const aside = `${legacy}.old`;
      await rename(legacy, aside);
      this.deps.log.warn(`step data of older releases (kept by version) moved aside to ${aside}; remove it when no longer needed`, { component: 'step-data' });
    });
  }

  /** A window closed (or another replaced it): keep the newest `keep_windows`, never those in `protect`. */
  windowClosed(protect: readonly (string | undefined)[]): Promise<void> {
    return this.serialized(async () => {
      const removed = await pruneWindows(this.deps.stateDir, this.deps.settings.keep_windows, protect);
      if (removed.length > 0) this.deps.log.info(`pruned the data of ${removed.length} old release window(s)`, { component: 'step-data', removed, keep: this.deps.settings.keep_windows });
      await this.measure();
    });
  }

  /** Measures state_dir now (metric) and says what preflight should report about it. */
  async problems(): Promise<string[]> {
    return stateDirProblems(await this.measure(), this.deps.settings);
  }

  async measure(): Promise<StateDirUsage> {
    const usage = await stateDirUsage(this.deps.stateDir);
    this.deps.metrics.observeStateDir(usage);
    return usage;
  }

  private serialized(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work).catch((error: unknown) => {
      this.deps.log.error('state_dir housekeeping failed', { component: 'step-data', error: errorMessage(error) });
    });
    this.queue = run;
    return run;
  }
}
