/**
 * Follows a growing log file as `tail -F` does, in bounded memory, handing over complete lines.
 *
 * - Starts at the end of the file that exists when it starts: history is never read. A line
 *   being written at that moment is skipped to its newline, not read as a fragment. A file that
 *   appears later (it was missing) is new, so it is read from its start.
 * - Rotation by rename (logrotate's default): the path now names another file. The renamed file
 *   keeps being read as well, because the server writes to it until it reopens its log (nginx on
 *   USR1, which logrotate sends after creating the new file); it is let go once it has not grown
 *   for `rotateWaitMs`. The new file is read from its start.
 * - Rotation by copytruncate: the file is shorter than the position, or the bytes just before the
 *   position changed (truncated and already grown past it): read again from the start.
 * - Otherwise never read from the start again.
 * - A line longer than `maxLineBytes` is dropped and counted, never buffered whole; at most
 *   `maxReadBytes` are read per call, the rest the next time (the caller learns how far behind).
 *
 * Calls must not overlap (the probe serializes them).
 */
import { open, stat, type FileHandle } from 'node:fs/promises';

export interface TailerOptions {
  maxLineBytes: number;
  maxReadBytes: number;
  /** How long a renamed file is still read after it last grew (the server may not have reopened yet). */
  rotateWaitMs: number;
  now(): number;
}

export interface TailRead {
  /** No file at the path, and none being followed: nothing could be observed. */
  missing: boolean;
  bytesRead: number;
  /** Bytes already in the files beyond what this call read (maxReadBytes was reached). */
  behindBytes: number;
  /** Lines dropped for being longer than maxLineBytes. */
  longLines: number;
  /** What happened to the file, in words (`renamed: …`, `truncated: …`). */
  events: string[];
}

const CHUNK_BYTES = 64 * 1024;
/** Bytes before the position remembered to notice a file truncated and regrown past it. */
const TAIL_BYTES = 64;
const NEWLINE = 0x0a;

interface Followed {
  handle: FileHandle;
  dev: number;
  ino: number;
  position: number;
  /** The start of the current line, when it spans chunks (never more than maxLineBytes). */
  pending: Buffer[];
  pendingBytes: number;
  /** Inside a line being dropped (too long, or begun before the tailer started). */
  discarding: boolean;
  /** The last bytes before `position`. */
  tail: Buffer;
  lastGrowthAt: number;
}

export class LogTailer {
  private current: Followed | null = null;
  /** Renamed files still read until they stop growing. */
  private retired: Followed[] = [];
  private started = false;

  constructor(
    readonly path: string,
    private readonly options: TailerOptions,
  ) {}

  /**
   * Reads what was appended since the previous call and calls `onLine` for each complete line
   * (without its newline). The first call only takes the end of the existing file.
   * Throws on errors other than a missing file (permission denied, I/O error).
   */
  async read(onLine: (line: Buffer) => void): Promise<TailRead> {
    const result: TailRead = { missing: false, bytesRead: 0, behindBytes: 0, longLines: 0, events: [] };
    const budget = { left: this.options.maxReadBytes };
    const first = !this.started;
    this.started = true;

    for (const old of [...this.retired]) {
      await this.drain(old, budget, onLine, result);
      const size = (await old.handle.stat()).size;
      if (size <= old.position && this.options.now() - old.lastGrowthAt >= this.options.rotateWaitMs) {
        this.flushLast(old, onLine);
        await old.handle.close();
        this.retired.splice(this.retired.indexOf(old), 1);
      }
    }

    const atPath = await stat(this.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
      throw error;
    });
    if (this.current === null) {
      if (atPath === null) {
        result.missing = this.retired.length === 0;
        return await this.finish(result);
      }
      this.current = await this.follow(first ? 'end' : 'start');
      if (this.current === null) result.missing = this.retired.length === 0;
    } else if (atPath !== null && (atPath.ino !== this.current.ino || atPath.dev !== this.current.dev)) {
      // Renamed away and replaced: finish what fits of the old file now, the rest on later calls.
      const old = this.current;
      await this.drain(old, budget, onLine, result);
      old.lastGrowthAt = this.options.now();
      this.retired.push(old);
      this.current = await this.follow('start');
      result.events.push(`renamed: ${this.path} is a new file, read from its start`);
    }

