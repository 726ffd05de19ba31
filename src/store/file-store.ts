/**
 * The embedded file store: JSON files in one directory, each written to a temporary file, fsynced,
 * renamed over the old one and the directory fsynced, so a crash or power loss leaves either the
 * old or the new content. No server is needed.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { GuardState, RollbackRecord } from '../core/types.js';
import { StoreError } from '../errors.js';
import { writeFilesAtomic as writeAll } from './atomic-write.js';
import { parseStoredState, StateRefused } from './state-schema.js';
import type { Baselines, Lease, StateStore } from './state-store.js';
import { pageOf, summaryOf, type HistoryPage, type RecordSummary } from '../records/history-page.js';

const RECORD_ID = /^[A-Za-z0-9._-]{1,200}$/;

/** Atomic write (see atomic-write.ts); a failure is a StoreError naming the file. */
export async function writeFileAtomic(path: string, content: string, dir: string): Promise<void> {
  return writeFilesAtomic([[path, content]], dir);
}

/** Several files of one directory as a unit, the last the commit point (atomic-write.ts); a failure is a StoreError naming them. */
export async function writeFilesAtomic(files: readonly (readonly [path: string, content: string])[], dir: string): Promise<void> {
  try {
    await writeAll(files, { dir });
  } catch (error) {
    const path = files.map(([p]) => p).join(', ');
    throw new StoreError(`cannot write ${path}: ${(error as Error).message}`, 'store_write', 'check that state_dir exists and is writable by the guard', { cause: error });
  }
}

async function readJson<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StoreError(`cannot read ${path}: ${(error as Error).message}`, 'store_read', undefined, { cause: error });
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    // Atomic writes make this a sign of outside tampering: refuse rather than start from scratch.
    throw new StoreError(`${path} is not valid JSON; move it aside to start fresh`, 'store_corrupt', undefined, { cause: error });
  }
}

export class FileStore implements StateStore {
  private readonly records: string;
  private readonly lease: Lease = { token: 1, holder: `${hostname()}/${process.pid}` };

  constructor(private readonly dir: string) {
    this.records = join(dir, 'rollbacks');
  }

  /** Creates the directories; fails with a clear error when they cannot be made. */
  async open(): Promise<this> {
    try {
      await mkdir(this.records, { recursive: true, mode: 0o750 });
    } catch (error) {
      throw new StoreError(`cannot create state_dir ${this.dir}: ${(error as Error).message}`, 'store_open', 'create it, or set state_dir to a writable directory', { cause: error });
    }
    return this;
  }

  /** The saved state, validated as a whole (state-schema.ts): a corrupt or foreign one is refused and left in place. */
  async loadState(): Promise<GuardState | null> {
    const file = join(this.dir, 'state.json');
    const raw = await readJson<unknown>(file);
    if (raw === null) return null;
    try {
      return parseStoredState(raw, file);
    } catch (error) {
      if (error instanceof StateRefused) throw new StoreError(error.message, error.code, undefined, { cause: error });
      throw error;
    }
  }

  saveState(state: GuardState): Promise<void> {
    return writeFileAtomic(join(this.dir, 'state.json'), JSON.stringify(state, null, 2), this.dir);
  }

  async loadBaselines(): Promise<Baselines> {
    return (await readJson<Baselines>(join(this.dir, 'baselines.json'))) ?? {};
  }

  saveBaselines(baselines: Baselines): Promise<void> {
    return writeFileAtomic(join(this.dir, 'baselines.json'), JSON.stringify(baselines, null, 2), this.dir);
  }

  async writeRecord(record: RollbackRecord, markdown: string, extra: Record<string, unknown>, svg?: string) {
    if (!RECORD_ID.test(record.id)) throw new StoreError(`unsafe record id ${JSON.stringify(record.id)}`, 'store_id');
    const json = join(this.records, `${record.id}.json`);
    const md = join(this.records, `${record.id}.md`);
    // The directory may have been removed or replaced meanwhile: a retried write recreates it.
    await mkdir(this.records, { recursive: true, mode: 0o750 }).catch(() => undefined);
    // The JSON last: it is the commit point. History lists records by their JSON, so a record
    // is listed only once its Markdown (and picture) are in place.
    await writeFilesAtomic(
      [
        ...(svg !== undefined ? [[join(this.records, `${record.id}.svg`), svg] as const] : []),
        [md, markdown],
        [json, JSON.stringify({ ...record, ...extra }, null, 2)],
      ],
      this.records,
    );
    // The index is a cache of the records: a failure here is repaired by the next read of it.
    await this.updateIndex(summaryOf(record)).catch(() => undefined);
    return { json, markdown: md };
  }

