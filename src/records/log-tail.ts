/**
 * The last lines of a log file for a rollback record, bounded in lines AND bytes: a release that
 * floods its log (one 50 MB line, or millions of short ones) must not make the guard read or keep
 * more than `maxBytes` of it. Reads only the end of the file, backwards, in chunks.
 */
import { open } from 'node:fs/promises';

const CHUNK_BYTES = 64 * 1024;

/** Defaults of `records.log_lines` and `records.log_bytes`. */
export const DEFAULT_LOG_LINES = 40;
export const DEFAULT_LOG_BYTES = 64 * 1024;

/**
 * The last `count` lines of `file`, at most `maxBytes` of it (the first line kept is cut at its
 * start when the cap falls inside it, and says so). A missing file has none.
 */
export async function lastLines(file: string, count: number, maxBytes = DEFAULT_LOG_BYTES): Promise<string[]> {
  if (count <= 0 || maxBytes <= 0) return [];
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const floor = Math.max(0, size - maxBytes);
    const chunks: Buffer[] = [];
    let start = size;
    let newlines = 0;
    // Backwards until enough line breaks are in hand or the byte cap is reached; decoded once at
    // the end so a multi-byte character split across chunks stays whole.
    while (start > floor && newlines <= count) {
      const length = Math.min(CHUNK_BYTES, start - floor);
      start -= length;
      const chunk = Buffer.alloc(length);
      const { bytesRead } = await handle.read(chunk, 0, length, start);
      const read = chunk.subarray(0, bytesRead);
      for (const byte of read) if (byte === 0x0a) newlines += 1;
      chunks.unshift(read);
    }
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    const kept = lines.slice(-count);
    // The cap cut the oldest kept line: mark it rather than pass off a fragment as a whole line.
    if (start > 0 && start === floor && kept.length === lines.length && kept.length > 0) kept[0] = `[cut: the log tail is capped at ${maxBytes} bytes] …${kept[0]}`;
    return kept;
  } finally {
    await handle.close();
  }
}