    if (this.current !== null && !first) {
      if (await this.truncated(this.current)) {
        Object.assign(this.current, { position: 0, pending: [], pendingBytes: 0, discarding: false, tail: Buffer.alloc(0) });
        result.events.push(`truncated: ${this.path} was truncated (copytruncate), read from its start`);
      }
      await this.drain(this.current, budget, onLine, result);
    }
    return await this.finish(result);
  }

  async close(): Promise<void> {
    const all = [...this.retired, ...(this.current ? [this.current] : [])];
    this.retired = [];
    this.current = null;
    await Promise.all(all.map((f) => f.handle.close().catch(() => undefined)));
  }

  /** Opens the file at the path (null when it vanished meanwhile), positioned at its start or end. */
  private async follow(from: 'start' | 'end'): Promise<Followed | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      const info = await handle.stat();
      const followed: Followed = {
        handle,
        dev: info.dev,
        ino: info.ino,
        position: 0,
        pending: [],
        pendingBytes: 0,
        discarding: false,
        tail: Buffer.alloc(0),
        lastGrowthAt: this.options.now(),
      };
      if (from === 'end' && info.size > 0) {
        followed.position = info.size;
        followed.tail = await readAt(handle, Math.max(0, info.size - TAIL_BYTES), Math.min(TAIL_BYTES, info.size));
        // Mid-line: the rest of that line is not a line of its own.
        followed.discarding = followed.tail.at(-1) !== NEWLINE;
      }
      return followed;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** Shorter than the position, or different bytes just before it: truncated (and maybe regrown). */
  private async truncated(f: Followed): Promise<boolean> {
    const size = (await f.handle.stat()).size;
    if (size < f.position) return true;
    if (f.tail.length === 0) return false;
    const before = await readAt(f.handle, f.position - f.tail.length, f.tail.length);
    return !before.equals(f.tail);
  }

  /** Reads from the position on, within the budget, splitting lines. */
  private async drain(f: Followed, budget: { left: number }, onLine: (line: Buffer) => void, result: TailRead): Promise<void> {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    while (budget.left > 0) {
      const { bytesRead } = await f.handle.read(chunk, 0, Math.min(CHUNK_BYTES, budget.left), f.position);
      if (bytesRead === 0) break;
      budget.left -= bytesRead;
      result.bytesRead += bytesRead;
      f.position += bytesRead;
      f.lastGrowthAt = this.options.now();
      const data = chunk.subarray(0, bytesRead);
      f.tail = bytesRead >= TAIL_BYTES ? Buffer.from(data.subarray(bytesRead - TAIL_BYTES)) : Buffer.concat([f.tail, data]).subarray(-TAIL_BYTES);
      this.split(f, data, onLine, result);
    }
  }

  private split(f: Followed, data: Buffer, onLine: (line: Buffer) => void, result: TailRead): void {
    const max = this.options.maxLineBytes;
    let start = 0;
    while (start <= data.length) {
      const newline = data.indexOf(NEWLINE, start);
      const end = newline === -1 ? data.length : newline;
      const piece = data.subarray(start, end);
      if (f.discarding) {
        if (newline !== -1) f.discarding = false;
      } else if (f.pendingBytes + piece.length > max) {
        // Dropped at once, counted once; the rest of it is skipped up to its newline.
        result.longLines++;
        f.pending = [];
        f.pendingBytes = 0;
        f.discarding = newline === -1;
      } else if (newline === -1) {
        if (piece.length > 0) {
          // Copied: the chunk buffer is reused by the next read.
          f.pending.push(Buffer.from(piece));
          f.pendingBytes += piece.length;
        }
      } else {
        const line = f.pendingBytes === 0 ? piece : Buffer.concat([...f.pending, piece]);
        f.pending = [];
        f.pendingBytes = 0;
        onLine(line);
      }
      if (newline === -1) break;
      start = newline + 1;
    }
  }

  /** A retired file's last line without a newline is complete: nothing more will be written to it. */
  private flushLast(f: Followed, onLine: (line: Buffer) => void): void {
    if (f.pendingBytes > 0 && !f.discarding) onLine(Buffer.concat(f.pending));
    f.pending = [];
    f.pendingBytes = 0;
  }

  private async finish(result: TailRead): Promise<TailRead> {
    for (const f of [...this.retired, ...(this.current ? [this.current] : [])]) {
      const size = (await f.handle.stat()).size;
      if (size > f.position) result.behindBytes += size - f.position;
    }
    return result;
  }
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}