  async writeDrill(id: string, json: unknown, markdown: string): Promise<string> {
    if (!RECORD_ID.test(id)) throw new StoreError(`unsafe drill id ${JSON.stringify(id)}`, 'store_id');
    const dir = join(this.dir, 'drills');
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await writeFileAtomic(join(dir, `${id}.json`), JSON.stringify(json, null, 2), dir);
    await writeFileAtomic(join(dir, `${id}.md`), markdown, dir);
    return join(dir, `${id}.md`);
  }

  async latestDrill(): Promise<unknown> {
    const dir = join(this.dir, 'drills');
    // Drill ids start with their ISO start time, so the newest sorts last.
    const newest = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort().at(-1);
    return newest ? readJson<unknown>(join(dir, newest)) : null;
  }

  async listRecords() {
    const names = (await readdir(this.records).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
    const records = await Promise.all(names.map((n) => readJson<RollbackRecord & Record<string, unknown>>(join(this.records, n))));
    return records.filter((r): r is RollbackRecord & Record<string, unknown> => r !== null);
  }

  /** `<state_dir>/records-index.json`: one summary per record, kept at write time. */
  private get indexFile(): string {
    return join(this.dir, 'records-index.json');
  }

  private async updateIndex(summary: RecordSummary): Promise<void> {
    const index = (await this.loadIndex()).filter((s) => s.id !== summary.id);
    await writeFileAtomic(this.indexFile, JSON.stringify([...index, summary]), this.dir);
  }

  /**
   * The index, checked against the record files' names (a cheap directory listing): records the
   * index misses (written by an older version, or a crash between the record and its index) are
   * read and added, entries without a JSON file dropped; a missing or corrupt index is rebuilt.
   */
  private async loadIndex(): Promise<RecordSummary[]> {
    const ids = new Set((await readdir(this.records).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)));
    let index: RecordSummary[] | null = null;
    try {
      const parsed = JSON.parse(await readFile(this.indexFile, 'utf8')) as unknown;
      if (Array.isArray(parsed)) index = parsed as RecordSummary[];
    } catch {
      index = null;
    }
    const known = new Set((index ?? []).map((s) => s.id));
    const kept = (index ?? []).filter((s) => ids.has(s.id));
    const missing = [...ids].filter((id) => !known.has(id));
    if (index !== null && missing.length === 0 && kept.length === index.length) return kept;
    for (const id of missing) {
      const record = await readJson<RollbackRecord>(join(this.records, `${id}.json`)).catch(() => null);
      if (record) kept.push(summaryOf(record));
    }
    await writeFileAtomic(this.indexFile, JSON.stringify(kept), this.dir).catch(() => undefined);
    return kept;
  }

  async recordPage(page: HistoryPage) {
    return pageOf(await this.loadIndex(), page);
  }

  /**
   * The file store belongs to one guard process (its state_dir is not shared), so its lease is
   * that process's alone: acquiring and renewing always succeed, the token is fixed for the life of
   * this store object, and writes are never fenced. Several guards on one service need the redis store.
   */
  acquireLease(): Promise<Lease> {
    return Promise.resolve(this.lease);
  }

  renewLease(): Promise<boolean> {
    return Promise.resolve(true);
  }

  releaseLease(): Promise<void> {
    return Promise.resolve();
  }

  leaseHolder(): Promise<Lease> {
    return Promise.resolve(this.lease);
  }

  async readRecord(id: string) {
    if (!RECORD_ID.test(id)) return null;
    const json = await readJson<RollbackRecord & Record<string, unknown>>(join(this.records, `${id}.json`));
    if (!json) return null;
    const markdown = await readFile(join(this.records, `${id}.md`), 'utf8').catch(() => '');
    const svg = await readFile(join(this.records, `${id}.svg`), 'utf8').catch(() => undefined);
    return { json, markdown, ...(svg !== undefined ? { svg } : {}) };
  }
}
