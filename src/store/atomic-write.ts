/**
 * The one way release-guard writes a file that must be whole or absent: state, baselines, records,
 * and the markers and JSON the rollback steps keep in their data directory (a migrate_down
 * "done" marker, the kubernetes revision before an undo, a snapshot manifest). A temporary file in
 * the same directory is written and fsynced, renamed over the target, and the directory fsynced,
 * so a crash or power loss leaves the old content or the new one, never a torn or empty file —
 * an empty marker read back as "done" would skip a down-migration.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export function writeFileAtomic(path: string, content: string | Uint8Array, options: { mode?: number; dir?: string } = {}): Promise<void> {
  return writeFilesAtomic([[path, content]], options);
}

/** Writes `content` to a new temporary file beside `path`, fsynced; returns the temp's path. */
async function writeTemp(path: string, content: string | Uint8Array, mode: number): Promise<string> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'w', mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return temp;
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Writes several files of one directory as a unit, as far as a file system allows: every temp is
 * written and fsynced first (a full disk or a bad directory fails before anything changes), then
 * they are renamed in the given order, so the LAST file is the commit point (a reader that trusts
 * only the last file never sees a half-written set), then the directory is fsynced.
 */
export async function writeFilesAtomic(files: readonly (readonly [path: string, content: string | Uint8Array])[], options: { mode?: number; dir?: string } = {}): Promise<void> {
  const temps: string[] = [];
  try {
    for (const [path, content] of files) temps.push(await writeTemp(path, content, options.mode ?? 0o640));
    for (const [i, [path]] of files.entries()) await rename(temps[i]!, path);
    await syncDir(options.dir ?? dirname(files[0]![0]));
  } catch (error) {
    await Promise.all(temps.map((temp) => rm(temp, { force: true })));
    throw error;
  }
}

/** Makes renames and unlinks in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Makes a file written by someone else (a dump a program streamed into a temp name) durable, then
 * renames it over `path` and syncs the directory: after a power loss the final name holds the
 * whole file or nothing, never a renamed but empty one.
 */
export async function commitFile(temp: string, path: string): Promise<void> {
  const handle = await open(temp, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await syncDir(dirname(path));
}

/** `value` as pretty JSON with a final newline, written atomically. */
export function writeJsonAtomic(path: string, value: unknown, options: { mode?: number } = {}): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, options);
}
