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

export async function writeFileAtomic(path: string, content: string | Uint8Array, options: { mode?: number; dir?: string } = {}): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'w', options.mode ?? 0o640);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    const dirHandle = await open(options.dir ?? dirname(path), 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
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
  const dirHandle = await open(dirname(path), 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** `value` as pretty JSON with a final newline, written atomically. */
export function writeJsonAtomic(path: string, value: unknown, options: { mode?: number } = {}): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, options);
}
