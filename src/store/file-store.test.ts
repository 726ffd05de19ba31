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

  it('rejects record ids that would escape the directory', async () => {
    const store = await new FileStore(dir).open();
    expect(await store.readRecord('../state')).toBeNull();
  });

  it('reports an unwritable state_dir clearly', async () => {
    await writeFile(join(dir, 'file'), 'x');
    await expect(new FileStore(join(dir, 'file', 'sub')).open()).rejects.toThrow(/cannot create state_dir/);
  });
});
