/**
 * Writes rollback records so that a failed write is not the end of them: the first attempt is
 * made at once; when it fails (disk full, directory replaced, store unreachable) the record is
 * kept in memory and tried again in the background with backoff (1 s, doubling, at most 1 min),
 * `attempts` times in all. When every attempt failed, the operator gets a critical notification;
 * the record is still derivable from the persisted state, and the next start writes it (see the
 * guard's writeOwedRecord).
 */
import type { RollbackRecord } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../shell/clock.js';
import type { StateStore } from '../store/state-store.js';

export interface RecordFiles {
  record: RollbackRecord;
  markdown: string;
  extra: Record<string, unknown>;
  svg?: string;
}

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

export class RecordWriter {
  /** Records not written yet, by id. */
  private readonly pending = new Map<string, RecordFiles>();

  constructor(
    private readonly deps: {
      store: StateStore;
      clock: Clock;
      log: Logger;
      attempts: number;
      /** Stops the retries (the guard is stopping). */
      signal: AbortSignal;
      /** A critical notification when every attempt failed. */
      giveUp: (message: string) => void;
    },
  ) {}

  get pendingIds(): string[] {
    return [...this.pending.keys()];
  }

  /**
   * Writes the record now; on failure keeps retrying in the background (not awaited: the guard's
   * queue must not wait minutes). Resolves true when the first attempt wrote it.
   */
  async write(files: RecordFiles): Promise<boolean> {
    if (await this.attempt(files, 1)) return true;
    this.pending.set(files.record.id, files);
    void this.retry(files);
    return false;
  }

  private async retry(files: RecordFiles): Promise<void> {
    const { clock, attempts, signal } = this.deps;
    for (let n = 2; n <= attempts; n++) {
      await clock.sleep(Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (n - 2)), signal);
      if (signal.aborted) return;
      if (await this.attempt(files, n)) {
        this.pending.delete(files.record.id);
        return;
      }
    }
    this.pending.delete(files.record.id);
    this.deps.giveUp(`rollback record ${files.record.id} could not be written after ${attempts} attempts; it is kept in the state and written at the next start of the guard`);
  }

  private async attempt(files: RecordFiles, n: number): Promise<boolean> {
    const { store, log, attempts } = this.deps;
    try {
      const paths = await store.writeRecord(files.record, files.markdown, files.extra, files.svg);
      log.info('rollback record written', { component: 'record', id: files.record.id, markdown: paths.markdown, ...(n > 1 ? { attempt: n } : {}) });
      return true;
    } catch (error) {
      log.error('rollback record could not be written', { component: 'record', id: files.record.id, attempt: n, attempts, error: errorMessage(error) });
      return false;
    }
  }
}
