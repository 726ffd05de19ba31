/**
 * What each rollback step prepared for a release window, and which backup its rollback uses.
 *
 * The window's preparations (config snapshot, pre-release dump, …) start when the window opens and
 * are not awaited: they must never delay the guard's eyes. With fast detection a rollback is often
 * decided while the dump still runs. So the in-flight preparation of every step is kept here, and a
 * step that needs it waits for it (at most half its timeout, progress logged every few seconds),
 * then restores from — in this order:
 *   1. the window's own backup, when complete and taken before the release began (an announced
 *      release: `release-guard release` before the deploy);
 *   2. otherwise (a detected release, whose window opened after the deploy; or a backup that failed,
 *      did not complete in time, or was interrupted by a restart) the newest stable backup taken
 *      before the release began (stable-backups.ts);
 *   3. otherwise the window's own backup with a warning that it may undo nothing, or nothing (the
 *      step then fails saying the backup is missing).
 * The choice is one line kept in the step's record. Every step's data carries a marker
 * (prepare-marker.ts), so a guard that did not run the preparation (restarted, or a standby that
 * took over) knows whether the data is whole.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Release, Sample } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { PreparedData } from '../strategies/types.js';
import type { Clock } from './clock.js';
import { readMarker, writeMarker } from './prepare-marker.js';
import type { PlanStep } from './rollback-runner.js';
import { runPrepare } from './run-prepare.js';
import type { StableBackups } from './stable-backups.js';

/** How often a waiting rollback says how far the backup is. */
const PROGRESS_EVERY_MS = 3000;
/** A window preparation that started this long after an announced release began is "late" too. */
const LATE_AFTER_MS = 30_000;

export interface Resolved {
  /** Absent: the step reads its own dataDir (and fails its own way when nothing is there). */
  prepared?: PreparedData;
  /** For preflight: e.g. no backup predates the running release. */
  problems: string[];
}

/**
 * When the release began. Announced: when it was announced. Detected: just after the last sample of
 * the version probe that still saw another version — the first sample seeing the new one comes
 * after the deploy, whose migrations may have run before it. (A migration run while the previous
 * version still served cannot be told apart by time: announce releases to mark the start exactly.)
 */
export function releaseBeganAt(release: Release, versionSamples: readonly Sample[] | undefined): number {
  if (release.source !== 'detected') return release.startedAt;
  let last: number | null = null;
  for (const s of versionSamples ?? []) {
    if (s.version !== undefined && s.version !== release.version && s.startedAt < release.startedAt && (last === null || s.startedAt > last)) last = s.startedAt;
  }
  return last ?? release.startedAt;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Bytes under `dir` (a partial dump included): how far a running backup is. */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesUnder(full);
    else total += await stat(full).then((s) => s.size, () => 0);
  }
  return total;
}

function megabytes(bytes: number): string {
  const mb = bytes / 1e6;
  return mb < 10 ? mb.toFixed(1) : String(Math.round(mb));
}

