/**
 * The marker a step's prepared data carries beside it (`prepared.json`): whether its `prepare` is
 * running, complete or failed, and when it started. It is what tells a guard that did not run the
 * preparation itself (restarted, or a standby that took over) whether the data beside it is whole,
 * and whether it was taken before the release began. Written atomically (temporary file + rename):
 * a crash leaves the old marker or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const PREPARE_MARKER = 'prepared.json';

export interface PrepareMarker {
  state: 'running' | 'complete' | 'failed';
  /** The version the data belongs to (the release for a window, the stable version for a stable backup). */
  version: string;
  /** When `prepare` started and finished, epoch ms. */
  startedAt: number;
  finishedAt?: number;
  /** Windows only: which window (`<version>@<window start>`): data of another window is not this one's. */
  window?: string;
  /** Windows only: when the release began (writes before it are not the release's), epoch ms. */
  releaseBeganAt?: number;
  error?: string;
  /** The guard that prepared it (HA: another guard may read it). */
  host?: string;
}

export async function writeMarker(dir: string, marker: PrepareMarker): Promise<void> {
  const temp = join(dir, `.${PREPARE_MARKER}.${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(temp, `${JSON.stringify(marker, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, join(dir, PREPARE_MARKER));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** The marker, or null when there is none or it cannot be read as one (then the data is not trusted). */
export async function readMarker(dir: string): Promise<PrepareMarker | null> {
  try {
    const value = JSON.parse(await readFile(join(dir, PREPARE_MARKER), 'utf8')) as Partial<PrepareMarker>;
    const states = ['running', 'complete', 'failed'];
    if (typeof value.state !== 'string' || !states.includes(value.state) || typeof value.version !== 'string' || typeof value.startedAt !== 'number') return null;
    return value as PrepareMarker;
  } catch {
    return null;
  }
}
