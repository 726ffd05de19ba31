/**
 * Issue 13 item 2: step data belongs to a release window, never to a version string. The
 * redeploy scenario (bench/chaos/redeploy-scenario.ts, shared with `npm run chaos`) runs a
 * real guard daemon against a real MariaDB (its own throwaway server: the scenario needs an
 * account that can create, dump and restore) and a fake kubectl that records its arguments.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRedeployScenario } from '../../bench/chaos/redeploy-scenario.js';
import { startMariaDb, type MysqlInfo, type RunningService } from '../helpers/services.js';

let db: RunningService<MysqlInfo>;
let work: string;

beforeAll(async () => {
  db = await startMariaDb();
  work = await mkdtemp(join(tmpdir(), 'rg-redeploy-'));
});

afterAll(async () => {
  await db?.stop({ graceMs: 0 });
  if (work) await rm(work, { recursive: true, force: true });
});

describe('deploying a version again opens a window of its own', () => {
  it('the second rollback restores the second window\'s dump (writes between the windows survive), and runs rollout undo and migrate_down again', async () => {
    // Root without a password: the throwaway server's own, over TCP.
    const result = await runRedeployScenario({ db: { host: '127.0.0.1', port: db.port, user: 'root' }, workDir: work });
    expect(result.damageUndone).toEqual([true, true]);
    // Not the first window's dump: the rows written on v1 between the windows are still there.
    expect(result.keptAfterSecondRollback).toBe(result.writtenBetween);
    // No stale undo record, no stale "migrate_down done" marker: each rollback did its own.
    expect(result.undoRuns).toBe(2);
    expect(result.migrateDownRuns).toBe(2);
    // Each window has its own data directory, named by its id, none by the version string.
    const [first, second] = result.windows;
    expect(first).not.toBe(second);
    const windows = await readdir(join(result.stateDir, 'windows'));
    expect(windows).toEqual(expect.arrayContaining([first, second]));
    for (const id of [first!, second!]) expect((await readdir(join(result.stateDir, 'windows', id))).sort()).toEqual(['1-kubernetes', '2-database']);
    expect(await readdir(result.stateDir)).not.toContain('releases');
  });
});
