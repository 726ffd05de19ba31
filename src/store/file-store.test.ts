import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialState } from '../core/transition.js';
import { FileStore } from './file-store.js';

describe('FileStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-store-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('starts empty, then round-trips state and leaves no temp files', async () => {
    const store = await new FileStore(dir).open();
    expect(await store.loadState()).toBeNull();
    const state = { ...initialState(1), stable: 'v1', running: 'v1' };
    await store.saveState(state);
    await store.saveState({ ...state, running: 'v2' });
    expect(await new FileStore(dir).loadState()).toEqual({ ...state, running: 'v2' });
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a corrupt state file instead of silently starting fresh', async () => {
    const store = await new FileStore(dir).open();
    await writeFile(join(dir, 'state.json'), '{"schemaVersion":1,');
    await expect(store.loadState()).rejects.toThrow(/not valid JSON/);
  });

  it('history reads its index, not the records; a missing or corrupt index is rebuilt, a record without JSON is not listed', async () => {
    const store = await new FileStore(dir).open();
    const rec = (id: string, finishedAt: number) => ({
      id, from: 'v2', to: 'v1', outcome: 'rolled_back' as const, finishedAt, startedAt: 1, executedAt: 2, attempts: 1, steps: [],
      release: { id: '1970-01-01T00-00-00-001Z_v2', version: 'v2', previous: 'v1', startedAt: 1, deployedBy: 'ci', source: 'detected' as const },
      breach: { trigger: 'rule' as const, rules: [], reason: `r${finishedAt}`, verdicts: [], decidedAt: 1, faultAt: 1 },
      verification: { healthPasses: 3, checks: [] },
    });
    await store.writeRecord(rec('a', 1000), '# a', {});
    await store.writeRecord(rec('b', 2000), '# b', {});
    // A record the index knows is listed from the index alone: its JSON is not parsed again.
    await writeFile(join(dir, 'rollbacks', 'b.json'), '{ not json');
    expect((await store.recordPage({ limit: 10 })).items.map((s) => s.id)).toEqual(['b', 'a']);
    // A corrupt index is rebuilt from the records that parse; the Markdown alone is not a record.
    await writeFile(join(dir, 'records-index.json'), '[{"id":');
    await writeFile(join(dir, 'rollbacks', 'c.md'), '# c without json');
    expect((await store.recordPage({ limit: 10 })).items.map((s) => s.id)).toEqual(['a']);
    await rm(join(dir, 'records-index.json'));
    await store.writeRecord(rec('b', 2000), '# b', {});
    expect((await store.recordPage({ limit: 10 })).items.map((s) => s.id)).toEqual(['b', 'a']);
  });

  it('rejects record ids that would escape the directory', async () => {
    const store = await new FileStore(dir).open();
    expect(await store.readRecord('../state')).toBeNull();
  });

  it('reports an unwritable state_dir clearly', async () => {
    await writeFile(join(dir, 'file'), 'x');
    await expect(new FileStore(join(dir, 'file', 'sub')).open()).rejects.toThrow(/cannot create state_dir/);
  });
});