export class Preparations {
  /** In-flight preparations by window and step. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: {
      plan: readonly PlanStep[];
      clock: Clock;
      log: Logger;
      service: string;
      /** Stops preparations when the guard stops. */
      signal: AbortSignal;
      stable: StableBackups;
      /** Where step `index` keeps what it prepared for `release` (stepDataDir). */
      dataDir(release: Release, index: number, type: string): string;
      host?: string;
    },
  ) {}

  private key(release: Release, index: number): string {
    return `${release.version}@${release.startedAt}#${index}`;
  }

  /**
   * Runs every step's `prepare` for the window of `release`, one after the other. All are
   * registered at once, so a rollback decided before a later step's turn waits for it too.
   */
  async prepareAll(release: Release, began: number): Promise<void> {
    let chain: Promise<void> = Promise.resolve();
    const keys: string[] = [];
    for (const [index, step] of this.deps.plan.entries()) {
      if (!step.strategy.prepare) continue;
      chain = chain.then(() => this.prepareOne(release, began, index, step));
      keys.push(this.key(release, index));
      this.inflight.set(this.key(release, index), chain);
    }
    await chain;
    for (const key of keys) this.inflight.delete(key);
  }

  /** One step's `prepare`, its marker written before and after. Never rejects. */
  private async prepareOne(release: Release, began: number, index: number, step: PlanStep): Promise<void> {
    const { clock, config } = { clock: this.deps.clock, config: step.config };
    const log = this.deps.log.child({ component: 'prepare', step: index + 1, strategy: config.type });
    const dir = this.deps.dataDir(release, index, config.type);
    const window = `${release.version}@${release.startedAt}`;
    const marker = { version: release.version, window, startedAt: clock.now(), releaseBeganAt: began, ...(this.deps.host ? { host: this.deps.host } : {}) };
    try {
      await mkdir(dir, { recursive: true });
      // A complete preparation of this window (a restarted guard prepares again) is kept as it is.
      const before = await readMarker(dir);
      if (before?.state === 'complete' && before.window === window) {
        log.info(`already prepared at ${iso(before.startedAt)}; keeping it`);
        return;
      }
      await writeMarker(dir, { ...marker, state: 'running' });
      await runPrepare(
        step,
        { service: this.deps.service, version: release.version, previous: release.previous, progress: (message) => log.info(message), dataDir: dir },
        { clock, stop: this.deps.signal },
      );
      await writeMarker(dir, { ...marker, state: 'complete', finishedAt: clock.now() });
    } catch (error) {
      log.error('could not prepare the rollback of this release', { error: errorMessage(error), release: release.version });
      await writeMarker(dir, { ...marker, state: 'failed', finishedAt: clock.now(), error: errorMessage(error) }).catch(() => undefined);
    }
  }

  /**
   * Which data step `index` restores from for `release`. Waits up to `waitMs` for an in-flight
   * preparation of this window (0: never waits, as preflight does).
   */
  async resolve(release: Release, index: number, type: string, options: { waitMs: number; signal?: AbortSignal; progress?(message: string): void }): Promise<Resolved> {
    const dir = this.deps.dataDir(release, index, type);
    const pending = this.inflight.get(this.key(release, index));
    let waitedOut = false;
    if (pending && options.waitMs > 0) waitedOut = !(await this.waitFor(pending, dir, options));
    const marker = await readMarker(dir);
    const began = marker?.releaseBeganAt ?? release.startedAt;
    const late = release.source === 'detected' || (marker !== null && marker.startedAt > release.startedAt + LATE_AFTER_MS);
    const complete = marker?.state === 'complete';
    const window = (note: string): PreparedData => ({ dir, source: 'window', note, releaseBeganAt: began });
    if (complete && !late) return { prepared: window(`restoring this window's pre-release backup (taken ${iso(marker.startedAt)}, before the release)`), problems: [] };
    // Nothing known about this window (data of an older guard): the step reads its dataDir as before.
    if (!marker && !pending && !late) return { problems: [] };

    const why = late
      ? `this window's backup was taken after the release began (${release.source === 'detected' ? 'the release was detected, not announced' : `at ${iso(marker!.startedAt)}`})`
      : waitedOut || pending
        ? `this window's backup was still running after ${Math.round(options.waitMs / 1000)} s`
        : marker?.state === 'failed'
          ? `this window's backup failed: ${marker.error ?? 'unknown error'}`
          : "this window's backup did not complete (interrupted)";
    const problems: string[] = [];
    if (this.deps.stable.enabledFor(index)) {
      const stable = await this.deps.stable.newestBefore(index, type, began);
      if (stable) {
        return {
          prepared: { dir: stable.dir, source: 'stable', note: `restoring the stable backup of ${stable.version} taken ${iso(stable.startedAt)}: ${why}`, releaseBeganAt: began },
          problems,
        };
      }
      problems.push(`no backup predates the running release ${release.version} (began ${iso(began)}): ${why}, and no stable backup was taken before it`);
    }
    if (complete) return { prepared: window(`restoring this window's backup although ${why}: it may undo nothing`), problems };
    return { problems };
  }

  /** True when the preparation finished within `waitMs`; logs progress meanwhile. */
  private async waitFor(pending: Promise<void>, dir: string, options: { waitMs: number; signal?: AbortSignal; progress?(message: string): void }): Promise<boolean> {
    const { clock } = this.deps;
    const started = clock.now();
    let done = false;
    const finished = pending.then(() => {
      done = true;
    });
    while (!done) {
      const waited = clock.now() - started;
      if (waited >= options.waitMs || options.signal?.aborted) return false;
      const tick = new AbortController();
      await Promise.race([finished, clock.sleep(Math.min(PROGRESS_EVERY_MS, options.waitMs - waited), AbortSignal.any([tick.signal, ...(options.signal ? [options.signal] : [])]))]);
      tick.abort();
      if (!done) options.progress?.(`waiting for the pre-release backup (${Math.round((clock.now() - started) / 1000)} s, ${megabytes(await bytesUnder(dir))} MB so far)`);
    }
    return true;
  }
}
