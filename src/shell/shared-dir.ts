/**
 * Prepared data reachable by whichever guard acts (issue 13, item 11). Under HA (redis store, one
 * lease) the guard that rolls back may be a standby that took over mid-window: the pre-release
 * dump, config snapshot and stable backups the acting guard prepared must be where it can read
 * them. `store.shared_dir` is that place, a directory every guard of the instance mounts.
 *
 * At start each guard checks the directory (exists — it is never created, so an unmounted share
 * fails loudly instead of silently becoming a local directory — and is writable) and leaves a
 * marker `guards/<guard id>.json` there. A standby's preflight reads the acting guard's marker
 * (same directory, not two look-alikes) and the markers of the current window's prepared data.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readMarker } from './prepare-marker.js';

/** Where rollback steps keep prepared data: `store.shared_dir` under HA, else `state_dir`. */
export function preparedDataRoot(config: Config): string {
  return config.store.type === 'redis' && config.store.shared_dir ? config.store.shared_dir : config.state_dir;
}

function markerFile(dir: string, guardId: string): string {
  return join(dir, 'guards', `${guardId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120)}.json`);
}

/**
 * Checks `store.shared_dir` and leaves this guard's marker in it. Throws one line naming the
 * directory and what is wrong.
 */
export async function claimSharedDir(dir: string, guardId: string, now: number): Promise<void> {
  const fail = (what: string) => new Error(`store.shared_dir ${dir}: ${what}`);
  const info = await stat(dir).catch((error: unknown) => {
    throw fail(`${errorMessage(error)} (it must exist: mount the directory every guard of this instance shares)`);
  });
  if (!info.isDirectory()) throw fail('is not a directory');
  const file = markerFile(dir, guardId);
  const marker = { guard: guardId, host: hostname(), pid: process.pid, at: new Date(now).toISOString() };
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(join(dir, 'guards'), { recursive: true });
    await writeFile(temp, `${JSON.stringify(marker)}\n`, { mode: 0o644 });
    await rename(temp, file);
    const back = JSON.parse(await readFile(file, 'utf8')) as { guard?: string };
    if (back.guard !== guardId) throw new Error('the marker written is not the one read back');
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw fail(`not writable by this guard: ${errorMessage(error)}`);
  }
}

/**
 * For a standby's preflight: can it read what the acting guard (`holder`) prepared? Its marker in
 * the shared directory, and the marker of each of the current window's prepared-data directories.
 */
export async function standbyProblems(dir: string, holder: string | null, windowDirs: readonly { step: number; dir: string }[]): Promise<string[]> {
  const problems: string[] = [];
  if (holder) {
    const found = await readFile(markerFile(dir, holder), 'utf8').catch(() => null);
    if (found === null) {
      problems.push(
        `store.shared_dir ${dir} has no marker of the acting guard ${holder}: the guards do not share this directory, ` +
          'so this standby could not undo what the acting guard prepared',
      );
    }
  }
  for (const { step, dir: data } of windowDirs) {
    if (!(await readMarker(data))) problems.push(`step ${step}: the acting guard's prepared data for this window is not readable here (${data})`);
  }
  return problems;
}
